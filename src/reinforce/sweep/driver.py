"""Sweeps: every combination of a hyperparameter grid, times seeds, as independent Ray tasks, then a table.

A sweep directory ``OUT`` holds ``sweep.json`` (what was asked: env, seeds, grid, step budget, evaluation
episodes, the hyperparameters under the grid), one run directory per trial, ``OUT/<setting>/seed-<s>``, exactly
as ``reinforce train`` writes it (so ``reinforce eval``, ``plot`` and ``train --resume`` work on it) plus
``result.json`` once the trial is finished, and at the end ``results.md``, ``results.json`` and ``curves.png``.

Statistics, per setting (docs/scaling.md):

- *steps to solve*: the env steps at the first update after which the agent's `solved` criterion held (the
  mean return of the last 100 training episodes >= the reward threshold); a trial that never solved is
  censored, counted as +inf, so the median is finite only when more than half of the trials solved.
- *final return*: the mean return of a K-episode deterministic `Reinforce.evaluate` after training.
- the *95% interval* of a median: the distribution-free order-statistic interval ``[x_(l), x_(n+1-l)]``
  (`median_interval_ranks`), with its exact coverage; with fewer than 6 trials no such interval reaches 95%.

Example:
    >>> rows = run_sweep(  # doctest: +SKIP
    ...     "CartPole-v1", seeds=range(10), grid={"lr": [0.005, 0.01]}, total_steps=300_000, out="sweeps/lr"
    ... )
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import re
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from reinforce.config import (
    DEFAULT_CHECKPOINT_EVERY,
    DEFAULT_EVAL_EPISODES,
    TrainConfig,
    as_count,
    check_seed,
    tuned_hyperparameters,
)
from reinforce.errors import NonFiniteError, ReinforceError
from reinforce.run.files import CONFIG_FILE, CURVE_FILE, EVALUATION_FILE, read_json, write_json

SWEEP_FILE = "sweep.json"
"""The sweep's specification in its directory: a re-run must ask for exactly the same."""
RESULT_FILE = "result.json"
"""Written last, atomically, in a trial's run directory: the trial is finished and is not run again."""
TABLE_FILE = "results.md"
ROWS_FILE = "results.json"
PLOT_FILE = "curves.png"
SWEEP_FORMAT_VERSION = 1

CONFIDENCE = 0.95
"""The confidence asked of the interval of a median (the actual coverage is at least this, and is reported)."""

CANCEL_GRACE_S = 10.0
"""After an interrupt, how long the driver waits for cancelled trials to write their checkpoint."""

SPEC_KEYS = ("env_id", "seeds", "grid", "total_steps", "eval_episodes", "hyperparameters")
"""The parts of sweep.json that a re-run must match."""


# ---------------------------------------------------------------------------------------------- statistics


