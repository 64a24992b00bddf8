"""What `reinforce.training.learn` calls after every update: the `Callback` protocol and `EvalCallback`.

A callback is any callable ``callback(agent, metrics)``; returning False stops training cleanly after the update
(see `reinforce.training.learn`). `EvalCallback` evaluates the deterministic policy every so many env steps on a
separate env, records the evaluations in the run directory and keeps the best policy there, in ``RUN_DIR/best``.
The verified stop's own `EvalCallback` is in `reinforce.verification`.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch

from reinforce.config import as_count, check_seed
from reinforce.errors import DAMAGED, ReinforceError
from reinforce.evaluation import evaluate_policy
from reinforce.rollout.envs import EnvLike, EnvSource, env_source
from reinforce.run.files import (
    BEST_DIR,
    CHECKPOINT_FILE,
    CONFIG_FILE,
    EVALUATION_FILE,
    EVALUATIONS_FILE,
    atomic_write,
    read_json,
    write_json,
)
from reinforce.run.metrics import EVALUATION_FIELDS, CSVLogger
from reinforce.snapshots import write_snapshot

if TYPE_CHECKING:
    from reinforce.agent import Reinforce

logger = logging.getLogger("reinforce")


class Callback(Protocol):
    """What ``learn(..., callback=...)`` calls after every update, once the update's metrics row is written.

    ``metrics`` is the update's metrics dict (`reinforce.agent.Reinforce.update`: the metrics.csv columns, plus
    the episodes' returns, lengths and truncation). Returning False stops training after this update, cleanly:
    the checkpoint is written (with a run directory) and the run can be continued later; None or True goes on.

    A callback object may also have a ``start(agent, run)`` method: ``learn`` calls it once, before the first
    update, with the `TrainingRun` it serves (`EvalCallback` finds the run directory there).

    Example:
        >>> def stop_at_200(agent, metrics):
        ...     return metrics["charts/episode_return_mean_100"] < 200
        >>> agent.learn(100_000, callback=stop_at_200)  # doctest: +SKIP
    """

    def __call__(self, agent: Reinforce, metrics: dict[str, Any], /) -> bool | None:
        """Called after every update; False stops training."""
        ...


@dataclass(frozen=True)
class TrainingRun:
    """What a callback's ``start`` is told about the ``learn`` call it serves."""

    run_dir: Path | None
    """The run directory that ``learn`` writes, or None."""
    commit: Callable[[], None]
    """Commit a checkpoint of the agent into `run_dir` now (its metrics rows first), unless the last one is at
    this update already; does nothing without a run directory."""


def as_callbacks(callback: Callback | Sequence[Callback] | None) -> list[Callback]:
    """``learn``'s ``callback`` argument as a list, each checked to be callable."""
    callbacks = [] if callback is None else list(callback) if isinstance(callback, Sequence) else [callback]
    for item in callbacks:
        if not callable(item):
            raise ReinforceError(
                f"callback must be a callable (agent, metrics) -> bool | None, or a list of them; got "
                f"{type(item).__name__}: pass a function or an EvalCallback",
                fields=("callback",),
            )
    return callbacks


def start_callbacks(callbacks: Sequence[Callback], agent: Reinforce, run: TrainingRun) -> None:
    """Call the ``start(agent, run)`` method of the callbacks that have one, before the first update."""
    for callback in callbacks:
        start = getattr(callback, "start", None)
        if callable(start):
            start(agent, run)


def run_callbacks(callbacks: Sequence[Callback], agent: Reinforce, metrics: dict[str, Any]) -> bool:
    """Call every callback after an update (all of them, even once one asks to stop); False: stop training."""
    results = [callback(agent, metrics) for callback in callbacks]
    return not any(result is not None and not result for result in results)


