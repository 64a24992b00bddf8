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

import gymnasium
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv
from torch import Tensor

from reinforce.core.batch import RolloutBatch
from reinforce.core.policies import Policy
from reinforce.core.textbook import LinearSoftmaxSampler
from reinforce.errors import ReinforceError
from reinforce.rollout.actions import EnvActions as EnvActions  # re-exported: collect is where users found them
from reinforce.rollout.actions import plain_categorical, sample_logits
from reinforce.rollout.actions import sample_actions as sample_actions
from reinforce.rollout.actions import to_env_actions as to_env_actions
from reinforce.rollout.gaussian_sampler import GaussianMLPSampler
from reinforce.rollout.masks import INFO_KEY, env_name, info_action_masks, mask_width, step_action_masks
from reinforce.rollout.mlp_sampler import MLPSampler
from reinforce.rollout.steps import (
    check_actions,
    check_observations,
    checked_tensors,
    env_failed,
    reset_envs,
    rollout_batch,
    stack_masks,
    step_envs,
)
from reinforce.rollout.sync_steps import SyncSteps


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
    episode ends. On the CPU, reinforce's own softmax policies take their steps outside torch
    (`reinforce.rollout.mlp_sampler.MLPSampler`, `reinforce.core.textbook.LinearSoftmaxSampler`): the same
    distribution and the same draws of torch's generator (the same actions but where float rounding differs);
    its Gaussian MLP policies without their modules and Distribution
    (`reinforce.rollout.gaussian_sampler.GaussianMLPSampler`: the same actions bit for bit).

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

    logits = plain_categorical(policy)

    def act(observations: Tensor, action_masks: Tensor | None) -> Tensor:
        if logits is not None and action_masks is None:  # the same law without a Distribution per step
            return sample_logits(logits(observations), deterministic)
        return sample_actions(policy(observations, action_masks), deterministic)

    # a small linear softmax policy samples in Python floats, reinforce's softmax MLP in NumPy (the same law and
    # draws), its Gaussian MLP by torch's functions without the modules and the Distribution (the same actions)
    sampler: Sampler | None = None
    if torch.device(device).type == "cpu":
        linear = None if deterministic else LinearSoftmaxSampler.of(policy, envs.num_envs)
        env = None if linear is None else direct_env(envs)
        if linear is not None and env is not None:
            squash = policy.action_squash
            return _collect_one_env(
                envs, env, act, linear, num_episodes, action_squash=squash, seed=seed, device=device
            )
        sampler = (
            linear
            or MLPSampler.of(policy, envs.num_envs, deterministic)
            or GaussianMLPSampler.of(policy, envs.num_envs, deterministic)
        )
    batch = collect_groups(
        envs, act, [num_episodes], action_squash=policy.action_squash, seed=seed, device=device, sampler=sampler
    )[0]
    assert batch is not None
    return batch


