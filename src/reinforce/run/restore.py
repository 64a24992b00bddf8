"""Loading a checkpoint's tensors back into modules, optimizers and torch's RNG, checking every value first.

Everything is checked against what the agent built from its config: module keys and shapes, optimizer param
groups (the learning rate at most the config's, the other entries equal to it) and state (finite, moments
non-negative, integral steps), finite weights and statistics, the RNG state's dtype and size. A value that fails
is reported as a damaged run directory (`ReinforceError`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from reinforce.core.optim import Optimizer
from reinforce.errors import DAMAGED, ReinforceError

RNG_KEY = "rng.torch"
"""The safetensors key of ``torch.get_rng_state()`` (a 1-D uint8 tensor)."""


def is_json_scalar(value: object) -> bool:
    """Whether ``value`` is a JSON scalar a checkpoint may hold: None, a bool, an int, a string or a finite float."""
    return value is None or isinstance(value, (bool, int, str)) or (isinstance(value, float) and math.isfinite(value))


def _damaged(path: Path, what: str) -> ReinforceError:
    return ReinforceError(f"{path} {what}: {DAMAGED}")


def restore_modules(modules: Mapping[str, nn.Module], tensors: Mapping[str, torch.Tensor], path: Path) -> None:
    """Load each module's tensors (``module.NAME.*``) with strict key and shape checks."""
    names = {key.split(".")[1] for key in tensors if key.startswith("module.") and key.count(".") >= 2}
    if names != set(modules):
        raise _damaged(path, f"holds modules {sorted(names)}, the agent has {sorted(modules)}")
    for name, module in modules.items():
        prefix = f"module.{name}."
        state = {key[len(prefix) :]: value for key, value in tensors.items() if key.startswith(prefix)}
        expected = module.state_dict()
        for key, value in state.items():
            if key in expected and (value.shape != expected[key].shape or value.dtype != expected[key].dtype):
                shape = tuple(value.shape)
                raise _damaged(path, f"has {prefix}{key} of {value.dtype} {shape}, not what the config gives")
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                raise ReinforceError(f"{path} holds non-finite values in {prefix}{key}: {DAMAGED}")
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError:
            raise ReinforceError(
                f"{path} does not match the {name} network that config.json describes: {DAMAGED}"
            ) from None


def _check_group(saved: Any, current: dict[str, Any], path: Path, name: str, lr_bounded: bool) -> dict[str, Any]:
    """A saved param group, checked against the agent's own and converted back (lists to tuples).

    ``current`` is the group of an optimizer just built from the config: every hyperparameter but ``lr`` must
    equal its value (betas, eps, alpha, ... are the config's optimizer defaults), and ``lr`` must be finite,
    > 0 and, if ``lr_bounded``, at most the configured one (a linear lr_schedule only lowers it; a user's
    scheduler may raise it).
    """
    if isinstance(saved, dict) and "initial_lr" in saved and "initial_lr" not in current:
        saved = {key: value for key, value in saved.items() if key != "initial_lr"}  # a scheduler's, not loaded
    if not isinstance(saved, dict) or set(saved) != set(current):
        raise _damaged(path, f"has param_groups of optimizer {name!r} that do not match the config")
    restored: dict[str, Any] = {}
    for key, value in current.items():
        given = saved[key]
        if isinstance(value, (list, tuple)):
            ok = isinstance(given, list) and len(given) == len(value)
            pairs = zip(given, value, strict=False) if ok else ()
            ok = ok and all(type(a) is type(b) or {type(a), type(b)} <= {int, float} for a, b in pairs)
            given = tuple(given) if isinstance(value, tuple) and ok else given
        elif isinstance(value, bool) or value is None:
            ok = type(given) is type(value) or (value is None and given is None)
        elif isinstance(value, (int, float)):
            ok = is_json_scalar(given) and isinstance(given, (int, float)) and not isinstance(given, bool)
        else:
            ok = type(given) is type(value)
        if key == "params":
            ok = given == value
        elif key == "lr":
            ok = ok and math.isfinite(given) and given > 0 and (given <= value or not lr_bounded)
        else:
            ok = ok and given == value
        if not ok:
            raise _damaged(path, f"has an invalid {key!r} in the param_groups of optimizer {name!r}")
        restored[key] = given
    return restored


NON_NEGATIVE_STATES = ("exp_avg_sq", "square_avg")
"""Optimizer states that are averages of squares, so never negative (Adam's and RMSprop's)."""


