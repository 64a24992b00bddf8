"""K CartPole seeds as one population against one seed alone and the K seeds one after the other.

Every arm trains to the training criterion (stop_on_solve, 100-episode mean of training returns >= 475) or the
budget, in this process, with one torch thread; seconds are wall time of training only (imports, env and agent
construction excluded; the population's construction is reported apart). Compare ratios within one run of the
script: other work on the machine moves absolute seconds.

    python benchmarks/population.py [--seeds 0-9] [--max-steps 300000] [--set num_envs=16 ...]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import add_set_option, overrides, seed_range

from reinforce import Population, Reinforce


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0-9")
    parser.add_argument("--max-steps", type=int, default=300_000)
    parser.add_argument("--env", default="CartPole-v1")
    add_set_option(parser)
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = seed_range(args.seeds)
    settings = overrides(args.set)

    print("| seed | arm | solved | env steps | updates | seconds |")
    print("| ---: | --- | --- | ---: | ---: | ---: |")
    separate: list[tuple[bool, int, float]] = []
    for seed in seeds:
        agent = Reinforce(args.env, seed=seed, **settings)  # type: ignore[arg-type]
        start = time.perf_counter()
        agent.learn(args.max_steps)
        seconds = time.perf_counter() - start
        separate.append((agent.solved, agent.num_env_steps, seconds))
        print(f"| {seed} | alone | {agent.solved} | {agent.num_env_steps:,} | {agent.num_updates} | {seconds:.2f} |")
        agent.close()

    start = time.perf_counter()
    population = Population(args.env, seeds, **settings)  # type: ignore[arg-type]
    built = time.perf_counter() - start
    start = time.perf_counter()
    population.learn(args.max_steps)
    together = time.perf_counter() - start
    for seed, member in zip(seeds, population.members, strict=True):
        print(f"| {seed} | population | {member.solved} | {member.num_env_steps:,} | {member.num_updates} | - |")
    population.close()

    members = population.members
    print()
    print("| arm | solved | median env steps | max env steps | wall seconds |")
    print("| --- | --- | ---: | ---: | ---: |")
    print(
        f"| seed {seeds[0]} alone | {int(separate[0][0])}/1 | {separate[0][1]:,} | {separate[0][1]:,} | "
        f"{separate[0][2]:.2f} |"
    )
    steps = [row[1] for row in separate]
    print(
        f"| {len(seeds)} seeds one after the other | {sum(row[0] for row in separate)}/{len(seeds)} | "
        f"{statistics.median(steps):,.0f} | {max(steps):,} | {sum(row[2] for row in separate):.2f} |"
    )
    steps = [member.num_env_steps for member in members]
    print(
        f"| {len(seeds)} seeds as one population | {sum(member.solved for member in members)}/{len(seeds)} | "
        f"{statistics.median(steps):,.0f} | {max(steps):,} | {together:.2f} (+{built:.2f} to build) |"
    )
    median_alone = statistics.median(row[2] for row in separate)
    print()
    print(
        f"population / seed {seeds[0]} alone: {together / separate[0][2]:.2f}x; population / median seed alone: "
        f"{together / median_alone:.2f}x; population / one after the other: "
        f"{together / sum(row[2] for row in separate):.2f}x"
    )


if __name__ == "__main__":
    main()
