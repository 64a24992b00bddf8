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
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load, save
from torch import nn

from reinforce.core.optim import Optimizer
from reinforce.errors import ReinforceError
from reinforce.run.files import (
    CHECKPOINT_FILE,
    FORMAT_VERSION,
    RUN_FILES,
    TEMP_PATTERN,
    atomic_write,
    library_versions,
    read_json,
    write_json,
)
from reinforce.run.metrics import SOLVED_WINDOW

STATE_PREFIX = "state-"
STATE_SUFFIX = ".safetensors"

RNG_KEY = "rng.torch"
"""The safetensors key of ``torch.get_rng_state()`` (a 1-D uint8 tensor)."""


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
    if not path.is_file():
        raise ReinforceError(f"{path} is missing: pass a run directory written by `reinforce train`")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ReinforceError(f"cannot read {path} ({exc.strerror}): check its permissions") from None
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise ReinforceError(f"{path} does not match the SHA-256 in {CHECKPOINT_FILE}: the run is damaged")
    try:
        return load(data)
    except Exception as exc:
        raise ReinforceError(f"{path} is not a valid safetensors file ({exc}): the run is damaged") from None


def require(document: dict[str, Any], key: str, kind: type | tuple[type, ...], path: Path) -> Any:
    """``document[key]`` if present and of the given type, else a `ReinforceError` naming the file and key."""
    value = document.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ReinforceError(f"{path} has no valid {key!r}: the run directory is damaged")
    return value


def state_file_name(update: int, sha256: str) -> str:
    """The name of a state file: the update it holds and the start of its hash (never reused for other bytes)."""
    return f"{STATE_PREFIX}{update:09d}-{sha256[:16]}{STATE_SUFFIX}"


def _is_json_scalar(value: object) -> bool:
    return value is None or isinstance(value, (bool, int, str)) or (isinstance(value, float) and math.isfinite(value))


def _json_value(value: Any, where: str) -> Any:
    """``value`` with tuples as lists, if it is JSON made of finite scalars, lists and string-keyed dicts."""
    if isinstance(value, (list, tuple)):
        return [_json_value(item, where) for item in value]
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return {key: _json_value(item, where) for key, item in value.items()}
    if _is_json_scalar(value):
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


def _damaged(path: Path, what: str) -> ReinforceError:
    return ReinforceError(f"{path} {what}: the run directory is damaged")


def restore_modules(modules: Mapping[str, nn.Module], tensors: Mapping[str, torch.Tensor], path: Path) -> None:
    """Load each module's tensors (``module.NAME.*``) with strict key and shape checks."""
    names = {key.split(".")[1] for key in tensors if key.startswith("module.") and key.count(".") >= 2}
    if names != set(modules):
        raise _damaged(path, f"holds modules {sorted(names)}, the agent has {sorted(modules)}")
    for name, module in modules.items():
        prefix = f"module.{name}."
        state = {key[len(prefix) :]: value for key, value in tensors.items() if key.startswith(prefix)}
        expected = module.state_dict()
        for key, value in state.items():
            if key in expected and (value.shape != expected[key].shape or value.dtype != expected[key].dtype):
                shape = tuple(value.shape)
                raise _damaged(path, f"has {prefix}{key} of {value.dtype} {shape}, not what the config gives")
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                raise ReinforceError(f"{path} holds non-finite values in {prefix}{key}: the run is damaged")
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError:
            raise ReinforceError(
                f"{path} does not match the {name} network that config.json describes: the run is damaged"
            ) from None


