"""A user's own program: load a run directory, play its deterministic policy in a plain Gymnasium env.

No reinforce evaluation code runs: ``reinforce.load`` and ``predict`` only, in a loop over ``gymnasium.make(ENV)``
episodes reset with seeds 10,000-10,099. Prints the mean, std and minimum return, and the share at >= 200.

    python benchmarks/play_saved_policy.py RUN_DIR [ENV_ID]
"""

import sys

import gymnasium as gym
import numpy as np

import reinforce

agent = reinforce.load(sys.argv[1])
env = gym.make(sys.argv[2] if len(sys.argv) > 2 else "LunarLander-v3")
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
print(f"mean {values.mean():.1f} std {values.std():.1f} min {values.min():.1f} at >= 200: {(values >= 200).mean():.2f}")
