"""Time and env steps to solve CartPole-v1 over seeds: reinforce's defaults against the tutorial way.

'Solved' here is the training criterion: the mean return of the last 100 training episodes >= 475 (the
env's reward threshold); each row also reports the 100-episode deterministic evaluation at that moment.
Training time excludes imports and interpreter start-up.

    python benchmarks/solve_time.py [--seeds 0-9] [--tutorial-seeds 0-2] [--tutorial-max-seconds 120]
                                    [--set num_envs=32 --set lr=0.03 ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "examples"))

import argparse
import statistics
import time

import torch
from common import add_set_option, overrides, seed_range
from tutorial_reinforce import solve

from reinforce import Reinforce


def summarise(name: str, rows: list[dict[str, float | bool]]) -> None:
    if not rows:
        return
    solved = [row for row in rows if row["solved"]]
    steps = [float(row["steps"]) for row in solved]
    seconds = [float(row["seconds"]) for row in solved]
    evals = [float(row["eval"]) for row in rows]
    if solved:
        print(
            f"| {name} | {len(solved)}/{len(rows)} | {statistics.median(steps):,.0f} | {max(steps):,.0f} | "
            f"{statistics.median(seconds):.2f} | {max(seconds):.2f} | {min(evals):.1f} |"
        )
    else:
        print(f"| {name} | 0/{len(rows)} | - | - | - | - | {min(evals):.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0-9")
    parser.add_argument("--tutorial-seeds", default="0-2")
    parser.add_argument("--tutorial-max-seconds", type=float, default=120.0)
    parser.add_argument("--max-steps", type=int, default=300_000)
    add_set_option(parser)
    args = parser.parse_args()
    torch.set_num_threads(1)  # reinforce's default; the tutorial loop gets the same

    settings = overrides(args.set)
    ours = []
    print(
        "| seed | implementation | solved | env steps | simulated steps | train seconds | "
        "deterministic eval (100 ep.) |"
    )
    print("| ---: | --- | --- | ---: | ---: | ---: | ---: |")
    for seed in seed_range(args.seeds):
        agent = Reinforce("CartPole-v1", seed=seed, **settings)
        start = time.perf_counter()
        agent.learn(args.max_steps)
        seconds = time.perf_counter() - start
        row = {
            "simulated": agent.num_simulated_steps,
            "solved": agent.solved,
            "steps": agent.num_env_steps,
            "seconds": seconds,
            "eval": agent.evaluate(100)["mean_return"],
        }
        agent.close()
        ours.append(row)
        print(
            f"| {seed} | reinforce | {row['solved']} | {row['steps']:,} | {row['simulated']:,} | {seconds:.2f} | "
            f"{row['eval']:.1f} |",
            flush=True,
        )
    tutorial = []
    for seed in seed_range(args.tutorial_seeds):
        row = solve(seed, args.max_steps, args.tutorial_max_seconds)
        tutorial.append(row)
        print(
            f"| {seed} | tutorial loop | {row['solved']} | {row['steps']:,} | {row['steps']:,} | "
            f"{row['seconds']:.2f} | {row['eval']:.1f} |",
            flush=True,
        )
    print()
    print("| implementation | solved | median env steps | max env steps | median seconds | max seconds | worst eval |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    summarise(f"reinforce ({', '.join(args.set) or 'defaults'})", ours)
    summarise("tutorial loop", tutorial)


if __name__ == "__main__":
    main()
