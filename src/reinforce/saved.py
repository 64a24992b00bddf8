"""Agents from run directories: `load` (the last checkpoint) and `resume` (also a run without one yet)."""

from __future__ import annotations

from pathlib import Path

from reinforce.agent import Reinforce
from reinforce.config import TrainConfig
from reinforce.core.device import resolve_device
from reinforce.errors import ReinforceError
from reinforce.rollout.ray_support import check_ray_address
from reinforce.run.checkpoint import check_format, check_run_dir, read_checkpoint, require
from reinforce.run.files import CHECKPOINT_FILE, CONFIG_FILE, read_json


def _agent_from_config(path: Path, device: str | None, ray_address: str | None = None) -> Reinforce:
    """A fresh agent (update 0) built from ``path/config.json``, validated like CLI input."""
    config = read_json(path / CONFIG_FILE)
    check_format(config, path / CONFIG_FILE)
    env_id = require(config, "env_id", str, path / CONFIG_FILE)
    hyperparameters = require(config, "hyperparameters", dict, path / CONFIG_FILE)
    # bad overrides are the caller's, not config.json's
    check_ray_address(ray_address, hyperparameters.get("backend", "local"))
    if device is not None:
        resolve_device(device)
        hyperparameters = {**hyperparameters, "device": device}
    try:  # the saved hyperparameters are the whole config: nothing shipped is layered under them
        saved = TrainConfig.from_dict(hyperparameters)
        return Reinforce(env_id, config=saved, seed=config.get("seed"), ray_address=ray_address)
    except ReinforceError as exc:
        raise ReinforceError(f"{path / CONFIG_FILE} is invalid: {exc}") from None


def load(run_dir: str | Path, *, device: str | None = None, ray_address: str | None = None) -> Reinforce:
    """Rebuild the agent saved in ``run_dir`` from its config.json, checkpoint.json and state file.

    No pickle: the tensors come from safetensors (after their SHA-256 is checked against checkpoint.json) and
    the rest from JSON, all checked before use; the hyperparameters are validated exactly like CLI input. (An
    env id of the form ``module:Env-v0`` imports ``module``, exactly as ``gymnasium.make`` would.) The loaded
    agent has the policy, the optimizer state, torch's RNG state, the counters and the last 100 returns of the
    checkpoint, so training it further with the same seed gives what the uninterrupted run would have.

    Args:
        run_dir: a directory written by `Reinforce.save` or ``reinforce train``.
        device: overrides the saved ``device`` (e.g. ``"cpu"`` for a run trained on a GPU).
        ray_address: the Ray cluster a ``backend="ray"`` run trains on if it is trained further (see `Reinforce`).

    Raises:
        ReinforceError: the directory or one of its files is missing or damaged, or it has no checkpoint yet.
    """
    path = Path(run_dir)
    check_run_dir(path)
    if (path / CONFIG_FILE).is_file() and not (path / CHECKPOINT_FILE).exists():
        raise ReinforceError(
            f"{path} has no checkpoint yet (training stopped before the first one): "
            f"resume it with `reinforce train --resume {path}`"
        )
    agent = _agent_from_config(path, device, ray_address)
    try:
        checkpoint = read_checkpoint(path)
        checkpoint.restore(*agent.state())
    except BaseException:
        agent.close()
        raise
    for key, value in checkpoint.counters.items():
        setattr(agent, key, value)
    agent.train_time_s = checkpoint.train_time_s
    agent.recent_returns.extend(checkpoint.recent_returns)
    agent.checkpoint_update = agent.num_updates
    return agent


def resume(run_dir: str | Path, *, device: str | None = None, ray_address: str | None = None) -> Reinforce:
    """The agent of ``run_dir`` at its last checkpoint, ready to continue with ``learn(..., run_dir=run_dir)``.

    Like `load`, except that a run stopped before its first checkpoint (config.json but no checkpoint.json)
    restarts from update 0 with its saved config, which is where a seeded run starts anyway.

    Example:
        >>> agent = reinforce.resume("runs/cartpole")  # doctest: +SKIP
        >>> agent.learn(300_000 - agent.num_env_steps, run_dir="runs/cartpole")  # doctest: +SKIP

    Raises:
        ReinforceError: the directory or one of its files is missing or damaged.
    """
    path = Path(run_dir)
    check_run_dir(path)
    if (path / CHECKPOINT_FILE).exists():
        return load(path, device=device, ray_address=ray_address)
    return _agent_from_config(path, device, ray_address)
