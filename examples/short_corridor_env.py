"""Sutton & Barto's short corridor (Example 13.1) as a Gymnasium environment, registered as ``ShortCorridor-v0``.

Three non-terminal cells and a goal on the right. Actions: 0 = left, 1 = right; in the second cell they are
reversed; moving left in the first cell stays there. Every step costs -1. All states look the same: the
observation is always ``[0.0]``, so a linear softmax policy (``hidden_sizes=()``) has logits equal to its
bias, the book's ``theta`` with the features ``x(s, left) = [1, 0]``, ``x(s, right) = [0, 1]``.

    reinforce train short_corridor_env:ShortCorridor-v0 --update per_step --optimizer sgd --lr 0.000122 ...

(from this folder); benchmarks/short_corridor.py and short_corridor_figure.py run the book's Figure 13.1 with it.
``ShortCorridorVector`` steps many corridors at once (the id's ``vector_entry_point``, which ``num_envs`` > 1 and
populations use; ``vectorization_mode="sync"`` steps `ShortCorridor` copies instead).
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np

LEFT, RIGHT = 0, 1
GOAL = 3


class ShortCorridor(gymnasium.Env[np.ndarray, np.int64]):
    """The short corridor with switched actions: reward -1 per step until the goal (cell 3) is reached.

    Args:
        max_steps: cut (truncate) an episode after this many steps; None never cuts. A plain softmax policy
            can drift towards pi(right) = 0, whose episodes never end (the book's figure code floors the
            probabilities; reinforce's linear softmax has no floor): a cut bounds their cost.
    """

    def __init__(self, max_steps: int | None = None) -> None:
        self.observation_space = gymnasium.spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)
        self.action_space = gymnasium.spaces.Discrete(2)
        self.max_steps = max_steps
        self.cell = 0
        self.steps = 0
        self._observation = np.zeros(1, dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.cell = self.steps = 0
        return self._observation.copy(), {}

    def step(self, action: np.int64) -> tuple[np.ndarray, float, bool, bool, dict]:
        right = int(action) == RIGHT
        if self.cell == 1:  # the switched cell
            right = not right
        self.cell = self.cell + 1 if right else max(self.cell - 1, 0)
        self.steps += 1
        terminated = self.cell == GOAL
        cut = not terminated and self.max_steps is not None and self.steps >= self.max_steps
        return self._observation.copy(), -1.0, terminated, cut, {}


class ShortCorridorVector(gymnasium.vector.VectorEnv[np.ndarray, np.ndarray, np.ndarray]):
    """``num_envs`` short corridors stepped together in NumPy, with Gymnasium's next-step autoreset.

    ``ShortCorridor-v0``'s ``vector_entry_point`` (as CartPole has one): the step after an episode's end resets
    that corridor (reward 0, its action ignored). A population of many members steps all their corridors in
    one NumPy step instead of one Python call each.
    """

    metadata = {"autoreset_mode": gymnasium.vector.AutoresetMode.NEXT_STEP}  # noqa: RUF012 (Gymnasium's)

    def __init__(self, num_envs: int = 1, max_steps: int | None = None, **kwargs: Any) -> None:
        self.num_envs = num_envs
        self.max_steps = max_steps
        self.steps = np.zeros(num_envs, dtype=np.int64)
        self.single_observation_space = gymnasium.spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)
        self.single_action_space = gymnasium.spaces.Discrete(2)
        self.observation_space = gymnasium.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gymnasium.vector.utils.batch_space(self.single_action_space, num_envs)
        self.cells = np.zeros(num_envs, dtype=np.int64)
        self.resetting = np.zeros(num_envs, dtype=bool)

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)  # type: ignore[arg-type]
        self.cells[:] = 0
        self.steps[:] = 0
        self.resetting[:] = False
        return np.zeros((self.num_envs, 1), dtype=np.float32), {}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        right = (np.asarray(actions) == RIGHT) != (self.cells == 1)  # the switched cell
        moved = np.where(right, self.cells + 1, np.maximum(self.cells - 1, 0))
        self.cells = np.where(self.resetting, 0, moved)
        self.steps = np.where(self.resetting, 0, self.steps + 1)
        rewards = np.where(self.resetting, 0.0, -1.0)
        terminated = (self.cells == GOAL) & ~self.resetting
        cut = ~terminated & ~self.resetting & (self.steps >= (self.max_steps or np.iinfo(np.int64).max))
        self.resetting = terminated | cut
        observations = np.zeros((self.num_envs, 1), dtype=np.float32)
        return observations, rewards, terminated, cut, {}


if "ShortCorridor-v0" not in gymnasium.registry:
    gymnasium.register("ShortCorridor-v0", entry_point=ShortCorridor, vector_entry_point=ShortCorridorVector)
