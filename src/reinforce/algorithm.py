"""The REINFORCE loss and the policy update.

The gradient of ``-mean_t(log pi(a_t|s_t) * w_t)`` is the negated score-function estimate of the policy
gradient, where ``w_t`` is the (optionally standardised) discounted reward-to-go ``G_t``; gradient descent
on it is gradient ascent on the expected return.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor, nn

from reinforce.config import TrainConfig
from reinforce.errors import NonFiniteError
from reinforce.policies import Policy
from reinforce.returns import discounted_returns, standardize
from reinforce.rollout import RolloutBatch


def reinforce_loss(log_probs: Tensor, weights: Tensor) -> Tensor:
    """The REINFORCE surrogate loss ``-mean(log_probs * weights)``.

    Args:
        log_probs: ``[B]`` log pi(a_t | s_t) of the taken actions, differentiable in the policy parameters.
        weights: ``[B]`` what each log-prob is multiplied by (the return G_t, standardised or not); treated
            as a constant.

    Returns:
        A scalar whose gradient is minus the mean over the ``B`` samples of ``weight * grad log pi``.
    """
    if log_probs.shape != weights.shape:
        raise ValueError(f"log_probs {tuple(log_probs.shape)} and weights {tuple(weights.shape)} differ")
    return -(log_probs * weights.detach()).mean()


def policy_weights(batch: RolloutBatch, config: TrainConfig) -> Tensor:
    """``[T, N]`` weights of the log-probs: discounted reward-to-go, standardised over the batch if asked.

    Entries outside ``batch.mask`` are meaningless (0 after standardisation) and never used.
    """
    returns_TN = discounted_returns(batch.rewards, batch.dones, config.gamma)
    if config.return_normalization == "batch":
        return standardize(returns_TN, batch.mask)
    return returns_TN


def make_optimizer(config: TrainConfig, parameters: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    """The policy optimizer named by ``config.optimizer`` with learning rate ``config.lr``."""
    if config.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=config.lr)
    if config.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=config.lr)
    return torch.optim.RMSprop(parameters, lr=config.lr)


def check_finite_step(loss: Tensor, grad_norm: Tensor, optimizer: torch.optim.Optimizer) -> None:
    """Raise `NonFiniteError` (after clearing the gradients) unless the loss and the gradient norm are finite.

    Called between ``backward`` and ``optimizer.step``, so a non-finite update never reaches the parameters.
    """
    if bool(torch.isfinite(loss)) and bool(torch.isfinite(grad_norm)):
        return
    optimizer.zero_grad(set_to_none=True)
    what = "loss" if not bool(torch.isfinite(loss)) else "gradient"
    raise NonFiniteError(
        f"non-finite {what} (loss {float(loss.item())}, gradient norm {float(grad_norm.item())}): the step was "
        "skipped, the parameters are the last finite ones; likely causes: a learning rate too high (lower --lr), "
        "exploding gradients (set --max-grad-norm), unscaled observations (--normalize-observations)"
    )


def update_policy(
    policy: Policy, optimizer: torch.optim.Optimizer, batch: RolloutBatch, config: TrainConfig
) -> dict[str, float]:
    """One gradient step of REINFORCE on ``batch``; returns the loss metrics of the step."""
    device = next(policy.parameters()).device
    mask = batch.mask
    weights = policy_weights(batch, config)[mask].to(device)
    distribution = policy(batch.observations[mask].to(device))
    loss = reinforce_loss(distribution.log_prob(batch.actions[mask].to(device)), weights)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()  # type: ignore[no-untyped-call]
    max_norm = math.inf if config.max_grad_norm is None else config.max_grad_norm
    grad_norm = nn.utils.clip_grad_norm_(policy.parameters(), max_norm)
    check_finite_step(loss, grad_norm, optimizer)
    optimizer.step()
    with torch.no_grad():
        entropy = distribution.entropy().mean()
    return {
        "losses/policy_loss": float(loss.item()),
        "losses/entropy": float(entropy.item()),
        "losses/grad_norm": float(grad_norm.item()),
    }
