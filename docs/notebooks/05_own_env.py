# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 5. Your own environment, end to end
#
# Write a Gymnasium environment, train on it, evaluate, save and load the run, and export the policy to a file
# that runs with plain PyTorch. `examples/own_env.py` does the same with more of the options (action masks, a
# wrapper, a custom network, evaluation callbacks); [Your own environment](../../guides/own-env/) lists every
# form an environment can take.

# %%
import csv
import tempfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import matplotlib.pyplot as plt
import numpy as np
import torch
from gymnasium.utils.env_checker import check_env

import reinforce

# %% [markdown]
# ## The environment
#
# A 5 x 5 grid: the agent starts in a random cell of the left column and must reach the goal in the top-right
# corner. Each move costs 0.05 and reaching the goal pays 1, so the shortest path is worth the most. Observation:
# the position scaled to [0, 1]; actions: up, down, left, right. The time limit (30 steps) is a wrapper, as in
# Gymnasium: an episode cut by it is *truncated*, not terminated, and reinforce treats the two differently.

# %%
SIZE = 5
MOVES = np.array([[0, 1], [0, -1], [-1, 0], [1, 0]])  # up, down, left, right as (dx, dy)


class GridGoal(gym.Env):
    def __init__(self, size: int = SIZE) -> None:
        self.size = size
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(4)
        self.position = np.zeros(2, dtype=int)

    def _observation(self) -> np.ndarray:
        return (self.position / (self.size - 1)).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.position = np.array([0, self.np_random.integers(self.size)])
        return self._observation(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.position = np.clip(self.position + MOVES[int(action)], 0, self.size - 1)
        at_goal = bool((self.position == self.size - 1).all())
        return self._observation(), (1.0 if at_goal else 0.0) - 0.05, at_goal, False, {}


def make_env() -> gym.Env:
    return gym.wrappers.TimeLimit(GridGoal(), max_episode_steps=30)


# %% [markdown]
# Gymnasium's checker is worth running once on a new environment:

# %%
check_env(GridGoal(), skip_render_check=True)

# %% [markdown]
# ## Training
#
# `Reinforce` takes the environment as a class, an id, a spec, or any function that returns one (here a
# function: it is called once per parallel environment). The settings are keyword arguments, typed and checked
# (`reinforce.TrainConfig` lists them all). A run directory gets the metrics, the checkpoint and the curve.

# %%
run_dir = Path(tempfile.mkdtemp(prefix="grid-goal-")) / "run"
agent = reinforce.Reinforce(make_env, seed=0, num_envs=16, lr=0.01, hidden_sizes=(32,), stop_on_solve=False)
agent.learn(25_000, run_dir=run_dir)
print(f"{agent.num_updates} updates, {agent.num_env_steps} env steps, {agent.num_episodes} episodes")

# %%
with open(run_dir / "metrics.csv") as file:
    rows = list(csv.DictReader(file))
fig, axis = plt.subplots(figsize=(7, 3.5))
axis.plot([int(r["env_steps"]) for r in rows], [float(r["charts/episode_return_mean"]) for r in rows])
axis.set_xlabel("env steps")
axis.set_ylabel("mean return of the update")
axis.grid(alpha=0.3)
fig.tight_layout()

# %% [markdown]
# ## Evaluation
#
# `evaluate_policy` plays whole episodes with the deterministic policy (the most likely action). From the left
# column, the best return is `1 - 0.05 · (steps to the corner)`: between 0.6 and 0.8.

# %%
evaluation = reinforce.evaluate_policy(agent, episodes=20)
print(
    f"mean return {evaluation['mean_return']:.2f} ± {evaluation['std_return']:.2f}, "
    f"mean length {evaluation['mean_length']:.1f}"
)

# %% [markdown]
# ## Load the run again
#
# The run directory records the settings and the weights, never code: an environment given as a function
# cannot be rebuilt from it, so `load` takes it again.

# %%
agent.close()
agent = reinforce.load(run_dir, env=make_env)
action, _ = agent.predict(np.array([0.0, 0.0], dtype=np.float32), deterministic=True)
print("from the bottom-left corner the policy moves", ["up", "down", "left", "right"][int(action)])

# %% [markdown]
# ## Export
#
# `export_policy` writes one TorchScript (or ONNX) file: a float32 batch of observations in, the actions the
# environment gets out. Where it runs, only `torch` is needed.

# %%
path = reinforce.export_policy(agent, run_dir.parent / "policy.pt", format="torchscript")
exported = torch.jit.load(str(path))
corners = torch.tensor([[0.0, 0.0], [0.0, 1.0], [0.75, 1.0]])
print("exported actions:", exported(corners).tolist())
print("predict's actions:", agent.predict(corners.numpy(), deterministic=True)[0].tolist())
assert exported(corners).tolist() == agent.predict(corners.numpy(), deterministic=True)[0].tolist()
agent.close()
