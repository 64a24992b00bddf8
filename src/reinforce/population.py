"""Populations: K independent agents of one environment and config, one per seed, trained in one process.

A `Population` holds K `reinforce.agent.Reinforce` members (member k is built exactly as ``Reinforce(env,
seed=seeds[k], ...)``: the same initial weights) and collects their episodes together: one vector env of
``K * num_envs`` sub-envs, member k owning ``[k * num_envs, (k + 1) * num_envs)``, and one batched policy call
per step (the members' weights stacked, one batched matmul per layer, the distribution built over all rows;
`population_act`, `rollout.collect.collect_groups`). Each member then updates on its own
slice of the batch with its own optimizer, baseline and counters (`Reinforce.update`), and writes its own run
directory ``RUN_DIR/seed-S``, loadable and resumable like any other.

Members are independent: each collects its own ``episodes_per_update`` episodes per update, from envs reset
with its own collection seed (where the vector env takes a seed per sub-env), and stops on its own (budget,
``stop_on_solve``, or an error such as a non-finite step, recorded in `Population.errors`) while the others go
on. What they share is torch's random generator for sampling actions, so a member's run is statistically, not
exactly, the single run of its seed. A member's training time (``wall_time_s``) counts an equal share of each
collection it took part in; its ``perf/steps_per_s`` is its own update's alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from gymnasium.vector import AsyncVectorEnv, SyncVectorEnv, VectorEnv
from torch import Tensor, nn

from reinforce.agent import Reinforce
from reinforce.config import DEFAULT_CHECKPOINT_EVERY, TrainConfig, as_count, episodes_per_update
from reinforce.core.batch import RolloutBatch
from reinforce.core.device import torch_threads
from reinforce.core.policies import BernoulliPolicy, CategoricalPolicy, MultiCategoricalPolicy, Policy
from reinforce.core.textbook import linear_softmax_per_step_members
from reinforce.errors import ReinforceError, TrainingInterrupted
from reinforce.rollout.collect import Act, collect_groups, sample_actions
from reinforce.rollout.envs import EnvLike, Wrapper
from reinforce.run.files import run_path, training_lock
from reinforce.run.metrics import RunLog
from reinforce.training import StopSignals, claim, commit, schedule_learning_rates

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from reinforce.config import Hyperparameters

logger = logging.getLogger("reinforce")

MEMBER_DIR = "seed-{seed}"
"""The run directory of the member of seed S inside a population's run directory."""


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
        seeds = list(seeds)
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
            ReinforceError: agents without a seed or an environment, seeds given twice, or agents whose
                environment or config (the seed aside) differ.
        """
        population = cls.__new__(cls)
        seeds = [agent.seed for agent in agents]
        _check_seeds(seeds)
        for agent in agents:
            agent.require_envs()
            if agent.config != agents[0].config or agent.env_id != agents[0].env_id:
                raise ReinforceError(
                    f"the agent of seed {agent.seed} has another environment or config than the first one's: a "
                    "population's members differ only in their seeds"
                )
        population._join(list(agents))
        return population

    def _join(self, members: list[Reinforce]) -> None:
        """Take ``members`` on (closing them on failure): their checks, the population's vector env, its sampler.

        Members stop on the training mean: a ``solve_criterion="verified"`` (the default) becomes
        ``"training_mean"`` in their configs (and config.json says so), as verified stops are not built for
        populations yet.
        """
        for member in members:
            if member.config.solve_criterion == "verified":
                member.config = dataclasses.replace(member.config, solve_criterion="training_mean")
        self.members = members
        """The agents, in the order of `seeds`."""
        self.seeds: list[int] = [member.seed for member in members if member.seed is not None]
        """One per member: the seed it was made with."""
        self.errors: dict[int, ReinforceError] = {}
        """Members that stopped on an error (a non-finite step, a failing env), by seed; the others went on."""
        try:
            first = members[0]
            if first.config.backend != "local":
                raise ReinforceError("a population trains in one process: set backend='local'", fields=("backend",))
            assert first.env_source is not None
            self.config = first.config
            self.envs: VectorEnv[Any, Any, Any] = first.env_source.make(
                len(members) * self.config.num_envs, vectorization_mode=self.config.vectorization_mode
            )
        except BaseException:
            self.close()
            raise
        # sampling draws from torch's generator: seeded from every seed and update count, so that a population
        # repeats exactly (a resumed one samples differently from an uninterrupted one, as a distribution equal)
        entropy = [*self.seeds, *(member.num_updates for member in members)]
        torch.manual_seed(int(np.random.SeedSequence(entropy).generate_state(1)[0]))

    def _reset_seed(self) -> int | list[int]:
        """The reset seed of the next collection: each member's own collection seed for its sub-envs.

        Vector envs of Gymnasium's sync and async classes take one seed per sub-env, so member k's envs are
        seeded as a single run's of its seed would be; a natively vectorised env (CartPole's) takes one seed,
        derived from all the members' collection seeds.
        """
        size = self.config.num_envs
        seeds = [member._collection_seed() or 0 for member in self.members]
        if isinstance(self.envs, (SyncVectorEnv, AsyncVectorEnv)):
            return [seed + index for seed in seeds for index in range(size)]
        return int(np.random.SeedSequence(seeds).generate_state(1)[0])

    def learn(
        self,
        total_steps: int | Sequence[int],
        *,
        run_dir: str | Path | None = None,
        checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
    ) -> Population:
        """Train every member until ``total_steps`` more env steps, or solved (``stop_on_solve``), or an error.

        Each member writes its own run directory ``run_dir/seed-S`` (config.json, metrics.csv, checkpoints),
        as `Reinforce.learn` would; a member that stops (solved, out of budget, or on an error, recorded in
        `errors`) leaves the others training. SIGINT, SIGTERM and SIGHUP finish the current update, commit
        every member and raise `TrainingInterrupted`.

        Args:
            total_steps: each member's env-step budget of this call, or one per member (in the order of `seeds`):
                to continue resumed members to one total budget, ``[total - m.num_env_steps for m in members]``.
            run_dir: the population's directory (None: nothing is written).
            checkpoint_every: a checkpoint of each member every this many of its updates (0: only at the end).

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
            logs: list[RunLog | None] = []
            for member, path, target in zip(self.members, paths, targets, strict=True):
                if path is None:
                    logs.append(None)
                    continue
                path.mkdir(parents=True, exist_ok=True)
                stack.enter_context(training_lock(path))
                claim(member, path)
                log = RunLog(path, member.num_updates, member.num_env_steps)
                stack.callback(log.close)
                member.write_config(path, total_steps=target)
                logs.append(log)
            stop = stack.enter_context(StopSignals(self.members[0], root))
            self._train(targets, paths, logs, checkpoint_every, stop)
        if stop.signal_number is not None:
            raise TrainingInterrupted(stop.signal_number, None if root is None else str(root), None)
        return self

    def _running(self, targets: Sequence[int]) -> list[bool]:
        """Which members train on: budget left, not solved (with ``stop_on_solve``), no error."""
        return [
            seed not in self.errors
            and member.num_env_steps < target
            and not (member.config.stop_on_solve and member.solved)
            for seed, member, target in zip(self.seeds, self.members, targets, strict=True)
        ]

    def _train(
        self,
        targets: Sequence[int],
        paths: Sequence[Path | None],
        logs: Sequence[RunLog | None],
        checkpoint_every: int,
        stop: StopSignals,
    ) -> None:
        """The loop of `learn`: one batched collection, then an update of each running member, until none runs."""
        running = self._running(targets)
        while any(running) and stop.signal_number is None:
            for member, target, on in zip(self.members, targets, running, strict=True):
                if on and member.config.lr_schedule != "constant":
                    schedule_learning_rates(member, member.num_env_steps / target)
            for member, path, log, metrics in zip(self.members, paths, logs, self.update(running), strict=True):
                if metrics is None:
                    continue
                if log is not None:
                    log.write(metrics)
                if path is not None and checkpoint_every and member.num_updates % checkpoint_every == 0:
                    commit(member, path, log)
            running = self._running(targets)
        for member, path, log in zip(self.members, paths, logs, strict=True):
            if path is not None and member.checkpoint_update != member.num_updates:
                commit(member, path, log)

    def update(self, running: Sequence[bool] | None = None) -> list[dict[str, Any] | None]:
        """One round: a batched collection of each running member's episodes, then each one's update.

        `learn` runs rounds until the members stop; a caller that wants a fixed number of episodes (Sutton &
        Barto's figures: examples/short_corridor_figure.py) runs them itself. Per-step (textbook) updates of
        linear softmax policies with plain SGD run as one batched computation (`per_step_members`).

        Args:
            running: which members take part, one flag per member (None: every member without an error).

        Returns:
            Each member's metrics (`Reinforce.update`'s), or None for a member that sat out or stopped on an
            error in this round (recorded in `errors`; the others went on).
        """
        running = [seed not in self.errors for seed in self.seeds] if running is None else list(running)
        results: list[dict[str, Any] | None] = [None] * len(self.members)
        if not any(running):
            return results
        episodes = episodes_per_update(self.config)
        start = time.perf_counter()
        batches = collect_groups(
            self.envs,
            population_act([member.policy for member in self.members]),
            [episodes if on else 0 for on in running],
            action_squash=self.members[0].policy.action_squash,
            seed=self._reset_seed(),
            device=self.members[0].device,
        )
        # each member's training time (metrics.csv's wall_time_s) counts its share of the collection
        share = (time.perf_counter() - start) / sum(running)
        stepped = per_step_members(self.members, batches)
        for index, (seed, member, batch, step) in enumerate(
            zip(self.seeds, self.members, batches, stepped, strict=True)
        ):
            if batch is None:
                continue
            member.train_time_s += share
            try:
                results[index] = member.update(batch, stepped=step)
            except ReinforceError as error:  # this member's alone: the others go on
                logger.warning("seed %d stopped after update %d: %s", seed, member.num_updates, error)
                self.errors[seed] = error
        return results

    def close(self) -> None:
        """Close the population's vector env and every member's environments."""
        if getattr(self, "envs", None) is not None:
            self.envs.close()
        for member in getattr(self, "members", ()):
            member.close()


