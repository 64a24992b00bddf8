"""Sweeps: every combination of a hyperparameter grid, times seeds, as independent Ray tasks, then a table."""

from reinforce.sweep.driver import (
    MedianSummary,
    SweepInterrupted,
    SweepPlan,
    SweepRow,
    Trial,
    check_local_trials,
    check_sweep_dir,
    median_interval_ranks,
    parse_seeds,
    plan_sweep,
    run_sweep,
    run_trial,
    setting_slug,
    summarize_median,
    summarize_trials,
)

__all__ = [
    "MedianSummary",
    "SweepInterrupted",
    "SweepPlan",
    "SweepRow",
    "Trial",
    "check_local_trials",
    "check_sweep_dir",
    "median_interval_ranks",
    "parse_seeds",
    "plan_sweep",
    "run_sweep",
    "run_trial",
    "setting_slug",
    "summarize_median",
    "summarize_trials",
]
