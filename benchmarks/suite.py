"""The benchmark suite (issue 14): tasks x seeds x budget -> raw JSON lines, then a table and curves.

``run`` trains each (task, seed) as ``reinforce train TASK --seed S --eval-episodes 100`` does, through the
Python API: `reinforce.Reinforce` with the shipped values (plus any ``--set`` overrides), ``learn`` up to the
budget (stopping early once solved by the config's ``solve_criterion``, as the CLI does), then
a deterministic evaluation of the FINAL policy, and a second one of as many episodes from a fresh seed (the
first repeats the verified stop's confirmation, which used the same evaluation seed; a user's own program
plays other episodes). Each trial appends one JSON line to ``--out`` as it finishes;
trials the file already holds (same task, seed, settings and budget) are skipped, so a killed run restarts
where it stopped. Judge on seeds 100 and up: the shipped values were tuned on seeds 0-9.

``report`` reads JSONL files and prints a Markdown table per (task, settings, budget): the final deterministic
return's mean ± std over seeds, a bootstrap 95% confidence interval of that mean, and how many seeds reach the
task's target (issue 14); ``--curves`` draws the training means (mean over seeds, band: min to max).

    python benchmarks/suite.py run --tasks Acrobot-v1,LunarLander-v3 --seeds 100-109 --budget shipped
                                   --out benchmarks/results/suite-NAME.jsonl [--set lr=0.01 ...] [--jobs 2]
    python benchmarks/suite.py report benchmarks/results/suite-*.jsonl [--write FILE.md] [--curves FILE.png]
    python benchmarks/suite.py raw --tasks Acrobot-v1,Pendulum-v1

Throughput: each trial also records the raw single-env step rate of its task (``raw``: one env, random actions,
nothing else), measured in the same process right after training, so a table row's training steps/s stands beside
the limit of the same env on the same machine at the same moment.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime
import json
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
from common import add_set_option, cpu_model, machine, overrides, seed_range, versions

from reinforce.config_checks import seeds_text

TARGETS: dict[str, tuple[float, str]] = {
    "CartPole-v1": (475.0, "the env's reward threshold"),
    "Acrobot-v1": (-100.0, "the env's reward threshold"),
    "InvertedPendulum-v5": (950.0, "the env's reward threshold"),
    "LunarLander-v3": (200.0, "the env's reward threshold"),
    "Pendulum-v1": (-200.0, "issue 14"),
    "HalfCheetah-v5": (884.0, "better of Tianshou REINFORCE / Spinning Up VPG"),
    "Hopper-v5": (815.0, "better of Tianshou REINFORCE / Spinning Up VPG"),
    "Walker2d-v5": (471.0, "better of Tianshou REINFORCE / Spinning Up VPG"),
    "Swimmer-v5": (52.0, "better of Tianshou REINFORCE / Spinning Up VPG"),
    "Ant-v5": (475.0, "better of Tianshou REINFORCE / Spinning Up VPG"),
    "InvertedDoublePendulum-v5": (1060.0, "better of Tianshou REINFORCE / Spinning Up VPG"),
    "Reacher-v5": (-10.5, "better of Tianshou REINFORCE / Spinning Up VPG"),
}
"""Per task: the final deterministic mean return a seed must reach (issue 14), and where the figure comes from."""

DISTRIBUTIONS = ("torch", "gymnasium", "numpy", "reinforce")
CURVE_POINTS = 200
"""At most this many (env steps, training mean) points of each trial's curve are kept."""
FRESH_EVALUATION_SEED = 7_000_000
"""Plus the trial's seed: the env seed of a second final evaluation, one that no check or confirmation used."""


def trial_key(task: str, seed: int, settings: dict[str, Any], budget: str, config: dict[str, Any]) -> str:
    """The identity of a trial in a results file: task, seed, settings, budget as given and the whole config.

    The config (the shipped values with ``settings`` over them) is part of it, so that a trial run before a
    change to hyperparams.yaml is not taken for one of the new values: after such a change the task runs again.
    """
    return json.dumps([task, seed, settings, budget, config_text(config)], sort_keys=True)


