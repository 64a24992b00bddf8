"""What a run records per update and episode (the columns, the 'solved' criterion) and where: CSV, TensorBoard."""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from reinforce.core.batch import RolloutBatch
from reinforce.errors import DAMAGED, ReinforceError
from reinforce.run.files import (
    EPISODES_FILE,
    EVALUATIONS_FILE,
    METRICS_FILE,
    TENSORBOARD_DIR,
    atomic_write,
    read_text,
)

SOLVED_WINDOW = 100
"""Episodes in the moving mean that decides 'solved' (Gymnasium's convention)."""

METRIC_FIELDS = (
    "update",
    "env_steps",
    "simulated_steps",
    "episodes",
    "charts/episode_return_mean",
    "charts/episode_return_min",
    "charts/episode_return_max",
    "charts/episode_length_mean",
    "charts/episode_length_min",
    "charts/episode_length_max",
    "charts/episode_return_mean_100",
    "charts/truncated_fraction",
    "losses/policy_loss",
    "losses/entropy",
    "losses/grad_norm",
    "losses/value_loss",
    "losses/explained_variance",
    "perf/steps_per_s",
    "perf/step_efficiency",
    "wall_time_s",
)
"""Columns of metrics.csv, one row per update. ``perf/steps_per_s`` and ``wall_time_s`` are timings; the rest
is reproducible from the seed. The value columns are filled only with ``baseline="value"``."""
EPISODE_FIELDS = ("episode", "update", "env_steps", "return", "length", "truncated")
"""Columns of episodes.csv, one row per training episode."""
EVALUATION_FIELDS = (
    "update",
    "env_steps",
    "episodes",
    "mean_return",
    "std_return",
    "min_return",
    "max_return",
    "mean_length",
    "wall_time_s",
)
"""Columns of evaluations.csv, one row per periodic evaluation (`reinforce.callbacks.EvalCallback`): the policy
after ``update`` and ``env_steps``, its episodes' return statistics, and the run's training time so far."""


def is_solved(recent_returns: Sequence[float], reward_threshold: float | None) -> bool:
    """The training criterion of 'solved': a full window of returns whose mean reaches the threshold.

    ``recent_returns`` are the returns of the last `SOLVED_WINDOW` training episodes (or fewer, early in a
    run: then not solved); without a threshold nothing is solved.
    """
    window = list(recent_returns)[-SOLVED_WINDOW:]
    return reward_threshold is not None and len(window) == SOLVED_WINDOW and float(np.mean(window)) >= reward_threshold


def update_metrics(
    batch: RolloutBatch,
    losses: Mapping[str, float],
    counters: Mapping[str, int],
    recent_returns: Iterable[float],
    elapsed_s: float,
    train_time_s: float,
) -> dict[str, Any]:
    """One update's metrics: the `METRIC_FIELDS` columns, plus its episodes' returns, lengths and truncation.

    Args:
        batch: the update's episodes.
        losses: the loss metrics of the update (``losses/...``).
        counters: the agent's counters after the update (``num_updates``, ``num_env_steps``, ...).
        recent_returns: the returns of the last `SOLVED_WINDOW` training episodes.
        elapsed_s: the update's wall time.
        train_time_s: the run's training time so far.
    """
    returns, lengths = np.asarray(batch.episode_returns), np.asarray(batch.episode_lengths)
    steps = batch.num_steps
    return {
        "update": counters["num_updates"],
        "env_steps": counters["num_env_steps"],
        "simulated_steps": counters["num_simulated_steps"],
        "episodes": counters["num_episodes"],
        "charts/episode_return_mean": float(returns.mean()),
        "charts/episode_return_min": float(returns.min()),
        "charts/episode_return_max": float(returns.max()),
        "charts/episode_length_mean": float(lengths.mean()),
        "charts/episode_length_min": int(lengths.min()),
        "charts/episode_length_max": int(lengths.max()),
        "charts/episode_return_mean_100": float(np.mean(list(recent_returns))),
        "charts/truncated_fraction": float(np.mean(batch.episode_truncated)),
        **losses,
        "perf/steps_per_s": steps / elapsed_s if elapsed_s > 0 else math.inf,
        "perf/step_efficiency": steps / batch.num_simulated_steps,
        "wall_time_s": train_time_s,
        "episode_returns": batch.episode_returns,
        "episode_lengths": batch.episode_lengths,
        "episode_truncated": batch.episode_truncated,
    }


