"""``reinforce train``: a new run or ``--resume``, then the summary, the curve and the evaluation."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import click

from reinforce.cli.app import TRAINING_MODULES, cli, import_long_lived
from reinforce.cli.options import (
    BUDGET_OVERSHOOT,
    DEFAULT_TOTAL_STEPS,
    address_option,
    checkpoint_every_option,
    config_option,
    env_kwargs_option,
    eval_episodes_option,
    hyperparameter_options,
)
from reinforce.cli.population import train_population
from reinforce.cli.runs import RunRequest, final_evaluation, finished_line, new_run, resumed_run
from reinforce.cli.sections import SectionedCommand
from reinforce.config import MAX_SEED, stops_on
from reinforce.errors import ReinforceError


@cli.command(cls=SectionedCommand)
@click.argument("env_id", required=False)
@config_option
@env_kwargs_option
@click.option("--seed", type=click.IntRange(0, MAX_SEED), default=None, help="Random seed (torch and environments).")
@click.option(
    "--seeds",
    "seeds_text",
    default=None,
    metavar="SEEDS",
    help="Train one agent per seed (0-9, 0,2,5) as one population in this process, each writing "
    "RUN_DIR/seed-S; RUN_DIR/curve.png draws the seeds' mean and band.",
)
@click.option(
    "--total-steps",
    type=click.IntRange(min=0),
    default=None,
    help=f"Env-step budget; {BUDGET_OVERSHOOT} [default: the one shipped for ENV_ID (hyperparams.yaml), else "
    f"{DEFAULT_TOTAL_STEPS}].",
)
@click.option(
    "--run-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Where to write the run (must not exist or be empty) [default: runs/ENV_ID-seedS-TIME with --seed, "
    "runs/ENV_ID-TIME without].",
)
@eval_episodes_option(
    "Deterministic evaluation episodes after training (0 to skip), and of each evaluation with --eval-every."
)
@click.option(
    "--eval-every",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    metavar="STEPS",
    help="Also evaluate the deterministic policy every STEPS env steps during training, on a separate env, "
    "writing RUN_DIR/evaluations.csv and keeping the best policy in RUN_DIR/best (load it with "
    "`reinforce eval RUN_DIR/best`); 0: never. With the verified stop (the default) these evaluations are its "
    "checks, in place of --verify-every and --verify-episodes.",
)
@click.option(
    "--resume",
    "resume_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Continue the run in this directory from its last checkpoint, with its saved settings. Only "
    "--total-steps (the run's total budget, default the saved one), --device, --checkpoint-every, "
    "--eval-episodes, --eval-every, --tensorboard, --address and --quiet may go with it; with --seeds, "
    "each RUN_DIR/seed-S continues, together.",
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
    seeds_text: str | None,
    total_steps: int | None,
    run_dir: Path | None,
    eval_episodes: int,
    eval_every: int,
    resume_dir: Path | None,
    checkpoint_every: int,
    tensorboard: bool,
    address: str | None,
    quiet: bool,
    **hyperparameters: Any,
) -> None:
    """Train a policy on ENV_ID (a Gymnasium id such as CartPole-v1) and write a run directory.

    SIGINT (Ctrl-C), SIGTERM or SIGHUP finishes the current update, saves a checkpoint and exits with 130, 143
    or 129;
    `reinforce train --resume RUN_DIR` then continues exactly where the run stopped.
    """
    from reinforce.run.plot_process import PlotProcess

    if seeds_text is not None:
        given = {"--seed": seed, "--eval-every": eval_every or None, "--address": address}
        conflicts = [name for name, value in {**given, "--tensorboard": tensorboard or None}.items() if value]
        if conflicts:
            raise ReinforceError(f"--seeds trains a population, which takes no {', '.join(conflicts)}: drop it")
        train_population(
            env_id,
            config_file,
            seeds_text,
            total_steps,
            run_dir,
            resume_dir,
            eval_episodes,
            checkpoint_every,
            hyperparameters,
        )
        return
    if eval_every and not eval_episodes:
        raise ReinforceError(
            "--eval-every needs evaluation episodes, but --eval-episodes is 0: pass --eval-episodes 1 or more"
        )
    # the curve's child process imports matplotlib while this one imports torch and trains
    plotter = click.get_current_context().with_resource(PlotProcess())
    import_long_lived(*TRAINING_MODULES)
    if tensorboard:
        from reinforce.run.metrics import require_tensorboard

        require_tensorboard()
    request = RunRequest(env_id, config_file, seed, total_steps, run_dir, hyperparameters, address)
    existed = run_dir is not None and run_dir.exists()  # a new run leaves a pre-existing (empty) one in place
    if resume_dir is not None:
        agent, run_dir, total_steps = resumed_run(resume_dir, request)
        finished = finished_line(agent, resume_dir, total_steps)
        if finished is not None:
            agent.close()
            click.echo(finished)
            return
    else:
        agent, run_dir, total_steps = new_run(request)

    from reinforce.callbacks import EvalCallback
    from reinforce.errors import RunDirectoryBusy, TrainingInterrupted
    from reinforce.run.files import CHECKPOINT_FILE, CURVE_FILE
    from reinforce.training import remove_run_files
    from reinforce.verification import make_verifier

    # one callback evaluates: the verifier (stop_on_solve with solve_criterion=verified), at --eval-every if given
    evaluations = make_verifier(agent, every_steps=eval_every or None, episodes=eval_episodes if eval_every else None)
    if evaluations is None and eval_every:
        evaluations = EvalCallback(every_steps=eval_every, episodes=eval_episodes)
    try:
        budget = max(0, total_steps - agent.num_env_steps)
        try:
            agent.learn(
                budget,
                run_dir=run_dir,
                progress_bar=not quiet,
                checkpoint_every=checkpoint_every,
                tensorboard=tensorboard,
                callback=evaluations,
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
        verified = None if evaluations is None else evaluations.verified
        outcome = (
            "verified" if verified else "solved" if stops_on(agent.config) != "verified" and agent.solved else "trained"
        )
        click.echo(
            f"{outcome} {agent.env_id} in {agent.num_env_steps:,} env steps, {agent.num_episodes:,} episodes, "
            f"{agent.num_updates:,} updates, {agent.train_time_s:.2f} s of training"
            + (
                f" (deterministic mean return {verified['mean_return']:.2f} over {verified['episodes']} episodes)"
                if verified
                else ""
            )
        )
        if evaluations is not None and evaluations.best is not None and not verified:
            best, saved = evaluations.best, evaluations.saved_best_dir
            where = (
                f"saved in {saved}"
                if saved
                else f"not saved: {evaluations.best_dir} does not hold its policy (a better evaluation saves there)"
            )
            click.echo(
                f"best of {len(evaluations.evaluations)} evaluations: mean return {best['mean_return']:.2f} at "
                f"{best['env_steps']:,} env steps, {where}"
            )
        line = final_evaluation(agent, run_dir, verified=verified, eval_episodes=eval_episodes, plotter=plotter)
        if line is not None:
            click.echo(line)
    finally:
        agent.close()
    click.echo(f"run directory: {run_dir} (curve: {run_dir / CURVE_FILE})")
