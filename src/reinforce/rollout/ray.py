"""Rollouts on Ray: actors that each own a vector env and a copy of the policy, and the learner's side of them.

Per update the learner puts the policy's weights (observation-normalisation statistics included) in Ray's
object store once; each worker loads them, collects its share of the update's episodes with the same
`reinforce.rollout.collect` as local training, and returns its `RolloutBatch`; the learner joins the batches
in worker order (`reinforce.core.batch.concatenate_batches`) and trains on them with the same code as local
training. Only the collection moves; the returns, the loss, the optimizer and the statistics stay in the
learner.

Seeds: worker ``i`` gets its env reset seed and its sampling seed from (the update's collection seed, ``i``)
(worker 0 resets with the collection seed itself, as local training does), so a run is reproducible for a
fixed worker count, whatever the order in which the workers finish.

Faults: the actors are created with ``max_restarts`` and ``max_task_retries``; when a worker's process dies
mid-collection, Ray restarts the actor and runs its collection again with the same weights and seeds, so the
update gets exactly the episodes it would have had. An actor that is gone for good is replaced once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from reinforce.config import TrainConfig, worker_num_envs
from reinforce.core.batch import RolloutBatch, concatenate_batches
from reinforce.core.policies import Policy, policy_from_config
from reinforce.errors import ReinforceError
from reinforce.rollout.collect import collect
from reinforce.rollout.envs import EnvLike, env_source, make_vec_env
from reinforce.rollout.ray_support import init_ray

logger = logging.getLogger("reinforce")

START_TIMEOUT_S = 120.0
"""How long the learner waits for its workers to start (a busy cluster may need time to free CPUs)."""

MAX_RESTARTS = 3
"""How often Ray restarts a dead worker (and retries its collection) before the learner replaces it."""


def episode_shares(num_episodes: int, workers: int) -> list[int]:
    """How many of an update's ``num_episodes`` episodes each of ``workers`` workers collects (as even as can be)."""
    if workers < 1 or num_episodes < workers:
        raise ValueError(f"{num_episodes} episodes cannot be shared among {workers} workers (each needs one)")
    quotient, remainder = divmod(num_episodes, workers)
    return [quotient + (index < remainder) for index in range(workers)]


def worker_seeds(seed: int | None, workers: int) -> list[tuple[int, int] | None]:
    """``(env reset seed, torch sampling seed)`` of each worker for an update with collection seed ``seed``.

    Worker 0 resets its environments with ``seed`` itself, as local training does; the others with seeds drawn
    from ``(seed, worker index)``. None (an unseeded run) leaves every worker's streams unseeded.
    """
    if seed is None:
        return [None] * workers
    seeds: list[tuple[int, int] | None] = []
    for index in range(workers):
        env_seed, torch_seed = (int(value) for value in np.random.SeedSequence([seed, index]).generate_state(2))
        seeds.append((seed if index == 0 else env_seed, torch_seed))
    return seeds


class RolloutWorker:
    """What one Ray actor holds: a vector env and a CPU copy of the policy (a plain class, usable without Ray).

    Args:
        env: the environments' source (`reinforce.rollout.envs.EnvLike`: an id, where ``module:Env-v0`` imports
            ``module`` in the worker's process, or a callable, which Ray pickles; not a vector env).
        hyperparameters: `TrainConfig.to_dict` of the learner's config.
        num_envs: environments of this worker's vector env.
    """

    def __init__(self, env: EnvLike, hyperparameters: dict[str, Any], num_envs: int) -> None:
        config = TrainConfig.from_dict(hyperparameters)
        if config.num_threads:
            torch.set_num_threads(config.num_threads)
        self.envs = make_vec_env(env, num_envs, vectorization_mode=config.vectorization_mode)
        self.policy = policy_from_config(config, self.envs.single_observation_space, self.envs.single_action_space)

    def ready(self) -> int:
        """This worker's process id, once its environments and policy are built."""
        return os.getpid()

    def collect(
        self, state: dict[str, Tensor], num_episodes: int, seeds: tuple[int, int] | None
    ) -> tuple[int, RolloutBatch]:
        """Load the learner's ``state`` and collect ``num_episodes`` episodes; returns (this process's id, batch)."""
        self.policy.load_state_dict(state)
        env_seed = None
        if seeds is not None:
            env_seed, torch_seed = seeds
            torch.manual_seed(torch_seed)
        return os.getpid(), collect(self.envs, self.policy, num_episodes, seed=env_seed)

    def close(self) -> None:
        """Close the environments."""
        self.envs.close()