def config_text(config: dict[str, Any]) -> str:
    """A recorded config as comparable text: the fields added to `TrainConfig` since it was written get defaults.

    A config that `TrainConfig` no longer reads (a field since removed) is compared as it was written.
    """
    from reinforce.config import TrainConfig
    from reinforce.errors import ReinforceError

    with contextlib.suppress(ReinforceError):
        config = TrainConfig.from_dict(config).to_dict()
    return json.dumps(config, sort_keys=True)


def trial_config(task: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The config ``Reinforce(task, **settings)`` trains with: the values shipped for ``task``, ``settings`` over."""
    from reinforce.settings import resolve

    return resolve(task, overrides=settings).to_dict()


def read_results(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """The trials recorded in ``paths`` (JSON lines; a missing file holds none, a torn last line is skipped)."""
    rows = []
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut short by a killed run: that trial runs again
                continue
    return rows


def budget_steps(task: str, budget: str) -> int:
    """``budget`` in env steps: a number, or ``shipped`` (the budget `reinforce train TASK` uses by default)."""
    if budget != "shipped":
        return int(budget)
    from reinforce.cli.options import DEFAULT_TOTAL_STEPS
    from reinforce.settings import shipped_total_steps

    shipped = shipped_total_steps(task)
    return shipped if shipped is not None else DEFAULT_TOTAL_STEPS


def git_commit() -> str:
    """The short commit of the checkout that runs the suite (``-dirty`` if it has changes), or ``unknown``."""
    try:
        root = Path(__file__).parents[1]
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=root, capture_output=True, text=True, check=True
        )
        return commit.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def read_curve(metrics_csv: Path) -> list[list[float]]:
    """``[[env_steps, training mean of the last 100 episodes], ...]`` from a run's metrics.csv, thinned."""
    with metrics_csv.open(newline="") as file:
        points = [[int(row["env_steps"]), float(row["charts/episode_return_mean_100"])] for row in csv.DictReader(file)]
    stride = max(1, -(-len(points) // CURVE_POINTS))
    return points[::stride] if points[-1:] == points[::stride][-1:] else [*points[::stride], points[-1]]


def read_checks(evaluations_csv: Path) -> list[list[float]]:
    """``[[env_steps, episodes, deterministic mean return], ...]``: the verified stop's checks of a run.

    A row of ``verify_episodes`` episodes is a check; one of 100 after it, the confirmation of a check that passed.

    Empty where the run made none (no reward threshold, or ``solve_criterion=training_mean``).
    """
    if not evaluations_csv.is_file():
        return []
    with evaluations_csv.open(newline="") as file:
        return [
            [int(row["env_steps"]), int(row["episodes"]), float(row["mean_return"])] for row in csv.DictReader(file)
        ]


def raw_step_rate(task: str, steps: int = 20_000, seed: int = 0) -> float:
    """Env steps per second of one ``gymnasium.make(task)`` stepped alone with actions drawn beforehand.

    The limit a training run's env steps/s is measured against: no policy, no vector env, no learning, only
    ``step`` (and ``reset`` at each episode's end) of the same env in the same process.
    """
    import gymnasium as gym

    env = gym.make(task)
    try:
        env.action_space.seed(seed)
        actions = [env.action_space.sample() for _ in range(steps)]
        env.reset(seed=seed)
        started = time.perf_counter()
        for action in actions:
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset()
        return steps / (time.perf_counter() - started)
    finally:
        env.close()


def run_trial(
    task: str, seed: int, settings: dict[str, Any], budget: str, eval_episodes: int, commit: str
) -> dict[str, Any]:
    """Train ``task`` on ``seed`` with the shipped values and ``settings`` for ``budget``; evaluate; one record.

    ``commit`` is the checkout's when the run started (the code its process loaded), not when the trial ends.
    """
    from reinforce import Reinforce

    total_steps = budget_steps(task, budget)
    started = time.perf_counter()
    agent = Reinforce(task, seed=seed, **settings)
    try:
        with tempfile.TemporaryDirectory(prefix="suite-") as run_dir:
            agent.learn(total_steps, run_dir=run_dir, checkpoint_every=0)
            train_s = time.perf_counter() - started
            curve = read_curve(Path(run_dir) / "metrics.csv")
            checks = read_checks(Path(run_dir) / "evaluations.csv")
        evaluation = agent.evaluate(episodes=eval_episodes, deterministic=True)
        # the verified stop's confirmation used the default evaluation seed, so `evaluation` repeats it; a user's
        # own program plays other episodes: the same number of them from a seed no part of the run used
        fresh = agent.evaluate(episodes=eval_episodes, deterministic=True, seed=FRESH_EVALUATION_SEED + seed)
        raw_rate = raw_step_rate(task)
        return {
            "task": task,
            "seed": seed,
            "settings": settings,
            "budget": budget,
            "total_steps": total_steps,
            "env_steps": agent.num_env_steps,
            "updates": agent.num_updates,
            "solved_training": agent.solved,
            "training_mean_100": float(np.mean(agent.recent_returns)),
            "eval_mean": evaluation["mean_return"],
            "eval_std": evaluation["std_return"],
            "eval_episodes": eval_episodes,
            "fresh_eval_mean": fresh["mean_return"],
            "fresh_eval_std": fresh["std_return"],
            "train_s": round(train_s, 2),
            "wall_s": round(time.perf_counter() - started, 2),
            "steps_per_s": round(agent.num_env_steps / train_s, 1),
            "raw_env_steps_per_s": round(raw_rate, 1),
            "config": agent.config.to_dict(),
            "curve": curve,
            "checks": checks,
            "cpu": cpu_model(),
            "machine": machine(),
            "versions": versions(*DISTRIBUTIONS),
            "commit": commit,
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        }
    finally:
        agent.close()


def run(args: argparse.Namespace) -> None:
    """The ``run`` subcommand: every (task, seed) not yet in ``--out``, appended as each one finishes."""
    settings = overrides(args.set)
    commit = git_commit()  # the code this process loads now, whatever the checkout holds when a trial ends
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = read_results([out])
    done = {trial_key(row["task"], row["seed"], row["settings"], row["budget"], row["config"]) for row in rows}
    tasks = args.tasks.split(",")
    configs = {task: trial_config(task, settings) for task in tasks}
    trials = [
        (task, seed)
        for task in tasks
        for seed in seed_range(args.seeds)
        if trial_key(task, seed, settings, args.budget, configs[task]) not in done
    ]
    print(f"{len(trials)} trial(s) to run, {len(done)} already in {out}", flush=True)

    def record(row: dict[str, Any]) -> None:
        with out.open("a") as file:
            file.write(json.dumps(row) + "\n")
        print(
            f"{row['task']} seed {row['seed']}: eval {row['eval_mean']:.1f}, training {row['training_mean_100']:.1f}, "
            f"{row['env_steps']:,} steps, {row['train_s']:.0f} s",
            flush=True,
        )

    if args.jobs <= 1:
        for task, seed in trials:
            record(run_trial(task, seed, settings, args.budget, args.eval_episodes, commit))
        return
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("spawn")) as pool:
        futures = [
            pool.submit(run_trial, task, seed, settings, args.budget, args.eval_episodes, commit)
            for task, seed in trials
        ]
        for future in as_completed(futures):
            record(future.result())


def bootstrap_ci(values: list[float], resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """A percentile bootstrap 95% confidence interval of the mean of ``values`` (resampling seeds)."""
    rng = np.random.default_rng(seed)
    means = rng.choice(np.asarray(values), size=(resamples, len(values)), replace=True).mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def settings_text(settings: dict[str, Any]) -> str:
    """``lr=0.01 baseline=value``, or ``shipped`` for no overrides."""
    return " ".join(f"{name}={value}" for name, value in sorted(settings.items())) or "shipped"


def group_key(row: dict[str, Any]) -> tuple[str, str, str]:
    """A trial's line of the table: (task, settings as JSON, budget)."""
    return row["task"], json.dumps(row["settings"], sort_keys=True), str(row["budget"])


def superseded(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The trials whose config is not that of the newest record of their line: an older hyperparams.yaml's.

    The newest by its ``date`` (the last read on a tie), whatever the order of the files read: a table's old file
    and the file of a changed entry's new rows.
    """
    newest: dict[tuple[str, str, str], dict[str, Any]] = {}
    for row in rows:
        key = group_key(row)
        if key not in newest or str(row.get("date", "")) >= str(newest[key].get("date", "")):
            newest[key] = row
    latest = {key: config_text(row["config"]) for key, row in newest.items()}
    return [row for row in rows if config_text(row["config"]) != latest[group_key(row)]]


def groups(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    """The trials per (task, settings, budget), the last record of a seed winning, in the order first seen.

    Only the trials with the config of a line's last record count: those of an older hyperparams.yaml are
    superseded by the rows of the new values (`superseded`; the table says how many), not mixed with them.
    """
    old = {id(row) for row in superseded(rows)}
    grouped: dict[tuple[str, str, str], dict[int, dict[str, Any]]] = {}
    for row in rows:
        if id(row) not in old:
            grouped.setdefault(group_key(row), {})[row["seed"]] = row
    return {key: [seeds[seed] for seed in sorted(seeds)] for key, seeds in grouped.items()}


def table(rows: list[dict[str, Any]]) -> str:
    """The Markdown table of ``report``: one line per (task, settings, budget)."""
    lines = [
        "| task | settings | budget (env steps) | seeds | final deterministic return, mean ± std | bootstrap 95% CI "
        "| worst seed | target | seeds >= target | fresh-seed evaluation, mean (seeds >= target) | median env steps "
        "| median steps/s | raw env steps/s (1 env) |",
        "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (task, settings, budget), trials in groups(rows).items():
        returns = [float(trial["eval_mean"]) for trial in trials]
        seeds = [int(trial["seed"]) for trial in trials]
        std = statistics.stdev(returns) if len(returns) > 1 else 0.0
        low, high = bootstrap_ci(returns)
        target = TARGETS.get(task)
        target_text = f"{target[0]:g}" if target else "-"
        reached = f"{sum(value >= target[0] for value in returns)}/{len(returns)}" if target else "-"
        settings_label, budget_text = line_text(task, json.loads(settings), budget, trials[0])
        lines.append(
            f"| {task} | {settings_label} | {budget_text} | {seeds_text(seeds)} "
            f"| {statistics.mean(returns):.1f} ± {std:.1f} | [{low:.1f}, {high:.1f}] | {min(returns):.1f} "
            f"| {target_text} | {reached} | {fresh_text(trials, target)} "
            f"| {statistics.median(t['env_steps'] for t in trials):,.0f} "
            f"| {statistics.median(t['steps_per_s'] for t in trials):,.0f} | {raw_text(trials)} |"
        )
    old = superseded(rows)
    if old:
        tasks = ", ".join(dict.fromkeys(row["task"] for row in old))
        lines.append(f"\n{len(old)} trial(s) of an older config of the same line not counted ({tasks}).")
    return "\n".join(lines)


def line_text(task: str, settings: dict[str, Any], budget: str, trial: dict[str, Any]) -> tuple[str, str]:
    """A line's settings and budget columns; ``(earlier entry)`` where hyperparams.yaml has changed since ``trial``."""
    settings_label = settings_text(settings)
    if config_text(trial["config"]) != config_text(trial_config(trial["task"], settings)):
        settings_label += " (earlier entry)"
    budget_text = f"{trial['total_steps']:,}"
    if budget == "shipped":
        budget_text += " (shipped)" if trial["total_steps"] == budget_steps(task, budget) else " (shipped earlier)"
    return settings_label, budget_text


def fresh_text(trials: list[dict[str, Any]], target: tuple[float, ...] | None) -> str:
    """The fresh-seed evaluations' mean (and how many reach ``target``) of the trials that made one; else ``-``."""
    returns = [float(trial["fresh_eval_mean"]) for trial in trials if "fresh_eval_mean" in trial]
    if not returns:
        return "-"
    count = f"{sum(value >= target[0] for value in returns)}/{len(returns)}" if target else f"{len(returns)}"
    partial = f" of {len(trials)} trials" if len(returns) < len(trials) else ""
    return f"{statistics.mean(returns):.1f} ({count}{partial})"


def raw_text(trials: list[dict[str, Any]]) -> str:
    """The median raw single-env step rate of the trials that measured it (files before it: ``-``)."""
    rates = [float(trial["raw_env_steps_per_s"]) for trial in trials if "raw_env_steps_per_s" in trial]
    return f"{statistics.median(rates):,.0f}" if rates else "-"


PLOT_COLUMNS = 4
"""Panels per row of the curves' figure."""


def plot_curves(rows: list[dict[str, Any]], path: Path) -> None:
    """One panel per task: each (settings, budget)'s training mean over seeds, the band from min to max."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grouped = groups(rows)
    tasks = list(dict.fromkeys(task for task, _, _ in grouped))
    columns = min(len(tasks), PLOT_COLUMNS)
    rows_of_panels = -(-len(tasks) // columns)
    figure, axes = plt.subplots(rows_of_panels, columns, figsize=(5 * columns, 3.6 * rows_of_panels), squeeze=False)
    for axis in axes.flat[len(tasks) :]:
        axis.set_visible(False)
    for axis, task in zip(axes.flat, tasks, strict=False):
        for (other, settings, budget), trials in grouped.items():
            if other != task:
                continue
            end = max(trial["curve"][-1][0] for trial in trials)
            grid = np.linspace(0, end, 200)
            # a seed that stopped early (solved) holds its last value to the end of the grid
            values = np.stack([np.interp(grid, *np.asarray(trial["curve"], dtype=float).T) for trial in trials])
            label = f"{settings_text(json.loads(settings))}, {budget} ({len(trials)} seeds)"
            (line,) = axis.plot(grid, values.mean(axis=0), label=label)
            axis.fill_between(grid, values.min(axis=0), values.max(axis=0), color=line.get_color(), alpha=0.2)
        if task in TARGETS:
            axis.axhline(TARGETS[task][0], color="grey", linestyle="--", linewidth=0.8)
        axis.set_title(task)
        axis.set_xlabel("env steps")
        axis.set_ylabel("training mean return (last 100 episodes)")
        axis.legend(fontsize="x-small")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def report(args: argparse.Namespace) -> None:
    """The ``report`` subcommand: the table (printed, and written with ``--write``), curves with ``--curves``."""
    rows = read_results(Path(path) for path in args.files)
    if not rows:
        raise SystemExit(f"no trials in {', '.join(args.files)}: run `suite.py run --out FILE` first")
    text = table(rows)
    print(text)
    if args.write:
        Path(args.write).write_text(text + "\n")
    if args.curves:
        plot_curves(rows, Path(args.curves))


def raw(args: argparse.Namespace) -> None:
    """The ``raw`` subcommand: each task's raw single-env step rate, the limit beside a training run's steps/s."""
    print("| task | raw env steps/s (1 env, random actions) | steps |")
    print("| --- | ---: | ---: |")
    for task in args.tasks.split(","):
        print(f"| {task} | {raw_step_rate(task, args.steps):,.0f} | {args.steps:,} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="train and evaluate tasks x seeds, appending to a JSONL file")
    run_parser.add_argument("--tasks", required=True, help="comma-separated Gymnasium ids")
    run_parser.add_argument("--seeds", default="100-109", help="e.g. 100-109 or 100,103")
    run_parser.add_argument(
        "--budget", default="shipped", help="env steps per trial, or 'shipped' (the default budget of the task)"
    )
    run_parser.add_argument("--out", required=True, help="the JSONL file to append to (and to skip trials from)")
    run_parser.add_argument("--eval-episodes", type=int, default=100)
    run_parser.add_argument("--jobs", type=int, default=1, help="trials at a time, each in its own process")
    add_set_option(run_parser)
    raw_parser = commands.add_parser("raw", help="the raw single-env step rate of tasks (random actions)")
    raw_parser.add_argument("--tasks", required=True, help="comma-separated Gymnasium ids")
    raw_parser.add_argument("--steps", type=int, default=20_000)
    report_parser = commands.add_parser("report", help="the Markdown table (and curves) of JSONL files")
    report_parser.add_argument("files", nargs="+")
    report_parser.add_argument("--write", default=None, help="also write the table to this file")
    report_parser.add_argument("--curves", default=None, help="draw the training curves to this PNG")
    args = parser.parse_args()
    if args.command == "run":
        if args.budget != "shipped" and not args.budget.isdigit():
            parser.error(f"--budget {args.budget!r}: give a number of env steps or 'shipped'")
        run(args)
    elif args.command == "raw":
        raw(args)
    else:
        report(args)


if __name__ == "__main__":
    main()
