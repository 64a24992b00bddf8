"""The cost of one vector step of an env alone, by backend: the floor under any training loop's step.

Gymnasium's own vector env (``vector_entry_point``, CartPole's NumPy-batched ``CartPoleVectorEnv``), Gymnasium's
``SyncVectorEnv`` of single envs, and EnvPool's C++ env where ``envpool`` is installed (not a dependency of
reinforce: ``pip install envpool``), with one thread and with its default. Each backend steps the same number of
vector steps with random actions, the backends alternating within each repeat; the table gives the median over
repeats of the microseconds per vector step and per sub-env step.

    python benchmarks/vector_env_step.py [--env CartPole-v1] [--num-envs 20,32,100] [--steps 3000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import gymnasium
import numpy as np
from common import machine, versions

Stepper = Callable[[np.ndarray[Any, Any]], object]


def gymnasium_stepper(env_id: str, num_envs: int, mode: str) -> tuple[Stepper, gymnasium.spaces.Space[Any]]:
    """``step`` of ``gymnasium.make_vec(env_id, num_envs, vectorization_mode=mode)`` after a seeded reset."""
    envs = gymnasium.make_vec(env_id, num_envs=num_envs, vectorization_mode=mode)
    envs.reset(seed=0)
    return envs.step, envs.action_space


def envpool_stepper(env_id: str, num_envs: int, threads: int) -> tuple[Stepper, gymnasium.spaces.Space[Any]] | None:
    """EnvPool's ``step`` (Gymnasium API, ``threads`` threads; 0: its default), or None without envpool."""
    try:
        import envpool  # type: ignore[import-not-found]
    except ImportError:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        envs = envpool.make(env_id, env_type="gymnasium", num_envs=num_envs, seed=0, num_threads=threads)
        envs.reset()
    space = gymnasium.spaces.MultiDiscrete([envs.action_space.n] * num_envs, dtype=np.int32)
    return envs.step, space


def seconds_per_step(step: Stepper, space: gymnasium.spaces.Space[Any], steps: int) -> float:
    """Mean seconds of ``step`` over ``steps`` calls with actions drawn beforehand from ``space``."""
    space.seed(0)
    actions = [np.asarray(space.sample()) for _ in range(steps)]
    start = time.perf_counter()
    for action in actions:
        step(action)
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--num-envs", default="20,32,100")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    installed = [name for name in ("numpy", "gymnasium", "envpool") if importlib.util.find_spec(name) is not None]
    print(f"# {machine()}; {versions(*installed)}")
    print("| sub-envs | backend | us per vector step | us per sub-env step |")
    print("| ---: | --- | ---: | ---: |")
    for num_envs in [int(part) for part in args.num_envs.split(",")]:
        backends: dict[str, tuple[Stepper, gymnasium.spaces.Space[Any]]] = {
            "gymnasium vector_entry_point": gymnasium_stepper(args.env, num_envs, "vector_entry_point"),
            "gymnasium sync": gymnasium_stepper(args.env, num_envs, "sync"),
        }
        for threads, name in ((1, "envpool, 1 thread"), (0, "envpool, its default threads")):
            found = envpool_stepper(args.env, num_envs, threads)
            if found is not None:
                backends[name] = found
        times: dict[str, list[float]] = {name: [] for name in backends}
        for _ in range(args.repeats):
            for name, (step, space) in backends.items():
                times[name].append(seconds_per_step(step, space, args.steps))
        for name, seconds in times.items():
            median = statistics.median(seconds) * 1e6
            print(f"| {num_envs} | {name} | {median:.1f} | {median / num_envs:.2f} |")
    if "envpool, 1 thread" not in times:
        print("(envpool is not installed here: `pip install envpool` adds its rows)")


if __name__ == "__main__":
    main()
