"""`Population`: K independent agents of one environment and config, one per seed, trained in one process.

A `Population` holds K `reinforce.agent.Reinforce` members (member k is built exactly as ``Reinforce(env,
seed=seeds[k], ...)``: the same initial weights) and runs each round of updates as one batched computation
(`reinforce.population.batched`): one vector env of ``R * num_envs`` sub-envs for the R members still training,
member k owning its block of ``num_envs``, one batched policy call per step, then one batched backward for the
members' policy steps, each member's gradient clipped by its own norm and stepped by its own optimizer; the rest
of each member's update (baseline, counters) is its own `Reinforce.update`. Each member writes its own run
directory ``RUN_DIR/seed-S``, loadable and resumable like any other.

Members are independent: each collects its own ``episodes_per_update`` episodes per update, from envs reset
with its own collection seed (where the vector env takes a seed per sub-env), with its Categorical actions drawn
from a generator of its own (seeded from its seed and update count), and stops on its own: budget,
``stop_on_solve`` by its ``solve_criterion`` (the verified stop: each member's own
`reinforce.verification.make_verifier`, with evaluations.csv and ``best/``; a member's check rides in its next
round's collection, `reinforce.population.checks.riding_checks`), or an error such as a non-finite step
(recorded in `Population.errors`), while the others go on. A member that stops leaves the vector env (it is
rebuilt smaller: every collection starts from a seeded reset anyway). Where the envs take a seed per sub-env
(Gymnasium's sync and async vector envs) and the policy is Categorical (other distributions sample from torch's
generator), a member's run is therefore the same whichever members train beside it, up to float rounding in the
batched matmuls, and a resumed population goes on as an uninterrupted one; a natively vectorised env (CartPole's) takes
one reset seed for all sub-envs, and there a member's run is statistically, not exactly, the same. It is never
number for number the single run of its seed (that one samples from torch's global generator). A member's
training time (``wall_time_s``) counts an equal share of each collection and batched step it took part in.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from gymnasium.vector import VectorEnv

from reinforce.agent import Reinforce
from reinforce.callbacks import EvalCallback
from reinforce.config import DEFAULT_CHECKPOINT_EVERY, TrainConfig, as_count, episodes_per_update
from reinforce.config_checks import MAX_SEEDS, seeds_text
from reinforce.core.device import in_config_threads, torch_threads
from reinforce.errors import ReinforceError, TrainingInterrupted
from reinforce.population.checks import riding_checks
from reinforce.population.rounds import MemberRun, finish_pending, finish_updates, play_round
from reinforce.rollout.envs import EnvLike, Wrapper
from reinforce.run.files import MEMBER_DIR, run_path, training_lock
from reinforce.run.metrics import RunLog
from reinforce.snapshots import write_run_config
from reinforce.training import StopSignals, claim, require_trainable, schedule_learning_rates

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from reinforce.config import Hyperparameters

logger = logging.getLogger("reinforce")


class Population:
    """K agents of one environment and config, one per seed, trained as one batched computation.

    Example:
        >>> population = Population("CartPole-v1", seeds=range(10))
        >>> population.learn(300_000, run_dir="runs/cartpole")  # doctest: +SKIP
        >>> [member.solved for member in population.members]  # doctest: +SKIP

    Args:
        env: the environment, as `Reinforce` takes it (an id, a spec or a callable; not a vector env).
        seeds: one seed per member (distinct integers).
        config: a complete `TrainConfig` (as `Reinforce`'s).
        preset: a named set of values for the env (as `Reinforce`'s).
        env_kwargs: as `Reinforce`'s.
        wrappers: as `Reinforce`'s.
        **overrides: `TrainConfig` fields, the same for every member.

    Raises:
        ReinforceError: no seeds, a seed given twice, ``backend="ray"``, a vector env, or anything `Reinforce`
            refuses.
    """

    def __init__(
        self,
        env: EnvLike,
        seeds: Sequence[int],
        *,
        config: TrainConfig | None = None,
        preset: str | None = None,
        env_kwargs: Mapping[str, Any] | None = None,
        wrappers: Sequence[Wrapper] | None = None,
        **overrides: Unpack[Hyperparameters],
    ) -> None:
        seeds = _seed_list(seeds)
        _check_seeds(seeds)
        if isinstance(env, VectorEnv):
            raise ReinforceError("a population makes its own vector env: pass an id, a spec or a callable as env")
        members: list[Reinforce] = []
        try:
            for seed in seeds:
                members.append(
                    Reinforce(
                        env,
                        config=config,
                        seed=seed,
                        preset=preset,
                        env_kwargs=env_kwargs,
                        wrappers=wrappers,
                        **overrides,
                    )
                )
        except BaseException:
            for member in members:
                member.close()
            raise
        self._join(members)

    @classmethod
    def from_agents(cls, agents: Sequence[Reinforce]) -> Population:
        """A population of existing agents (e.g. `reinforce.resume` of each ``RUN_DIR/seed-S``), which it owns.

        Raises:
            ReinforceError: agents without a seed, that cannot train (`reinforce.training.require_trainable`),
                seeds given twice, or agents whose environment or config (the seed aside) differ.
        """
        population = cls.__new__(cls)
        seeds = [agent.seed for agent in agents]
        _check_seeds(seeds)
        for agent in agents:
            require_trainable(agent)
            if agent.config != agents[0].config or agent.env_id != agents[0].env_id:
                raise ReinforceError(
                    f"the agent of seed {agent.seed} has another environment or config than the first one's: a "
                    "population's members differ only in their seeds"
                )
        population._join(list(agents))
        return population

    def _join(self, members: list[Reinforce]) -> None:
        """Take ``members`` on (closing them on failure): their checks, the population's vector env, its sampler."""
        self.members = members
        """The agents, in the order of `seeds`."""
        self.seeds: list[int] = [member.seed for member in members if member.seed is not None]
        """One per member: the seed it was made with."""
        self.errors: dict[int, ReinforceError] = {}
        """Members that stopped on an error (a non-finite step, a failing env), by seed; the others went on."""
        self.verifiers: dict[int, EvalCallback] = {}
        """The verified stop's callback of each member that has one (`reinforce.verification.make_verifier`), by
        seed: its ``verified`` is the confirmation its member stopped on, its ``best`` the best check."""
        self._envs: VectorEnv[Any, Any, Any] | None = None
        try:
            first = members[0]
            if first.config.backend != "local":
                raise ReinforceError("a population trains in one process: set backend='local'", fields=("backend",))
            self.config = first.config
            self._vector_env(len(members))  # the env's errors now, not at the first update
        except BaseException:
            self.close()
            raise
        # distributions other than Categoricals (Gaussian policies) sample from torch's generator: seeded from
        # every seed and update count, so that a population repeats exactly
        entropy = [*self.seeds, *(member.num_updates for member in members)]
        torch.manual_seed(int(np.random.SeedSequence(entropy).generate_state(1)[0]))

    @property
    def envs(self) -> VectorEnv[Any, Any, Any]:
        """The vector env: ``num_envs`` sub-envs per member still training (all, before `learn`).

        A natively vectorised env (CartPole's) has the riding checks' sub-envs too in a round that carries checks;
        Gymnasium's sync and async vector envs step the checks' own env beside this one (`riding_checks`).
        """
        assert self._envs is not None
        return self._envs

    def _vector_env(self, members: int, checks: int = 0) -> VectorEnv[Any, Any, Any]:
        """The vector env for ``members`` members' sub-envs and ``checks`` more (riding checks, `riding_checks`).

        The current one, or a new one of that size (every collection starts from a seeded reset anyway).
        """
        size = members * self.config.num_envs + checks
        if self._envs is None or self._envs.num_envs != size:
            if self._envs is not None:
                self._envs.close()
                self._envs = None
            source = self.members[0].environments.source
            assert source is not None
            self._envs = source.make(size, vectorization_mode=self.config.vectorization_mode)
        return self._envs

    def learn(
        self,
        total_steps: int | Sequence[int],
        *,
        run_dir: str | Path | None = None,
        checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
        member_finished: Callable[[int], None] | None = None,
    ) -> Population:
        """Train every member until ``total_steps`` more env steps, or solved (``stop_on_solve``), or an error.

        Each member writes its own run directory ``run_dir/seed-S`` (config.json, metrics.csv, checkpoints; with
        the verified stop evaluations.csv and best/), as `Reinforce.learn` would; a member that stops (solved,
        out of budget, or on an error, recorded in `errors`) leaves the others training. A member whose run
        directory holds a verified checkpoint is finished and does not train. SIGINT, SIGTERM and SIGHUP finish
        the current round of updates, commit every member and raise `TrainingInterrupted`.

        Args:
            total_steps: each member's env-step budget of this call, or one per member (in the order of `seeds`):
                to continue resumed members to one total budget, ``[total - m.num_env_steps for m in members]``.
            run_dir: the population's directory (None: nothing is written).
            checkpoint_every: a checkpoint of each member every this many of its updates (0: only at the end).
            member_finished: called with a member's seed once it has stopped and its run directory is committed,
                while the others may train on (``reinforce train --seeds`` draws its curve and evaluates it then):
                at most once per member and call, and not for members that a signal or an exception stopped. An
                exception it raises ends training as any other would (uncommitted updates lost): catch them.

        Returns:
            self.

        Raises:
            TrainingInterrupted: a signal arrived; every member's checkpoint was written first.
            RunDirectoryBusy: another process trains one of the members' directories.
        """
        budgets = [total_steps] * len(self.members) if isinstance(total_steps, int) else list(total_steps)
        if len(budgets) != len(self.members):
            raise ReinforceError(
                f"total_steps has {len(budgets)} budgets for {len(self.members)} members: give one per member"
            )
        budgets = [as_count("total_steps", budget, 0) for budget in budgets]
        checkpoint_every = as_count("checkpoint_every", checkpoint_every, 0)
        targets = [member.num_env_steps + budget for member, budget in zip(self.members, budgets, strict=True)]
        root = run_path(run_dir, writing=True) if run_dir is not None else None
        paths = [None if root is None else root / MEMBER_DIR.format(seed=seed) for seed in self.seeds]
        with contextlib.ExitStack() as stack, torch_threads(self.config.num_threads):
            runs: list[MemberRun] = []
            for member, path, target in zip(self.members, paths, targets, strict=True):
                log = None
                if path is not None:
                    path.mkdir(parents=True, exist_ok=True)
                    stack.enter_context(training_lock(path))
                    claim(member, path)
                    log = RunLog(path, member.num_updates, member.num_env_steps)
                    stack.callback(log.close)
                    write_run_config(member, path, total_steps=target)
                runs.append(MemberRun(member, target, path, log, checkpoint_every))
            self.verifiers = {}
            for seed, run in zip(self.seeds, runs, strict=True):
                if run.verifier is not None:
                    self.verifiers[seed] = run.verifier
            at_once = functools.partial(self._interrupted, root=root, committed=False)
            stop = stack.enter_context(StopSignals(self.members[0], root, at_once))
            self._train(runs, stop, member_finished)
        if stop.signal_number is not None:
            raise self._interrupted(stop.signal_number, root=root, committed=True)
        return self

    def _interrupted(self, signal_number: int, *, root: Path | None, committed: bool) -> TrainingInterrupted:
        """What a signal raises: after the round, every member committed, or at once (a second signal)."""
        if root is None:
            message = "training stopped after the current round" if committed else "training stopped at once"
        else:
            state = "every member committed its last update" if committed else "each member at its last checkpoint"
            seeds = seeds_text(self.seeds)
            message = f"training stopped, {state}: resume with `reinforce train --seeds {seeds} --resume {root}`"
        return TrainingInterrupted(signal_number, None if root is None else str(root), None, message=message)

    def _train(
        self, runs: Sequence[MemberRun], stop: StopSignals, member_finished: Callable[[int], None] | None = None
    ) -> None:
        """The loop of `learn`: one batched collection and update of the members still running, until none is.

        A member's update is finished (its log row, its check, `finish_updates`) before its next one: where its
        check is due and it trains on, the check rides in the next round's collection (`riding_checks`), and a
        member that it stops (confirmed) drops that round's batch, so it stops at the checked update. Updates left
        pending when the loop ends (a first signal, a failed round) are finished with their checks made alone, or
        without them where that fails (`finish_pending`), and every member commits: each row is written once. An
        exception out of the loop (a second signal, a bug) commits nothing, as a single run's: a member may be
        midway through a round's update, and its last checkpoint stays the one to resume from. A member that has
        stopped, its last update finished, commits then and is passed to ``member_finished``.
        """
        episodes = episodes_per_update(self.config)
        finished: set[int] = set()

        def announce(done: Sequence[tuple[int, MemberRun]]) -> None:
            for seed, run in done:
                if seed not in finished and run.pending is None:
                    finished.add(seed)
                    run.commit()
                    if member_finished is not None:
                        member_finished(seed)

        while stop.signal_number is None:
            running = [
                (seed, run) for seed, run in zip(self.seeds, runs, strict=True) if run.running(seed in self.errors)
            ]
            waiting = [(run, run.pending) for run in runs if run.pending is not None]
            riders = riding_checks(waiting, [run for _, run in running])
            finish_updates([(run, metrics) for run, metrics in waiting if all(run is not r for r, _ in riders)])
            announce([(seed, run) for seed, run in zip(self.seeds, runs, strict=True) if (seed, run) not in running])
            if not running or stop.signal_number is not None:  # a signal during the announcements: no more rounds
                break
            members = [run.member for _, run in running]
            for member, (_, run) in zip(members, running, strict=True):
                if member.config.lr_schedule != "constant":
                    schedule_learning_rates(member, member.num_env_steps / run.target)
            try:
                results = self._round(members, episodes, riders)
            except ReinforceError as error:  # the env failed or returned non-finite values: no member can go on
                logger.info("the population's collection failed: %s", error)  # in errors: the caller reports it
                self.errors.update((seed, error) for seed, _ in running)
                break
            for (seed, run), result in zip(running, results, strict=True):
                if isinstance(result, ReinforceError):  # this member's alone: the others go on
                    logger.warning("seed %d stopped after update %d: %s", seed, run.member.num_updates, result)
                    self.errors[seed] = result
                elif result is not None:  # None: stopped on the check of its last update
                    run.pending = result
        finish_pending(runs)
        for run in runs:
            run.commit()
        if stop.signal_number is None:
            announce(list(zip(self.seeds, runs, strict=True)))

    def _round(
        self, members: Sequence[Reinforce], episodes: int, riders: Sequence[tuple[MemberRun, dict[str, Any]]] = ()
    ) -> list[dict[str, Any] | ReinforceError | None]:
        """One batched collection of ``members``' episodes, with ``riders``' checks, then the members' updates.

        `play_round` on the population's vector env: the riders' updates are finished first (`finish_updates`,
        with the checks made); a member that stops on its check is not updated (None).

        Raises:
            ReinforceError: the collection failed (the env, or non-finite values): no member can go on.
        """
        make_envs = functools.partial(self._vector_env, len(members))  # with this many checks' sub-envs more
        return play_round(make_envs, members, episodes, riders, self.config.num_envs)

    @in_config_threads
    def update(self) -> list[dict[str, Any] | None]:
        """One round of every member without an error: a batched collection of its episodes, then its update.

        `learn` runs rounds until the members stop (and writes their run directories); a caller that wants a
        fixed number of updates, such as Sutton & Barto's figures of episodes (examples/short_corridor_figure.py),
        runs them itself. Nothing is written, no member stops on a budget or on being solved, and an
        ``lr_schedule`` (a fraction of a budget) is not applied here.

        Returns:
            Each member's metrics (`Reinforce.update`'s), or None for a member with an error (this round's are
            recorded in `errors`; the others went on).

        Raises:
            ReinforceError: the collection failed (the env, or non-finite values): no member can go on.
        """
        indices = [index for index, seed in enumerate(self.seeds) if seed not in self.errors]
        results: list[dict[str, Any] | None] = [None] * len(self.members)
        if not indices:
            return results
        members = [self.members[index] for index in indices]
        for index, result in zip(indices, self._round(members, episodes_per_update(self.config)), strict=True):
            if isinstance(result, ReinforceError):
                self.errors[self.seeds[index]] = result
            else:
                results[index] = result
        return results

    def close(self) -> None:
        """Close the population's vector env and every member's environments."""
        if getattr(self, "_envs", None) is not None:
            self.envs.close()
        for member in getattr(self, "members", ()):
            member.close()


def _seed_list(seeds: object) -> list[int]:
    """``seeds`` (any iterable of integers: a list, a range) as a list, at most `MAX_SEEDS` of them."""
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Iterable):
        raise ReinforceError(f"seeds must be integers, such as range(10) or [0, 2, 5], got {seeds!r}: pass a list")
    listed = list(itertools.islice(seeds, MAX_SEEDS + 1))
    if len(listed) > MAX_SEEDS:
        raise ReinforceError(f"a population takes at most {MAX_SEEDS} seeds: split them into smaller populations")
    return listed


def _check_seeds(seeds: Sequence[int | None]) -> None:
    """Refuse no seeds, a missing seed or a seed given twice."""
    if not seeds or None in seeds or len(set(seeds)) != len(seeds):
        raise ReinforceError(f"a population needs distinct seeds, got {list(seeds)}: give each member its own seed")
