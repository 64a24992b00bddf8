"""The REINFORCE loss and the policy update.

The gradient of ``-sum_t log pi(a_t|s_t) * w_t`` (reduced over the batch, see `reinforce_loss`) is the
negated score-function estimate of the policy gradient, where ``w_t`` is the return from step t (or of the
whole episode), minus a baseline, optionally standardised and discounted; gradient descent on it is
gradient ascent on the expected return. docs/concepts.md defines every switch of `TrainConfig` used here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor, nn

from reinforce.config import TrainConfig
from reinforce.core.baselines import (
    RunningMeanBaseline,
    ValueFunction,
    batch_mean_baseline,
    fit_value_function,
    leave_one_out_baseline,
)
from reinforce.core.batch import RolloutBatch
from reinforce.core.guards import check_finite_step
from reinforce.core.optim import EagerOptimizer, Optimizer
from reinforce.core.policies import Policy
from reinforce.core.returns import (
    discounted_returns,
    episode_ids,
    episode_steps,
    standardize,
    standardize_per_episode,
    whole_episode_returns,
)


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
    """
    if log_probs.shape != weights.shape:
        raise ValueError(f"log_probs {tuple(log_probs.shape)} and weights {tuple(weights.shape)} differ")
    surrogate = score_function_surrogate(log_probs, weights)
    return -(surrogate.mean() if num_episodes is None else surrogate.sum() / num_episodes)


def batch_returns(batch: RolloutBatch, config: TrainConfig, value_function: ValueFunction | None = None) -> Tensor:
    """``[T, N]`` discounted reward-to-go of every step; at a time-limit cut it ends with gamma * V(s_final).

    The bootstrap applies only with a value function and ``config.bootstrap_truncated``; otherwise the return
    at a cut is the Monte-Carlo sum up to the cut.
    """
    if value_function is None or not config.bootstrap_truncated or not (batch.truncated & batch.mask).any():
        return discounted_returns(batch.rewards, batch.dones, config.gamma)
    cut = batch.truncated & batch.dones
    device = next(value_function.parameters()).device
    bootstrap_values = torch.zeros_like(batch.rewards)
    with torch.no_grad():
        bootstrap_values[cut] = value_function(batch.next_observations(cut).to(device)).to(batch.rewards.dtype).cpu()
    return discounted_returns(
        batch.rewards, batch.dones, config.gamma, truncated=cut, bootstrap_values=bootstrap_values
    )


def policy_weights(
    batch: RolloutBatch,
    returns_TN: Tensor,
    config: TrainConfig,
    *,
    value_function: ValueFunction | None = None,
    running_mean: RunningMeanBaseline | None = None,
) -> Tensor:
    """``[T, N]`` weights of the log-probs: return, minus baseline, standardised, discounted (per ``config``).

    Args:
        batch: the collected episodes.
        returns_TN: `batch_returns` of the batch.
        config: ``reward_to_go``, ``baseline``, ``return_normalization``, ``discount_gradient`` and ``gamma``.
        value_function: needed for ``baseline="value"`` (its current estimate is used, before any fitting
            to this batch, so that the baseline does not depend on the batch's actions).
        running_mean: needed for ``baseline="running_mean"`` (its state before this batch).

    Returns:
        The weights; entries outside ``batch.mask`` are 0 and never used.
    """
    mask = batch.mask
    # the episode bookkeeping is a loop over time: computed only for the switches that need it
    per_episode = config.baseline == "leave_one_out" or config.return_normalization == "episode"
    ids = episode_ids(batch.dones, mask)[0] if per_episode else None
    steps = episode_steps(batch.dones, mask) if per_episode or config.discount_gradient else None
    weights = episode_weights(batch, returns_TN, config)
    if config.baseline == "batch_mean":
        weights = weights - batch_mean_baseline(weights, mask)
    elif config.baseline == "running_mean":
        if running_mean is None:
            raise ValueError("baseline='running_mean' needs its RunningMeanBaseline")
        weights = weights - running_mean(weights)
    elif config.baseline == "leave_one_out" and ids is not None and steps is not None:
        weights = weights - leave_one_out_baseline(weights, ids, steps, time_dependent=config.reward_to_go)
    elif config.baseline == "value":
        if value_function is None:
            raise ValueError("baseline='value' needs its ValueFunction")
        device = next(value_function.parameters()).device
        values = torch.zeros_like(weights)
        with torch.no_grad():
            values[mask] = value_function(batch.observations[mask].to(device)).to(weights.dtype).cpu()
        weights = weights - values
    if config.return_normalization == "batch":
        weights = standardize(weights, mask)
    elif config.return_normalization == "episode" and ids is not None:
        weights = standardize_per_episode(weights, ids)
    if config.discount_gradient and steps is not None:
        weights = weights * config.gamma ** steps.to(weights.dtype)
    return torch.where(mask, weights, torch.zeros_like(weights))


