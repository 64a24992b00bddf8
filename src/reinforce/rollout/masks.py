"""Action masks in Gymnasium's convention (``info["action_mask"]``, as Taxi gives it) turned into policy inputs.

The policy takes a mask as ``[B, width]`` bool, true where an action is allowed (`mask_width`: ``n`` for
``Discrete(n)``, ``sum(nvec)`` for ``MultiDiscrete(nvec)``, the components' masks concatenated). An env gives
one mask per step in its info: an ``int8`` (or bool) array of shape ``(n,)`` for Discrete, and for
MultiDiscrete what ``MultiDiscrete.sample(mask=...)`` takes (a tuple of one array per component) or their
concatenation. The mask in the info of ``reset`` and of each step is the one of the observation returned with
it. Masks are only read for Discrete and MultiDiscrete action spaces; other spaces ignore them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import VectorEnv

from reinforce.errors import ReinforceError

INFO_KEY = "action_mask"
"""The info key of an env's action mask (Gymnasium's convention)."""


def env_name(envs: VectorEnv[Any, Any, Any]) -> str:
    """``"environment ID"`` for a vector env made from a registered id, else ``"the environment"``."""
    spec = getattr(envs, "spec", None)
    return f"environment {spec.id}" if spec is not None else "the environment"


def mask_width(action_space: spaces.Space[Any]) -> int | None:
    """Entries of one action mask for ``action_space``: ``n`` (Discrete), ``sum(nvec)`` (MultiDiscrete), else None."""
    if isinstance(action_space, spaces.Discrete):
        return int(action_space.n)
    if isinstance(action_space, spaces.MultiDiscrete):
        return int(np.asarray(action_space.nvec).sum())
    return None


def expected_mask(action_space: spaces.Space[Any]) -> str:
    """What one action mask of ``action_space`` looks like, for error messages."""
    width = mask_width(action_space)
    if isinstance(action_space, spaces.MultiDiscrete):
        sizes = ", ".join(str(int(n)) for n in np.asarray(action_space.nvec).reshape(-1))
        return f"one 0/1 array per component, of sizes ({sizes}), or their concatenation of shape ({width},)"
    return f"a 0/1 array of shape ({width},)"


def _flatten_one(value: Any, width: int) -> np.ndarray[Any, Any] | None:
    """One mask as a flat bool ``(width,)`` array (a tuple of component masks concatenated); None if it is not one."""
    try:
        if isinstance(value, (tuple, list)) and value and not np.isscalar(value[0]):
            parts = [_flatten_one(part, -1) for part in value]
            if any(part is None for part in parts):
                return None
            flat = np.concatenate([part for part in parts if part is not None])
        else:
            flat = np.asarray(value).reshape(-1)
    except (ValueError, TypeError):
        return None
    if (width >= 0 and flat.shape != (width,)) or flat.dtype.kind not in "biuf" or not np.isin(flat, (0, 1)).all():
        return None
    return flat.astype(bool)


def _describe(value: Any) -> str:
    """A mask's shape for an error message, or its type where it has none (a ragged tuple)."""
    try:
        return f"shape {np.shape(value)}"
    except ValueError:
        return f"a {type(value).__name__} of {len(value)} parts"


def _component_starts(action_space: spaces.Space[Any]) -> np.ndarray[Any, Any]:
    """Index of each component's first entry in a flat mask (one component for Discrete)."""
    if isinstance(action_space, spaces.MultiDiscrete):
        sizes = np.asarray(action_space.nvec).reshape(-1)
        return np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
    return np.zeros(1, dtype=np.intp)


def rows_without_action(masks: np.ndarray[Any, Any], action_space: spaces.Space[Any]) -> np.ndarray[Any, Any]:
    """Indices of the rows of ``[B, width]`` bool ``masks`` that allow no action (in some component)."""
    allowed = np.add.reduceat(masks, _component_starts(action_space), axis=1)
    return np.flatnonzero((allowed == 0).any(axis=1))


