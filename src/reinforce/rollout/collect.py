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

Action masks (Discrete and MultiDiscrete actions, `reinforce.rollout.masks`): the mask in the info of
``reset`` and of each step goes with the observation returned with it; the policy samples under it, and the
batch keeps it (``action_masks``) so that the loss evaluates the same masked distribution.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import VectorEnv
from torch import Tensor, nn
from torch.distributions import Bernoulli, Categorical, Distribution, Independent

from reinforce.core.batch import RolloutBatch
from reinforce.core.distributions import MaskedCategorical
from reinforce.core.policies import Policy, unsupported_action_space
from reinforce.errors import NonFiniteError, ReinforceError
from reinforce.imports import first_line
from reinforce.rollout.masks import env_name, info_action_masks, mask_width, step_action_masks


class EnvActions(nn.Module):
    """Maps a batch of the policy's actions ``[N, ...]`` to the env's actions, in torch.

    The one definition of that mapping: `collect` and `Reinforce.predict` run it (through `numpy`), and an
    exported policy (`reinforce.export`) contains it. ``Discrete`` and ``MultiDiscrete`` actions are shifted by
    the space's ``start`` (and reshaped to a MultiDiscrete space's shape); ``MultiBinary`` bits are reshaped.
    ``Box`` actions are reshaped to the space's shape, then with ``squash="clip"`` clipped to its bounds (the
    unclipped sample is the one whose log-prob is trained on), with ``squash="tanh"`` mapped from the
    pre-squash value ``u`` to ``low + (tanh(u) + 1) / 2 * (high - low)`` (in float64). The result is int64
    for the discrete spaces and float64 for Box; `numpy` casts it to the space's dtype.

    Raises:
        ReinforceError: an action space reinforce has no policy for.
    """

    start: Tensor | None
    low: Tensor
    high: Tensor

    def __init__(self, action_space: spaces.Space[Any], squash: str = "clip") -> None:
        super().__init__()
        if not isinstance(action_space, (spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary, spaces.Box)):
            raise unsupported_action_space(action_space)
        self.action_space = action_space
        self.shape = tuple(action_space.shape or ())
        self.squash = squash
        if isinstance(action_space, (spaces.Discrete, spaces.MultiDiscrete)):
            start = np.asarray(action_space.start, dtype=np.int64)
            self.register_buffer("start", torch.as_tensor(start) if start.any() else None, persistent=False)
        if isinstance(action_space, spaces.Box):
            self.register_buffer("low", torch.as_tensor(action_space.low, dtype=torch.float64), persistent=False)
            self.register_buffer("high", torch.as_tensor(action_space.high, dtype=torch.float64), persistent=False)

    def forward(self, actions: Tensor) -> Tensor:
        """The env's actions (int64, or float64 for Box) for the policy's actions ``[N, ...]``."""
        if isinstance(self.action_space, spaces.Discrete):
            indices = actions.long()
            return indices if self.start is None else indices + self.start
        shaped = actions.reshape((-1, *self.shape))
        if isinstance(self.action_space, spaces.MultiDiscrete):
            return shaped.long() if self.start is None else shaped.long() + self.start
        if isinstance(self.action_space, spaces.MultiBinary):
            return shaped.long()
        values = shaped.double()
        if self.squash == "tanh":
            values = self.low + (torch.tanh(values) + 1.0) / 2.0 * (self.high - self.low)
        return torch.clamp(values, self.low, self.high)

    def numpy(self, actions: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """The env's actions for a NumPy batch of the policy's actions, in the action space's dtype."""
        if isinstance(self.action_space, spaces.Discrete) and self.start is None:  # the mapping is the identity
            return np.asarray(actions).astype(self.action_space.dtype, copy=False)
        # forward, not __call__: no hooks to run, and this is once per vector step of every collection
        env_actions: np.ndarray[Any, Any] = self.forward(torch.from_numpy(np.asarray(actions))).numpy()
        return env_actions.astype(self.action_space.dtype, copy=False)


def to_env_actions(
    actions: np.ndarray[Any, Any], action_space: spaces.Space[Any], squash: str = "clip"
) -> np.ndarray[Any, Any]:
    """Map a batch of policy actions ``[N, ...]`` to what the vector env expects (see `EnvActions`)."""
    return EnvActions(action_space, squash).numpy(actions)


def sample_actions(distribution: Distribution, deterministic: bool = False, uniform: Tensor | None = None) -> Tensor:
    """Actions from ``distribution``: its mode if ``deterministic``, else a sample.

    A Categorical (or independent Categoricals, for MultiDiscrete) is sampled by inverse CDF (one uniform
    per row, the first index whose cumulative probability exceeds it), which draws from the same
    distribution as ``Categorical.sample`` and is cheaper for large batches (benchmarks/sampling.py); other
    distributions use their own ``sample``. The mode of a Bernoulli bit is 1 where its probability is above
    one half (torch's ``mode`` is NaN at exactly one half). ``uniform``: the Categorical's uniforms in [0, 1),
    ``[*batch, 1]`` (`categorical_shape`), drawn elsewhere (a population's, from each member's own generator);
    None draws them from torch's.
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
        if uniform is None:
            uniform = torch.rand((*cumulative.shape[:-1], 1), device=cumulative.device, dtype=cumulative.dtype)
        uniform = uniform * cumulative[..., -1:]
        last = cumulative.shape[-1] - 1
        indices = (cumulative <= uniform).sum(-1).clamp_(max=last)
        if isinstance(base, MaskedCategorical):
            # a masked action adds exactly 0 to the cumulative sum, so only the clamp (a draw that rounding put
            # at the very end) can land on one: such a draw takes the last valid action instead
            allowed = base.action_mask.gather(-1, indices.unsqueeze(-1)).squeeze(-1)
            last_valid = last - base.action_mask.flip(-1).to(torch.uint8).argmax(-1)
            indices = torch.where(allowed, indices, last_valid)
        return indices
    return distribution.sample()


def categorical_shape(distribution: Distribution) -> tuple[int, ...] | None:
    """The shape of `sample_actions`'s uniforms for ``distribution`` (``[*batch, 1]``), or None if it draws none."""
    base = distribution.base_dist if isinstance(distribution, Independent) else distribution
    return (*base.logits.shape[:-1], 1) if isinstance(base, Categorical) else None


def check_finite(values: Tensor, what: str, envs: VectorEnv[Any, Any, Any]) -> None:
    """Raise `NonFiniteError` if float ``values`` that ``envs`` returned (``what``) hold a NaN or an infinity."""
    if values.is_floating_point() and not bool(torch.isfinite(values).all()):
        raise NonFiniteError(
            f"{env_name(envs)} returned non-finite {what} (NaN or inf): fix or wrap the environment "
            "(e.g. clip or replace them) before training on it"
        )


def _check_actions(actions: np.ndarray[Any, Any], observations: Any, envs: VectorEnv[Any, Any, Any]) -> None:
    """Stop non-finite (continuous) actions before they reach the env, naming their cause."""
    if np.issubdtype(actions.dtype, np.floating) and not np.isfinite(actions).all():
        check_finite(torch.as_tensor(np.asarray(observations)), "observations", envs)  # the usual cause
        raise NonFiniteError(
            f"the policy produced non-finite actions for {env_name(envs)}: its parameters have diverged; "
            "lower lr or set max_grad_norm",
            fields=("lr", "max_grad_norm"),
        )


def _env_failed(envs: VectorEnv[Any, Any, Any], call: str, exc: BaseException) -> ReinforceError:
    return ReinforceError(f"{env_name(envs)} failed in {call} ({first_line(exc)}): fix the environment")


def _reset(envs: VectorEnv[Any, Any, Any], seed: int | list[int] | None) -> tuple[Any, Any]:
    """``envs.reset(seed=seed)``: observations and infos; an exception of the env's own becomes a `ReinforceError`."""
    try:
        observations, infos = envs.reset(seed=seed)  # type: ignore[arg-type]  # sync and async: a seed per env
    except ReinforceError:
        raise
    except Exception as exc:  # the environment's code (a user's), or what it returned (not a pair)
        raise _env_failed(envs, "reset()", exc) from exc
    _check_observations(envs, observations, "reset()")
    return observations, infos


def _step(envs: VectorEnv[Any, Any, Any], actions: np.ndarray[Any, Any]) -> tuple[Any, ...]:
    """``envs.step(actions)`` as checked arrays; an exception of the env's own becomes a `ReinforceError`.

    Returns:
        Observations, float32 rewards, the terminated and truncated flags as bool arrays, and the infos.
    """
    try:
        observations, rewards, terminated, truncated, infos = envs.step(actions)
        rewards = np.asarray(rewards, dtype=np.float32)
        terminated = np.asarray(terminated, dtype=bool)
        truncated = np.asarray(truncated, dtype=bool)
    except ReinforceError:
        raise
    except Exception as exc:  # the env raised, returned a 4-tuple, or rewards that are not numbers
        raise _env_failed(envs, "step()", exc) from exc
    shape = (envs.num_envs,)
    if rewards.shape != shape or terminated.shape != shape or truncated.shape != shape:
        raise ReinforceError(
            f"{env_name(envs)} returned rewards or flags of shape {rewards.shape}/{terminated.shape}/"
            f"{truncated.shape} from step(), not one per environment {shape}: return a float reward and bools"
        )
    _check_observations(envs, observations, "step()")
    return observations, rewards, terminated, truncated, infos


def _check_observations(envs: VectorEnv[Any, Any, Any], observations: Any, call: str) -> None:
    expected = (envs.num_envs, *(envs.single_observation_space.shape or ()))
    shape = getattr(observations, "shape", None)
    if shape != expected or getattr(observations, "dtype", np.dtype(object)).kind not in "biuf":
        raise ReinforceError(
            f"{env_name(envs)} returned observations of shape {shape} from {call}, not {expected[1:]} per "
            f"environment as its observation space {envs.single_observation_space} says: fix the environment"
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
        envs: a vector env with next-step autoreset (see `reinforce.rollout.envs.make_vec_env`).
        policy: maps ``[N, *obs_shape]`` observations to a distribution over actions.
        num_episodes: number of complete episodes to return (>= 1).
        deterministic: take the distribution's mode instead of sampling (evaluation).
        seed: passed to ``envs.reset``; None continues the environments' random streams.
        device: where the policy runs.

    Example:
        >>> agent = reinforce.Reinforce("CartPole-v1", seed=0, num_envs=4)
        >>> batch = reinforce.collect(agent.envs, agent.policy, num_episodes=8, seed=0)
        >>> len(batch.episode_returns)
        8
    """
    if num_episodes < 1:
        raise ValueError(f"num_episodes must be >= 1, got {num_episodes}")

    def act(observations: Tensor, action_masks: Tensor | None) -> Tensor:
        return sample_actions(policy(observations, action_masks), deterministic)

    batch = collect_groups(envs, act, [num_episodes], action_squash=policy.action_squash, seed=seed, device=device)[0]
    assert batch is not None
    return batch


Act = Callable[[Tensor, "Tensor | None"], Tensor]
"""One batched policy call: observations ``[N, *obs_shape]`` and action masks ``[N, width]`` (or None) on the
device in, the policy's actions ``[N, ...]`` out (`collect_groups`)."""


def collect_groups(
    envs: VectorEnv[Any, Any, Any],
    act: Act,
    num_episodes: Sequence[int],
    *,
    action_squash: str = "clip",
    seed: int | list[int] | None = None,
    device: torch.device | str = "cpu",
) -> list[RolloutBatch | None]:
    """`collect` for ``K = len(num_episodes)`` groups of environments that share ``envs`` and one ``act`` per step.

    Group ``k`` owns the sub-envs ``[k * G, (k + 1) * G)`` (``G = num_envs // K``) and collects exactly
    ``num_episodes[k]`` episodes in them, admitted as `collect` admits them (0: its envs stay idle); the groups
    are independent but for stepping together. Each group's batch is what `collect` on its ``G`` envs alone
    would lay out: its own ``[T_k, G]`` buffers, ending with its last episode.

    Args:
        envs: a vector env with next-step autoreset whose size is a multiple of ``K``.
        act: the batched policy call (`Act`) for all ``num_envs`` environments.
        num_episodes: episodes per group (>= 0 each).
        action_squash: the policy's mapping of Box actions to the env (`EnvActions`).
        seed: passed to ``envs.reset`` (an int, or one seed per sub-env where the vector env takes a list);
            None continues the environments' random streams.
        device: where ``act`` runs.

    Returns:
        One `RolloutBatch` per group, None for a group of 0 episodes.
    """
    num_envs = envs.num_envs
    groups = len(num_episodes)
    if groups < 1 or num_envs % groups or min(num_episodes) < 0:
        raise ValueError(f"{num_envs} envs cannot be split into {groups} groups of {list(num_episodes)} episodes")
    if not any(num_episodes):
        return [None] * groups
    size = num_envs // groups
    group_of = np.arange(num_envs) // size
    wanted = np.asarray(num_episodes, dtype=np.int64)
    action_space = envs.single_action_space
    env_actions = EnvActions(action_space, action_squash)
    observations, infos = _reset(envs, seed)
    masks = info_action_masks(infos, action_space, envs)
    step_masks: list[np.ndarray[Any, Any] | None] = []
    started = np.minimum(size, wanted)
    active = np.arange(num_envs) % size < started[group_of]
    resetting = np.zeros(num_envs, dtype=bool)
    running_return = np.zeros(num_envs, dtype=np.float64)
    running_length = np.zeros(num_envs, dtype=np.int64)
    buffers: dict[str, list[np.ndarray[Any, Any]]] = {
        key: [] for key in ("observations", "actions", "rewards", "terminated", "truncated", "mask")
    }
    episodes: list[tuple[list[float], list[int], list[bool]]] = [([], [], []) for _ in range(groups)]
    with torch.inference_mode():
        while active.any():
            valid = active & ~resetting
            action_masks = step_action_masks(masks, valid, action_space, envs)
            step_masks.append(action_masks)
            mask_tensor = None if action_masks is None else torch.as_tensor(action_masks, device=device)
            actions = act(torch.as_tensor(observations, device=device), mask_tensor).cpu().numpy()
            _check_actions(actions, observations, envs)
            next_observations, rewards, terminated, truncated, infos = _step(envs, env_actions.numpy(actions))
            masks = info_action_masks(infos, action_space, envs)
            # a time limit that falls on a terminal step is a termination: the state really is terminal
            truncated = truncated & ~terminated
            buffers["observations"].append(observations)
            buffers["actions"].append(actions)
            buffers["rewards"].append(rewards)
            buffers["terminated"].append(terminated)
            buffers["truncated"].append(truncated)
            buffers["mask"].append(valid)
            running_return += np.where(valid, rewards, 0.0)
            running_length += valid
            done = valid & (terminated | truncated)
            if done.any():
                for group in np.unique(group_of[done]) if groups > 1 else (0,):
                    ended = np.flatnonzero(done & (group_of == group))
                    returns, lengths, was_truncated = episodes[group]
                    returns += running_return[ended].tolist()
                    lengths += running_length[ended].tolist()
                    was_truncated += truncated[ended].tolist()
                    running_return[ended] = 0.0
                    running_length[ended] = 0
                    restarts = min(len(ended), int(wanted[group] - started[group]))
                    started[group] += restarts
                    active[ended[restarts:]] = False
            resetting = done
            observations = next_observations
    tensors = {key: torch.from_numpy(np.stack(values)) for key, values in buffers.items()}
    last_observations = torch.from_numpy(np.asarray(observations))
    # once per batch rather than per step: nothing reaches the returns or the optimizer before this
    for what, values in (("rewards", tensors["rewards"]), ("observations", tensors["observations"])):
        check_finite(values, what, envs)
    check_finite(last_observations, "observations", envs)
    all_masks = _stack_masks(step_masks, num_envs, mask_width(action_space))
    if groups == 1:
        return [_batch(tensors, last_observations, all_masks, episodes[0])]
    batches: list[RolloutBatch | None] = []
    for group in range(groups):
        columns = slice(group * size, (group + 1) * size)
        rows = np.flatnonzero(tensors["mask"][:, columns].any(1).numpy())
        if len(rows) == 0:
            batches.append(None)
            continue
        end = int(rows[-1]) + 1  # the group's own collection would have stopped after its last episode's end
        last = tensors["observations"][end] if end < len(step_masks) else last_observations
        batches.append(
            _batch(
                {key: values[:end, columns] for key, values in tensors.items()},
                last[columns],
                None if all_masks is None else all_masks[:end, columns],
                episodes[group],
            )
        )
    return batches


def _batch(
    tensors: dict[str, Tensor],
    last_observations: Tensor,
    action_masks: Tensor | None,
    episodes: tuple[list[float], list[int], list[bool]],
) -> RolloutBatch:
    """The `RolloutBatch` of ``[T, N]`` buffers and the episodes that ended in them."""
    return RolloutBatch(
        action_masks=action_masks,
        observations=tensors["observations"],
        actions=tensors["actions"],
        rewards=tensors["rewards"],
        terminated=tensors["terminated"],
        truncated=tensors["truncated"],
        mask=tensors["mask"],
        last_observations=last_observations,
        episode_returns=episodes[0],
        episode_lengths=episodes[1],
        episode_truncated=episodes[2],
    )


def _stack_masks(step_masks: list[np.ndarray[Any, Any] | None], num_envs: int, width: int | None) -> Tensor | None:
    """``[T, N, width]`` bool masks of the steps (all true where a step had none); None if none had any."""
    if width is None or all(masks is None for masks in step_masks):
        return None
    everything = np.ones((num_envs, width), dtype=bool)
    return torch.from_numpy(np.stack([everything if masks is None else masks for masks in step_masks]))
