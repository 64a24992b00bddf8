"""Training runs: the learn loop, and `finish_run`, what every run does once it has learnt.

`learn` drives a `reinforce.agent.Reinforce`: it claims the run directory, logs every update
(`reinforce.run.metrics.RunLog`), calls the callbacks (`reinforce.callbacks`), commits a checkpoint every
``checkpoint_every`` updates and at the end, and turns SIGINT, SIGTERM and SIGHUP into a clean stop
(`StopSignals`). `finish_run` draws the curve, evaluates and writes evaluation.json, for ``reinforce train`` and
every sweep trial.
"""

from __future__ import annotations

import logging
import shutil
import signal
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

from reinforce.callbacks import (
    Callback,
    EvalCallback,
    TrainingRun,
    as_callbacks,
    run_callbacks,
    start_callbacks,
)
from reinforce.config import DEFAULT_CHECKPOINT_EVERY, as_count, stops_on
from reinforce.core.schedule import lr_factor, set_lr
from reinforce.errors import ReinforceError, TrainingInterrupted
from reinforce.run.files import (
    BEST_DIR,
    CURVE_FILE,
    EVALUATION_FILE,
    RUN_FILES,
    TENSORBOARD_DIR,
    run_path,
    training_lock,
    write_json,
)
from reinforce.run.metrics import RunLog, require_tensorboard
from reinforce.run.plotting import plot_runs
from reinforce.snapshots import write_run_config
from reinforce.verification import Verifier, make_verifier, verified_at_checkpoint

if TYPE_CHECKING:
    from reinforce.agent import Reinforce
    from reinforce.run.plot_process import PlotProcess

logger = logging.getLogger("reinforce")


def learn(
    agent: Reinforce,
    total_steps: int,
    *,
    run_dir: str | Path | None = None,
    progress_bar: bool = False,
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
    tensorboard: bool = False,
    callback: Callback | Sequence[Callback] | None = None,
) -> Reinforce:
    """Update ``agent`` until ``total_steps`` more env steps are done, or solved (``stop_on_solve``), or called off.

    Solved is by ``solve_criterion``. With ``verified`` (the default), a `reinforce.verification.Verifier` made by
    `reinforce.verification.make_verifier` checks the deterministic policy (every ``verify_every`` env steps, and
    after every update in which a training episode reached the reward threshold) and stops training once a
    check, confirmed over 100 episodes, reaches the threshold: the agent returned (and checkpointed) is that
    verified policy. It is added to the callbacks (unless one is there already), writing evaluations.csv and
    ``RUN_DIR/best`` like any `EvalCallback`, unless ``callback`` holds an `EvalCallback` already: then it
    checks beside it, in memory only. A budget spent without a verified policy leaves the last policy (the best
    evaluated one is in ``RUN_DIR/best``). A run directory whose checkpoint was verified is not trained further.
    With ``training_mean``, training stops once the mean return of the last 100 training episodes reaches the
    threshold (`Reinforce.solved`). A callback that returns False calls the training off (see ``callback``).

    SIGINT, SIGTERM and SIGHUP (the terminal closed) are caught while this runs (the previous handlers are put
    back afterwards): the current update is finished, the checkpoint and metrics are written, and
    `TrainingInterrupted` is raised. A second signal abandons the update at once (the last checkpoint stays as
    it was).

    Args:
        agent: the agent to train (`reinforce.agent.Reinforce.learn` calls this with itself).
        total_steps: env-step budget of this call (counted in valid steps, see `RolloutBatch.num_steps`).
        run_dir: if given, the run directory to write: config.json at the start, a row of metrics.csv per
            update and of episodes.csv per episode, a checkpoint every ``checkpoint_every`` updates and at the
            end. A directory holding this agent's own earlier checkpoint (see `reinforce.resume`) is continued:
            rows after the agent's update count are dropped first, so none is duplicated.
        progress_bar: show a progress bar on stderr: env steps done of the budget, one speed (env steps per
            second of wall time, smoothed, checkpoints and logging included), the time left and the mean return
            of the last 100 episodes.
        checkpoint_every: write a checkpoint every this many updates (0: only at the end); needs run_dir.
        tensorboard: also write the metrics as TensorBoard scalars to ``run_dir/tensorboard`` (needs the
            ``tensorboard`` extra: ``pip install 'reinforce[tensorboard]'``).
        callback: a `reinforce.callbacks.Callback` ``fn(agent, metrics)``, or a list of them, called after every
            update once its metrics row is written (all of them, in order). One that returns False stops
            training after that update: the checkpoint is written as at the end of any ``learn`` call. A run
            stopped so is not finished (its budget is not spent, unless it is, and it need not be solved): it
            is continued like any other, with `reinforce.resume` and ``learn`` or ``reinforce train --resume``,
            which train on to the budget. `reinforce.callbacks.EvalCallback` evaluates periodically.

    Returns:
        The agent.

    Raises:
        TrainingInterrupted: SIGINT, SIGTERM or SIGHUP arrived; the checkpoint was written first.
        RunDirectoryBusy: another process is training ``run_dir`` (only one may at a time: this call holds a
            lock on it until it returns); nothing was written.
        ReinforceError: an invalid argument, ``run_dir`` holds another run, or the agent cannot train
            (`require_trainable`); nothing was written.
    """
    require_trainable(agent)
    total_steps = as_count("total_steps", total_steps, 0)
    checkpoint_every = as_count("checkpoint_every", checkpoint_every, 0)
    callbacks = as_callbacks(callback)
    if not any(isinstance(item, Verifier) for item in callbacks):  # one given (reinforce train's) is the one
        verifier = make_verifier(agent, record=not any(isinstance(item, EvalCallback) for item in callbacks))
        if verifier is not None:
            callbacks.append(verifier)
    target = agent.num_env_steps + total_steps
    path = run_path(run_dir, writing=True) if run_dir is not None else None
    agent.environments.start_workers(agent.config)
    if tensorboard:
        if path is None:
            raise ReinforceError("tensorboard=True needs a run_dir to write the event files to: pass run_dir")
        require_tensorboard()
    if path is None:
        return _train(agent, target, None, None, progress_bar, checkpoint_every, callbacks)
    path.mkdir(parents=True, exist_ok=True)
    with training_lock(path):  # held until the last checkpoint is committed
        claim(agent, path)
        log = RunLog(path, agent.num_updates, agent.num_env_steps, tensorboard=tensorboard)
        try:
            write_run_config(agent, path, total_steps=target)
        except BaseException:
            log.close()
            raise
        return _train(agent, target, path, log, progress_bar, checkpoint_every, callbacks)


