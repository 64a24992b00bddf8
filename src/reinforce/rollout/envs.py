"""Vectorised environments on Gymnasium's own vectorisation (``gymnasium.make_vec``)."""

from __future__ import annotations

import contextlib
import importlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

import gymnasium
import numpy as np
from gymnasium import error as gym_error
from gymnasium import spaces
from gymnasium.envs.registration import EnvSpec
from gymnasium.spaces.utils import flatten
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space, iterate

from reinforce.errors import ReinforceError


def env_spec(env_id: str) -> EnvSpec:
    """The registered spec of ``env_id``, or a `ReinforceError` that says how to find valid ids.

    ``"module:Env-v0"`` imports ``module`` first (where a custom env registers itself), as ``gymnasium.make``
    does.
    """
    module, _, name = env_id.rpartition(":")
    if module:
        try:
            importlib.import_module(module)
        except (ImportError, TypeError, ValueError) as exc:
            raise ReinforceError(
                f"cannot import {module!r} for environment {env_id!r} ({exc}): check the module is importable"
            ) from None
    try:
        return gymnasium.spec(name)
    except gym_error.Error as exc:
        raise ReinforceError(
            f"unknown environment {env_id!r} ({str(exc).strip().splitlines()[0]}): "
            "list the registered ids with `python -c 'import gymnasium; gymnasium.pprint_registry()'`"
        ) from None


@contextlib.contextmanager
def _workers_ignore_signals(active: bool) -> Iterator[None]:
    """Ignore SIGINT and SIGHUP while async workers are started, so that they inherit the disposition.

    Ctrl-C in a terminal, and SIGHUP when the terminal closes, reach the whole process group; the workers must
    not die of them, so that the main process can finish its update and write the checkpoint. SIGTERM is left
    alone (Gymnasium terminates stuck workers with it): send it to the main process only, not to the group.
    """
    if not active or threading.current_thread() is not threading.main_thread():
        yield
        return
    numbers = [getattr(signal, name) for name in ("SIGINT", "SIGHUP") if hasattr(signal, name)]
    previous = {number: signal.signal(number, signal.SIG_IGN) for number in numbers}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)


def make_vec_env(
    env_id: str,
    num_envs: int,
    *,
    vectorization_mode: str = "auto",
    render_mode: str | None = None,
) -> VectorEnv[Any, Any, Any]:
    """``num_envs`` copies of ``env_id`` in one vector env with next-step autoreset.

    Args:
        env_id: a registered Gymnasium id such as ``"CartPole-v1"``.
        num_envs: number of sub-environments.
        vectorization_mode: ``"auto"`` uses the env's own vectorised class where the spec has a
            ``vector_entry_point`` (CartPole does) and ``SyncVectorEnv`` otherwise; or ``"vector_entry_point"``,
            ``"sync"``, ``"async"``.
        render_mode: passed to the environments (``"rgb_array"`` for video).

    Dict, Tuple, MultiDiscrete and MultiBinary observations are flattened into a Box by Gymnasium's own
    ``gymnasium.wrappers.vector.FlattenObservation`` (`FLATTENED_OBSERVATION_SPACES`): Discrete and
    MultiDiscrete parts become one-hot vectors, the rest is concatenated.

    Raises:
        ReinforceError: unknown id, a missing optional dependency, or an autoreset mode other than next-step.
    """
    spec = env_spec(env_id)
    mode: str | None = vectorization_mode
    if mode == "auto":
        mode = "vector_entry_point" if spec.vector_entry_point is not None else "sync"
    vector_kwargs = {} if mode == "vector_entry_point" else {"autoreset_mode": AutoresetMode.NEXT_STEP}
    kwargs: dict[str, Any] = {} if render_mode is None else {"render_mode": render_mode}
    try:
        with _workers_ignore_signals(mode == "async"):
            envs = gymnasium.make_vec(
                env_id, num_envs=num_envs, vectorization_mode=mode, vector_kwargs=vector_kwargs, **kwargs
            )
    except gym_error.DependencyNotInstalled as exc:
        raise ReinforceError(
            f"{env_id} needs an optional dependency ({str(exc).strip().splitlines()[0]}): install it first"
        ) from None
    except ImportError as exc:
        raise ReinforceError(f"{env_id} needs a package that is not installed ({exc}): install it first") from None
    except gym_error.Error as exc:
        raise ReinforceError(
            f"cannot vectorise {env_id} with vectorization_mode={vectorization_mode} ({exc}): "
            "set vectorization_mode='sync'",
            fields=("vectorization_mode",),
        ) from None
    autoreset = envs.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
    if autoreset != AutoresetMode.NEXT_STEP:
        envs.close()
        raise ReinforceError(
            f"{env_id}'s vector env uses autoreset mode {autoreset}, reinforce needs next-step autoreset: "
            "set vectorization_mode='sync'",
            fields=("vectorization_mode",),
        )
    if isinstance(envs.single_observation_space, FLATTENED_OBSERVATION_SPACES):
        from gymnasium.wrappers.vector import FlattenObservation

        try:
            envs = FlattenObservation(envs)
        except Exception as exc:  # a nested space Gymnasium cannot flatten (Graph, Sequence, ...)
            envs.close()
            raise ReinforceError(
                f"cannot flatten {env_id}'s observation space {envs.single_observation_space} ({exc}): "
                "reinforce handles Box, Discrete, MultiDiscrete, MultiBinary and Dict/Tuple of them"
            ) from None
    return envs


