"""Running a sweep: a setting's seeds as one population per Ray task of one CPU, progress, interrupts, the report."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from reinforce.config import DEFAULT_CHECKPOINT_EVERY, DEFAULT_EVAL_EPISODES
from reinforce.errors import ReinforceError
from reinforce.run.files import CONFIG_FILE, write_json
from reinforce.sweep.plan import SWEEP_FILE, Trial, check_sweep_dir, plan_sweep
from reinforce.sweep.report import SweepRow, write_report
from reinforce.sweep.trials import finished_result, run_population

CANCEL_GRACE_S = 10.0
"""After an interrupt, how long the driver waits for cancelled trials to write their checkpoint."""


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a sweep. Finished trials keep their result, the others their last checkpoint.

    Running the same sweep again (same arguments, same directory) continues it.

    Attributes:
        out: the sweep directory.
        finished: trials finished, of ``total``.
    """

    def __init__(self, out: Path, finished: int, total: int) -> None:
        self.out = out
        self.finished = finished
        self.total = total
        super().__init__(
            f"sweep in {out} stopped with {finished} of {total} trials finished (the others keep their last checkpoint)"
        )


def _outcome(result: Mapping[str, Any]) -> str:
    if result.get("error") is not None:
        text = f"diverged after {result['env_steps']:,} env steps"
    elif result["steps_to_solve"] is not None:
        text = f"solved at {result['steps_to_solve']:,} env steps"
    else:
        text = f"not solved in {result['env_steps']:,} env steps"
    if result["final_return"] is not None:
        text += f", final return {result['final_return']:.1f}"
    return f"{text} ({result['train_time_s']:.1f} s of training)"


def _error_line(error: BaseException) -> str:
    cause = getattr(error, "cause", None) or error  # a RayTaskError carries the trial's own exception
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[0] if text else ''}"


def population_groups(trials: Sequence[Trial], cpus: int) -> list[list[Trial]]:
    """The trials as populations: one per setting (its seeds), split in halves while there are fewer than ``cpus``.

    A setting's seeds train fastest as one population (one process, batched); a machine with more CPUs than
    settings gets its CPUs used by splitting the largest populations, down to single trials.
    """
    groups: list[list[Trial]] = []
    for trial in trials:
        for group in groups:
            if group[0].setting == trial.setting:
                group.append(trial)
                break
        else:
            groups.append([trial])
    while len(groups) < cpus and max(len(group) for group in groups) > 1:
        largest = max(groups, key=len)
        index = groups.index(largest)
        half = (len(largest) + 1) // 2
        groups[index : index + 1] = [largest[:half], largest[half:]]
    return groups


def _run_trials(
    ray: Any, trials: Sequence[Trial], results: dict[str, dict[str, Any]], say: Callable[[str], None], total: int
) -> list[tuple[Trial, str]]:
    """Run ``trials`` as populations (`population_groups`), each a Ray task of one CPU; collect their results.

    Each task is `reinforce.sweep.trials.run_population`; its trials' results are added to ``results`` as it
    finishes.

    Returns:
        The trials that failed (an exception other than a divergence, or a lost worker) with the reason.

    Raises:
        KeyboardInterrupt: on SIGINT, SIGTERM or SIGHUP, after cancelling the unfinished trials and waiting up to
            `CANCEL_GRACE_S` for them.
    """
    remote_population = ray.remote(num_cpus=1)(run_population)
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    pending = {remote_population.remote(group): group for group in population_groups(trials, cpus)}
    failures: list[tuple[Trial, str]] = []
    previous = {}
    if threading.current_thread() is threading.main_thread():
        # SIGTERM and SIGHUP stop the sweep as Ctrl-C does; and Ctrl-C does so even where the parent ignored SIGINT
        for number in (signal.SIGINT, signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])):
            previous[number] = signal.signal(number, signal.default_int_handler)
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for reference in done:
                group = pending.pop(reference)
                try:
                    outcomes = ray.get(reference)
                except ray.exceptions.RayError as exc:
                    outcomes = [_error_line(exc)] * len(group)
                for trial, outcome in zip(group, outcomes, strict=True):
                    if isinstance(outcome, str):
                        failures.append((trial, outcome))
                        say(f"[{len(results)}/{total}] {trial.run_dir}: failed: {outcome}")
                        continue
                    results[trial.run_dir] = outcome
                    say(f"[{len(results)}/{total}] {trial.setting} seed {trial.seed}: {_outcome(outcome)}")
    except KeyboardInterrupt:
        for reference in pending:
            ray.cancel(reference)  # a running population gets a KeyboardInterrupt; its last checkpoints stay
        ray.wait(list(pending), num_returns=len(pending), timeout=CANCEL_GRACE_S)
        raise
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)
    return failures


