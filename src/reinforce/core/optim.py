"""Adam, SGD and RMSprop: torch's functional optimizers behind a small holder of torch.optim's state.

`EagerOptimizer` keeps ``param_groups`` and per-parameter ``state`` in torch.optim's layout and hands them to
torch's functional API (``torch.optim.adam.adam``, ``torch.optim.sgd.sgd``, ``torch.optim.rmsprop.rmsprop``)
with the arguments torch.optim's own ``step`` passes, so it takes torch.optim's steps bit for bit
(tests/unit/test_optimizers.py checks it over many steps) and checkpoints written with either load into the
other. torch.optim's optimizer classes import ``torch._dynamo`` on their first call (their methods are wrapped
in ``torch._disable_dynamo``); the functional API, called eagerly, does not (docs/benchmarks.md, "Optimizer
start-up", has the measurement).

It supports what `reinforce.config.TrainConfig` offers: a learning rate, every other hyperparameter at
torch.optim's default (Adam's betas (0.9, 0.999) and eps 1e-8, RMSprop's alpha 0.99 and eps 1e-8; no weight
decay, momentum, amsgrad, ...). A learning-rate schedule sets ``param_groups[i]["lr"]`` between steps, as
torch.optim's schedulers do. A user's own optimizer (a torch.optim class or a factory) and learning-rate
scheduler replace them where given (`reinforce.core.build`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch
from torch import Tensor, nn
from torch.optim.adam import adam
from torch.optim.rmsprop import rmsprop
from torch.optim.sgd import sgd

AlgorithmName = Literal["adam", "sgd", "rmsprop"]


class Optimizer(Protocol):
    """What reinforce needs of an optimizer: torch.optim's optimizers and `EagerOptimizer` both have it."""

    param_groups: list[dict[str, Any]]

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients of the parameters (set them to None, or to zero)."""

    def step(self) -> None:
        """Update the parameters from their gradients."""

    def state_dict(self) -> dict[str, Any]:
        """``{"state": {index: {name: tensor}}, "param_groups": [...]}`` in torch.optim's layout."""
        ...

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Take over a `state_dict` of an optimizer of the same kind over the same parameters."""


def _adam_step(
    params: list[Tensor], grads: list[Tensor], states: list[dict[str, Tensor]], group: dict[str, Any]
) -> None:
    """``torch.optim.Adam.step`` for one group: torch's functional `adam` with the group's entries."""
    beta1, beta2 = group["betas"]
    adam(
        params,
        grads,
        [state["exp_avg"] for state in states],
        [state["exp_avg_sq"] for state in states],
        [],
        [state["step"] for state in states],
        amsgrad=group["amsgrad"],
        has_complex=_has_complex(params),
        beta1=beta1,
        beta2=beta2,
        lr=group["lr"],
        weight_decay=group["weight_decay"],
        eps=group["eps"],
        maximize=group["maximize"],
        foreach=group["foreach"],
        capturable=group["capturable"],
        differentiable=group["differentiable"],
        fused=group["fused"],
        decoupled_weight_decay=group["decoupled_weight_decay"],
    )


def _sgd_step(
    params: list[Tensor], grads: list[Tensor], states: list[dict[str, Tensor]], group: dict[str, Any]
) -> None:
    """``torch.optim.SGD.step`` for one group without momentum: torch's functional `sgd` with the group's entries."""
    sgd(
        params,
        grads,
        [],
        weight_decay=group["weight_decay"],
        momentum=group["momentum"],
        lr=group["lr"],
        dampening=group["dampening"],
        nesterov=group["nesterov"],
        maximize=group["maximize"],
        has_sparse_grad=any(grad.is_sparse for grad in grads),
        foreach=group["foreach"],
        fused=group["fused"],
    )


def _rmsprop_step(
    params: list[Tensor], grads: list[Tensor], states: list[dict[str, Tensor]], group: dict[str, Any]
) -> None:
    """``torch.optim.RMSprop.step`` for one group: torch's functional `rmsprop` with the group's entries."""
    rmsprop(
        params,
        grads,
        [state["square_avg"] for state in states],
        [],
        [],
        [state["step"] for state in states],
        lr=group["lr"],
        alpha=group["alpha"],
        eps=group["eps"],
        weight_decay=group["weight_decay"],
        momentum=group["momentum"],
        centered=group["centered"],
        foreach=group["foreach"],
        maximize=group["maximize"],
        differentiable=group["differentiable"],
        capturable=group["capturable"],
        has_complex=_has_complex(params),
    )


def _has_complex(params: list[Tensor]) -> bool:
    return any(torch.is_complex(parameter) for parameter in params)


def _scalar_dtype() -> torch.dtype:
    """The dtype of torch.optim's ``step`` counters (float64 only when that is torch's default dtype)."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


