"""Gymnasium spaces to JSON and back, so that a run directory says what its policy takes and returns.

A run's config.json stores the observation and action spaces of its environment (`space_to_json`), so that
`reinforce.load` can rebuild an agent that predicts even where the environment cannot be made
(`space_from_json`). Only the spaces reinforce handles are written; reading checks every value and bounds
every size, since a run directory may come from anywhere.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces

from reinforce.errors import ReinforceError

MAX_SPACE_SIZE = 10**7
"""The most elements a stored space's shape (or ``n``) may have."""
MAX_SPACE_DEPTH = 8
"""The deepest nesting of Dict and Tuple spaces read back."""


def _bound(values: np.ndarray[Any, Any]) -> Any:
    """A Box bound as JSON: one number when every element is equal, else the nested list; infinities as text."""

    def number(value: float) -> float | str:
        return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")

    flat = values.astype(np.float64).ravel()
    if flat.size and (flat == flat[0]).all():
        return number(float(flat[0]))
    return [number(float(value)) for value in flat]


def space_to_json(space: spaces.Space[Any]) -> dict[str, Any]:
    """``space`` as a JSON-serialisable mapping (Box, Discrete, MultiDiscrete, MultiBinary, Dict, Tuple).

    Raises:
        ReinforceError: any other space.
    """
    if isinstance(space, spaces.Box):
        return {
            "type": "Box",
            "shape": list(space.shape),
            "dtype": str(space.dtype),
            "low": _bound(space.low),
            "high": _bound(space.high),
        }
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": space.nvec.tolist(), "start": space.start.tolist()}
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": list(space.shape)}
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": {key: space_to_json(value) for key, value in space.spaces.items()}}
    if isinstance(space, spaces.Tuple):
        return {"type": "Tuple", "spaces": [space_to_json(value) for value in space.spaces]}
    raise ReinforceError(f"cannot store the space {space}: reinforce handles Box, Discrete, MultiDiscrete, MultiBinary")


def _invalid(what: str) -> ReinforceError:
    return ReinforceError(f"the stored space is invalid ({what})")


def _shape(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(type(size) is int and size >= 1 for size in value) or len(value) > 8:
        raise _invalid(f"shape {value!r} is not a list of at most 8 positive integers")
    if math.prod(value) > MAX_SPACE_SIZE:
        raise _invalid(f"shape {value} has over {MAX_SPACE_SIZE:,} elements")
    return tuple(value)


def _number(value: Any) -> float:
    if value in ("inf", "-inf"):
        return float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _invalid(f"bound {value!r} is not a number")
    return float(value)


def _box_bound(value: Any, shape: tuple[int, ...]) -> np.ndarray[Any, Any]:
    if isinstance(value, list):
        if len(value) != math.prod(shape):
            raise _invalid(f"a bound has {len(value)} values for shape {shape}")
        return np.array([_number(item) for item in value], dtype=np.float64).reshape(shape)
    return np.full(shape, _number(value))


def _integers(value: Any, what: str, minimum: int) -> np.ndarray[Any, Any]:
    array = np.asarray(value) if isinstance(value, (list, int)) and not isinstance(value, bool) else None
    if array is None or array.dtype.kind not in "iu" or array.size > MAX_SPACE_SIZE or (array < minimum).any():
        raise _invalid(f"{what} {value!r} is not integers >= {minimum}")
    return array


def space_from_json(document: Any, depth: int = 0) -> spaces.Space[Any]:
    """The space that `space_to_json` wrote, every value checked.

    Raises:
        ReinforceError: a malformed or oversized document.
    """
    if depth > MAX_SPACE_DEPTH:
        raise _invalid(f"Dict/Tuple nesting deeper than {MAX_SPACE_DEPTH}")
    if not isinstance(document, dict) or not isinstance(document.get("type"), str):
        raise _invalid(f"{str(document)[:80]!r} is not a mapping with a 'type'")
    kind = document["type"]
    if kind == "Box":
        shape = _shape(document.get("shape"))
        dtype = document.get("dtype")
        if dtype not in ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8"):
            raise _invalid(f"Box dtype {dtype!r}")
        low, high = _box_bound(document.get("low"), shape), _box_bound(document.get("high"), shape)
        if (low > high).any():
            raise _invalid("a Box's low is above its high")
        return spaces.Box(low.astype(dtype), high.astype(dtype), shape=shape, dtype=np.dtype(dtype))
    if kind == "Discrete":
        n, start = document.get("n"), document.get("start", 0)
        if type(n) is not int or not 1 <= n <= MAX_SPACE_SIZE or type(start) is not int or abs(start) > 2**62:
            raise _invalid(f"Discrete n={n!r} start={start!r}")
        return spaces.Discrete(n, start=start)
    if kind == "MultiDiscrete":
        nvec = _integers(document.get("nvec"), "nvec", 1)
        start = _integers(document.get("start", 0), "start", -(2**62))
        if nvec.ndim == 0 or (start.ndim and start.shape != nvec.shape):
            raise _invalid("MultiDiscrete nvec and start do not match")
        return spaces.MultiDiscrete(nvec, start=np.broadcast_to(start, nvec.shape).copy())
    if kind == "MultiBinary":
        return spaces.MultiBinary(list(_shape(document.get("n"))))
    if kind == "Dict" and isinstance(document.get("spaces"), dict):
        return spaces.Dict({str(key): space_from_json(value, depth + 1) for key, value in document["spaces"].items()})
    if kind == "Tuple" and isinstance(document.get("spaces"), list):
        return spaces.Tuple([space_from_json(value, depth + 1) for value in document["spaces"]])
    raise _invalid(f"unknown or malformed space type {kind!r}")
