"""Sutton & Barto's Figure 13.1 (the short corridor, Example 13.1): the book's plain NumPy REINFORCE loop and
reinforce's ``update="per_step"`` with the book's settings, on the same seeds, timed in one process.

Both run ``--runs`` runs of ``--episodes`` episodes with ``alpha = 2^-13`` (``--alpha-exponent``), gamma 1 and
theta initialised to ``[1.47, -1.47]`` (left, right: the policy goes right with probability 0.05), updating
theta after every step: ``theta += alpha * gamma^t * G_t * grad ln pi(A_t|S_t)``; both cut an episode after
`MAX_STEPS` steps. The NumPy loop is the book's pseudocode (the plain softmax, as in the figure's algorithm).
By default reinforce runs `Reinforce.update` with one environment and one episode per update on
examples/short_corridor_env.py, the runs interleaved seed by seed with the NumPy loop's; ``--population`` runs
them as one `reinforce.Population` (a round per episode, the members' per-step updates batched), between the
two halves of the NumPy loop's runs. The mean return of the last 100 episodes shows both learn (the best
policy's value is about -11.6); "runs cut" counts the runs whose last 100 episodes hit the cut.

    nice -n 19 PYTHONPATH=src .venv/bin/python benchmarks/short_corridor.py [--runs 10 --episodes 1000]
    nice -n 19 PYTHONPATH=src .venv/bin/python benchmarks/short_corridor.py --population --runs 100
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
from short_corridor_figure import MAX_STEPS, SETTINGS, THETA, books_theta, returns_of_step_size


def book_run(alpha: float, episodes: int, seed: int) -> np.ndarray:
    """The book's REINFORCE on the short corridor, plain NumPy: the returns of the episodes."""
    rng = np.random.default_rng(seed)
    theta = np.array(THETA)
    features = np.eye(2)  # x(s, left), x(s, right): every state looks the same
    returns = np.zeros(episodes)
    for episode in range(episodes):
        cell, actions, rewards = 0, [], []
        while cell != short_corridor_env.GOAL and len(actions) < MAX_STEPS:
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
    """The same with reinforce: ``update="per_step"`` and the book's settings, one episode per update.

    ``vectorization_mode="sync"``: a Gymnasium ``SyncVectorEnv`` of one `ShortCorridor`, as for any user's env
    (not the NumPy `ShortCorridorVector`).
    """
    from reinforce import Reinforce

    kwargs = {"max_steps": MAX_STEPS}
    agent = Reinforce("ShortCorridor-v0", seed=seed, lr=alpha, env_kwargs=kwargs, vectorization_mode="sync", **SETTINGS)
    books_theta(agent)
    returns = np.array([agent.update()["episode_returns"][0] for _ in range(episodes)])
    agent.close()
    return returns


def table(rows: list[tuple[str, float, np.ndarray]]) -> None:
    """Print the time, steps and last-100-episode mean return of each implementation."""
    print(f"{'':24}{'time s':>8}{'steps':>10}{'us/step':>9}{'last 100 return':>17}{'runs cut':>9}")
    for name, elapsed, returns in rows:
        steps = int(-returns.sum())
        cut = int((returns[:, -100:] <= -MAX_STEPS).any(1).sum())
        print(f"{name:24}{elapsed:8.2f}{steps:10d}{elapsed / steps * 1e6:9.1f}{returns[:, -100:].mean():17.2f}{cut:9d}")


def main() -> None:
    """Time both over the same seeds and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--alpha-exponent", type=int, default=-13, help="alpha = 2^this (the book: -12, -13, -14)")
    parser.add_argument("--population", action="store_true", help="the runs as one Population, not one by one")
    args = parser.parse_args()
    alpha = 2.0**args.alpha_exponent
    torch.set_num_threads(1)
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; {machine()}; {versions('torch', 'numpy', 'gymnasium')}")
    print(f"short corridor, alpha 2^{args.alpha_exponent}, {args.runs} runs x {args.episodes} episodes")
    if args.population:
        returns_of_step_size(alpha, 2, 2)  # imports and first calls outside the clock
        halves = [range(args.runs // 2), range(args.runs // 2, args.runs)]
        start = time.perf_counter()
        book = [book_run(alpha, args.episodes, seed) for seed in halves[0]]
        book_s = time.perf_counter() - start
        start = time.perf_counter()
        together = returns_of_step_size(alpha, args.runs, args.episodes)
        population_s = time.perf_counter() - start
        start = time.perf_counter()  # the NumPy loop's runs before and after the population's: the same load
        book += [book_run(alpha, args.episodes, seed) for seed in halves[1]]
        book_s += time.perf_counter() - start
        table([("NumPy loop (the book)", book_s, np.stack(book)), ("reinforce Population", population_s, together)])
        print(f"ratio reinforce / NumPy loop: {population_s / book_s:.2f}x")
        return
    reinforce_run(alpha, 2, 0)  # imports and first calls outside the clock
    runs = {"NumPy loop (the book)": book_run, "reinforce per_step": reinforce_run}
    times = dict.fromkeys(runs, 0.0)
    returns: dict[str, list[np.ndarray]] = {name: [] for name in runs}
    for seed in range(args.runs):  # interleaved, so that both see the same load of a shared machine
        for name, run in runs.items():
            start = time.perf_counter()
            returns[name].append(run(alpha, args.episodes, seed))
            times[name] += time.perf_counter() - start
    table([(name, times[name], np.stack(returns[name])) for name in runs])
    print(f"ratio reinforce / NumPy loop: {times['reinforce per_step'] / times['NumPy loop (the book)']:.2f}x")


if __name__ == "__main__":
    main()
