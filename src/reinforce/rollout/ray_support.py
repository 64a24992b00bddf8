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


def _host_and_port(address: str) -> tuple[str, int]:
    """``(host, port)`` of a ``HOST:PORT`` address, or a `ReinforceError` naming the expected form."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ReinforceError(
            f"invalid Ray address {address!r}: use HOST:PORT of the head node (as `ray start --head` prints) or auto"
        )
    return host, int(port)


def _check_reachable(host: str, port: int) -> None:
    """Fail fast on a ``host:port`` nobody listens on (``ray.init`` would retry for minutes)."""
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise ReinforceError(
            f"no Ray cluster answers at {host}:{port} ({exc.strerror or exc}): start one with `ray start --head` "
            "or check the address"
        ) from None


def init_ray(address: str | None = None, *, num_cpus: int | None = None) -> ModuleType:
    """Join the Ray cluster at ``address``, or start a local one; a Ray already running here is reused.

    Args:
        address: ``HOST:PORT`` of a cluster's head node, ``"auto"`` for the one ``ray start`` left running on
            this machine (or ``$RAY_ADDRESS``), or None to start a local Ray with this machine's CPUs (or
            ``num_cpus``), whatever ``$RAY_ADDRESS`` says.
        num_cpus: CPUs a local Ray offers (None: all); ignored when joining a cluster.

    Returns:
        The ``ray`` module. Ray stays up until the process ends (or ``ray.shutdown()``).

    Raises:
        ReinforceError: Ray is not installed, the address is malformed, no cluster answers there, or this
            process is already connected to another cluster.
    """
    ray = require_ray()
    explicit = address is not None and address != "auto" and not address.startswith("ray://")
    if explicit:
        assert address is not None
        host, port = _host_and_port(address)
    if ray.is_initialized():
        current = ray.get_runtime_context().gcs_address
        # compared by port: the same head node may be named by another host name or IP than Ray reports
        if explicit and _host_and_port(current)[1] != port:
            raise ReinforceError(
                f"this process is already connected to the Ray cluster at {current}, not {address}: use one "
                "cluster per process (drop the address, or run in a new process)"
            )
        return ray
    if explicit:
        _check_reachable(host, port)
    try:
        if address is None:
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, logging_level="ERROR")
        else:
            ray.init(address=address, logging_level="ERROR")
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ReinforceError(
            f"cannot start or join Ray ({first_line}): check ray_address, or omit it", fields=("ray_address",)
        ) from None
    return ray


def check_ray_address(address: str | None, backend: str) -> None:
    """Refuse a Ray cluster address for an agent that collects locally (it would be ignored)."""
    if address is not None and backend != "ray":
        raise ReinforceError(
            "a Ray address is for Ray rollouts only: set backend='ray', or drop ray_address",
            fields=("backend", "ray_address"),
        )


def check_backend(backend: str, address: str | None, *, custom_modules: bool, vector_env: bool) -> None:
    """Refuse what Ray workers cannot take: a Ray address without them, the user's own modules, a vector env.

    Args:
        backend: the config's ``backend``.
        address: the agent's ``ray_address``.
        custom_modules: the user gave a network, value network or policy (workers build theirs from the config).
        vector_env: the environment is a ready vector env (it cannot be sent to workers).
    """
    check_ray_address(address, backend)
    if backend == "local":
        return
    if custom_modules:
        raise ReinforceError(
            "custom networks train with backend='local' (Ray workers build the policy from the config)",
            fields=("backend",),
        )
    if vector_env:
        raise ReinforceError(
            "a vector env cannot be sent to Ray workers: pass an id or a callable with backend='ray'",
            fields=("backend",),
        )