class EvalCallback:
    """Every ``every_steps`` env steps, evaluate the policy on a separate env; keep the best one; maybe stop.

    After the update that crosses a multiple of ``every_steps`` env steps, `reinforce.evaluation.evaluate_policy`
    runs ``episodes`` episodes (deterministic by default) on ``eval_env``. The evaluations are kept in
    `evaluations`; with a run directory each is also a row of ``RUN_DIR/evaluations.csv`` (columns
    `reinforce.run.metrics.EVALUATION_FIELDS`), and the best one so far (the highest mean return; the first on
    a tie) is saved in ``RUN_DIR/best``: a run directory of its own (config.json, checkpoint.json and its state
    file, and evaluation.json holding that evaluation's row), so ``reinforce.load(RUN_DIR / "best")`` gives the
    agent at that update. A new best first commits the run's own checkpoint, so ``best`` never holds a policy
    that a resumed run would not have had. A resumed run keeps the rows up to its checkpoint (as metrics.csv)
    and the best among them.

    With the default ``seed``, every evaluation of a seeded agent sees the same episodes, the ones
    ``reinforce.load(RUN_DIR / "best").evaluate(episodes)`` sees, on the agent's own env. A stochastic
    evaluation (``deterministic=False``) samples from a copy of torch's random state, so training goes on as it
    would without the callback.

    Example:
        >>> evaluation = EvalCallback(every_steps=10_000, episodes=10, stop_at=500)
        >>> agent.learn(300_000, run_dir="runs/cartpole", callback=evaluation)  # doctest: +SKIP
        >>> best = reinforce.load("runs/cartpole/best")  # doctest: +SKIP

    Args:
        eval_env: the evaluation env, in any form of `reinforce.rollout.envs.EnvLike` (an id, a spec, a
            callable, a vector env); None: the agent's own. Each evaluation makes a new vector env and closes it
            after (a vector env that was given is used as it is, and left open).
        every_steps: evaluate after the update that crosses each multiple of this many env steps (>= 1).
        episodes: episodes per evaluation (>= 1).
        deterministic: act with the distribution's mode (the default) or sample.
        seed: the evaluation envs' seed; None: derived from the agent's (see `reinforce.evaluation.evaluate_policy`).
        stop_at: stop training (return False) once an evaluation's mean return reaches this; None never stops.
        confirm_episodes: with ``stop_at``, an evaluation that reaches it is confirmed first by one of this many
            episodes (same seed), and training stops only if that one reaches it too; the confirmation is then
            the update's evaluation (its row, one per update); None (or no more than ``episodes``): the
            evaluation itself decides.
        record: write evaluations.csv and ``RUN_DIR/best`` in the run directory (False: keep the evaluations in
            memory only, for a second callback beside one that writes them).

    Raises:
        ReinforceError: an invalid argument (an unknown env id included); at the start of ``learn``, a
            ``RUN_DIR/best`` that evaluations.csv does not account for (another run's files).
    """

    def __init__(
        self,
        eval_env: EnvLike | None = None,
        *,
        every_steps: int = 10_000,
        episodes: int = 10,
        deterministic: bool = True,
        seed: int | None = None,
        stop_at: float | None = None,
        confirm_episodes: int | None = None,
        record: bool = True,
    ) -> None:
        self.eval_env: EnvSource | None = None if eval_env is None else env_source(eval_env)
        """Where the evaluation envs come from (checked when the callback is made); None: the agent's own."""
        self.every_steps = as_count("every_steps", every_steps, 1)
        self.episodes = as_count("episodes", episodes, 1)
        self.deterministic = bool(deterministic)
        self.seed = check_seed(seed)
        if stop_at is not None:
            if isinstance(stop_at, bool) or not isinstance(stop_at, (int, float)) or not math.isfinite(stop_at):
                raise ReinforceError(
                    f"stop_at must be a finite return or None, got {stop_at!r}: pass a number such as 475.0",
                    fields=("stop_at",),
                )
            stop_at = float(stop_at)
        self.stop_at = stop_at
        self.confirm_episodes = None if confirm_episodes is None else as_count("confirm_episodes", confirm_episodes, 1)
        self.record = bool(record)
        self.evaluations: list[dict[str, Any]] = []
        """The evaluations of the run so far (with a run directory, the rows of evaluations.csv), oldest first."""
        self.best: dict[str, Any] | None = None
        """The evaluation with the highest mean return so far (the policy in ``RUN_DIR/best``), or None."""
        self.stopped = False
        """Whether an evaluation reached ``stop_at`` (confirmed, with ``confirm_episodes``) and stopped training."""
        self.verified: dict[str, Any] | None = None
        """The evaluation that stopped training (the confirmation, with ``confirm_episodes``): `evaluate_policy`'s
        summary of the policy the run stopped with, plus its ``update`` and ``env_steps``; None until then."""
        self._run: TrainingRun | None = None
        self._interval = 0  # the multiple of every_steps last crossed

    @property
    def best_dir(self) -> Path | None:
        """``RUN_DIR/best``, where the best policy is saved; None without a run directory."""
        return None if self._run is None or self._run.run_dir is None else self._run.run_dir / BEST_DIR

    @property
    def saved_best_dir(self) -> Path | None:
        """`best_dir` where it holds the policy of `best`; None without one (removed by a user since, say)."""
        best_dir = self.best_dir
        if best_dir is None or self.best is None or _checkpoint_update(best_dir) != self.best["update"]:
            return None
        return best_dir

    def start(self, agent: Reinforce, run: TrainingRun) -> None:
        """Take up the run at the agent's update: its evaluations so far, and ``best`` made to match them.

        Called by ``learn`` before the first update, once evaluations.csv has lost the rows after the agent's
        update (`reinforce.run.metrics.RunLog` drops them, written by a process that died before its next
        checkpoint, as it drops metrics.csv's).
        """
        self._run = run = run if self.record else TrainingRun(None, run.commit)
        self._interval = agent.num_env_steps // self.every_steps
        self.evaluations, self.best, self.stopped, self.verified = [], None, False, None
        if run.run_dir is None:
            return
        self.evaluations = read_evaluations(run.run_dir / EVALUATIONS_FILE)
        for row in self.evaluations:
            if self.best is None or row["mean_return"] > self.best["mean_return"]:
                self.best = row
        self._reconcile_best(agent, run.run_dir)

    def due(self, agent: Reinforce, metrics: dict[str, Any]) -> bool:
        """Whether the update just done calls for an evaluation: it crossed a multiple of ``every_steps``."""
        return agent.num_env_steps // self.every_steps != self._interval

    def confirms(self, mean_return: float) -> bool:
        """Whether an evaluation of this mean return is confirmed (by ``confirm_episodes``) before it stops."""
        confirm = self.confirm_episodes
        return (
            self.stop_at is not None and mean_return >= self.stop_at and confirm is not None and confirm > self.episodes
        )

    def __call__(
        self, agent: Reinforce, metrics: dict[str, Any], /, *, evaluations: Mapping[int, dict[str, Any]] | None = None
    ) -> bool:
        """Evaluate if `due`; False once ``stop_at`` is reached.

        ``evaluations``: summaries of the agent's evaluations as it is now, by number of episodes, made already
        (a population checks its members together, `reinforce.population.checks`: on a natively vectorised env
        such as CartPole's, episodes of the same distribution as this callback's, not the same ones); used
        instead of evaluating again.
        """
        if self._run is None:  # called outside learn: evaluations in memory only
            self._run = TrainingRun(None, lambda: None)
        if not self.due(agent, metrics):
            return True
        self._interval = agent.num_env_steps // self.every_steps
        made = evaluations or {}
        row, summary = self._evaluation(agent, self.episodes, made)
        if self.confirms(row["mean_return"]):
            logger.info("check at %d env steps: mean return %.2f: confirming", row["env_steps"], row["mean_return"])
            assert self.confirm_episodes is not None
            row, summary = self._evaluation(agent, self.confirm_episodes, made)  # its row stands for the update's
        self._record(agent, row)
        if self.stop_at is None or row["mean_return"] < self.stop_at:
            return True
        logger.info("evaluation mean return %.2f reached stop_at=%s: stopping", row["mean_return"], self.stop_at)
        self.stopped = True
        self.verified = {**summary, "update": row["update"], "env_steps": row["env_steps"]}
        return False

    def evaluate(self, agent: Reinforce) -> dict[str, Any]:
        """One evaluation of ``agent`` as this callback makes them: a row of evaluations.csv (nothing written)."""
        return self._evaluate(agent, self.episodes)[0]

    def _evaluation(
        self, agent: Reinforce, episodes: int, made: Mapping[int, dict[str, Any]]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """`_evaluate`, or the summary in ``made`` for that many episodes as its row and summary."""
        summary = made.get(episodes)
        return self._evaluate(agent, episodes) if summary is None else (self._row(agent, summary), summary)

    def _evaluate(self, agent: Reinforce, episodes: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """An evaluation over ``episodes`` episodes: its row of evaluations.csv and `evaluate_policy`'s summary."""
        devices = [agent.device] if agent.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # a stochastic evaluation leaves training's stream alone
            summary = evaluate_policy(
                agent, self.eval_env, episodes=episodes, deterministic=self.deterministic, seed=self.seed
            )
        return self._row(agent, summary), summary

    def _row(self, agent: Reinforce, summary: dict[str, Any]) -> dict[str, Any]:
        """The row of evaluations.csv of an evaluation of ``agent`` (at its update) with this summary."""
        return {
            "update": agent.num_updates,
            "env_steps": agent.num_env_steps,
            **{key: summary[key] for key in EVALUATION_FIELDS if key in summary},
            "wall_time_s": agent.train_time_s,
        }

    def _record(self, agent: Reinforce, row: dict[str, Any]) -> None:
        """Keep ``row``: in `evaluations` and evaluations.csv, and as the best (its policy in best/) if it is."""
        run = self._run if self._run is not None else TrainingRun(None, lambda: None)
        self.evaluations.append(row)
        if run.run_dir is not None:
            sink = CSVLogger(run.run_dir / EVALUATIONS_FILE, EVALUATION_FIELDS)
            try:
                sink.write(row)
                sink.sync()
            finally:
                sink.close()
        if self.best is None or row["mean_return"] > self.best["mean_return"]:
            self.best = row
            if run.run_dir is not None:
                run.commit()  # first the run's checkpoint at this update, then its copy in best/
                self._write_best(agent, run.run_dir, row)
        logger.info(
            "evaluation at %d env steps: mean return %.2f over %d episodes",
            row["env_steps"],
            row["mean_return"],
            row["episodes"],
        )

    def _write_best(self, agent: Reinforce, run_dir: Path, row: dict[str, Any]) -> None:
        """Save ``agent`` (at the update of ``row``) in ``run_dir/best`` with the run's config and ``row``."""
        best = run_dir / BEST_DIR
        best.mkdir(exist_ok=True)
        atomic_write(best / CONFIG_FILE, (run_dir / CONFIG_FILE).read_bytes())
        write_snapshot(agent, best)  # checkpoint.json is its commit record
        write_json(best / EVALUATION_FILE, {**row, "deterministic": self.deterministic})

    def _reconcile_best(self, agent: Reinforce, run_dir: Path) -> None:
        """Make ``run_dir/best`` hold the best kept evaluation's policy, where a crash left it behind."""
        best = run_dir / BEST_DIR  # not a directory: `reinforce.training.claim` refused it
        if self.best is None:
            if best.exists() and (not best.is_dir() or any(best.iterdir())):
                raise ReinforceError(
                    f"{best} holds files that {run_dir / EVALUATIONS_FILE} does not account for (another run's?): "
                    "move it away, or pass another run_dir"
                )
            return
        update = self.best["update"]
        saved = _checkpoint_update(best)
        if saved == update:
            document = read_json(best / EVALUATION_FILE) if (best / EVALUATION_FILE).is_file() else {}
            if document.get("update") != update:  # stopped between the checkpoint and evaluation.json
                write_json(best / EVALUATION_FILE, {**self.best, "deterministic": self.deterministic})
        elif agent.num_updates == update and agent.checkpoint_update == update:
            # stopped after the run's checkpoint at the new best and before its copy: the agent is that policy
            self._write_best(agent, run_dir, self.best)
        else:
            logger.warning(
                "%s holds %s, not the policy of the best evaluation (update %d): it is replaced at the next better "
                "evaluation",
                best,
                "no policy" if saved is None else f"the policy of update {saved}",
                update,
            )


def _checkpoint_update(run_dir: Path) -> int | None:
    """The update of ``run_dir``'s checkpoint, or None without a readable one."""
    if not (run_dir / CHECKPOINT_FILE).is_file():
        return None
    try:
        update = read_json(run_dir / CHECKPOINT_FILE).get("num_updates")
    except ReinforceError:
        return None
    return update if isinstance(update, int) else None


def read_evaluations(path: Path) -> list[dict[str, Any]]:
    """The rows of an evaluations.csv (already trimmed to complete rows), numbers parsed."""
    if not path.is_file():
        return []
    rows = []
    with path.open(newline="", encoding="utf-8") as file:
        for row in csv.DictReader(file):
            try:
                rows.append(
                    {
                        key: int(row[key]) if key in ("update", "env_steps", "episodes") else float(row[key])
                        for key in EVALUATION_FIELDS
                    }
                )
            except (TypeError, ValueError):
                raise ReinforceError(f"{path} has a row that is not numbers: {DAMAGED}") from None
    return rows
