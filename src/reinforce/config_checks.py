"""The limits and checks of `reinforce.config.TrainConfig`'s values, and of the seeds and counts given beside it.

`seeds_text` writes seeds back as ``--seeds`` takes them.

Every check raises `ReinforceError` naming the field, its value and what it must be: ``invalid lr=-1: must be a
number > 0``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, get_args, get_type_hints

import numpy as np

from reinforce.errors import ReinforceError

if TYPE_CHECKING:
    from reinforce.config import TrainConfig

MAX_VERIFY_EPISODES = 10_000
"""The most episodes of one verification check (`TrainConfig.verify_episodes`)."""

MAX_THREADS = 1024
MAX_NUM_ENVS = 65536
"""Upper bound of num_envs and envs_per_worker: beyond it a run allocates gigabytes before it fails."""
MAX_EPISODES_PER_UPDATE = 10**7
MAX_LAYER_WIDTH = 65536
MAX_LAYERS = 64
MAX_VALUE_STEPS = 10**5
MAX_WORKERS = 4096
MAX_SEED = 2**32 - 1


def episodes_per_update(config: TrainConfig) -> int:
    """The number of complete episodes one update consumes."""
    return config.num_envs if config.episodes_per_update is None else config.episodes_per_update


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


SIZE_FIELDS = ("hidden_sizes", "value_hidden_sizes")
"""The settings that are tuples of layer sizes."""


def plain_value(value: object, *, sizes: bool = False) -> object:
    """``value`` with NumPy scalars as Python's; with ``sizes``, a list, tuple or 1-D array of layer sizes as a tuple.

    A float32 becomes its shortest decimal (0.01, not 0.00999999977); anything else stays as it is (the checks
    judge it). A value taken from NumPy (``np.logspace``, ``np.arange``) is a valid setting as its Python twin is, and
    config.json records plain JSON numbers.
    """
    if sizes and (isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.ndim == 1)):
        return tuple(plain_value(item) for item in value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value) if isinstance(value, np.float64) else float(str(value))
    return value


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_config(config: TrainConfig) -> None:
    """Raise `ReinforceError` naming the first invalid field of ``config``."""
    hints = get_type_hints(type(config))
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
    for name in SIZE_FIELDS:
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


MAX_SEEDS = 10_000
"""The most seeds one population or sweep takes (each a run: a member, or a trial per setting)."""


def seeds_text(seeds: Sequence[int]) -> str:
    """``--seeds``' text for ``seeds``: runs of consecutive seeds as ranges (``0-9``, ``0-4,7``)."""
    parts: list[str] = []
    start = previous = None
    for seed in [*seeds, None]:
        if start is not None and previous is not None and (seed is None or seed != previous + 1):
            parts.append(str(start) if start == previous else f"{start}-{previous}")
            start = None
        if seed is not None and start is None:
            start = seed
        previous = seed
    return ",".join(parts)
