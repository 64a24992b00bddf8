"""Small deterministic environments whose episodes are known in advance, for exact rollout tests."""

from __future__ import annotations

import time
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


class SpacesEnv(gymnasium.Env[Any, Any]):
    """Four-step episodes with random observations of any space; it checks every action is in its space.

    The reward is the sum of the flattened action, so every action space has something to learn.
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        self.observation_space = observation_space
        self.action_space = action_space
        self._t = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.observation_space.seed(int(self.np_random.integers(2**31)))
        self._t = 0
        return self.observation_space.sample(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        assert self.action_space.contains(action), (action, self.action_space)
        self._t += 1
        reward = float(np.sum(spaces.flatten(self.action_space, action)))
        return self.observation_space.sample(), reward, self._t >= 4, False, {}


OBSERVATION_SPACES: dict[str, spaces.Space] = {
    "box": spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32),
    "discrete": spaces.Discrete(4, start=2),
    "multidiscrete": spaces.MultiDiscrete([2, 3]),
    "multibinary": spaces.MultiBinary(3),
    "dict": spaces.Dict({"position": spaces.Box(-1.0, 1.0, shape=(2,)), "mode": spaces.Discrete(3)}),
    "tuple": spaces.Tuple((spaces.Box(-1.0, 1.0, shape=(2,)), spaces.MultiBinary(2))),
    "image": spaces.Box(0, 255, shape=(12, 10, 3), dtype=np.uint8),
}
"""Observation spaces of the toy/Spaces-OBS-ACT-v0 envs."""
ACTION_SPACES: dict[str, spaces.Space] = {
    "discrete": spaces.Discrete(3, start=-1),
    "multidiscrete": spaces.MultiDiscrete([2, 3], start=[1, -1]),
    "multibinary": spaces.MultiBinary(4),
    "box": spaces.Box(np.array([-2.0, 0.0], dtype=np.float32), np.array([1.0, 0.5], dtype=np.float32)),
}
"""Action spaces of the toy/Spaces-OBS-ACT-v0 envs."""


class NanRewardEnv(CountingEnv):
    """A counting env whose third step returns a NaN reward."""

    def step(self, action: np.int64) -> tuple[np.ndarray, float, bool, bool, dict]:
        observation, reward, terminated, truncated, info = super().step(action)
        return observation, (float("nan") if self._t == 3 else reward), terminated, truncated, info


class MaskedEnv(gymnasium.Env[np.ndarray, Any]):
    """Four-step episodes where a random subset of the actions is allowed at each step; a forbidden action raises.

    The allowed actions are in ``info["action_mask"]`` (Gymnasium's form: one int8 array for Discrete, a tuple
    of one per component for MultiDiscrete) and in the observation; the reward is the sum of the action's
    indices, so the policy learns to pick the highest allowed ones. The terminal step's mask allows nothing
    (no action is expected there: the vector env's next step resets the env). ``defect="shape"`` gives masks
    one entry short; ``defect="empty"`` gives a mask that allows nothing on the third step.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}  # noqa: RUF012 (gymnasium's class attribute)

    def __init__(self, action_space: spaces.Space, defect: str | None = None, render_mode: str | None = None) -> None:
        self.render_mode = render_mode
        self.action_space = action_space
        self.defect = defect
        self.sizes = [int(action_space.n)] if isinstance(action_space, spaces.Discrete) else list(action_space.nvec)
        self.observation_space = spaces.Box(0.0, 1.0, shape=(sum(self.sizes),), dtype=np.float32)
        self._t = 0
        self._allowed: list[np.ndarray] = []

    def _draw(self) -> tuple[np.ndarray, dict]:
        self._allowed = []
        for size in self.sizes:
            allowed = self.np_random.random(size) < 0.5
            allowed[self.np_random.integers(size)] = True
            self._allowed.append(allowed.astype(np.int8))
        return self._observation(), self._info()

    def _observation(self) -> np.ndarray:
        return np.concatenate(self._allowed).astype(np.float32)

    def _info(self) -> dict:
        if self.defect == "shape":
            return {"action_mask": self._allowed[0][:-1]}
        if self.defect == "empty" and self._t == 2:
            return {"action_mask": np.zeros_like(self._allowed[0])}
        if isinstance(self.action_space, spaces.Discrete):
            return {"action_mask": self._allowed[0]}
        return {"action_mask": tuple(self._allowed)}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._t = 0
        return self._draw()

    def render(self) -> np.ndarray:
        return np.full((16, 16, 3), 40 * self._t, dtype=np.uint8)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        indices = np.atleast_1d(np.asarray(action))
        if not all(allowed[index] for allowed, index in zip(self._allowed, indices, strict=True)):
            raise ValueError(f"forbidden action {action}: allowed {self._allowed}")
        self._t += 1
        reward = float(indices.sum())
        if self._t >= 4:
            self._allowed = [np.zeros(size, dtype=np.int8) for size in self.sizes]
            return self._observation(), reward, True, False, self._info()
        observation, info = self._draw()
        return observation, reward, False, False, info


