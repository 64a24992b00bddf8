"""Env steps and training seconds to solve CartPole-v1: reinforce against its peers, one criterion, one run.

Every contender trains in its own process (`contenders.py`, which says exactly what it measures) until a
100-episode greedy evaluation averages >= 475, or a budget runs out; reinforce and the two single-file loops run
with the project's `.venv` (as a user runs them), Tianshou and Stable-Baselines3 with `benchmarks/peers/.venv`,
which `make -C benchmarks/peers install` builds and which nothing else uses. Prints one row per run, then the
median and max over the seeds each contender solved and the ratios of its medians to reinforce's.

    make install && make -C benchmarks/peers install
    benchmarks/peers/.venv/bin/python benchmarks/peers/run.py [--seeds 0-4] [--contenders reinforce,sb3-a2c,...]
        [--max-steps 300000] [--max-seconds 300] [--eval-every 1000] [--num-threads 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # benchmarks/common.py

from common import machine as describe_machine
from common import seed_range
from contenders import CONTENDERS, EVAL_EPISODES, RESULT_PREFIX, SOLVED_MEAN_RETURN

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def run_one(python: Path, name: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """One contender, one seed, in a fresh interpreter; adds the whole process's wall clock."""
    command = [
        str(python),
        str(HERE / "contenders.py"),
        name,
        f"--seed={seed}",
        f"--max-steps={args.max_steps}",
        f"--max-seconds={args.max_seconds}",
        f"--eval-every={args.eval_every}",
        f"--num-threads={args.num_threads}",
    ]
    start = time.perf_counter()
    process = subprocess.run(command, capture_output=True, text=True, check=False)
    wall_s = time.perf_counter() - start
    lines = [line for line in process.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if process.returncode != 0 or not lines:
        tail = "\n".join((process.stderr or process.stdout).strip().splitlines()[-15:])
        print(f"{name} seed {seed} failed (exit status {process.returncode}):\n{tail}", file=sys.stderr)
        return {"contender": name, "seed": seed, "error": tail, "process_s": wall_s}
    return {**json.loads(lines[-1][len(RESULT_PREFIX) :]), "process_s": wall_s}


def run_row(result: dict[str, Any]) -> str:
    label = CONTENDERS[result["contender"]].label
    if "error" in result:
        return f"| {label} | {result['seed']} | error | - | - | - | - | - | - | {result['process_s']:.1f} |"
    last = result["last_eval"]
    return (
        f"| {label} | {result['seed']} | {result['solved']} | {result['env_steps']:,} | {result['train_s']:.2f} | "
        f"{result['eval_s']:.2f} ({result['evaluations']}) | {'-' if last is None else f'{last:.1f}'} | "
        f"{result['setup_s']:.2f} | {result['import_s']:.2f} | {result['process_s']:.1f} |"
    )


def summarise(name: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    """Solved count, median and max env steps and training seconds over the solved seeds."""
    solved = [result for result in results if result.get("solved")]
    summary: dict[str, Any] = {"contender": name, "solved": len(solved), "runs": len(results)}
    for key in ("env_steps", "train_s"):
        values = [float(result[key]) for result in solved]
        summary[f"median_{key}"] = statistics.median(values) if values else None
        summary[f"max_{key}"] = max(values) if values else None
    return summary


def ratio(value: float | None, reference: float | None) -> str:
    return "-" if value is None or not reference else f"{value / reference:.2f}"


def summary_row(summary: dict[str, Any], reference: dict[str, Any] | None) -> str:
    def number(key: str, spec: str) -> str:
        value = summary[key]
        return "-" if value is None else format(value, spec)

    ratios = ["-", "-"]
    if reference is not None:
        ratios = [ratio(summary[key], reference[key]) for key in ("median_env_steps", "median_train_s")]
    return (
        f"| {CONTENDERS[summary['contender']].label} | {summary['solved']}/{summary['runs']} | "
        f"{number('median_env_steps', ',.0f')} | {number('max_env_steps', ',.0f')} | "
        f"{number('median_train_s', '.2f')} | {number('max_train_s', '.2f')} | {ratios[0]} | {ratios[1]} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0-4", help="e.g. 0-4 or 0,3,7")
    parser.add_argument("--contenders", default=",".join(CONTENDERS), help=f"from: {', '.join(CONTENDERS)}")
    parser.add_argument("--max-steps", type=int, default=300_000, help="env-step budget per run")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="training-seconds budget per run")
    parser.add_argument("--eval-every", type=int, default=1_000, help="env steps between checks, at least")
    parser.add_argument("--num-threads", type=int, default=1, help="torch threads; 0 leaves each library's default")
    parser.add_argument("--project-python", type=Path, default=REPO / ".venv" / "bin" / "python")
    parser.add_argument("--peers-python", type=Path, default=HERE / ".venv" / "bin" / "python")
    parser.add_argument("--json", type=Path, help="also write every run and the summary to this file")
    args = parser.parse_args()
    names = [name for name in args.contenders.split(",") if name]
    unknown = [name for name in names if name not in CONTENDERS]
    if unknown:
        parser.error(f"unknown contender(s) {', '.join(unknown)}; choose from {', '.join(CONTENDERS)}")
    pythons = {"project": args.project_python, "peers": args.peers_python}
    for venv in {CONTENDERS[name].venv for name in names}:
        if not pythons[venv].exists():
            setup = "make install" if venv == "project" else "make -C benchmarks/peers install"
            parser.error(f"{pythons[venv]} does not exist: run `{setup}` first")
    seeds = seed_range(args.seeds)

    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = describe_machine()
    print(f"{date}; {machine}")
    print(
        f"CartPole-v1, solved = {EVAL_EPISODES}-episode greedy evaluation >= {SOLVED_MEAN_RETURN:g}, checked at "
        f"update boundaries at least {args.eval_every:,} env steps apart; budget {args.max_steps:,} env steps and "
        f"{args.max_seconds:g} s of training; torch threads: {args.num_threads or 'library defaults'}"
    )
    print()
    print(
        "| contender | seed | solved | env steps | train s | eval s (checks) | last eval | setup s | import s | "
        "process s |"
    )
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    results = []
    for name in names:
        for seed in seeds:
            result = run_one(pythons[CONTENDERS[name].venv], name, seed, args)
            results.append(result)
            print(run_row(result), flush=True)

    summaries = [summarise(name, [result for result in results if result["contender"] == name]) for name in names]
    reference = next((summary for summary in summaries if summary["contender"] == "reinforce"), None)
    print()
    print(
        "| contender | solved | median env steps | max env steps | median train s | max train s | "
        "env steps / reinforce's | train s / reinforce's |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for summary in summaries:
        print(summary_row(summary, reference))
    versions: dict[str, set[str]] = {}  # the two environments pin the same versions; show it if they differ
    for result in results:
        for package, version in result.get("versions", {}).items():
            versions.setdefault(package, set()).add(version)
    python = next((result["python"] for result in results if "python" in result), platform.python_version())
    print()
    print(
        f"Python {python}; "
        + ", ".join(f"{name} {' / '.join(sorted(found))}" for name, found in sorted(versions.items()))
    )
    if args.json is not None:
        document = {
            "date": date,
            "machine": machine,
            "settings": {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()},
            "versions": {package: sorted(found) for package, found in versions.items()},
            "runs": results,
            "summary": summaries,
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
