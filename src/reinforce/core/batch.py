"""`RolloutBatch`: complete episodes in ``[T, N]`` buffers (time, environment) with a validity mask."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class RolloutBatch:
    """Complete episodes laid out in ``[T, N]`` buffers (time, environment) with a validity mask.

    Example:
        >>> agent = reinforce.Reinforce("CartPole-v1", seed=0, num_envs=4)
        >>> batch = reinforce.collect(agent.envs, agent.policy, 4, seed=0)
        >>> batch.rewards.shape[1], len(batch.episode_returns), int(batch.mask.sum()) == batch.num_steps
        (4, 4, True)
    """

    observations: Tensor
    """``[T, N, *obs_shape]`` observation at which each action was taken."""
    actions: Tensor
    """``[T, N]`` (Discrete) or ``[T, N, D]`` (MultiDiscrete indices from 0, MultiBinary bits, Box) actions as
    sampled: before any clipping, and for ``action_squash="tanh"`` the pre-squash Gaussian value."""
    rewards: Tensor
    """``[T, N]`` float32 reward received after each action."""
    terminated: Tensor
    """``[T, N]`` bool: the env reached a terminal state after step t (as reported on every stepped
    transition, idle ones included, false where an idle env was not stepped: combine with ``mask``, as `dones`
    does)."""
    truncated: Tensor
    """``[T, N]`` bool: the env was cut (time limit) after step t without reaching a terminal state (a cut
    that falls on a terminal step counts as terminated only); unmasked like ``terminated``."""
    mask: Tensor
    """``[T, N]`` bool: step t of env n belongs to one of the batch's episodes (false on reset and idle steps)."""
    last_observations: Tensor
    """``[N, *obs_shape]`` observations returned by the last step (see `RolloutBatch.next_observations`); for an
    env idle at that step and not stepped (`reinforce.rollout.sync_steps`), the last observation it returned."""
    episode_returns: list[float]
    """Undiscounted return of each episode, in order of completion (worker by worker in a joined batch, see
    `concatenate_batches`)."""
    episode_lengths: list[int]
    """Length of each episode, in the same order."""
    episode_truncated: list[bool]
    """Whether each episode ended by truncation, in the same order."""
    simulated_steps: int | None = None
    """Env transitions computed to collect the batch, reset and idle steps included (None: ``T * N``; less
    where idle sub-envs were not stepped, see `reinforce.rollout.sync_steps`, and for a batch assembled from
    several workers' batches of different lengths, see `concatenate_batches`)."""
    action_masks: Tensor | None = None
    """``[T, N, width]`` bool: the action mask each action was drawn under (true: allowed; ``width`` is ``n``
    for Discrete, ``sum(nvec)`` for MultiDiscrete, see `reinforce.rollout.masks`), every action allowed on steps
    whose env gave none; None where the env gives no masks. The loss evaluates the policy under the same masks."""

    @property
    def dones(self) -> Tensor:
        """``[T, N]`` bool: a batch episode ends after step t (terminated or truncated)."""
        return (self.terminated | self.truncated) & self.mask

    def next_observations(self, where: Tensor) -> Tensor:
        """``[K, *obs_shape]`` observations returned by the K steps where the ``[T, N]`` bool ``where`` is true.

        With next-step autoreset, where an episode ends after step t this is the episode's final observation
        (the state a time-limit cut leaves the agent in), since the reset happens on the following step. Only
        the selected rows are gathered.
        """
        t, n = where.nonzero(as_tuple=True)
        following = self.observations[(t + 1).clamp(max=self.observations.shape[0] - 1), n]
        at_end = t == self.observations.shape[0] - 1
        following[at_end] = self.last_observations[n[at_end]]
        return following

    @property
    def num_steps(self) -> int:
        """Number of valid steps (env transitions that belong to the batch's episodes)."""
        return int(self.mask.sum())

    @property
    def num_simulated_steps(self) -> int:
        """Number of env transitions computed for the batch (`simulated_steps`)."""
        return self.mask.numel() if self.simulated_steps is None else self.simulated_steps


def _pad_time(values: Tensor, length: int, fill: Tensor) -> Tensor:
    """``values`` ``[T, N, ...]`` extended to ``[length, N, ...]`` with rows of ``fill`` (``[N, ...]``)."""
    missing = length - values.shape[0]
    if missing == 0:
        return values
    return torch.cat([values, fill.unsqueeze(0).expand(missing, *fill.shape)])


def concatenate_batches(batches: Sequence[RolloutBatch]) -> RolloutBatch:
    """One batch holding the episodes of ``batches`` (e.g. one per Ray worker), their environments side by side.

    Shorter batches are padded in time to the longest one with masked steps (zero reward and action, not
    terminated, not truncated), whose observations repeat the batch's ``last_observations``, so that
    `RolloutBatch.next_observations` still finds each episode's final observation. Masked steps never enter
    the loss or the statistics, so the padding changes nothing but the buffers' length; the episode lists are
    concatenated in the order of ``batches``. Action masks are joined too (every action allowed on padded
    steps, and in a batch without masks, if another batch has some).
    """
    if not batches:
        raise ValueError("concatenate_batches needs at least one batch")
    if len(batches) == 1:
        return batches[0]
    length = max(batch.mask.shape[0] for batch in batches)

    def joined(name: str) -> Tensor:
        parts = []
        for batch in batches:
            values = getattr(batch, name)
            fill = batch.last_observations if name == "observations" else values.new_zeros(values.shape[1:])
            parts.append(_pad_time(values, length, fill))
        return torch.cat(parts, dim=1)

    return RolloutBatch(
        action_masks=_joined_masks(batches, length),
        observations=joined("observations"),
        actions=joined("actions"),
        rewards=joined("rewards"),
        terminated=joined("terminated"),
        truncated=joined("truncated"),
        mask=joined("mask"),
        last_observations=torch.cat([batch.last_observations for batch in batches]),
        episode_returns=[value for batch in batches for value in batch.episode_returns],
        episode_lengths=[value for batch in batches for value in batch.episode_lengths],
        episode_truncated=[value for batch in batches for value in batch.episode_truncated],
        simulated_steps=sum(batch.num_simulated_steps for batch in batches),
    )


def _joined_masks(batches: Sequence[RolloutBatch], length: int) -> Tensor | None:
    """The ``[length, sum N, width]`` action masks of `concatenate_batches`; None if no batch has masks."""
    given = [batch.action_masks for batch in batches if batch.action_masks is not None]
    if not given:
        return None
    width = given[0].shape[-1]
    parts = []
    for batch in batches:
        masks = batch.action_masks
        if masks is None:
            masks = torch.ones((*batch.mask.shape, width), dtype=torch.bool)
        parts.append(_pad_time(masks, length, masks.new_ones(masks.shape[1:])))
    return torch.cat(parts, dim=1)
