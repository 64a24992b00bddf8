"""Training throughput beside Stable-Baselines3's A2C and the env's raw step rate (issue 14).

For each task, in one process and interleaved (``--repeats`` rounds of: reinforce, A2C, the raw env), so that the
machine's load weighs on all three alike:

* reinforce: ``Reinforce(task, seed=0, stop_on_solve=False)`` with the values shipped for the task, ``learn``
  for ``--steps`` env steps; env steps per second of ``learn`` (collection and updates);
* SB3 A2C: ``A2C("MlpPolicy", make_vec_env(task, n_envs=N), device="cpu")`` with SB3's defaults (5 steps per
  update) and N = reinforce's ``num_envs`` for the task, ``learn(total_timesteps=--steps)``;
* raw: one ``gymnasium.make(task)`` stepped alone with random actions (`suite.raw_step_rate`): the limit of one
  env on one core.

Both learners run with one torch thread (reinforce's default, set for A2C), on the CPU. Needs
stable-baselines3 (``pip install -c constraints.txt stable-baselines3``: the pinned torch stays).

    python benchmarks/sb3_throughput.py --tasks CartPole-v1,Pendulum-v1,HalfCheetah-v5 --steps 100000
        [--repeats 2] [--out benchmarks/results/sb3-throughput-DATE.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from common import machine, versions
from suite import raw_step_rate


def reinforce_rate(task: str, steps: int) -> tuple[float, float, int]:
    """(env steps per wall second, per CPU second, num_envs) of ``learn`` with the values shipped for ``task``."""
    import reinforce

    agent = reinforce.Reinforce(task, seed=0, stop_on_solve=False)
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        agent.learn(steps)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        return agent.num_env_steps / wall, agent.num_env_steps / cpu, agent.config.num_envs
    finally:
        agent.close()


def a2c_rate(task: str, steps: int, num_envs: int) -> tuple[float, float]:
    """(env steps per wall second, per CPU second) of SB3's A2C with its defaults and ``num_envs`` envs."""
    from stable_baselines3 import A2C
    from stable_baselines3.common.env_util import make_vec_env

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    envs = make_vec_env(task, n_envs=num_envs, seed=0)
    try:
        model = A2C("MlpPolicy", envs, device="cpu", seed=0)
        wall, cpu = time.perf_counter(), time.process_time()
        model.learn(total_timesteps=steps)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        return model.num_timesteps / wall, model.num_timesteps / cpu
    finally:
        envs.close()
        torch.set_num_threads(previous)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="CartPole-v1,Pendulum-v1,HalfCheetah-v5")
    parser.add_argument("--steps", type=int, default=100_000, help="env steps of each training run")
    parser.add_argument("--raw-steps", type=int, default=20_000, help="steps of each raw step-rate measurement")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved rounds; the table gives medians")
    parser.add_argument("--out", default=None, help="write the measurements to this JSON file")
    args = parser.parse_args()

    rows: list[dict[str, Any]] = []
    print(f"{machine()}; {versions('torch', 'gymnasium', 'stable-baselines3')}; {datetime.date.today()}")
    print(f"{args.steps:,} env steps per training run, {args.repeats} interleaved rounds, medians; steps/s (CPU s)")
    print()
    print("| task | envs | reinforce steps/s | SB3 A2C steps/s | reinforce / A2C | raw env steps/s (1 env) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for task in args.tasks.split(","):
        measured: dict[str, list[float]] = {name: [] for name in ("ours", "ours_cpu", "a2c", "a2c_cpu", "raw")}
        num_envs = 0
        for _ in range(args.repeats):
            wall, cpu, num_envs = reinforce_rate(task, args.steps)
            measured["ours"].append(wall)
            measured["ours_cpu"].append(cpu)
            wall, cpu = a2c_rate(task, args.steps, num_envs)
            measured["a2c"].append(wall)
            measured["a2c_cpu"].append(cpu)
            measured["raw"].append(raw_step_rate(task, args.raw_steps))
        median = {name: statistics.median(values) for name, values in measured.items()}
        rows.append({"task": task, "num_envs": num_envs, "steps": args.steps, **measured})
        print(
            f"| {task} | {num_envs} | {median['ours']:,.0f} ({median['ours_cpu']:,.0f}) "
            f"| {median['a2c']:,.0f} ({median['a2c_cpu']:,.0f}) | {median['ours'] / median['a2c']:.1f}x "
            f"| {median['raw']:,.0f} |",
            flush=True,
        )
    if args.out:
        record = {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine(),
            "versions": versions("torch", "gymnasium", "stable-baselines3"),
            "rows": rows,
        }
        Path(args.out).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
