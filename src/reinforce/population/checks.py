"""The members' verification checks together: each member's deterministic episodes on its own envs, in lockstep.

A single run's check (`reinforce.verification.Verifier`) is `reinforce.evaluation.evaluate_policy`: its policy's
deterministic episodes on a vector env of its own, reset with its evaluation seed. `evaluate_members` runs the
checks of several members at once: each member's vector env is made and seeded as `evaluate_policy` makes and
seeds it, and all of them step together with one batched policy call per step
(`reinforce.population.batched.population_act`), so each member's episodes are the ones its single check sees
(its actions equal up to float rounding in the batched matmuls), for the cost of about one check.

`check_due` says whether a member's check is due after an update, `checks_due` makes the checks due after a round
(and their confirmations), and `riding_checks` picks those that ride in the next round's collection instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from gymnasium.vector import AsyncVectorEnv, SyncVectorEnv, VectorEnv

from reinforce.evaluation import evaluation_seed, summarize
from reinforce.population.batched import population_act
from reinforce.rollout.collect import collect_groups
from reinforce.rollout.masks import INFO_KEY
from reinforce.rollout.mlp_sampler import MLPSampler

if TYPE_CHECKING:
    from reinforce.agent import Reinforce
    from reinforce.core.batch import RolloutBatch
    from reinforce.population.rounds import MemberRun

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
    size, seeds = check_layout(members, episodes)
    first = members[0]
    envs: list[VectorEnv[Any, Any, Any]] = []
    try:
        if own_envs:
            for member in members:
                source = member.environments.require_source()
                envs.append(source.make(size, vectorization_mode=member.config.vectorization_mode))
            stepped: VectorEnv[Any, Any, Any] = Lockstep(envs)
            reset_seed: Any = seeds  # one per block
        else:
            stepped = shared_check_env(members, size)
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


def check_layout(members: Sequence[Reinforce], episodes: int) -> tuple[int, list[int]]:
    """The sub-envs of each member's check of ``episodes`` episodes and the members' evaluation seeds.

    As `reinforce.evaluation.evaluate_policy` makes a check: ``min(episodes, EVALUATION_ENVS)`` sub-envs, reset
    with the member's default evaluation seed.
    """
    return min(episodes, EVALUATION_ENVS), [evaluation_seed(member.seed, None) or 0 for member in members]


def shared_check_env(members: Sequence[Reinforce], size: int) -> VectorEnv[Any, Any, Any]:
    """One vector env of ``size`` sub-envs per member for the members' checks (`check_layout`), of the first's env.

    Reset it with `sub_env_seeds` of the members' evaluation seeds.
    """
    first = members[0]
    source = first.environments.require_source()
    return source.make(len(members) * size, vectorization_mode=first.config.vectorization_mode)


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


def check_due(run: MemberRun, metrics: dict[str, Any]) -> bool:
    """Whether ``run``'s member has a check due after the update of these ``metrics`` that `checks_due` makes.

    That is a verifier's deterministic check on the member's own env and default seed; others (an ``eval_env``
    of the user's, a stochastic one) the verifier makes itself.
    """
    verifier = run.verifier
    return (
        verifier is not None
        and verifier.eval_env is None
        and verifier.deterministic
        and verifier.seed is None
        and verifier.due(run.member, metrics)
    )


def checks_due(
    updated: Sequence[tuple[MemberRun, dict[str, Any]]], made_checks: Mapping[int, dict[str, Any]] | None = None
) -> dict[int, dict[int, dict[str, Any]]]:
    """The verification checks due after a round, made together (`reinforce.population.checks`), confirmations too.

    ``made_checks``: checks already made, by ``id`` of a member's run (those that rode in the next round's
    collection, `riding_checks`): their confirmations are made here, not the checks again.

    Returns:
        By ``id`` of a member's run, its checks' summaries by number of episodes, as its verifier takes them.
    """
    made_checks = made_checks or {}
    due = [run for run, metrics in updated if check_due(run, metrics)]
    made: dict[int, dict[int, dict[str, Any]]] = {id(run): {} for run in due}
    confirming = []
    for episodes in sorted({run.verifier.episodes for run in due if run.verifier is not None}):
        group = [run for run in due if run.verifier is not None and run.verifier.episodes == episodes]
        unmade = [run for run in group if id(run) not in made_checks]
        checked = {}
        if unmade:
            together = evaluate_members([run.member for run in unmade], episodes, own_envs=False)
            checked = dict(zip(map(id, unmade), together, strict=True))
        for run in group:
            summary = made_checks[id(run)] if id(run) in made_checks else checked[id(run)]
            made[id(run)][episodes] = summary
            if run.verifier is not None and run.verifier.confirms(summary["mean_return"]):
                confirming.append(run)
    for episodes in sorted({run.verifier.confirm_episodes or 0 for run in confirming if run.verifier is not None}):
        group = [run for run in confirming if run.verifier is not None and run.verifier.confirm_episodes == episodes]
        for run, summary in zip(group, evaluate_members([run.member for run in group], episodes), strict=True):
            made[id(run)][episodes] = summary
    return made


def riding_checks(
    waiting: Sequence[tuple[MemberRun, dict[str, Any]]], running: Sequence[MemberRun]
) -> list[tuple[MemberRun, dict[str, Any]]]:
    """The updates of ``waiting`` whose checks ride in the next round's collection.

    A check due after a member's update (`check_due`) is of the policy that the member's next collection samples:
    where the member trains on (``running``), the check's deterministic episodes run in that collection's vector
    env, their own sub-envs reset with the member's evaluation seed (as `evaluate_members` on a shared env resets
    them), stepped with the collection's steps: a round then costs about one collection where it cost a
    collection and a check (each step of a vector env costs per call more than per sub-env). Those of one number
    of episodes (the first such member's) ride; the member's update waits for the check (`Population.learn`:
    a confirmed member stops at the checked update, and the round's batch is dropped).
    """
    members = {id(run) for run in running}
    due = [(run, metrics) for run, metrics in waiting if id(run) in members and check_due(run, metrics)]
    episodes = {run.verifier.episodes for run, _ in due[:1] if run.verifier is not None}
    return [(run, metrics) for run, metrics in due if run.verifier is not None and run.verifier.episodes in episodes]
