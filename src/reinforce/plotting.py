"""Learning curves from run directories (episodes.csv)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from reinforce.checkpoint import CONFIG_FILE, EPISODES_FILE, read_json
from reinforce.errors import ReinforceError


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last ``window`` values at each index (fewer at the start, where fewer exist)."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    cumulative = np.cumsum(np.insert(np.asarray(values, dtype=np.float64), 0, 0.0))
    index = np.arange(1, len(values) + 1)
    start = np.maximum(index - window, 0)
    return (cumulative[index] - cumulative[start]) / (index - start)


def read_episodes(run_dir: Path) -> dict[str, np.ndarray]:
    """The columns of a run's episodes.csv as arrays (``return``, ``length``, ``env_steps``, ...)."""
    path = run_dir / EPISODES_FILE
    if not path.is_file():
        raise ReinforceError(f"{path} is missing: pass a run directory written by `reinforce train`")
    try:
        with path.open(newline="") as file:
            rows = list(csv.DictReader(file))
        return {key: np.asarray([float(row[key]) for row in rows]) for key in ("return", "length", "env_steps")}
    except (KeyError, ValueError, TypeError, csv.Error) as exc:
        raise ReinforceError(f"{path} is damaged ({exc}): re-run training to rebuild it") from None


def plot_runs(run_dirs: Sequence[Path], out: Path, *, threshold: float | None = None) -> Path:
    """Plot return and episode length per episode, raw and as 10- and 100-episode moving averages.

    Args:
        run_dirs: one or more run directories; each is drawn in its own colour.
        out: the image to write (PNG, SVG or PDF by extension).
        threshold: reward threshold drawn as a dashed line (default: none).

    Returns:
        ``out``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [(run_dir, read_episodes(run_dir)) for run_dir in run_dirs]
    figure, (ax_return, ax_length) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True)
    for index, (run_dir, episodes) in enumerate(runs):
        colour = f"C{index}"
        label = run_dir.name if len(runs) > 1 else ""
        number = np.arange(1, len(episodes["return"]) + 1)
        for axis, key in ((ax_return, "return"), (ax_length, "length")):
            axis.plot(number, episodes[key], color=colour, alpha=0.2, linewidth=0.8)
            axis.plot(
                number,
                moving_average(episodes[key], 10),
                color=colour,
                linewidth=1.2,
                label=f"{label} mean of 10".strip(),
            )
            axis.plot(
                number,
                moving_average(episodes[key], 100),
                color=colour,
                linewidth=2,
                linestyle="--",
                label=f"{label} mean of 100".strip(),
            )
    if threshold is not None:
        ax_return.axhline(threshold, color="black", linestyle=":", linewidth=1, label=f"solved ({threshold:g})")
    ax_return.set_ylabel("episode return")
    ax_length.set_ylabel("episode length")
    ax_length.set_xlabel("episode")
    ax_return.legend(loc="lower right", fontsize="small")
    env_ids = {str(read_json(run_dir / CONFIG_FILE).get("env_id", "?")) for run_dir, _ in runs}
    ax_return.set_title(", ".join(sorted(env_ids)))
    for axis in (ax_return, ax_length):
        axis.grid(alpha=0.3)
    figure.tight_layout()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(out, dpi=110)
    except OSError as exc:
        raise ReinforceError(f"cannot write {out} ({exc.strerror or exc}): choose another output path") from None
    finally:
        plt.close(figure)
    return out
