from __future__ import annotations

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium import spaces

from reinforce import collect, make_policy
from reinforce.rollout.collect import sample_actions, to_env_actions
from reinforce.rollout.envs import make_vec_env


def counting_policy() -> torch.nn.Module:
    torch.manual_seed(0)
    return make_policy(spaces.Box(0, np.inf, (2,)), spaces.Discrete(2), hidden_sizes=(4,))


@pytest.mark.parametrize(("num_envs", "num_episodes"), [(1, 1), (1, 5), (3, 3), (3, 10), (8, 3)])
def test_collects_exactly_the_requested_complete_episodes(num_envs: int, num_episodes: int) -> None:
    envs = make_vec_env("toy/Counting-v0", num_envs)
    batch = collect(envs, counting_policy(), num_episodes, seed=1)
    assert len(batch.episode_returns) == num_episodes
    assert batch.num_steps == sum(batch.episode_lengths)
    assert int(batch.dones.sum()) == num_episodes
    # every valid step is a real step of an episode: the observation counts 0, 1, ... within the episode,
    # the reward is t + 1, and the episode's return is 1 + 2 + ... + length
    observations = batch.observations[batch.mask]
    rewards = batch.rewards[batch.mask]
    torch.testing.assert_close(rewards, observations[:, 0] + 1)
    for ret, length in zip(batch.episode_returns, batch.episode_lengths, strict=True):
        assert ret == length * (length + 1) / 2
    # no episode is partial: each env column's valid steps split into whole episodes
    for n in range(num_envs):
        column = batch.observations[:, n][batch.mask[:, n]]
        t = column[:, 0]
        starts = (t == 0).nonzero().flatten().tolist()
        assert starts == ([0] if len(t) else []) + [i for i in range(1, len(t)) if t[i] == 0]
        ends = batch.dones[:, n][batch.mask[:, n]].nonzero().flatten().tolist()
        assert [s - 1 for s in starts[1:]] + ([len(t) - 1] if len(t) else []) == ends
        assert (column[torch.tensor(ends), 0] + 1 == column[torch.tensor(ends), 1]).all() if ends else True
    envs.close()


def test_reset_steps_never_count() -> None:
    envs = make_vec_env("toy/Counting-v0", 2)
    batch = collect(envs, counting_policy(), 12, seed=3)
    steps_after_an_end = torch.zeros_like(batch.mask)
    steps_after_an_end[1:] = batch.dones[:-1]
    assert not (steps_after_an_end & batch.mask).any()
    # the reset step returns reward 0 and the next episode's first observation
    assert (batch.rewards[steps_after_an_end] == 0).all()
    envs.close()


def test_truncation_is_recorded_apart_from_termination() -> None:
    envs = make_vec_env("toy/CountingTruncated-v0", 4)
    batch = collect(envs, counting_policy(), 40, seed=0)
    lengths = np.array(batch.episode_lengths)
    truncated = np.array(batch.episode_truncated)
    assert lengths.max() == 3
    assert truncated.any() and not truncated.all()
    episode_lengths_true = batch.observations[batch.dones][:, 1].numpy()
    # an episode is cut exactly when its drawn length exceeds the limit of 3
    np.testing.assert_array_equal(np.sort(truncated), np.sort(episode_lengths_true > 3))
    assert not (batch.truncated & batch.terminated & batch.mask).any()
    envs.close()


def test_episodes_are_admitted_when_they_start_not_when_they_finish() -> None:
    # with more envs than episodes, only the first num_episodes envs run, whatever their lengths
    envs = make_vec_env("toy/Counting-v0", 6)
    batch = collect(envs, counting_policy(), 2, seed=5)
    assert batch.mask[:, 2:].sum() == 0
    assert batch.mask[0, :2].all()
    envs.close()


