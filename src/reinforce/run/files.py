"""The files of a run directory that hold no tensors: their names, JSON documents, atomic writes.

Apart from `reinforce.run.checkpoint` (tensors, with torch and safetensors), so that what reads or plots a run's
metrics (`reinforce.run.plotting`, ``reinforce plot``) does not import torch.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from reinforce.config_checks import seeds_text
from reinforce.errors import ReinforceError, RunDirectoryBusy

FORMAT_VERSION = 2
"""The format of config.json and checkpoint.json that this version writes and reads (docs/checkpoint.md)."""

CONFIG_FILE = "config.json"
CHECKPOINT_FILE = "checkpoint.json"
METRICS_FILE = "metrics.csv"
EPISODES_FILE = "episodes.csv"
EVALUATION_FILE = "evaluation.json"
CURVE_FILE = "curve.png"
EVALUATIONS_FILE = "evaluations.csv"
"""The periodic evaluations of `reinforce.callbacks.EvalCallback`, one row per evaluation."""
BEST_DIR = "best"
"""The run directory (inside the run's) of the best policy `reinforce.callbacks.EvalCallback` has evaluated."""
TENSORBOARD_DIR = "tensorboard"
RUN_FILES = (CONFIG_FILE, CHECKPOINT_FILE, METRICS_FILE, EPISODES_FILE, EVALUATION_FILE, EVALUATIONS_FILE)
"""The files of a run directory that `atomic_write` writes (besides the state files)."""
MEMBER_DIR = "seed-{seed}"
"""The run directory of the member of seed S inside a population's directory (``reinforce train --seeds``)."""
MEMBER_PATTERN = re.compile(r"seed-(0|[1-9][0-9]*)")
"""The names `MEMBER_DIR` gives."""
PID_FILE = "training.pid"
"""The pid of the process training the run directory, there while it holds the lock (see `training_lock`)."""

TEMP_PREFIX = "."
TEMP_SUFFIX = ".tmp"
TEMP_PATTERN = re.compile(r"\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp")
"""The names `atomic_write` gives its temporary files: ``.NAME.`` + mkstemp's 8 random characters + ``.tmp``."""


def run_path(run_dir: object, *, writing: bool = False) -> Path:
    """``run_dir`` as a Path, or a `ReinforceError` naming what was passed instead of a directory path.

    With ``writing``, an existing path that is not a directory (a file) is refused too.
    """
    if not isinstance(run_dir, (str, os.PathLike)) or not str(run_dir).strip():
        raise ReinforceError(f"run_dir must be a directory path, got {run_dir!r}: pass e.g. 'runs/my-run'")
    path = Path(run_dir)
    if writing and path.exists() and not path.is_dir():
        raise ReinforceError(f"run directory {path} is a file, not a directory: pass a directory (new or a run's)")
    if writing:  # a new directory under a file cannot be made
        above = next((parent for parent in path.parents if parent.exists()), None)
        if above is not None and not above.is_dir():
            raise ReinforceError(
                f"cannot create run directory {path}: {above} is a file, not a directory; pass a directory (new or "
                "a run's)"
            )
    return path


def population_seeds(path: Path) -> list[int]:
    """The seeds of the population in ``path``: its ``seed-S`` run directories (with a config.json), in order.

    Empty for one run's directory (config.json in ``path`` itself), a directory without members, or a path that
    cannot be listed.
    """
    if (path / CONFIG_FILE).exists():
        return []
    try:
        names = [entry.name for entry in path.iterdir() if (entry / CONFIG_FILE).is_file()]
    except OSError:
        return []
    return sorted(int(match[1]) for name in names if (match := MEMBER_PATTERN.fullmatch(name)))


def refuse_population(path: Path, fix: str | None = None) -> None:
    """A `ReinforceError` if ``path`` is a population's directory, where one run's directory is expected.

    ``fix``: what to do instead, where ``{seeds}`` stands for the seeds as ``--seeds`` writes them (default:
    pass one member's directory).
    """
    seeds = population_seeds(path)
    if seeds:
        member = path / MEMBER_DIR.format(seed=seeds[0])
        text = seeds_text(seeds)
        raise ReinforceError(
            f"{path} holds a population (seeds {text}, each in {path / 'seed-S'}), not one run: "
            + (fix.format(seeds=text) if fix else f"pass one member's run directory, such as {member}")
        )


def _read_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


FILE_MODE = 0o666 & ~_read_umask()
"""Permissions of the files a run writes: those of a normally created file (umask read once, at import)."""


def refuse_special_file(path: Path) -> None:
    """A `ReinforceError` if ``path`` is a device (/dev/null), a named pipe, a socket or a link to one.

    Writing a file there through a rename would replace it: as root, /dev/null itself.
    """
    if os.path.lexists(path) and not path.is_file() and not path.is_dir():
        raise ReinforceError(
            f"cannot write {path}: it is not a regular file (a device, a named pipe, a socket or a broken link); "
            "give a file name"
        )


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file, fsync and rename: readers never see half a file.

    The file gets the permissions of a normally created one (0o666 less the umask), not mkstemp's 0o600. The
    directory is fsynced after the rename, so the new name survives a crash of the machine too. A device, pipe
    or socket at ``path`` is refused (`refuse_special_file`), not replaced.
    """
    refuse_special_file(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{TEMP_PREFIX}{path.name}.", suffix=TEMP_SUFFIX)
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
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json(path: Path, document: dict[str, Any]) -> None:
    """Atomically write a JSON document (indented, keys in insertion order)."""
    atomic_write(path, (json.dumps(document, indent=2, allow_nan=False) + "\n").encode())


def read_file(path: Path) -> bytes:
    """The bytes of a run directory's file, or a `ReinforceError` that says truthfully why they cannot be read.

    A missing file, a directory in the file's place, a permission refused and any other failure of the system
    each get their own message, with the fix.
    """
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ReinforceError(f"{path} is missing: pass a run directory written by `reinforce train`") from None
    except IsADirectoryError:
        raise ReinforceError(
            f"{path} is a directory, not a file: the run directory is damaged; move {path} away"
        ) from None
    except PermissionError:
        raise ReinforceError(
            f"{path} cannot be read (permission denied): give your user read access, e.g. chmod u+r {path}"
        ) from None
    except OSError as exc:
        raise ReinforceError(f"{path} cannot be read ({exc.strerror or exc}): check the disk and the path") from None


def read_text(path: Path) -> str:
    """The text (UTF-8, as reinforce writes it) of a run directory's file; see `read_file` for the errors.

    Bytes that are not UTF-8 (a binary file in its place) are a `ReinforceError` that says so.
    """
    data = read_file(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReinforceError(
            f"{path} is not text (byte {exc.start} is not UTF-8: binary data where reinforce writes text): "
            "the run directory is damaged; restore the file or start a new run"
        ) from None


def read_json(path: Path) -> dict[str, Any]:
    """Read a JSON object, or raise a `ReinforceError` that names the file (and why it cannot be read)."""
    text = read_text(path)
    try:
        document = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ReinforceError(
            f"{path} is not valid JSON ({exc}): the run directory is damaged; restore the file or start a new run"
        ) from None
    if not isinstance(document, dict):
        raise ReinforceError(
            f"{path} does not hold a JSON object: the run directory is damaged; restore the file or start a new run"
        )
    return document


@functools.cache
def library_versions() -> dict[str, str]:
    """Versions of reinforce, torch, gymnasium and numpy, recorded in every run directory."""
    import gymnasium
    import numpy as np
    import torch

    try:
        own = version("reinforce")
    except PackageNotFoundError:
        own = "unknown"
    return {"reinforce": own, "torch": torch.__version__, "gymnasium": gymnasium.__version__, "numpy": np.__version__}


def write_config(run_dir: Path, record: Mapping[str, Any]) -> None:
    """Write config.json: ``record`` (env id, seed, budget, hyperparameters, ...) with the format and versions."""
    write_json(run_dir / CONFIG_FILE, {"format_version": FORMAT_VERSION, **record, "versions": library_versions()})


@contextlib.contextmanager
def training_lock(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``run_dir`` (flock on the directory) while the block runs.

    Only one process may train a run directory at a time: another one gets a `RunDirectoryBusy` naming the pid
    of the holder (written to `PID_FILE` while the lock is held, removed on exit). The operating system drops
    the lock when the holder dies, however it dies; a pid file left by a killed process is simply rewritten.

    Where the platform has no ``flock`` (Windows), the block runs without the lock.

    Raises:
        RunDirectoryBusy: another process holds the lock.
    """
    try:
        import fcntl
    except ImportError:  # no flock here: train without the guard rather than not at all
        yield
        return
    fd = os.open(run_dir, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                pid = (run_dir / PID_FILE).read_text().strip() or "unknown"
            except OSError:
                pid = "unknown"
            raise RunDirectoryBusy(
                f"run directory {run_dir} is being trained by another process (pid {pid}): wait for it to "
                "finish or stop it"
            ) from None
        (run_dir / PID_FILE).write_text(f"{os.getpid()}\n")
        try:
            yield
        finally:
            (run_dir / PID_FILE).unlink(missing_ok=True)
    finally:
        os.close(fd)  # releases the lock
