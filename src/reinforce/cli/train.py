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
    BUDGET_OVERSHOOT,
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
from reinforce.cli.sections import SectionedCommand
from reinforce.config import MAX_SEED, stops_on
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
    "RUN_DIR/seed-S; `reinforce plot RUN_DIR/seed-*` draws them together.",
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
        _train_population(
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

    from reinforce.callbacks import EvalCallback
    from reinforce.errors import RunDirectoryBusy, TrainingInterrupted
    from reinforce.run.files import CHECKPOINT_FILE, CURVE_FILE
    from reinforce.training import finish_run, remove_run_files
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
            best = evaluations.best
            click.echo(
                f"best of {len(evaluations.evaluations)} evaluations: mean return {best['mean_return']:.2f} at "
                f"{best['env_steps']:,} env steps, saved in {evaluations.best_dir}"
            )
        # the confirmation that stopped training is the final evaluation when it has as many episodes
        done = verified if verified is not None and verified["episodes"] == eval_episodes else None
        evaluation = finish_run(agent, run_dir, eval_episodes=eval_episodes, plotter=plotter, evaluation=done)
        if evaluation is not None:
            click.echo(_evaluation_line(evaluation))
    finally:
        agent.close()
    click.echo(f"run directory: {run_dir} (curve: {run_dir / CURVE_FILE})")


def _train_population(
    env_id: str | None,
    config_file: Path | None,
    seeds_text: str,
    total_steps: int | None,
    run_dir: Path | None,
    resume_dir: Path | None,
    eval_episodes: int,
    checkpoint_every: int,
    hyperparameters: dict[str, Any],
) -> None:
    """``--seeds``: a `reinforce.population.Population` of the seeds, each member's run in RUN_DIR/seed-S.

    With ``--resume DIR``, each DIR/seed-S continues from its last checkpoint to its total budget (as a single
    run's ``--resume``), the members together.
    """
    from reinforce.cli.sweep import parse_seeds

    seeds = parse_seeds(seeds_text)
    import_long_lived(*TRAINING_MODULES)
    from reinforce.population import Population
    from reinforce.run.files import CURVE_FILE
    from reinforce.run.plotting import plot_comparison
    from reinforce.training import finish_run

    finished: dict[int, str] = {}  # resumed members with nothing left to do: what `_finished` says of them
    if resume_dir is not None:
        agents: list[Any] = []
        budgets: list[int] = []
        try:
            for seed in seeds:
                agent, _, target = _resumed_run(
                    resume_dir / f"seed-{seed}", env_id, config_file, None, total_steps, run_dir, hyperparameters, None
                )
                agents.append(agent)
                budgets.append(max(0, target - agent.num_env_steps))
                line = _finished(agent, resume_dir / f"seed-{seed}", target)
                if line is not None:
                    finished[seed] = line
        except BaseException:
            for agent in agents:
                agent.close()
            raise
        population = Population.from_agents(agents)
        run_dir = resume_dir
    else:
        env_id, _, steps, config, env_kwargs = run_settings(env_id, config_file, None, total_steps, hyperparameters)
        budgets = [steps] * len(seeds)
        if run_dir is not None and run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
            raise ReinforceError(f"run directory {run_dir} already exists and is not empty: choose another --run-dir")
        population = Population(env_id, seeds, config=config, env_kwargs=env_kwargs)
    try:
        run_dir = claim_run_dir(population.members[0].env_id, None) if run_dir is None else run_dir
        population.learn(budgets, run_dir=run_dir, checkpoint_every=checkpoint_every)
        for seed, member in zip(seeds, population.members, strict=True):
            if seed in finished:  # its run directory stays as it was (its evaluation.json included)
                click.echo(f"seed {seed}: {finished[seed]}")
                continue
            verifier = population.verifiers.get(seed)
            verified = None if verifier is None else verifier.verified
            outcome = "verified" if verified else "solved" if verifier is None and member.solved else "trained"
            if seed in population.errors:
                outcome = f"stopped ({population.errors[seed]})"
            click.echo(f"seed {seed}: {outcome} in {member.num_env_steps:,} env steps, {member.num_updates:,} updates")
            member_dir = run_dir / f"seed-{seed}"
            # the confirmation that stopped the member is its final evaluation when it has as many episodes
            done = verified if verified is not None and verified["episodes"] == eval_episodes else None
            evaluation = finish_run(member, member_dir, eval_episodes=eval_episodes, evaluation=done)
            if evaluation is not None:
                click.echo(f"seed {seed}: {_evaluation_line(evaluation)}")
        threshold = population.members[0].reward_threshold
        # the seeds' mean and band (a single seed: its curve), as `reinforce plot RUN_DIR/seed-*` draws them
        plot_comparison([run_dir / f"seed-{seed}" for seed in seeds], run_dir / CURVE_FILE, threshold=threshold)
    finally:
        population.close()
    click.echo(f"run directories: {run_dir}/seed-S (the seeds' mean and band: {run_dir / CURVE_FILE})")


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
    from reinforce.verification import verified_at_checkpoint

    verified = verified_at_checkpoint(agent, run_dir)
    if verified is not None:
        return (
            f"run {run_dir} already finished (verified at {agent.num_env_steps:,} env steps: deterministic mean "
            f"return {verified['mean_return']:.2f} over {verified['episodes']} episodes): nothing to do; to train "
            f"further, start a new run with --config {run_dir / 'config.json'} --no-stop-on-solve"
        )
    if stops_on(agent.config) == "training_mean" and agent.solved:
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
        f"evaluation over {evaluation['episodes']} episode{'' if evaluation['episodes'] == 1 else 's'} ({mode}): "
        "mean return "
        f"{evaluation['mean_return']:.2f} ± {evaluation['std_return']:.2f} "
        f"(min {evaluation['min_return']:.2f}, max {evaluation['max_return']:.2f}), "
        f"mean length {evaluation['mean_length']:.1f}"
    )
