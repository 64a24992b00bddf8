"""Run-directory files: JSON metadata and safetensors tensors, written atomically, never pickled.

A run directory holds ``config.json`` (environment id, seed, hyperparameters, library versions),
``policy.safetensors`` (the policy's ``state_dict``) and ``checkpoint.json`` (format version and counters).
Loading validates everything before use and reports a damaged or missing file as a `ReinforceError`.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save

from reinforce.errors import ReinforceError

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
CHECKPOINT_FILE = "checkpoint.json"
POLICY_FILE = "policy.safetensors"
METRICS_FILE = "metrics.csv"
EPISODES_FILE = "episodes.csv"
EVALUATION_FILE = "evaluation.json"
CURVE_FILE = "curve.png"


def _read_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


FILE_MODE = 0o666 & ~_read_umask()
"""Permissions of the files a run writes: those of a normally created file (umask read once, at import)."""


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file, fsync and rename: readers never see half a file.

    The file gets the permissions of a normally created one (0o666 less the umask), not mkstemp's 0o600.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fchmod(file.fileno(), FILE_MODE)
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, document: dict[str, Any]) -> None:
    """Atomically write a JSON document (indented, keys in insertion order)."""
    atomic_write(path, (json.dumps(document, indent=2) + "\n").encode())


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON object, or raise a `ReinforceError` that names the file."""
    if not path.is_file():
        raise ReinforceError(f"{path} is missing: pass a run directory written by `reinforce train`")
    try:
        document = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReinforceError(f"{path} is not valid JSON ({exc}): the run directory is damaged") from None
    if not isinstance(document, dict):
        raise ReinforceError(f"{path} does not hold a JSON object: the run directory is damaged")
    return document


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Atomically save tensors as safetensors (contiguous CPU copies)."""
    atomic_write(path, save({key: value.detach().cpu().contiguous() for key, value in tensors.items()}))


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Load safetensors from ``path`` onto the CPU, or raise a `ReinforceError` that names the file."""
    if not path.is_file():
        raise ReinforceError(f"{path} is missing: pass a run directory written by `reinforce train`")
    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:
        raise ReinforceError(f"{path} is not a valid safetensors file ({exc}): the run is damaged") from None


def require(document: dict[str, Any], key: str, kind: type | tuple[type, ...], path: Path) -> Any:
    """``document[key]`` if present and of the given type, else a `ReinforceError` naming the file and key."""
    value = document.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ReinforceError(f"{path} has no valid {key!r}: the run directory is damaged")
    return value
