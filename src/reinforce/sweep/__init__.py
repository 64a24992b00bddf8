"""Sweeps: every combination of a hyperparameter grid, times seeds, as independent Ray tasks, then a table.

A sweep directory ``OUT`` holds ``sweep.json`` (what was asked: env, seeds, grid, step budget, evaluation
episodes, the hyperparameters under the grid), one run directory per trial, ``OUT/<setting>/seed-<s>``, exactly
as ``reinforce train`` writes it (so ``reinforce eval``, ``plot`` and ``train --resume`` work on it) plus
``result.json`` once the trial is finished, and at the end ``results.md``, ``results.json`` and ``curves.png``.

The modules, in the order a sweep uses them: `plan` (seeds, grid, settings, trials, sweep.json), `driver`
(`run_sweep`: Ray tasks, progress, interrupts), `trials` (one trial: train, finish, result.json), `statistics`
(medians and their intervals), `report` (the table, the results files and curves.png).

Statistics, per setting (docs/scaling.md):

- *steps to solve*: the env steps at the first update after which the trainer's criterion of 'solved' held
  (`trials.steps_to_solve`: with the default ``solve_criterion=verified``, the first confirmed 100-episode
  deterministic evaluation >= the reward threshold; with ``training_mean`` or without ``stop_on_solve``,
  `reinforce.run.metrics.is_solved`: the mean return of the last 100 training episodes >= it);
  a trial that never solved is censored, counted as +inf, so the median is finite only when more than half of
  the trials solved.
- *final return*: the mean return of a K-episode deterministic `Reinforce.evaluate` after training.
- the *95% interval* of a median: the distribution-free order-statistic interval ``[x_(l), x_(n+1-l)]``
  (`median_interval_ranks`), with its exact coverage; with fewer than 6 trials no such interval reaches 95%.

Example:
    >>> rows = run_sweep(  # doctest: +SKIP
    ...     "CartPole-v1", seeds=range(10), grid={"lr": [0.005, 0.01]}, total_steps=300_000, out="sweeps/lr"
    ... )
"""

from reinforce.sweep.driver import SweepInterrupted, population_groups, run_sweep
from reinforce.sweep.plan import (
    SweepPlan,
    Trial,
    check_local_trials,
    check_seeds,
    check_sweep_dir,
    plan_sweep,
    setting_slug,
)
from reinforce.sweep.report import SweepRow, format_table, summarize_trials
from reinforce.sweep.statistics import MedianSummary, median_interval_ranks, summarize_median
from reinforce.sweep.trials import run_population, run_trial, steps_to_solve

__all__ = [
    "MedianSummary",
    "SweepInterrupted",
    "SweepPlan",
    "SweepRow",
    "Trial",
    "check_local_trials",
    "check_seeds",
    "check_sweep_dir",
    "format_table",
    "median_interval_ranks",
    "plan_sweep",
    "population_groups",
    "run_population",
    "run_sweep",
    "run_trial",
    "setting_slug",
    "steps_to_solve",
    "summarize_median",
    "summarize_trials",
]