def _check_seeds(seeds: Sequence[int | None]) -> None:
    """Refuse no seeds, a missing seed or a seed given twice."""
    if not seeds or None in seeds or len(set(seeds)) != len(seeds):
        raise ReinforceError(f"a population needs distinct seeds, got {list(seeds)}: give each member its own seed")


def per_step_members(
    members: Sequence[Reinforce], batches: Sequence[RolloutBatch | None]
) -> list[tuple[Tensor, dict[str, float]] | None]:
    """The textbook per-step updates of the members with a batch, as one batched computation where it applies.

    It applies to ``update="per_step"`` with a linear softmax policy and plain SGD
    (`reinforce.core.textbook.linear_softmax_per_step_members`): then each member's policy has taken its
    per-step updates on its batch, and its entry is its returns and loss metrics (`Reinforce.update`'s
    ``stepped``). Elsewhere every entry is None and each member updates alone.
    """
    chosen = [(member, batch) for member, batch in zip(members, batches, strict=True) if batch is not None]
    stepped: list[tuple[Tensor, dict[str, float]] | None] = [None] * len(members)
    if len(chosen) < 2 or any(member.config.update != "per_step" for member, _ in chosen):
        return stepped
    weights = [member.batch_weights(batch) for member, batch in chosen]
    losses = linear_softmax_per_step_members(
        [member.policy for member, _ in chosen],
        [member.optimizer for member, _ in chosen],
        [batch for _, batch in chosen],
        [weights_TN for _, weights_TN in weights],
        [member.config for member, _ in chosen],
    )
    if losses is None:
        return stepped
    results = iter(zip(weights, losses, strict=True))
    for index, batch in enumerate(batches):
        if batch is not None:
            (returns_TN, _), member_losses = next(results)
            stepped[index] = (returns_TN, member_losses)
    return stepped


