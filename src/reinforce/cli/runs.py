"""A run directory for the CLI: a new one claimed, or one resumed; what is said when it is finished."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reinforce.cli.options import DEFAULT_TOTAL_STEPS, env_file_name, flag, run_settings
from reinforce.config import stops_on
from reinforce.errors import ReinforceError


@dataclass(frozen=True)
class RunRequest:
    """What ``reinforce train`` is asked for, as given: the arguments that choose a run and its settings."""

    env_id: str | None
    config_file: Path | None
    seed: int | None
    total_steps: int | None
    run_dir: Path | None
    hyperparameters: dict[str, Any]
    """The hyperparameter flags, by field name (None or () where not given)."""
    address: str | None = None


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


def new_run(request: RunRequest) -> tuple[Any, Path, int]:
    """A fresh agent and its newly created run directory, everything validated before anything is written."""
    env_id, seed, total_steps, config, env_kwargs = run_settings(
        request.env_id, request.config_file, request.seed, request.total_steps, request.hyperparameters
    )
    run_dir = request.run_dir
    check_new_run_dir(run_dir)
    from reinforce.agent import Reinforce

    agent = Reinforce(env_id, config=config, seed=seed, ray_address=request.address, env_kwargs=env_kwargs)
    try:
        agent.environments.start_workers(agent.config)  # Ray's errors come before the run directory exists
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


def resumed_run(resume_dir: Path, request: RunRequest) -> tuple[Any, Path, int]:
    """The agent of ``resume_dir`` at its last checkpoint and the run's total step budget."""
    conflicts = [
        name
        for name, value in (
            ("ENV_ID", request.env_id),
            ("--config", request.config_file),
            ("--seed", request.seed),
            ("--run-dir", request.run_dir),
        )
        if value is not None
    ]
    conflicts += [
        flag(name, value)
        for name, value in request.hyperparameters.items()
        if value not in (None, ()) and name not in RESUME_OVERRIDES
    ]
    if conflicts:
        raise ReinforceError(
            f"--resume continues the run with its saved settings, so {', '.join(conflicts)} cannot change: drop "
            f"{'them' if len(conflicts) > 1 else 'it'} (or start a new run with --config RUN_DIR/config.json "
            "and the new values)"
        )
    from reinforce.run.files import CONFIG_FILE, read_json, refuse_population
    from reinforce.saved import resume
    from reinforce.settings import parse_config_document

    refuse_population(resume_dir, fix=f"continue it with --seeds {{seeds}} --resume {resume_dir}")
    agent = resume(resume_dir, device=request.hyperparameters.get("device"), ray_address=request.address)
    require_environment(agent, resume_dir, "resume")
    logging.getLogger("reinforce").info("resuming %s at update %d", resume_dir, agent.num_updates)
    total_steps = request.total_steps
    if total_steps is None:
        try:
            saved = parse_config_document(read_json(resume_dir / CONFIG_FILE), str(resume_dir / CONFIG_FILE))
        except ReinforceError:
            agent.close()
            raise
        total_steps = saved.total_steps if saved.total_steps is not None else DEFAULT_TOTAL_STEPS
    return agent, resume_dir, total_steps


def require_environment(agent: Any, run_dir: Path, doing: str) -> None:
    """Refuse (and close) an agent loaded from ``run_dir`` whose environment cannot be made here: ``doing`` needs it."""
    if agent.envs is None:
        why = agent.environments.unavailable
        agent.close()
        raise ReinforceError(f"cannot {doing} {run_dir} here: {why}")


def finished_line(agent: Any, run_dir: Path, total_steps: int) -> str | None:
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


def evaluation_line(evaluation: dict[str, Any]) -> str:
    """The one line that reports an evaluation (`reinforce.evaluation.summarize`'s dict)."""
    mode = "deterministic" if evaluation["deterministic"] else "stochastic"
    return (
        f"evaluation over {evaluation['episodes']} episode{'' if evaluation['episodes'] == 1 else 's'} ({mode}): "
        "mean return "
        f"{evaluation['mean_return']:.2f} ± {evaluation['std_return']:.2f} "
        f"(min {evaluation['min_return']:.2f}, max {evaluation['max_return']:.2f}), "
        f"mean length {evaluation['mean_length']:.1f}"
    )


def check_new_run_dir(run_dir: Path | None, resume: str = "--resume") -> None:
    """Refuse a ``--run-dir`` that exists and is not an empty directory (nothing there is touched).

    ``resume``: the flags that continue such a run instead (a population's: ``--seeds SEEDS --resume``), where
    the directory holds neither one run nor a population (which say how they continue).
    """
    if run_dir is not None and run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        from reinforce.config_checks import seeds_text
        from reinforce.run.files import CONFIG_FILE, population_seeds

        seeds = population_seeds(run_dir) if run_dir.is_dir() else []
        if seeds or (run_dir / CONFIG_FILE).is_file():  # what it holds says how it continues
            resume = f"--seeds {seeds_text(seeds)} --resume" if seeds else "--resume"
        raise ReinforceError(
            f"run directory {run_dir} already exists and is not empty: choose another --run-dir, "
            f"or continue it with {resume} {run_dir}"
        )


def final_evaluation(
    agent: Any,
    run_dir: Path,
    *,
    verified: dict[str, Any] | None,
    eval_episodes: int,
    plotter: Any = None,
    curve: bool = True,
) -> str | None:
    """`reinforce.training.finish_run` of a trained run; the line reporting its final evaluation, if any.

    The confirmation that stopped a verified run (``verified``) is its final evaluation when it has
    ``eval_episodes`` episodes: the policy is not evaluated twice.
    """
    from reinforce.training import finish_run

    done = verified if verified is not None and verified["episodes"] == eval_episodes else None
    evaluation = finish_run(agent, run_dir, eval_episodes=eval_episodes, plotter=plotter, evaluation=done, curve=curve)
    return None if evaluation is None else evaluation_line(evaluation)
