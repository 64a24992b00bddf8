"""``reinforce train --seeds``: one agent per seed, trained together as a population, each in RUN_DIR/seed-S."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from reinforce.cli.app import TRAINING_MODULES, import_long_lived
from reinforce.cli.options import run_settings
from reinforce.cli.runs import (
    RunRequest,
    check_new_run_dir,
    claim_run_dir,
    final_evaluation,
    finished_line,
    resumed_run,
)
from reinforce.errors import ReinforceError, TrainingInterrupted


def train_population(
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
    from reinforce.run.plot_process import PlotProcess

    seeds = parse_seeds(seeds_text)
    # the curves' child process imports matplotlib while this one imports torch, then draws each member's curve
    # as soon as that member stops, while the others train on
    plotter = click.get_current_context().with_resource(PlotProcess())
    import_long_lived(*TRAINING_MODULES)
    from reinforce.population import Population
    from reinforce.run.files import CURVE_FILE

    request = RunRequest(env_id, config_file, None, total_steps, run_dir, hyperparameters)
    finished: dict[int, str] = {}  # resumed members with nothing left to do: what `finished_line` says of them
    if resume_dir is not None:
        _check_population_dir(resume_dir, seeds)
        agents: list[Any] = []
        budgets: list[int] = []
        try:
            for seed in seeds:
                agent, _, target = resumed_run(resume_dir / f"seed-{seed}", request)
                agents.append(agent)
                budgets.append(max(0, target - agent.num_env_steps))
                line = finished_line(agent, resume_dir / f"seed-{seed}", target)
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
        check_new_run_dir(run_dir, resume=f"--seeds {seeds_text} --resume")
        population = Population(env_id, seeds, config=config, env_kwargs=env_kwargs)
    try:
        existed = run_dir is not None and run_dir.exists()
        run_dir = claim_run_dir(population.members[0].env_id, None) if run_dir is None else run_dir
        threshold = population.members[0].reward_threshold
        reports: dict[int, list[str]] = {}  # what is said of each member, in the seeds' order after training
        failures: list[tuple[int, Exception]] = []
        for seed in finished:  # a finished resumed member's directory stays as it was, but for a curve a signal
            member_dir = run_dir / f"seed-{seed}"  # kept from it
            if not (member_dir / CURVE_FILE).exists():
                plotter.submit([member_dir], member_dir / CURVE_FILE, threshold=threshold)

        def finish_member(seed: int, *, after_training: bool = False) -> None:
            """A member that has stopped: its curve (in the child), its final evaluation, what is said of it."""
            member = population.members[seeds.index(seed)]
            # one that failed before any update waits for the end of training (a new population that failed at
            # once leaves nothing)
            waits = not after_training and seed in population.errors and not member.num_updates
            if seed in finished or seed in reports or waits:
                return
            member_dir = run_dir / f"seed-{seed}"
            verifier = population.verifiers.get(seed)
            verified = None if verifier is None else verifier.verified
            outcome = "verified" if verified else "solved" if verifier is None and member.solved else "trained"
            if seed in population.errors:
                outcome = f"stopped ({population.errors[seed]})"
            updates = f"{member.num_updates:,} update{'' if member.num_updates == 1 else 's'}"
            reports[seed] = [f"{outcome} in {member.num_env_steps:,} env steps, {updates}"]
            plotter.submit([member_dir], member_dir / CURVE_FILE, threshold=threshold)
            try:  # now, so that a signal later leaves this member's run directory complete
                line = final_evaluation(member, member_dir, verified=verified, eval_episodes=eval_episodes, curve=False)
            except Exception as error:  # said after training; the others train on, and commit
                failures.append((seed, error))
                return
            if line is not None:
                reports[seed].append(line)

        try:
            population.learn(budgets, run_dir=run_dir, checkpoint_every=checkpoint_every, member_finished=finish_member)
        except TrainingInterrupted:
            with contextlib.suppress(ReinforceError, RuntimeError):  # RuntimeError: no curve was asked for
                plotter.result()  # the stopped members' curves, asked for already, are drawn before the exit
            raise
        if resume_dir is None and all(seed in population.errors for seed in seeds):
            if not any(member.num_updates for member in population.members):
                _remove_failed_runs(run_dir, seeds, existed)  # a new run that failed at once leaves nothing
            raise population.errors[seeds[0]]
        for seed in seeds:
            finish_member(seed, after_training=True)  # one that failed before any update while the others went on
            for line in [finished[seed]] if seed in finished else reports.get(seed, []):
                click.echo(f"seed {seed}: {line}")
        # the seeds' mean and band (a single seed: its curve), as `reinforce plot RUN_DIR/seed-*` draws them
        members = [run_dir / f"seed-{seed}" for seed in seeds]
        plotter.submit(members, run_dir / CURVE_FILE, threshold=threshold, comparison=True)
        plotter.result()
        if failures:  # the first, naming its seed (a ReinforceError: one line; other kinds as the CLI reports them)
            seed, error = failures[0]
            more = f" (and {len(failures) - 1} more members' evaluations failed)" if len(failures) > 1 else ""
            if isinstance(error, ReinforceError):
                raise ReinforceError(f"seed {seed}: {error}{more}") from None
            raise error
    finally:
        population.close()
    click.echo(f"run directories: {run_dir}/seed-S (the seeds' mean and band: {run_dir / CURVE_FILE})")


def _remove_failed_runs(run_dir: Path, seeds: Sequence[int], existed: bool) -> None:
    """Remove what a new population that failed before any update wrote: each seed's run files and directory.

    ``run_dir`` itself goes too where this command made it (an empty ``--run-dir`` the user made stays, empty).
    """
    from reinforce.run.checkpoint import remove_stale_files
    from reinforce.training import remove_run_files

    for seed in seeds:
        member_dir = run_dir / f"seed-{seed}"
        if not member_dir.is_dir():
            continue
        remove_run_files(member_dir)
        remove_stale_files(member_dir, keep="")  # its state files: no checkpoint names one now
        with contextlib.suppress(OSError):
            member_dir.rmdir()  # only if empty
    if not existed:
        with contextlib.suppress(OSError):
            run_dir.rmdir()  # only if empty


def _check_population_dir(resume_dir: Path, seeds: Sequence[int]) -> None:
    """Refuse a ``--resume`` directory that is not a population holding each of ``seeds``, naming the fix."""
    from reinforce.config_checks import seeds_text
    from reinforce.run.checkpoint import check_run_dir
    from reinforce.run.files import CONFIG_FILE, population_seeds

    if (resume_dir / CONFIG_FILE).exists():
        raise ReinforceError(
            f"{resume_dir} holds one run, not a population: continue it with --resume {resume_dir}, without --seeds"
        )
    if not resume_dir.is_dir():
        check_run_dir(resume_dir)
    held = population_seeds(resume_dir)
    if not held:
        raise ReinforceError(
            f"{resume_dir} holds no population (no seed-S run directory): pass the --run-dir that "
            "`reinforce train --seeds` wrote"
        )
    missing = [seed for seed in seeds if seed not in held]
    if missing:
        raise ReinforceError(
            f"{resume_dir} holds no member of seed{'s' if len(missing) > 1 else ''} {seeds_text(missing)} "
            f"(its seeds are {seeds_text(held)}): pass --seeds {seeds_text(held)}"
        )
