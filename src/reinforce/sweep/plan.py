"""A sweep's plan: its seeds, grid settings and their slugs, trials and sweep.json, all validated up front."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reinforce.config import (
    DEFAULT_CHECKPOINT_EVERY,
    DEFAULT_EVAL_EPISODES,
    TrainConfig,
    as_count,
    check_seed,
)
from reinforce.config_checks import MAX_SEEDS
from reinforce.errors import ReinforceError
from reinforce.run.files import read_json
from reinforce.settings import resolve

SWEEP_FILE = "sweep.json"
"""The sweep's specification in its directory: a re-run must ask for exactly the same."""
SWEEP_FORMAT_VERSION = 1

SPEC_KEYS = ("env_id", "seeds", "grid", "total_steps", "eval_episodes", "hyperparameters")
"""The parts of sweep.json that a re-run must match."""


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


def check_seeds(seeds: Iterable[object]) -> tuple[int, ...]:
    """``seeds`` as a tuple of valid seeds.

    Raises:
        ReinforceError: there is none, one is invalid or repeated, or there are more than `MAX_SEEDS`.
    """
    checked = [check_seed(seed) for seed in itertools.islice(seeds, MAX_SEEDS + 1)]
    if len(checked) > MAX_SEEDS:
        raise ReinforceError(
            f"a sweep takes at most {MAX_SEEDS} seeds in seeds: split it into smaller sweeps", fields=("seeds",)
        )
    valid = tuple(seed for seed in checked if seed is not None)
    if not valid or len(valid) < len(checked):
        raise ReinforceError("a sweep needs at least one seed in seeds, and no None: e.g. seeds=range(10)")
    seen: set[int] = set()
    for seed in valid:
        if seed in seen:
            raise ReinforceError(f"seed {seed} is given twice in seeds: list every seed once", fields=("seeds",))
        seen.add(seed)
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
    from reinforce.core.device import resolve_device
    from reinforce.rollout.envs import env_spec

    env_spec(env_id)
    seeds = check_seeds(seeds)
    total_steps = as_count("total_steps", total_steps, 1)
    eval_episodes = as_count("eval_episodes", eval_episodes, 0)
    checkpoint_every = as_count("checkpoint_every", checkpoint_every, 0)
    grid = {key: list(values) for key, values in (grid or {}).items()}
    check_local_trials(grid)
    base = resolve(env_id, overrides=hyperparameters).to_dict()
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
        raise ReinforceError(f"sweep directory {out} is a file: choose another sweep directory (out)", fields=("out",))
    if not (out / SWEEP_FILE).is_file():
        if out.is_dir() and any(out.iterdir()):
            raise ReinforceError(
                f"{out} exists and is not a sweep directory (it has no {SWEEP_FILE}): choose another sweep "
                "directory (out)",
                fields=("out",),
            )
        return
    saved = read_json(out / SWEEP_FILE)
    if saved.get("format_version") != SWEEP_FORMAT_VERSION:
        raise ReinforceError(
            f"{out / SWEEP_FILE} has format_version {saved.get('format_version')!r}, this reinforce reads "
            f"{SWEEP_FORMAT_VERSION}: use the reinforce version that wrote it, or another sweep directory (out)",
            fields=("out",),
        )
    differing = [key for key in SPEC_KEYS if _canonical(saved, key) != _canonical(plan.spec, key)]
    if differing:
        names = ", ".join(key.replace("_", " ") for key in differing)
        raise ReinforceError(
            f"{out} holds another sweep, whose settings differ in: {names} (see {out / SWEEP_FILE}); run that "
            "sweep's own command to continue it, or choose another sweep directory (out)",
            fields=("out",),
        )
