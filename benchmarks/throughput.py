"""Env steps per second on CartPole-v1: collection alone, and collect + update, against num_envs.

The first row is the tutorial way (one env, per-step tensor conversion and sampling, update per episode).
Every other row is one (num_envs, episodes per environment) pair: an update consumes ``num_envs *
episodes_per_env`` episodes (``episodes_per_update``; 1 is the default of `reinforce.TrainConfig`). Env steps
count only the steps of the batch's episodes; the step efficiency is their share of the simulated steps (the
rest are reset steps and idle environments waiting for the batch's last episode). Every batch is collected
by the untrained default policy (its parameters and optimizer state are put back after each timed update),
so all rows measure the same workload: episodes of about 20 steps, the hardest case for idle steps.

    python benchmarks/throughput.py [--num-envs 1,4,16,...] [--episodes-per-env 1,16] [--min-steps 20000]

``--samplers ENV_ID,...`` measures instead what collection's samplers give (`MLPSampler` and
`GaussianMLPSampler`: the policy's steps without its modules and Distribution): per env id, two agents with the
shipped settings (``Reinforce(env_id, seed=0)``) train side by side, one with the samplers and one with them
disabled (their ``of`` returning None, the switch the tests use), in interleaved blocks of updates of at least
``--block-steps`` env steps, ``--repeats`` blocks each. It prints training env steps per wall second and per CPU
second of this process, the collection's share of the wall time, the ratio on / off per block (median) and the
load average before and after.

    python benchmarks/throughput.py --samplers HalfCheetah-v5,Hopper-v5 [--repeats 5] [--block-steps 8000]

``--direct-steps ENV_ID,...`` measures the same way what stepping only the sub-envs that a collection still needs
gives (`SyncSteps`, for a `SyncVectorEnv`: MuJoCo, Box2D and users' envs) against ``SyncVectorEnv.step`` of every
sub-env, idle ones included.

    python benchmarks/throughput.py --direct-steps Ant-v5,Hopper-v5,LunarLander-v3 [--repeats 5]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "examples"))

import argparse
import contextlib
import copy
import os
import platform
import statistics
import time
from collections.abc import Iterator

import gymnasium
import torch
from common import machine, versions
from tutorial_reinforce import TutorialAgent

from reinforce import Reinforce, collect
from reinforce.rollout.gaussian_sampler import GaussianMLPSampler
from reinforce.rollout.mlp_sampler import MLPSampler
from reinforce.rollout.sync_steps import SyncSteps

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


@contextlib.contextmanager
def samplers_disabled() -> Iterator[None]:
    """Collection without the samplers: their ``of`` returns None (the policy's own call), as the tests switch it."""
    saved = {kind: kind.__dict__["of"] for kind in (MLPSampler, GaussianMLPSampler)}
    try:
        for kind in saved:
            kind.of = classmethod(lambda cls, *args, **kwargs: None)  # type: ignore[method-assign]
        yield
    finally:
        for kind, of in saved.items():
            kind.of = of  # type: ignore[method-assign]


@contextlib.contextmanager
def direct_steps_disabled() -> Iterator[None]:
    """Collection with ``SyncVectorEnv.step`` of every sub-env: `SyncSteps.of` returns None, as the tests switch it."""
    saved = SyncSteps.__dict__["of"]
    try:
        SyncSteps.of = classmethod(lambda cls, envs: None)  # type: ignore[method-assign,assignment]
        yield
    finally:
        SyncSteps.of = saved  # type: ignore[method-assign]


SWITCHES = {"samplers": samplers_disabled, "direct steps": direct_steps_disabled}
"""What ``--samplers`` and ``--direct-steps`` switch off: a context in which collection goes without it."""


def train_block(agent: Reinforce, block_steps: int) -> tuple[int, float, float, float]:
    """Updates until ``block_steps`` env steps: env steps, wall s, CPU s of this process, wall s of collection."""
    steps, collecting = 0, 0.0
    wall, cpu = time.perf_counter(), time.process_time()
    while steps < block_steps:
        start = time.perf_counter()
        batch = agent.collect_batch()
        collecting += time.perf_counter() - start
        agent.update(batch)
        steps += batch.num_steps
    return steps, time.perf_counter() - wall, time.process_time() - cpu, collecting


def switch_rows(switch: str, env_ids: list[str], repeats: int, block_steps: int) -> None:
    """The table of ``--samplers`` or ``--direct-steps``: training env steps/s with ``switch`` and without."""
    disabled = SWITCHES[switch]
    print(f"# {versions('torch', 'gymnasium', 'numpy', 'mujoco')}; {machine()}")
    print(f"# blocks of >= {block_steps} env steps, {repeats} per mode, interleaved (on, off, on, off, ...)")
    print(
        f"| env | {switch} | env steps | wall s | CPU s | steps/s (wall) | steps/s (CPU) | collection share "
        "| on / off (wall, median per block) | on / off (CPU) | load before / after |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for env_id in env_ids:
        load_before = os.getloadavg()[0]
        agents = {"on": Reinforce(env_id, seed=0), "off": Reinforce(env_id, seed=0)}
        for mode, agent in agents.items():  # one untimed update each: imports, first calls
            with disabled() if mode == "off" else contextlib.nullcontext():
                agent.update()
        totals = {mode: [0, 0.0, 0.0, 0.0] for mode in agents}
        rates: dict[str, list[tuple[float, float]]] = {mode: [] for mode in agents}
        for _ in range(repeats):
            for mode, agent in agents.items():
                with disabled() if mode == "off" else contextlib.nullcontext():
                    block = train_block(agent, block_steps)
                totals[mode] = [total + part for total, part in zip(totals[mode], block, strict=True)]
                rates[mode].append((block[0] / block[1], block[0] / block[2]))
        for agent in agents.values():
            agent.close()
        load_after = os.getloadavg()[0]
        wall_ratio = statistics.median(on[0] / off[0] for on, off in zip(rates["on"], rates["off"], strict=True))
        cpu_ratio = statistics.median(on[1] / off[1] for on, off in zip(rates["on"], rates["off"], strict=True))
        for mode, (steps, wall, cpu, collecting) in totals.items():
            ratios = f"{wall_ratio:.3f} | {cpu_ratio:.3f}" if mode == "on" else " | "
            print(
                f"| {env_id} | {mode} | {steps:,} | {wall:.1f} | {cpu:.1f} | {steps / wall:,.0f} | {steps / cpu:,.0f} "
                f"| {collecting / wall:.2f} | {ratios} | {load_before:.1f} / {load_after:.1f} |",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-envs", default="1,4,16,32,64,256,1024,2048,4096")
    parser.add_argument("--episodes-per-env", default="1,16", help="episodes per update per environment")
    parser.add_argument("--min-steps", type=int, default=20_000, help="env steps timed per row, at least")
    switches = parser.add_mutually_exclusive_group()
    switches.add_argument("--samplers", default="", metavar="ENV_ID,...", help="samplers on / off (see above)")
    switches.add_argument("--direct-steps", default="", metavar="ENV_ID,...", help="direct steps on / off (see above)")
    parser.add_argument("--repeats", type=int, default=5, help="--samplers, --direct-steps: blocks per mode")
    parser.add_argument("--block-steps", type=int, default=8000, help="--samplers, --direct-steps: env steps per block")
    args = parser.parse_args()
    torch.set_num_threads(1)  # reinforce's default; the tutorial loop gets the same
    if args.samplers or args.direct_steps:
        switch = "samplers" if args.samplers else "direct steps"
        switch_rows(switch, (args.samplers or args.direct_steps).split(","), args.repeats, args.block_steps)
        return
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
