"""Run-directory files: JSON metadata and safetensors tensors, written atomically, never pickled.

A run directory holds ``config.json`` (environment id, seed, hyperparameters, library versions), one
``state-UPDATE-HASH.safetensors`` (every module's and optimizer's tensors and torch's RNG state) and
``checkpoint.json`` (format version, counters, optimizer scalars, and the name and SHA-256 of the state file).
checkpoint.json is written last and is the commit record: a checkpoint exists once it names a state file,
so a process killed at any moment leaves the previous checkpoint or the new one, never a mixture
(docs/checkpoint.md). Loading validates everything before use and reports a damaged or missing file as a
`ReinforceError`.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load, save
from torch import nn

from reinforce.core.optim import Optimizer
from reinforce.errors import DAMAGED, ReinforceError
from reinforce.run.files import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    CURVE_FILE,
    FORMAT_VERSION,
    PID_FILE,
    RUN_FILES,
    TEMP_PATTERN,
    atomic_write,
    library_versions,
    read_file,
    read_json,
    refuse_population,
    write_json,
)
from reinforce.run.metrics import SOLVED_WINDOW
from reinforce.run.restore import RNG_KEY, is_json_scalar, restore_modules, restore_optimizers, restore_rng

STATE_PREFIX = "state-"
STATE_SUFFIX = ".safetensors"


def save_state_file(run_dir: Path, update: int, tensors: Mapping[str, torch.Tensor]) -> tuple[str, str]:
    """Atomically write a checkpoint's tensors to a new state file; returns its name and SHA-256.

    The name holds the update and the start of the hash, so a state file that checkpoint.json names is never
    overwritten with other bytes.
    """
    data = save({key: value.detach().cpu().contiguous() for key, value in tensors.items()})
    sha256 = hashlib.sha256(data).hexdigest()
    name = state_file_name(update, sha256)
    atomic_write(run_dir / name, data)
    return name, sha256


def load_tensors(path: Path, sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Load safetensors from ``path`` onto the CPU, or raise a `ReinforceError` that names the file.

    Only the safetensors parser ever sees the bytes (a JSON header and raw tensor data): nothing is unpickled.

    Args:
        path: the file.
        sha256: if given, the file's bytes must have this SHA-256, or it is refused before it is parsed.
    """
    data = read_file(path)
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise ReinforceError(f"{path} does not match the SHA-256 in {CHECKPOINT_FILE}: {DAMAGED}")
    try:
        return load(data)
    except Exception as exc:
        raise ReinforceError(f"{path} is not a valid safetensors file ({exc}): {DAMAGED}") from None


def require(document: dict[str, Any], key: str, kind: type | tuple[type, ...], path: Path) -> Any:
    """``document[key]`` if present and of the given type, else a `ReinforceError` naming the file and key."""
    value = document.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ReinforceError(f"{path} has no valid {key!r}: {DAMAGED}")
    return value


def state_file_name(update: int, sha256: str) -> str:
    """The name of a state file: the update it holds and the start of its hash (never reused for other bytes)."""
    return f"{STATE_PREFIX}{update:09d}-{sha256[:16]}{STATE_SUFFIX}"


def _json_value(value: Any, where: str) -> Any:
    """``value`` with tuples as lists, if it is JSON made of finite scalars, lists and string-keyed dicts."""
    if isinstance(value, (list, tuple)):
        return [_json_value(item, where) for item in value]
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return {key: _json_value(item, where) for key, item in value.items()}
    if is_json_scalar(value):
        return value
    raise TypeError(f"{where} holds {type(value).__name__} {value!r}, which a checkpoint cannot store as JSON")