@dataclass(frozen=True)
class _Rule:
    """One algorithm: its param-group entries as torch.optim writes them, its state and its step."""

    defaults: dict[str, Any]
    """torch.optim's param-group entries and defaults (same keys, so that state dicts are interchangeable);
    only ``lr`` may differ from them."""
    moments: tuple[str, ...]
    """Per-parameter state tensors shaped like the parameter (with a ``step`` counter when not empty)."""
    step: Callable[[list[Tensor], list[Tensor], list[dict[str, Tensor]], dict[str, Any]], None]
    """One group's step: the parameters that have a gradient, their gradients, their states, the group."""


RULES: dict[str, _Rule] = {
    "adam": _Rule(
        defaults={
            "lr": 1e-3,
            "betas": (0.9, 0.999),
            "eps": 1e-8,
            "weight_decay": 0,
            "amsgrad": False,
            "maximize": False,
            "foreach": None,
            "capturable": False,
            "differentiable": False,
            "fused": None,
            "decoupled_weight_decay": False,
        },
        moments=("exp_avg", "exp_avg_sq"),
        step=_adam_step,
    ),
    "sgd": _Rule(
        defaults={
            "lr": 1e-3,
            "momentum": 0,
            "dampening": 0,
            "weight_decay": 0,
            "nesterov": False,
            "maximize": False,
            "foreach": None,
            "differentiable": False,
            "fused": None,
        },
        moments=(),
        step=_sgd_step,
    ),
    "rmsprop": _Rule(
        defaults={
            "lr": 1e-2,
            "momentum": 0,
            "alpha": 0.99,
            "eps": 1e-8,
            "centered": False,
            "weight_decay": 0,
            "capturable": False,
            "foreach": None,
            "maximize": False,
            "differentiable": False,
        },
        moments=("square_avg",),
        step=_rmsprop_step,
    ),
}
"""The algorithms of `EagerOptimizer`, by the names of ``TrainConfig.optimizer``."""


