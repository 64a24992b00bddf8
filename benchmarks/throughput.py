"""Env steps per second on CartPole-v1: collection alone, and collect + update, against num_envs.

The first row is the tutorial way (one env, per-step tensor conversion and sampling, update per episode).
Every other row is one (num_envs, episodes per environment) pair: an update consumes ``num_envs *
episodes_per_env`` episodes (``episodes_per_update``; 1 is the default of `reinforce.TrainConfig`). Env steps
count only the steps of the batch's episodes; the step efficiency is their share of the simulated steps (the
rest are reset steps and idle environments waiting for the batch's last episode). Every batch is collected
by the untrained default policy (its parameters and optimizer state are put back after each timed update),
so all rows measure the same workload: episodes of about 20 steps, the hardest case for idle steps.

    python benchmarks/throughput.py [--num-envs 1,4,16,...] [--episodes-per-env 1,16] [--min-steps 20000]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "examples"))

import argparse
import copy
import os
import platform
import time

import gymnasium
import torch
from tutorial_reinforce import TutorialAgent

from reinforce import Reinforce, collect

MIN_TIMED_BATCHES = 2
"""Each row times at least this many batches (after one untimed warm-up batch)."""


def tutorial_row(min_steps: int) -> tuple[float, float]:
    agent = TutorialAgent(seed=0)
    rates = []
    for learn in (False, True):
        steps, start = 0, time.perf_counter()
        while steps < min_steps:
            steps += agent.run_episode(learn=learn)[1]
        rates.append(steps / (time.perf_counter() - start))
    return rates[0], rates[1]


def reinforce_row(num_envs: int, episodes_per_env: int, min_steps: int) -> tuple[float, float, float]:
    """Collect and collect + update env steps/s, and the step efficiency, of one row."""
    episodes = num_envs * episodes_per_env
    agent = Reinforce("CartPole-v1", seed=0, num_envs=num_envs, episodes_per_update=episodes)
    initial = copy.deepcopy((agent.policy.state_dict(), agent.optimizer.state_dict()))
    collect(agent.envs, agent.policy, episodes)  # warm-up
    steps, simulated, batches, collect_time, update_time = 0, 0, 0, 0.0, 0.0
    while steps < min_steps or batches < MIN_TIMED_BATCHES:
        start = time.perf_counter()
        batch = collect(agent.envs, agent.policy, episodes)
        middle = time.perf_counter()
        agent.train_on_batch(batch)
        collect_time += middle - start
        update_time += time.perf_counter() - middle
        steps += batch.num_steps
        simulated += batch.mask.numel()
        batches += 1
        agent.policy.load_state_dict(initial[0])
        agent.optimizer.load_state_dict(initial[1])
    agent.close()
    return steps / collect_time, steps / (collect_time + update_time), steps / simulated


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-envs", default="1,4,16,32,64,256,1024,2048,4096")
    parser.add_argument("--episodes-per-env", default="1,16", help="episodes per update per environment")
    parser.add_argument("--min-steps", type=int, default=20_000, help="env steps timed per row, at least")
    args = parser.parse_args()
    torch.set_num_threads(1)  # reinforce's default; the tutorial loop gets the same
    print(
        f"# CartPole-v1 throughput, Python {platform.python_version()}, torch {torch.__version__}, "
        f"gymnasium {gymnasium.__version__}, {platform.machine()}, {os.cpu_count()} CPUs, torch threads 1"
    )
    print(
        "| implementation | num_envs | episodes per update | step efficiency "
        "| collect env steps/s | collect + update env steps/s |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    collect_rate, total_rate = tutorial_row(args.min_steps)
    print(f"| tutorial loop | 1 | 1 | | {collect_rate:,.0f} | {total_rate:,.0f} |", flush=True)
    for episodes_per_env in (int(k) for k in args.episodes_per_env.split(",")):
        for num_envs in (int(n) for n in args.num_envs.split(",")):
            collect_rate, total_rate, efficiency = reinforce_row(num_envs, episodes_per_env, args.min_steps)
            print(
                f"| reinforce | {num_envs} | {num_envs * episodes_per_env} | {efficiency:.2f} "
                f"| {collect_rate:,.0f} | {total_rate:,.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