Sampler = Callable[[np.ndarray[Any, Any]], np.ndarray[Any, Any]]
"""The policy's actions ``[N, ...]`` for a NumPy batch of observations, computed without the policy's call
(`LinearSoftmaxSampler`, `MLPSampler`, `GaussianMLPSampler`): `collect_groups` uses it for the steps without
action masks."""

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
    sampler: Sampler | None = None,
    sizes: Sequence[int] | None = None,
) -> list[RolloutBatch | None]:
    """`collect` for ``K = len(num_episodes)`` groups of environments that share ``envs`` and one ``act`` per step.

    Group ``k`` owns ``G_k`` consecutive sub-envs (``sizes``; by default ``G = num_envs // K`` each) and collects
    exactly ``num_episodes[k]`` episodes in them, admitted as `collect` admits them (0: its envs stay idle); the
    groups are independent but for stepping together. Each group's batch is what `collect` on its ``G_k`` envs
    alone would lay out: its own ``[T_k, G_k]`` buffers, ending with its last episode.

    Args:
        envs: a vector env with next-step autoreset whose size is a multiple of ``K`` (or ``sum(sizes)``).
        act: the batched policy call (`Act`) for all ``num_envs`` environments.
        num_episodes: episodes per group (>= 0 each).
        action_squash: the policy's mapping of Box actions to the env (`EnvActions`).
        seed: passed to ``envs.reset`` (an int, or one seed per sub-env where the vector env takes a list);
            None continues the environments' random streams.
        device: where ``act`` runs.
        sampler: samples the steps without action masks in place of ``act`` (the same law and draws, see
            `LinearSoftmaxSampler`, `MLPSampler` and `GaussianMLPSampler`), or None.
        sizes: the sub-envs of each group (>= 1 each, summing to ``num_envs``); None: equal groups.

    Returns:
        One `RolloutBatch` per group, None for a group of 0 episodes.
    """
    num_envs = envs.num_envs
    groups = len(num_episodes)
    given = sizes is not None
    if sizes is None:
        sizes = [num_envs // groups] * groups if groups >= 1 and num_envs % groups == 0 else []
    if groups < 1 or len(sizes) != groups or sum(sizes) != num_envs or min(sizes) < 1 or min(num_episodes) < 0:
        raise ValueError(
            f"{num_envs} envs cannot be split into {groups} groups of {list(num_episodes)} episodes"
            + (f" of {list(sizes)} envs" if given else "")
        )
    if not any(num_episodes):
        return [None] * groups
    group_sizes = np.asarray(sizes, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(group_sizes)])
    group_of = np.repeat(np.arange(groups), group_sizes)
    wanted = np.asarray(num_episodes, dtype=np.int64)
    action_space = envs.single_action_space
    env_actions = EnvActions(action_space, action_squash)
    observations, infos = reset_envs(envs, seed)
    masks = info_action_masks(infos, action_space, envs)
    step_masks: list[np.ndarray[Any, Any] | None] = []
    started = np.minimum(group_sizes, wanted)
    active = np.arange(num_envs) - starts[group_of] < started[group_of]
    resetting = np.zeros(num_envs, dtype=bool)
    running_return = np.zeros(num_envs, dtype=np.float64)
    running_length = np.zeros(num_envs, dtype=np.int64)
    buffers: dict[str, list[np.ndarray[Any, Any]]] = {
        key: [] for key in ("observations", "actions", "rewards", "terminated", "truncated", "mask")
    }
    episodes: list[tuple[list[float], list[int], list[bool]]] = [([], [], []) for _ in range(groups)]
    sync_steps = SyncSteps.of(envs)  # the idle sub-envs of a SyncVectorEnv are not stepped
    with torch.inference_mode():
        while active.any():
            valid = active & ~resetting
            action_masks = step_action_masks(masks, valid, action_space, envs)
            step_masks.append(action_masks)
            if sampler is not None and action_masks is None:
                actions = sampler(observations)
            else:
                mask_tensor = None if action_masks is None else torch.as_tensor(action_masks, device=device)
                actions = act(torch.as_tensor(observations, device=device), mask_tensor).cpu().numpy()
            check_actions(actions, observations, envs)
            if sync_steps is None:
                next_observations, rewards, terminated, truncated, infos = step_envs(envs, env_actions.numpy(actions))
            else:
                outcome = sync_steps.step(env_actions.numpy(actions), active, resetting, observations)
                next_observations, rewards, terminated, truncated, infos = outcome
            if np.may_share_memory(next_observations, observations):
                raise ReinforceError(
                    f"{env_name(envs)} returned its last observations' array again, changed in place (a vector env "
                    "made with copy=False): make it with copy=True"
                )
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
    simulated: list[int | None] = [None] * groups  # None: every sub-env stepped every time, ``T * G``
    if sync_steps is not None:
        sync_steps.finish()
        simulated = [int(sync_steps.steps[starts[group] : starts[group + 1]].sum()) for group in range(groups)]
    stacked = {key: np.stack(values) for key, values in buffers.items()}
    tensors, last_observations = checked_tensors(stacked, observations, envs)
    all_masks = stack_masks(step_masks, num_envs, mask_width(action_space))
    if groups == 1:
        return [rollout_batch(tensors, last_observations, all_masks, episodes[0], simulated[0])]
    batches: list[RolloutBatch | None] = []
    for group in range(groups):
        columns = slice(int(starts[group]), int(starts[group + 1]))
        rows = np.flatnonzero(tensors["mask"][:, columns].any(1).numpy())
        if len(rows) == 0:
            batches.append(None)
            continue
        end = int(rows[-1]) + 1  # the group's own collection would have stopped after its last episode's end
        last = tensors["observations"][end] if end < len(step_masks) else last_observations
        batches.append(
            rollout_batch(
                {key: values[:end, columns] for key, values in tensors.items()},
                last[columns],
                None if all_masks is None else all_masks[:end, columns],
                episodes[group],
                simulated[group],
            )
        )
    return batches


def direct_env(envs: VectorEnv[Any, Any, Any]) -> gymnasium.Env[Any, Any] | None:
    """The one sub-env of a one-env `SyncVectorEnv` with next-step autoreset, which `collect` may step directly.

    None for any other vector env (more sub-envs, another class, a vector wrapper such as the flattening of
    Dict observations, another autoreset mode).
    """
    if type(envs) is not SyncVectorEnv or envs.num_envs != 1 or envs.autoreset_mode != AutoresetMode.NEXT_STEP:
        return None
    if not isinstance(getattr(envs, "_autoreset_envs", None), np.ndarray):
        return None  # a Gymnasium whose SyncVectorEnv keeps its autoreset flags elsewhere
    env: gymnasium.Env[Any, Any] = envs.envs[0]
    return env


