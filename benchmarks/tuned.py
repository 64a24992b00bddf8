"""The shipped per-environment hyperparameters (src/reinforce/hyperparams.yaml) over seeds.

For each environment and seed: train with the shipped values (plus any ``--set`` overrides) up to the step
budget (stopping early once the 100-episode training mean reaches the reward threshold, as `reinforce train`
does), then evaluate the deterministic policy over 100 episodes. Prints a Markdown table.

    python benchmarks/tuned.py Acrobot-v1 InvertedPendulum-v5 [--seeds 0-4] [--max-steps 1000000]
                               [--set lr=0.01 ...] [--verbose]
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
from common import add_set_option, overrides, seed_range

from reinforce import Reinforce


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("env_ids", nargs="+")
    parser.add_argument("--seeds", default="0-4")
    parser.add_argument("--max-steps", type=int, default=1_000_000)
    parser.add_argument("--eval-episodes", type=int, default=100)
    add_set_option(parser)
    parser.add_argument("--verbose", action="store_true", help="print the training mean every 10 updates")
    args = parser.parse_args()
    settings = overrides(args.set)

    print("| env | seed | solved (training) | env steps | updates | last-100 training mean | deterministic eval |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: |")
    for env_id in args.env_ids:
        evals = []
        for seed in seed_range(args.seeds):
            agent = Reinforce(env_id, seed=seed, **settings)
            target = args.max_steps
            while agent.num_env_steps < target and not (agent.config.stop_on_solve and agent.solved):
                metrics = agent.update()
                if args.verbose and agent.num_updates % 10 == 0:
                    print(
                        f"  {env_id} seed {seed} update {agent.num_updates} steps {agent.num_env_steps:,} "
                        f"mean100 {metrics['charts/episode_return_mean_100']:.1f} "
                        f"entropy {metrics['losses/entropy']:.2f}",
                        flush=True,
                    )
            evaluation = agent.evaluate(episodes=args.eval_episodes)
            evals.append(evaluation["mean_return"])
            print(
                f"| {env_id} | {seed} | {agent.solved} | {agent.num_env_steps:,} | {agent.num_updates} | "
                f"{float(np.mean(agent.recent_returns)):.1f} | {evaluation['mean_return']:.1f} |",
                flush=True,
            )
            agent.close()
        print(
            f"| {env_id} | all | | | | | median {statistics.median(evals):.1f}, worst {min(evals):.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