def episode_weights(batch: RolloutBatch, returns_TN: Tensor, config: TrainConfig) -> Tensor:
    """The return each step is credited with: ``G_t`` (``reward_to_go``) or its episode's ``G_0`` (Williams)."""
    if config.reward_to_go:
        return returns_TN
    return whole_episode_returns(returns_TN, batch.dones, batch.mask)


def make_optimizer(config: TrainConfig, parameters: Iterable[nn.Parameter]) -> EagerOptimizer:
    """The policy optimizer named by ``config.optimizer`` with learning rate ``config.lr``.

    An `EagerOptimizer`: torch.optim's arithmetic, without the ``torch._dynamo`` import torch.optim costs.
    """
    return EagerOptimizer(parameters, config.optimizer, lr=config.lr)


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
    return _valid_steps_loss(policy, batch.observations[mask], batch.actions[mask], weights_TN[mask], batch, config)


def _valid_steps_loss(
    policy: Policy, observations: Tensor, actions: Tensor, weights: Tensor, batch: RolloutBatch, config: TrainConfig
) -> tuple[Tensor, Tensor]:
    """`policy_loss` of some of ``batch``'s valid steps, reduced as if they were the whole batch."""
    device = next(policy.parameters()).device
    distribution = policy(observations.to(device))
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
    num_steps = observations.shape[0]
    chunk = LOSS_CHUNK_STEPS if num_steps > ONE_PASS_MAX_STEPS else num_steps  # one chunk: one pass
    # the mean over steps divides a chunk's sum by the chunk's size: weighted by the chunk's share of the batch
    # (the mean over episodes already divides by the batch's number of episodes); a share of 1 is exact
    per_step_mean = config.loss_reduction == "mean_over_steps"
    total_loss, total_entropy = torch.zeros(()), torch.zeros(())
    for start in range(0, num_steps, chunk):
        rows = slice(start, start + chunk)
        share = observations[rows].shape[0] / num_steps
        loss, entropy = _valid_steps_loss(policy, observations[rows], actions[rows], weights[rows], batch, config)
        loss = loss * share if per_step_mean else loss
        loss.backward()  # type: ignore[no-untyped-call]
        total_loss += loss.detach().cpu()
        total_entropy += entropy.cpu() * share
    return total_loss, total_entropy


def _step(policy: Policy, optimizer: Optimizer, loss: Tensor, config: TrainConfig) -> float:
    """Clip the gradients that ``loss`` left in the policy's ``.grad``, check them, and step; the gradient norm."""
    max_norm = math.inf if config.max_grad_norm is None else config.max_grad_norm
    grad_norm = nn.utils.clip_grad_norm_(policy.parameters(), max_norm)
    check_finite_step(loss, grad_norm, optimizer, "--lr")
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
        distribution = policy(batch.observations[t, n][None].to(device))
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


def update_baseline(
    batch: RolloutBatch,
    returns_TN: Tensor,
    config: TrainConfig,
    *,
    value_function: ValueFunction | None = None,
    value_optimizer: Optimizer | None = None,
    running_mean: RunningMeanBaseline | None = None,
) -> dict[str, float]:
    """Let the stateful baselines learn from the batch, after its weights were computed."""
    mask = batch.mask
    if config.baseline == "running_mean" and running_mean is not None:
        running_mean.update(episode_weights(batch, returns_TN, config), mask)
    if config.baseline == "value" and value_function is not None and value_optimizer is not None:
        device = next(value_function.parameters()).device
        observations = batch.observations[mask].to(device)
        targets = returns_TN[mask].to(device)
        loss, before = fit_value_function(value_function, value_optimizer, observations, targets, config.value_steps)
        variance = targets.var(correction=0)
        explained = 1.0 - float(((targets - before).var(correction=0) / variance).item()) if variance > 0 else math.nan
        return {"losses/value_loss": loss, "losses/explained_variance": explained}
    return {}