def pack_state(
    modules: Mapping[str, nn.Module], optimizers: Mapping[str, Optimizer]
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split modules, optimizers and torch's RNG state into safetensors tensors and a JSON document.

    Tensors are named ``module.NAME.KEY`` (the module's ``state_dict`` keys), ``optimizer.NAME.state.I.KEY``
    (per-parameter optimizer state such as Adam's ``exp_avg`` and ``step``) and ``rng.torch``; the JSON part
    holds each optimizer's ``param_groups`` and its non-tensor per-parameter values.
    """
    tensors: dict[str, torch.Tensor] = {}
    for name, module in modules.items():
        for key, tensor in module.state_dict().items():
            tensors[f"module.{name}.{key}"] = tensor
    documents: dict[str, Any] = {}
    for name, optimizer in optimizers.items():
        state_dict = optimizer.state_dict()
        state: dict[str, dict[str, Any]] = {}
        for index, entry in state_dict["state"].items():
            scalars = {}
            for key, value in entry.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"optimizer.{name}.state.{index}.{key}"] = value
                else:
                    scalars[key] = _json_value(value, f"optimizer {name!r} state {key!r}")
            state[str(index)] = scalars
        param_groups = _json_value(state_dict["param_groups"], f"optimizer {name!r} param_groups")
        documents[name] = {"param_groups": param_groups, "state": state}
    tensors[RNG_KEY] = torch.get_rng_state()
    return tensors, {"modules": sorted(modules), "optimizers": documents}


STATE_PATTERN = re.compile(rf"{STATE_PREFIX}[0-9]{{9}}-[0-9a-f]{{16}}{re.escape(STATE_SUFFIX)}")
"""The names `state_file_name` gives state files."""


def is_run_file(path: Path) -> bool:
    """Whether ``path`` names a file that reinforce keeps in a run directory (one with a config.json).

    Its config.json, checkpoint.json, CSVs, evaluation, curve, pid file and state files: another writer must not
    replace them.
    """
    own = (*RUN_FILES, CURVE_FILE, PID_FILE)
    return (path.parent / CONFIG_FILE).is_file() and (
        path.name in own or STATE_PATTERN.fullmatch(path.name) is not None
    )


def remove_stale_files(run_dir: Path, keep: str) -> None:
    """Delete state files other than ``keep`` and temporary files left by an interrupted `atomic_write`.

    Only names that reinforce itself gives (`STATE_PATTERN`, `TEMP_PATTERN`) are deleted: a user's own files in
    the directory are left alone, even ``state-of-the-art.safetensors`` or ``.draft.tmp``.
    """
    for path in run_dir.iterdir():
        name = path.name
        stale_state = STATE_PATTERN.fullmatch(name) is not None and name != keep
        temp = TEMP_PATTERN.fullmatch(name)
        stale_temp = temp is not None and (temp["name"] in RUN_FILES or STATE_PATTERN.fullmatch(temp["name"]))
        if (stale_state or stale_temp) and path.is_file():
            path.unlink(missing_ok=True)


def refuse_foreign_checkpoint(run_dir: Path, own_update: int | None) -> None:
    """A `ReinforceError` if ``run_dir`` holds a checkpoint other than the one its writer left at ``own_update``.

    ``own_update`` is the update of the checkpoint the caller last wrote or loaded there (None: none), so a
    checkpoint written by another run, or unreadable, is never replaced.
    """
    file = run_dir / CHECKPOINT_FILE
    if not file.is_file():
        return
    try:
        saved = read_json(file).get("num_updates")
    except ReinforceError:
        saved = None
    if own_update is None or saved != own_update:
        raise ReinforceError(
            f"{run_dir} holds a checkpoint at update {saved} that this agent did not write: continue it "
            "with reinforce.resume(run_dir), or pass another run_dir"
        )


COUNTERS = ("num_updates", "num_env_steps", "num_simulated_steps", "num_episodes")
"""The integer counters of an agent, saved in checkpoint.json."""
MAX_COUNTER = 2**53
"""The largest counter read back (the largest integer a JSON reader is sure to keep exact)."""


def write_checkpoint(
    run_dir: Path,
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, Optimizer],
    record: Mapping[str, Any],
    update: int,
) -> None:
    """Commit a checkpoint: the state file under a new name, then checkpoint.json naming it, then clean up.

    The state file (every module and optimizer, and torch's RNG state) is written first; checkpoint.json, which
    names it with its SHA-256, is renamed into place: that rename is the commit. Older state files are deleted
    afterwards. ``record`` holds the JSON part (counters, recent returns, ...).
    """
    tensors, structure = pack_state(modules, optimizers)
    state_file, sha256 = save_state_file(run_dir, update, tensors)
    write_json(
        run_dir / CHECKPOINT_FILE,
        {
            "format_version": FORMAT_VERSION,
            "reinforce_version": library_versions()["reinforce"],
            **record,
            "state_file": state_file,
            "state_sha256": sha256,
            **structure,
        },
    )
    remove_stale_files(run_dir, keep=state_file)


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint read from a run directory, every value checked."""

    counters: dict[str, int]
    """`COUNTERS` by name."""
    train_time_s: float
    recent_returns: list[float]
    tensors: dict[str, torch.Tensor]
    """The state file's tensors (``module.*``, ``optimizer.*``, ``rng.torch``)."""
    optimizers: Any
    """checkpoint.json's ``optimizers`` document (param groups and scalar state), checked on restore."""
    lr_scheduler: Any
    """checkpoint.json's ``lr_scheduler`` (a user's scheduler's state dict), or None; checked on restore."""
    state_path: Path
    file: Path
    """checkpoint.json's path."""

    def restore(
        self, modules: Mapping[str, nn.Module], optimizers: Mapping[str, Optimizer], lr_bounded: bool = True
    ) -> None:
        """Load the modules, the optimizers and torch's RNG state; on an error they are left unusable.

        ``lr_bounded``: a saved learning rate may not exceed the optimizer's own (false under a user's scheduler).
        """
        restore_modules(modules, self.tensors, self.state_path)
        restore_optimizers(optimizers, self.optimizers, self.tensors, self.file, lr_bounded)
        restore_rng(self.tensors, self.state_path)


def check_run_dir(path: Path) -> None:
    """A `ReinforceError` unless ``path`` is a directory, and one run's rather than a population's."""
    if not path.is_dir():
        problem = "is not a directory" if path.exists() else "does not exist"
        raise ReinforceError(f"run directory {path} {problem}: pass the directory `reinforce train` wrote")
    refuse_population(path)


def check_format(document: dict[str, Any], path: Path) -> None:
    """A `ReinforceError` unless ``document`` (config.json or checkpoint.json) has this version's format."""
    version = document.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:
        raise ReinforceError(
            f"{path} has format_version {version!r}, this reinforce reads "
            f"{FORMAT_VERSION}: install the reinforce version that wrote it"
        )


def refuse_outside_link(run_dir: Path, path: Path) -> None:
    """A `ReinforceError` if ``path`` is a symbolic link to a file outside ``run_dir`` (a run holds its own files).

    A state file that leads elsewhere would load (and, resumed, build on) tensors the run never wrote.
    """
    if not path.is_symlink():
        return
    target = path.resolve()
    if target.parent != run_dir.resolve():
        raise ReinforceError(
            f"{path} is a link to {target}, outside the run directory: the run is damaged; put the file itself "
            "in the run directory (or remove the link and resume from an earlier copy of the run)"
        )


def read_checkpoint(run_dir: Path) -> Checkpoint:
    """checkpoint.json and its state file (hash checked), every value validated.

    A training process may commit a newer checkpoint, and delete the state file the older one names, between
    the two reads; that case is retried, so a run can be loaded while it trains.
    """
    file = run_dir / CHECKPOINT_FILE
    for attempt in range(3):
        document = read_json(file)
        check_format(document, file)
        state_file = require(document, "state_file", str, file)
        sha256 = require(document, "state_sha256", str, file)
        if Path(state_file).name != state_file or not state_file.endswith(STATE_SUFFIX):
            raise ReinforceError(f"{file} names a state file {state_file!r} outside the run: {DAMAGED}")
        refuse_outside_link(run_dir, run_dir / state_file)
        try:
            tensors = load_tensors(run_dir / state_file, sha256=sha256)
        except ReinforceError:
            committed_since = read_json(file).get("state_file") != state_file
            if attempt == 2 or not committed_since:
                if not os.path.lexists(run_dir / state_file):  # checkpoint.json is there: the run lost a file
                    raise ReinforceError(f"{run_dir / state_file}, named in {file}, is missing: {DAMAGED}") from None
                raise
            continue
        unknown = sorted(key for key in tensors if not key.startswith(("module.", "optimizer.", "rng.")))
        if unknown:
            raise ReinforceError(f"{run_dir / state_file} holds unknown tensors {unknown[:3]}: {DAMAGED}")
        return Checkpoint(
            counters=_counters(document, file),
            train_time_s=_train_time(document, file),
            recent_returns=_recent_returns(document, file),
            tensors=tensors,
            optimizers=document.get("optimizers"),
            lr_scheduler=document.get("lr_scheduler"),
            state_path=run_dir / state_file,
            file=file,
        )
    raise AssertionError("unreachable")


def _counters(document: dict[str, Any], path: Path) -> dict[str, int]:
    counters = {}
    for key in COUNTERS:
        value = require(document, key, int, path)
        if not 0 <= value <= MAX_COUNTER:
            raise ReinforceError(f"{path} has {key!r} outside [0, 2**53]: {DAMAGED}")
        counters[key] = value
    return counters


def _train_time(document: dict[str, Any], path: Path) -> float:
    try:
        train_time_s = float(require(document, "train_time_s", (int, float), path))
    except OverflowError:
        train_time_s = math.inf
    if not math.isfinite(train_time_s) or train_time_s < 0:
        raise ReinforceError(f"{path} has an invalid 'train_time_s': {DAMAGED}")
    return train_time_s


def _recent_returns(document: dict[str, Any], path: Path) -> list[float]:
    values = require(document, "recent_returns", list, path)
    if len(values) > SOLVED_WINDOW or not all(
        isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) for value in values
    ):
        raise ReinforceError(
            f"{path} has an invalid 'recent_returns' (at most {SOLVED_WINDOW} finite numbers): {DAMAGED}"
        )
    return [float(value) for value in values]
