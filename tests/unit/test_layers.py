"""The folders are the layers: no module imports from a layer above its own (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import reinforce

PACKAGE = Path(reinforce.__file__).parent

LAYERS = {
    "errors": 0,
    "imports": 0,
    "config": 1,
    "config_checks": 1,
    "settings": 2,
    "core": 3,
    "rollout": 4,
    "run": 4,
    "agent": 5,
    "snapshots": 5,
    "evaluation": 5,
    "saved": 6,
    "export": 6,
    "training": 6,
    "callbacks": 6,
    "verification": 6,
    "population": 6,
    "sweep": 7,
    "cli": 8,
    "__init__": 9,
    "__main__": 9,
}
"""Rank of each top-level module or folder; a module may import its own folder and lower ranks."""

UPWARD_CALLS = {("agent", "training"), ("agent", "callbacks")}
"""Deliberate imports of a higher layer: `Reinforce.learn` runs `training.learn` (inside the function) and
names `callbacks.Callback` in its annotation (for type checkers only)."""


def layer(module: str) -> str:
    """``reinforce.core.loss`` -> ``core``."""
    return module.split(".")[1] if module.count(".") else "__init__"


def imported_modules(path: Path) -> set[str]:
    """Every ``reinforce.*`` module that ``path`` imports, at any depth (function bodies included)."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "reinforce":
            modules.update(f"reinforce.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("reinforce."):
            modules.add(node.module)
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names if alias.name.startswith("reinforce."))
    return modules


def test_no_module_imports_a_layer_above_its_own() -> None:
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        own = layer(".".join(relative.parts))
        assert own in LAYERS, f"{relative}: a new top-level module or folder needs a rank in LAYERS"
        for module in imported_modules(path):
            other = layer(module)
            if other in LAYERS and LAYERS[other] > LAYERS[own] and (own, other) not in UPWARD_CALLS:
                violations.append(f"{relative} imports {module}")
            if own in ("rollout", "run") and other in ("rollout", "run") and other != own:
                violations.append(f"{relative} imports {module} (rollout and run are independent)")
    assert not violations, violations


def test_the_check_sees_imports_inside_functions() -> None:
    # the one deliberate upward import is inside Reinforce.learn: the scan must find it, or it finds nothing
    assert "reinforce.training" in imported_modules(PACKAGE / "agent.py")