def test_collect_is_deterministic_for_a_seed() -> None:
    envs = make_vec_env("CartPole-v1", 4)
    torch.manual_seed(0)
    first = collect(envs, counting_policy_cartpole(), 6, seed=7)
    torch.manual_seed(0)
    second = collect(envs, counting_policy_cartpole(), 6, seed=7)
    assert first.episode_returns == second.episode_returns
    torch.testing.assert_close(first.observations, second.observations)
    envs.close()


def counting_policy_cartpole() -> torch.nn.Module:
    generator_state = torch.get_rng_state()
    torch.manual_seed(1)
    policy = make_policy(spaces.Box(-np.inf, np.inf, (4,)), spaces.Discrete(2))
    torch.set_rng_state(generator_state)
    return policy


def test_box_actions_are_clipped_for_the_env_only() -> None:
    from toy_envs import wide_gaussian_batch

    _, batch, action_space = wide_gaussian_batch()
    actions = batch.actions[batch.mask]
    assert actions.shape[-1] == 2 and (actions.abs() > 1).any()
    clipped = to_env_actions(actions.numpy(), action_space)
    assert np.all(np.abs(clipped) <= 1.0)
    expected_rewards = -((clipped - 0.5) ** 2).sum(-1)
    np.testing.assert_allclose(batch.rewards[batch.mask].numpy(), expected_rewards, rtol=1e-5)


def test_discrete_actions_with_an_offset_start() -> None:
    space = gymnasium.spaces.Discrete(3, start=-1)
    np.testing.assert_array_equal(to_env_actions(np.array([0, 1, 2]), space), [-1, 0, 1])


def test_consecutive_collections_share_no_episode() -> None:
    # each call resets the envs: every env's first valid step is the first step (t = 0) of a fresh episode,
    # and the episodes of two calls add up to exactly the requested numbers
    envs = make_vec_env("toy/Counting-v0", 3)
    policy = counting_policy()
    for seed in (0, None, None):
        batch = collect(envs, policy, 5, seed=seed)
        assert len(batch.episode_returns) == 5
        for n in range(3):
            column = batch.observations[:, n][batch.mask[:, n]]
            assert column[0, 0] == 0
            assert batch.dones[:, n][batch.mask[:, n]][-1]
    envs.close()


def test_inverse_cdf_sampling_draws_from_the_categorical() -> None:
    torch.manual_seed(0)
    probs = torch.tensor([[0.1, 0.0, 0.6, 0.3], [0.25, 0.25, 0.25, 0.25]])
    draws = 40_000
    for row in range(2):
        many = torch.distributions.Categorical(probs=probs[row].expand(draws, 4))
        counts = torch.bincount(sample_actions(many), minlength=4).double()
        expected = probs[row].double() * draws
        # each count is binomial: within 5 standard deviations of its mean (exactly 0 where p = 0)
        std = (draws * probs[row].double() * (1 - probs[row].double())).sqrt()
        assert ((counts - expected).abs() <= 5 * std).all(), (counts, expected)
    distribution = torch.distributions.Categorical(probs=probs)
    torch.testing.assert_close(sample_actions(distribution, deterministic=True), torch.tensor([2, 0]))


def test_unnormalised_weights_are_the_discounted_returns() -> None:
    from reinforce.config import TrainConfig
    from reinforce.core.returns import discounted_returns
    from reinforce.core.weights import policy_weights

    envs = make_vec_env("toy/Counting-v0", 2)
    batch = collect(envs, counting_policy(), 4, seed=0)
    config = TrainConfig(gamma=0.9, return_normalization="none")
    returns = discounted_returns(batch.rewards, batch.dones, 0.9)
    expected = torch.where(batch.mask, returns, torch.zeros_like(returns))
    torch.testing.assert_close(policy_weights(batch, returns, config), expected)
    standardised = policy_weights(batch, returns, TrainConfig(gamma=0.9))[batch.mask]
    assert abs(standardised.mean().item()) < 1e-5 and standardised.std(correction=0).item() == pytest.approx(
        1, rel=1e-4
    )
    envs.close()