class CSVLogger:
    """Appends one row per call to a CSV file with a fixed header, flushed after every row.

    An existing non-empty file is continued (its header is kept), so a second ``learn`` call on the same run
    directory adds rows instead of replacing them.
    """

    def __init__(self, path: Path, fieldnames: Sequence[str]) -> None:
        self.path = path
        is_new = not path.exists() or path.stat().st_size == 0
        self._file: IO[str] = path.open("a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=list(fieldnames), extrasaction="ignore")
        if is_new:
            self._writer.writeheader()
            self._file.flush()

    def write(self, row: Mapping[str, object]) -> None:
        """Write one row; keys outside the header are ignored, missing ones left empty."""
        self._writer.writerow(row)
        self._file.flush()

    def sync(self) -> None:
        """Force the rows written so far to disk (called before a checkpoint that covers them is committed)."""
        os.fsync(self._file.fileno())

    def close(self) -> None:
        """Close the file."""
        self._file.close()


def require_tensorboard() -> None:
    """Raise a `ReinforceError` naming the extra to install if TensorBoard's writer cannot be imported."""
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise ReinforceError(
            "tensorboard=True needs the TensorBoard package: pip install 'reinforce[tensorboard]'",
            fields=("tensorboard",),
        ) from None


class TensorBoardLogger:
    """Writes the namespaced metrics (``charts/``, ``losses/``, ``perf/``) of each update as TensorBoard scalars.

    The tags are the metrics.csv column names; the step is the env-step count. Needs the ``tensorboard`` extra.

    Args:
        log_dir: the directory of the event files (``RUN_DIR/tensorboard``).
        purge_step: on a resumed run, the first step to write; events at or after it that an interrupted
            process wrote are hidden, so no step appears twice.
    """

    NAMESPACES = ("charts/", "losses/", "perf/")

    def __init__(self, log_dir: Path, purge_step: int | None = None) -> None:
        require_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)

    def write(self, metrics: Mapping[str, object], step: int) -> None:
        """Add one scalar per namespaced metric at ``step``."""
        for key, value in metrics.items():
            if key.startswith(self.NAMESPACES) and isinstance(value, (int, float)):
                self._writer.add_scalar(key, value, global_step=step)

    def sync(self) -> None:
        """Write the pending events to the event file (called before a checkpoint that covers them)."""
        self._writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        self._writer.close()


def trim_csv(path: Path, fieldnames: Sequence[str], max_update: int) -> None:
    """Keep the complete rows of ``path`` up to ``update == max_update``, rewriting it atomically if needed.

    A run killed after writing rows but before its next checkpoint has rows the checkpoint does not cover;
    resuming drops them (they are written again) so that no row is duplicated. A torn last line is dropped
    too, and a header torn by a crash. Any other header is an error: the file is not one this version wrote;
    so is a row whose first column (the update of metrics.csv, the episode of episodes.csv) does not come
    after the previous row's: a row written twice, or out of order, is damage that trimming cannot repair; and
    so is a row cut short or malformed that the checkpoint covers (its update at most ``max_update``) or that
    other rows follow: a crash tears only the last line, after the checkpoint.
    """
    trimmed = trimmed_csv(path, fieldnames, max_update)
    if trimmed is not None:
        atomic_write(path, trimmed.encode())


def trimmed_csv(path: Path, fieldnames: Sequence[str], max_update: int) -> str | None:
    """What `trim_csv` would write to ``path`` (None: nothing to change), every check made, nothing written."""
    if not path.exists() and not path.is_symlink():
        return None
    text = read_text(path)
    lines = text.splitlines(keepends=True)
    if not lines:
        return None
    header = lines[0].rstrip("\r\n")
    if header != ",".join(fieldnames):
        if ",".join(fieldnames).startswith(header) and len(lines) == 1:  # a header torn by a crash
            return ""
        raise ReinforceError(
            f"{path} has columns this version of reinforce does not write (another version's run?): {DAMAGED}"
        )
    kept = [lines[0]]
    number, previous = fieldnames[0], None
    for index, line in enumerate(lines[1:], start=2):
        parsed = _parse_row(line, fieldnames)
        if parsed is None:  # torn: only a crash's last line, after the checkpoint, may be (it is dropped)
            update = _leading_update(line, fieldnames)
            if (update is None and index < len(lines)) or (update is not None and update <= max_update):
                why = "rows follow it" if update is None else f"the checkpoint at update {max_update} covers it"
                raise ReinforceError(
                    f"{path} line {index} is cut short or malformed, though {why}: the run directory is damaged; "
                    "restore the file, or start a new run"
                )
            break
        update, current = parsed
        if update > max_update:
            break
        if previous is not None and current <= previous:
            raise ReinforceError(
                f"{path} has {number} {current} after {number} {previous} (line {len(kept) + 1}: a row written "
                f"twice, or out of order): the run directory is damaged; remove the repeated rows, or start a new run"
            )
        previous = current
        kept.append(line)
    trimmed = "".join(kept)
    return trimmed if trimmed != text else None


