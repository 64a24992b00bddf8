"""The checked calls to a vector env that collection makes, and the `RolloutBatch` built from what they returned.

An exception of the env's own, or what it returned in the wrong shape or with NaNs, becomes a `ReinforceError`
(`NonFiniteError`) naming the env and the fix.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium.vector import VectorEnv
from torch import Tensor

from reinforce.core.batch import RolloutBatch
from reinforce.errors import NonFiniteError, ReinforceError
from reinforce.imports import first_line
from reinforce.rollout.masks import env_name


def check_finite(values: Tensor, what: str, envs: VectorEnv[Any, Any, Any]) -> None:
    """Raise `NonFiniteError` if float ``values`` that ``envs`` returned (``what``) hold a NaN or an infinity."""
    if values.is_floating_point() and not bool(torch.isfinite(values).all()):
        raise NonFiniteError(
            f"{env_name(envs)} returned non-finite {what} (NaN or inf): fix or wrap the environment "
            "(e.g. clip or replace them) before training on it"
        )


def check_actions(actions: np.ndarray[Any, Any], observations: Any, envs: VectorEnv[Any, Any, Any]) -> None:
    """Stop non-finite (continuous) actions before they reach the env, naming their cause."""
    if actions.dtype.kind == "f" and not np.isfinite(actions).all():  # the kind: a cheaper test, every step
        check_finite(torch.as_tensor(np.asarray(observations)), "observations", envs)  # the usual cause
        raise NonFiniteError(
            f"the policy produced non-finite actions for {env_name(envs)}: its parameters have diverged; "
            "lower lr or set max_grad_norm",
            fields=("lr", "max_grad_norm"),
        )


def env_failed(envs: VectorEnv[Any, Any, Any], call: str, exc: BaseException) -> ReinforceError:
    """The error for an exception that ``envs`` raised (or caused) in ``call``."""
    return ReinforceError(f"{env_name(envs)} failed in {call} ({first_line(exc)}): fix the environment")


def reset_envs(envs: VectorEnv[Any, Any, Any], seed: int | list[int] | None) -> tuple[Any, Any]:
    """``envs.reset(seed=seed)``: observations and infos; an exception of the env's own becomes a `ReinforceError`."""
    try:
        observations, infos = envs.reset(seed=seed)  # type: ignore[arg-type]  # sync and async: a seed per env
    except ReinforceError:
        raise
    except Exception as exc:  # the environment's code (a user's), or what it returned (not a pair)
        raise env_failed(envs, "reset()", exc) from exc
    check_observations(envs, observations, "reset()")
    return observations, infos


def step_envs(envs: VectorEnv[Any, Any, Any], actions: np.ndarray[Any, Any]) -> tuple[Any, ...]:
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
        raise env_failed(envs, "step()", exc) from exc
    shape = (envs.num_envs,)
    if rewards.shape != shape or terminated.shape != shape or truncated.shape != shape:
        raise ReinforceError(
            f"{env_name(envs)} returned rewards or flags of shape {rewards.shape}/{terminated.shape}/"
            f"{truncated.shape} from step(), not one per environment {shape}: return a float reward and bools"
        )
    check_observations(envs, observations, "step()")
    return observations, rewards, terminated, truncated, infos


def check_observations(envs: VectorEnv[Any, Any, Any], observations: Any, call: str) -> None:
    """Raise a `ReinforceError` unless ``observations`` from ``call`` are numbers of the shape the space says."""
    expected = (envs.num_envs, *(envs.single_observation_space.shape or ()))
    shape = getattr(observations, "shape", None)
    if shape != expected or getattr(observations, "dtype", np.dtype(object)).kind not in "biuf":
        raise observations_error(envs, shape, call)


def observations_error(envs: VectorEnv[Any, Any, Any], shape: Any, call: str) -> ReinforceError:
    """The error for observations of ``shape`` (``[N, ...]``) from ``call`` that ``envs``' space does not allow."""
    expected = tuple(envs.single_observation_space.shape or ())
    return ReinforceError(
        f"{env_name(envs)} returned observations of shape {shape} from {call}, not {expected} per "
        f"environment as its observation space {envs.single_observation_space} says: fix the environment"
    )


def checked_tensors(
    arrays: dict[str, np.ndarray[Any, Any]], last_observations: Any, envs: VectorEnv[Any, Any, Any]
) -> tuple[dict[str, Tensor], Tensor]:
    """The ``[T, N, ...]`` arrays of a collection and its last observations as tensors, checked finite."""
    last = np.asarray(last_observations)
    # once per batch rather than per step: nothing reaches the returns or the optimizer before this
    checked = (("rewards", arrays["rewards"]), ("observations", arrays["observations"]), ("observations", last))
    for what, values in checked:
        if values.dtype.kind == "f" and not np.isfinite(values).all():  # check_finite's test, in NumPy
            check_finite(torch.from_numpy(values), what, envs)
    return {key: torch.from_numpy(values) for key, values in arrays.items()}, torch.from_numpy(last)


def rollout_batch(
    tensors: dict[str, Tensor],
    last_observations: Tensor,
    action_masks: Tensor | None,
    episodes: tuple[list[float], list[int], list[bool]],
    simulated_steps: int | None = None,
) -> RolloutBatch:
    """The `RolloutBatch` of ``[T, N]`` buffers and the episodes that ended in them (``simulated_steps``: see there)."""
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
        simulated_steps=simulated_steps,
    )


def stack_masks(step_masks: list[np.ndarray[Any, Any] | None], num_envs: int, width: int | None) -> Tensor | None:
    """``[T, N, width]`` bool masks of the steps (all true where a step had none); None if none had any."""
    if width is None or all(masks is None for masks in step_masks):
        return None
    everything = np.ones((num_envs, width), dtype=bool)
    return torch.from_numpy(np.stack([everything if masks is None else masks for masks in step_masks]))
