"""A user's own program: load a run directory, play its deterministic policy in a plain Gymnasium env.

No reinforce evaluation code runs: ``reinforce.load`` and ``predict`` only, in a loop over ``gymnasium.make(ENV)``
episodes reset with seeds 10,000-10,099. Prints the mean, std and minimum return, and the share of episodes at
the target or above (TARGET; default: the env's registered reward threshold, else 200).

    python benchmarks/play_saved_policy.py RUN_DIR [ENV_ID [TARGET]]   # ENV_ID: the run's own by default
"""

import sys

import gymnasium as gym
import numpy as np

import reinforce

agent = reinforce.load(sys.argv[1])
env = gym.make(sys.argv[2] if len(sys.argv) > 2 else agent.env_id)
registered = env.spec.reward_threshold if env.spec is not None else None
target = float(sys.argv[3]) if len(sys.argv) > 3 else registered if registered is not None else 200.0
returns = []
for episode in range(100):
    obs, _ = env.reset(seed=10_000 + episode)
    done, total = False, 0.0
    while not done:
        action, _ = agent.predict(obs, deterministic=True)
        obs, reward, terminated, truncated, _ = env.step(action)
        total += float(reward)
        done = terminated or truncated
    returns.append(total)
values = np.array(returns)
print(
    f"{env.spec.id if env.spec else ''}: mean {values.mean():.1f} std {values.std():.1f} min {values.min():.1f}, "
    f"at >= {target:g}: {(values >= target).mean():.2f}"
)
