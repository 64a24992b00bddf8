"""Stepping only the sub-envs of a `SyncVectorEnv` that a collection still needs.

A collection (`reinforce.rollout.collect.collect_groups`) admits a fixed number of episodes; a sub-env whose
last admitted episode has ended goes idle, and the collection lasts until its longest episode ends.
``SyncVectorEnv.step`` steps every sub-env all the same: the idle ones' transitions are computed and thrown away
(on Ant-v5 with the MuJoCo preset's 4 envs and 4 episodes an update, more than half of the simulated steps).
`SyncSteps` takes the steps that ``SyncVectorEnv.step`` takes for the sub-envs that are not idle (the same
calls, the same next-step autoreset, the same conversions) and leaves the idle ones where they are. The
collection's episodes, and every value it uses, are the same; only the idle entries of its buffers differ
(the observation stays, the reward is 0, the flags are false). Every collection starts from ``envs.reset``, so
an idle sub-env's untaken steps change no later collection either, where each sub-env draws its randomness from
its own ``np_random`` and a reset seed is given (as every Gymnasium env, and every seeded collection of
reinforce). Sub-envs that share a generator (NumPy's or torch's global one, a shared space's) or other state,
and collections without a reset seed, go on differently (as validly) without the idle steps' draws. A defect of
an env that only idle steps met (a ``reset`` that raises, NaN observations after an episode nobody used) is no
longer met.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv

from reinforce.errors import ReinforceError
from reinforce.rollout.masks import INFO_KEY
from reinforce.rollout.steps import env_failed, observations_error

_ARRAY_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)


class SyncSteps:
    """The steps of chosen sub-envs of a `SyncVectorEnv` with next-step autoreset, taken directly (see the module).

    Made by `SyncSteps.of` for one collection; `step` stands for ``SyncVectorEnv.step``, `steps` counts each
    sub-env's steps, `finish` puts the vector env's autoreset flags where the sub-envs are.
    """

    def __init__(self, envs: SyncVectorEnv) -> None:
        self.envs = envs
        space = envs.single_observation_space
        self.observation_shape = tuple(space.shape or ())
        self.observation_dtype = space.dtype
        self.steps = np.zeros(envs.num_envs, dtype=np.int64)
        """Each sub-env's steps so far, resets included."""

    @classmethod
    def of(cls, envs: VectorEnv[Any, Any, Any]) -> SyncSteps | None:
        """The direct steps of ``envs``, or None where they would not be ``envs.step``'s.

        That is: not a `SyncVectorEnv` itself (another class, or one inside a vector wrapper, such as the flattening
        of Dict, Tuple, MultiDiscrete and MultiBinary observations), another autoreset mode, a Gymnasium that keeps
        the autoreset flags elsewhere, or spaces other than Box, Discrete, MultiDiscrete and MultiBinary (whose
        batches are arrays of one row per sub-env).
        """
        if type(envs) is not SyncVectorEnv or envs.autoreset_mode != AutoresetMode.NEXT_STEP:
            return None
        if not isinstance(getattr(envs, "_autoreset_envs", None), np.ndarray) or not hasattr(envs, "_add_info"):
            return None  # a Gymnasium whose SyncVectorEnv keeps its autoreset flags or infos otherwise
        if type(envs.single_observation_space) not in _ARRAY_SPACES:
            return None
        if type(envs.single_action_space) not in _ARRAY_SPACES:
            return None
        return cls(envs)

    def step(
        self,
        actions: np.ndarray[Any, Any],
        stepping: np.ndarray[Any, Any],
        resetting: np.ndarray[Any, Any],
        observations: np.ndarray[Any, Any],
    ) -> tuple[Any, ...]:
        """`reinforce.rollout.steps.step_envs` for the sub-envs in ``stepping``; the others stand still.

        Args:
            actions: ``[N, ...]`` env actions (rows of the idle sub-envs are ignored).
            stepping: ``[N]`` bool, the sub-envs to step.
            resetting: ``[N]`` bool, the sub-envs whose last step ended an episode: their step is the reset
                (next-step autoreset; the action is ignored, the reward 0, the flags false).
            observations: ``[N, *obs_shape]`` the current observations, kept for the idle sub-envs.

        Returns:
            As `step_envs`: observations, float32 rewards, terminated and truncated flags, and the infos (only
            the action masks, where a sub-env gave one).
        """
        num_envs = self.envs.num_envs
        next_observations = np.array(observations, dtype=self.observation_dtype)
        rewards = np.zeros(num_envs, dtype=np.float64)
        terminated = np.zeros(num_envs, dtype=bool)
        truncated = np.zeros(num_envs, dtype=bool)
        infos: dict[str, Any] = {}
        sub_envs = self.envs.envs
        for index in np.flatnonzero(stepping).tolist():
            reset = bool(resetting[index])
            try:
                if reset:
                    observation, info = sub_envs[index].reset()
                else:
                    observation, rewards[index], terminated[index], truncated[index], info = sub_envs[index].step(
                        actions[index]
                    )
                if np.shape(observation) != self.observation_shape:
                    raise observations_error(self.envs, (num_envs, *np.shape(observation)), _call_name(reset))
                np.copyto(next_observations[index, ...], observation, casting="same_kind")
                if not isinstance(info, dict):
                    raise TypeError(f"its info is {type(info).__name__}, not a dict")
                if INFO_KEY in info:
                    infos = self.envs._add_info(infos, {INFO_KEY: info[INFO_KEY]}, index)
            except ReinforceError:
                raise
            except Exception as exc:  # the env raised, returned a 4-tuple, or a reward that is not a number
                raise env_failed(self.envs, _call_name(reset), exc) from exc
        self.steps += stepping
        return next_observations, rewards.astype(np.float32), terminated, truncated, infos

    def finish(self) -> None:
        """After the collection: the vector env resets, on its next step, every sub-env that was stepped.

        Each such sub-env's last step ended an episode (the collection ends when every admitted episode has);
        the others are as ``envs.reset`` left them.
        """
        self.envs._autoreset_envs = self.steps > 0


def _call_name(reset: bool) -> str:
    """The sub-env's call that a step made: ``reset()`` (an autoreset) or ``step()``."""
    return "reset()" if reset else "step()"