def _check_group(saved: Any, current: dict[str, Any], path: Path, name: str) -> dict[str, Any]:
    """A saved param group, checked against the agent's own and converted back (lists to tuples).

    ``current`` is the group of an optimizer just built from the config: every hyperparameter but ``lr`` must
    equal its value (betas, eps, alpha, ... are the config's optimizer defaults), and ``lr`` must be finite,
    > 0 and at most the configured one (a linear lr_schedule only lowers it).
    """
    if not isinstance(saved, dict) or set(saved) != set(current):
        raise _damaged(path, f"has param_groups of optimizer {name!r} that do not match the config")
    restored: dict[str, Any] = {}
    for key, value in current.items():
        given = saved[key]
        if isinstance(value, (list, tuple)):
            ok = isinstance(given, list) and len(given) == len(value)
            pairs = zip(given, value, strict=False) if ok else ()
            ok = ok and all(type(a) is type(b) or {type(a), type(b)} <= {int, float} for a, b in pairs)
            given = tuple(given) if isinstance(value, tuple) and ok else given
        elif isinstance(value, bool) or value is None:
            ok = type(given) is type(value) or (value is None and given is None)
        elif isinstance(value, (int, float)):
            ok = _is_json_scalar(given) and isinstance(given, (int, float)) and not isinstance(given, bool)
        else:
            ok = type(given) is type(value)
        if key == "params":
            ok = given == value
        elif key == "lr":
            ok = ok and math.isfinite(given) and 0 < given <= value
        else:
            ok = ok and given == value
        if not ok:
            raise _damaged(path, f"has an invalid {key!r} in the param_groups of optimizer {name!r}")
        restored[key] = given
    return restored


NON_NEGATIVE_STATES = ("exp_avg_sq", "square_avg")
"""Optimizer states that are averages of squares, so never negative (Adam's and RMSprop's)."""


def _is_step(value: object) -> bool:
    """Whether ``value`` is an optimizer's step count: a non-negative integer value (int or integral float)."""
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
        and float(value).is_integer()
    )


def _check_state_tensor(key: str, entry: str, tensor: torch.Tensor, path: Path) -> None:
    """A `ReinforceError` unless an optimizer state tensor is finite, >= 0 if a mean square, a count if a step."""
    if not bool(torch.isfinite(tensor).all()):
        raise ReinforceError(f"{path} holds non-finite values in {key}: the run is damaged")
    if entry in NON_NEGATIVE_STATES and bool((tensor < 0).any()):
        raise ReinforceError(f"{path} holds negative values in {key}, a mean of squares: the run is damaged")
    if entry == "step" and (tensor.numel() != 1 or not _is_step(tensor.item())):
        raise ReinforceError(f"{path} has {key} that is not a non-negative integer count: the run is damaged")


def restore_optimizers(
    optimizers: Mapping[str, Optimizer],
    documents: Any,
    tensors: Mapping[str, torch.Tensor],
    path: Path,
) -> None:
    """Rebuild and load each optimizer's state dict, after checking its structure, shapes and dtypes."""
    if not isinstance(documents, dict) or set(documents) != set(optimizers):
        raise _damaged(path, f"does not hold the state of the optimizers {sorted(optimizers)}")
    for name, optimizer in optimizers.items():
        document = documents[name]
        current = optimizer.state_dict()
        saved_groups = document.get("param_groups") if isinstance(document, dict) else None
        saved_state = document.get("state") if isinstance(document, dict) else None
        if not isinstance(saved_groups, list) or len(saved_groups) != len(current["param_groups"]):
            raise _damaged(path, f"has no valid param_groups for optimizer {name!r}")
        if not isinstance(saved_state, dict):
            raise _damaged(path, f"has no valid state for optimizer {name!r}")
        groups = [_check_group(g, c, path, name) for g, c in zip(saved_groups, current["param_groups"], strict=True)]
        parameters = [p for group in optimizer.param_groups for p in group["params"]]
        state: dict[int, dict[str, Any]] = {}
        for index_text, scalars in saved_state.items():
            if not index_text.isdigit() or int(index_text) >= len(parameters) or not isinstance(scalars, dict):
                raise _damaged(path, f"has an invalid state entry {index_text!r} for optimizer {name!r}")
            if not all(_is_json_scalar(value) for value in scalars.values()):
                raise _damaged(path, f"has a non-scalar state value for optimizer {name!r}")
            if "step" in scalars and not _is_step(scalars["step"]):
                raise _damaged(path, f"has an invalid step {scalars['step']!r} for optimizer {name!r}")
            state[int(index_text)] = dict(scalars)
        prefix = f"optimizer.{name}.state."
        for key, tensor in tensors.items():
            if not key.startswith(prefix):
                continue
            index_text, _, entry = key[len(prefix) :].partition(".")
            if not index_text.isdigit() or int(index_text) not in state or not entry:
                raise _damaged(path, f"has a tensor {key} for no parameter of optimizer {name!r}")
            parameter = parameters[int(index_text)]
            if tensor.shape not in (parameter.shape, torch.Size([])) or not tensor.is_floating_point():
                raise _damaged(path, f"has {key} of {tensor.dtype} {tuple(tensor.shape)}, not a state of its parameter")
            _check_state_tensor(key, entry, tensor, path)
            state[int(index_text)][entry] = tensor
        try:
            optimizer.load_state_dict({"state": state, "param_groups": groups})
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            raise _damaged(path, f"holds an optimizer state that the optimizer refuses ({exc})") from None


