"""The REINFORCE loss and the policy update.

The gradient of ``-sum_t log pi(a_t|s_t) * w_t`` (reduced over the batch, see `reinforce_loss`) is the
negated score-function estimate of the policy gradient, where ``w_t`` is the return from step t (or of the
whole episode), minus a baseline, optionally standardised and discounted; gradient descent on it is
gradient ascent on the expected return (`reinforce.core.weights` computes ``w_t``). docs/concepts.md defines
every switch of `TrainConfig` used here.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from reinforce.config import TrainConfig
from reinforce.core.batch import RolloutBatch
from reinforce.core.guards import check_finite_step
from reinforce.core.optim import Optimizer
from reinforce.core.policies import Policy
from reinforce.core.returns import episode_ids, episode_steps


def score_function_surrogate(log_probs: Tensor, f: Tensor, baseline: Tensor | float | None = None) -> Tensor:
    """Per-sample surrogate ``log_prob(x) * (f(x) - b)`` of the score-function (REINFORCE) estimator.

    For samples ``x ~ p_theta`` and an objective ``f`` that does not depend on theta, the gradient of the
    surrogate's mean is an unbiased estimate of ``grad E[f(x)] = E[f(x) grad log p_theta(x)]``, for any
    baseline ``b`` that does not depend on ``x``. ``f`` and ``b`` are treated as constants.

    Args:
        log_probs: ``[B]`` log p_theta(x) of the samples, differentiable in theta.
        f: ``[B]`` objective values of the samples.
        baseline: a constant, or ``[B]`` values each independent of its own sample; None for 0.

    Returns:
        ``[B]`` surrogate values; differentiate their mean (or sum).

    Example:
        >>> mean = torch.zeros((), requires_grad=True)
        >>> x = torch.distributions.Normal(mean, 1.0).sample((100_000,))
        >>> surrogate = score_function_surrogate(torch.distributions.Normal(mean, 1.0).log_prob(x), x**2)
        >>> surrogate.mean().backward()  # d/dmean E[x^2] = 2 * mean = 0, up to noise
        >>> abs(mean.grad.item()) < 0.1
        True
    """
    weights = f if baseline is None else f - baseline
    return log_probs * torch.as_tensor(weights).detach()


def reinforce_loss(log_probs: Tensor, weights: Tensor, *, num_episodes: int | None = None) -> Tensor:
    """The REINFORCE surrogate loss, ``-sum(log_probs * weights)`` over the batch, reduced.

    Args:
        log_probs: ``[B]`` log pi(a_t | s_t) of the taken actions, differentiable in the policy parameters.
        weights: ``[B]`` what each log-prob is multiplied by (returns, advantages); treated as constants.
        num_episodes: None: the mean over the ``B`` steps (``loss_reduction="mean_over_steps"``); else the sum
            over the steps divided by the number of episodes they come from (``"mean_over_episodes"``: the
            textbook per-episode sum, averaged over episodes; ``B / num_episodes`` times the other).

    Returns:
        A scalar whose gradient is minus the reduced sum of ``weight * grad log pi``.

    Example:
        >>> log_probs = torch.tensor([0.5, 0.25]).log()
        >>> reinforce_loss(log_probs, torch.tensor([1.0, -1.0]))  # -(log 0.5 - log 0.25) / 2
        tensor(-0.3466)
    """
    if log_probs.shape != weights.shape:
        raise ValueError(f"log_probs {tuple(log_probs.shape)} and weights {tuple(weights.shape)} differ")
    surrogate = score_function_surrogate(log_probs, weights)
    return -(surrogate.mean() if num_episodes is None else surrogate.sum() / num_episodes)


ONE_PASS_MAX_STEPS = 16384
"""The largest batch (in valid steps) that `backward_policy_loss` differentiates in one pass. Every shipped
default fits (e.g. CartPole-v1's 32 episodes of at most 500 steps), so their runs give the same floats as a
single pass always did."""
LOSS_CHUNK_STEPS = 4096
"""Valid steps per forward and backward pass of a batch larger than `ONE_PASS_MAX_STEPS`. Chunks this small
keep the activations in cache and reuse their memory, where one pass over a few hundred thousand CartPole
steps spends more time on fresh pages than on arithmetic (docs/benchmarks.md, "Where the time goes")."""


def policy_loss(policy: Policy, batch: RolloutBatch, weights_TN: Tensor, config: TrainConfig) -> tuple[Tensor, Tensor]:
    """The loss of one batch update: `reinforce_loss` minus ``entropy_coef`` times the mean entropy.

    Returns:
        The loss and the policy's mean entropy over the batch's steps (detached).
    """
    mask = batch.mask
    masks = None if batch.action_masks is None else batch.action_masks[mask]
    steps = (batch.observations[mask], batch.actions[mask], masks)
    return _valid_steps_loss(policy, steps, weights_TN[mask], batch, config)


def _valid_steps_loss(
    policy: Policy,
    steps: tuple[Tensor, Tensor, Tensor | None],
    weights: Tensor,
    batch: RolloutBatch,
    config: TrainConfig,
) -> tuple[Tensor, Tensor]:
    """`policy_loss` of some of ``batch``'s valid steps, reduced as if they were the whole batch.

    ``steps`` holds their observations, actions and action masks (None: no masks).
    """
    device = next(policy.parameters()).device
    observations, actions, action_masks = steps
    distribution = policy(observations.to(device), None if action_masks is None else action_masks.to(device))
    log_probs = distribution.log_prob(actions.to(device))
    num_episodes = len(batch.episode_returns) if config.loss_reduction == "mean_over_episodes" else None
    loss = reinforce_loss(log_probs, weights.to(device), num_episodes=num_episodes)
    entropy = distribution.entropy()
    if config.entropy_coef:
        scale = entropy.numel() / num_episodes if num_episodes is not None else 1.0
        loss = loss - config.entropy_coef * scale * entropy.mean()
    return loss, entropy.mean().detach()


def backward_policy_loss(
    policy: Policy, batch: RolloutBatch, weights_TN: Tensor, config: TrainConfig
) -> tuple[Tensor, Tensor]:
    """Add the gradient of `policy_loss` to the policy's ``.grad``, in chunks of the valid steps if the batch is large.

    A batch of up to `ONE_PASS_MAX_STEPS` valid steps is differentiated in one pass. A larger one is cut into
    chunks of `LOSS_CHUNK_STEPS` steps, each differentiated on its own: a chunk's loss is reduced as the
    batch's (a sum over its steps divided by the batch's number of steps or episodes), so the chunks' losses
    and gradients add up to the batch's, equal to one pass up to float rounding.

    Returns:
        The loss and the policy's mean entropy over the batch's steps, both detached.
    """
    mask = batch.mask
    observations, actions, weights = batch.observations[mask], batch.actions[mask], weights_TN[mask]
    masks = None if batch.action_masks is None else batch.action_masks[mask]
    num_steps = observations.shape[0]
    chunk = LOSS_CHUNK_STEPS if num_steps > ONE_PASS_MAX_STEPS else num_steps  # one chunk: one pass
    # the mean over steps divides a chunk's sum by the chunk's size: weighted by the chunk's share of the batch
    # (the mean over episodes already divides by the batch's number of episodes); a share of 1 is exact
    per_step_mean = config.loss_reduction == "mean_over_steps"
    total_loss, total_entropy = torch.zeros(()), torch.zeros(())
    for start in range(0, num_steps, chunk):
        rows = slice(start, start + chunk)
        share = observations[rows].shape[0] / num_steps
        steps = (observations[rows], actions[rows], None if masks is None else masks[rows])
        loss, entropy = _valid_steps_loss(policy, steps, weights[rows], batch, config)
        loss = loss * share if per_step_mean else loss
        loss.backward()  # type: ignore[no-untyped-call]
        total_loss += loss.detach().cpu()
        total_entropy += entropy.cpu() * share
    return total_loss, total_entropy


def _step(policy: Policy, optimizer: Optimizer, loss: Tensor, config: TrainConfig) -> float:
    """Clip the gradients that ``loss`` left in the policy's ``.grad``, check them, and step; the gradient norm."""
    max_norm = math.inf if config.max_grad_norm is None else config.max_grad_norm
    grad_norm = nn.utils.clip_grad_norm_(policy.parameters(), max_norm)
    check_finite_step(loss, grad_norm, optimizer, "lr")
    optimizer.step()
    return float(grad_norm.item())