class RayRollouts:
    """The learner's handle on ``config.workers`` Ray actors that collect episodes for it.

    Creating it starts a local Ray, or joins the cluster at ``address`` (`reinforce.rollout.ray_support.init_ray`), and
    starts the actors (one CPU each).

    Raises:
        ReinforceError: Ray is missing or unreachable, the cluster has fewer CPUs than workers, or the workers
            do not start (their environment cannot be made, or no CPUs come free within `START_TIMEOUT_S`).
    """

    def __init__(self, env: EnvLike, config: TrainConfig, *, address: str | None = None) -> None:
        name = env_source(env).name
        self._ray = init_ray(address)
        cpus = self._ray.cluster_resources().get("CPU", 0)
        if cpus < config.workers:
            raise ReinforceError(
                f"workers={config.workers} needs {config.workers} CPUs and the Ray cluster has {cpus:g}: "
                "lower workers or add machines",
                fields=("workers",),
            )
        self._actor = self._ray.remote(num_cpus=1, max_restarts=MAX_RESTARTS, max_task_retries=MAX_RESTARTS)(
            RolloutWorker
        )
        self._arguments = (env, config.to_dict(), worker_num_envs(config))
        self.workers = [self._actor.remote(*self._arguments) for _ in range(config.workers)]
        self.pids: list[int] = []
        """The process id of each worker, as of its last collection."""
        try:
            self.pids = self._ray.get([worker.ready.remote() for worker in self.workers], timeout=START_TIMEOUT_S)
        except self._ray.exceptions.RayActorError as exc:
            self.close()
            raise ReinforceError(
                f"the Ray workers could not start ({_last_line(exc)}): check that {name} can be made on every node"
            ) from None
        except self._ray.exceptions.GetTimeoutError:
            self.close()
            free = self._ray.available_resources().get("CPU", 0)
            raise ReinforceError(
                f"the Ray rollout actors (workers={config.workers}) did not start within {START_TIMEOUT_S:g} s "
                f"({free:g} CPUs of the cluster are free): wait for other Ray jobs to finish, or lower workers",
                fields=("workers",),
            ) from None
        self.restarts = 0
        """Workers found running in a new process (their earlier one died) since the start."""

    def collect(self, policy: Policy, num_episodes: int, seed: int | None) -> RolloutBatch:
        """``num_episodes`` complete episodes of ``policy``, shared among the workers, as one batch.

        Args:
            policy: the learner's policy; its ``state_dict`` is what the workers act with.
            num_episodes: the update's episodes (at least one per worker).
            seed: the update's collection seed (see `worker_seeds`), or None.
        """
        state = {key: value.detach().cpu() for key, value in policy.state_dict().items()}
        state_ref = self._ray.put(state)
        shares = episode_shares(num_episodes, len(self.workers))
        seeds = worker_seeds(seed, len(self.workers))
        arguments = [(state_ref, share, pair) for share, pair in zip(shares, seeds, strict=True)]
        pending = [worker.collect.remote(*args) for worker, args in zip(self.workers, arguments, strict=True)]
        batches = []
        for index, (ref, args) in enumerate(zip(pending, arguments, strict=True)):
            pid, batch = self._result(index, ref, args)
            if self.pids[index] != pid:
                self.restarts += 1
                logger.warning("Ray worker %d was restarted (its process died): its share was collected again", index)
            self.pids[index] = pid
            batches.append(batch)
        return concatenate_batches(batches)

    def _result(self, index: int, ref: Any, arguments: Sequence[Any]) -> tuple[int, RolloutBatch]:
        """The worker's result; an actor Ray gave up on is replaced and asked once more."""
        exceptions = self._ray.exceptions
        try:
            try:
                result: tuple[int, RolloutBatch] = self._ray.get(ref)
            except exceptions.RayActorError:
                logger.warning("Ray worker %d is gone: starting a new one and collecting its share again", index)
                self._ray.kill(self.workers[index])  # it may only be unreachable: it must not keep its CPU
                self.workers[index] = self._actor.remote(*self._arguments)
                result = self._ray.get(self.workers[index].collect.remote(*arguments), timeout=START_TIMEOUT_S)
        except exceptions.RayTaskError as exc:
            if isinstance(exc.cause, ReinforceError):  # bad input found in the worker: the same one-line error
                raise exc.cause from None
            raise
        except (exceptions.RayActorError, exceptions.GetTimeoutError) as exc:
            reason = "did not start in time" if isinstance(exc, exceptions.GetTimeoutError) else _last_line(exc)
            raise ReinforceError(
                f"Ray worker {index} died and its replacement failed too ({reason}): check the Ray cluster's nodes "
                "and the worker logs (ray logs), then resume the run"
            ) from None
        return result

    def close(self) -> None:
        """Stop the actors (the Ray instance itself is left running)."""
        for worker in self.workers:
            self._ray.kill(worker)
        self.workers = []


def _last_line(exc: BaseException) -> str:
    """The last non-empty line of an exception's message (where Ray puts the original error)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
