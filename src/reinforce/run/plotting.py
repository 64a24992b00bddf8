"""Learning curves from run directories: per episode for one run, mean and confidence band across seeds."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from reinforce.errors import ReinforceError
from reinforce.run.files import CONFIG_FILE, EPISODES_FILE, METRICS_FILE, read_json, read_text, refuse_special_file


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last ``window`` values at each index (fewer at the start, where fewer exist)."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    cumulative = np.cumsum(np.insert(np.asarray(values, dtype=np.float64), 0, 0.0))
    index = np.arange(1, len(values) + 1)
    start = np.maximum(index - window, 0)
    return (cumulative[index] - cumulative[start]) / (index - start)


def read_columns(path: Path, columns: Sequence[str]) -> dict[str, np.ndarray]:
    """The given columns of a CSV file reinforce wrote, as float arrays; a missing or damaged file is an error."""
    text = read_text(path)
    try:
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        return {key: np.asarray([float(row[key]) for row in rows]) for key in columns}
    except (KeyError, ValueError, TypeError, csv.Error) as exc:
        raise ReinforceError(f"{path} is damaged ({exc}): re-run training to rebuild it") from None


def read_episodes(run_dir: Path) -> dict[str, np.ndarray]:
    """The columns of a run's episodes.csv as arrays (``return``, ``length``, ``env_steps``)."""
    return read_columns(run_dir / EPISODES_FILE, ("return", "length", "env_steps"))


def per_update(episodes: dict[str, np.ndarray], window: int = 100) -> dict[str, np.ndarray]:
    """One point per update from a run's episodes (`read_episodes`): what the per-run figure draws.

    The episodes of one update are the consecutive rows with the same ``env_steps`` (the run's env-step count
    when the update ended). episodes.csv lists them in the order they finished, short ones first; so no
    statistic here depends on their order within an update, except the last one, which is training's own.

    Returns:
        ``env_steps`` (per update), ``return`` and ``length`` (the mean over the update's episodes) and
        ``return_mean_100``: the mean return of the last ``window`` episodes when the update ended, the
        quantity whose reaching the threshold is 'solved' (its window may end inside an earlier update, which
        then contributes the episodes that finished last).
    """
    steps = np.asarray(episodes["env_steps"])
    if not len(steps):
        empty = np.zeros(0)
        return {"env_steps": empty, "return": empty, "length": empty, "return_mean_100": empty}
    starts = np.flatnonzero(np.r_[True, steps[1:] != steps[:-1]])
    ends = np.r_[starts[1:], len(steps)] - 1
    counts = np.diff(np.r_[starts, len(steps)])
    return {
        "env_steps": steps[starts],
        "return": np.add.reduceat(episodes["return"], starts) / counts,
        "length": np.add.reduceat(episodes["length"], starts) / counts,
        "return_mean_100": moving_average(episodes["return"], window)[ends],
    }


def plot_runs(run_dirs: Sequence[Path], out: Path, *, threshold: float | None = None) -> Path:
    """Plot each run's episode returns (and lengths) against env steps: the run's curve.png.

    Drawn for each run, in its own colour: every episode as a dot at the env-step count of the update that
    collected it (the raw data, all of it); the mean of each update's episodes; and the mean return of the last
    100 episodes at the end of each update, training's criterion of 'solved'. The update is the unit on
    purpose: episodes.csv lists an update's episodes in the order they finished, short ones first, so a moving
    average over episode numbers rises and falls within every update, a saw-tooth of the bookkeeping and not
    of the policy; every statistic drawn here is taken over whole updates (`per_update`). Where every episode's
    length equals its return (one reward per step, as in CartPole), the length panel would repeat the return
    panel: one panel is drawn, and its axis says so.

    Args:
        run_dirs: one or more run directories; each is drawn in its own colour.
        out: the image to write (PNG, SVG or PDF by extension).
        threshold: reward threshold drawn as a dotted line (default: none).

    Returns:
        ``out``.
    """
    runs = [(run_dir, read_episodes(run_dir)) for run_dir in run_dirs]
    env_ids = {str(read_json(run_dir / CONFIG_FILE).get("env_id", "?")) for run_dir, _ in runs}
    return save_figure(draw_runs(runs, threshold=threshold, title=", ".join(sorted(env_ids))), out)


