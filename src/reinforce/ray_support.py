"""Ray, the optional engine of distributed rollouts and sweeps: imported lazily, started or joined once."""

from __future__ import annotations

import socket
from types import ModuleType

from reinforce.errors import ReinforceError

RAY_EXTRA_HINT = "install the ray extra: pip install -c constraints.txt 'reinforce[ray]'"
"""How to get Ray, named by every error about it missing."""

CONNECT_TIMEOUT_S = 5.0
"""How long `init_ray` waits for a ``host:port`` address to accept a connection before giving up."""


def require_ray() -> ModuleType:
    """The ``ray`` module, or a `ReinforceError` naming the extra that provides it."""
    try:
        import ray
    except ImportError:
        raise ReinforceError(f"Ray is not installed: {RAY_EXTRA_HINT}") from None
    return ray


def _check_reachable(address: str) -> None:
    """Fail fast on a ``host:port`` nobody listens on (``ray.init`` would retry for minutes)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ReinforceError(
            f"invalid Ray address {address!r}: use HOST:PORT of the head node (as `ray start --head` prints) or auto"
        )
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise ReinforceError(
            f"no Ray cluster answers at {address} ({exc.strerror or exc}): start one with `ray start --head` "
            "or check the address"
        ) from None


def init_ray(address: str | None = None, *, num_cpus: int | None = None) -> ModuleType:
    """Join the Ray cluster at ``address``, or start a local one; a Ray already running here is reused.

    Args:
        address: ``HOST:PORT`` of a cluster's head node, ``"auto"`` for the one ``ray start`` left running on
            this machine, or None to start a local Ray with this machine's CPUs (or ``num_cpus``).
        num_cpus: CPUs a local Ray offers (None: all); ignored when joining a cluster.

    Returns:
        The ``ray`` module.

    Raises:
        ReinforceError: Ray is not installed, the address is malformed, or no cluster answers there.
    """
    ray = require_ray()
    if ray.is_initialized():
        return ray
    if address is not None and address != "auto" and not address.startswith("ray://"):
        _check_reachable(address)
    try:
        if address is None:
            ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level="ERROR")
        else:
            ray.init(address=address, logging_level="ERROR")
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ReinforceError(f"cannot start or join Ray ({first_line}): check --address, or omit it") from None
    return ray
