"""What a run records per update and episode (the columns, the 'solved' criterion) and where: CSV, TensorBoard."""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

import numpy as np

from reinforce.errors import ReinforceError

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


def is_solved(recent_returns: Sequence[float], reward_threshold: float | None) -> bool:
    """The training criterion of 'solved': a full window of returns whose mean reaches the threshold.

    ``recent_returns`` are the returns of the last `SOLVED_WINDOW` training episodes (or fewer, early in a
    run: then not solved); without a threshold nothing is solved.
    """
    window = list(recent_returns)[-SOLVED_WINDOW:]
    return reward_threshold is not None and len(window) == SOLVED_WINDOW and float(np.mean(window)) >= reward_threshold


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
            "--tensorboard needs the tensorboard package: pip install 'reinforce[tensorboard]'"
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
