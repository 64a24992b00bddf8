"""The estimator switches of issue 3: episode bookkeeping, baselines, reductions, the per-step update."""

from __future__ import annotations

import math
from types import SimpleNamespace

import hypothesis.strategies as st
import numpy as np
import pytest
import torch
from gymnasium import spaces
from hypothesis import given, settings

from reinforce import Reinforce, collect, make_policy, reinforce_loss
from reinforce.config import TrainConfig
from reinforce.core.baselines import (
    BatchMeanBaseline,
    RunningMeanBaseline,
    ValueBaseline,
    ValueFunction,
    leave_one_out_baseline,
)
from reinforce.core.batch import RolloutBatch
from reinforce.core.loss import score_function_surrogate, update_policy
from reinforce.core.optim import EagerOptimizer
from reinforce.core.policies import Policy
from reinforce.core.returns import (
    discounted_returns,
    episode_ids,
    episode_steps,
    standardize,
    standardize_per_episode,
    whole_episode_returns,
)
from reinforce.core.weights import batch_returns, policy_weights
from reinforce.rollout.envs import make_vec_env

# env 0: an episode of 2 steps, a reset step, an episode of 1 step, idle
# env 1: an episode of 4 steps, idle
DONES = torch.tensor([[False, False], [True, False], [False, False], [True, True], [False, False]])
MASK = torch.tensor([[True, True], [True, True], [False, True], [True, True], [False, False]])


def test_golden_episode_bookkeeping() -> None:
    torch.testing.assert_close(episode_steps(DONES, MASK), torch.tensor([[0, 0], [1, 1], [0, 2], [0, 3], [0, 0]]))
    ids, count = episode_ids(DONES, MASK)
    assert count == 3
    # episodes are numbered in order of (episodes ended before, env): env 0's first, env 1's, env 0's second
    torch.testing.assert_close(ids, torch.tensor([[0, 1], [0, 1], [-1, 1], [2, 1], [-1, -1]]))
    returns = torch.tensor([[5.0, 9.0], [3.0, 8.0], [0.0, 7.0], [2.0, 6.0], [0.0, 0.0]])
    expected = torch.tensor([[5.0, 9.0], [5.0, 9.0], [0.0, 9.0], [2.0, 9.0], [0.0, 0.0]])
    torch.testing.assert_close(whole_episode_returns(returns, DONES, MASK), expected)


