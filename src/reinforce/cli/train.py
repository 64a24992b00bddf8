"""``reinforce train``: a new run or ``--resume``, then the summary, the curve and the evaluation."""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any

import click

from reinforce.cli.app import TRAINING_MODULES, cli, import_long_lived
from reinforce.cli.options import (
    DEFAULT_TOTAL_STEPS,
    address_option,
    checkpoint_every_option,
    config_option,
    env_file_name,
    env_kwargs_option,
    eval_episodes_option,
    flag,
    hyperparameter_options,
    run_settings,
)
from reinforce.config import MAX_SEED
from reinforce.errors import ReinforceError


def claim_run_dir(env_id: str, seed: int | None) -> Path:
    """Create and return a fresh run directory ``runs/ENV-seedS-YYYYmmdd-HHMMSS``.

    Without a seed the ``-seedS`` part is left out; if the name is taken, ``-2``, ``-3``, ... is appended. The
    directory is claimed by creating it, so two runs started in the same second never share one.
    """
    name = env_file_name(env_id) + ("" if seed is None else f"-seed{seed}")
    base = Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    base.parent.mkdir(parents=True, exist_ok=True)
    candidate, number = base, 1
    while True:
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            number += 1
            candidate = base.with_name(f"{base.name}-{number}")


@cli.command()
@click.argument("env_id", required=False)
@config_option
@env_kwargs_option
@click.option("--seed", type=click.IntRange(0, MAX_SEED), default=None, help="Random seed (torch and environments).")
@click.option(
    "--total-steps",
    type=click.IntRange(min=0),
    default=None,
    help=f"Env-step budget [default: the one shipped for ENV_ID (hyperparams.yaml), else {DEFAULT_TOTAL_STEPS}].",
)
@click.option(
    "--run-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Where to write the run (must not exist or be empty) [default: runs/ENV_ID-seedS-TIME].",
)
@eval_episodes_option("Deterministic evaluation episodes after training (0 to skip).")
@click.option(
    "--resume",
    "resume_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Continue the run in this directory from its last checkpoint, with its saved settings. Only "
    "--total-steps (the run's total budget, default the saved one), --device, --checkpoint-every, "
    "--eval-episodes, --tensorboard, --address and --quiet may go with it.",
)
@checkpoint_every_option(
    "Write a checkpoint every N updates (0: only at the end); a killed run resumes from the last one."
)
@click.option(
    "--tensorboard",
    is_flag=True,
    help="Also write the metrics as TensorBoard scalars to RUN_DIR/tensorboard (needs reinforce[tensorboard]).",
)
@address_option("With --backend ray: the Ray cluster to join")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar; print only the summary.")
@hyperparameter_options
def train(
    env_id: str | None,
    config_file: Path | None,
    seed: int | None,
    total_steps: int | None,
    run_dir: Path | None,
    eval_episodes: int,
    resume_dir: Path | None,
    checkpoint_every: int,
    tensorboard: bool,
    address: str | None,
    quiet: bool,
    **hyperparameters: Any,
) -> None:
    """Train a policy on ENV_ID (a Gymnasium id such as CartPole-v1) and write a run directory.

    SIGINT (Ctrl-C) or SIGTERM finishes the current update, saves a checkpoint and exits with 130 or 143;
    `reinforce train --resume RUN_DIR` then continues exactly where the run stopped.
    """
    from reinforce.run.plotting import PlotProcess

    # the curve's child process imports matplotlib while this one imports torch and trains
    plotter = click.get_current_context().with_resource(PlotProcess())
    import_long_lived(*TRAINING_MODULES)
    if tensorboard:
        from reinforce.run.metrics import require_tensorboard

        require_tensorboard()
    existed = run_dir is not None and run_dir.exists()  # a new run leaves a pre-existing (empty) one in place
    if resume_dir is not None:
        agent, run_dir, total_steps = _resumed_run(
            resume_dir, env_id, config_file, seed, total_steps, run_dir, hyperparameters, address
        )
        finished = _finished(agent, resume_dir, total_steps)
        if finished is not None:
            agent.close()
            click.echo(finished)
            return
    else:
        agent, run_dir, total_steps = _new_run(
            env_id, config_file, seed, total_steps, run_dir, hyperparameters, address
        )

    from reinforce.errors import RunDirectoryBusy, TrainingInterrupted
    from reinforce.run.files import CHECKPOINT_FILE, CURVE_FILE
    from reinforce.training import finish_run, remove_run_files

    try:
        budget = max(0, total_steps - agent.num_env_steps)
        try:
            agent.learn(
                budget,
                run_dir=run_dir,
                progress_bar=not quiet,
                checkpoint_every=checkpoint_every,
                tensorboard=tensorboard,
            )
        except Exception as exc:
            # a new run (its directory was empty) that failed before its first checkpoint leaves nothing behind
            failed = not isinstance(exc, (TrainingInterrupted, RunDirectoryBusy))
            if resume_dir is None and failed and not (run_dir / CHECKPOINT_FILE).exists():
                remove_run_files(run_dir)
                if not existed:
                    with contextlib.suppress(OSError):
                        run_dir.rmdir()  # only if empty
            raise
        outcome = "solved" if agent.solved else "trained"
        click.echo(
            f"{outcome} {agent.env_id} in {agent.num_env_steps:,} env steps, {agent.num_episodes:,} episodes, "
            f"{agent.num_updates:,} updates, {agent.train_time_s:.2f} s of training"
        )
        evaluation = finish_run(agent, run_dir, eval_episodes=eval_episodes, plotter=plotter)
        if evaluation is not None:
            click.echo(_evaluation_line(evaluation))
    finally:
        agent.close()
    click.echo(f"run directory: {run_dir} (curve: {run_dir / CURVE_FILE})")


