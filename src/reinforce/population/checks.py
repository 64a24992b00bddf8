"""The members' verification checks together: each member's deterministic episodes on its own envs, in lockstep.

A single run's check (`reinforce.verification.Verifier`) is `reinforce.evaluation.evaluate_policy`: its policy's
deterministic episodes on a vector env of its own, reset with its evaluation seed. `evaluate_members` runs the
checks of several members at once: each member's vector env is made and seeded as `evaluate_policy` makes and
seeds it, and all of them step together with one batched policy call per step
(`reinforce.population.batched.population_act`), so each member's episodes are the ones its single check sees
(its actions equal up to float rounding in the batched matmuls), for the cost of about one check.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from gymnasium.vector import AsyncVectorEnv, SyncVectorEnv, VectorEnv

from reinforce.evaluation import summarize
from reinforce.population.batched import population_act
from reinforce.rollout.collect import collect_groups
from reinforce.rollout.masks import INFO_KEY
from reinforce.rollout.mlp_sampler import MLPSampler

if TYPE_CHECKING:
    from reinforce.agent import Reinforce
    from reinforce.core.batch import RolloutBatch

EVALUATION_ENVS = 100
"""The most sub-envs of one member's evaluation env, as `reinforce.evaluation.evaluate_policy` makes it."""


class Lockstep(VectorEnv[Any, Any, Any]):
    """Vector envs of one kind stepped as one: sub-env block k is ``envs[k]``, reset with its own seed.

    ``reset(seed=[s_0, ..., s_K-1])`` resets ``envs[k]`` with ``seed=s_k`` (as `evaluate_policy` resets its
    env); the infos carry the action masks of the blocks (``info["action_mask"]``), nothing else.
    """

    def __init__(self, envs: Sequence[VectorEnv[Any, Any, Any]]) -> None:
        self.envs = list(envs)
        first = self.envs[0]
        self.num_envs = sum(env.num_envs for env in self.envs)
        self.single_observation_space = first.single_observation_space
        self.single_action_space = first.single_action_space
        self.metadata = first.metadata
        self.spec = first.spec
        self._bounds = np.cumsum([0] + [env.num_envs for env in self.envs])

    def reset(self, *, seed: Any = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Reset every block, ``envs[k]`` with ``seed[k]`` (a list of one seed per block) or ``seed``."""
        seeds = seed if isinstance(seed, list) else [seed] * len(self.envs)
        results = [env.reset(seed=block_seed) for env, block_seed in zip(self.envs, seeds, strict=True)]
        return np.concatenate([result[0] for result in results]), self._infos([result[1] for result in results])

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        """Step every block with its rows of ``actions``."""
        results = [
            env.step(actions[start:end])
            for env, start, end in zip(self.envs, self._bounds[:-1], self._bounds[1:], strict=True)
        ]
        parts = [np.concatenate([np.asarray(result[index]) for result in results]) for index in range(4)]
        return parts[0], parts[1], parts[2], parts[3], self._infos([result[4] for result in results])

    def _infos(self, infos: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """The blocks' action masks as one vector env's infos (none where no block has one)."""
        if not any(INFO_KEY in info for info in infos):
            return {}
        values: list[Any] = []
        present = []
        for env, info in zip(self.envs, infos, strict=True):
            size = env.num_envs
            present.append(np.asarray(info.get(f"_{INFO_KEY}", np.full(size, INFO_KEY in info)), dtype=bool))
            values.extend(list(info[INFO_KEY]) if INFO_KEY in info else [None] * size)
        masks = np.empty(len(values), dtype=object)
        masks[:] = values
        return {INFO_KEY: masks, f"_{INFO_KEY}": np.concatenate(present)}

    def close(self, **kwargs: Any) -> None:
        """Close every block."""
        for env in self.envs:
            env.close()


def evaluate_members(members: Sequence[Reinforce], episodes: int, *, own_envs: bool = True) -> list[dict[str, Any]]:
    """`reinforce.evaluation.evaluate_policy` of each member (deterministic, its own env, its default seed).

    All members act with one batched policy call per step. With ``own_envs``, each member's vector env is made
    and seeded as `evaluate_policy` makes it (a `Lockstep` of them): each member's summary is the one its own
    evaluation gives (the same episodes). Without, the members share one vector env of ``K * G`` sub-envs,
    stepped as one (cheaper where each step call costs, as CartPole's): where it takes a seed per sub-env
    (Gymnasium's sync and async vector envs) the episodes are still each member's own; a natively vectorised
    env (CartPole's) takes one seed, derived from the members' evaluation seeds, and each member's episodes are
    other draws of the same start distribution.
    """
    size = min(episodes, EVALUATION_ENVS)
    seeds = [member._evaluation_seed(None) or 0 for member in members]
    first = members[0]
    envs: list[VectorEnv[Any, Any, Any]] = []
    try:
        if own_envs:
            for member in members:
                envs.append(member._require_source().make(size, vectorization_mode=member.config.vectorization_mode))
            stepped: VectorEnv[Any, Any, Any] = Lockstep(envs)
            reset_seed: Any = seeds  # one per block
        else:
            stepped = first._require_source().make(
                len(members) * size, vectorization_mode=first.config.vectorization_mode
            )
            envs.append(stepped)
            reset_seed = sub_env_seeds(stepped, seeds, size)
        policies = [member.policy for member in members]
        batches = collect_groups(
            stepped,
            population_act(policies, deterministic=True),
            [episodes] * len(members),
            action_squash=first.policy.action_squash,
            seed=reset_seed,
            device=first.device,
            sampler=MLPSampler.of_members(policies, stepped.num_envs, deterministic=True),
        )
    finally:
        for env in envs:
            env.close()
    return check_summaries(batches)


def check_summaries(batches: Sequence[RolloutBatch | None]) -> list[dict[str, Any]]:
    """The summaries of deterministic evaluations' batches, as `reinforce.evaluation.evaluate_policy` gives them."""
    summaries = []
    for batch in batches:
        assert batch is not None
        summaries.append(summarize(batch.episode_returns, batch.episode_lengths, True))
    return summaries


def sub_env_seeds(envs: VectorEnv[Any, Any, Any], seeds: Sequence[int], size: int | Sequence[int]) -> int | list[int]:
    """The reset seed of a vector env of ``size`` sub-envs per member (``size[k]`` for member k) of these seeds.

    Vector envs of Gymnasium's sync and async classes take one seed per sub-env: member k's ``seeds[k] + i``, as
    a vector env of its own reset with ``seeds[k]`` seeds them; a natively vectorised env (CartPole's) takes one
    seed, derived from all of them.
    """
    sizes = [size] * len(seeds) if isinstance(size, int) else list(size)
    if isinstance(envs, (SyncVectorEnv, AsyncVectorEnv)):
        return [seed + index for seed, count in zip(seeds, sizes, strict=True) for index in range(count)]
    return int(np.random.SeedSequence(list(seeds)).generate_state(1)[0])
