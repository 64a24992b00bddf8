"""Seeded-run fingerprints: env steps, updates and a hash of the final parameters of short seeded runs.

A refactor that claims "no change of behaviour" records these before and after on the same machine and compares
them (seeded runs repeat exactly on one machine and library build, not across CPUs):

    python benchmarks/fingerprint.py --out before.jsonl
    ... change the code ...
    python benchmarks/fingerprint.py --out after.jsonl --compare before.jsonl

Each case trains through the public Python API (``reinforce.Reinforce(...).learn(total_steps)``) and hashes
every tensor of the policy's ``state_dict`` (observation-normalisation statistics included) and, with a value
baseline, of the value network.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
from common import machine, versions

import reinforce

CASES: dict[str, tuple[str, int, dict[str, Any]]] = {
    # name: (env id, total steps, hyperparameter overrides)
    "cartpole-defaults": ("CartPole-v1", 60_000, {}),
    "cartpole-value": ("CartPole-v1", 40_000, {"baseline": "value"}),
    "cartpole-running-mean": ("CartPole-v1", 40_000, {"baseline": "running_mean"}),
    "cartpole-per-step": ("CartPole-v1", 3_000, {"update": "per_step", "num_envs": 4}),
    "inverted-pendulum": ("InvertedPendulum-v5", 30_000, {}),
    "pendulum-value-normalized": ("Pendulum-v1", 16_000, {"baseline": "value", "bootstrap_truncated": True}),
}


def state_hash(agent: Any) -> str:
    """SHA-256 over the names, shapes and bytes of the policy's state tensors and the value network's parameters.

    (The value network's parameters, not its state_dict: where it shares the policy's normalisation statistics,
    they are the policy's, hashed once.)
    """
    digest = hashlib.sha256()
    tensors: list[tuple[str, torch.Tensor]] = [(f"policy.{k}", v) for k, v in agent.policy.state_dict().items()]
    value = getattr(agent, "value_function", None)
    if value is None:
        value = getattr(getattr(agent, "baseline", None), "network", None)
    if value is not None:
        tensors += [(f"value.{k}", v) for k, v in value.named_parameters()]
    for name, tensor in sorted(tensors, key=lambda item: item[0]):
        array = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(array.shape)}:{array.dtype}".encode())
        digest.update(array.numpy().tobytes())
    return digest.hexdigest()[:16]


def run_case(name: str, seed: int) -> dict[str, Any]:
    """Train one case with one seed and return its fingerprint."""
    env_id, total_steps, hyperparameters = CASES[name]
    start = time.perf_counter()
    agent = reinforce.Reinforce(env_id, seed=seed, **hyperparameters)
    try:
        agent.learn(total_steps=total_steps)
        return {
            "case": name,
            "seed": seed,
            "env_steps": agent.num_env_steps,
            "updates": agent.num_updates,
            "state": state_hash(agent),
            "seconds": round(time.perf_counter() - start, 2),
        }
    finally:
        agent.close()


def main() -> int:
    """Run every case for every seed, write JSON lines, optionally compare with an earlier file."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated seeds")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated case names")
    parser.add_argument("--out", type=Path, required=True, help="JSON-lines file to write")
    parser.add_argument("--compare", type=Path, help="an earlier --out file: report every difference")
    args = parser.parse_args()
    print(f"# {machine()}; {versions('torch', 'gymnasium', 'numpy')}")
    rows = []
    with args.out.open("w") as out:
        for name in args.cases.split(","):
            for seed in (int(text) for text in args.seeds.split(",")):
                row = run_case(name, seed)
                rows.append(row)
                out.write(json.dumps(row) + "\n")
                out.flush()
                print(
                    f"{name:28s} seed {seed}: {row['env_steps']:>7,} steps {row['updates']:>5} updates "
                    f"state {row['state']} ({row['seconds']:.1f} s)"
                )
    if args.compare is None:
        return 0
    before = {(row["case"], row["seed"]): row for row in map(json.loads, args.compare.read_text().splitlines())}
    differences = 0
    for row in rows:
        old = before.get((row["case"], row["seed"]))
        keys = ("env_steps", "updates", "state")
        if old is None or any(old[key] != row[key] for key in keys):
            differences += 1
            print(f"DIFFERENT {row['case']} seed {row['seed']}: before {old}, after {row}")
    print(f"{len(rows) - differences} of {len(rows)} runs identical to {args.compare}")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
