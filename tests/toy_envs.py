"""Small deterministic environments whose episodes are known in advance, for exact rollout tests."""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces


class CountingEnv(gymnasium.Env[np.ndarray, np.int64]):
    """Observation = [step index within the episode, episode length]; reward at step t = t + 1.

    The episode length is drawn uniformly from 1..max_length at reset, so each sub-env of a vector env
    produces episodes of different lengths. It terminates after its length; a TimeLimit may cut it first.
    """

    def __init__(self, max_length: int = 5) -> None:
        self.max_length = max_length
        self.observation_space = spaces.Box(0.0, np.inf, shape=(2,), dtype=np.float32)
        self.action_space = spaces.Discrete(2)
        self._t = 0
        self._length = 1

    def _observation(self) -> np.ndarray:
        return np.array([self._t, self._length], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._t = 0
        self._length = int(self.np_random.integers(1, self.max_length + 1))
        return self._observation(), {}

    def step(self, action: np.int64) -> tuple[np.ndarray, float, bool, bool, dict]:
        reward = float(self._t + 1)
        self._t += 1
        return self._observation(), reward, self._t >= self._length, False, {}


class ContinuousEnv(gymnasium.Env[np.ndarray, np.ndarray]):
    """One-step-per-episode bandit with a Box(-1, 1, (2,)) action; reward = -|action - 0.5|^2, 3 steps."""

    def __init__(self) -> None:
        self.observation_space = spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self._t = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._t = 0
        return np.zeros(3, dtype=np.float32), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        assert self.action_space.contains(action), action
        self._t += 1
        reward = -float(np.sum((action - 0.5) ** 2))
        return np.full(3, self._t / 3, dtype=np.float32), reward, self._t >= 3, False, {}


class TextActionEnv(CountingEnv):
    """A counting env with an action space reinforce does not support."""

    def __init__(self) -> None:
        super().__init__()
        self.action_space = spaces.Text(5)  # type: ignore[assignment]


def register_toy_envs() -> None:
    """Register the toy envs once (idempotent)."""
    if "toy/Counting-v0" in gymnasium.registry:
        return
    gymnasium.register("toy/Counting-v0", entry_point=CountingEnv, kwargs={"max_length": 5})
    gymnasium.register(
        "toy/CountingTruncated-v0", entry_point=CountingEnv, kwargs={"max_length": 6}, max_episode_steps=3
    )
    gymnasium.register("toy/Continuous-v0", entry_point=ContinuousEnv)
    gymnasium.register("toy/TextAction-v0", entry_point=TextActionEnv)


register_toy_envs()
