"""Where environments come from: an id, a spec, a callable or a vector env, vectorised with next-step autoreset.

`env_source` turns what a user passes as ``env`` into an `EnvSource`, which makes any number of copies
(`EnvSource.make`); `reinforce.rollout.env_records` says how config.json records it and rebuilds it.
Registered ids and specs go through Gymnasium's own vectorisation (``gymnasium.make_vec``); callables
through ``SyncVectorEnv`` or ``AsyncVectorEnv``; a vector env is used as it is.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import signal
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Union

import gymnasium
from gymnasium import error as gym_error
from gymnasium.envs.registration import EnvSpec
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv

from reinforce.errors import ReinforceError
from reinforce.imports import first_line, import_module, import_path
from reinforce.rollout.observations import FLATTENED_OBSERVATION_SPACES

Wrapper = Callable[[gymnasium.Env[Any, Any]], gymnasium.Env[Any, Any]]
"""A function (or wrapper class) from one environment to another, applied to every environment made."""
EnvLike = Union[str, EnvSpec, Callable[..., gymnasium.Env[Any, Any]], VectorEnv[Any, Any, Any], "EnvSource"]
"""What ``env`` may be: a registered id, an ``EnvSpec``, a callable returning a ``gymnasium.Env`` (a class, a
function, a lambda), a ``gymnasium.vector.VectorEnv`` (used as it is), or an `EnvSource`."""

ACCEPTED = (
    "a registered id such as 'CartPole-v1' (or 'module:Env-v0'), a gymnasium EnvSpec, a callable that returns a "
    "gymnasium.Env (a class, a function or a lambda), or a gymnasium.vector.VectorEnv"
)

logger = logging.getLogger("reinforce")


def route_mujoco_warnings(spec: EnvSpec | None) -> None:
    """Before Gymnasium's own MuJoCo envs are made: MuJoCo's warnings to the log, not to a file in the cwd.

    Without a handler, MuJoCo appends each warning to MUJOCO_LOG.TXT in the cwd (Gymnasium 1.4's models raise a
    deprecation under MuJoCo 4 at each build). Set only where none is (a user's handler stays): deprecations to the
    debug log, other warnings (an unstable simulation) as warnings. Async workers keep MuJoCo's default.
    """
    if _gymnasium_extra(spec) != "mujoco":
        return
    try:
        import mujoco
    except ImportError:  # gymnasium.make says so, naming the extra (`EnvSource.make`)
        return
    if mujoco.get_mju_user_warning() is None:
        mujoco.set_mju_user_warning(_log_mujoco_warning)


EXTRAS = ("mujoco", "box2d")
"""reinforce's extras for Gymnasium's own env families: the package ``gymnasium.envs.FAMILY`` needs ``FAMILY``."""


def _gymnasium_extra(spec: EnvSpec | None) -> str | None:
    """The reinforce extra that Gymnasium's env of ``spec`` needs (mujoco, box2d), or None."""
    entry_point = str(spec.entry_point) if spec is not None else ""
    return next((extra for extra in EXTRAS if entry_point.startswith(f"gymnasium.envs.{extra}")), None)


def _log_mujoco_warning(message: str) -> None:
    level = logging.DEBUG if "deprecated" in message else logging.WARNING
    logger.log(level, "MuJoCo: %s", message.strip())


def env_spec(env_id: str) -> EnvSpec:
    """The registered spec of ``env_id``, or a `ReinforceError` that says how to find valid ids.

    ``"module:Env-v0"`` imports ``module`` first (where a custom env registers itself), as ``gymnasium.make``
    does, finding modules in the current directory too.
    """
    module, colon, name = env_id.rpartition(":")
    if colon:
        import_module(module, env_id)
    try:
        return gymnasium.spec(name)
    except gym_error.Error as exc:
        raise ReinforceError(
            f"unknown environment {env_id!r} ({str(exc).strip().splitlines()[0]}): "
            "list the registered ids with `python -c 'import gymnasium; gymnasium.pprint_registry()'`"
        ) from None


@contextlib.contextmanager
def _workers_ignore_signals(active: bool) -> Iterator[None]:
    """Ignore SIGINT and SIGHUP while async workers are started, so that they inherit the disposition.

    Ctrl-C, and SIGHUP when the terminal closes, reach the whole process group; the workers must outlive them for
    the main process to finish its update and checkpoint. SIGTERM is left alone (Gymnasium ends stuck workers
    with it): send it to the main process only.
    """
    if not active or threading.current_thread() is not threading.main_thread():
        yield
        return
    numbers = [getattr(signal, name) for name in ("SIGINT", "SIGHUP") if hasattr(signal, name)]
    previous = {number: signal.signal(number, signal.SIG_IGN) for number in numbers}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)