class EagerOptimizer:
    """torch.optim's Adam, SGD or RMSprop step (torch's functional API), with torch.optim's state dict.

    Example:
        >>> layer = nn.Linear(4, 2)
        >>> optimizer = EagerOptimizer(layer.parameters(), "adam", lr=0.03)
        >>> layer(torch.ones(4)).sum().backward()
        >>> optimizer.step()
        >>> sorted(optimizer.state_dict()["state"][0])
        ['exp_avg', 'exp_avg_sq', 'step']

    Args:
        parameters: the parameters to update (one group).
        algorithm: ``"adam"``, ``"sgd"`` (no momentum) or ``"rmsprop"``.
        lr: the learning rate (default: torch.optim's for the algorithm); a schedule changes it between steps
            by setting ``param_groups[i]["lr"]``.

    Raises:
        ValueError: no parameters, an unknown algorithm, or a learning rate <= 0.
    """

    def __init__(self, parameters: Iterable[nn.Parameter], algorithm: AlgorithmName, lr: float | None = None) -> None:
        if algorithm not in RULES:
            raise ValueError(f"unknown algorithm {algorithm!r}: use one of {', '.join(RULES)}")
        self.algorithm = algorithm
        self._rule = RULES[algorithm]
        params = list(parameters)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        group = {**self._rule.defaults, "params": params}
        if lr is not None:
            if not lr > 0:
                raise ValueError(f"invalid learning rate {lr!r}: it must be > 0")
            group["lr"] = lr
        self.param_groups: list[dict[str, Any]] = [group]
        self.state: dict[Tensor, dict[str, Tensor]] = {}

    def _parameters(self) -> list[Tensor]:
        return [parameter for group in self.param_groups for parameter in group["params"]]

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients: set them to None (the default), or to zero in place."""
        for parameter in self._parameters():
            if parameter.grad is None:
                continue
            if set_to_none:
                parameter.grad = None
            else:
                parameter.grad.detach_().zero_()

    def step(self) -> None:
        """One step of every parameter that has a gradient; state is created at a parameter's first step."""
        with torch.no_grad():
            for group in self.param_groups:
                params = [parameter for parameter in group["params"] if parameter.grad is not None]
                if params:
                    states = [self._state(parameter) for parameter in params]
                    self._rule.step(params, [parameter.grad for parameter in params], states, group)

    def _state(self, parameter: Tensor) -> dict[str, Tensor]:
        """The parameter's state, created at its first step (and kept unless empty, as torch.optim does)."""
        state = self.state.get(parameter)
        if state is None:
            state = self._initial_state(parameter)
            if state:
                self.state[parameter] = state
        return state

    def _initial_state(self, parameter: Tensor) -> dict[str, Tensor]:
        if not self._rule.moments:
            return {}
        state = {"step": torch.tensor(0.0, dtype=_scalar_dtype())}
        for name in self._rule.moments:
            state[name] = torch.zeros_like(parameter, memory_format=torch.preserve_format)
        return state

    def state_dict(self) -> dict[str, Any]:
        """torch.optim's layout: per-parameter state by index (the tensors themselves) and the param groups."""
        index = {id(parameter): number for number, parameter in enumerate(self._parameters())}
        groups = [
            {
                **{key: value for key, value in group.items() if key != "params"},
                "params": [index[id(p)] for p in group["params"]],
            }
            for group in self.param_groups
        ]
        state = {index[id(parameter)]: dict(entry) for parameter, entry in self.state.items()}
        return {"state": dict(sorted(state.items())), "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Take over a `state_dict` (this class's or the matching torch.optim optimizer's) over the same parameters.

        Tensors are moved to their parameter's device (and, except ``step``, dtype), as torch.optim does.

        Raises:
            ValueError: other groups or parameter counts, options this implementation lacks, missing or
                unknown state entries, or state tensors of the wrong shape.
        """
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        groups = []
        for saved, group in zip(saved_groups, self.param_groups, strict=True):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError("loaded state dict contains a parameter group that doesn't match the size of ours")
            if set(saved) != set(group):
                raise ValueError(f"loaded param group has the entries {sorted(saved)}, not {sorted(group)}")
            differ = [key for key in saved if key not in ("lr", "params") and saved[key] != self._rule.defaults[key]]
            if differ:
                raise ValueError(f"loaded param group sets {differ}, which this {self.algorithm} does not support")
            groups.append({**saved, "params": group["params"]})
        parameters = dict(
            zip(
                (index for saved in saved_groups for index in saved["params"]),
                self._parameters(),
                strict=True,
            )
        )
        expected = {"step", *self._rule.moments} if self._rule.moments else set()
        state: dict[Tensor, dict[str, Tensor]] = {}
        for index, entry in state_dict["state"].items():
            if index not in parameters:
                raise ValueError(f"loaded state has an entry {index!r} for no parameter")
            parameter = parameters[index]
            if set(entry) != expected:
                raise ValueError(f"loaded state {index} has the entries {sorted(entry)}, not {sorted(expected)}")
            if not expected:
                continue
            loaded = {"step": _tensor(entry["step"], index, "step", torch.Size([]))}
            for name in self._rule.moments:
                value = _tensor(entry[name], index, name, parameter.shape)
                loaded[name] = value.to(dtype=parameter.dtype, device=parameter.device)
            state[parameter] = loaded
        self.param_groups = groups
        self.state = state


def _tensor(value: object, index: object, name: str, shape: torch.Size) -> Tensor:
    if not isinstance(value, Tensor) or value.shape != shape:
        raise ValueError(f"loaded state {index} has a {name} that is not a tensor of shape {tuple(shape)}")
    return value


def torch_optimizer_class(algorithm: AlgorithmName) -> type[torch.optim.Optimizer]:
    """torch.optim's class for ``algorithm``: what a torch LR scheduler needs (it refuses `EagerOptimizer`)."""
    classes: dict[str, type[torch.optim.Optimizer]] = {
        "adam": torch.optim.Adam,
        "sgd": torch.optim.SGD,
        "rmsprop": torch.optim.RMSprop,
    }
    return classes[algorithm]
