"""Env steps per second on CartPole-v1: collection alone, and collect + update, against num_envs.

The first row is the tutorial way (one env, per-step tensor conversion and sampling, update per episode).

    python benchmarks/throughput.py [--num-envs 1,4,16,64,256,1024] [--min-steps 20000]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "examples"))

import argparse
import os
import platform
import time

import torch
from tutorial_reinforce import TutorialAgent

from reinforce import Reinforce, collect


def tutorial_row(min_steps: int) -> tuple[float, float]:
    agent = TutorialAgent(seed=0)
    rates = []
    for learn in (False, True):
        steps, start = 0, time.perf_counter()
        while steps < min_steps:
            steps += agent.run_episode(learn=learn)[1]
        rates.append(steps / (time.perf_counter() - start))
    return rates[0], rates[1]


def reinforce_row(num_envs: int, min_steps: int) -> tuple[float, float]:
    agent = Reinforce("CartPole-v1", seed=0, num_envs=num_envs)
    collect(agent.envs, agent.policy, num_envs)  # warm-up
    steps, collect_time, update_time = 0, 0.0, 0.0
    while steps < min_steps:
        start = time.perf_counter()
        batch = collect(agent.envs, agent.policy, num_envs)
        middle = time.perf_counter()
        agent.train_on_batch(batch)
        collect_time += middle - start
        update_time += time.perf_counter() - middle
        steps += batch.num_steps
    agent.close()
    return steps / collect_time, steps / (collect_time + update_time)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-envs", default="1,4,16,64,256,1024")
    parser.add_argument("--min-steps", type=int, default=20_000)
    args = parser.parse_args()
    torch.set_num_threads(1)  # reinforce's default; the tutorial loop gets the same
    print(
        f"# CartPole-v1 throughput, torch {torch.__version__}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, torch threads 1 for both"
    )
    print("| implementation | num_envs | collect env steps/s | collect + update env steps/s |")
    print("| --- | ---: | ---: | ---: |")
    collect_rate, total_rate = tutorial_row(args.min_steps)
    print(f"| tutorial loop | 1 | {collect_rate:,.0f} | {total_rate:,.0f} |", flush=True)
    for num_envs in (int(n) for n in args.num_envs.split(",")):
        collect_rate, total_rate = reinforce_row(num_envs, max(args.min_steps, 2 * num_envs * 10))
        print(f"| reinforce | {num_envs} | {collect_rate:,.0f} | {total_rate:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
