from __future__ import annotations

import socket
import sys

import pytest

from reinforce.errors import ReinforceError
from reinforce.rollout.ray_support import init_ray, require_ray


@pytest.fixture(autouse=True)
def no_ray_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if no Ray ran in this process: the session's `local_ray`, if a test started it, would be reused."""
    monkeypatch.setattr(require_ray(), "is_initialized", lambda: False)


def test_missing_ray_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ReinforceError, match=r"reinforce\[ray\]"):
        require_ray()


@pytest.mark.parametrize("address", ["nonsense", "host:port", ":6379"])
def test_malformed_address_is_refused(address: str) -> None:
    with pytest.raises(ReinforceError, match="invalid Ray address"):
        init_ray(address)


def test_an_address_nobody_listens_on_fails_fast() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ReinforceError, match=f"no Ray cluster answers at 127.0.0.1:{port}"):
        init_ray(f"127.0.0.1:{port}")
