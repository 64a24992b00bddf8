"""Batched collection of complete episodes from a Gymnasium vector env.

How episodes are chosen, so that none is dropped, counted twice, or picked for being short:

* every call starts from ``envs.reset()``, so no episode straddles two updates;
* the first ``min(num_envs, num_episodes)`` environments start an episode at once; whenever an episode ends,
  its environment starts another one only while fewer than ``num_episodes`` have been started, otherwise it
  goes idle; the call returns when every started episode has ended. Episodes are admitted when they
  *start*, never for finishing first, so the batch is not biased towards short episodes;
* Gymnasium 1.x's next-step autoreset spends the step after an episode's end on the reset (the action is
  ignored, the reward is 0): that step, and every step of an idle environment, has ``mask`` false and never
  enters the loss or the statistics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import VectorEnv
from torch import Tensor
from torch.distributions import Bernoulli, Categorical, Distribution, Independent

from reinforce.errors import NonFiniteError
from reinforce.policies import Policy, unsupported_action_space


@dataclass(frozen=True)
class RolloutBatch:
    """Complete episodes laid out in ``[T, N]`` buffers (time, environment) with a validity mask."""

    observations: Tensor
    """``[T, N, *obs_shape]`` observation at which each action was taken."""
    actions: Tensor
    """``[T, N]`` (Discrete) or ``[T, N, D]`` (MultiDiscrete indices from 0, MultiBinary bits, Box) actions as
    sampled: before any clipping, and for ``action_squash="tanh"`` the pre-squash Gaussian value."""
    rewards: Tensor
    """``[T, N]`` float32 reward received after each action."""
    terminated: Tensor
    """``[T, N]`` bool: the env reached a terminal state after step t (as reported on every stepped
    transition, idle ones included: combine with ``mask``, as `dones` does)."""
    truncated: Tensor
    """``[T, N]`` bool: the env was cut (time limit) after step t without reaching a terminal state (a cut
    that falls on a terminal step counts as terminated only); unmasked like ``terminated``."""
    mask: Tensor
    """``[T, N]`` bool: step t of env n belongs to one of the batch's episodes (false on reset and idle steps)."""
    last_observations: Tensor
    """``[N, *obs_shape]`` observations returned by the last step (see `RolloutBatch.next_observations`)."""
    episode_returns: list[float]
    """Undiscounted return of each episode, in order of completion."""
    episode_lengths: list[int]
    """Length of each episode, in the same order."""
    episode_truncated: list[bool]
    """Whether each episode ended by truncation, in the same order."""
    simulated_steps: int | None = None
    """Env transitions computed to collect the batch, reset and idle steps included (None: ``T * N``; less
    for a batch assembled from several workers' batches of different lengths, see `concatenate_batches`)."""

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
    concatenated in the order of ``batches``.
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


def to_env_actions(
    actions: np.ndarray[Any, Any], action_space: spaces.Space[Any], squash: str = "clip"
) -> np.ndarray[Any, Any]:
    """Map a batch of policy actions ``[N, ...]`` to what the vector env expects.

    ``Discrete`` and ``MultiDiscrete`` actions are shifted by the space's ``start`` (and reshaped to a
    MultiDiscrete space's shape); ``MultiBinary`` bits are reshaped and cast to the space's dtype. ``Box``
    actions are reshaped to the space's shape, then with ``squash="clip"`` clipped to its bounds (the
    unclipped sample is the one whose log-prob is trained on), with ``squash="tanh"`` mapped from the
    pre-squash value ``u`` to ``low + (tanh(u) + 1) / 2 * (high - low)``.
    """
    if isinstance(action_space, spaces.Discrete):
        return actions + int(action_space.start) if action_space.start else actions
    if isinstance(action_space, spaces.MultiDiscrete):
        indices: np.ndarray[Any, Any] = actions.reshape((actions.shape[0], *action_space.shape)) + action_space.start
        return indices.astype(action_space.dtype, copy=False)
    if isinstance(action_space, spaces.MultiBinary):
        return actions.reshape((actions.shape[0], *action_space.shape)).astype(action_space.dtype)
    if isinstance(action_space, spaces.Box):
        shaped = actions.reshape((actions.shape[0], *action_space.shape))
        if squash == "tanh":
            low, high = action_space.low.astype(np.float64), action_space.high.astype(np.float64)
            squashed = low + (np.tanh(shaped.astype(np.float64)) + 1.0) / 2.0 * (high - low)
            return np.clip(squashed, action_space.low, action_space.high).astype(action_space.dtype)
        return np.clip(shaped, action_space.low, action_space.high).astype(action_space.dtype, copy=False)
    raise unsupported_action_space(action_space)


def sample_actions(distribution: Distribution, deterministic: bool = False) -> Tensor:
    """Actions from ``distribution``: its mode if ``deterministic``, else a sample.

    A Categorical (or independent Categoricals, for MultiDiscrete) is sampled by inverse CDF (one uniform
    per row, the first index whose cumulative probability exceeds it), which draws from the same
    distribution as ``Categorical.sample`` and is cheaper for large batches (benchmarks/sampling.py); other
    distributions use their own ``sample``. The mode of a Bernoulli bit is 1 where its probability is above
    one half (torch's ``mode`` is NaN at exactly one half).
    """
    base = distribution.base_dist if isinstance(distribution, Independent) else distribution
    if deterministic:
        if isinstance(base, Bernoulli):
            return (base.logits > 0).to(base.logits.dtype)
        return distribution.mode
    if isinstance(base, Categorical):
        # Categorical(logits=...) already normalised its logits: exp gives the probabilities without the
        # second normalisation (softmax) that `.probs` would run
        cumulative = base.logits.exp().cumsum(-1)
        # scaled by the total, so that rounding in the cumulative sum cannot push a draw past the last action
        uniform = torch.rand((*cumulative.shape[:-1], 1), device=cumulative.device, dtype=cumulative.dtype)
        uniform = uniform * cumulative[..., -1:]
        return (cumulative <= uniform).sum(-1).clamp_(max=cumulative.shape[-1] - 1)
    return distribution.sample()