def draw_runs(runs: Sequence[tuple[Path, dict[str, np.ndarray]]], *, threshold: float | None, title: str) -> Any:
    """The figure of `plot_runs` for ``runs`` (each a run directory and its `read_episodes`), not yet saved."""
    length_is_return = all(np.array_equal(episodes["return"], episodes["length"]) for _, episodes in runs)
    panels = [("return", "episode return = length" if length_is_return else "episode return")]
    if length_is_return:
        title += " (every episode's return equals its length: one panel for both)"
    else:
        panels.append(("length", "episode length"))
    figure = new_figure(9, 4 if length_is_return else 6.5)
    axes = np.atleast_1d(figure.subplots(len(panels), 1, sharex=True))
    for index, (run_dir, episodes) in enumerate(runs):
        colour = f"C{index}"
        prefix = f"{run_dir.name}: " if len(runs) > 1 else ""
        updates = per_update(episodes)
        for axis, (key, _) in zip(axes, panels, strict=True):
            axis.scatter(
                episodes["env_steps"],
                episodes[key],
                s=9,
                color=colour,
                alpha=0.45,
                linewidths=0,
                label=f"{prefix}each episode",
            )
            axis.plot(
                updates["env_steps"], updates[key], color=colour, linewidth=1, label=f"{prefix}mean of each update"
            )
            if key == "return":
                axis.plot(
                    updates["env_steps"],
                    updates["return_mean_100"],
                    color=colour,
                    linewidth=2,
                    linestyle="--",
                    label=f"{prefix}mean of the last 100 episodes",
                )
    if threshold is not None:
        axes[0].axhline(threshold, color="black", linestyle=":", linewidth=1, label=f"solved ({threshold:g})")
    for axis, (_, label) in zip(axes, panels, strict=True):
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        axis.legend(loc="lower right", fontsize="small", markerscale=3)
    axes[-1].set_xlabel("env steps (each update's episodes at the step count where it ended)")
    axes[0].set_title(title)
    return figure


def new_figure(width: float, height: float) -> Any:
    """A matplotlib ``Figure`` of this size in inches, outside pyplot.

    No pyplot: its import and its global state (the current backend, the list of open figures) are not needed
    to write a file, so plotting neither changes the backend of a program that uses reinforce nor leaks figures.
    """
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def partial_path(out: Path, pid: int) -> Path:
    """Where process ``pid``'s `save_figure` writes ``out`` before renaming it (beside it, hidden)."""
    return out.with_name(f".{out.name}.{pid}.partial")


def save_figure(figure: Any, out: Path) -> Path:
    """Lay out and write ``figure`` (PNG, SVG or PDF by extension; PNG without one); a `ReinforceError` if unwritable.

    The file is written beside ``out`` (`partial_path`) and renamed onto it: a process killed while drawing leaves
    ``out`` as it was (and `reinforce.run.plot_process.PlotProcess` removes its child's partial file).
    """
    refuse_special_file(out)
    figure.tight_layout()
    partial = partial_path(out, os.getpid())
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(partial, dpi=110, format=out.suffix.lstrip(".").lower() or "png")
        os.replace(partial, out)
    except OSError as exc:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise ReinforceError(f"cannot write {out} ({exc.strerror or exc}): choose another output path") from None
    return out


X_AXES = {"steps": ("env_steps", "env steps"), "time": ("wall_time_s", "training time (s)")}
"""``--x`` choices of `plot_comparison`: the metrics.csv column and the axis label."""
CURVE_COLUMN = "charts/episode_return_mean_100"
"""The metrics.csv column that `plot_comparison` draws: the mean return of the last 100 episodes."""

T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131)
"""Two-sided 95% quantiles of Student's t for 1..15 degrees of freedom."""


def t_quantile_95(degrees_of_freedom: int) -> float:
    """The 0.975 quantile of Student's t (tabulated to 15 degrees of freedom, approximated beyond)."""
    if degrees_of_freedom < 1:
        raise ValueError(f"degrees_of_freedom must be >= 1, got {degrees_of_freedom}")
    if degrees_of_freedom <= len(T_975):
        return T_975[degrees_of_freedom - 1]
    return 1.960 + 2.5 / degrees_of_freedom  # within 0.005 of the exact value from 16 on


