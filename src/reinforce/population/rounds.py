"""One round of a `reinforce.population.Population`: the members' updates, their checks, their run directories.

`update_members` updates each member on its batch (the policy steps batched, `reinforce.population.batched`, and
the textbook per-step updates, `per_step_members`);
`collect_round` collects a round, the checks due riding in it (`reinforce.population.checks.riding_checks`);
`play_round` is a round (the collection, the riders' updates finished, the members' updates); `finish_updates`
logs and checks the updates (the checks due made together, `reinforce.population.checks.checks_due`),
`finish_pending` those left when the loop stops;
`MemberRun` is one member's side of ``Population.learn`` (its budget, log, checkpoints and verified stop);
`member_generators` seeds each member's action draws.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from gymnasium.vector import AsyncVectorEnv, SyncVectorEnv
from torch import Tensor

from reinforce.callbacks import TrainingRun
from reinforce.core.batch import RolloutBatch
from reinforce.core.policies import CategoricalPolicy
from reinforce.core.textbook import linear_softmax_per_step_members
from reinforce.errors import NonFiniteError, ReinforceError
from reinforce.population.batched import batched_update, policy_step, population_act
from reinforce.population.checks import (
    Lockstep,
    check_layout,
    check_summaries,
    checks_due,
    shared_check_env,
    sub_env_seeds,
)
from reinforce.rollout.collect import Act, Sampler, collect_groups
from reinforce.rollout.environments import collection_seed
from reinforce.rollout.mlp_sampler import MemberUniforms, MLPSampler
from reinforce.run.metrics import RunLog
from reinforce.training import commit, stop_on_training_mean
from reinforce.verification import make_verifier, verified_at_checkpoint

if TYPE_CHECKING:
    from gymnasium.vector import VectorEnv

    from reinforce.agent import Reinforce

logger = logging.getLogger("reinforce")


def update_members(
    members: Sequence[Reinforce], batches: Sequence[RolloutBatch], collected_s: float = 0.0
) -> list[dict[str, Any] | ReinforceError]:
    """Each member's update on its batch (the policy steps batched where `batched_update` says).

    Returns each member's metrics, or the error that stopped it. Each member's training time counts its share of
    ``collected_s`` and of the batched step.
    """
    start = time.perf_counter()
    steps: list[dict[str, float] | NonFiniteError | None] = [None] * len(members)
    returns: list[Tensor | None] = [None] * len(members)
    if batched_update(members, batches):
        weights = []
        for index, (member, batch) in enumerate(zip(members, batches, strict=True)):
            returns[index], weights_TN = member.batch_weights(batch)
            weights.append(weights_TN)
        steps = list(policy_step(members, batches, weights))
    elif len(members) > 1 and all(member.config.update == "per_step" for member in members):
        returns, steps = per_step_members(members, batches)
    share = (collected_s + time.perf_counter() - start) / len(members)
    results: list[dict[str, Any] | ReinforceError] = []
    for member, batch, step, returns_TN in zip(members, batches, steps, returns, strict=True):
        member.train_time_s += share
        if isinstance(step, NonFiniteError):
            results.append(step)
            continue
        try:
            stepped = None if step is None or returns_TN is None else (returns_TN, step)
            results.append(member.update(batch, stepped=stepped))
        except ReinforceError as error:
            results.append(error)
    return results


def per_step_members(
    members: Sequence[Reinforce], batches: Sequence[RolloutBatch]
) -> tuple[list[Tensor | None], list[dict[str, float] | NonFiniteError | None]]:
    """The members' textbook per-step updates (``update="per_step"``) as one batched computation, where it applies.

    It applies to linear softmax policies with plain SGD
    (`reinforce.core.textbook.linear_softmax_per_step_members`): then every member's policy has taken its
    per-step updates on its batch, and the result is each member's returns and loss metrics (for
    `Reinforce.update`'s ``stepped``). Elsewhere both lists hold None and each member updates alone.
    """
    weights = [member.batch_weights(batch) for member, batch in zip(members, batches, strict=True)]
    losses = linear_softmax_per_step_members(
        [member.policy for member in members],
        [member.optimizer for member in members],
        batches,
        [weights_TN for _, weights_TN in weights],
        [member.config for member in members],
    )
    if losses is None:
        return [None] * len(members), [None] * len(members)
    return [returns_TN for returns_TN, _ in weights], list(losses)


class MemberRun:
    """One member's side of `Population.learn`: its budget, run directory, log, checkpoints and verified stop."""

    def __init__(
        self, member: Reinforce, target: int, path: Path | None, log: RunLog | None, checkpoint_every: int
    ) -> None:
        self.member = member
        self.target = target
        self.path = path
        self.log = log
        self.checkpoint_every = checkpoint_every
        self.stopped = path is not None and verified_at_checkpoint(member, path) is not None
        self.pending: dict[str, Any] | None = None
        """The metrics of the member's last update while that update is not finished (`after_update`)."""
        self.verifier = make_verifier(member)
        if self.verifier is not None:
            self.verifier.start(member, TrainingRun(path, self.commit))

    def running(self, failed: bool) -> bool:
        """Whether the member trains on: no error (``failed``), budget left, not stopped (verified, solved)."""
        member = self.member
        return (
            not failed and not self.stopped and member.num_env_steps < self.target and not stop_on_training_mean(member)
        )

    def after_update(
        self, metrics: dict[str, Any], checks: dict[int, dict[str, Any]] | None = None, *, check: bool = True
    ) -> None:
        """Log the update, check the member's policy (its verified stop; ``checks``: made already), commit.

        ``check`` False: no check (the population's env failed), the row and the commit only. The update is then
        no longer `pending` (its row written once, whatever fails after it).
        """
        if self.log is not None:
            self.log.write(metrics)
        self.pending = None
        if check and self.verifier is not None and not self.verifier(self.member, metrics, evaluations=checks):
            self.stopped = True
        if self.checkpoint_every and self.member.num_updates % self.checkpoint_every == 0:
            self.commit()

    def commit(self) -> None:
        """Commit the member's checkpoint (its metrics rows first), unless the last one is at this update."""
        if self.path is not None and self.member.checkpoint_update != self.member.num_updates:
            commit(self.member, self.path, self.log)