def random_batch(steps: int, envs: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random rewards, dones and a mask shaped like `collect`'s: a masked reset step after each end."""
    generator = torch.Generator().manual_seed(seed)
    rewards = torch.randn(steps, envs, generator=generator)
    dones = torch.rand(steps, envs, generator=generator) < 0.3
    mask = torch.ones(steps, envs, dtype=torch.bool)
    mask[1:] &= ~dones[:-1]  # the step after an end is the reset step
    dones &= mask
    dones[-1] |= mask[-1]  # every episode ends inside the buffer
    return rewards, dones, mask


def naive_episodes(dones: torch.Tensor, mask: torch.Tensor) -> list[list[tuple[int, int]]]:
    """Each episode as its list of (t, n), found one env and one step at a time."""
    episodes = []
    for n in range(mask.shape[1]):
        current: list[tuple[int, int]] = []
        for t in range(mask.shape[0]):
            if mask[t, n]:
                current.append((t, n))
                if dones[t, n]:
                    episodes.append(current)
                    current = []
    return episodes


@settings(max_examples=40, deadline=None)
@given(steps=st.integers(1, 12), envs=st.integers(1, 4), seed=st.integers(0, 10_000))
def test_episode_functions_match_a_naive_loop(steps: int, envs: int, seed: int) -> None:
    rewards, dones, mask = random_batch(steps, envs, seed)
    returns = discounted_returns(rewards, dones, 0.9)
    ids, count = episode_ids(dones, mask)
    episodes = naive_episodes(dones, mask)
    assert count == len(episodes)
    stepped = episode_steps(dones, mask)
    whole = whole_episode_returns(returns, dones, mask)
    normalised = standardize_per_episode(returns, ids)
    loo = leave_one_out_baseline(returns, ids, stepped)
    loo_whole = leave_one_out_baseline(whole, ids, stepped, time_dependent=False)
    for episode in episodes:
        assert len({int(ids[cell]) for cell in episode}) == 1
        assert [int(stepped[cell]) for cell in episode] == list(range(len(episode)))
        values = torch.stack([returns[cell] for cell in episode])
        for k, cell in enumerate(episode):
            assert whole[cell] == returns[episode[0]]
            expected = (
                0.0 if len(episode) == 1 else float((values[k] - values.mean()) / (values.std(correction=0) + 1e-8))
            )
            assert float(normalised[cell]) == pytest.approx(expected, abs=1e-4)
            # leave-one-out: step k of the other episodes that have a step k
            others = [returns[other[k]] for other in episodes if other is not episode and len(other) > k]
            assert float(loo[cell]) == pytest.approx(float(torch.stack(others).mean()) if others else 0.0, abs=1e-5)
            other_returns = [returns[other[0]] for other in episodes if other is not episode]
            expected_whole = float(torch.stack(other_returns).mean()) if other_returns else 0.0
            assert float(loo_whole[cell]) == pytest.approx(expected_whole, abs=1e-5)
    assert (ids[~mask] == -1).all() and (whole[~mask] == 0).all() and (normalised[~mask] == 0).all()


@pytest.mark.parametrize("num_envs", [3, 16, 48])
def test_leave_one_out_gives_equal_episodes_zero_weights_not_rounding_noise(num_envs: int) -> None:
    # Acrobot's stall: every episode of the batch cut at 500 steps with reward -1, so every G_t is the same
    # float32 across episodes; the mean of the others must be that float exactly, or standardising the
    # rounding noise of (G_t - mean) gives unit-size random weights and the policy drifts on noise
    rewards = -torch.ones(500, num_envs)
    dones = torch.zeros(500, num_envs, dtype=torch.bool)
    dones[-1] = True
    mask = torch.ones_like(dones)
    returns = discounted_returns(rewards, dones, 0.99)
    ids, _ = episode_ids(dones, mask)
    baseline = leave_one_out_baseline(returns, ids, episode_steps(dones, mask))
    assert baseline.dtype == returns.dtype and torch.equal(baseline, returns)
    assert torch.equal(standardize(returns - baseline, mask), torch.zeros_like(returns))


def test_running_mean_baseline_averages_previous_batches_only() -> None:
    baseline = RunningMeanBaseline(rate=0.5)
    mask = torch.tensor([True, True, False])
    batch = SimpleNamespace(mask=mask)
    assert (baseline(batch, torch.zeros(3)) == 0).all()
    baseline.fit(batch, torch.tensor([2.0, 4.0, 100.0]), torch.zeros(3))
    torch.testing.assert_close(baseline(batch, torch.zeros(3)), torch.full((3,), 3.0))
    baseline.fit(batch, torch.tensor([7.0, 7.0, -100.0]), torch.zeros(3))
    torch.testing.assert_close(baseline(batch, torch.zeros(3)), torch.full((3,), 5.0))
    assert set(baseline.state_dict()) == {"mean", "count"}


def test_loss_reductions_differ_by_steps_per_episode() -> None:
    log_probs = torch.tensor([-1.0, -2.0, -0.5, -1.5])
    weights = torch.tensor([1.0, 2.0, 3.0, 4.0])
    per_step = reinforce_loss(log_probs, weights)
    per_episode = reinforce_loss(log_probs, weights, num_episodes=2)
    torch.testing.assert_close(per_episode, -(log_probs * weights).sum() / 2)
    torch.testing.assert_close(per_episode, per_step * 4 / 2)


def collected(
    env_id: str = "toy/Counting-v0", *, num_envs: int = 3, episodes: int = 7, hidden_sizes: tuple[int, ...] = (4,)
) -> tuple[Policy, RolloutBatch]:
    envs = make_vec_env(env_id, num_envs)
    torch.manual_seed(0)
    policy = make_policy(envs.single_observation_space, envs.single_action_space, hidden_sizes)
    batch = collect(envs, policy, episodes, seed=0)
    envs.close()
    return policy, batch


def test_weights_of_each_switch() -> None:
    _, batch = collected()
    returns = discounted_returns(batch.rewards, batch.dones, 0.9)
    steps = episode_steps(batch.dones, batch.mask)
    base = {"gamma": 0.9, "return_normalization": "none"}
    plain = policy_weights(batch, returns, TrainConfig(**base))
    discounted = policy_weights(batch, returns, TrainConfig(**base, discount_gradient=True))
    torch.testing.assert_close(discounted, plain * 0.9 ** steps.float())
    whole = policy_weights(batch, returns, TrainConfig(**base, reward_to_go=False))
    torch.testing.assert_close(whole, whole_episode_returns(returns, batch.dones, batch.mask))
    centred = policy_weights(batch, returns, TrainConfig(**base), BatchMeanBaseline())
    assert abs(float(centred[batch.mask].mean())) < 1e-5
    value = ValueFunction(spaces.Box(0.0, np.inf, (2,)), ())
    with torch.no_grad():
        value.body[0].weight.copy_(torch.tensor([[1.0, 0.0]]))  # V(s) = the step index in the observation
        value.body[0].bias.zero_()
    baseline = ValueBaseline(value, EagerOptimizer(value.parameters(), "adam", lr=0.01), steps=1)
    advantages = policy_weights(batch, returns, TrainConfig(**base), baseline)
    expected = torch.where(batch.mask, returns - batch.observations[..., 0], torch.zeros_like(returns))
    torch.testing.assert_close(advantages, expected)


def test_value_bootstraps_only_at_time_limit_cuts() -> None:
    # CountingTruncated: episodes of 1..6 steps cut at 3; reward at step t is t + 1
    _, batch = collected("toy/CountingTruncated-v0")
    assert (batch.truncated & batch.mask).any() and (batch.terminated & batch.mask).any()
    value = ValueFunction(spaces.Box(0.0, np.inf, (2,)), ())
    with torch.no_grad():
        value.body[0].weight.zero_()
        value.body[0].bias.fill_(10.0)  # V = 10 everywhere
    config = TrainConfig(gamma=0.5, baseline="value")
    baseline = ValueBaseline(value, EagerOptimizer(value.parameters(), "adam", lr=0.01), steps=1)
    returns = batch_returns(batch, config, baseline)
    cut = batch.truncated & batch.dones
    plain = discounted_returns(batch.rewards, batch.dones, 0.5)
    # at a cut: G = r + 0.5 * 10 = 3 + 5; two steps before it: 1 + 0.5 * (2 + 0.5 * 8) = 4
    torch.testing.assert_close(returns[cut], torch.full_like(returns[cut], 8.0))
    terminal = batch.terminated & batch.dones
    torch.testing.assert_close(returns[terminal], plain[terminal])
    first_of_cut = torch.zeros_like(cut)
    first_of_cut[:-2] = cut[2:]
    torch.testing.assert_close(
        returns[first_of_cut & batch.mask], torch.full_like(returns[first_of_cut & batch.mask], 4.0)
    )
    # the final observation of a cut episode is what V saw: [3, length] with length > 3
    finals = batch.next_observations(cut)
    assert (finals[:, 0] == 3).all() and (finals[:, 1] > 3).all()
    everything = torch.cat([batch.observations[1:], batch.last_observations[None]])
    torch.testing.assert_close(batch.next_observations(batch.mask), everything[batch.mask])
    no_bootstrap = TrainConfig(gamma=0.5, baseline="value", bootstrap_truncated=False)
    torch.testing.assert_close(batch_returns(batch, no_bootstrap, baseline), plain)


def test_per_step_update_is_the_textbook_loop() -> None:
    """Sutton & Barto 13.3 on one episode: theta += lr * gamma^t * G_t * grad ln pi(A_t|S_t), t = 0, 1, ..."""
    config = TrainConfig(
        update="per_step",
        optimizer="sgd",
        lr=0.1,
        gamma=0.9,
        discount_gradient=True,
        return_normalization="none",
        hidden_sizes=(),
        num_envs=1,
    )
    policy, batch = collected(num_envs=1, episodes=1, hidden_sizes=())
    assert len(batch.episode_returns) == 1 and batch.num_steps > 1
    reference = make_policy(spaces.Box(0.0, np.inf, (2,)), spaces.Discrete(2), ())
    reference.load_state_dict(policy.state_dict())
    steps = batch.mask[:, 0].nonzero().flatten().tolist()
    rewards = [float(batch.rewards[t, 0]) for t in steps]
    for k, t in enumerate(steps):  # the book's loop, written out
        g = sum(0.9 ** (i - k) * rewards[i] for i in range(k, len(steps)))
        log_prob = reference(batch.observations[t, 0][None]).log_prob(batch.actions[t, 0][None]).sum()
        grads = torch.autograd.grad(log_prob, list(reference.parameters()))
        with torch.no_grad():
            for parameter, grad in zip(reference.parameters(), grads, strict=True):
                parameter += 0.1 * 0.9**k * g * grad
    weights = policy_weights(batch, discounted_returns(batch.rewards, batch.dones, 0.9), config)
    update_policy(policy, torch.optim.SGD(policy.parameters(), lr=0.1), batch, weights, config)
    for ours, theirs in zip(policy.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(ours, theirs)


def test_score_function_surrogate_estimates_the_gradient_of_an_expectation() -> None:
    # d/dmu E_{x ~ N(mu, 1)}[x^2] = 2 mu
    torch.manual_seed(0)
    mean = torch.tensor(0.7, requires_grad=True)
    distribution = torch.distributions.Normal(mean, 1.0)
    samples = distribution.sample((200_000,))
    f = samples**2
    for baseline in (None, 1.49):  # 1.49 = E[x^2]: a constant baseline changes the variance, not the mean
        surrogate = score_function_surrogate(distribution.log_prob(samples), f, baseline)
        (grad,) = torch.autograd.grad(surrogate.mean(), mean)
        per_sample = (f - (baseline or 0.0)) * (samples - 0.7)
        standard_error = float(per_sample.std() / math.sqrt(len(samples)))
        assert abs(float(grad) - 1.4) < 4 * standard_error


@pytest.mark.parametrize(
    "hyperparameters",
    [
        {"baseline": "value"},
        {"baseline": "leave_one_out", "reward_to_go": False},
        {"baseline": "running_mean", "return_normalization": "episode"},
        {"update": "per_step", "entropy_coef": 0.1, "discount_gradient": True},
        {"loss_reduction": "mean_over_episodes", "entropy_coef": 0.01},
    ],
)
def test_every_switch_trains(hyperparameters: dict[str, object]) -> None:
    agent = Reinforce("CartPole-v1", seed=0, num_envs=4, hidden_sizes=(16,), **hyperparameters)
    metrics = agent.update()
    assert all(math.isfinite(value) for key, value in metrics.items() if key.startswith("losses/"))
    assert ("losses/value_loss" in metrics) == (hyperparameters.get("baseline") == "value")
    agent.close()


def test_the_score_function_example_estimates_the_exact_gradient() -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[2] / "examples"))
    import score_function_vs_pathwise as example

    torch.manual_seed(0)
    exact = torch.tensor([2 * (example.MU - 2.0), 2 * example.SIGMA])
    for method in ("score function", "score function, leave-one-out baseline", "pathwise"):
        estimates = example.gradient_estimates(method, 8)
        standard_error = estimates.std(0) / math.sqrt(len(estimates))
        assert ((estimates.mean(0) - exact).abs() < 4 * standard_error).all(), method


def test_a_diverging_value_network_stops_before_its_optimizer_step() -> None:
    from reinforce import NonFiniteError

    agent = Reinforce("CartPole-v1", seed=0, num_envs=4, baseline="value", value_lr=1e30, value_steps=3)
    with pytest.raises(NonFiniteError, match=r"value network.*lower value_lr"):
        for _ in range(3):
            agent.update()
    assert isinstance(agent.baseline, ValueBaseline)
    assert all(bool(torch.isfinite(parameter).all()) for parameter in agent.baseline.network.parameters())
    agent.close()
