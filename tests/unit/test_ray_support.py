from __future__ import annotations

import socket
import sys

import pytest

from reinforce.errors import ReinforceError
from reinforce.ray_support import init_ray, require_ray


def test_missing_ray_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ReinforceError, match=r"reinforce\[ray\]"):
        require_ray()


@pytest.fixture
def ray_not_started(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in a fresh process: `init_ray` goes on to start or join (another test may have started Ray)."""
    import ray

    monkeypatch.setattr(ray, "is_initialized", lambda: False)


@pytest.mark.usefixtures("ray_not_started")
@pytest.mark.parametrize("address", ["nonsense", "host:port", ":6379"])
def test_malformed_address_is_refused(address: str) -> None:
    with pytest.raises(ReinforceError, match="invalid Ray address"):
        init_ray(address)


@pytest.mark.usefixtures("ray_not_started")
def test_an_address_nobody_listens_on_fails_fast() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ReinforceError, match=f"no Ray cluster answers at 127.0.0.1:{port}"):
        init_ray(f"127.0.0.1:{port}")
