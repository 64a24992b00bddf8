"""Building what learns from a config and a user's objects: the policy, its optimizer and scheduler, the baseline.

`build_learner` is the one place that turns a `reinforce.config.TrainConfig` and the objects a user may pass to
`reinforce.Reinforce` (`UserObjects`: networks, a whole policy, an optimizer class or factory with its kwargs,
an LR scheduler) into the modules and optimizer an agent trains, checking that they fit together. It also says
how config.json records a user's optimizer (`optimizer_record`) and what of a scheduler's state JSON can hold
(`json_state`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

import gymnasium
import torch
from torch import nn

from reinforce.config import TrainConfig
from reinforce.core.baselines import Baseline, make_baseline
from reinforce.core.networks import Network
from reinforce.core.optim import AlgorithmName, EagerOptimizer, Optimizer, torch_optimizer_class
from reinforce.core.policies import Policy, module_policy, policy_from_config
from reinforce.errors import ReinforceError
from reinforce.imports import first_line, import_path

CUSTOM_MODULES = ("network", "value_network", "policy")
"""The keyword arguments of `reinforce.Reinforce` that hold a user's networks (config.json's ``custom_modules``)."""

OptimizerFactory = Callable[..., Any]
"""A torch.optim class, or a function taking ``(parameters, lr=..., **optimizer_kwargs)`` and returning one."""
SchedulerFactory = Callable[[Any], Any]
"""A function from the policy's optimizer to a ``torch.optim.lr_scheduler`` scheduler (stepped once per update)."""


def make_optimizer(
    parameters: Iterable[nn.Parameter],
    algorithm: AlgorithmName,
    lr: float,
    factory: OptimizerFactory | None = None,
    kwargs: Mapping[str, Any] | None = None,
) -> Optimizer:
    """The policy's optimizer: `EagerOptimizer` of ``algorithm``, or a user's ``factory`` with ``kwargs``.

    Raises:
        ReinforceError: ``kwargs`` without a factory, ``lr`` inside ``kwargs``, or a factory that fails or
            returns something that is not an optimizer.
    """
    if factory is None:
        if kwargs:
            raise ReinforceError(
                "optimizer_kwargs go with optimizer= a torch.optim class or factory: pass e.g. "
                "optimizer=torch.optim.Adam, optimizer_kwargs={'betas': (0.9, 0.99)}"
            )
        return EagerOptimizer(parameters, algorithm, lr=lr)
    kwargs = dict(kwargs or {})
    if "lr" in kwargs:
        raise ReinforceError("give the learning rate as lr=, not in optimizer_kwargs", fields=("lr",))
    name = getattr(factory, "__qualname__", repr(factory))
    try:
        optimizer = factory(list(parameters), lr=lr, **kwargs)
    except Exception as exc:
        raise ReinforceError(
            f"optimizer {name} could not be made ({first_line(exc)}): check optimizer_kwargs"
        ) from None
    if not all(hasattr(optimizer, name) for name in ("param_groups", "step", "zero_grad", "state_dict")):
        raise ReinforceError(f"optimizer {name} returned {type(optimizer).__name__}, not a torch.optim optimizer")
    return optimizer  # type: ignore[no-any-return]  # checked to have what `Optimizer` needs


def make_scheduler(factory: SchedulerFactory, optimizer: Optimizer) -> Any:
    """``factory(optimizer)``: a torch LR scheduler, checked to have ``step`` and a state dict.

    Raises:
        ReinforceError: the factory fails or returns something else.
    """
    try:
        scheduler = factory(optimizer)
    except Exception as exc:
        raise ReinforceError(
            f"lr_scheduler could not be made ({first_line(exc)}): it is called with the optimizer"
        ) from None
    if not all(hasattr(scheduler, name) for name in ("step", "state_dict", "load_state_dict")):
        raise ReinforceError(
            f"lr_scheduler returned {type(scheduler).__name__}, not a torch.optim.lr_scheduler scheduler"
        )
    return scheduler


def check_learning_rates(optimizer: Optimizer, what: str) -> None:
    """A `ReinforceError` unless every learning rate of ``optimizer`` is finite and > 0 (``what`` set them)."""
    for group in optimizer.param_groups:
        lr = group["lr"]
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
            raise ReinforceError(f"{what} set the learning rate to {lr!r}: it must stay finite and > 0")


def split_optimizer(values: dict[str, Any]) -> tuple[dict[str, Any], OptimizerFactory | None]:
    """``values`` without an ``optimizer`` that is a class or factory (not a name), and that factory (or None)."""
    given = values.get("optimizer")
    if given is None or isinstance(given, str) or not callable(given):
        return values, None
    return {key: value for key, value in values.items() if key != "optimizer"}, given