def restore_rng(tensors: Mapping[str, torch.Tensor], path: Path) -> None:
    """Set torch's RNG state from ``rng.torch``, after checking its dtype and size."""
    saved = tensors.get(RNG_KEY)
    current = torch.get_rng_state()
    if saved is None or saved.dtype != torch.uint8 or saved.shape != current.shape:
        raise _damaged(path, f"has no valid {RNG_KEY} (a {tuple(current.shape)} uint8 tensor)")
    try:
        torch.set_rng_state(saved)
    except RuntimeError as exc:
        raise _damaged(path, f"has an RNG state that torch refuses ({exc})") from None


STATE_PATTERN = re.compile(rf"{STATE_PREFIX}[0-9]{{9}}-[0-9a-f]{{16}}{re.escape(STATE_SUFFIX)}")
"""The names `state_file_name` gives state files."""


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
    state_path: Path
    file: Path
    """checkpoint.json's path."""

    def restore(self, modules: Mapping[str, nn.Module], optimizers: Mapping[str, Optimizer]) -> None:
        """Load the modules, the optimizers and torch's RNG state; on an error they are left unusable."""
        restore_modules(modules, self.tensors, self.state_path)
        restore_optimizers(optimizers, self.optimizers, self.tensors, self.file)
        restore_rng(self.tensors, self.state_path)


def check_run_dir(path: Path) -> None:
    """A `ReinforceError` unless ``path`` is a directory."""
    if not path.is_dir():
        problem = "is not a directory" if path.exists() else "does not exist"
        raise ReinforceError(f"run directory {path} {problem}: pass the directory `reinforce train` wrote")


def check_format(document: dict[str, Any], path: Path) -> None:
    """A `ReinforceError` unless ``document`` (config.json or checkpoint.json) has this version's format."""
    version = document.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:
        raise ReinforceError(
            f"{path} has format_version {version!r}, this reinforce reads "
            f"{FORMAT_VERSION}: install the reinforce version that wrote it"
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
            raise ReinforceError(f"{file} names a state file {state_file!r} outside the run: the run is damaged")
        try:
            tensors = load_tensors(run_dir / state_file, sha256=sha256)
        except ReinforceError:
            committed_since = read_json(file).get("state_file") != state_file
            if attempt == 2 or not committed_since:
                raise
            continue
        unknown = sorted(key for key in tensors if not key.startswith(("module.", "optimizer.", "rng.")))
        if unknown:
            raise ReinforceError(f"{run_dir / state_file} holds unknown tensors {unknown[:3]}: the run is damaged")
        return Checkpoint(
            counters=_counters(document, file),
            train_time_s=_train_time(document, file),
            recent_returns=_recent_returns(document, file),
            tensors=tensors,
            optimizers=document.get("optimizers"),
            state_path=run_dir / state_file,
            file=file,
        )
    raise AssertionError("unreachable")


def _counters(document: dict[str, Any], path: Path) -> dict[str, int]:
    counters = {}
    for key in COUNTERS:
        value = require(document, key, int, path)
        if not 0 <= value <= MAX_COUNTER:
            raise ReinforceError(f"{path} has {key!r} outside [0, 2**53]: the run directory is damaged")
        counters[key] = value
    return counters


def _train_time(document: dict[str, Any], path: Path) -> float:
    try:
        train_time_s = float(require(document, "train_time_s", (int, float), path))
    except OverflowError:
        train_time_s = math.inf
    if not math.isfinite(train_time_s) or train_time_s < 0:
        raise ReinforceError(f"{path} has an invalid 'train_time_s': the run directory is damaged")
    return train_time_s


def _recent_returns(document: dict[str, Any], path: Path) -> list[float]:
    values = require(document, "recent_returns", list, path)
    if len(values) > SOLVED_WINDOW or not all(
        isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) for value in values
    ):
        raise ReinforceError(
            f"{path} has an invalid 'recent_returns' (at most {SOLVED_WINDOW} finite numbers): the run is damaged"
        )
    return [float(value) for value in values]