def _is_step(value: object) -> bool:
    """Whether ``value`` is an optimizer's step count: a non-negative integer value (int or integral float)."""
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
        and float(value).is_integer()
    )


def _check_state_tensor(key: str, entry: str, tensor: torch.Tensor, path: Path) -> None:
    """A `ReinforceError` unless an optimizer state tensor is finite, >= 0 if a mean square, a count if a step."""
    if not bool(torch.isfinite(tensor).all()):
        raise ReinforceError(f"{path} holds non-finite values in {key}: {DAMAGED}")
    if entry in NON_NEGATIVE_STATES and bool((tensor < 0).any()):
        raise ReinforceError(f"{path} holds negative values in {key}, a mean of squares: {DAMAGED}")
    if entry == "step" and (tensor.numel() != 1 or not _is_step(tensor.item())):
        raise ReinforceError(f"{path} has {key} that is not a non-negative integer count: {DAMAGED}")


def restore_optimizers(
    optimizers: Mapping[str, Optimizer],
    documents: Any,
    tensors: Mapping[str, torch.Tensor],
    path: Path,
    lr_bounded: bool = True,
) -> None:
    """Rebuild and load each optimizer's state dict, after checking its structure, shapes and dtypes.

    ``lr_bounded``: a saved learning rate may not exceed the optimizer's own (see `_check_group`).
    """
    if not isinstance(documents, dict) or set(documents) != set(optimizers):
        raise _damaged(path, f"does not hold the state of the optimizers {sorted(optimizers)}")
    for name, optimizer in optimizers.items():
        document = documents[name]
        current = optimizer.state_dict()
        saved_groups = document.get("param_groups") if isinstance(document, dict) else None
        saved_state = document.get("state") if isinstance(document, dict) else None
        if not isinstance(saved_groups, list) or len(saved_groups) != len(current["param_groups"]):
            raise _damaged(path, f"has no valid param_groups for optimizer {name!r}")
        if not isinstance(saved_state, dict):
            raise _damaged(path, f"has no valid state for optimizer {name!r}")
        groups = [
            _check_group(g, c, path, name, lr_bounded)
            for g, c in zip(saved_groups, current["param_groups"], strict=True)
        ]
        parameters = [p for group in optimizer.param_groups for p in group["params"]]
        state: dict[int, dict[str, Any]] = {}
        for index_text, scalars in saved_state.items():
            if not index_text.isdigit() or int(index_text) >= len(parameters) or not isinstance(scalars, dict):
                raise _damaged(path, f"has an invalid state entry {index_text!r} for optimizer {name!r}")
            if not all(is_json_scalar(value) for value in scalars.values()):
                raise _damaged(path, f"has a non-scalar state value for optimizer {name!r}")
            if "step" in scalars and not _is_step(scalars["step"]):
                raise _damaged(path, f"has an invalid step {scalars['step']!r} for optimizer {name!r}")
            state[int(index_text)] = dict(scalars)
        prefix = f"optimizer.{name}.state."
        for key, tensor in tensors.items():
            if not key.startswith(prefix):
                continue
            index_text, _, entry = key[len(prefix) :].partition(".")
            if not index_text.isdigit() or int(index_text) not in state or not entry:
                raise _damaged(path, f"has a tensor {key} for no parameter of optimizer {name!r}")
            parameter = parameters[int(index_text)]
            if tensor.shape not in (parameter.shape, torch.Size([])) or not tensor.is_floating_point():
                raise _damaged(path, f"has {key} of {tensor.dtype} {tuple(tensor.shape)}, not a state of its parameter")
            _check_state_tensor(key, entry, tensor, path)
            state[int(index_text)][entry] = tensor
        try:
            optimizer.load_state_dict({"state": state, "param_groups": groups})
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            raise _damaged(path, f"holds an optimizer state that the optimizer refuses ({exc})") from None


def restore_rng(tensors: Mapping[str, torch.Tensor], path: Path) -> None:
    """Set torch's RNG state from ``rng.torch``, after checking its dtype and size."""
    saved = tensors.get(RNG_KEY)
    current = torch.get_rng_state()
    if saved is None or saved.dtype != torch.uint8 or saved.shape != current.shape:
        raise _damaged(path, f"has no valid {RNG_KEY} (a {tuple(current.shape)} uint8 tensor)")
    try:
        torch.set_rng_state(saved)
    except RuntimeError as exc:
        raise _damaged(path, f"has an RNG state that torch refuses ({exc})") from None
