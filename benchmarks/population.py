"""K CartPole seeds as one population against one seed alone and the K seeds one after the other.

Every arm trains to its config's stop (the defaults: the verified stop, a deterministic policy whose check and
100-episode confirmation reach 475; each member has its own) or the budget, in this process, with one torch
thread; seconds are wall time of training only, checks included (imports, env and agent construction excluded;
the population's construction is reported apart), and beside them this process's CPU seconds (less moved by
other work on the machine). Compare ratios within one run of the
script: other work on the machine moves absolute seconds.

With ``--processes ROUNDS``, whole processes instead, what a user runs and waits for: ``reinforce train ENV
--seeds SEEDS`` against ``reinforce train ENV --seed S`` for each seed (imports, training, checkpoints, curves,
evaluations, exit; CPU time includes the curves' child process), interleaved: per round a population process,
each seed's process, a population process again.

    python benchmarks/population.py [--seeds 0-9] [--max-steps 300000] [--set num_envs=16 ...]
    python benchmarks/population.py --processes 2 [--seeds 0-9]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from common import add_set_option, machine, overrides, seed_range, train_process_seconds

from reinforce import Population, Reinforce
from reinforce.config import stops_on
from reinforce.verification import make_verifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0-9")
    parser.add_argument("--max-steps", type=int, default=300_000)
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--processes", type=int, default=0, metavar="ROUNDS", help="whole processes (see above)")
    add_set_option(parser)
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = seed_range(args.seeds)
    settings = overrides(args.set)
    if args.processes:
        compare_processes(args.env, args.seeds, seeds, args.processes)
        return

    print("| seed | arm | solved | env steps | updates | seconds | CPU seconds |")
    print("| ---: | --- | --- | ---: | ---: | ---: | ---: |")
    warm_up = Reinforce(args.env, seed=1_000_000, **settings)  # type: ignore[arg-type]
    warm_up.learn(1)  # the first update in a process pays one-off costs (lazy imports, allocator): not a seed's
    warm_up.close()
    separate: list[tuple[bool, int, float, float]] = []
    for seed in seeds:
        agent = Reinforce(args.env, seed=seed, **settings)  # type: ignore[arg-type]
        verifier = make_verifier(agent)
        start, cpu = time.perf_counter(), time.process_time()
        agent.learn(args.max_steps, callback=verifier)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        solved = agent.solved if verifier is None else verifier.verified is not None
        separate.append((solved, agent.num_env_steps, seconds, cpu))
        print(
            f"| {seed} | alone | {solved} | {agent.num_env_steps:,} | {agent.num_updates} | {seconds:.2f} | {cpu:.2f} |"
        )
        agent.close()

    start = time.perf_counter()
    population = Population(args.env, seeds, **settings)  # type: ignore[arg-type]
    built = time.perf_counter() - start
    start, cpu = time.perf_counter(), time.process_time()
    population.learn(args.max_steps)
    together, together_cpu = time.perf_counter() - start, time.process_time() - cpu
    together_solved = []
    for seed, member in zip(seeds, population.members, strict=True):
        verifier = population.verifiers.get(seed)
        solved = member.solved if verifier is None else verifier.verified is not None
        together_solved.append(solved)
        print(f"| {seed} | population | {solved} | {member.num_env_steps:,} | {member.num_updates} | - | - |")
    population.close()
    print(f"\nstop: {stops_on(population.config)}")

    members = population.members
    print()
    print("| arm | solved | median env steps | max env steps | wall seconds | CPU seconds |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    first = separate[0]
    print(
        f"| seed {seeds[0]} alone | {int(first[0])}/1 | {first[1]:,} | {first[1]:,} | {first[2]:.2f} | {first[3]:.2f} |"
    )
    steps = [row[1] for row in separate]
    print(
        f"| {len(seeds)} seeds one after the other | {sum(row[0] for row in separate)}/{len(seeds)} | "
        f"{statistics.median(steps):,.0f} | {max(steps):,} | {sum(row[2] for row in separate):.2f} | "
        f"{sum(row[3] for row in separate):.2f} |"
    )
    steps = [member.num_env_steps for member in members]
    print(
        f"| {len(seeds)} seeds as one population | {sum(together_solved)}/{len(seeds)} | "
        f"{statistics.median(steps):,.0f} | {max(steps):,} | {together:.2f} (+{built:.2f} to build) | "
        f"{together_cpu:.2f} |"
    )
    print()
    for name, index, total in (("wall", 2, together), ("CPU", 3, together_cpu)):
        median_alone = statistics.median(row[index] for row in separate)
        mean_alone = statistics.mean(row[index] for row in separate)
        print(
            f"{name}: population / seed {seeds[0]} alone: {total / first[index]:.2f}x; population / mean seed "
            f"alone: {total / mean_alone:.2f}x; population / median seed alone: {total / median_alone:.2f}x; "
            f"population / one after the other: {total / sum(row[index] for row in separate):.2f}x"
        )


def compare_processes(env_id: str, seeds_text: str, seeds: list[int], rounds: int) -> None:
    """``--processes``: whole population processes against each seed's own process, interleaved; the ratios."""
    print(f"# {machine()}, load before: {os.getloadavg()[0]:.1f}")
    print("| round | process | wall s | CPU s |")
    print("| ---: | --- | ---: | ---: |")
    together: list[tuple[float, float]] = []
    alone: dict[int, list[tuple[float, float]]] = {seed: [] for seed in seeds}
    for index in range(rounds):
        for arm in ["population", *seeds, "population"]:
            if arm == "population":
                seconds = train_process_seconds([env_id, "--seeds", seeds_text])
                together.append(seconds)
                label = f"--seeds {seeds_text}"
            else:
                seconds = train_process_seconds([env_id, "--seed", str(arm)])
                alone[int(arm)].append(seconds)
                label = f"--seed {arm}"
            print(f"| {index} | {label} | {seconds[0]:.2f} | {seconds[1]:.2f} |", flush=True)
    print(f"\nload after: {os.getloadavg()[0]:.1f}")
    for name, column in (("wall", 0), ("CPU", 1)):
        population = statistics.median(row[column] for row in together)
        per_seed = [statistics.median(row[column] for row in rows) for rows in alone.values()]
        mean_alone = statistics.mean(per_seed)
        print(
            f"{name}: population process (median {population:.2f} s) / mean seed's process ({mean_alone:.2f} s): "
            f"{population / mean_alone:.2f}x; / seed {seeds[0]}'s process ({per_seed[0]:.2f} s): "
            f"{population / per_seed[0]:.2f}x; / the seeds' processes one after the other: "
            f"{population / sum(per_seed):.2f}x"
        )


if __name__ == "__main__":
    main()
