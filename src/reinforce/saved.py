"""Agents from run directories: `load` (the last checkpoint) and `resume` (also a run without one yet).

What they read is written by `reinforce.snapshots`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from reinforce.agent import Reinforce
from reinforce.config import TrainConfig, check_seed, saved_hyperparameters
from reinforce.core.build import CUSTOM_MODULES, OptimizerFactory, SchedulerFactory, user_objects
from reinforce.core.device import resolve_device
from reinforce.core.networks import Network
from reinforce.errors import DAMAGED, ReinforceError, one_line
from reinforce.imports import import_class
from reinforce.rollout.env_records import source_from_record
from reinforce.rollout.envs import EnvLike, env_source
from reinforce.rollout.ray_support import check_ray_address
from reinforce.rollout.spaces import space_from_json, space_to_json
from reinforce.run.checkpoint import check_format, check_run_dir, read_checkpoint, require
from reinforce.run.files import CHECKPOINT_FILE, CONFIG_FILE, read_json, run_path

logger = logging.getLogger("reinforce")


def _agent_from_config(
    path: Path,
    device: str | None,
    ray_address: str | None = None,
    env: EnvLike | None = None,
    modules: Mapping[str, Any] | None = None,
) -> Reinforce:
    """A fresh agent (update 0) built from ``path/config.json``, validated like CLI input.

    Its environment is ``env`` if given, else the one config.json records. Where that one cannot be made here
    (not rebuildable, or its module or dependency missing), the agent is built from the recorded spaces: it
    predicts, and says why it cannot train or evaluate (`reinforce.rollout.environments.Environments.require`).
    """
    file = path / CONFIG_FILE
    config = read_json(file)
    check_format(config, file)
    env_id = require(config, "env_id", str, file)
    hyperparameters = require(config, "hyperparameters", dict, file)
    # bad overrides are the caller's, not config.json's
    check_ray_address(ray_address, hyperparameters.get("backend", "local"))
    if device is not None:
        resolve_device(device)
        hyperparameters = {**hyperparameters, "device": device}
    record = config.get("env", {"id": env_id})  # runs of format 2 record the id alone
    if not isinstance(record, dict):
        raise ReinforceError(f"{file} is invalid: 'env' must be a mapping")
    try:  # the saved hyperparameters are the whole config: nothing shipped is layered under them
        saved = TrainConfig.from_dict(saved_hyperparameters(hyperparameters))
    except ReinforceError as exc:
        raise ReinforceError(f"{file} is invalid: {exc}") from None
    seed = config.get("seed")
    modules = _custom_modules(config, file, modules or {})
    try:
        source = env_source(env) if env is not None else source_from_record(record)
    except ReinforceError as exc:
        if env is not None or "spaces" not in config:
            raise
        return _agent_from_spaces(config, saved, seed, file, str(exc), modules)
    try:
        return Reinforce(source, config=saved, seed=seed, ray_address=ray_address, **modules)
    except ReinforceError as exc:
        if env is None and "spaces" in config and source.env_id is not None and not exc.fields:
            # the recorded environment does not build here (a missing dependency, say): predicting still works
            return _agent_from_spaces(config, saved, seed, file, str(exc), modules)
        raise ReinforceError(f"{file} is invalid: {exc}" if env is None else str(exc)) from None


def _custom_modules(config: dict[str, Any], file: Path, given: Mapping[str, Any]) -> dict[str, Any]:
    """The user's networks that the run was trained with (config.json's ``custom_modules``), given again."""
    recorded = config.get("custom_modules", [])
    if not isinstance(recorded, list) or not set(recorded) <= set(CUSTOM_MODULES):
        raise ReinforceError(f"{file} is invalid: 'custom_modules' must list some of {', '.join(CUSTOM_MODULES)}")
    supplied = {name for name in CUSTOM_MODULES if given.get(name) is not None}
    if supplied != set(recorded):
        needed = ", ".join(f"{name}=..." for name in recorded) or "none of network=, value_network=, policy="
        raise ReinforceError(
            f"the run in {file.parent} was trained with {', '.join(recorded) or 'the built-in networks'}: "
            f"pass {needed} to reinforce.load / reinforce.resume (the same architecture)"
        )
    custom = {name: given.get(name) for name in CUSTOM_MODULES}
    return custom | _custom_optimizer(config, file, given) | {"lr_scheduler": given.get("lr_scheduler")}


def _custom_optimizer(config: dict[str, Any], file: Path, given: Mapping[str, Any]) -> dict[str, Any]:
    """``optimizer`` and ``optimizer_kwargs`` for `Reinforce`: the ones given, or those config.json records.

    A recorded torch.optim.Optimizer class is imported (nothing else is: see `reinforce.imports.import_class`).
    """
    record = config.get("custom_optimizer")
    if given.get("optimizer") is not None:
        return {"optimizer": given["optimizer"], "optimizer_kwargs": given.get("optimizer_kwargs")}
    if record is None:
        return {}
    if not isinstance(record, dict) or not isinstance(record.get("kwargs", {}), dict):
        raise ReinforceError(f"{file} is invalid: 'custom_optimizer' must be a mapping with kwargs")
    if not record.get("rebuildable"):
        raise ReinforceError(
            f"the run in {file.parent} was trained with the optimizer {record.get('optimizer')!r}, which cannot be "
            "rebuilt from its run directory: pass optimizer=... (and optimizer_kwargs=...) to reinforce.load"
        )
    import torch

    optimizer_class = import_class(record.get("optimizer"), torch.optim.Optimizer, "optimizer")
    return {"optimizer": optimizer_class, "optimizer_kwargs": record.get("kwargs") or None}


def _agent_from_spaces(
    config: dict[str, Any],
    saved: TrainConfig,
    seed: object,
    file: Path,
    unavailable: str,
    modules: Mapping[str, Any],
) -> Reinforce:
    """An agent without an environment, from config.json's ``spaces``."""
    spaces = require(config, "spaces", dict, file)
    try:
        observation_space = space_from_json(spaces.get("observation"))
        action_space = space_from_json(spaces.get("action"))
        agent = Reinforce.from_spaces(
            observation_space,
            action_space,
            config=saved,
            seed=check_seed(seed),
            name=str(config["env_id"]),
            **modules,
        )
    except ReinforceError as exc:
        raise ReinforceError(f"{file} is invalid: {exc}") from None
    agent.environments.unavailable = unavailable
    # said where it matters: training or evaluating it raises `Environments.require`'s error, with this reason
    logger.info("%s: %s; the agent can predict but not train or evaluate", file, unavailable)
    return agent


