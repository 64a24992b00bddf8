"""Typed, validated hyperparameters.

`TrainConfig` is the single source of truth for every hyperparameter: the Python API takes its fields as
keyword arguments, the CLI turns each field into a ``--flag`` (with the field's docstring as help), and the
run directory saves it as JSON. Values are validated once, when the dataclass is built, by
`reinforce.config_checks.check_config` (the limits and checks live there; this module re-exports the checks of
seeds and counts that other modules use beside a config).
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

from reinforce.config_checks import MAX_SEED as MAX_SEED
from reinforce.config_checks import SIZE_FIELDS, check_config, plain_value
from reinforce.config_checks import as_count as as_count
from reinforce.config_checks import check_seed as check_seed
from reinforce.config_checks import episodes_per_update as episodes_per_update
from reinforce.errors import ReinforceError

OptimizerName = Literal["adam", "sgd", "rmsprop"]
ReturnNormalization = Literal["none", "episode", "batch"]
BaselineName = Literal["none", "batch_mean", "running_mean", "leave_one_out", "value"]
UpdateMode = Literal["batch", "per_step"]
LossReduction = Literal["mean_over_steps", "mean_over_episodes"]
VectorizationMode = Literal["auto", "vector_entry_point", "sync", "async"]
ActionSquash = Literal["clip", "tanh"]
LogStd = Literal["state_independent", "state_dependent"]
Backend = Literal["local", "ray"]
LrSchedule = Literal["constant", "linear"]
Activation = Literal["relu", "tanh"]
Init = Literal["default", "orthogonal"]
SolveCriterion = Literal["verified", "training_mean"]


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of a REINFORCE run: the Python API's keyword arguments, the CLI's flags, config.json's keys.

    Example:
        >>> config = reinforce.TrainConfig(lr=0.01, hidden_sizes=(64, 64))
        >>> config.num_envs, config.lr
        (32, 0.01)
        >>> agent = reinforce.Reinforce("CartPole-v1", config=config)  # doctest: +SKIP
    """

    num_envs: int = 32
    """Number of environments stepped in parallel; one batched policy call per step serves all of them
    (at most 65536)."""

    episodes_per_update: int | None = None
    """Complete episodes consumed by one update (default: ``num_envs``; at most 10**7)."""

    gamma: float = 0.99
    """Discount factor in [0, 1] of the return G_t = r_t + gamma * G_{t+1}."""

    lr: float = 0.03
    """Learning rate of the policy optimizer."""

    optimizer: OptimizerName = "adam"
    """Policy optimizer: adam, sgd (plain gradient ascent, no momentum) or rmsprop."""

    lr_schedule: LrSchedule = "constant"
    """Learning rates (lr, value_lr) over a learn call: constant, or linear (decayed to 0 at the end of its budget)."""

    max_grad_norm: float | None = None
    """Clip the policy gradient to this global L2 norm (default: no clipping)."""

    hidden_sizes: tuple[int, ...] = (128,)
    """Hidden layer widths of the policy MLP (see activation), e.g. 64,64; none (empty) gives the linear softmax policy
    (at most 64 layers, each at most 65536 wide)."""

    activation: Activation = "relu"
    """Activation between the hidden layers of the policy's and the value network's MLPs: relu or tanh."""

    init: Init = "default"
    """Weights of the policy's and the value network's MLPs: torch's default, or orthogonal (gain sqrt 2, zero
    biases) with a small last layer (gain 0.01 for the policy's, 1 for the value network's), as in CleanRL."""

    reward_to_go: bool = True
    """Weight log pi(a_t|s_t) by the return from step t on (G_t); off: by the whole episode's return (Williams)."""

    discount_gradient: bool = False
    """Multiply step t's term by gamma^t (Sutton & Barto's pseudocode: the gradient of the discounted objective)."""

    baseline: BaselineName = "none"
    """Subtracted from the returns: none, batch_mean, running_mean, leave_one_out (other episodes) or value (V(s))."""

    return_normalization: ReturnNormalization = "batch"
    """Standardise the weights (returns minus baseline) over the batch, within each episode, or not (none)."""

    entropy_coef: float = 0.0
    """Weight of the policy's entropy, subtracted from the loss (an exploration bonus), reduced like the loss."""

    loss_reduction: LossReduction = "mean_over_steps"
    """Average the per-step terms over all steps of the batch, or sum them per episode and average over episodes."""

    update: UpdateMode = "batch"
    """One gradient step per batch, or the textbook loop: one step per time step of each episode in turn."""

    value_lr: float = 1e-2
    """Learning rate (Adam) of the value network of baseline=value."""

    value_hidden_sizes: tuple[int, ...] = (128,)
    """Hidden layer widths of the value network of baseline=value (at most 64 layers, each at most 65536 wide)."""

    value_steps: int = 5
    """Full-batch gradient steps of the value network per update (baseline=value; at most 10**5)."""

    bootstrap_truncated: bool = True
    """With baseline=value, end a time-limit-cut episode's return with gamma * V(final observation)."""

    vectorization_mode: VectorizationMode = "auto"
    """Gymnasium vectorisation: the env's own vectorised class where it has one (auto), sync or async."""

    reward_threshold: float | None = None
    """Return that counts as solved, by solve_criterion: the deterministic policy's mean (verified) or the mean
    over the last 100 training episodes (default: the value shipped for the env, else the env spec's threshold)."""

    stop_on_solve: bool = True
    """Stop training once solved, by solve_criterion (off: train for the whole budget)."""

    solve_criterion: SolveCriterion = "verified"
    """What stop_on_solve stops on: verified (the deterministic policy: a check of verify_episodes episodes, when
    verify_every says, reaches the reward threshold, confirmed by a 100-episode evaluation) or training_mean
    (the mean return of the last 100 training episodes)."""

    verify_every: int = 15_000
    """With solve_criterion=verified: check the deterministic policy after the update that crosses each multiple
    of this many env steps (at least 1), and after every update in which a training episode reached the reward
    threshold."""

    verify_episodes: int = 20
    """With solve_criterion=verified: deterministic episodes of each check (at most 10000); a check at or above
    the threshold is confirmed over 100 episodes before training stops."""

    device: str = "cpu"
    """Torch device of the policy and the update (cpu, cuda, cuda:1, ...; auto: cuda where available)."""

    num_threads: int = 1
    """Torch CPU threads while `learn`, `update` or `evaluate` runs (put back after); 1 is fastest for small MLPs,
    0 keeps torch's."""

    action_squash: ActionSquash = "clip"
    """How Gaussian actions meet a bounded Box: clip (train on the raw sample, clip what the env gets) or tanh
    (squashed Gaussian rescaled to the bounds, log-det-Jacobian in the log-prob; needs finite bounds)."""

    log_std: LogStd = "state_independent"
    """Gaussian log standard deviation: one learned vector (state_independent) or a head of the network
    (state_dependent); either is clamped to [-5, 2]."""

    log_std_init: float = 0.0
    """Initial Gaussian log standard deviation (the bias of the head when state_dependent), in [-5, 2]."""

    normalize_observations: bool = False
    """Standardise Box observations with running mean/std statistics (kept in the policy, saved with it) and
    clip them to [-10, 10]."""

    backend: Backend = "local"
    """Who collects the episodes: this process (local) or Ray actors (ray: needs the ray extra, see workers)."""

    workers: int = 1
    """Ray rollout workers (backend=ray), each with its own vector env and a copy of the policy (at most 4096)."""

    envs_per_worker: int | None = None
    """Environments of each Ray worker (backend=ray; default: num_envs / workers, rounded up; at most 65536)."""

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = plain_value(getattr(self, field.name), sizes=field.name in SIZE_FIELDS)
            object.__setattr__(self, field.name, value)
        check_config(self)

    def to_dict(self) -> dict[str, Any]:
        """The hyperparameters as JSON-ready values (tuples become lists)."""
        return {
            key: list(value) if isinstance(value, tuple) else value for key, value in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build and validate a config from JSON-like values; unknown keys are an error."""
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ReinforceError(
                f"unknown hyperparameter(s) {', '.join(unknown)}: valid names are {', '.join(sorted(names))}"
            )
        kwargs = dict(values)
        for name in ("hidden_sizes", "value_hidden_sizes"):
            if isinstance(kwargs.get(name), list):
                kwargs[name] = tuple(kwargs[name])
        return cls(**kwargs)


def stops_on(config: TrainConfig) -> Literal["verified", "training_mean", "never"]:
    """What ends a run of ``config`` before its budget: its ``solve_criterion``, or never without ``stop_on_solve``."""
    return config.solve_criterion if config.stop_on_solve else "never"


def saved_hyperparameters(values: dict[str, Any]) -> dict[str, Any]:
    """The hyperparameters of a saved config.json (`reinforce.load`, ``--config RUN_DIR/config.json``), as read now.

    A config.json written before `TrainConfig.solve_criterion` existed (it lists every field, but not that one)
    stopped on the training mean: it keeps ``solve_criterion: training_mean``, so that its ``stop_on_solve``
    means what it meant (and a resumed run goes on as it would have).
    """
    if "stop_on_solve" in values and "solve_criterion" not in values:
        return {**values, "solve_criterion": "training_mean"}
    return values


class Hyperparameters(TypedDict, total=False):
    """`TrainConfig`'s fields as keyword arguments (``Reinforce(env, lr=0.01)``), so that type checkers check them.

    tests/unit/test_config.py keeps it equal to the dataclass, name by name and type by type.
    """

    num_envs: int
    episodes_per_update: int | None
    gamma: float
    lr: float
    optimizer: OptimizerName | Callable[..., Any]
    """A name, as the field; or (to `Reinforce`) a torch.optim class or factory (see ``optimizer_kwargs``)."""
    lr_schedule: LrSchedule
    max_grad_norm: float | None
    hidden_sizes: tuple[int, ...]
    activation: Activation
    init: Init
    reward_to_go: bool
    discount_gradient: bool
    baseline: BaselineName
    return_normalization: ReturnNormalization
    entropy_coef: float
    loss_reduction: LossReduction
    update: UpdateMode
    value_lr: float
    value_hidden_sizes: tuple[int, ...]
    value_steps: int
    bootstrap_truncated: bool
    vectorization_mode: VectorizationMode
    reward_threshold: float | None
    stop_on_solve: bool
    solve_criterion: SolveCriterion
    verify_every: int
    verify_episodes: int
    device: str
    num_threads: int
    action_squash: ActionSquash
    log_std: LogStd
    log_std_init: float
    normalize_observations: bool
    backend: Backend
    workers: int
    envs_per_worker: int | None


def worker_num_envs(config: TrainConfig) -> int:
    """Environments of each Ray worker: ``envs_per_worker``, or ``num_envs`` shared out among the workers."""
    return config.envs_per_worker if config.envs_per_worker is not None else -(-config.num_envs // config.workers)


DEFAULT_CHECKPOINT_EVERY = 10
"""Updates between periodic checkpoints of `Reinforce.learn` and ``reinforce train`` (0: only the final one)."""

DEFAULT_EVAL_EPISODES = 100
"""Deterministic evaluation episodes after training, for ``reinforce train`` and each trial of a sweep."""


@functools.cache
def field_docs() -> dict[str, str]:
    """The docstring written under each field of `TrainConfig`, by field name (used as CLI help)."""
    tree = ast.parse(inspect.getsource(TrainConfig))
    body = tree.body[0].body if isinstance(tree.body[0], ast.ClassDef) else []
    docs: dict[str, str] = {}
    for node, following in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[node.target.id] = following.value.value.strip()
    return docs
