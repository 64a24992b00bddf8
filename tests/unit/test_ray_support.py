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


def test_ray_workers_refuse_a_users_network_and_a_vector_env_before_anything_starts() -> None:
    """Workers build their policy from the config and make their own envs: the agent refuses both at once."""
    import gymnasium
    from torch import nn

    from reinforce import Reinforce

    with pytest.raises(ReinforceError, match="custom networks train with backend='local'"):
        Reinforce("CartPole-v1", backend="ray", network=nn.Sequential(nn.Linear(4, 8), nn.Tanh()))
    envs = gymnasium.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync")
    try:
        with pytest.raises(ReinforceError, match="a vector env cannot be sent to Ray workers"):
            Reinforce(envs, backend="ray")
    finally:
        envs.close()
    with pytest.raises(ReinforceError, match="a Ray address is for Ray rollouts only"):
        Reinforce("CartPole-v1", ray_address="auto")