def _new_run(
    env_id: str | None,
    config_file: Path | None,
    seed: int | None,
    total_steps: int | None,
    run_dir: Path | None,
    hyperparameters: dict[str, Any],
    address: str | None,
) -> tuple[Any, Path, int]:
    """A fresh agent and its newly created run directory, everything validated before anything is written."""
    env_id, seed, total_steps, config, env_kwargs = run_settings(
        env_id, config_file, seed, total_steps, hyperparameters
    )
    if run_dir is not None and run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise ReinforceError(
            f"run directory {run_dir} already exists and is not empty: choose another --run-dir, "
            f"or continue it with --resume {run_dir}"
        )
    from reinforce.agent import Reinforce

    agent = Reinforce(env_id, config=config, seed=seed, ray_address=address, env_kwargs=env_kwargs)
    try:
        agent.start_workers()  # Ray's errors come before the run directory exists
        if run_dir is None:
            run_dir = claim_run_dir(env_id, seed)
        else:
            run_dir.mkdir(parents=True, exist_ok=True)
    except BaseException as exc:
        agent.close()
        if not isinstance(exc, OSError):
            raise
        raise ReinforceError(
            f"cannot create run directory {exc.filename or run_dir} ({exc.strerror}): choose another --run-dir"
        ) from None
    return agent, run_dir, total_steps


RESUME_OVERRIDES = ("device",)
"""The hyperparameter flags that ``--resume`` accepts: where the run computes (a change of device continues the
run, but its random stream differs from an uninterrupted run on the first device)."""


def _resumed_run(
    resume_dir: Path,
    env_id: str | None,
    config_file: Path | None,
    seed: int | None,
    total_steps: int | None,
    run_dir: Path | None,
    hyperparameters: dict[str, Any],
    address: str | None,
) -> tuple[Any, Path, int]:
    """The agent of ``resume_dir`` at its last checkpoint and the run's total step budget."""
    conflicts = [
        name
        for name, value in (("ENV_ID", env_id), ("--config", config_file), ("--seed", seed), ("--run-dir", run_dir))
        if value is not None
    ]
    conflicts += [
        flag(name, value)
        for name, value in hyperparameters.items()
        if value not in (None, ()) and name not in RESUME_OVERRIDES
    ]
    if conflicts:
        raise ReinforceError(
            f"--resume continues the run with its saved settings, so {', '.join(conflicts)} cannot change: drop "
            f"{'them' if len(conflicts) > 1 else 'it'} (or start a new run with --config RUN_DIR/config.json "
            "and the new values)"
        )
    from reinforce.run.files import CONFIG_FILE, read_json
    from reinforce.saved import resume
    from reinforce.settings import parse_config_document

    agent = resume(resume_dir, device=hyperparameters.get("device"), ray_address=address)
    logging.getLogger("reinforce").info("resuming %s at update %d", resume_dir, agent.num_updates)
    if total_steps is None:
        try:
            saved = parse_config_document(read_json(resume_dir / CONFIG_FILE), str(resume_dir / CONFIG_FILE))
        except ReinforceError:
            agent.close()
            raise
        total_steps = saved.total_steps if saved.total_steps is not None else DEFAULT_TOTAL_STEPS
    return agent, resume_dir, total_steps


def _finished(agent: Any, run_dir: Path, total_steps: int) -> str | None:
    """The line that says a resumed run has nothing left to do, or None if it has."""
    if agent.config.stop_on_solve and agent.solved:
        return (
            f"run {run_dir} already finished (solved at {agent.num_env_steps:,} env steps, with stop_on_solve): "
            f"nothing to do; to train further, start a new run with --config {run_dir / 'config.json'} "
            "--no-stop-on-solve"
        )
    if agent.num_env_steps >= total_steps:
        return (
            f"run {run_dir} already finished ({agent.num_env_steps:,} env steps; its budget is {total_steps:,}): "
            f"nothing to do; pass --total-steps larger than {agent.num_env_steps} to train further"
        )
    return None


def _evaluation_line(evaluation: dict[str, Any]) -> str:
    mode = "deterministic" if evaluation["deterministic"] else "stochastic"
    return (
        f"evaluation over {evaluation['episodes']} episodes ({mode}): mean return "
        f"{evaluation['mean_return']:.2f} ± {evaluation['std_return']:.2f} "
        f"(min {evaluation['min_return']:.2f}, max {evaluation['max_return']:.2f}), "
        f"mean length {evaluation['mean_length']:.1f}"
    )
