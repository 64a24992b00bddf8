"""Train, evaluate, save and reload a REINFORCE agent from Python.

python examples/python_api.py
"""

from __future__ import annotations

import tempfile

import numpy as np

import reinforce


def main() -> None:
    agent = reinforce.Reinforce("CartPole-v1", seed=0)  # the defaults: 32 envs, MLP(128), Adam lr 0.03
    for _ in range(5):  # drive it yourself: one collect-and-update step per call
        metrics = agent.update()
        print(f"update {metrics['update']}: mean return {metrics['charts/episode_return_mean']:.1f}")
    agent.learn(total_steps=300_000)  # or let it run until its deterministic policy is verified at 475
    print(f"stopped after {agent.num_env_steps:,} env steps (training mean at the threshold: {agent.solved})")
    print("deterministic evaluation:", agent.evaluate(episodes=100)["mean_return"])

    with tempfile.TemporaryDirectory() as run_dir:
        agent.save(run_dir)
        again = reinforce.load(run_dir)
        observations = np.zeros((3, 4), dtype=np.float32)
        assert (
            again.predict(observations, deterministic=True)[0] == agent.predict(observations, deterministic=True)[0]
        ).all()
        print("reloaded policy acts the same:", again.predict(observations, deterministic=True)[0])


if __name__ == "__main__":
    main()
