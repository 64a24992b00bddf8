"""Importing what a user names: their modules (``module:Env-v0``), and classes recorded in a run directory.

A run directory may come from anywhere, so what it names is imported only as a class of an expected base
(`import_class`): a function named there (``subprocess:run``) is never called.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from reinforce.errors import ReinforceError


def first_line(exc: BaseException) -> str:
    """``"Type: first line of the message"`` of ``exc``, for one-line errors that quote a user's exception."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def import_module(module: str, what: str) -> None:
    """Import ``module`` (finding modules in the current directory too), as ``gymnasium.make`` would for ``what``.

    Raises:
        ReinforceError: the module is not found, fails to import (any exception, a SyntaxError, a
            ``sys.exit`` on import): one line naming it.
    """
    if not module:
        raise ReinforceError(f"{what!r} has nothing before ':': write module:Env-v0, or the id alone")
    added = os.getcwd() not in sys.path and "" not in sys.path
    if added:  # `reinforce train mymodule:MyEnv-v0` finds mymodule.py where it is run, as `python -m` would
        sys.path.append(os.getcwd())
    try:
        importlib.import_module(module)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # the user's module: an error, a SyntaxError, or sys.exit() on import
        raise ReinforceError(
            f"cannot import {module!r} for {what!r} ({first_line(exc)}): check that the module imports "
            "(it must be on PYTHONPATH or in the current directory)"
        ) from None


def import_path(value: object) -> str | None:
    """``"module:qualname"`` of a module-level class or function that imports back to itself; else None.

    Lambdas, nested functions and what a script (``__main__``) defines have none: another process cannot
    import them.
    """
    module, qualname = getattr(value, "__module__", None), getattr(value, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or module == "__main__" or "<" in qualname:
        return None
    try:
        found: Any = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
    except Exception:
        return None
    return f"{module}:{qualname}" if found is value else None


def import_class(path: object, base: type, what: str) -> Any:
    """The class at ``path`` (``module:qualname``) if it is a subclass of ``base``, for what a run directory names.

    Only classes of ``base`` are rebuilt from a run directory: a function named there could be anything
    (``subprocess:run``), and a run directory may come from anywhere.
    """
    if not isinstance(path, str) or path.count(":") != 1:
        raise ReinforceError(f"the run's {what} {path!r} is not a module:qualname path")
    module, qualname = path.split(":")
    import_module(module, path)
    found: Any = sys.modules[module]
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if not (isinstance(found, type) and issubclass(found, base)):
        raise ReinforceError(
            f"the run's {what} {path!r} is not a {base.__module__.rsplit('.', 1)[0]}.{base.__name__} class: only those "
            "are rebuilt from "
            "a run directory"
        )
    return found


def lazy_names(
    package: str, modules: Mapping[str, str], namespace: dict[str, Any], first: str | None = None
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """PEP 562 ``__getattr__`` and ``__dir__`` for a package whose public names are imported on first use.

    Example:
        >>> __getattr__, __dir__ = lazy_names(__name__, {"Reinforce": "agent"}, globals())  # doctest: +SKIP

    Args:
        package: the package's name (its ``__name__``).
        modules: each public name and the submodule (relative to ``package``) that defines it.
        namespace: the package's ``globals()``, where a name is kept once imported.
        first: a submodule to import before any name (one whose import completes the others).
    """

    def get(name: str) -> Any:
        if name not in modules:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        if first is not None:
            importlib.import_module(f"{package}.{first}")
        value = getattr(importlib.import_module(f"{package}.{modules[name]}"), name)
        namespace[name] = value
        return value

    def names() -> list[str]:
        return sorted({*namespace, *modules})

    return get, names