def population_act(policies: Sequence[Policy]) -> Act:
    """One batched policy call for K members' policies of one class: `rollout.collect.Act` for ``[K * G]`` rows.

    Row block k (``G`` rows each) is member k's. The members' parameters are read when this is called and used
    as they are then (a collection does not change them). Categorical, MultiCategorical and Bernoulli policies
    with vector (Box) observations and an MLP body run as one call: each layer's weights stacked ``[K, out,
    in]`` and applied with one batched matmul (``torch.baddbmm``), then the first policy's head over all rows
    (the heads have no parameters). Other policies (Gaussian, images, one-hot observations) are called member
    by member.
    """
    first = policies[0]
    count = len(policies)
    layers = list(first.body.children()) if isinstance(first.body, nn.Sequential) else []
    stackable = (
        isinstance(first, (CategoricalPolicy, MultiCategoricalPolicy, BernoulliPolicy))
        and first.encoder.cnn is None
        and first.encoder.num_categories is None
        and bool(layers)
        and all(isinstance(layer, (nn.Linear, nn.ReLU)) for layer in layers)
    )
    if not stackable:

        def each(observations: Tensor, action_masks: Tensor | None) -> Tensor:
            rows = observations.shape[0] // count
            actions = []
            for index, policy in enumerate(policies):
                part = slice(index * rows, (index + 1) * rows)
                masks = None if action_masks is None else action_masks[part]
                actions.append(sample_actions(policy(observations[part], masks)))
            return torch.cat(actions)

        return each

    assert isinstance(first, (CategoricalPolicy, MultiCategoricalPolicy, BernoulliPolicy))
    head: Callable[[Tensor, Tensor | None], Any] = first.head
    bodies = [list(policy.body.children()) for policy in policies]
    stacked_layers: list[tuple[Tensor, Tensor] | None] = []
    for index, layer in enumerate(layers):
        if isinstance(layer, nn.Linear):
            linears = [linear for body in bodies if isinstance(linear := body[index], nn.Linear)]
            weights = torch.stack([linear.weight.detach() for linear in linears]).transpose(1, 2)  # [K, in, out]
            biases = torch.stack([linear.bias.detach() for linear in linears]).unsqueeze(1)  # [K, 1, out]
            stacked_layers.append((weights, biases))
        else:
            stacked_layers.append(None)  # ReLU
    normalize = first.encoder.normalize

    def stacked(observations: Tensor, action_masks: Tensor | None) -> Tensor:
        if normalize:  # each member's own running statistics
            rows = observations.shape[0] // count
            parts = [policy.encoder(observations[k * rows : (k + 1) * rows]) for k, policy in enumerate(policies)]
            features = torch.stack(parts)
        else:  # the same for every member: flattened floats
            features = first.encoder(observations).reshape(count, -1, first.encoder.features)
        for layer in stacked_layers:
            features = torch.relu(features) if layer is None else torch.baddbmm(layer[1], features, layer[0])
        return sample_actions(head(features.reshape(-1, features.shape[-1]), action_masks))

    return stacked


