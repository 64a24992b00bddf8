"""Observations as the policy takes them: one or a batch, flattened as the vector env flattens them."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.spaces.utils import flatten, flatten_space
from gymnasium.vector.utils import batch_space, iterate

from reinforce.errors import ReinforceError

FLATTENED_OBSERVATION_SPACES = (spaces.Dict, spaces.Tuple, spaces.MultiDiscrete, spaces.MultiBinary)
"""Observation spaces that `reinforce.rollout.envs.make_vec_env` flattens into a Box for the policy."""


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


def policy_observation_space(env_space: spaces.Space[Any]) -> spaces.Space[Any]:
    """The observation space the policy sees: ``env_space``, flattened as the vector env flattens it.

    Spaces of `FLATTENED_OBSERVATION_SPACES` become a Box (see `reinforce.rollout.envs.EnvSource.make`).
    """
    return flatten_space(env_space) if isinstance(env_space, FLATTENED_OBSERVATION_SPACES) else env_space


def observation_batch(env_space: spaces.Space[Any], observation: Any) -> tuple[np.ndarray[Any, Any], bool]:
    """One observation or a batch of them as the policy's ``[B, ...]`` input, and whether it was a batch.

    Args:
        env_space: the environment's single observation space (before flattening).
        observation: one observation of ``env_space`` or a batch of them; observations of the spaces that
            `reinforce.rollout.envs.make_vec_env` flattens are flattened the same way.

    Raises:
        ReinforceError: ``observation`` is not numeric, not finite, or neither of the single observation
            space's shape nor a batch ``[B, *shape]`` with ``B >= 1``; the message names the expected shape.
    """
    shape = tuple(policy_observation_space(env_space).shape or ())
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
