"""The torch device a run computes on, checked before anything is built on it."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Concatenate, ParamSpec, Protocol, TypeVar

import torch

from reinforce.errors import ReinforceError


def resolve_device(name: str) -> torch.device:
    """``torch.device(name)``, or a `ReinforceError` if it is malformed or not available here.

    ``"auto"`` is CUDA where it is available, else the CPU.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ReinforceError(f"invalid device {name!r}: use cpu, cuda or cuda:N", fields=("device",)) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ReinforceError(
            f"device {name!r} asked for but CUDA is not available here: set device='cpu'", fields=("device",)
        )
    if device.type == "meta":
        raise ReinforceError(f"device {name!r} holds no data and cannot train: use cpu or cuda", fields=("device",))
    try:
        torch.empty(1, device=device) + 1
    except Exception as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ReinforceError(
            f"device {name!r} is not usable here ({first_line}): set device='cpu'", fields=("device",)
        ) from None
    return device


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with torch's process-wide CPU thread count at ``count`` (0: leave it), then put it back."""
    previous = torch.get_num_threads()
    if count and count != previous:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if count and count != previous:
            torch.set_num_threads(previous)


class _ThreadCount(Protocol):
    @property
    def num_threads(self) -> int: ...


class _Configured(Protocol):
    @property
    def config(self) -> _ThreadCount: ...


_Self = TypeVar("_Self", bound=_Configured)
_P = ParamSpec("_P")
_R = TypeVar("_R")


def in_config_threads(method: Callable[Concatenate[_Self, _P], _R]) -> Callable[Concatenate[_Self, _P], _R]:
    """``method`` run in `torch_threads` of its object's ``config.num_threads`` (a no-op inside another such call)."""

    @functools.wraps(method)
    def threaded(self: _Self, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with torch_threads(self.config.num_threads):
            return method(self, *args, **kwargs)

    return threaded
