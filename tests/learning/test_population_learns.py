"""A population's members learn as single runs of their seeds do (issue 16: population vs separate runs)."""

from __future__ import annotations

import math

import pytest

from reinforce import Population, Reinforce
from reinforce.verification import make_verifier

SEEDS = range(20)
BANDIT = {
    "num_envs": 16,
    "hidden_sizes": (),
    "lr": 0.1,
    "reward_threshold": 0.9,
    "stop_on_solve": True,
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
@pytest.mark.parametrize("criterion", ["training_mean", "verified"])
def test_population_members_solve_as_separate_runs_do(criterion: str) -> None:
    """Solve rate and env steps to solve over 20 seeds: the population's and the separate runs' agree (stopping
    on the training mean, or on each member's verified policy)."""
    settings = {**BANDIT, "solve_criterion": criterion, "verify_every": 200}
    separate = []
    for seed in SEEDS:
        agent = Reinforce("toy/Bandit-v0", seed=seed, **settings)  # type: ignore[arg-type]
        verifier = make_verifier(agent)
        agent.learn(5_000, callback=verifier)
        separate.append((agent.solved if verifier is None else verifier.verified is not None, agent.num_env_steps))
        agent.close()
    population = Population("toy/Bandit-v0", SEEDS, **settings)  # type: ignore[arg-type]
    population.learn(5_000)
    population.close()
    together = [
        (
            member.solved if seed not in population.verifiers else population.verifiers[seed].verified is not None,
            member.num_env_steps,
        )
        for seed, member in zip(SEEDS, population.members, strict=True)
    ]
    assert all(solved for solved, _ in separate + together)
    z = rank_sum_z([steps for _, steps in separate], [steps for _, steps in together])
    assert abs(z) < 3.0, (z, separate, together)


def test_rank_sum_z_sees_a_shift() -> None:
    assert abs(rank_sum_z([1, 2, 3, 4], [1, 2, 3, 4])) < 1e-12
    assert rank_sum_z(list(range(20)), list(range(100, 120))) < -5