def optimizer_record(factory: OptimizerFactory | None, kwargs: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """How config.json records a user's optimizer; None for the built-in optimizers.

    Its import path (a torch.optim.Optimizer class is rebuilt from it) or its name, and its kwargs as JSON.
    """
    if factory is None:
        return None
    path = import_path(factory)
    rebuildable = path is not None and isinstance(factory, type) and issubclass(factory, torch.optim.Optimizer)
    state = json_state(dict(kwargs or {}))
    return {
        "optimizer": path or getattr(factory, "__qualname__", repr(factory)),
        "kwargs": state,
        "rebuildable": rebuildable and state == dict(kwargs or {}),
    }


def json_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """``state`` with what JSON cannot hold left out (a scheduler's functions, tensors); tuples become lists."""

    def plain(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            items = [plain(item) for item in value]
            return items if all(item is not _DROP for item in items) else _DROP
        if isinstance(value, dict):
            return {str(k): v for k, v in ((k, plain(v)) for k, v in value.items()) if v is not _DROP}
        if value is None or isinstance(value, (bool, int, str)):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else _DROP
        return _DROP

    return {key: value for key, value in ((key, plain(value)) for key, value in state.items()) if value is not _DROP}


_DROP = object()


class UserObjects(TypedDict, total=False):
    """The objects of his own a user may give `reinforce.Reinforce`, `reinforce.load`, `reinforce.resume`."""

    network: Network | None
    value_network: Network | None
    policy: nn.Module | None
    optimizer: OptimizerFactory | None
    optimizer_kwargs: Mapping[str, Any] | None
    lr_scheduler: SchedulerFactory | None


def user_objects(
    network: Network | None = None,
    value_network: Network | None = None,
    policy: nn.Module | None = None,
    optimizer: OptimizerFactory | None = None,
    optimizer_kwargs: Mapping[str, Any] | None = None,
    lr_scheduler: SchedulerFactory | None = None,
) -> UserObjects:
    """The `UserObjects` of these keyword arguments (as `reinforce.Reinforce` and `reinforce.load` take them)."""
    return UserObjects(
        network=network,
        value_network=value_network,
        policy=policy,
        optimizer=optimizer,
        optimizer_kwargs=optimizer_kwargs,
        lr_scheduler=lr_scheduler,
    )


@dataclass
class Learner:
    """What an agent trains: the policy, its optimizer and LR scheduler, the baseline; what config.json records."""

    policy: Policy
    optimizer: Optimizer
    lr_scheduler: Any
    """The user's learning-rate scheduler of the policy's optimizer (stepped after every update), or None."""
    baseline: Baseline
    custom_modules: list[str]
    """Which of ``network``, ``value_network`` and ``policy`` the user gave (config.json records the names)."""
    optimizer_record: dict[str, Any] | None
    """How config.json records a user's optimizer (`optimizer_record`; None for the built-in ones)."""


def build_learner(
    config: TrainConfig,
    observation_space: gymnasium.Space[Any],
    action_space: gymnasium.Space[Any],
    user: UserObjects,
    device: torch.device,
) -> Learner:
    """The policy of ``config`` (or the user's network or whole policy), its optimizer, scheduler and baseline.

    ``observation_space`` is the policy's (flattened) one. Draws the initial weights from torch's global
    generator, policy first, so a seeded agent starts from the same weights as before this split.

    Raises:
        ReinforceError: objects that do not fit together (a whole policy with ``network=`` or observation
            normalisation, ``value_network=`` without the value baseline, an ``lr_scheduler`` beside an
            ``lr_schedule``) or that fail to build.
    """
    custom_modules = sorted(name for name in CUSTOM_MODULES if user.get(name) is not None)
    whole_policy = user.get("policy")
    if whole_policy is not None:
        if user.get("network") is not None or config.normalize_observations:
            raise ReinforceError(
                "a whole policy takes raw observations: give network= or policy=, not both, and set "
                "normalize_observations=False",
                fields=("normalize_observations",),
            )
        policy: Policy = module_policy(whole_policy, observation_space, action_space)
    else:
        policy = policy_from_config(config, observation_space, action_space, user.get("network"))
    if user.get("value_network") is not None and config.baseline != "value":
        raise ReinforceError(
            f"value_network is the network of baseline='value', and baseline={config.baseline!r}: set baseline='value'",
            fields=("baseline",),
        )
    policy.to(device)
    factory = user.get("optimizer")
    if factory is None and user.get("lr_scheduler") is not None:  # torch's schedulers take torch's classes
        factory = torch_optimizer_class(config.optimizer)
    kwargs = user.get("optimizer_kwargs")
    optimizer = make_optimizer(policy.parameters(), config.optimizer, config.lr, factory, kwargs)
    scheduler_factory = user.get("lr_scheduler")
    lr_scheduler = None
    if scheduler_factory is not None:
        if config.lr_schedule != "constant":
            raise ReinforceError(
                f"lr_scheduler and lr_schedule={config.lr_schedule!r} both set the learning rate: "
                "set lr_schedule='constant'",
                fields=("lr_schedule",),
            )
        lr_scheduler = make_scheduler(scheduler_factory, optimizer)
    # one set of running statistics: a value network reads them from the policy's encoder
    shared = policy.encoder if config.normalize_observations else None
    baseline = make_baseline(
        config, observation_space, shared_encoder=shared, device=device, network=user.get("value_network")
    )
    return Learner(policy, optimizer, lr_scheduler, baseline, custom_modules, optimizer_record(factory, kwargs))