def member_generators(members: Sequence[Reinforce]) -> list[torch.Generator]:
    """Each member's generator of its next collection's draws, seeded from its seed and update count.

    A member's actions are then drawn independently of the other members (which ones train, how long their
    collections run), and a resumed member draws what an uninterrupted one would.
    """
    generators = []
    for member in members:
        seed = int(np.random.SeedSequence([member.seed or 0, member.num_updates, 1]).generate_state(1)[0])
        generators.append(torch.Generator(device=member.device).manual_seed(seed))
    return generators


def round_draws(
    members: Sequence[Reinforce], num_envs: int, checking: Sequence[Reinforce] = (), check_envs: int = 0
) -> tuple[Act, Sampler | None]:
    """A round's batched policy call for ``members`` on ``num_envs`` sub-envs, and its NumPy sampler (or None).

    Both draw each member's actions from the member's own generator (`member_generators`). On the CPU the
    uniforms come a block of steps at a time (`MemberUniforms`: the values of one draw per step, which CUDA's
    generator does not give), shared by the call and the sampler, which computes the same draws in NumPy.
    With ``checking`` members (their checks riding in the collection, `riding_checks`), the last
    ``len(checking) * check_envs`` of the ``num_envs`` rows are theirs, ``check_envs`` each, deterministic.
    """
    rows = num_envs - len(checking) * check_envs
    policies, generators = [member.policy for member in members], member_generators(members)
    dtype = next(policies[0].parameters()).dtype
    blocks = isinstance(policies[0], CategoricalPolicy) and all(g.device.type == "cpu" for g in generators)
    uniforms = MemberUniforms(generators, rows // len(members), dtype) if blocks else None
    act = _lazy(lambda: population_act(policies, generators=generators, uniforms=uniforms))
    sampler = MLPSampler.of_members(policies, rows, uniforms=uniforms)
    if not checking:
        return act, sampler
    checks = [member.policy for member in checking]
    check_act = _lazy(lambda: population_act(checks, deterministic=True))
    check_sampler = MLPSampler.of_members(checks, num_envs - rows, deterministic=True)

    def both_act(observations: Tensor, masks: Tensor | None) -> Tensor:
        first = act(observations[:rows], None if masks is None else masks[:rows])
        return torch.cat([first, check_act(observations[rows:], None if masks is None else masks[rows:])])

    def both_sampler(observations: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        assert sampler is not None and check_sampler is not None
        return np.concatenate([sampler(observations[:rows]), check_sampler(observations[rows:])])

    return both_act, None if sampler is None or check_sampler is None else both_sampler


def collect_round(
    make_envs: Callable[[int], VectorEnv[Any, Any, Any]],
    members: Sequence[Reinforce],
    episodes: int,
    riders: Sequence[tuple[MemberRun, dict[str, Any]]],
    num_envs: int,
) -> tuple[list[RolloutBatch | None], list[dict[str, Any]]]:
    """A round's batched collection of ``members``' episodes (``num_envs`` sub-envs each), with ``riders``' checks.

    ``make_envs(C)``: the population's vector env with ``C`` sub-envs more for the checks. Gymnasium's sync and
    async vector envs (whose sub-envs cost to make, and async ones a process each) keep the population's env and
    step a vector env of the checks' beside it (`reinforce.population.checks.Lockstep`, made for the round as
    `evaluate_members` makes it); a natively vectorised env (CartPole's, cheap to make) is made larger by the
    checks' sub-envs for the round, so that the checks cost no step call of their own.

    Returns:
        Each member's batch, and each rider's check summary (as `evaluate_members` gives it); the riders'
        updates are not finished here (`play_round` does it).
    """
    checking = [run.member for run, _ in riders]
    verifier = riders[0][0].verifier if riders else None
    check_episodes = 0 if verifier is None else verifier.episodes
    check_size, check_seeds = check_layout(checking, check_episodes)
    collection_seeds = [collection_seed(member.seed, member.num_updates) or 0 for member in members]
    sizes = [num_envs] * len(members) + [check_size] * len(checking)
    envs = make_envs(0)
    seed: Any = sub_env_seeds(envs, collection_seeds, num_envs)
    check_envs = None
    if checking and isinstance(envs.unwrapped, (SyncVectorEnv, AsyncVectorEnv)):
        check_envs = shared_check_env(checking, check_size)
        seed = [seed, sub_env_seeds(check_envs, check_seeds, check_size)]  # one per block
        envs = Lockstep([envs, check_envs])
    elif checking:
        envs = make_envs(len(checking) * check_size)
        seed = sub_env_seeds(envs, collection_seeds + check_seeds, sizes)
    act, sampler = round_draws(members, envs.num_envs, checking, check_size)
    try:
        batches = collect_groups(
            envs,
            act,
            [episodes] * len(members) + [check_episodes] * len(checking),
            action_squash=members[0].policy.action_squash,
            seed=seed,
            device=members[0].device,
            sampler=sampler,
            sizes=sizes,
        )
    finally:
        if check_envs is not None:
            check_envs.close()
    return batches[: len(members)], check_summaries(batches[len(members) :])


def play_round(
    make_envs: Callable[[int], VectorEnv[Any, Any, Any]],
    members: Sequence[Reinforce],
    episodes: int,
    riders: Sequence[tuple[MemberRun, dict[str, Any]]],
    num_envs: int,
) -> list[dict[str, Any] | ReinforceError | None]:
    """One round: the collection (`collect_round`), the riders' updates finished, then the members' updates.

    The riders' updates are finished with the checks made (`finish_updates`) before any member updates again; a
    member that stops on its check (confirmed: it stops at the checked update) is not updated (None). A member's
    training time counts its share of the collection (the riding checks' episodes, stepped in the same calls,
    included) and of the batched step, not the checks' confirmations or the riders' rows, evaluations and commits.

    Returns:
        Each member's metrics, the error that stopped it alone, or None (stopped on its check).

    Raises:
        ReinforceError: the collection failed (the env, or non-finite values), or a rider's confirmation or its
            writing did: no member can go on.
    """
    start = time.perf_counter()
    batches, made = collect_round(make_envs, members, episodes, riders, num_envs)
    collected = time.perf_counter() - start
    if riders:
        finish_updates(riders, {id(run): summary for (run, _), summary in zip(riders, made, strict=True)})
    stopped = {id(run.member) for run, _ in riders if run.stopped}
    kept = [index for index, member in enumerate(members) if id(member) not in stopped]
    complete = []
    for index in kept:
        batch = batches[index]
        assert batch is not None  # every member collects episodes
        complete.append(batch)
    results: list[dict[str, Any] | ReinforceError | None] = [None] * len(members)
    if kept:
        shares = collected * len(kept) / len(members)
        updated = update_members([members[index] for index in kept], complete, shares)
        for index, result in zip(kept, updated, strict=True):
            results[index] = result
    return results


def _lazy(make: Callable[[], Act]) -> Act:
    """The batched call that ``make()`` gives, made at its first call (never where a sampler takes every step).

    The parameters do not change during a collection, so the call is the same whenever it is made.
    """
    made: list[Act] = []

    def act(observations: Tensor, masks: Tensor | None) -> Tensor:
        if not made:
            made.append(make())
        return made[0](observations, masks)

    return act


def finish_updates(
    updated: Sequence[tuple[MemberRun, dict[str, Any]]], made_checks: Mapping[int, dict[str, Any]] | None = None
) -> None:
    """Each updated member's log row and check (the checks due made together, `checks_due`), and its commit."""
    checks = checks_due(updated, made_checks)
    for run, metrics in updated:
        run.after_update(metrics, checks.get(id(run)))


def finish_pending(runs: Sequence[MemberRun]) -> None:
    """Finish the updates still pending after `Population.learn`'s loop (`MemberRun.pending`: a failed round, a signal).

    With their checks made now, alone (`finish_updates`), as a resumed run would have them; where that fails too,
    without the checks: each update's row only (a `ReinforceError` is then logged; anything else is raised once
    the rows are written, and `Population.learn` then commits nothing, as on any exception).
    """
    try:
        finish_updates([(run, run.pending) for run in runs if run.pending is not None])
    except ReinforceError as error:
        logger.warning("the checks of the last updates failed, the updates are kept unchecked: %s", error)
    finally:
        for run in runs:
            if run.pending is not None:
                run.after_update(run.pending, check=False)