def info_action_masks(
    infos: dict[str, Any], action_space: spaces.Space[Any], envs: VectorEnv[Any, Any, Any]
) -> np.ndarray[Any, Any] | None:
    """The ``[N, width]`` bool masks in a vector env's ``infos``; None where it has none (or the space takes none).

    A sub-environment whose info has no mask this time (``infos["_action_mask"]`` false) allows every action.

    Raises:
        ReinforceError: a mask of the wrong shape or with values other than 0 and 1, naming the expected shape.
    """
    width = mask_width(action_space)
    if width is None or INFO_KEY not in infos:
        return None
    num_envs = envs.num_envs
    values = infos[INFO_KEY]
    present = np.asarray(infos.get(f"_{INFO_KEY}", np.ones(num_envs, dtype=bool)), dtype=bool)
    masks = np.ones((num_envs, width), dtype=bool)
    if isinstance(values, np.ndarray) and values.dtype != object and values.shape[:1] == (num_envs,):
        flat = values.reshape(num_envs, -1)
        if flat.shape[1] == width and flat.dtype.kind in "biu" and np.isin(flat, (0, 1)).all():
            masks[present] = flat[present].astype(bool)
            return masks
    for index in np.flatnonzero(present):
        row = _flatten_one(values[index], width) if len(values) == num_envs else None
        if row is None:
            given = _describe(values[index] if len(values) == num_envs else values)
            raise ReinforceError(
                f"{env_name(envs)} gave info['{INFO_KEY}'] ({given}) for {action_space}: give "
                f"{expected_mask(action_space)} per step"
            )
        masks[index] = row
    return masks


def step_action_masks(
    masks: np.ndarray[Any, Any] | None,
    acting: np.ndarray[Any, Any],
    action_space: spaces.Space[Any],
    envs: VectorEnv[Any, Any, Any],
) -> np.ndarray[Any, Any] | None:
    """The masks a step acts under: ``masks``, checked where the ``[N]`` bool ``acting`` is true.

    Steps outside the batch's episodes (the reset step of next-step autoreset, whose action is ignored, and
    the steps of idle environments, where the vector env steps them) act under their env's last mask too;
    where it allows no action (a terminal state may allow nothing) they may take any.

    Raises:
        ReinforceError: an acting environment's mask allows no action (in some component).
    """
    if masks is None:
        return None
    empty = rows_without_action(masks, action_space)
    if empty.size == 0:
        return masks
    if acting[empty].any():
        raise ReinforceError(
            f"{env_name(envs)}'s info['{INFO_KEY}'] of sub-environment {int(empty[acting[empty]][0])} allows no "
            "action (no valid action in some component): the env must allow at least one action wherever it "
            "expects one"
        )
    masks = masks.copy()
    masks[empty] = True
    return masks


def action_mask_batch(
    action_mask: Any, action_space: spaces.Space[Any], batch_size: int, batched: bool
) -> np.ndarray[Any, Any]:
    """An action mask given to `reinforce.agent.Reinforce.predict` as ``[B, width]`` bool.

    Args:
        action_mask: for one observation, one mask (Gymnasium's form, see the module docstring); for a batch,
            an array ``[B, width]`` (MultiDiscrete: the components' masks concatenated) or a sequence of ``B``
            single masks.
        action_space: the env's single action space.
        batch_size: ``B``, the number of observations.
        batched: whether the observations were a batch.

    Raises:
        ReinforceError: the space takes no mask, a mask of the wrong shape, or a row that allows no action.
    """
    width = mask_width(action_space)
    if width is None:
        raise ReinforceError(
            f"action masks apply to Discrete and MultiDiscrete action spaces, not to {action_space}: "
            "pass action_mask=None"
        )
    rows: list[np.ndarray[Any, Any] | None]
    if not batched:
        rows = [_flatten_one(action_mask, width)]
    else:
        try:
            array = np.asarray(action_mask)
        except (ValueError, TypeError):
            array = None
        if array is not None and array.dtype != object and array.shape == (batch_size, width):
            rows = [_flatten_one(row, width) for row in array]
        elif isinstance(action_mask, (tuple, list, np.ndarray)) and len(action_mask) == batch_size:
            rows = [_flatten_one(row, width) for row in action_mask]
        else:
            rows = [None]
    if any(row is None for row in rows):
        single = expected_mask(action_space)
        raise ReinforceError(
            f"action_mask ({_describe(action_mask)}) does not fit {action_space}: give {single} per observation "
            f"(for a batch of B observations, shape (B, {width}))"
        )
    masks = np.stack([row for row in rows if row is not None])
    empty = rows_without_action(masks, action_space)
    if empty.size:
        raise ReinforceError(
            f"action_mask row {int(empty[0])} allows no action (no valid action in some component): "
            "allow at least one action per observation"
        )
    return masks