def train_population(
    env: EnvLike,
    seeds: Sequence[int],
    total_steps: int,
    *,
    run_dir: str | Path | None = None,
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
    config: TrainConfig | None = None,
    preset: str | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    wrappers: Sequence[Wrapper] | None = None,
    **overrides: Unpack[Hyperparameters],
) -> Population:
    """Train one agent per seed as one `Population` and return it (its environments closed).

    Example:
        >>> population = reinforce.train_population("CartPole-v1", range(10), 300_000)  # doctest: +SKIP

    Args:
        env: as `Reinforce`'s (not a vector env).
        seeds: one seed per agent.
        total_steps: each agent's env-step budget.
        run_dir: where ``seed-S/`` run directories are written (None: nothing is written).
        checkpoint_every: as `Population.learn`'s.
        config: as `Reinforce`'s.
        preset: as `Reinforce`'s.
        env_kwargs: as `Reinforce`'s.
        wrappers: as `Reinforce`'s.
        **overrides: `TrainConfig` fields for every agent.

    Returns:
        The population: its ``members`` (agents, in the order of ``seeds``; they still evaluate, on new envs) and
        its ``errors`` (the members that stopped on one).
    """
    population = Population(
        env, seeds, config=config, preset=preset, env_kwargs=env_kwargs, wrappers=wrappers, **overrides
    )
    try:
        population.learn(total_steps, run_dir=run_dir, checkpoint_every=checkpoint_every)
    finally:
        population.close()
    return population
