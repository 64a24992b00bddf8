"""CartPole-v1 made slow: every step first spins the CPU for a fixed time, like a costly simulator.

Registered as ``slow_env:SlowCartPole-v1`` (the ``slow_env:`` prefix makes each process, Ray workers
included, import this module); ``step_cost_us`` sets the cost, e.g. ``gymnasium.make(..., step_cost_us=500)``.
The CPU is kept busy (not asleep), so two such envs do not run in the time of one on a single core.
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium

DEFAULT_STEP_COST_US = 200.0


class SlowCartPole(gymnasium.Wrapper):  # type: ignore[type-arg]
    def __init__(self, step_cost_us: float = DEFAULT_STEP_COST_US) -> None:
        super().__init__(gymnasium.make("CartPole-v1"))
        self.step_cost_s = step_cost_us / 1e6

    def step(self, action: Any) -> Any:
        deadline = time.perf_counter() + self.step_cost_s
        while time.perf_counter() < deadline:
            pass
        return self.env.step(action)


if "SlowCartPole-v1" not in gymnasium.registry:
    gymnasium.register("SlowCartPole-v1", entry_point=SlowCartPole)  # the inner CartPole-v1 has the time limit
