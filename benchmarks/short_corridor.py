"""Sutton & Barto's Figure 13.1 (the short corridor, Example 13.1): the book's plain NumPy REINFORCE loop and
reinforce's ``update="per_step"`` with the book's settings, side by side on the same seeds, timed in one process
(the runs interleaved, seed by seed).

Both run ``--runs`` runs of ``--episodes`` episodes with ``alpha = 2^-13`` (``--alpha-exponent``), gamma 1 and
theta initialised to ``[1.47, -1.47]`` (left, right: the policy goes right with probability 0.05), updating
theta after every step: ``theta += alpha * gamma^t * G_t * grad ln pi(A_t|S_t)``. The NumPy loop is the book's
pseudocode (the plain softmax, as in the figure's algorithm); reinforce runs `Reinforce.update` with one
environment and one episode per update on examples/short_corridor_env.py. The mean return of the last 100
episodes shows both learn (the best policy's value is about -11.6).

    nice -n 19 PYTHONPATH=src .venv/bin/python benchmarks/short_corridor.py [--runs 10 --episodes 1000]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from common import machine, versions

sys.path.insert(0, str(Path(__file__).parents[1] / "examples"))

import short_corridor_env

THETA = (1.47, -1.47)
"""Initial preferences of (left, right): pi(right) = 0.05, as in the book's figure."""


def book_run(alpha: float, episodes: int, seed: int) -> np.ndarray:
    """The book's REINFORCE on the short corridor, plain NumPy: the returns of the episodes."""
    rng = np.random.default_rng(seed)
    theta = np.array(THETA)
    features = np.eye(2)  # x(s, left), x(s, right): every state looks the same
    returns = np.zeros(episodes)
    for episode in range(episodes):
        cell, actions, rewards = 0, [], []
        while cell != short_corridor_env.GOAL:
            preferences = features @ theta
            pi = np.exp(preferences - preferences.max())
            pi /= pi.sum()
            right = rng.random() < pi[1]
            actions.append(int(right))
            cell = cell + 1 if right != (cell == 1) else max(cell - 1, 0)
            rewards.append(-1.0)
        g = np.cumsum(rewards[::-1])[::-1]  # G_t, gamma = 1
        for t, action in enumerate(actions):
            preferences = features @ theta
            pi = np.exp(preferences - preferences.max())
            pi /= pi.sum()
            theta += alpha * g[t] * (features[action] - pi @ features)
        returns[episode] = sum(rewards)
    return returns


def reinforce_run(alpha: float, episodes: int, seed: int) -> np.ndarray:
    """The same with reinforce: ``update="per_step"`` and the book's settings, one episode per update."""
    from reinforce import Reinforce

    agent = Reinforce(
        "ShortCorridor-v0",
        seed=seed,
        num_envs=1,
        episodes_per_update=1,
        update="per_step",
        optimizer="sgd",
        lr=alpha,
        gamma=1.0,
        discount_gradient=True,
        reward_to_go=True,
        baseline="none",
        return_normalization="none",
        hidden_sizes=(),
    )
    layer = agent.policy.body[0]
    with torch.no_grad():  # the observation is [0.0]: the logits are the bias, the book's theta
        layer.weight.zero_()
        layer.bias.copy_(torch.tensor(THETA))
    returns = np.array([agent.update()["episode_returns"][0] for _ in range(episodes)])
    agent.close()
    return returns


def main() -> None:
    """Time both over the same seeds and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--alpha-exponent", type=int, default=-13, help="alpha = 2^this (the book: -12, -13, -14)")
    args = parser.parse_args()
    alpha = 2.0**args.alpha_exponent
    torch.set_num_threads(1)
    reinforce_run(alpha, 2, 0)  # imports and first calls outside the clock
    runs = {"NumPy loop (the book)": book_run, "reinforce per_step": reinforce_run}
    times = dict.fromkeys(runs, 0.0)
    returns: dict[str, list[np.ndarray]] = {name: [] for name in runs}
    for seed in range(args.runs):  # interleaved, so that both see the same load of a shared machine
        for name, run in runs.items():
            start = time.perf_counter()
            returns[name].append(run(alpha, args.episodes, seed))
            times[name] += time.perf_counter() - start
    rows = []
    for name in runs:
        stacked = np.stack(returns[name])
        rows.append((name, times[name], int(-stacked.sum()), float(stacked[:, -100:].mean())))
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; {machine()}; {versions('torch', 'numpy', 'gymnasium')}")
    print(f"short corridor, alpha 2^{args.alpha_exponent}, {args.runs} runs x {args.episodes} episodes")
    print(f"{'':24}{'time s':>8}{'steps':>9}{'us/step':>9}{'last 100 return':>17}")
    for name, elapsed, steps, last in rows:
        print(f"{name:24}{elapsed:8.2f}{steps:9d}{elapsed / steps * 1e6:9.1f}{last:17.2f}")
    print(f"ratio reinforce / NumPy loop: {rows[1][1] / rows[0][1]:.1f}x")


if __name__ == "__main__":
    main()
