"""Rollouts on Ray against local collection: the overhead on CartPole-v1, the speed-up on a slow env.

Every setting runs the untrained default policy, held fixed by a learning rate of 1e-8 so that all of them see
episodes of the same length distribution, for ``--updates`` timed updates after one untimed warm-up update
(which also starts the workers). Each update is split into collection (for Ray: the weights to the object
store, the workers' episodes, the batches back and joined) and the learner's step. From the two Ray rows with
the same size per worker it extrapolates the efficiency of W such workers (weak scaling) between two bounds:
each worker beyond the first adds to the collection time what the second one added here, or nothing; the
learner's time grows with the batch in both.

    python benchmarks/ray_scaling.py [--updates 20] [--envs 32]

The slow env spins 200 us per step (benchmarks/slow_env.py).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import ray
import torch

from reinforce import Reinforce

BENCHMARKS = Path(__file__).parent
sys.path.insert(0, str(BENCHMARKS))
import slow_env  # noqa: E402  (registers SlowCartPole-v1 here; workers import it through the env id)


def measure(env_id: str, envs: int, workers: dict[str, int], updates: int) -> dict[str, float]:
    """Seconds per update (collection, learner) and env steps/s; empty ``workers`` is local collection."""
    extra = {"backend": "ray", **workers} if workers else {}
    # lr 1e-8 holds the policy (every setting sees the same episode-length distribution) at full update cost
    agent = Reinforce(env_id, seed=0, num_envs=envs, stop_on_solve=False, lr=1e-8, **extra)
    agent.update()  # warm-up (it starts the workers)
    steps, collect_s, learn_s = 0, 0.0, 0.0
    for _ in range(updates):
        start = time.perf_counter()
        batch = agent.collect_batch()
        middle = time.perf_counter()
        agent.train_on_batch(batch)
        agent.num_updates += 1  # the next collection seed, as update() would
        learn_s += time.perf_counter() - middle
        collect_s += middle - start
        steps += batch.num_steps
    agent.close()
    return {
        "collect_s": collect_s / updates,
        "learn_s": learn_s / updates,
        "steps_per_update": steps / updates,
        "steps_per_s": steps / (collect_s + learn_s),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--updates", type=int, default=20)
    parser.add_argument("--envs", type=int, default=32, help="environments in all (local, or shared by the workers)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        logging_level="ERROR",
        runtime_env={"env_vars": {"PYTHONPATH": str(BENCHMARKS)}},
    )
    slow_id = "slow_env:SlowCartPole-v1"
    print(
        f"# Ray rollouts vs local, {args.envs} envs and episodes per update, {args.updates} updates; "
        f"torch {torch.__version__}, ray {ray.__version__}, {platform.machine()}, {ray.cluster_resources()['CPU']:g} "
        f"Ray CPUs, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    print()
    print("| env | collection | env steps / update | collect s / update | learner s / update | steps/s | vs local |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    slow_label = f"CartPole-v1 + {slow_env.DEFAULT_STEP_COST_US:g} us/step"
    for env_id, label in (("CartPole-v1", "CartPole-v1"), (slow_id, slow_label)):
        settings = {
            "local": ({}, args.envs),
            "ray, 1 worker": ({"workers": 1}, args.envs),
            "ray, 2 workers sharing the envs": ({"workers": 2}, args.envs),
            "ray, 2 workers, twice the envs": ({"workers": 2, "envs_per_worker": args.envs}, 2 * args.envs),
        }
        rows = {name: measure(env_id, envs, workers, args.updates) for name, (workers, envs) in settings.items()}
        for name, row in rows.items():
            print(
                f"| {label} | {name} | {row['steps_per_update']:,.0f} | {row['collect_s']:.4f} | {row['learn_s']:.4f} "
                f"| {row['steps_per_s']:,.0f} | {row['steps_per_s'] / rows['local']['steps_per_s']:.2f}x |"
            )
        one, two = rows["ray, 1 worker"], rows["ray, 2 workers, twice the envs"]
        # weak scaling, W workers of the 1-worker row's size. The learner's time grows with the batch. Bounds on
        # the collection: each worker beyond the first adds what the second added here (pessimistic: on 2 cores
        # that includes contention with the learner and Ray's own processes), or nothing (the learner bound)
        extra = two["collect_s"] - one["collect_s"]
        base = one["collect_s"] + one["learn_s"]
        cells = []
        for w in (2, 4, 8, 16, 64):
            pessimistic = base / (one["collect_s"] + extra * (w - 1) + one["learn_s"] * w)
            learner_bound = base / (one["collect_s"] + one["learn_s"] * w)
            cells.append(f"W={w}: {pessimistic:.0%}-{learner_bound:.0%}")
        print(f"\n{label}: extrapolated efficiency of W workers of {args.envs} envs each: {', '.join(cells)}\n")
    ray.shutdown()


if __name__ == "__main__":
    main()
