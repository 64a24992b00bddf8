"""The torch device a run computes on, checked before anything is built on it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

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