def _env_name(envs: VectorEnv[Any, Any, Any]) -> str:
    spec = getattr(envs, "spec", None)
    return f"environment {spec.id}" if spec is not None else "the environment"


def check_finite(values: Tensor, what: str, envs: VectorEnv[Any, Any, Any]) -> None:
    """Raise `NonFiniteError` if float ``values`` that ``envs`` returned (``what``) hold a NaN or an infinity."""
    if values.is_floating_point() and not bool(torch.isfinite(values).all()):
        raise NonFiniteError(
            f"{_env_name(envs)} returned non-finite {what} (NaN or inf): fix or wrap the environment "
            "(e.g. clip or replace them) before training on it"
        )


def _check_actions(actions: np.ndarray[Any, Any], observations: Any, envs: VectorEnv[Any, Any, Any]) -> None:
    """Stop non-finite (continuous) actions before they reach the env, naming their cause."""
    if np.issubdtype(actions.dtype, np.floating) and not np.isfinite(actions).all():
        check_finite(torch.as_tensor(np.asarray(observations)), "observations", envs)  # the usual cause
        raise NonFiniteError(
            f"the policy produced non-finite actions for {_env_name(envs)}: its parameters have diverged; "
            "lower --lr or set --max-grad-norm"
        )


def collect(
    envs: VectorEnv[Any, Any, Any],
    policy: Policy,
    num_episodes: int,
    *,
    deterministic: bool = False,
    seed: int | None = None,
    device: torch.device | str = "cpu",
) -> RolloutBatch:
    """Run ``policy`` in ``envs`` until exactly ``num_episodes`` complete episodes have been collected.

    One batched policy call per step serves all environments; per-environment Python runs only when an
    episode ends.

    Args:
        envs: a vector env with next-step autoreset (see `reinforce.envs.make_vec_env`).
        policy: maps ``[N, *obs_shape]`` observations to a distribution over actions.
        num_episodes: number of complete episodes to return (>= 1).
        deterministic: take the distribution's mode instead of sampling (evaluation).
        seed: passed to ``envs.reset``; None continues the environments' random streams.
        device: where the policy runs.
    """
    if num_episodes < 1:
        raise ValueError(f"num_episodes must be >= 1, got {num_episodes}")
    num_envs = envs.num_envs
    action_space = envs.single_action_space
    observations, _ = envs.reset(seed=seed)
    started = min(num_envs, num_episodes)
    active = np.arange(num_envs) < started
    resetting = np.zeros(num_envs, dtype=bool)
    running_return = np.zeros(num_envs, dtype=np.float64)
    running_length = np.zeros(num_envs, dtype=np.int64)
    buffers: dict[str, list[np.ndarray[Any, Any]]] = {
        key: [] for key in ("observations", "actions", "rewards", "terminated", "truncated", "mask")
    }
    episode_returns: list[float] = []
    episode_lengths: list[int] = []
    episode_truncated: list[bool] = []
    with torch.inference_mode():
        while active.any():
            distribution = policy(torch.as_tensor(observations, device=device))
            actions = sample_actions(distribution, deterministic).cpu().numpy()
            _check_actions(actions, observations, envs)
            next_observations, rewards, terminated, truncated, _ = envs.step(
                to_env_actions(actions, action_space, policy.action_squash)
            )
            terminated = np.asarray(terminated, dtype=bool)
            # a time limit that falls on a terminal step is a termination: the state really is terminal
            truncated = np.asarray(truncated, dtype=bool) & ~terminated
            valid = active & ~resetting
            buffers["observations"].append(observations)
            buffers["actions"].append(actions)
            buffers["rewards"].append(np.asarray(rewards, dtype=np.float32))
            buffers["terminated"].append(terminated)
            buffers["truncated"].append(truncated)
            buffers["mask"].append(valid)
            running_return += np.where(valid, rewards, 0.0)
            running_length += valid
            done = valid & (terminated | truncated)
            if done.any():
                ended = np.flatnonzero(done)
                episode_returns += running_return[ended].tolist()
                episode_lengths += running_length[ended].tolist()
                episode_truncated += truncated[ended].tolist()
                running_return[ended] = 0.0
                running_length[ended] = 0
                restarts = min(len(ended), num_episodes - started)
                started += restarts
                active[ended[restarts:]] = False
            resetting = done
            observations = next_observations
    tensors = {key: torch.from_numpy(np.stack(values)) for key, values in buffers.items()}
    last_observations = torch.from_numpy(np.asarray(observations))
    # once per batch rather than per step: nothing reaches the returns or the optimizer before this
    for what, values in (("rewards", tensors["rewards"]), ("observations", tensors["observations"])):
        check_finite(values, what, envs)
    check_finite(last_observations, "observations", envs)
    return RolloutBatch(
        observations=tensors["observations"],
        actions=tensors["actions"],
        rewards=tensors["rewards"],
        terminated=tensors["terminated"],
        truncated=tensors["truncated"],
        mask=tensors["mask"],
        last_observations=last_observations,
        episode_returns=episode_returns,
        episode_lengths=episode_lengths,
        episode_truncated=episode_truncated,
    )