class SlowCartPole(gymnasium.Wrapper):
    """CartPole-v1 that spends ``seconds`` per step asleep: a stand-in for a slow simulator."""

    def __init__(self, seconds: float = 0.002) -> None:
        super().__init__(gymnasium.make("CartPole-v1"))
        self.seconds = seconds

    def step(self, action: Any) -> Any:
        time.sleep(self.seconds)
        return self.env.step(action)


def wide_gaussian_batch() -> tuple[Any, Any, spaces.Box]:
    """A linear Gaussian policy on toy/Continuous-v0 (bounds [-1, 1]) with log-std 1.5, wide enough that its
    samples fall outside the bounds, and 3 seeded episodes of it: (policy, batch, action space)."""
    import torch

    from reinforce import collect, make_policy
    from reinforce.rollout.envs import make_vec_env

    envs = make_vec_env("toy/Continuous-v0", 3)
    torch.manual_seed(0)
    policy = make_policy(envs.single_observation_space, envs.single_action_space, hidden_sizes=())
    with torch.no_grad():
        policy.log_std.fill_(1.5)
    batch = collect(envs, policy, 3, seed=0)
    envs.close()
    return policy, batch, envs.single_action_space


class BanditEnv(gymnasium.Env[np.ndarray, np.int64]):
    """A two-armed bandit: one step per episode, reward 1 for action 1 and 0 for action 0 (learnt in a few updates)."""

    def __init__(self) -> None:
        self.observation_space = spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)
        self.action_space = spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        return np.zeros(1, dtype=np.float32), {}

    def step(self, action: np.int64) -> tuple[np.ndarray, float, bool, bool, dict]:
        return np.zeros(1, dtype=np.float32), float(action), True, False, {}


def register_toy_envs() -> None:
    """Register the toy envs once (idempotent)."""
    if "toy/Counting-v0" in gymnasium.registry:
        return
    gymnasium.register("toy/Counting-v0", entry_point=CountingEnv, kwargs={"max_length": 5})
    gymnasium.register(
        "toy/CountingTruncated-v0", entry_point=CountingEnv, kwargs={"max_length": 6}, max_episode_steps=3
    )
    gymnasium.register("toy/Continuous-v0", entry_point=ContinuousEnv)
    gymnasium.register("toy/Bandit-v0", entry_point=BanditEnv)
    gymnasium.register("toy/TextAction-v0", entry_point=TextActionEnv)
    gymnasium.register("toy/SlowCartPole-v0", entry_point=SlowCartPole)
    gymnasium.register("toy/NanReward-v0", entry_point=NanRewardEnv, kwargs={"max_length": 8})
    gymnasium.register(
        "toy/DictAction-v0",
        entry_point=SpacesEnv,
        kwargs={"observation_space": OBSERVATION_SPACES["box"], "action_space": spaces.Dict({"a": spaces.Discrete(2)})},
    )
    gymnasium.register("toy/Masked-discrete-v0", entry_point=MaskedEnv, kwargs={"action_space": spaces.Discrete(5)})
    gymnasium.register(
        "toy/Masked-multidiscrete-v0", entry_point=MaskedEnv, kwargs={"action_space": spaces.MultiDiscrete([4, 2, 3])}
    )
    for defect in ("shape", "empty"):
        kwargs = {"action_space": spaces.Discrete(5), "defect": defect}
        gymnasium.register(f"toy/Masked-{defect}-v0", entry_point=MaskedEnv, kwargs=kwargs)
    for obs_name, observation_space in OBSERVATION_SPACES.items():
        for act_name, action_space in ACTION_SPACES.items():
            gymnasium.register(
                f"toy/Spaces-{obs_name}-{act_name}-v0",
                entry_point=SpacesEnv,
                kwargs={"observation_space": observation_space, "action_space": action_space},
            )


register_toy_envs()
