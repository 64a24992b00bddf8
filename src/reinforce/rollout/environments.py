"""An agent's environments: where they come from, its vector env, and the Ray workers that collect instead.

`Environments` is the one collector interface the agent sees: `Environments.collect` runs the episodes in this
process's vector env, or with ``backend="ray"`` on the rollout workers (`reinforce.rollout.ray`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from gymnasium.vector import VectorEnv

from reinforce.config import TrainConfig, episodes_per_update
from reinforce.core.batch import RolloutBatch
from reinforce.core.policies import Policy
from reinforce.errors import ReinforceError
from reinforce.rollout.collect import collect
from reinforce.rollout.envs import EnvSource
from reinforce.rollout.ray_support import check_backend

if TYPE_CHECKING:
    from reinforce.rollout.ray import RayRollouts


def collection_seed(seed: int | None, num_updates: int) -> int | None:
    """The env reset seed of the collection for update ``num_updates + 1``: from (seed, updates), None unseeded.

    Every collection starts from a seeded reset, so the environments carry no random state from one update
    to the next, and a run resumed from a checkpoint sees the same episodes as an uninterrupted one.
    """
    if seed is None:
        return None
    return int(np.random.SeedSequence([seed, num_updates]).generate_state(1)[0])


class Environments:
    """The environments of one agent, or why it has none.

    Attributes:
        source: how the environments are made (None for an agent made from spaces).
        envs: the vector env the agent collects in (one sub-env when Ray's workers collect, to know the
            spaces), or None. Evaluations, videos and checks make their own from ``source``.
        ray_address: with ``backend="ray"``, the Ray cluster to join (None: a local Ray).
        unavailable: why `reinforce.load` gave the agent no environment, or None.
    """

    def __init__(
        self,
        source: EnvSource | None = None,
        envs: VectorEnv[Any, Any, Any] | None = None,
        *,
        ray_address: str | None = None,
        unavailable: str | None = None,
    ) -> None:
        self.source = source
        self.envs = envs
        self.ray_address = ray_address
        self.unavailable = unavailable
        self.rollouts: RayRollouts | None = None
        """The Ray rollout workers, once `start_workers` has started them."""

    @classmethod
    def open(
        cls, source: EnvSource, config: TrainConfig, *, ray_address: str | None, custom_modules: bool
    ) -> Environments:
        """``config.num_envs`` environments from ``source`` (one if Ray's workers will collect).

        Raises:
            ReinforceError: the backend cannot run this agent (see `reinforce.rollout.ray_support.check_backend`)
                or the env cannot be made.
        """
        given_vector_env = source.vector_env is not None
        check_backend(config.backend, ray_address, custom_modules=custom_modules, vector_env=given_vector_env)
        local_envs = config.num_envs if config.backend == "local" else 1
        envs = source.make(local_envs, vectorization_mode=config.vectorization_mode)
        return cls(source, envs, ray_address=ray_address)

    def require(self) -> VectorEnv[Any, Any, Any]:
        """The vector env, or a `ReinforceError` saying how to give the agent one."""
        if self.envs is None:
            why = f" ({self.unavailable})" if self.unavailable else ""
            raise ReinforceError(
                f"this agent has no environment{why}: it can predict and save; to train or evaluate it, load "
                "it with reinforce.load(run_dir, env=...) or create it with Reinforce(env, ...)"
            )
        return self.envs

    def require_source(self) -> EnvSource:
        """Where the environments come from, or `require`'s error."""
        self.require()
        assert self.source is not None
        return self.source

    def start_workers(self, config: TrainConfig) -> None:
        """With ``backend="ray"``, start (or join) Ray and the rollout workers now, if not yet done.

        Raises:
            ReinforceError: Ray is missing or unreachable, or has fewer CPUs than ``workers``.
        """
        if config.backend == "ray" and self.rollouts is None:
            from reinforce.rollout.ray import RayRollouts

            self.rollouts = RayRollouts(self.require_source(), config, address=self.ray_address)

    def collect(self, policy: Policy, *, config: TrainConfig, seed: int | None, device: torch.device) -> RolloutBatch:
        """An update's ``episodes_per_update`` episodes of ``policy``, reset with ``seed``, here or on the workers."""
        num_episodes = episodes_per_update(config)
        self.start_workers(config)
        if self.rollouts is not None:
            return self.rollouts.collect(policy, num_episodes, seed)
        return collect(self.require(), policy, num_episodes, seed=seed, device=device)

    def close(self) -> None:
        """Close the vector env and stop the Ray workers, if any."""
        if self.envs is not None:
            self.envs.close()
        if self.rollouts is not None:
            self.rollouts.close()
            self.rollouts = None