def require_trainable(agent: Reinforce) -> None:
    """Refuse an agent that cannot train: it has no environment, or lacks ``needs_for_training``.

    That is what `reinforce.load` could not restore for training further (the run's lr_scheduler).

    Raises:
        ReinforceError: which of the two, and how to give it.
    """
    if agent.needs_for_training is not None:
        raise ReinforceError(f"this agent cannot train further without {agent.needs_for_training}")
    agent.environments.require()


def remove_run_files(run_dir: Path) -> None:
    """Remove the files a run writes (`RUN_FILES`, tensorboard/, best/) from ``run_dir``; nothing else."""
    for name in (*RUN_FILES, TENSORBOARD_DIR, BEST_DIR):
        path = run_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _train(
    agent: Reinforce,
    target: int,
    path: Path | None,
    log: RunLog | None,
    progress_bar: bool,
    checkpoint_every: int,
    callbacks: Sequence[Callback],
) -> Reinforce:
    """The loop of `learn`: update until ``target`` env steps (or solved or called off), log, commit; closes ``log``."""
    if progress_bar:
        from tqdm.auto import tqdm
    else:  # a disabled bar: tqdm.auto would still look for Jupyter's widgets, and warn in a notebook without them
        from tqdm import tqdm

    bar = tqdm(
        total=target,
        initial=agent.num_env_steps,  # a resumed run's bar starts where the run is
        unit="step",
        disable=not progress_bar,
        dynamic_ncols=True,
        leave=True,
        smoothing=0.1,
    )
    committed: int | None = None  # the update of the last checkpoint this call wrote

    def commit_now() -> None:
        nonlocal committed
        if path is not None and committed != agent.num_updates:
            commit(agent, path, log)
            committed = agent.num_updates

    stop = StopSignals(agent, path)
    called_off = False  # a callback returned False
    try:
        with stop:
            start_callbacks(callbacks, agent, TrainingRun(path, commit_now))
            verified = path is not None and verified_at_checkpoint(agent, path) is not None
            while agent.num_env_steps < target and not verified and not stop_on_training_mean(agent):
                if agent.config.lr_schedule != "constant":
                    schedule_learning_rates(agent, agent.num_env_steps / target)
                metrics = agent.update()
                bar.update(min(agent.num_env_steps, target) - bar.n)
                # one speed on the bar, tqdm's (see `learn`); each update's alone is metrics.csv's perf/steps_per_s
                bar.set_postfix(return_100=f"{metrics['charts/episode_return_mean_100']:.1f}", refresh=False)
                if log is not None:
                    log.write(metrics)
                called_off = not run_callbacks(callbacks, agent, metrics)
                if checkpoint_every and agent.num_updates % checkpoint_every == 0:
                    commit_now()
                if called_off or stop.signal_number is not None:
                    break
            commit_now()
    finally:
        bar.close()
        if log is not None:
            log.close()
    if stop.signal_number is not None:
        logger.info("stopped by signal %d after update %d", stop.signal_number, agent.num_updates)
        raise TrainingInterrupted(stop.signal_number, None if path is None else str(path), agent.num_updates)
    if called_off:
        logger.info("stopped by a callback after update %d", agent.num_updates)
    return agent


def stop_on_training_mean(agent: Reinforce) -> bool:
    """Whether ``agent`` is solved by the training mean, and its config stops there (``training_mean``)."""
    return stops_on(agent.config) == "training_mean" and agent.solved