def run_sweep(
    env_id: str,
    *,
    seeds: Iterable[int],
    total_steps: int,
    out: str | Path,
    grid: Mapping[str, Sequence[Any]] | None = None,
    hyperparameters: Mapping[str, Any] | None = None,
    eval_episodes: int = DEFAULT_EVAL_EPISODES,
    address: str | None = None,
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
    echo: Callable[[str], None] | None = None,
) -> list[SweepRow]:
    """Run every setting of ``grid`` with every seed as a Ray task, then tabulate and plot the trials.

    Everything is validated before anything is written or started. A setting's seeds train as one population
    (`reinforce.population.Population`; split into smaller ones where the CPUs outnumber the settings,
    `population_groups`), the populations in parallel as Ray tasks of one CPU each, on a local Ray with this
    machine's CPUs (or the cluster at ``address``; a Ray already initialised in this process is used as it is),
    each trial in its own run directory ``out/<setting>/seed-<seed>``. The sweep is
    resumable: run it again with the same arguments and finished trials are skipped, interrupted ones continue
    from their last checkpoint. A directory holding another sweep is refused.

    Example:
        >>> rows = run_sweep(  # doctest: +SKIP
        ...     "CartPole-v1",
        ...     seeds=range(10),
        ...     grid={"lr": [0.005, 0.01], "baseline": ["none", "value"]},
        ...     total_steps=300_000,
        ...     out="sweeps/cartpole",
        ... )
        >>> rows[0].steps_to_solve.median  # doctest: +SKIP

    Args:
        env_id: a registered Gymnasium id.
        seeds: the seeds every setting runs with.
        total_steps: env-step budget of each trial (training stops earlier once solved, with the default
            ``stop_on_solve``).
        out: the sweep directory (created; a re-run must give the same sweep).
        grid: values to try per hyperparameter (`TrainConfig` field names); the settings are their cartesian
            product. None or empty: one setting, ``default``.
        hyperparameters: the values under the grid, over the package's tuned values for ``env_id``.
        eval_episodes: deterministic evaluation episodes after each trial (0: no final return).
        address: ``HOST:PORT`` of a Ray cluster or ``"auto"``; None starts a local Ray.
        checkpoint_every: each trial writes a checkpoint every this many updates (and at the end).
        echo: called with a line of progress per trial and, at the end, the table (e.g. ``print``).

    Returns:
        One row per setting, in grid order (also written to ``out/results.json`` and ``out/results.md``).

    Raises:
        ReinforceError: invalid input, or a directory holding another sweep (nothing is written); or some
            trials failed (the others are kept; a re-run runs the failed ones again).
        SweepInterrupted: Ctrl-C (KeyboardInterrupt); finished trials are kept, the others can continue.
    """
    plan = plan_sweep(
        env_id,
        seeds=seeds,
        total_steps=total_steps,
        out=out,
        grid=grid,
        hyperparameters=hyperparameters,
        eval_episodes=eval_episodes,
        checkpoint_every=checkpoint_every,
    )
    check_sweep_dir(plan)
    say = echo or (lambda line: None)
    results: dict[str, dict[str, Any]] = {}
    todo = []
    for trial in plan.trials:
        result = finished_result(trial)
        if result is None:
            todo.append(trial)
        else:
            results[trial.run_dir] = result
    total = len(plan.trials)
    resumed = sum((Path(trial.run_dir) / CONFIG_FILE).is_file() for trial in todo)
    say(
        f"sweep of {env_id} in {plan.out}: {len(plan.settings)} setting(s) x {len(plan.spec['seeds'])} seed(s) = "
        f"{total} trials; {len(results)} skipped (finished), {resumed} to resume, {len(todo) - resumed} to start"
    )
    if todo:
        from reinforce.rollout.ray_support import init_ray, require_ray

        started_here = not require_ray().is_initialized()
        ray = init_ray(address)
        try:
            plan.out.mkdir(parents=True, exist_ok=True)
            if not (plan.out / SWEEP_FILE).is_file():
                write_json(plan.out / SWEEP_FILE, plan.spec)
            seed_order = {seed: index for index, seed in enumerate(plan.spec["seeds"])}
            started = time.perf_counter()
            try:
                failures = _run_trials(ray, sorted(todo, key=lambda trial: seed_order[trial.seed]), results, say, total)
            except KeyboardInterrupt:
                raise SweepInterrupted(plan.out, len(results), total) from None
            say(f"ran {len(todo) - len(failures)} trial(s) in {time.perf_counter() - started:.1f} s")
        finally:
            if started_here:
                ray.shutdown()
        if failures:
            trial, reason = failures[0]
            raise ReinforceError(
                f"{len(failures)} trial(s) failed, the first in {trial.run_dir} ({reason}): fix the cause and run "
                "the same sweep again; it runs only the unfinished trials"
            )
    return write_report(plan, [results[trial.run_dir] for trial in plan.trials], say)