FLATTENED_OBSERVATION_SPACES = (spaces.Dict, spaces.Tuple, spaces.MultiDiscrete, spaces.MultiBinary)
"""Observation spaces that `make_vec_env` flattens into a Box for the policy."""


def _leading_dim(observation: Any) -> int:
    if isinstance(observation, dict):
        return _leading_dim(next(iter(observation.values())))
    if isinstance(observation, tuple):
        return _leading_dim(observation[0])
    return len(observation)


def flatten_observations(space: spaces.Space[Any], observation: Any) -> tuple[np.ndarray[Any, Any], bool]:
    """Flatten one observation of ``space`` (or a batch, as a vector env returns it) as the env wrapper does.

    Returns:
        The ``[B, features]`` flattened batch (``B = 1`` for one observation) and whether a batch was given.
    """
    if space.contains(observation):
        return np.asarray(flatten(space, observation))[None], False
    batched_space = batch_space(space, _leading_dim(observation))
    return np.stack([np.asarray(flatten(space, item)) for item in iterate(batched_space, observation)]), True


def observation_batch(envs: VectorEnv[Any, Any, Any], observation: Any) -> tuple[np.ndarray[Any, Any], bool]:
    """One observation or a batch of them as the policy's ``[B, ...]`` input, and whether it was a batch.

    Observations of the spaces that `make_vec_env` flattens are flattened the same way.

    Raises:
        ReinforceError: ``observation`` is not numeric, not finite, or neither of the single observation
            space's shape nor a batch ``[B, *shape]`` with ``B >= 1``; the message names the expected shape.
    """
    env_space = envs.unwrapped.single_observation_space
    shape = tuple(envs.single_observation_space.shape or ())
    expected = f"one observation of shape {shape} or a batch of shape (B, {', '.join(map(str, shape))}) with B >= 1"
    if isinstance(env_space, FLATTENED_OBSERVATION_SPACES):
        try:
            observations, batched = flatten_observations(env_space, observation)
        except (ValueError, TypeError, KeyError, IndexError, AssertionError, StopIteration):
            raise ReinforceError(
                f"the observation does not fit the observation space {env_space}: give one observation of it "
                "or a batch of them"
            ) from None
        if observations.shape[0] < 1:
            raise ReinforceError(f"the observation batch is empty: give {expected}")
    else:
        try:
            observations = np.asarray(observation)
        except (ValueError, TypeError):
            raise ReinforceError(f"the observation is not an array (a ragged list?): give {expected}") from None
        if observations.dtype.kind not in "biuf":
            raise ReinforceError(f"the observation is not numeric (dtype {observations.dtype}): give {expected}")
        batched = observations.ndim == len(shape) + 1 and observations.shape[0] >= 1
        if observations.shape != shape and not (batched and observations.shape[1:] == shape):
            raise ReinforceError(f"the observation has shape {observations.shape}: give {expected}")
        observations = observations if batched else observations[None]
    if observations.dtype.kind == "f" and not np.isfinite(observations).all():
        raise ReinforceError(f"the observation holds NaN or infinite values: give finite ones ({expected})")
    return observations, batched