def mean_and_band(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over runs and its 95% t confidence band clipped to the runs' range, for ``[runs, points]`` curves.

    The t interval's half-width is ``t * std / sqrt(runs)``, and with few seeds ``t`` is large (12.7 for two,
    4.3 for three): unclipped, a two-seed band on CartPole-v1 reached -200, a return no episode can have. At
    each point the band is therefore clipped to the lowest and highest value that one of the runs took: it
    never claims values none of them reached. With few seeds the clipped band understates how uncertain the
    mean is (the true mean may well lie outside the seeds' range); compare settings over more seeds.

    Args:
        curves: ``[runs, points]``, at least two runs.

    Returns:
        The mean, the band's low and high edges, each ``[points]``.
    """
    runs = curves.shape[0]
    if runs < 2:
        raise ValueError("a confidence band needs at least two runs")
    mean = curves.mean(axis=0)
    half_width = t_quantile_95(runs - 1) * curves.std(axis=0, ddof=1) / np.sqrt(runs)
    return mean, np.maximum(mean - half_width, curves.min(axis=0)), np.minimum(mean + half_width, curves.max(axis=0))


def read_metrics(run_dir: Path, columns: Sequence[str]) -> dict[str, np.ndarray]:
    """The given columns of a run's metrics.csv as float arrays (one entry per update)."""
    values = read_columns(run_dir / METRICS_FILE, columns)
    if not len(next(iter(values.values()), ())):
        raise ReinforceError(f"{run_dir / METRICS_FILE} has no updates yet: train (or resume) the run first")
    return values


def group_runs(run_dirs: Sequence[Path]) -> dict[str, list[Path]]:
    """Runs grouped by setting (env id and hyperparameters; the seed and step budget do not count), labelled.

    The label of a group is its env id plus the hyperparameters that differ between groups.
    """
    settings: dict[Path, dict[str, Any]] = {}
    for run_dir in run_dirs:
        config = read_json(run_dir / CONFIG_FILE)
        hyperparameters = config.get("hyperparameters")
        settings[run_dir] = {
            "env_id": config.get("env_id"),
            **(hyperparameters if isinstance(hyperparameters, dict) else {}),
        }
    keys = sorted({key for setting in settings.values() for key in setting})
    varying = [key for key in keys if len({json.dumps(s.get(key), sort_keys=True) for s in settings.values()}) > 1]
    groups: dict[str, list[Path]] = {}
    for run_dir, setting in settings.items():
        parts = [str(setting.get("env_id"))] if "env_id" not in varying else []
        parts += [f"{key}={setting.get(key)}" if key != "env_id" else str(setting.get(key)) for key in varying]
        groups.setdefault(" ".join(parts), []).append(run_dir)
    return groups


def plot_comparison(
    run_dirs: Sequence[Path], out: Path, *, x: str = "steps", threshold: float | None = None, points: int = 200
) -> Path:
    """Plot the 100-episode mean return of several runs against env steps or training time.

    Runs with the same setting (same config except the seed) are drawn as their mean with a 95% t confidence
    band across seeds, clipped to the seeds' range (`mean_and_band` says why), on a common grid over the range
    all of them cover (each run is interpolated linearly between its updates); a setting with one run is drawn
    as its curve.

    Args:
        run_dirs: run directories, each with a config.json and a metrics.csv.
        out: the image to write (PNG, SVG or PDF by extension).
        x: ``"steps"`` (env steps) or ``"time"`` (training time in seconds, ``wall_time_s``).
        threshold: reward threshold drawn as a dotted line (default: none).
        points: grid points of the interpolated curves.

    Returns:
        ``out``.
    """
    if x not in X_AXES:
        raise ReinforceError(f"cannot plot against {x!r}: use one of {', '.join(X_AXES)}")
    column, label = X_AXES[x]
    groups = group_runs(run_dirs)
    curves = {name: [read_metrics(run, (column, CURVE_COLUMN)) for run in runs] for name, runs in groups.items()}
    figure = new_figure(9, 5)
    axis = figure.subplots()
    for index, (name, runs) in enumerate(curves.items()):
        colour = f"C{index}"
        if len(runs) == 1:
            axis.plot(runs[0][column], runs[0][CURVE_COLUMN], color=colour, linewidth=1.5, label=f"{name} (1 run)")
            continue
        start = max(float(run[column][0]) for run in runs)
        end = min(float(run[column][-1]) for run in runs)
        grid = np.linspace(start, max(start, end), points)
        stacked = np.stack([np.interp(grid, run[column], run[CURVE_COLUMN]) for run in runs])
        mean, low, high = mean_and_band(stacked)
        label = f"{name} (mean of {len(runs)} runs; band: 95% CI within their range)"
        axis.plot(grid, mean, color=colour, linewidth=1.5, label=label)
        axis.fill_between(grid, low, high, color=colour, alpha=0.2, linewidth=0)
    if threshold is not None:
        axis.axhline(threshold, color="black", linestyle=":", linewidth=1, label=f"solved ({threshold:g})")
    axis.set_xlabel(label)
    axis.set_ylabel("mean return of the last 100 episodes")
    axis.legend(loc="lower right", fontsize="small")
    axis.grid(alpha=0.3)
    return save_figure(figure, out)
