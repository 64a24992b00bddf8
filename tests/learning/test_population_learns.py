"""A population's members learn as single runs of their seeds do (issue 16: population vs separate runs)."""

from __future__ import annotations

import math

import pytest

from reinforce import Population, Reinforce

SEEDS = range(20)
BANDIT = {
    "num_envs": 16,
    "hidden_sizes": (),
    "lr": 0.1,
    "reward_threshold": 0.9,
    "stop_on_solve": True,
    "solve_criterion": "training_mean",  # steps to solve by the training mean: no checks in the numbers
}
"""Two arms, one step per episode: solved (100-episode mean >= 0.9) after 150-400 env steps."""


def rank_sum_z(first: list[int], second: list[int]) -> float:
    """The Mann-Whitney U statistic of two samples as a z-score (normal approximation, mid-ranks for ties)."""
    values = sorted(first + second)
    rank = {value: (values.index(value) + 1 + len(values) - values[::-1].index(value)) / 2 for value in values}
    u = sum(rank[value] for value in first) - len(first) * (len(first) + 1) / 2
    n, m = len(first), len(second)
    return (u - n * m / 2) / math.sqrt(n * m * (n + m + 1) / 12)


@pytest.mark.slow
def test_population_members_solve_as_separate_runs_do() -> None:
    """Solve rate and env steps to solve over 20 seeds: the population's and the separate runs' agree."""
    separate = []
    for seed in SEEDS:
        agent = Reinforce("toy/Bandit-v0", seed=seed, **BANDIT)
        agent.learn(5_000)
        separate.append((agent.solved, agent.num_env_steps))
        agent.close()
    population = Population("toy/Bandit-v0", SEEDS, **BANDIT)
    population.learn(5_000)
    population.close()
    together = [(member.solved, member.num_env_steps) for member in population.members]
    assert all(solved for solved, _ in separate + together)
    z = rank_sum_z([steps for _, steps in separate], [steps for _, steps in together])
    assert abs(z) < 3.0, (z, separate, together)


def test_rank_sum_z_sees_a_shift() -> None:
    assert abs(rank_sum_z([1, 2, 3, 4], [1, 2, 3, 4])) < 1e-12
    assert rank_sum_z(list(range(20)), list(range(100, 120))) < -5
