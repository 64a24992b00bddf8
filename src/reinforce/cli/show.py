"""``reinforce config``, ``eval`` and ``plot``: the effective settings, a saved policy's evaluation, the curves."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from reinforce.cli.app import PLOTTING_MODULES, TRAINING_MODULES, cli, import_long_lived
from reinforce.cli.options import BUDGET_OVERSHOOT, config_option, hyperparameter_options, run_settings
from reinforce.cli.runs import evaluation_line, require_environment
from reinforce.cli.sections import SectionedCommand
from reinforce.config import MAX_SEED
from reinforce.errors import ReinforceError


@cli.command(name="config", cls=SectionedCommand)
@click.argument("env_id", required=False)
@config_option
@click.option("--seed", type=click.IntRange(0, MAX_SEED), default=None, help="Random seed.")
@click.option("--total-steps", type=click.IntRange(min=0), default=None, help=f"Env-step budget; {BUDGET_OVERSHOOT}.")
@hyperparameter_options
def show_config(
    env_id: str | None,
    config_file: Path | None,
    seed: int | None,
    total_steps: int | None,
    **hyperparameters: Any,
) -> None:
    """Print the effective settings of `reinforce train` for ENV_ID as YAML (usable as --config)."""
    import yaml

    env_id, seed, total_steps, config, env_kwargs = run_settings(
        env_id, config_file, seed, total_steps, hyperparameters
    )
    document = {"env_id": env_id, "seed": seed, "total_steps": total_steps, "hyperparameters": config.to_dict()}
    if env_kwargs:
        document = {"env_id": env_id, "env_kwargs": env_kwargs, **document}
    click.echo(yaml.safe_dump(document, sort_keys=False, default_flow_style=None), nl=False)


@cli.command(name="eval")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option(
    "--episodes", type=click.IntRange(min=1), default=None, help="Episodes to run [default: 100, 1 with --video]."
)
@click.option("--stochastic", is_flag=True, help="Sample actions instead of taking the most likely one.")
@click.option("--seed", type=click.IntRange(0, MAX_SEED), default=None, help="Environment seed of the evaluation.")
@click.option("--device", default=None, help="Run the policy on this device instead of the saved one (cpu, cuda).")
@click.option(
    "--video",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Record the episodes, one after the other, to this .mp4 or .gif file (needs reinforce[video]).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def evaluate(
    run_dir: Path,
    episodes: int | None,
    stochastic: bool,
    seed: int | None,
    device: str | None,
    video: Path | None,
    as_json: bool,
) -> None:
    """Evaluate the policy saved in RUN_DIR (and record a video of it with --video)."""
    if video is not None:
        from reinforce.run.video import check_video_path

        check_video_path(video)
    import_long_lived(*TRAINING_MODULES)
    from reinforce.saved import load

    agent = load(run_dir, device=device)
    require_environment(agent, run_dir, "evaluate")
    try:
        if video is not None:
            evaluation = agent.record_video(video, episodes=episodes or 1, deterministic=not stochastic, seed=seed)
        else:
            evaluation = agent.evaluate(episodes=episodes or 100, deterministic=not stochastic, seed=seed)
    finally:
        agent.close()
    click.echo(json.dumps(evaluation) if as_json else evaluation_line(evaluation))
    if video is not None and not as_json:
        click.echo(f"wrote {video} ({evaluation['frames']} frames)")


def default_plot_path(run_dirs: Sequence[Path], x_axis: str | None) -> Path:
    """Where `plot` writes without ``--out``: never over a run's curve.png with a figure of another kind.

    One run without ``--x``: its curve.png (drawn again, the figure `reinforce train` draws); one run with
    ``--x X``: ``RUN_DIR/curve-X.png``; several runs: ``curves.png`` against steps, ``curves-time.png``
    against time, in the working directory.
    """
    from reinforce.run.files import CURVE_FILE

    if len(run_dirs) == 1:
        return run_dirs[0] / (CURVE_FILE if x_axis is None else f"curve-{x_axis}.png")
    return Path("curves.png" if x_axis in (None, "steps") else f"curves-{x_axis}.png")


@cli.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Image to write (.png, .svg, .pdf) [default: RUN_DIR/curve.png for one run, RUN_DIR/curve-steps.png or "
    "curve-time.png with --x (the run's own curve.png is not replaced by another figure), curves.png or "
    "curves-time.png for several].",
)
@click.option(
    "--x",
    "x_axis",
    type=click.Choice(["steps", "time"]),
    default=None,
    help="Compare the runs' 100-episode mean return against env steps or training time; runs that differ only "
    "in their seed are drawn as a mean with a 95% confidence band, clipped to the seeds' range "
    "[default with several runs: steps].",
)
def plot(run_dirs: Sequence[Path], out: Path | None, x_axis: str | None) -> None:
    """Plot one run's episodes against env steps (its curve.png), or compare several runs and seeds on one figure.

    A population's directory (`reinforce train --seeds`) stands for its members: alone, its curve.png is drawn
    again, the seeds' mean and band.
    """
    import_long_lived(*PLOTTING_MODULES)
    from reinforce.run.files import (
        CONFIG_FILE,
        CURVE_FILE,
        MEMBER_DIR,
        population_seeds,
        read_json,
        refuse_special_file,
    )
    from reinforce.run.plotting import plot_comparison, plot_runs

    runs: list[Path] = []  # each run directory, a population's members in its place
    for run_dir in run_dirs:
        if not run_dir.is_dir():
            raise ReinforceError(f"run directory {run_dir} does not exist: pass directories `reinforce train` wrote")
        runs += [run_dir / MEMBER_DIR.format(seed=seed) for seed in population_seeds(run_dir)] or [run_dir]
    resolved = [run.resolve() for run in runs]
    for index, run in enumerate(runs):  # a run drawn twice would count as two seeds in a band
        if resolved[index] in resolved[:index]:
            raise ReinforceError(f"run {run} is given twice (itself or through its population): give each run once")
    threshold = read_json(runs[0] / CONFIG_FILE).get("reward_threshold")
    if out is None:
        out = default_plot_path(run_dirs, x_axis)
    if out.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise ReinforceError(f"cannot write {out}: give --out a .png, .svg or .pdf file name")
    refuse_special_file(out)
    threshold = threshold if isinstance(threshold, (int, float)) and not isinstance(threshold, bool) else None
    own_curve = runs == list(run_dirs) and len(runs) == 1 and x_axis is None
    # a run's curve.png (no other file of a run directory is an image) takes that run's own figure only
    runs_curve = out.name == CURVE_FILE and (out.parent / CONFIG_FILE).is_file()
    if runs_curve and (not own_curve or out.resolve() != (runs[0] / CURVE_FILE).resolve()):
        raise ReinforceError(
            f"cannot write {out}: it is the curve of the run in {out.parent}, which this figure would replace; "
            "give another file name"
        )
    if own_curve:
        plot_runs(runs, out, threshold=threshold)
    else:  # a population alone: the seeds' mean and band, as `reinforce train --seeds` draws its curve.png
        plot_comparison(runs, out, x=x_axis or "steps", threshold=threshold)
    click.echo(f"wrote {out}")
