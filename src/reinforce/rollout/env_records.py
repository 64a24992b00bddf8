"""Where a run's environments came from, as config.json records it (`env_record`); rebuilding them from there.

`source_from_record` reads a record back into an `reinforce.rollout.envs.EnvSource`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import gymnasium
from gymnasium import error as gym_error
from gymnasium.envs.registration import EnvSpec

from reinforce.errors import ReinforceError
from reinforce.imports import import_class, import_path
from reinforce.rollout.envs import EnvSource, env_source


def env_record(source: EnvSource) -> dict[str, Any]:
    """What config.json says of the environment, and whether `source_from_record` can rebuild it.

    ``{"id": ..., "kwargs": {...}, "wrappers": [...]}`` for a registered environment, ``{"entry_point":
    "module:Class", ...}`` for an importable ``gymnasium.Env`` subclass, and ``"rebuildable": false`` with
    the reason otherwise (a lambda, a function, a script's class, a vector env, kwargs that are not JSON,
    a wrapper without an import path).
    """
    record: dict[str, Any] = {"name": source.name}
    reasons = []
    if source.env_id is not None:
        record["id"] = source.env_id
    elif source.spec is not None and _registered(source.spec):
        record["id"] = source.spec.id
    elif source.factory is not None and isinstance(source.factory, type):
        entry_point = import_path(source.factory)
        if entry_point is None:
            reasons.append(f"{source.name} cannot be imported by another process")
        record["entry_point"] = entry_point
    elif source.vector_env is not None:
        reasons.append("it was given as a vector env")
    else:
        reasons.append(f"{source.name} is not a registered id or an importable gymnasium.Env class")
    try:
        record["kwargs"] = json.loads(json.dumps(source.kwargs, allow_nan=False))
    except (TypeError, ValueError):
        record["kwargs"] = {key: repr(value) for key, value in source.kwargs.items()}
        reasons.append("its env_kwargs are not JSON")
    paths = [import_path(wrapper) for wrapper in source.wrappers]
    record["wrappers"] = [path or repr(wrapper) for path, wrapper in zip(paths, source.wrappers, strict=True)]
    if any(
        path is None or not _is_wrapper_class(wrapper) for path, wrapper in zip(paths, source.wrappers, strict=True)
    ):
        reasons.append("a wrapper is not an importable gymnasium.Wrapper class")
    record["rebuildable"] = not reasons
    if reasons:
        record["why_not"] = "; ".join(reasons)
    return record


def source_from_record(record: Mapping[str, Any]) -> EnvSource:
    """Rebuild the `EnvSource` that `env_record` described (config.json's ``env``).

    Only registered ids and importable ``gymnasium.Env`` / ``gymnasium.Wrapper`` classes are rebuilt; a
    module named there is imported, as ``gymnasium.make("module:Env-v0")`` would.

    Raises:
        ReinforceError: the record says the environment is not rebuildable, or rebuilding it failed.
    """
    if not record.get("rebuildable", True):
        raise ReinforceError(
            f"the run's environment {record.get('name')!r} cannot be rebuilt from its run directory "
            f"({record.get('why_not', 'not recorded')}): pass env= to reinforce.load or reinforce.resume"
        )
    kwargs = record.get("kwargs") or {}
    wrapper_paths = record.get("wrappers") or []
    if not isinstance(kwargs, dict) or not isinstance(wrapper_paths, list):
        raise ReinforceError("the run's env record has malformed kwargs or wrappers")
    wrappers = [import_class(path, gymnasium.Wrapper, "wrapper") for path in wrapper_paths]
    if isinstance(record.get("id"), str):
        return env_source(record["id"], env_kwargs=kwargs, wrappers=wrappers)
    factory = import_class(record.get("entry_point"), gymnasium.Env, "environment class")
    return env_source(factory, env_kwargs=kwargs, wrappers=wrappers)


def _is_wrapper_class(wrapper: object) -> bool:
    return isinstance(wrapper, type) and issubclass(wrapper, gymnasium.Wrapper)


def _registered(spec: EnvSpec) -> bool:
    try:
        return gymnasium.spec(spec.id) == spec
    except gym_error.Error:
        return False
