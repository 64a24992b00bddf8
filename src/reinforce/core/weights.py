"""What each log-prob is multiplied by: the step's credit, minus a baseline, standardised, discounted.

The credit of step t is its discounted reward-to-go ``G_t`` (``reward_to_go``) or its episode's whole return
``G_0`` (Williams 1992); at a time-limit cut the return may end with ``gamma * V(final observation)``.
docs/concepts.md defines every switch of `TrainConfig` used here.
"""

from __future__ import annotations

import torch
from torch import Tensor

from reinforce.config import TrainConfig
from reinforce.core.baselines import Baseline
from reinforce.core.batch import RolloutBatch
from reinforce.core.returns import (
    discounted_returns,
    episode_ids,
    episode_steps,
    standardize,
    standardize_per_episode,
    whole_episode_returns,
)


def batch_returns(batch: RolloutBatch, config: TrainConfig, baseline: Baseline | None = None) -> Tensor:
    """``[T, N]`` discounted reward-to-go of every step; at a time-limit cut it ends with gamma * V(s_final).

    The bootstrap applies only with ``config.bootstrap_truncated`` and a baseline that has state values (a
    learned V); otherwise the return at a cut is the Monte-Carlo sum up to the cut.
    """
    cut = batch.truncated & batch.dones
    if baseline is None or not config.bootstrap_truncated or not (cut & batch.mask).any():
        return discounted_returns(batch.rewards, batch.dones, config.gamma)
    final_values = baseline.state_values(batch.next_observations(cut))
    if final_values is None:
        return discounted_returns(batch.rewards, batch.dones, config.gamma)
    bootstrap_values = torch.zeros_like(batch.rewards)
    bootstrap_values[cut] = final_values.to(batch.rewards.dtype)
    return discounted_returns(
        batch.rewards, batch.dones, config.gamma, truncated=cut, bootstrap_values=bootstrap_values
    )


def credit(batch: RolloutBatch, returns_TN: Tensor, config: TrainConfig) -> Tensor:
    """The return each step is credited with: ``G_t`` (``reward_to_go``) or its episode's ``G_0`` (Williams)."""
    if config.reward_to_go:
        return returns_TN
    return whole_episode_returns(returns_TN, batch.dones, batch.mask)


def policy_weights(
    batch: RolloutBatch, returns_TN: Tensor, config: TrainConfig, baseline: Baseline | None = None
) -> Tensor:
    """``[T, N]`` weights of the log-probs: credit, minus baseline, standardised, discounted (per ``config``).

    Args:
        batch: the collected episodes.
        returns_TN: `batch_returns` of the batch.
        config: ``reward_to_go``, ``return_normalization``, ``discount_gradient`` and ``gamma``.
        baseline: subtracted from the credit, in its state before this batch's fit (so that it does not depend
            on the batch's actions); None for no baseline.

    Returns:
        The weights; entries outside ``batch.mask`` are 0 and never used.
    """
    mask = batch.mask
    weights = credit(batch, returns_TN, config)
    if baseline is not None:
        weights = weights - baseline(batch, weights)
    if config.return_normalization == "batch":
        weights = standardize(weights, mask)
    elif config.return_normalization == "episode":
        weights = standardize_per_episode(weights, episode_ids(batch.dones, mask)[0])
    if config.discount_gradient:
        weights = weights * config.gamma ** episode_steps(batch.dones, mask).to(weights.dtype)
    return torch.where(mask, weights, torch.zeros_like(weights))
