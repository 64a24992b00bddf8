"""reinforce: REINFORCE (Monte-Carlo policy gradient) in PyTorch on Gymnasium environments.

Example:
    >>> import reinforce
    >>> agent = reinforce.Reinforce("CartPole-v1", seed=0)
    >>> agent.learn(total_steps=300_000)  # doctest: +SKIP

The names below are imported on first use, so that ``import reinforce.cli`` (and ``reinforce --help``) does
not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names as type checkers see them; at run time `__getattr__` imports them
    from reinforce.algorithm import reinforce_loss as reinforce_loss
    from reinforce.algorithm import score_function_surrogate as score_function_surrogate
    from reinforce.config import TrainConfig as TrainConfig
    from reinforce.errors import NonFiniteError as NonFiniteError
    from reinforce.errors import ReinforceError as ReinforceError
    from reinforce.errors import TrainingInterrupted as TrainingInterrupted
    from reinforce.policies import make_policy as make_policy
    from reinforce.returns import discounted_returns as discounted_returns
    from reinforce.returns import standardize as standardize
    from reinforce.rollout import RolloutBatch as RolloutBatch
    from reinforce.rollout import collect as collect
    from reinforce.sweep import run_sweep as run_sweep
    from reinforce.trainer import Reinforce as Reinforce
    from reinforce.trainer import load as load
    from reinforce.trainer import resume as resume

_MODULES = {
    "NonFiniteError": "errors",
    "Reinforce": "trainer",
    "ReinforceError": "errors",
    "RolloutBatch": "rollout",
    "TrainConfig": "config",
    "TrainingInterrupted": "errors",
    "collect": "rollout",
    "discounted_returns": "returns",
    "load": "trainer",
    "make_policy": "policies",
    "reinforce_loss": "algorithm",
    "resume": "trainer",
    "run_sweep": "sweep",
    "score_function_surrogate": "algorithm",
    "standardize": "returns",
}
"""The public names and the submodules that define them."""

__all__ = sorted(_MODULES)


if not TYPE_CHECKING:  # hidden from type checkers, which would otherwise accept any name as reinforce.X

    def __getattr__(name: str) -> Any:
        """Import a public name's submodule on first access (PEP 562)."""
        if name not in _MODULES:
            raise AttributeError(f"module 'reinforce' has no attribute {name!r}")
        value = getattr(importlib.import_module(f"reinforce.{_MODULES[name]}"), name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        """The module's attributes, the lazily imported public names included."""
        return sorted({*globals(), *__all__})