def _check_env(env: object, name: str) -> gymnasium.Env[Any, Any]:
    if not isinstance(env, gymnasium.Env):
        raise ReinforceError(f"{name} returned {type(env).__name__}, not a gymnasium.Env: return an environment")
    return env


def _wrap(wrapper: Wrapper, env: gymnasium.Env[Any, Any], name: str) -> gymnasium.Env[Any, Any]:
    """``wrapper(env)``, checked: a wrapper that raises or returns no environment is one error naming it."""
    label = f"the wrapper {getattr(wrapper, '__qualname__', wrapper)!r}"
    try:
        wrapped = wrapper(env)
    except ReinforceError:
        raise
    except Exception as exc:
        raise ReinforceError(
            f"{label} failed on {name} ({first_line(exc)}): fix the wrapper, or leave it out of wrappers",
            fields=("wrappers",),
        ) from None
    return _check_env(wrapped, label)


class EnvSource:
    """Where a run's environments come from; build one with `env_source`.

    Attributes:
        name: how messages and run directory names call the environment (its id, or the callable's name).
        env_id: the registered id (``module:Env-v0`` included), when the environment is one; else None.
        spec: the registered spec (of ``env_id`` or the given ``EnvSpec``); None for callables and vector envs
            made from them.
        factory: the callable that makes one environment, when one was given.
        vector_env: the vector env given, used as it is.
        kwargs: keyword arguments for ``gymnasium.make`` or ``factory``.
        wrappers: applied to every environment made, in order.
    """

    def __init__(
        self,
        name: str,
        *,
        env_id: str | None = None,
        spec: EnvSpec | None = None,
        factory: Callable[..., gymnasium.Env[Any, Any]] | None = None,
        vector_env: VectorEnv[Any, Any, Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        wrappers: Sequence[Wrapper] = (),
    ) -> None:
        self.name = name
        self.env_id = env_id
        self.spec = spec
        self.factory = factory
        self.vector_env = vector_env
        self.kwargs = dict(kwargs or {})
        self.wrappers = tuple(wrappers)
        self._given_vector_env: VectorEnv[Any, Any, Any] | None = None

    def __repr__(self) -> str:
        return f"EnvSource({self.name!r})"

    def __getstate__(self) -> dict[str, Any]:
        """What Ray ships to its workers: never a live vector env (`reinforce.rollout.ray` refuses those)."""
        return {**self.__dict__, "vector_env": None, "_given_vector_env": None}

    @property
    def reward_threshold(self) -> float | None:
        """The registered reward threshold, if the environment is registered with one."""
        return self.spec.reward_threshold if self.spec is not None else None

    def _one(self, render_mode: str | None) -> gymnasium.Env[Any, Any]:
        """One environment of a callable source, wrapped."""
        assert self.factory is not None
        kwargs = self.kwargs if render_mode is None else {**self.kwargs, "render_mode": render_mode}
        try:
            env = _check_env(self.factory(**kwargs), self.name)
        except ReinforceError:
            raise
        except Exception as exc:
            raise ReinforceError(
                f"creating the environment with {self.name} failed ({first_line(exc)}): fix the environment "
                "or its env_kwargs",
                fields=("env_kwargs",),
            ) from None
        for wrapper in self.wrappers:
            env = _wrap(wrapper, env, self.name)
        return env

    def make_one(self, render_mode: str | None = None) -> gymnasium.Env[Any, Any]:
        """One (wrapped) environment, for video; not for a vector env source.

        Raises:
            ReinforceError: the source is a vector env, or making the environment failed.
        """
        if self.vector_env is not None:
            raise ReinforceError(f"{self.name} is a vector env: pass a callable or an id to record video from it")
        if self.factory is not None:
            return self._one(render_mode)
        kwargs = self.kwargs if render_mode is None else {**self.kwargs, "render_mode": render_mode}
        route_mujoco_warnings(self.spec)
        env = gymnasium.make(self.spec if self.spec is not None else str(self.env_id), **kwargs)
        for wrapper in self.wrappers:
            env = _wrap(wrapper, env, self.name)
        return env

    def make(
        self, num_envs: int, *, vectorization_mode: str = "auto", render_mode: str | None = None
    ) -> VectorEnv[Any, Any, Any]:
        """``num_envs`` environments in one vector env with next-step autoreset, observations flattened.

        Args:
            num_envs: number of sub-environments (a given vector env is returned as it is, whatever its size).
            vectorization_mode: ``"auto"`` uses the env's own vectorised class where its spec has a
                ``vector_entry_point`` (CartPole does) and neither env_kwargs nor wrappers are given, and
                ``SyncVectorEnv`` otherwise; or ``"vector_entry_point"``, ``"sync"``, ``"async"``.
            render_mode: passed to the environments (``"rgb_array"`` for video).

        Dict, Tuple, MultiDiscrete and MultiBinary observations are flattened into a Box by Gymnasium's own
        ``gymnasium.wrappers.vector.FlattenObservation`` (`FLATTENED_OBSERVATION_SPACES`): Discrete and
        MultiDiscrete parts become one-hot vectors, the rest is concatenated.

        Raises:
            ReinforceError: a missing optional dependency, an environment that fails to build, or an
                autoreset mode other than next-step.
        """
        if self.vector_env is not None:
            if self._given_vector_env is None:
                self._given_vector_env = _finish(self.vector_env, self.name, "")
            return self._given_vector_env
        mode = vectorization_mode
        if mode == "auto":
            native = self.spec is not None and self.spec.vector_entry_point is not None
            mode = "vector_entry_point" if native and not self.kwargs and not self.wrappers else "sync"
        if self.factory is not None:
            return self._make_from_factory(num_envs, mode, render_mode)
        vector_kwargs = {} if mode == "vector_entry_point" else {"autoreset_mode": AutoresetMode.NEXT_STEP}
        kwargs = self.kwargs if render_mode is None else {**self.kwargs, "render_mode": render_mode}
        route_mujoco_warnings(self.spec)
        checked = [functools.partial(_wrap, wrapper, name=self.name) for wrapper in self.wrappers]
        try:
            with _workers_ignore_signals(mode == "async"):
                envs = gymnasium.make_vec(
                    self.spec if self.spec is not None else str(self.env_id),
                    num_envs=num_envs,
                    vectorization_mode=mode,
                    vector_kwargs=vector_kwargs,
                    wrappers=checked or None,  # type: ignore[arg-type]  # any Env -> Env works
                    **kwargs,
                )
        except gym_error.DependencyNotInstalled as exc:
            extra = _gymnasium_extra(self.spec)
            fix = f"pip install 'reinforce[{extra}]'" if extra else "install it first"
            raise ReinforceError(
                f"{self.name} needs an optional dependency ({str(exc).strip().splitlines()[0]}): {fix}"
            ) from None
        except ImportError as exc:
            raise ReinforceError(
                f"{self.name} needs a package that is not installed ({exc}): install it first"
            ) from None
        except gym_error.Error as exc:
            raise ReinforceError(
                f"cannot vectorise {self.name} with vectorization_mode={vectorization_mode} ({exc}): "
                "set vectorization_mode='sync'",
                fields=("vectorization_mode",),
            ) from None
        except TypeError as exc:  # env_kwargs the environment does not take
            raise ReinforceError(
                f"cannot make {self.name} with env_kwargs {self.kwargs} ({first_line(exc)}): fix env_kwargs",
                fields=("env_kwargs",),
            ) from None
        return _finish(envs, self.name, vectorization_mode)

    def _make_from_factory(self, num_envs: int, mode: str, render_mode: str | None) -> VectorEnv[Any, Any, Any]:
        if mode not in ("sync", "async"):
            raise ReinforceError(
                f"vectorization_mode={mode} needs a registered environment; {self.name} is a callable: "
                "set vectorization_mode='sync' or 'async'",
                fields=("vectorization_mode",),
            )
        functions = [functools.partial(self._one, render_mode)] * num_envs  # picklable for async workers
        vector_class = SyncVectorEnv if mode == "sync" else AsyncVectorEnv
        try:
            with _workers_ignore_signals(mode == "async"):
                envs: VectorEnv[Any, Any, Any] = vector_class(functions, autoreset_mode=AutoresetMode.NEXT_STEP)
        except ReinforceError:
            raise
        except Exception as exc:  # spaces that differ between copies, a worker that failed to start, ...
            raise ReinforceError(
                f"cannot vectorise {self.name} ({first_line(exc)}): check that every call returns an "
                "environment with the same spaces"
            ) from None
        return _finish(envs, self.name, mode)


def _finish(envs: VectorEnv[Any, Any, Any], name: str, vectorization_mode: str) -> VectorEnv[Any, Any, Any]:
    """Check next-step autoreset and flatten the observations of ``envs`` (see `EnvSource.make`)."""
    autoreset = envs.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
    if autoreset != AutoresetMode.NEXT_STEP:
        envs.close()
        fix = "set vectorization_mode='sync'" if vectorization_mode else "make it with autoreset_mode=NEXT_STEP"
        raise ReinforceError(
            f"{name}'s vector env uses autoreset mode {autoreset}, reinforce needs next-step autoreset: {fix}",
            fields=("vectorization_mode",),
        )
    if isinstance(envs.single_observation_space, FLATTENED_OBSERVATION_SPACES):
        from gymnasium.wrappers.vector import FlattenObservation

        try:
            envs = FlattenObservation(envs)
        except Exception as exc:  # a nested space Gymnasium cannot flatten (Graph, Sequence, ...)
            envs.close()
            raise ReinforceError(
                f"cannot flatten {name}'s observation space {envs.single_observation_space} ({exc}): "
                "reinforce handles Box, Discrete, MultiDiscrete, MultiBinary and Dict/Tuple of them"
            ) from None
    return envs


def _callable_name(value: object) -> str:
    path = import_path(value)
    if path is not None:
        return path
    return str(getattr(value, "__qualname__", None) or type(value).__name__)


def env_source(
    env: EnvLike, *, env_kwargs: Mapping[str, Any] | None = None, wrappers: Sequence[Wrapper] | None = None
) -> EnvSource:
    """Where ``env``'s environments come from (see `EnvLike`), checked now.

    Args:
        env: a registered id, an ``EnvSpec``, a callable returning a ``gymnasium.Env``, a vector env, or an
            `EnvSource` (returned as it is).
        env_kwargs: keyword arguments for ``gymnasium.make`` (ids and specs) or the callable.
        wrappers: callables ``Env -> Env`` applied to every environment made.

    Raises:
        ReinforceError: anything else (a ``gymnasium.Env`` instance, which cannot be copied, included), an
            unknown id, env_kwargs or wrappers that do not fit.
    """
    if env_kwargs is not None and (
        not isinstance(env_kwargs, Mapping) or not all(isinstance(k, str) for k in env_kwargs)
    ):
        raise ReinforceError(
            f"env_kwargs must map names to values, got {env_kwargs!r}: pass a dict such as {{'size': 12}}",
            fields=("env_kwargs",),
        )
    if wrappers is not None and (isinstance(wrappers, (str, bytes)) or not isinstance(wrappers, Sequence)):
        raise ReinforceError(f"wrappers must be a list of callables Env -> Env, got {wrappers!r}", fields=("wrappers",))
    for wrapper in wrappers or ():
        if not callable(wrapper):
            raise ReinforceError(f"the wrapper {wrapper!r} is not callable: give callables Env -> Env")
    kwargs, chain = env_kwargs, tuple(wrappers or ())
    if isinstance(env, EnvSource):
        if env_kwargs or wrappers:
            raise ReinforceError("an EnvSource carries its own env_kwargs and wrappers: do not pass them again")
        return env
    if isinstance(env, str):
        if not env.strip():
            raise ReinforceError(f"the environment id {env!r} is empty: pass one such as 'CartPole-v1'")
        return EnvSource(env, env_id=env, spec=env_spec(env), kwargs=kwargs, wrappers=chain)
    if isinstance(env, EnvSpec):
        return EnvSource(env.id, spec=env, kwargs=kwargs, wrappers=chain)
    if isinstance(env, VectorEnv):
        if env_kwargs or wrappers:
            raise ReinforceError(
                "env_kwargs and wrappers cannot apply to a vector env already made: make it with them",
                fields=("env_kwargs", "wrappers"),
            )
        spec = getattr(env, "spec", None)
        return EnvSource(spec.id if spec is not None else type(env).__name__, vector_env=env)
    if isinstance(env, gymnasium.Env):
        spec = env.spec
        hint = f"its id {spec.id!r}, " if spec is not None and spec.id else ""
        raise ReinforceError(
            f"env is one gymnasium.Env instance ({type(env.unwrapped).__name__}), which cannot be copied into "
            f"num_envs environments: pass {hint}its class or a function that makes it (lambda: ...)"
        )
    if callable(env):
        return EnvSource(_callable_name(env), factory=env, kwargs=kwargs, wrappers=chain)
    raise ReinforceError(f"env {env!r} is not an environment: pass {ACCEPTED}")


def make_vec_env(
    env: EnvLike, num_envs: int, *, vectorization_mode: str = "auto", render_mode: str | None = None
) -> VectorEnv[Any, Any, Any]:
    """``num_envs`` copies of ``env`` (see `EnvLike`) in one vector env with next-step autoreset.

    ``env_source(env).make(...)``: see `EnvSource.make`.
    """
    return env_source(env).make(num_envs, vectorization_mode=vectorization_mode, render_mode=render_mode)
