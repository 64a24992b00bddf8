"""reinforce: REINFORCE (Monte-Carlo policy gradient) in PyTorch on Gymnasium environments.

Example:
    >>> import reinforce
    >>> agent = reinforce.Reinforce("CartPole-v1", seed=0)
    >>> agent.learn(total_steps=300_000)  # doctest: +SKIP

"""

from reinforce.algorithm import reinforce_loss, score_function_surrogate
from reinforce.config import TrainConfig
from reinforce.errors import NonFiniteError, ReinforceError, TrainingInterrupted
from reinforce.policies import make_policy
from reinforce.returns import discounted_returns, standardize
from reinforce.rollout import RolloutBatch, collect
from reinforce.sweep import run_sweep
from reinforce.trainer import Reinforce, load, resume

__all__ = [
    "NonFiniteError",
    "Reinforce",
    "ReinforceError",
    "RolloutBatch",
    "TrainConfig",
    "TrainingInterrupted",
    "collect",
    "discounted_returns",
    "load",
    "make_policy",
    "reinforce_loss",
    "resume",
    "run_sweep",
    "score_function_surrogate",
    "standardize",
]
