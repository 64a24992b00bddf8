from __future__ import annotations

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings

from reinforce.core.returns import discounted_returns, standardize


def test_golden_returns_single_env() -> None:
    rewards = torch.tensor([1.0, 2.0, 3.0, 4.0])
    dones = torch.tensor([False, True, False, True])
    # episode 1: G1 = 2, G0 = 1 + 0.5 * 2 = 2; episode 2: G3 = 4, G2 = 3 + 0.5 * 4 = 5
    expected = torch.tensor([2.0, 2.0, 5.0, 4.0])
    torch.testing.assert_close(discounted_returns(rewards, dones, gamma=0.5), expected)


def test_golden_returns_with_episode_ends_inside_TN() -> None:
    # env 0: one episode of 3 steps, truncated (the cut is summed up to the cut, no bootstrap)
    # env 1: an episode of 1 step, then one of 2 steps
    rewards = torch.tensor([[1.0, 10.0], [1.0, 1.0], [1.0, 2.0]])
    dones = torch.tensor([[False, True], [False, False], [True, True]])
    gamma = 0.9
    expected = torch.tensor(
        [
            [1 + 0.9 + 0.81, 10.0],
            [1 + 0.9, 1 + 0.9 * 2],
            [1.0, 2.0],
        ]
    )
    torch.testing.assert_close(discounted_returns(rewards, dones, gamma), expected)


def test_unfinished_tail_is_summed_up_to_the_buffer_end() -> None:
    rewards = torch.ones(3)
    dones = torch.zeros(3, dtype=torch.bool)
    torch.testing.assert_close(discounted_returns(rewards, dones, 1.0), torch.tensor([3.0, 2.0, 1.0]))


def naive_returns(
    rewards: list[list[float]],
    dones: list[list[bool]],
    gamma: float,
    truncated: list[list[bool]] | None = None,
    values: list[list[float]] | None = None,
) -> list[list[float]]:
    steps, envs = len(rewards), len(rewards[0])
    out = [[0.0] * envs for _ in range(steps)]
    for n in range(envs):
        for t in range(steps):
            total, discount = 0.0, 1.0
            for k in range(t, steps):
                total += discount * rewards[k][n]
                discount *= gamma
                if dones[k][n]:
                    if truncated is not None and values is not None and truncated[k][n]:
                        total += discount * values[k][n]
                    break
            out[t][n] = total
    return out


@settings(max_examples=60, deadline=None)
@given(
    steps=st.integers(1, 12),
    envs=st.integers(1, 5),
    gamma=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_returns_match_a_naive_double_loop(steps: int, envs: int, gamma: float, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    rewards = torch.randn(steps, envs, generator=generator, dtype=torch.float64)
    dones = torch.rand(steps, envs, generator=generator) < 0.3
    expected = torch.tensor(naive_returns(rewards.tolist(), dones.tolist(), gamma), dtype=torch.float64)
    torch.testing.assert_close(discounted_returns(rewards, dones, gamma), expected)
    # the 1-D form agrees with each column
    torch.testing.assert_close(discounted_returns(rewards[:, 0], dones[:, 0], gamma), expected[:, 0])
    # and with bootstrapping at a random subset of the episode ends
    truncated = dones & (torch.rand(steps, envs, generator=generator) < 0.5)
    values = torch.randn(steps, envs, generator=generator, dtype=torch.float64)
    expected = torch.tensor(
        naive_returns(rewards.tolist(), dones.tolist(), gamma, truncated.tolist(), values.tolist()),
        dtype=torch.float64,
    )
    bootstrapped = discounted_returns(rewards, dones, gamma, truncated=truncated, bootstrap_values=values)
    torch.testing.assert_close(bootstrapped, expected)


@pytest.mark.parametrize(
    ("rewards", "dones", "gamma"),
    [
        (torch.zeros(3, 2), torch.zeros(3, 1, dtype=torch.bool), 0.9),
        (torch.zeros(3, 2, 2), torch.zeros(3, 2, 2, dtype=torch.bool), 0.9),
        (torch.zeros(3), torch.zeros(3, dtype=torch.bool), 1.5),
    ],
)
def test_bad_shapes_and_gamma_are_rejected(rewards: torch.Tensor, dones: torch.Tensor, gamma: float) -> None:
    with pytest.raises(ValueError):
        discounted_returns(rewards, dones, gamma)


def test_standardize_uses_only_masked_entries() -> None:
    values = torch.tensor([[1.0, 100.0], [3.0, -50.0]])
    mask = torch.tensor([[True, False], [True, False]])
    out = standardize(values, mask)
    torch.testing.assert_close(out, torch.tensor([[-1.0, 0.0], [1.0, 0.0]]), atol=1e-6, rtol=0)
    assert standardize(torch.tensor([5.0])).item() == 0.0


def test_golden_bootstrap_at_a_truncation_only() -> None:
    # env 0: 2 steps then cut (truncated) with V(s_2) = 10; env 1: 2 steps then terminated (V ignored)
    rewards = torch.tensor([[1.0, 1.0], [1.0, 1.0]])
    dones = torch.tensor([[False, False], [True, True]])
    truncated = torch.tensor([[False, False], [True, False]])
    values = torch.tensor([[99.0, 99.0], [10.0, 10.0]])
    out = discounted_returns(rewards, dones, 0.5, truncated=truncated, bootstrap_values=values)
    # env 0: G1 = 1 + 0.5 * 10 = 6, G0 = 1 + 0.5 * 6 = 4; env 1: G1 = 1, G0 = 1.5
    torch.testing.assert_close(out, torch.tensor([[4.0, 1.5], [6.0, 1.0]]))
    with pytest.raises(ValueError):
        discounted_returns(rewards, dones, 0.5, truncated=truncated)
    # a truncation flag where no episode ends is ignored
    not_an_end = torch.tensor([[True, False], [False, False]])
    out = discounted_returns(rewards, dones, 0.5, truncated=not_an_end, bootstrap_values=values)
    torch.testing.assert_close(out, discounted_returns(rewards, dones, 0.5))


def test_integer_rewards_are_discounted_as_floats() -> None:
    out = discounted_returns(torch.tensor([1, 1]), torch.tensor([False, True]), 0.5)
    torch.testing.assert_close(out, torch.tensor([1.5, 1.0]))


def test_constant_values_standardise_to_exactly_zero() -> None:
    from reinforce.core.returns import standardize_per_episode

    # 32 episodes all cut at the same length with the same reward: float32 means are off by an ulp, and a
    # standardisation in float32 turns that noise into weights of +-1
    values = torch.full((500, 32), -0.3 * (1 - 0.99**500) / (1 - 0.99), dtype=torch.float32)
    mask = torch.ones_like(values, dtype=torch.bool)
    assert (standardize(values, mask) == 0).all()
    ids = torch.arange(32).expand(500, 32).contiguous()
    assert (standardize_per_episode(values, ids) == 0).all()
    torch.testing.assert_close(standardize(torch.tensor([1.0, 3.0])), torch.tensor([-1.0, 1.0]))
