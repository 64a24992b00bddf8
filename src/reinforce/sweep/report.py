"""A finished sweep's report: one row per setting, the Markdown table, results.md, results.json, curves.png."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reinforce.run.files import write_json
from reinforce.run.metrics import SOLVED_WINDOW
from reinforce.sweep.plan import SweepPlan
from reinforce.sweep.statistics import MedianSummary, median_interval_ranks, summarize_median

TABLE_FILE = "results.md"
ROWS_FILE = "results.json"
PLOT_FILE = "curves.png"


@dataclass(frozen=True)
class SweepRow:
    """One setting's line of the sweep table (``results.json`` holds a list of them, as objects)."""

    setting: str
    """The setting's slug (its directory under the sweep directory)."""
    hyperparameters: dict[str, Any]
    """The setting's grid values."""
    trials: int
    solved: int
    """Trials whose training reached the solved criterion."""
    failed: int
    """Trials stopped by a NaN or an infinity (counted as unsolved, and as the worst final return)."""
    steps_to_solve: MedianSummary
    """Env steps to solve: median and interval, inf for 'not solved' (null in results.json)."""
    final_return: MedianSummary | None
    """Mean return of the final deterministic evaluation: median and interval (None without evaluations)."""

    def to_dict(self) -> dict[str, Any]:
        """The row as JSON-ready values: an infinite (censored) number of steps becomes null."""
        document = dataclasses.asdict(self)
        for summary in (document["steps_to_solve"], document["final_return"]):
            for key, value in (summary or {}).items():
                if isinstance(value, float) and math.isinf(value):
                    summary[key] = None
        return document


def summarize_trials(
    settings: Mapping[str, Mapping[str, Any]], results: Sequence[Mapping[str, Any]], *, evaluated: bool = True
) -> list[SweepRow]:
    """One `SweepRow` per setting from the trials' result documents (`run_trial`'s).

    ``evaluated``: whether the trials ended with an evaluation (the sweep's ``eval_episodes`` > 0); without
    one no setting has a final return.
    """
    rows = []
    for slug, setting in settings.items():
        own = [result for result in results if result["setting"] == slug]
        steps = [math.inf if result["steps_to_solve"] is None else float(result["steps_to_solve"]) for result in own]
        # a diverged trial has no final return: it counts as the worst, as an unsolved trial counts as infinite
        diverged = sum(result.get("error") is not None for result in own)
        returns = [
            -math.inf if result.get("error") is not None else float(result["final_return"])
            for result in own
            if evaluated
        ]
        rows.append(
            SweepRow(
                setting=slug,
                hyperparameters=dict(setting),
                trials=len(own),
                solved=sum(math.isfinite(value) for value in steps),
                failed=diverged,
                steps_to_solve=summarize_median(steps),
                final_return=summarize_median(returns) if returns else None,
            )
        )
    return rows


def _steps(value: float | None) -> str:
    return "n/a" if value is None else "not solved" if math.isinf(value) else f"{value:,.0f}"


def _interval(summary: MedianSummary | None, number: Callable[[float | None], str]) -> str:
    if summary is None or summary.coverage is None:
        return "n/a"
    return f"[{number(summary.low)}, {number(summary.high)}]"


def _return(value: float | None) -> str:
    return "n/a" if value is None else "diverged" if value == -math.inf else f"{value:.1f}"


def format_table(rows: Sequence[SweepRow], spec: Mapping[str, Any]) -> str:
    """The sweep table in Markdown, with one line under it that says what the intervals are."""
    lines = [
        "| setting | trials | solved | steps to solve: median | 95% interval | final return: median | 95% interval |",
        "| --- | ---: | ---: | ---: | --- | ---: | --- |",
    ]
    for row in rows:
        failed = f" ({row.failed} diverged)" if row.failed else ""
        lines.append(
            f"| {row.setting} | {row.trials} | {row.solved}{failed} | {_steps(row.steps_to_solve.median)} | "
            f"{_interval(row.steps_to_solve, _steps)} | "
            f"{_return(None if row.final_return is None else row.final_return.median)} | "
            f"{_interval(row.final_return, _return)} |"
        )
    trials = len(spec["seeds"])
    ranks = median_interval_ranks(trials)
    if ranks is None:
        note = (
            f"95% intervals of the medians are unavailable with {trials} trial(s) per setting: the widest "
            "order-statistic interval covers less than 95% below 6 trials."
        )
    else:
        low, high, coverage = ranks
        note = (
            f"95% intervals: the order statistics x_({low}) and x_({high}) of the {trials} trials per setting, "
            f"a distribution-free interval of the median with coverage {coverage:.1%}."
        )
    return "\n".join(
        [
            *lines,
            "",
            f"{spec['env_id']}, seeds {_seed_text(spec['seeds'])}, {spec['total_steps']:,} env steps per trial; "
            f"steps to solve: env steps at the first update where the mean return of the last {SOLVED_WINDOW} training "
            "episodes reached the reward threshold ('not solved' counts as infinite); final return: mean of "
            f"{spec['eval_episodes']} deterministic evaluation episodes after training. {note}",
        ]
    )


def _seed_text(seeds: Sequence[int]) -> str:
    ordered = sorted(seeds)
    if ordered == list(range(ordered[0], ordered[-1] + 1)) and len(ordered) > 2:
        return f"{ordered[0]}-{ordered[-1]}"
    return ",".join(map(str, seeds))


def write_report(plan: SweepPlan, results: Sequence[dict[str, Any]], say: Callable[[str], None]) -> list[SweepRow]:
    """The table (results.md, results.json, ``say``) and the comparison plot (curves.png) of a finished sweep.

    ``results`` are the trials' result documents, in the order of ``plan.trials``.
    """
    from reinforce.run.files import atomic_write
    from reinforce.run.plotting import plot_comparison

    rows = summarize_trials(plan.settings, results, evaluated=plan.spec["eval_episodes"] > 0)
    table = format_table(rows, plan.spec)
    atomic_write(plan.out / TABLE_FILE, f"# Sweep of {plan.spec['env_id']}\n\n{table}\n".encode())
    write_json(plan.out / ROWS_FILE, {"sweep": plan.spec, "rows": [row.to_dict() for row in rows]})
    thresholds = {result["reward_threshold"] for result in results}
    plotted = [Path(trial.run_dir) for trial, result in zip(plan.trials, results, strict=True) if result["updates"]]
    if plotted:
        plot_comparison(plotted, plan.out / PLOT_FILE, threshold=thresholds.pop() if len(thresholds) == 1 else None)
    say(table)
    say(f"wrote {plan.out / TABLE_FILE}, {plan.out / ROWS_FILE} and {plan.out / PLOT_FILE}")
    return rows