def _collect_one_env(
    envs: VectorEnv[Any, Any, Any],
    env: gymnasium.Env[Any, Any],
    act: Act,
    sampler: LinearSoftmaxSampler,
    num_episodes: int,
    *,
    action_squash: str,
    seed: int | None,
    device: torch.device | str,
) -> RolloutBatch:
    """`collect_groups` of one group on a one-env `SyncVectorEnv` (`direct_env`), stepping its env directly.

    For one env, ``SyncVectorEnv.step`` costs many times the env's own step (its infos, the concatenation and
    copy of the observations), and the general loop's arrays of one element cost more than the short
    corridor's steps (docs/benchmarks.md, "The textbook per-step mode"). This loop takes the steps the vector
    env would take, with Python values: the same reset (through ``envs``, with ``seed``), the same next-step
    autoreset (the step after an episode's end is the env's ``reset()``, reward 0, flags false, its action
    drawn and ignored), the same draws (``sampler``, or ``act`` under an action mask) and so the same batch
    (tests/unit/test_textbook.py compares them). At the end it sets the vector env's autoreset flag as its own
    step would have (the next ``envs.step`` resets; `collect` resets anyway).
    """
    action_space, observation_space = envs.single_action_space, envs.single_observation_space
    shape = (1, *(observation_space.shape or ()))
    identity = isinstance(action_space, spaces.Discrete) and not action_space.start  # as EnvActions.numpy's
    env_actions = None if identity else EnvActions(action_space, action_squash)
    observations, infos = reset_envs(envs, seed)
    masks = info_action_masks(infos, action_space, envs)
    step_masks: list[np.ndarray[Any, Any] | None] = []
    buffers: dict[str, list[Any]] = {
        key: [] for key in ("observations", "actions", "rewards", "terminated", "truncated", "mask")
    }
    started, resetting = 1, False
    with torch.inference_mode():
        while True:
            valid = not resetting
            action_masks = None if masks is None else step_action_masks(masks, np.array([valid]), action_space, envs)
            step_masks.append(action_masks)
            if action_masks is None:
                actions = sampler(observations)
            else:
                mask_tensor = torch.as_tensor(action_masks, device=device)
                actions = act(torch.as_tensor(observations, device=device), mask_tensor).cpu().numpy()
            try:
                if resetting:  # next-step autoreset: the action is ignored
                    observation, info = env.reset()
                    reward, terminated, truncated = 0.0, False, False
                else:
                    env_action = actions[0] if env_actions is None else env_actions.numpy(actions)[0]
                    observation, env_reward, env_terminated, env_truncated, info = env.step(env_action)
                    reward, terminated, truncated = float(env_reward), bool(env_terminated), bool(env_truncated)
                next_observations = np.array(observation, dtype=observation_space.dtype)[None]
            except ReinforceError:
                raise
            except Exception as exc:  # the env raised, returned a 4-tuple, or a reward that is not a number
                raise env_failed(envs, "reset()" if resetting else "step()", exc) from exc
            if next_observations.shape != shape:
                check_observations(envs, next_observations, "reset()" if resetting else "step()")
            masks = None if INFO_KEY not in info else info_action_masks(envs._add_info({}, info, 0), action_space, envs)
            buffers["observations"].append(observations)
            buffers["actions"].append(actions)
            buffers["rewards"].append(reward)
            buffers["terminated"].append(terminated)
            buffers["truncated"].append(truncated and not terminated)  # a time limit on a terminal step
            buffers["mask"].append(valid)
            observations = next_observations
            resetting = valid and (terminated or truncated)
            if resetting:
                if started == num_episodes:
                    break
                started += 1
    envs._autoreset_envs[0] = True  # type: ignore[attr-defined]  # as SyncVectorEnv.step leaves it
    flags = {key: np.array(buffers[key], dtype=bool)[:, None] for key in ("terminated", "truncated", "mask")}
    rewards = np.array(buffers["rewards"], dtype=np.float64).astype(np.float32)[:, None]  # as SyncVectorEnv's
    columns = {key: np.stack(buffers[key]) for key in ("observations", "actions")} | {"rewards": rewards, **flags}
    tensors, last_observations = checked_tensors(columns, observations, envs)
    episodes: tuple[list[float], list[int], list[bool]] = ([], [], [])
    running_return, running_length = 0.0, 0
    for reward, valid, terminated, truncated in zip(
        rewards[:, 0].tolist(), buffers["mask"], buffers["terminated"], buffers["truncated"], strict=True
    ):
        if valid:  # summed in the general loop's order: float64 additions of the float32 rewards
            running_return += reward
            running_length += 1
            if terminated or truncated:
                episodes[0].append(running_return)
                episodes[1].append(running_length)
                episodes[2].append(truncated)
                running_return, running_length = 0.0, 0
    return rollout_batch(tensors, last_observations, stack_masks(step_masks, 1, mask_width(action_space)), episodes)