def schedule_learning_rates(agent: Reinforce, progress: float) -> None:
    """Set the agent's learning rates for ``progress`` (0 to 1) of the budget, per its ``lr_schedule``."""
    factor = lr_factor(agent.config.lr_schedule, progress)
    configured = {"policy": agent.config.lr, "value": agent.config.value_lr}
    for name, optimizer in agent.state()[1].items():
        set_lr(optimizer, configured[name] * factor)


def commit(agent: Reinforce, run_dir: Path, log: RunLog | None) -> None:
    """Put the metrics rows on disk, then the checkpoint that covers them (so a crash cannot lose rows)."""
    if log is not None:
        log.sync()
    agent.save(run_dir)


def claim(agent: Reinforce, run_dir: Path) -> None:
    """Refuse a run directory that another run's checkpoint, or a file in place of ``best``, makes unfit to write.

    The checkpoint may be this run's only at the agent's update; ``best`` (`reinforce.callbacks.EvalCallback`'s
    directory) must be a directory if it exists. Called before anything is written.
    """
    from reinforce.run.checkpoint import refuse_foreign_checkpoint

    own = agent.checkpoint_update if agent.checkpoint_update == agent.num_updates else None
    refuse_foreign_checkpoint(run_dir, own)
    best = run_dir / BEST_DIR
    if (best.exists() or best.is_symlink()) and not best.is_dir():
        raise ReinforceError(
            f"{best} is not a directory, where the run keeps its best policy (a directory): move it away, then "
            "train again"
        )


STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
"""The signals that `StopSignals` turns into a clean stop: Ctrl-C, ``kill``, and a closed terminal or SSH session
(SIGHUP, where the platform has it: not on Windows)."""


class StopSignals:
    """While active, `STOP_SIGNALS` (SIGINT, SIGTERM, SIGHUP) ask the learn loop to stop after the current update.

    The first signal is recorded in `signal_number` (the loop finishes its update, commits and stops); a second
    one raises `TrainingInterrupted` at once, naming the last checkpoint written (``interrupted``, given: the
    exception it raises instead, from the signal's number; a population's). The previous handlers are put back on
    exit. Outside the main thread (where Python cannot set handlers) it does nothing.
    """

    def __init__(
        self,
        agent: Reinforce,
        run_dir: Path | None,
        interrupted: Callable[[int], TrainingInterrupted] | None = None,
    ) -> None:
        self._agent = agent
        self._run_dir = run_dir
        self._interrupted = interrupted
        self._previous: dict[int, Any] = {}
        self.signal_number: int | None = None

    def _handle(self, signal_number: int, frame: FrameType | None) -> None:
        if self.signal_number is None:
            self.signal_number = signal_number
            logger.info("signal %d: finishing the current update, then saving", signal_number)
            return
        if self._interrupted is not None:
            raise self._interrupted(signal_number)
        if self._run_dir is None:
            raise TrainingInterrupted(signal_number, None, self._agent.num_updates)
        raise TrainingInterrupted(signal_number, str(self._run_dir), self._agent.checkpoint_update)

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signal_number in STOP_SIGNALS:
                # None: the handler was not set from Python; restoring the default is the closest
                self._previous[signal_number] = signal.signal(signal_number, self._handle) or signal.SIG_DFL
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        for signal_number, handler in self._previous.items():
            signal.signal(signal_number, handler)
        self._previous.clear()


def finish_run(
    agent: Reinforce,
    run_dir: Path,
    *,
    eval_episodes: int,
    plotter: PlotProcess | None = None,
    evaluation: dict[str, Any] | None = None,
    curve: bool = True,
) -> dict[str, Any] | None:
    """Draw ``run_dir``'s curve.png, evaluate the deterministic policy and write evaluation.json.

    What ``reinforce train`` and every sweep trial do after training.

    Args:
        agent: the agent that has just trained in ``run_dir``.
        run_dir: the run directory `Reinforce.learn` wrote.
        eval_episodes: deterministic evaluation episodes; 0 skips the evaluation (and evaluation.json).
        plotter: a `PlotProcess` started before training, which draws the curve while this process evaluates;
            None draws it here first.
        evaluation: an evaluation of the agent as it is, already made (the confirmation that verified it,
            `reinforce.callbacks.EvalCallback.verified`): written as evaluation.json instead of evaluating again.
        curve: False: the curve is the caller's to draw (``reinforce train --seeds`` has each member's drawn
            as soon as it stops).

    Returns:
        The evaluation (`Reinforce.evaluate`'s document, as written), or None without one.

    Raises:
        ReinforceError: the curve cannot be written.
    """
    if curve and plotter is None:
        plot_runs([run_dir], run_dir / CURVE_FILE, threshold=agent.reward_threshold)
    elif curve and plotter is not None:
        plotter.submit([run_dir], run_dir / CURVE_FILE, threshold=agent.reward_threshold)
    if eval_episodes:
        if evaluation is None:
            evaluation = agent.evaluate(episodes=eval_episodes)
        write_json(run_dir / EVALUATION_FILE, evaluation)
    else:
        evaluation = None
    if curve and plotter is not None:
        plotter.result()
    return evaluation