def _parse_row(line: str, fieldnames: Sequence[str]) -> tuple[int, int] | None:
    """A whole row's update and first column (numbers), or None if it is cut short or malformed."""
    if not line.endswith("\n"):
        return None
    try:
        row = next(csv.DictReader(io.StringIO(line), fieldnames=list(fieldnames)))
        parsed = int(row["update"]), int(row[fieldnames[0]])
    except (csv.Error, TypeError, ValueError, StopIteration):
        return None
    return None if None in row or any(value is None for value in row.values()) else parsed


def _leading_update(line: str, fieldnames: Sequence[str]) -> int | None:
    """The update of a row cut short, where its update column is whole (a column follows it), else None."""
    column = list(fieldnames).index("update")
    fields = line.rstrip("\r\n").split(",")
    if len(fields) <= column + 1:
        return None
    try:
        return int(fields[column])
    except ValueError:
        return None


class RunLog:
    """The metric sinks of one ``learn`` call on a run directory: metrics.csv, episodes.csv and TensorBoard.

    Opening it first drops the rows after ``num_updates`` (written by a process that died before its next
    checkpoint), so that a resumed run has every row once; evaluations.csv's too (`EvalCallback` appends to it),
    whether or not this ``learn`` call evaluates.

    Args:
        run_dir: the run directory.
        num_updates: the update count of the agent that continues the run (0 for a new run).
        num_env_steps: its env-step count (the TensorBoard step where a resumed run continues).
        tensorboard: also write TensorBoard scalars to ``run_dir/tensorboard``.
    """

    def __init__(self, run_dir: Path, num_updates: int, num_env_steps: int, *, tensorboard: bool = False) -> None:
        # the files are all checked before any is trimmed: a damaged one leaves the others as they were
        trimmed = {
            path: trimmed_csv(path, fields, num_updates)
            for path, fields in (
                (run_dir / METRICS_FILE, METRIC_FIELDS),
                (run_dir / EPISODES_FILE, EPISODE_FIELDS),
                (run_dir / EVALUATIONS_FILE, EVALUATION_FIELDS),
            )
        }
        for path, text in trimmed.items():
            if text is not None:
                atomic_write(path, text.encode())
        self._board = None
        if tensorboard:
            purge_step = num_env_steps + 1 if num_updates else None
            self._board = TensorBoardLogger(run_dir / TENSORBOARD_DIR, purge_step=purge_step)
        self._metrics = CSVLogger(run_dir / METRICS_FILE, METRIC_FIELDS)
        self._episodes = CSVLogger(run_dir / EPISODES_FILE, EPISODE_FIELDS)

    def write(self, metrics: Mapping[str, Any]) -> None:
        """One metrics row, one episodes row per episode of the update, and the TensorBoard scalars."""
        self._metrics.write(metrics)
        returns = metrics["episode_returns"]
        first = metrics["episodes"] - len(returns)
        for offset, (ret, length, truncated) in enumerate(
            zip(returns, metrics["episode_lengths"], metrics["episode_truncated"], strict=True)
        ):
            self._episodes.write(
                {
                    "episode": first + offset + 1,
                    "update": metrics["update"],
                    "env_steps": metrics["env_steps"],
                    "return": ret,
                    "length": length,
                    "truncated": int(truncated),
                }
            )
        if self._board is not None:
            self._board.write(metrics, step=metrics["env_steps"])

    def sync(self) -> None:
        """Put everything written so far on disk (before a checkpoint that covers it is committed)."""
        for sink in self._sinks():
            sink.sync()

    def close(self) -> None:
        """Close every file."""
        for sink in self._sinks():
            sink.close()

    def _sinks(self) -> list[CSVLogger | TensorBoardLogger]:
        return [self._metrics, self._episodes, *([self._board] if self._board is not None else [])]
