"""Sutton & Barto's Figure 13.1: REINFORCE on the short corridor (Example 13.1), 100 runs at each of three step sizes.

Each step size is one `reinforce.Population` of 100 members (seeds 0-99), every member the book's agent: a linear
softmax over the two actions (``hidden_sizes=()``, theta initialised so that pi(right) = 0.05), plain SGD with
step size alpha, gamma 1, and the update after every step, ``theta += alpha * gamma^t * G_t * grad ln pi(A_t|S_t)``
(``update="per_step"``). A round (`Population.update`) plays one episode per member, all members' corridors
stepped together, then runs every member's per-step updates as one batched computation; 1000 rounds make the
figure's 1000 episodes. The plot shows the mean return per episode over the runs, and the best policy's value
(about -11.6) as a dashed line. Unlike the book's figure code, the softmax has no floor on its probabilities,
so an unlucky run can drift to pi(right) = 0: episodes are cut after `MAX_STEPS` steps, and the script says how
many runs were cut.

    python examples/short_corridor_figure.py [--runs 100 --episodes 1000 --out docs/figures/short_corridor.png]

It is not yet as fast as the book's NumPy loop (the figures: docs/benchmarks.md, "Figure 13.1 through a
population"); ``--runs 10 --episodes 200`` shows the shape in a few minutes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

import short_corridor_env  # noqa: F401 (registers ShortCorridor-v0)

from reinforce import Population

THETA = (1.47, -1.47)
"""Initial preferences of (left, right): pi(right) = 0.05, as in the book's figure."""
BEST_VALUE = -11.6
"""The value of the start state under the best stochastic policy (pi(right) about 0.59)."""
MAX_STEPS = 1000
"""Episodes are cut after this many steps: a plain softmax can drift to pi(right) = 0, whose episodes never end
(the book's figure code floors the probabilities at 0.05; reinforce's linear softmax has no floor)."""
SETTINGS = {
    "num_envs": 1,
    "episodes_per_update": 1,
    "update": "per_step",
    "optimizer": "sgd",
    "gamma": 1.0,
    "discount_gradient": True,
    "reward_to_go": True,
    "baseline": "none",
    "return_normalization": "none",
    "hidden_sizes": (),
    "stop_on_solve": False,
}
"""The book's REINFORCE as reinforce's settings (the step size aside)."""


def books_theta(agent: Any) -> None:
    """Start ``agent``'s linear softmax at the book's theta (the observation is [0.0]: the logits are the bias)."""
    layer = agent.policy.body[0]
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.copy_(torch.tensor(THETA))


def returns_of_step_size(alpha: float, runs: int, episodes: int) -> np.ndarray:
    """``[runs, episodes]``: the return of every episode of ``runs`` members that learn with step size alpha."""
    population = Population(
        "ShortCorridor-v0",
        seeds=range(runs),
        lr=alpha,
        env_kwargs={"max_steps": MAX_STEPS},
        vectorization_mode="vector_entry_point",  # ShortCorridorVector: every member's corridor in one NumPy step
        **SETTINGS,  # type: ignore[arg-type]
    )
    for member in population.members:
        books_theta(member)
    returns = np.zeros((runs, episodes))
    for episode in range(episodes):
        for run, metrics in enumerate(population.update()):
            if metrics is None:
                raise RuntimeError(f"run {run} stopped: {population.errors}")
            returns[run, episode] = metrics["episode_returns"][0]
    population.close()
    return returns


def main() -> None:
    """Run the three populations, print their last-100-episode means and draw the figure."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("docs/figures/short_corridor.png"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    curves = {}
    start = time.perf_counter()
    for exponent in (-12, -13, -14):
        began = time.perf_counter()
        returns = returns_of_step_size(2.0**exponent, args.runs, args.episodes)
        curves[exponent] = returns.mean(axis=0)
        elapsed = time.perf_counter() - began
        cut = int((returns <= -MAX_STEPS).any(axis=1).sum())
        print(
            f"alpha = 2^{exponent}: {args.runs} runs x {args.episodes} episodes in {elapsed:.1f} s, "
            f"mean return of the last 100 episodes {returns[:, -100:].mean():.2f}, {cut} runs with a cut episode"
        )
    print(f"all: {time.perf_counter() - start:.1f} s")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    for exponent, curve in curves.items():
        axes.plot(np.arange(1, len(curve) + 1), curve, label=f"alpha = 2^{exponent}", linewidth=1)
    axes.axhline(BEST_VALUE, color="gray", linestyle="--", linewidth=1, label="v*(s0), about -11.6")
    axes.set_ylim(-90, -10)
    axes.set_xlabel("Episode")
    axes.set_ylabel(f"Total reward on episode (mean over {args.runs} runs)")
    axes.set_title("REINFORCE on the short corridor (Sutton & Barto, Figure 13.1)")
    axes.legend(loc="lower right")
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