def _without_bounds(document: object) -> object:
    """A space's JSON (`reinforce.rollout.spaces.space_to_json`) without its Box bounds and dtypes, at any depth."""
    if isinstance(document, dict):
        return {key: _without_bounds(value) for key, value in document.items() if key not in ("low", "high", "dtype")}
    if isinstance(document, list):
        return [_without_bounds(value) for value in document]
    return document


def _check_given_spaces(agent: Reinforce, file: Path) -> None:
    """Refuse an ``env=`` given to `load` whose spaces are not of the kinds and shapes config.json records.

    Without it, another env's network shapes did not match the state file, and the error called the run damaged.
    Box bounds and dtypes may differ (a policy evaluated on a longer corridor, or on float64 observations): the
    networks do not depend on them.
    """
    recorded = read_json(file).get("spaces")
    given = {"observation": space_to_json(agent.env_observation_space), "action": space_to_json(agent.action_space)}
    if not isinstance(recorded, dict) or _without_bounds(recorded) == _without_bounds(given):
        return
    try:
        trained = f"{one_line(space_from_json(recorded.get('observation')))} -> "
        trained += one_line(space_from_json(recorded.get("action")))
    except ReinforceError:
        return  # a damaged record: the checkpoint's own checks judge the run
    raise ReinforceError(
        f"the env given to load has the spaces {one_line(agent.env_observation_space)} -> "
        f"{one_line(agent.action_space)}, and the run in {file.parent} was trained on {trained}: pass an env with "
        "the run's spaces (or none: the recorded one)"
    )


