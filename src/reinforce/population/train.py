"""`train_population`: K seeds of one setting trained as one `reinforce.population.members.Population`, in one call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reinforce.config import DEFAULT_CHECKPOINT_EVERY, Hyperparameters, TrainConfig
from reinforce.population.members import Population
from reinforce.rollout.envs import EnvLike, Wrapper

if TYPE_CHECKING:
    from typing_extensions import Unpack


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
