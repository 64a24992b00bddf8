"""What the sampler tests share: a fast path and the torch path drawn from the same seed, compared."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch

T = TypeVar("T")


def drawn_alike(ours: Callable[[], T], theirs: Callable[[], T], seed: int) -> tuple[T, T]:
    """``ours()`` and ``theirs()`` (under ``torch.no_grad``), each from torch's generator seeded with ``seed``.

    Asserts that both leave the generator in the same state (the same draws consumed); returns both results.
    """
    torch.manual_seed(seed)
    mine = ours()
    state = torch.get_rng_state()
    torch.manual_seed(seed)
    with torch.no_grad():
        torchs = theirs()
    assert torch.equal(state, torch.get_rng_state()), "the two paths consumed different draws"
    return mine, torchs
