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

import csv
import hashlib
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load, save
from torch import nn

from reinforce.core.optim import Optimizer
from reinforce.errors import ReinforceError
from reinforce.run.files import CHECKPOINT_FILE, atomic_write

FORMAT_VERSION = 2
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
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError:
            raise ReinforceError(
                f"{path} does not match the {name} network that config.json describes: the run is damaged"
            ) from None


def _check_group(saved: Any, current: dict[str, Any], path: Path, name: str) -> dict[str, Any]:
    """A saved param group, checked against the agent's own and converted back (lists to tuples)."""
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
        if not ok:
            raise _damaged(path, f"has an invalid {key!r} in the param_groups of optimizer {name!r}")
        restored[key] = given
    return restored


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


def remove_stale_files(run_dir: Path, keep: str) -> None:
    """Delete state files other than ``keep`` and temporary files left by an interrupted write."""
    for path in run_dir.iterdir():
        name = path.name
        stale_state = name.startswith(STATE_PREFIX) and name.endswith(STATE_SUFFIX) and name != keep
        stale_temp = name.startswith(".") and name.endswith(".tmp")
        if stale_state or stale_temp:
            path.unlink(missing_ok=True)


def trim_csv(path: Path, fieldnames: Sequence[str], max_update: int) -> None:
    """Keep the complete rows of ``path`` up to ``update == max_update``, rewriting it atomically if needed.

    A run killed after writing rows but before its next checkpoint has rows the checkpoint does not cover;
    resuming drops them (they are written again) so that no row is duplicated. A torn last line is dropped
    too, and a header torn by a crash. Any other header is an error: the file is not one this version wrote.
    """
    if not path.is_file():
        return
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise _damaged(path, "cannot be read as UTF-8 text") from None
    lines = text.splitlines(keepends=True)
    if not lines:
        return
    header = lines[0].rstrip("\r\n")
    if header != ",".join(fieldnames):
        if ",".join(fieldnames).startswith(header) and len(lines) == 1:  # a header torn by a crash
            atomic_write(path, b"")
            return
        raise _damaged(path, "has columns this version of reinforce does not write (another version's run?)")
    kept = [lines[0]]
    for line in lines[1:]:
        if not line.endswith("\n"):
            break
        try:
            row = next(csv.DictReader(io.StringIO(line), fieldnames=list(fieldnames)))
        except csv.Error:
            break
        try:
            update = int(row["update"])
        except (TypeError, ValueError):
            break
        if update > max_update or None in row or any(value is None for value in row.values()):
            break
        kept.append(line)
    trimmed = "".join(kept)
    if trimmed != text:
        atomic_write(path, trimmed.encode())