def median_interval_ranks(n: int, confidence: float = CONFIDENCE) -> tuple[int, int, float] | None:
    """Ranks of the distribution-free confidence interval of a median from ``n`` samples, and its coverage.

    With the samples sorted, ``x_(1) <= ... <= x_(n)``, the interval ``[x_(l), x_(u)]`` with ``u = n + 1 - l``
    contains the population median with probability ``P(l <= B <= u - 1)`` for ``B ~ Binomial(n, 1/2)``
    (the number of samples below the median), whatever the distribution (continuous, or with ties: then at
    least that). The largest ``l`` (the narrowest such interval) whose coverage is at least ``confidence`` is
    returned.

    Example:
        >>> median_interval_ranks(10)  # [x_(2), x_(9)] covers with probability 1 - 2 * 11 / 1024
        (2, 9, 0.978515625)
        >>> median_interval_ranks(5) is None  # [x_(1), x_(5)] covers only 1 - 2 / 32 = 0.9375
        True

    Args:
        n: the number of samples.
        confidence: the coverage asked for, in (0, 1).

    Returns:
        ``(l, u, coverage)`` with 1-based ranks, or None when even ``[x_(1), x_(n)]`` covers less.
    """
    if n < 1 or not 0.0 < confidence < 1.0:
        raise ValueError(f"need n >= 1 and a confidence in (0, 1), got n={n}, confidence={confidence}")
    below = Fraction(0)  # P(B <= l - 1), exactly
    best = None
    for rank in range(1, n // 2 + 1):
        below += Fraction(math.comb(n, rank - 1), 2**n)
        coverage = 1 - 2 * below
        if coverage < confidence:
            break
        best = (rank, n + 1 - rank, float(coverage))
    return best


@dataclass(frozen=True)
class MedianSummary:
    """The median of some trials' values and its order-statistic confidence interval.

    ``math.inf`` stands for a censored value (a trial that did not solve); None for an unavailable bound.
    """

    median: float
    """The sample median (the mean of the two middle values for an even count; inf if either is inf)."""
    low: float | None
    """``x_(l)``, the interval's lower end, or None with too few trials for a 95% interval."""
    high: float | None
    """``x_(n+1-l)``, the interval's upper end (inf: beyond the budget), or None with too few trials."""
    coverage: float | None
    """The interval's exact coverage probability (at least `CONFIDENCE`), or None without an interval."""


def summarize_median(values: Sequence[float], confidence: float = CONFIDENCE) -> MedianSummary:
    """The median of ``values`` (inf allowed, for censored trials) and its order-statistic interval.

    Example:
        >>> summarize_median([5.0, 1.0, 3.0, math.inf, 2.0, 4.0])
        MedianSummary(median=3.5, low=1.0, high=inf, coverage=0.96875)

    Raises:
        ValueError: ``values`` is empty or holds a NaN.
    """
    ordered = sorted(float(value) for value in values)
    if not ordered or any(math.isnan(value) for value in ordered):
        raise ValueError("the median needs at least one value and no NaN")
    n = len(ordered)
    middle = ordered[(n - 1) // 2 : n // 2 + 1]
    median = math.inf if math.inf in middle else sum(middle) / len(middle)
    ranks = median_interval_ranks(n, confidence)
    if ranks is None:
        return MedianSummary(median, None, None, None)
    low, high, coverage = ranks
    return MedianSummary(median, ordered[low - 1], ordered[high - 1], coverage)


# ------------------------------------------------------------------------------------------------ planning


@dataclass(frozen=True)
class Trial:
    """One run of a sweep: a setting (grid values) and a seed, with everything its Ray task needs."""

    env_id: str
    seed: int
    setting: str
    """The setting's slug, also its directory name under the sweep directory."""
    hyperparameters: dict[str, Any]
    """The full, validated hyperparameters of the run (the grid values over the sweep's base)."""
    run_dir: str
    total_steps: int
    eval_episodes: int
    checkpoint_every: int


def parse_seeds(text: str) -> tuple[int, ...]:
    """Seeds from a list of numbers and inclusive ranges: ``"0-9"``, ``"0,2,5"``, ``"0-3,8,10-12"``.

    Raises:
        ReinforceError: a malformed part, a reversed range, a seed out of range or given twice.
    """
    seeds: list[int] = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if match is None or (match[2] is not None and int(match[2]) < int(match[1])):
            raise ReinforceError(
                f"invalid --seeds {text!r}: give a range such as 0-9, a list such as 0,2,5, or both (0-3,7)"
            )
        seeds.extend(range(int(match[1]), int(match[2] or match[1]) + 1))
    return check_seeds(seeds)


def check_seeds(seeds: Iterable[object]) -> tuple[int, ...]:
    """``seeds`` as a tuple of valid seeds; `ReinforceError` if there is none, one is invalid or repeated."""
    checked = [check_seed(seed) for seed in seeds]
    valid = tuple(seed for seed in checked if seed is not None)
    if not valid or len(valid) < len(checked):
        raise ReinforceError("a sweep needs at least one seed (--seeds), and no None: e.g. 0-9")
    repeated = sorted({seed for seed in valid if valid.count(seed) > 1})
    if repeated:
        raise ReinforceError(f"seed {repeated[0]} is given twice in --seeds: list every seed once")
    return valid


MAX_SLUG_LENGTH = 120
"""Longer setting slugs are cut and completed with a hash, to stay within file-name limits."""


def _slug_value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    if isinstance(value, (tuple, list)):
        return "x".join(map(str, value)) or "none"
    return str(value)


def setting_slug(setting: Mapping[str, Any]) -> str:
    """A readable, file-system-safe directory name for a setting: ``baseline=value,lr=0.01`` (keys sorted).

    Layer widths are joined by ``x`` (``hidden_sizes=64x64``); characters outside ``[A-Za-z0-9._=,+-]`` become
    ``-``; an empty setting is ``default``.
    """
    if not setting:
        return "default"
    text = ",".join(f"{key}={_slug_value(setting[key])}" for key in sorted(setting))
    text = re.sub(r"[^A-Za-z0-9._=,+-]", "-", text)
    if len(text) > MAX_SLUG_LENGTH:
        digest = hashlib.sha256(text.encode()).hexdigest()[:10]
        text = f"{text[: MAX_SLUG_LENGTH - 11]}-{digest}"
    return text


def _json_ready(value: Any) -> Any:
    """``value`` as JSON gives it back (tuples become lists), so that specs compare equal after a round trip."""
    return json.loads(json.dumps(value))


@dataclass(frozen=True)
class SweepPlan:
    """A validated sweep: its specification (sweep.json) and its trials, settings outermost."""

    out: Path
    spec: dict[str, Any]
    settings: dict[str, dict[str, Any]]
    """Each setting's grid values, by slug, in grid order."""
    trials: tuple[Trial, ...]


RAY_ROLLOUT_FIELDS = ("backend", "workers", "envs_per_worker")
"""Hyperparameters of Ray rollouts, which sweep trials do not use: each trial trains locally in one Ray task."""


def check_local_trials(names: Iterable[str]) -> None:
    """Refuse Ray-rollout hyperparameters among ``names`` (set for a sweep), naming them."""
    named = set(names)  # once: ``names`` may be an iterator
    given = [name for name in RAY_ROLLOUT_FIELDS if name in named]
    if given:
        raise ReinforceError(
            f"sweep trials train locally, each in a Ray task of its own, so {', '.join(given)} cannot be set: drop "
            f"{'them' if len(given) > 1 else 'it'} from the sweep"
        )


def plan_sweep(
    env_id: str,
    *,
    seeds: Iterable[int],
    total_steps: int,
    out: str | Path,
    grid: Mapping[str, Sequence[Any]] | None = None,
    hyperparameters: Mapping[str, Any] | None = None,
    eval_episodes: int = DEFAULT_EVAL_EPISODES,
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
) -> SweepPlan:
    """Validate a sweep (every setting's config included) without writing or starting anything.

    The arguments are those of `run_sweep`.

    Raises:
        ReinforceError: an unknown environment or hyperparameter, an invalid value or combination (naming the
            setting), no or repeated seeds or grid values, or Ray rollouts (``backend="ray"``) for the trials.
    """
    from reinforce.agent import resolve_device
    from reinforce.rollout.envs import env_spec

    env_spec(env_id)
    seeds = check_seeds(seeds)
    total_steps = as_count("total_steps", total_steps, 1)
    eval_episodes = as_count("eval_episodes", eval_episodes, 0)
    checkpoint_every = as_count("checkpoint_every", checkpoint_every, 0)
    grid = {key: list(values) for key, values in (grid or {}).items()}
    check_local_trials(grid)
    base = TrainConfig.from_dict({**tuned_hyperparameters(env_id), **(hyperparameters or {})}).to_dict()
    names = {field.name for field in dataclasses.fields(TrainConfig)}
    for key, values in grid.items():
        if key not in names:
            raise ReinforceError(
                f"unknown hyperparameter {key!r} in the grid: valid names are {', '.join(sorted(names))}"
            )
        if not values:
            raise ReinforceError(f"the grid gives no value for {key}: give at least one, e.g. {key}=V1,V2")
        encoded = [json.dumps(_json_ready(value)) for value in values]
        repeated = next((text for text in encoded if encoded.count(text) > 1), None)
        if repeated is not None:
            raise ReinforceError(f"the grid gives {key}={repeated} twice: list every value once")
    settings: dict[str, dict[str, Any]] = {}
    configs: dict[str, dict[str, Any]] = {}
    for combination in itertools.product(*grid.values()):
        setting = dict(zip(grid, combination, strict=True))
        slug = setting_slug(setting)
        if slug in settings:
            raise ReinforceError(f"two settings of the grid share the directory name {slug}: give distinct values")
        try:
            configs[slug] = TrainConfig.from_dict({**base, **setting}).to_dict()
        except (ReinforceError, TypeError) as exc:
            raise ReinforceError(f"grid setting {slug}: {exc}") from None
        if configs[slug]["backend"] != "local":
            check_local_trials(["backend"])
        try:
            resolve_device(configs[slug]["device"])
        except ReinforceError as exc:
            raise ReinforceError(f"grid setting {slug}: {exc}") from None
        settings[slug] = setting
    # absolute: Ray's workers run in the directory where Ray was started, not necessarily the driver's
    out = Path(out).resolve()
    trials = tuple(
        Trial(
            env_id=env_id,
            seed=seed,
            setting=slug,
            hyperparameters=configs[slug],
            run_dir=str(out / slug / f"seed-{seed}"),
            total_steps=total_steps,
            eval_episodes=eval_episodes,
            checkpoint_every=checkpoint_every,
        )
        for slug in settings
        for seed in seeds
    )
    spec = {
        "format_version": SWEEP_FORMAT_VERSION,
        "env_id": env_id,
        "seeds": list(seeds),
        "grid": _json_ready(grid),
        "total_steps": total_steps,
        "eval_episodes": eval_episodes,
        "hyperparameters": base,
    }
    return SweepPlan(out=out, spec=spec, settings=settings, trials=trials)


def _canonical(spec: Mapping[str, Any], key: str) -> str:
    """One part of a sweep spec in an order-free form: the same seeds or grid values in another order match."""
    value = spec.get(key)
    if key == "seeds" and isinstance(value, list):
        value = sorted(value, key=str)
    if key == "grid" and isinstance(value, dict):
        value = {
            name: sorted(map(json.dumps, values)) if isinstance(values, list) else values
            for name, values in value.items()
        }
    return json.dumps(value, sort_keys=True)


def check_sweep_dir(plan: SweepPlan) -> None:
    """Refuse a sweep directory that holds another sweep, or something else; read-only.

    Raises:
        ReinforceError: naming what differs from the sweep.json already there, and the fix.
    """
    out = plan.out
    if out.exists() and not out.is_dir():
        raise ReinforceError(f"sweep directory {out} is a file: choose another --out")
    if not (out / SWEEP_FILE).is_file():
        if out.is_dir() and any(out.iterdir()):
            raise ReinforceError(
                f"{out} exists and is not a sweep directory (it has no {SWEEP_FILE}): choose another --out"
            )
        return
    saved = read_json(out / SWEEP_FILE)
    if saved.get("format_version") != SWEEP_FORMAT_VERSION:
        raise ReinforceError(
            f"{out / SWEEP_FILE} has format_version {saved.get('format_version')!r}, this reinforce reads "
            f"{SWEEP_FORMAT_VERSION}: use the reinforce version that wrote it, or another --out"
        )
    differing = [key for key in SPEC_KEYS if _canonical(saved, key) != _canonical(plan.spec, key)]
    if differing:
        names = ", ".join(key.replace("_", " ") for key in differing)
        raise ReinforceError(
            f"{out} holds another sweep: its {names} differ (see {out / SWEEP_FILE}); run that sweep's own "
            "command to continue it, or choose another --out"
        )


# ------------------------------------------------------------------------------------------------- trials


def steps_to_solve(run_dir: Path, reward_threshold: float | None) -> int | None:
    """Env steps at the first update of ``run_dir``'s metrics.csv after which the run counted as solved.

    Solved is `Reinforce.solved`: at least 100 training episodes, and the mean return of the last 100 at or
    above ``reward_threshold``. None if that never held (or there is no threshold).
    """
    from reinforce.run.files import METRICS_FILE
    from reinforce.run.metrics import SOLVED_WINDOW
    from reinforce.run.plotting import CURVE_COLUMN, read_columns

    if reward_threshold is None:
        return None
    metrics = read_columns(run_dir / METRICS_FILE, ("env_steps", "episodes", CURVE_COLUMN))
    for steps, episodes, mean_100 in zip(*metrics.values(), strict=True):
        if episodes >= SOLVED_WINDOW and mean_100 >= reward_threshold:
            return int(steps)
    return None


def run_trial(trial: Trial) -> dict[str, Any]:
    """Train, evaluate and summarise one trial in its run directory (the body of a sweep's Ray task).

    A trial with a result.json is returned as it is; one with a config.json (and maybe a checkpoint)
    continues from its last checkpoint (`reinforce.resume`); otherwise it starts. Training writes what
    ``reinforce train`` writes (config, metrics, episodes, checkpoints, curve.png, evaluation.json); a
    divergence (`NonFiniteError`) ends the trial as unsolved, with its message in the result.

    Returns:
        The result document, also written (atomically, last) to ``run_dir/result.json``.
    """
    from reinforce.agent import Reinforce, resume
    from reinforce.run.plotting import plot_runs

    run_dir = Path(trial.run_dir)
    if (run_dir / RESULT_FILE).is_file():
        return read_json(run_dir / RESULT_FILE)
    if (run_dir / CONFIG_FILE).is_file():
        agent = resume(run_dir)
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        agent = Reinforce(trial.env_id, seed=trial.seed, **trial.hyperparameters)
    error = None
    evaluation = None
    try:
        try:
            agent.learn(
                max(0, trial.total_steps - agent.num_env_steps),
                run_dir=run_dir,
                checkpoint_every=trial.checkpoint_every,
            )
        except NonFiniteError as exc:
            error = str(exc)
        else:
            plot_runs([run_dir], run_dir / CURVE_FILE, threshold=agent.reward_threshold)
            if trial.eval_episodes:
                evaluation = agent.evaluate(episodes=trial.eval_episodes)
                write_json(run_dir / EVALUATION_FILE, evaluation)
    finally:
        agent.close()
    result = {
        "env_id": trial.env_id,
        "seed": trial.seed,
        "setting": trial.setting,
        "reward_threshold": agent.reward_threshold,
        "steps_to_solve": steps_to_solve(run_dir, agent.reward_threshold),
        "final_return": None if evaluation is None else evaluation["mean_return"],
        "eval_episodes": 0 if evaluation is None else evaluation["episodes"],
        "env_steps": agent.num_env_steps,
        "updates": agent.num_updates,
        "episodes": agent.num_episodes,
        "train_time_s": agent.train_time_s,
        "error": error,
    }
    write_json(run_dir / RESULT_FILE, result)
    return result


# ------------------------------------------------------------------------------------------------ results


@dataclass(frozen=True)
class SweepRow:
    """One setting's line of the sweep table (``results.json`` holds a list of them, as objects)."""

    setting: str
    """The setting's slug (its directory under the sweep directory)."""
    hyperparameters: dict[str, Any]
    """The setting's grid values."""
    trials: int
    solved: int
    """Trials whose training reached the solved criterion."""
    failed: int
    """Trials stopped by a NaN or an infinity (counted as unsolved, and as the worst final return)."""
    steps_to_solve: MedianSummary
    """Env steps to solve: median and interval, inf for 'not solved' (null in results.json)."""
    final_return: MedianSummary | None
    """Mean return of the final deterministic evaluation: median and interval (None without evaluations)."""

    def to_dict(self) -> dict[str, Any]:
        """The row as JSON-ready values: an infinite (censored) number of steps becomes null."""
        document = dataclasses.asdict(self)
        for summary in (document["steps_to_solve"], document["final_return"]):
            for key, value in (summary or {}).items():
                if isinstance(value, float) and math.isinf(value):
                    summary[key] = None
        return document


def summarize_trials(
    settings: Mapping[str, Mapping[str, Any]], results: Sequence[Mapping[str, Any]], *, evaluated: bool = True
) -> list[SweepRow]:
    """One `SweepRow` per setting from the trials' result documents (`run_trial`'s).

    ``evaluated``: whether the trials ended with an evaluation (the sweep's ``eval_episodes`` > 0); without
    one no setting has a final return.
    """
    rows = []
    for slug, setting in settings.items():
        own = [result for result in results if result["setting"] == slug]
        steps = [math.inf if result["steps_to_solve"] is None else float(result["steps_to_solve"]) for result in own]
        # a diverged trial has no final return: it counts as the worst, as an unsolved trial counts as infinite
        diverged = sum(result.get("error") is not None for result in own)
        returns = [
            -math.inf if result.get("error") is not None else float(result["final_return"])
            for result in own
            if evaluated
        ]
        rows.append(
            SweepRow(
                setting=slug,
                hyperparameters=dict(setting),
                trials=len(own),
                solved=sum(math.isfinite(value) for value in steps),
                failed=diverged,
                steps_to_solve=summarize_median(steps),
                final_return=summarize_median(returns) if returns else None,
            )
        )
    return rows


def _steps(value: float | None) -> str:
    return "n/a" if value is None else "not solved" if math.isinf(value) else f"{value:,.0f}"


def _interval(summary: MedianSummary | None, number: Callable[[float | None], str]) -> str:
    if summary is None or summary.coverage is None:
        return "n/a"
    return f"[{number(summary.low)}, {number(summary.high)}]"


def _return(value: float | None) -> str:
    return "n/a" if value is None else "diverged" if value == -math.inf else f"{value:.1f}"


def format_table(rows: Sequence[SweepRow], spec: Mapping[str, Any]) -> str:
    """The sweep table in Markdown, with one line under it that says what the intervals are."""
    lines = [
        "| setting | trials | solved | steps to solve: median | 95% interval | final return: median | 95% interval |",
        "| --- | ---: | ---: | ---: | --- | ---: | --- |",
    ]
    for row in rows:
        failed = f" ({row.failed} diverged)" if row.failed else ""
        lines.append(
            f"| {row.setting} | {row.trials} | {row.solved}{failed} | {_steps(row.steps_to_solve.median)} | "
            f"{_interval(row.steps_to_solve, _steps)} | "
            f"{_return(None if row.final_return is None else row.final_return.median)} | "
            f"{_interval(row.final_return, _return)} |"
        )
    trials = len(spec["seeds"])
    ranks = median_interval_ranks(trials)
    if ranks is None:
        note = (
            f"95% intervals of the medians are unavailable with {trials} trial(s) per setting: the widest "
            "order-statistic interval covers less than 95% below 6 trials."
        )
    else:
        low, high, coverage = ranks
        note = (
            f"95% intervals: the order statistics x_({low}) and x_({high}) of the {trials} trials per setting, "
            f"a distribution-free interval of the median with coverage {coverage:.1%}."
        )
    return "\n".join(
        [
            *lines,
            "",
            f"{spec['env_id']}, seeds {_seed_text(spec['seeds'])}, {spec['total_steps']:,} env steps per trial; "
            "steps to solve: env steps at the first update where the mean return of the last 100 training "
            "episodes reached the reward threshold ('not solved' counts as infinite); final return: mean of "
            f"{spec['eval_episodes']} deterministic evaluation episodes after training. {note}",
        ]
    )


def _seed_text(seeds: Sequence[int]) -> str:
    ordered = sorted(seeds)
    if ordered == list(range(ordered[0], ordered[-1] + 1)) and len(ordered) > 2:
        return f"{ordered[0]}-{ordered[-1]}"
    return ",".join(map(str, seeds))


# ---------------------------------------------------------------------------------------------- the driver


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


def _finished_result(trial: Trial) -> dict[str, Any] | None:
    """The result of a finished trial (one with a result.json), or None."""
    path = Path(trial.run_dir) / RESULT_FILE
    if not path.is_file():
        return None
    fix = "delete it to run that trial again"
    try:
        result = read_json(path)
    except ReinforceError as exc:
        raise ReinforceError(f"{exc} ({fix})") from None
    if result.get("setting") != trial.setting or result.get("seed") != trial.seed:
        raise ReinforceError(f"{path} belongs to another trial: the sweep directory is damaged; {fix}")
    numbers: dict[str, type | tuple[type, ...]] = {
        "steps_to_solve": int,
        "final_return": (int, float),
        "env_steps": int,
    }
    for key, kind in numbers.items():
        value = result.get(key)
        if (key != "env_steps" and value is None) or (isinstance(value, kind) and not isinstance(value, bool)):
            continue
        raise ReinforceError(f"{path} has an invalid or missing {key!r}: the trial's result is damaged; {fix}")
    if not isinstance(result.get("error"), (str, type(None))):
        raise ReinforceError(f"{path} has an invalid 'error': the trial's result is damaged; {fix}")
    return result


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


def _run_trials(
    ray: Any, trials: Sequence[Trial], results: dict[str, dict[str, Any]], say: Callable[[str], None], total: int
) -> list[tuple[Trial, str]]:
    """Run ``trials`` as Ray tasks of one CPU each, adding each result to ``results`` as it arrives.

    Returns:
        The trials that failed (an exception other than a divergence, or a lost worker) with the reason.

    Raises:
        KeyboardInterrupt: on SIGINT or SIGTERM, after cancelling the unfinished trials and waiting up to
            `CANCEL_GRACE_S` for them.
    """
    remote_trial = ray.remote(num_cpus=1)(run_trial)
    pending = {remote_trial.remote(trial): trial for trial in trials}
    failures: list[tuple[Trial, str]] = []
    previous = {}
    if threading.current_thread() is threading.main_thread():
        # SIGTERM stops the sweep as Ctrl-C does; and Ctrl-C does so even where the parent ignored SIGINT
        for number in (signal.SIGINT, signal.SIGTERM):
            previous[number] = signal.signal(number, signal.default_int_handler)
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for reference in done:
                trial = pending.pop(reference)
                try:
                    result = ray.get(reference)
                except ray.exceptions.RayError as exc:
                    failures.append((trial, _error_line(exc)))
                    say(f"[{len(results)}/{total}] {trial.run_dir}: failed: {failures[-1][1]}")
                    continue
                results[trial.run_dir] = result
                say(f"[{len(results)}/{total}] {trial.setting} seed {trial.seed}: {_outcome(result)}")
    except KeyboardInterrupt:
        for reference in pending:
            ray.cancel(reference)  # a running trial gets a KeyboardInterrupt; its last checkpoint stays
        ray.wait(list(pending), num_returns=len(pending), timeout=CANCEL_GRACE_S)
        raise
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)
    return failures


def _write_results(plan: SweepPlan, results: Sequence[dict[str, Any]], say: Callable[[str], None]) -> list[SweepRow]:
    """The table (results.md, results.json, stdout) and the comparison plot (curves.png) of a finished sweep."""
    from reinforce.run.files import atomic_write
    from reinforce.run.plotting import plot_comparison

    rows = summarize_trials(plan.settings, results, evaluated=plan.spec["eval_episodes"] > 0)
    table = format_table(rows, plan.spec)
    atomic_write(plan.out / TABLE_FILE, f"# Sweep of {plan.spec['env_id']}\n\n{table}\n".encode())
    write_json(plan.out / ROWS_FILE, {"sweep": plan.spec, "rows": [row.to_dict() for row in rows]})
    thresholds = {result["reward_threshold"] for result in results}
    plotted = [Path(trial.run_dir) for trial, result in zip(plan.trials, results, strict=True) if result["updates"]]
    if plotted:
        plot_comparison(plotted, plan.out / PLOT_FILE, threshold=thresholds.pop() if len(thresholds) == 1 else None)
    say(table)
    say(f"wrote {plan.out / TABLE_FILE}, {plan.out / ROWS_FILE} and {plan.out / PLOT_FILE}")
    return rows


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

    Everything is validated before anything is written or started. Trials run in parallel, one CPU each, on a
    local Ray with this machine's CPUs (or the cluster at ``address``; a Ray already initialised in this
    process is used as it is), each in its own run directory ``out/<setting>/seed-<seed>``. The sweep is
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
        result = _finished_result(trial)
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
    return _write_results(plan, [results[trial.run_dir] for trial in plan.trials], say)