def update_policy(
    policy: Policy, optimizer: Optimizer, batch: RolloutBatch, weights_TN: Tensor, config: TrainConfig
) -> dict[str, float]:
    """Policy-gradient step(s) on ``batch`` with the given weights; returns the loss metrics.

    ``config.update="batch"`` takes one step on the whole batch. ``"per_step"`` is the textbook loop: for
    each episode in turn and each of its steps t in order, one step on ``-w_t * log pi(a_t|s_t)`` (the
    policy re-evaluated after every step; ``loss_reduction`` does not apply, each step is its own update).
    """
    if config.update == "batch":
        optimizer.zero_grad(set_to_none=True)
        loss, entropy = backward_policy_loss(policy, batch, weights_TN, config)
        grad_norm = _step(policy, optimizer, loss, config)
        return {
            "losses/policy_loss": float(loss.item()),
            "losses/entropy": float(entropy.item()),
            "losses/grad_norm": grad_norm,
        }
    device = next(policy.parameters()).device
    ids, _ = episode_ids(batch.dones, batch.mask)
    steps = episode_steps(batch.dones, batch.mask)
    positions = batch.mask.nonzero()  # [B, 2] (t, n), in time order
    keys = ids[batch.mask] * (int(steps.max()) + 1) + steps[batch.mask]
    losses, entropies, norms = [], [], []
    for t, n in positions[torch.argsort(keys)].tolist():
        masks = None if batch.action_masks is None else batch.action_masks[t, n][None].to(device)
        distribution = policy(batch.observations[t, n][None].to(device), masks)
        log_prob = distribution.log_prob(batch.actions[t, n][None].to(device))
        entropy = distribution.entropy()
        loss = reinforce_loss(log_prob, weights_TN[t, n][None].to(device)) - config.entropy_coef * entropy.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        norms.append(_step(policy, optimizer, loss, config))
        losses.append(float(loss.item()))
        entropies.append(float(entropy.mean().item()))
    return {
        "losses/policy_loss": sum(losses) / len(losses),
        "losses/entropy": sum(entropies) / len(entropies),
        "losses/grad_norm": sum(norms) / len(norms),
    }
