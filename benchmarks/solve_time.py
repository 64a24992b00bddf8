"""Time and env steps to a verified CartPole-v1 policy over seeds, and whole processes against the tutorial loop.

reinforce runs with its defaults (``solve_criterion=verified``): training stops once a check of the
deterministic policy, confirmed by a 100-episode deterministic evaluation, reaches 475 (the env's reward
threshold); "train seconds" is the wall clock of ``learn``, the checks and the confirmation included (no
imports), "CPU s" its CPU time (the figure to compare on a machine shared with other work). With
``--set solve_criterion=training_mean`` the rows are those of the training criterion (the mean return of the
last 100 training episodes >= 475) instead. The last column is a 100-episode deterministic
evaluation of the policy training stopped with.

Then, on the tutorial seeds, the whole ``reinforce train CartPole-v1 --seed S --quiet`` process (interpreter
start, imports, training, checkpoints, the curve, the evaluation, exit: wall clock) against the tutorial loop
(`examples/tutorial_reinforce.py`'s agent, to its training criterion, capped at ``--tutorial-max-seconds`` of
CPU time: a capped seed counts with the cap, so the ratio is then a lower bound), and the ratios of their
medians, in wall-clock and in CPU seconds (the process's CPU time with the children it waited for).

    python benchmarks/solve_time.py [--seeds 10-19] [--tutorial-seeds 10-12] [--tutorial-max-seconds 120]
                                    [--set num_envs=32 --set lr=0.03 ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "examples"))

import argparse
import statistics
import time
from collections import deque
from datetime import datetime, timezone

import numpy as np
import torch
from common import add_set_option, machine, overrides, seed_range, train_process_seconds, versions
from tutorial_reinforce import TutorialAgent

from reinforce import Reinforce
from reinforce.verification import make_verifier


def train_to_verified(seed: int, max_steps: int, settings: dict[str, object]) -> dict[str, float | bool | int]:
    """One seed with reinforce: learn to the configured stop; what it took."""
    agent = Reinforce("CartPole-v1", seed=seed, **settings)  # type: ignore[arg-type]
    verifier = make_verifier(agent)  # the one learn would make; held here to read what it did
    start, cpu = time.perf_counter(), time.process_time()
    agent.learn(max_steps, callback=verifier)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    stopped = verifier.verified is not None if verifier is not None else agent.solved
    row = {
        "solved": stopped,
        "steps": agent.num_env_steps,
        "seconds": seconds,
        "cpu": cpu,
        "checks": 0 if verifier is None else len(verifier.evaluations),
        "eval": agent.evaluate(100)["mean_return"],
    }
    agent.close()
    return row


def tutorial_loop(seed: int, max_steps: int, max_cpu_seconds: float) -> dict[str, float | bool | int]:
    """`examples/tutorial_reinforce.py`'s ``solve``, its cap in CPU seconds: to a 100-episode training mean of 475."""
    agent = TutorialAgent(seed)
    recent: deque[float] = deque(maxlen=100)
    steps, solved = 0, False
    start, cpu = time.perf_counter(), time.process_time()
    while steps < max_steps and time.process_time() - cpu < max_cpu_seconds:
        episode_return, length = agent.run_episode()
        steps += length
        recent.append(episode_return)
        if len(recent) == 100 and np.mean(recent) >= 475:
            solved = True
            break
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"solved": solved, "steps": steps, "seconds": seconds, "cpu": cpu, "eval": agent.evaluate()}


def summarise(name: str, rows: list[dict[str, float | bool | int]]) -> None:
    if not rows:
        return
    solved = [row for row in rows if row["solved"]]
    steps = [float(row["steps"]) for row in solved]
    seconds = [float(row["seconds"]) for row in solved]
    cpu = [float(row["cpu"]) for row in solved]
    worst = min(float(row["eval"]) for row in rows)
    if solved:
        print(
            f"| {name} | {len(solved)}/{len(rows)} | {statistics.median(steps):,.0f} | {max(steps):,.0f} | "
            f"{statistics.median(seconds):.2f} | {max(seconds):.2f} | {statistics.median(cpu):.2f} | {worst:.1f} |"
        )
    else:
        print(f"| {name} | 0/{len(rows)} | - | - | - | - | - | {worst:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="10-19")
    parser.add_argument("--tutorial-seeds", default="10-12")
    parser.add_argument("--tutorial-max-seconds", type=float, default=120.0)
    parser.add_argument("--max-steps", type=int, default=300_000)
    add_set_option(parser)
    args = parser.parse_args()
    torch.set_num_threads(1)  # reinforce's default; the tutorial loop gets the same
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; {machine()}; {versions('torch', 'gymnasium')}\n")

    settings = overrides(args.set)
    ours = []
    print(
        "| seed | implementation | stopped | env steps | train seconds | CPU s | checks | "
        "deterministic eval (100 ep.) |"
    )
    print("| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for seed in seed_range(args.seeds):
        row = train_to_verified(seed, args.max_steps, settings)
        ours.append(row)
        print(
            f"| {seed} | reinforce | {row['solved']} | {row['steps']:,} | {row['seconds']:.2f} | {row['cpu']:.2f} | "
            f"{row['checks']} | "
            f"{row['eval']:.1f} |",
            flush=True,
        )
    tutorial, processes = [], []
    flags = [f"--{name.replace('_', '-')}={value}" for name, value in settings.items()]
    for seed in seed_range(args.tutorial_seeds):
        processes.append(train_process_seconds(["CartPole-v1", "--seed", str(seed), *flags]))
        row = tutorial_loop(seed, args.max_steps, args.tutorial_max_seconds)
        tutorial.append(row)
        print(
            f"| {seed} | tutorial loop | {row['solved']} | {row['steps']:,} | {row['seconds']:.2f} | "
            f"{row['cpu']:.2f} | - | "
            f"{row['eval']:.1f} |",
            flush=True,
        )
    print()
    print(
        "| implementation | stopped | median env steps | max env steps | median seconds | max seconds | "
        "median CPU s | worst eval |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    summarise(f"reinforce ({', '.join(args.set) or 'defaults'})", ours)
    summarise("tutorial loop", tutorial)
    if processes:
        # a capped tutorial seed counts with its time so far (a lower bound)
        for index, name in ((0, "wall-clock"), (1, "CPU")):
            key = ("seconds", "cpu")[index]
            loop = statistics.median(float(row[key]) for row in tutorial)
            whole = statistics.median(process[index] for process in processes)
            capped = any(not row["solved"] for row in tutorial)
            print(
                f"\nseeds {args.tutorial_seeds}, {name} seconds: whole `reinforce train` process median {whole:.2f} "
                f"({', '.join(f'{process[index]:.2f}' for process in processes)}); tutorial loop median {loop:.2f}; "
                f"ratio {'>= ' if capped else ''}{loop / whole:.1f}x"
            )


if __name__ == "__main__":
    main()
