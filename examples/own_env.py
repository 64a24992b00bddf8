"""Your own problem, end to end: an unregistered environment with constructor arguments and action masks, a
wrapper, your own network, a callback, evaluation, and an exported policy that runs without reinforce.

    python examples/own_env.py            # trains (at most 60k env steps, a few seconds), then exports
    python examples/own_env.py --steps 5000 --out /tmp/own-env

The environment is a corridor of `length` cells with walls at both ends. The agent starts at a random cell and
must reach the exit on the right; each step costs 1. Moving into a wall is not allowed: `info["action_mask"]`
says so (the Gymnasium convention), and the environment raises if it is asked to do it anyway, so training must
never try.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import torch
from torch import nn

import reinforce

LEFT, STAY, RIGHT = 0, 1, 2


class Corridor(gymnasium.Env[np.ndarray, np.int64]):
    """A corridor of ``length`` cells; the exit is the rightmost one. Observation: [position / length, 1]."""

    def __init__(self, length: int = 8, render_mode: str | None = None) -> None:
        self.length = length
        self.render_mode = render_mode
        self.observation_space = gymnasium.spaces.Box(0.0, 1.0, shape=(2,), dtype=np.float32)
        self.action_space = gymnasium.spaces.Discrete(3)
        self.position = 0

    def _observation(self) -> tuple[np.ndarray, dict[str, Any]]:
        mask = np.ones(3, dtype=np.int8)
        mask[LEFT] = self.position > 0  # the left wall
        observation = np.array([self.position / self.length, 1.0], dtype=np.float32)
        return observation, {"action_mask": mask}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.position = int(self.np_random.integers(0, self.length - 1))
        return self._observation()

    def step(self, action: np.int64) -> tuple[np.ndarray, float, bool, bool, dict]:
        if int(action) == LEFT and self.position == 0:
            raise RuntimeError("walked into the left wall: the action mask forbids it")
        self.position += {LEFT: -1, STAY: 0, RIGHT: 1}[int(action)]
        observation, info = self._observation()
        return observation, -1.0, self.position >= self.length - 1, False, info


class ScaledReward(gymnasium.RewardWrapper):  # type: ignore[type-arg]
    """A wrapper, as you would add one: rewards divided by ``scale``."""

    def __init__(self, env: gymnasium.Env[Any, Any], scale: float = 10.0) -> None:
        super().__init__(env)
        self.scale = scale

    def reward(self, reward: Any) -> float:
        return float(reward) / self.scale


def network() -> nn.Module:
    """The policy's body: features in, 32 features out; reinforce adds the head for the 3 actions."""
    return nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh())


def main(steps: int = 60_000, out: Path | None = None, seed: int = 0) -> dict[str, Any]:
    out = out or Path(tempfile.mkdtemp(prefix="own-env-"))
    agent = reinforce.Reinforce(
        lambda: Corridor(length=12),  # called once per environment
        wrappers=[lambda env: gymnasium.wrappers.TimeLimit(ScaledReward(env), max_episode_steps=60)],
        network=network,
        seed=seed,
        num_envs=16,
        lr=0.01,
    )
    optimum = -0.6  # walking straight right from a start drawn uniformly in cells 0-10: 6 steps of -0.1

    def report(agent: reinforce.Reinforce, metrics: dict[str, Any]) -> bool:
        """Called after every update; returning False stops training (the checkpoint is written first)."""
        if agent.num_updates % 20 == 0:
            print(f"update {agent.num_updates}: mean return {metrics['charts/episode_return_mean']:.2f}")
        return metrics["charts/episode_return_mean_100"] < optimum - 0.03  # go on until near the optimum

    # a deterministic evaluation every 2k env steps, on its own envs; the best policy is kept in run/best/
    evaluations = reinforce.EvalCallback(every_steps=2_000, episodes=20)
    agent.learn(steps, run_dir=out / "run", callback=[report, evaluations])
    evaluation = reinforce.evaluate_policy(agent, episodes=50)
    print(f"deterministic policy: mean return {evaluation['mean_return']:.2f} (the optimum is {optimum})")
    # a run directory records neither a lambda nor your network's code: give them again (the weights are saved)
    best = reinforce.load(out / "run" / "best", env=lambda: Corridor(length=12), network=network)
    assert evaluations.best is not None
    print(f"best evaluation: {evaluations.best['mean_return']:.2f} at {evaluations.best['env_steps']} env steps")
    best.close()

    observations = np.array([[0.0, 1.0], [0.5, 1.0]], dtype=np.float32)
    actions, _ = agent.predict(observations, deterministic=True, action_mask=np.array([[0, 1, 1], [1, 1, 1]]))
    print("actions at the left wall and mid-corridor:", actions)

    path = reinforce.export_policy(agent, out / "policy.pt", format="torchscript")
    exported = torch.jit.load(str(path))  # plain torch: no reinforce needed where this runs
    print("exported policy's actions:", exported(torch.as_tensor(observations)).tolist())
    agent.close()
    return evaluation


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60_000)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    main(arguments.steps, arguments.out, arguments.seed)
