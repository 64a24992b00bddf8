"""Typed, validated hyperparameters.

`TrainConfig` is the single source of truth for every hyperparameter: the Python API takes its fields as
keyword arguments, the CLI turns each field into a ``--flag`` (with the field's docstring as help), and the
run directory saves it as JSON. Values are validated once, when the dataclass is built.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypedDict, get_args, get_type_hints

import numpy as np

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

MAX_VERIFY_EPISODES = 10_000
"""The most episodes of one verification check (`TrainConfig.verify_episodes`)."""


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
    over the last 100 training episodes (default: the env spec's threshold)."""

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
    """Torch CPU threads while `learn` runs (put back after); 1 is fastest for small MLPs, 0 keeps torch's."""

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


def episodes_per_update(config: TrainConfig) -> int:
    """The number of complete episodes one update consumes."""
    return config.num_envs if config.episodes_per_update is None else config.episodes_per_update


def worker_num_envs(config: TrainConfig) -> int:
    """Environments of each Ray worker: ``envs_per_worker``, or ``num_envs`` shared out among the workers."""
    return config.envs_per_worker if config.envs_per_worker is not None else -(-config.num_envs // config.workers)


DEFAULT_CHECKPOINT_EVERY = 10
"""Updates between periodic checkpoints of `Reinforce.learn` and ``reinforce train`` (0: only the final one)."""

DEFAULT_EVAL_EPISODES = 100
"""Deterministic evaluation episodes after training, for ``reinforce train`` and each trial of a sweep."""

MAX_THREADS = 1024
MAX_NUM_ENVS = 65536
"""Upper bound of num_envs and envs_per_worker: beyond it a run allocates gigabytes before it fails."""
MAX_EPISODES_PER_UPDATE = 10**7
MAX_LAYER_WIDTH = 65536
MAX_LAYERS = 64
MAX_VALUE_STEPS = 10**5
MAX_WORKERS = 4096
MAX_SEED = 2**32 - 1


def _fail(name: str, value: object, requirement: str, *, also: tuple[str, ...] = ()) -> ReinforceError:
    """``invalid NAME=VALUE: REQUIREMENT``, naming the field (and the fields in ``also`` that it mentions)."""
    return ReinforceError(f"invalid {name}={value!r}: {requirement}", fields=(name, *also))


def check_seed(seed: object) -> int | None:
    """``seed`` as an int (NumPy ints accepted), or None; `ReinforceError` unless it is in [0, 2**32 - 1]."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) <= MAX_SEED:
        raise _fail("seed", seed, f"must be an integer in [0, {MAX_SEED}]")
    return int(seed)


def as_count(name: str, value: object, minimum: int) -> int:
    """``value`` as an int >= ``minimum``: ints, NumPy ints and integral floats such as 1e5 are accepted."""
    given = value
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
        value = int(value)
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or int(value) < minimum:
        raise _fail(name, given, f"must be an integer >= {minimum}")
    return int(value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_config(config: TrainConfig) -> None:
    """Raise `ReinforceError` naming the first invalid field of ``config``."""
    hints = get_type_hints(TrainConfig)
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        choices = get_args(hints[field.name])
        if choices and all(isinstance(choice, str) for choice in choices) and value not in choices:
            raise _fail(field.name, value, f"must be one of {', '.join(choices)}")
    if not _is_int(config.num_envs) or not 1 <= config.num_envs <= MAX_NUM_ENVS:
        raise _fail("num_envs", config.num_envs, f"must be an integer in [1, {MAX_NUM_ENVS}]")
    if config.episodes_per_update is not None and (
        not _is_int(config.episodes_per_update) or not 1 <= config.episodes_per_update <= MAX_EPISODES_PER_UPDATE
    ):
        raise _fail(
            "episodes_per_update", config.episodes_per_update, f"must be an integer in [1, {MAX_EPISODES_PER_UPDATE}]"
        )
    if not _is_number(config.gamma) or not 0.0 <= config.gamma <= 1.0:
        raise _fail("gamma", config.gamma, "must be a number in [0, 1]")
    if not _is_number(config.lr) or config.lr <= 0.0:
        raise _fail("lr", config.lr, "must be a number > 0")
    if config.max_grad_norm is not None and (not _is_number(config.max_grad_norm) or config.max_grad_norm <= 0):
        raise _fail("max_grad_norm", config.max_grad_norm, "must be a number > 0")
    for name in ("hidden_sizes", "value_hidden_sizes"):
        sizes = getattr(config, name)
        if (
            not isinstance(sizes, tuple)
            or len(sizes) > MAX_LAYERS
            or not all(_is_int(size) and 1 <= size <= MAX_LAYER_WIDTH for size in sizes)
        ):
            raise _fail(name, sizes, f"must be at most {MAX_LAYERS} integers in [1, {MAX_LAYER_WIDTH}], e.g. 64,64")
    if config.reward_threshold is not None and not _is_number(config.reward_threshold):
        raise _fail("reward_threshold", config.reward_threshold, "must be a finite number")
    for name in ("stop_on_solve", "reward_to_go", "discount_gradient", "bootstrap_truncated"):
        if not isinstance(getattr(config, name), bool):
            raise _fail(name, getattr(config, name), "must be true or false")
    if not _is_int(config.verify_every) or config.verify_every < 1:
        raise _fail("verify_every", config.verify_every, "must be an integer >= 1 (env steps between checks)")
    if not _is_int(config.verify_episodes) or not 1 <= config.verify_episodes <= MAX_VERIFY_EPISODES:
        raise _fail("verify_episodes", config.verify_episodes, f"must be an integer in [1, {MAX_VERIFY_EPISODES}]")
    if not _is_number(config.entropy_coef) or config.entropy_coef < 0.0:
        raise _fail("entropy_coef", config.entropy_coef, "must be a number >= 0")
    if not _is_number(config.value_lr) or config.value_lr <= 0.0:
        raise _fail("value_lr", config.value_lr, "must be a number > 0")
    if not _is_int(config.value_steps) or not 1 <= config.value_steps <= MAX_VALUE_STEPS:
        raise _fail("value_steps", config.value_steps, f"must be an integer in [1, {MAX_VALUE_STEPS}]")
    if config.discount_gradient and not config.reward_to_go:
        raise _fail(
            "discount_gradient",
            True,
            "goes with reward-to-go only: a whole-episode return already weighs step t's rewards by gamma^t "
            "(set discount_gradient=False or reward_to_go=True)",
            also=("reward_to_go",),
        )
    if config.return_normalization == "episode" and not config.reward_to_go and config.baseline != "value":
        raise _fail(
            "return_normalization",
            "episode",
            "with whole-episode returns gives every step of an episode the same weight, which standardises to 0: "
            "use batch or none, or a value baseline",
        )
    if config.baseline == "leave_one_out" and episodes_per_update(config) < 2:
        raise _fail("baseline", config.baseline, "needs episodes_per_update >= 2", also=("episodes_per_update",))
    if not _is_int(config.num_threads) or not 0 <= config.num_threads <= MAX_THREADS:
        raise _fail("num_threads", config.num_threads, f"must be an integer in [0, {MAX_THREADS}] (0: torch's default)")
    if not _is_number(config.log_std_init) or not -5.0 <= config.log_std_init <= 2.0:
        raise _fail("log_std_init", config.log_std_init, "must be a number in [-5, 2] (the log-std range)")
    if not isinstance(config.normalize_observations, bool):
        raise _fail("normalize_observations", config.normalize_observations, "must be true or false")
    if not isinstance(config.device, str) or not config.device:
        raise _fail("device", config.device, "must be a torch device name such as cpu or cuda")
    if not _is_int(config.workers) or not 1 <= config.workers <= MAX_WORKERS:
        raise _fail("workers", config.workers, f"must be an integer in [1, {MAX_WORKERS}]")
    if config.envs_per_worker is not None and (
        not _is_int(config.envs_per_worker) or not 1 <= config.envs_per_worker <= MAX_NUM_ENVS
    ):
        raise _fail("envs_per_worker", config.envs_per_worker, f"must be an integer in [1, {MAX_NUM_ENVS}]")
    if config.backend == "local" and (config.workers != 1 or config.envs_per_worker is not None):
        name = "workers" if config.workers != 1 else "envs_per_worker"
        raise _fail(name, getattr(config, name), "applies to Ray rollouts only: set backend='ray'", also=("backend",))
    if config.backend == "ray" and episodes_per_update(config) < config.workers:
        raise _fail("workers", config.workers, "must not exceed the episodes per update (each worker collects a share)")


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
