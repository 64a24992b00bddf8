"""reinforce: REINFORCE (Monte-Carlo policy gradient) in PyTorch on Gymnasium environments.

Example:
    >>> import reinforce
    >>> agent = reinforce.Reinforce("CartPole-v1", seed=0)
    >>> agent.learn(total_steps=300_000)  # doctest: +SKIP

The names below are imported on first use, so that ``import reinforce.cli`` (and ``reinforce --help``) does
not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reinforce.imports import lazy_names

if TYPE_CHECKING:  # the names as type checkers see them; at run time `__getattr__` imports them
    from reinforce.agent import Reinforce as Reinforce
    from reinforce.callbacks import Callback as Callback
    from reinforce.callbacks import EvalCallback as EvalCallback
    from reinforce.config import TrainConfig as TrainConfig
    from reinforce.core.batch import RolloutBatch as RolloutBatch
    from reinforce.core.loss import reinforce_loss as reinforce_loss
    from reinforce.core.loss import score_function_surrogate as score_function_surrogate
    from reinforce.core.policies import make_policy as make_policy
    from reinforce.core.returns import discounted_returns as discounted_returns
    from reinforce.core.returns import standardize as standardize
    from reinforce.errors import NonFiniteError as NonFiniteError
    from reinforce.errors import ReinforceError as ReinforceError
    from reinforce.errors import RunDirectoryBusy as RunDirectoryBusy
    from reinforce.errors import TrainingInterrupted as TrainingInterrupted
    from reinforce.evaluation import evaluate_policy as evaluate_policy
    from reinforce.export import export_policy as export_policy
    from reinforce.population import Population as Population
    from reinforce.population import train_population as train_population
    from reinforce.rollout.collect import collect as collect
    from reinforce.saved import load as load
    from reinforce.saved import resume as resume
    from reinforce.sweep import run_sweep as run_sweep

_MODULES = {
    "Callback": "callbacks",
    "EvalCallback": "callbacks",
    "NonFiniteError": "errors",
    "Population": "population",
    "Reinforce": "agent",
    "ReinforceError": "errors",
    "RolloutBatch": "core.batch",
    "RunDirectoryBusy": "errors",
    "TrainConfig": "config",
    "TrainingInterrupted": "errors",
    "collect": "rollout.collect",
    "discounted_returns": "core.returns",
    "evaluate_policy": "evaluation",
    "export_policy": "export",
    "load": "saved",
    "make_policy": "core.policies",
    "reinforce_loss": "core.loss",
    "resume": "saved",
    "run_sweep": "sweep",
    "score_function_surrogate": "core.loss",
    "standardize": "core.returns",
    "train_population": "population",
}
"""The public names and the submodules that define them."""

__all__ = sorted(_MODULES)


if not TYPE_CHECKING:  # hidden from type checkers, which would otherwise accept any name as reinforce.X
    __getattr__, __dir__ = lazy_names(__name__, _MODULES, globals())