def load(
    run_dir: str | Path,
    *,
    env: EnvLike | None = None,
    device: str | None = None,
    ray_address: str | None = None,
    network: Network | None = None,
    value_network: Network | None = None,
    policy: nn.Module | None = None,
    optimizer: OptimizerFactory | None = None,
    optimizer_kwargs: Mapping[str, Any] | None = None,
    lr_scheduler: SchedulerFactory | None = None,
) -> Reinforce:
    """Rebuild the agent saved in ``run_dir`` from its config.json, checkpoint.json and state file.

    No pickle: the tensors come from safetensors (after their SHA-256 is checked against checkpoint.json) and
    the rest from JSON, all checked before use; the hyperparameters are validated exactly like CLI input. (An
    env id of the form ``module:Env-v0`` imports ``module``, exactly as ``gymnasium.make`` would.) The loaded
    agent has the policy, the optimizer state, torch's RNG state, the counters and the last 100 returns of the
    checkpoint, so training it further with the same seed gives what the uninterrupted run would have.

    The environment is rebuilt from config.json where it can be (a registered id with its env_kwargs, an
    importable ``gymnasium.Env`` class; only classes of ``gymnasium.Env`` and ``gymnasium.Wrapper`` are
    imported from a run directory, never functions). Where it cannot, ``env=`` supplies one; without it the
    agent is built from the spaces config.json records and can `Reinforce.predict`, save and export, but
    not train or evaluate (a warning says why).

    Args:
        run_dir: a directory written by `Reinforce.save` or ``reinforce train``.
        env: the environment to evaluate, train and resume on (any form `Reinforce` takes), instead of the
            recorded one; its spaces must be the run's.
        network: the run's custom network (`Reinforce`'s ``network``), needed when it was trained with one
            (the weights come from the checkpoint).
        value_network: likewise, the run's custom value network.
        policy: likewise, the run's custom whole policy.
        optimizer: the run's optimizer class or factory, where config.json cannot rebuild it (a function, a
            class that is not importable); an importable torch.optim class is rebuilt with its kwargs.
        optimizer_kwargs: its keyword arguments.
        lr_scheduler: the run's scheduler factory: without it the agent loads (predicts, evaluates) but
            does not train further.
        device: overrides the saved ``device`` (e.g. ``"cpu"`` for a run trained on a GPU).
        ray_address: the Ray cluster a ``backend="ray"`` run trains on if it is trained further (see `Reinforce`).

    Raises:
        ReinforceError: the directory or one of its files is missing or damaged, or it has no checkpoint yet.

    Example:
        >>> agent = reinforce.load("runs/cartpole")  # doctest: +SKIP
        >>> agent = reinforce.load("runs/mine", env=lambda: MyEnv(size=12), network=my_body)  # doctest: +SKIP
        >>> action, _ = agent.predict(observation, deterministic=True)  # doctest: +SKIP
    """
    path = run_path(run_dir)
    check_run_dir(path)
    if (path / CONFIG_FILE).is_file() and not (path / CHECKPOINT_FILE).exists():
        raise ReinforceError(
            f"{path} has no checkpoint yet (training stopped before the first one): "
            f"resume it with `reinforce train --resume {path}`"
        )
    custom = user_objects(network, value_network, policy, optimizer, optimizer_kwargs, lr_scheduler)
    agent = _agent_from_config(path, device, ray_address, env, custom)
    try:
        if env is not None:
            _check_given_spaces(agent, path / CONFIG_FILE)
        checkpoint = read_checkpoint(path)
        unbounded = agent.lr_scheduler is not None or checkpoint.lr_scheduler is not None
        checkpoint.restore(*agent.state(), lr_bounded=not unbounded)
        _restore_scheduler(agent, checkpoint.lr_scheduler, checkpoint.file)
    except BaseException:
        agent.close()
        raise
    for key, value in checkpoint.counters.items():
        setattr(agent, key, value)
    agent.train_time_s = checkpoint.train_time_s
    agent.recent_returns.extend(checkpoint.recent_returns)
    agent.checkpoint_update = agent.num_updates
    return agent


def _restore_scheduler(agent: Reinforce, state: Any, file: Path) -> None:
    """Load the checkpoint's scheduler state into the agent's scheduler, or note that training needs one."""
    if state is None:
        if agent.lr_scheduler is not None:
            raise ReinforceError(f"{file} has no lr_scheduler state: the run was trained without lr_scheduler=")
        return
    if agent.lr_scheduler is None:
        agent.needs_for_training = "the run's lr_scheduler (pass lr_scheduler= to reinforce.load or resume)"
        return
    fresh = agent.lr_scheduler.state_dict()
    if not isinstance(state, dict) or not set(state) <= set(fresh):
        raise ReinforceError(f"{file} has an invalid lr_scheduler state: {DAMAGED}")
    try:
        agent.lr_scheduler.load_state_dict(state)
        agent.lr_scheduler.get_last_lr()
    except Exception as exc:
        raise ReinforceError(f"{file} has an lr_scheduler state the scheduler refuses ({exc}): {DAMAGED}") from None


def resume(
    run_dir: str | Path,
    *,
    env: EnvLike | None = None,
    device: str | None = None,
    ray_address: str | None = None,
    network: Network | None = None,
    value_network: Network | None = None,
    policy: nn.Module | None = None,
    optimizer: OptimizerFactory | None = None,
    optimizer_kwargs: Mapping[str, Any] | None = None,
    lr_scheduler: SchedulerFactory | None = None,
) -> Reinforce:
    """The agent of ``run_dir`` at its last checkpoint, ready to continue with ``learn(..., run_dir=run_dir)``.

    Like `load`, except that a run stopped before its first checkpoint (config.json but no checkpoint.json)
    restarts from update 0 with its saved config, which is where a seeded run starts anyway.

    Example:
        >>> agent = reinforce.resume("runs/cartpole")  # doctest: +SKIP
        >>> agent.learn(300_000 - agent.num_env_steps, run_dir="runs/cartpole")  # doctest: +SKIP

    Raises:
        ReinforceError: the directory or one of its files is missing or damaged.
    """
    path = run_path(run_dir)
    check_run_dir(path)
    if (path / CHECKPOINT_FILE).exists():
        return load(
            path,
            env=env,
            device=device,
            ray_address=ray_address,
            network=network,
            value_network=value_network,
            policy=policy,
            optimizer=optimizer,
            optimizer_kwargs=optimizer_kwargs,
            lr_scheduler=lr_scheduler,
        )
    custom = user_objects(network, value_network, policy, optimizer, optimizer_kwargs, lr_scheduler)
    return _agent_from_config(path, device, ray_address, env, custom)
