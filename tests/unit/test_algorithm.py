from __future__ import annotations

import pytest
import torch
from gymnasium import spaces

import reinforce
from reinforce import RolloutBatch, TrainConfig, make_policy, reinforce_loss
from reinforce.config import LossReduction
from reinforce.core.loss import update_policy
from reinforce.core.optim import EagerOptimizer
from reinforce.core.policies import Policy
from reinforce.core.weights import batch_returns, policy_weights
from reinforce.errors import NonFiniteError


def test_surrogate_equals_cross_entropy_with_the_taken_action_as_label() -> None:
    torch.manual_seed(0)
    policy = make_policy(spaces.Box(-1, 1, (4,)), spaces.Discrete(3), hidden_sizes=(16,))
    observations = torch.randn(10, 4)
    actions = torch.randint(0, 3, (10,))
    returns = torch.randn(10)

    loss = reinforce_loss(policy(observations).log_prob(actions), returns)
    logits = policy.body(observations)
    cross_entropy = torch.nn.functional.cross_entropy(logits, actions, reduction="none")
    torch.testing.assert_close(loss, (cross_entropy * returns).mean())

    # and so are the gradients
    grads = torch.autograd.grad(loss, list(policy.parameters()))
    expected = torch.autograd.grad((cross_entropy * returns).mean(), list(policy.parameters()))
    for grad, other in zip(grads, expected, strict=True):
        torch.testing.assert_close(grad, other)


def test_weights_are_constants() -> None:
    log_probs = torch.tensor([-1.0, -2.0], requires_grad=True)
    weights = torch.tensor([3.0, 4.0], requires_grad=True)
    reinforce_loss(log_probs, weights).backward()
    assert weights.grad is None
    torch.testing.assert_close(log_probs.grad, torch.tensor([-1.5, -2.0]))


def test_mismatched_shapes_are_rejected() -> None:
    with pytest.raises(ValueError):
        reinforce_loss(torch.zeros(3), torch.zeros(3, 1))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_loss_never_reaches_the_optimizer(bad: float) -> None:
    torch.manual_seed(0)
    policy = make_policy(spaces.Box(-1, 1, (2,)), spaces.Discrete(2), hidden_sizes=(4,))
    config = TrainConfig(return_normalization="none")
    optimizer = EagerOptimizer(policy.parameters(), config.optimizer, lr=config.lr)
    rewards = torch.tensor([[1.0], [bad]])
    batch = RolloutBatch(
        observations=torch.randn(2, 1, 2),
        actions=torch.tensor([[0], [1]]),
        rewards=rewards,
        terminated=torch.tensor([[False], [True]]),
        truncated=torch.zeros(2, 1, dtype=torch.bool),
        mask=torch.ones(2, 1, dtype=torch.bool),
        episode_returns=[1.0 + bad],
        episode_lengths=[2],
        episode_truncated=[False],
        last_observations=torch.zeros(1, 2),
    )
    weights_TN = policy_weights(batch, batch_returns(batch, config), config)
    before = [p.detach().clone() for p in policy.parameters()]
    with pytest.raises(NonFiniteError, match=r"non-finite loss.*lower lr"):
        update_policy(policy, optimizer, batch, weights_TN, config)
    for parameter, old in zip(policy.parameters(), before, strict=True):
        assert torch.equal(parameter, old) and parameter.grad is None
    assert not optimizer.state  # Adam never stepped


def test_clip_trains_on_the_log_prob_of_the_unclipped_sample() -> None:
    from toy_envs import wide_gaussian_batch

    from reinforce.core.loss import policy_loss

    policy, batch, _ = wide_gaussian_batch()
    config = TrainConfig(return_normalization="none")
    weights_TN = policy_weights(batch, batch_returns(batch, config), config)
    loss, _ = policy_loss(policy, batch, weights_TN, config)
    observations, actions, weights = (x[batch.mask] for x in (batch.observations, batch.actions, weights_TN))
    assert (actions.abs() > 1).any()
    gaussian = torch.distributions.Normal(policy.body(observations), policy.log_std.exp())
    torch.testing.assert_close(loss, -(gaussian.log_prob(actions).sum(-1) * weights).mean())
    clipped_loss = -(gaussian.log_prob(actions.clamp(-1, 1)).sum(-1) * weights).mean()
    assert not torch.allclose(loss, clipped_loss)


def cartpole_batch(*, num_envs: int, episodes: int) -> tuple[Policy, RolloutBatch]:
    """A small seeded policy (one hidden layer of 8) and the CartPole-v1 episodes it collects."""
    from reinforce.rollout.envs import make_vec_env

    envs = make_vec_env("CartPole-v1", num_envs)
    torch.manual_seed(0)
    policy = make_policy(envs.single_observation_space, envs.single_action_space, hidden_sizes=(8,))
    batch = reinforce.collect(envs, policy, episodes, seed=0)
    envs.close()
    return policy, batch


def test_the_loss_over_the_valid_steps_equals_the_padded_one() -> None:
    # the loss runs the policy on the masked (valid) steps only; over the whole padded [T, N] buffer, with the
    # weights that are 0 outside the mask and the sum divided by the number of valid steps, it is the same
    from reinforce.core.loss import policy_loss

    policy, batch = cartpole_batch(num_envs=4, episodes=6)
    assert not batch.mask.all()  # reset and idle steps pad the buffer
    config = TrainConfig()
    weights_TN = policy_weights(batch, batch_returns(batch, config), config)
    loss, _ = policy_loss(policy, batch, weights_TN, config)
    padded_log_probs = policy(batch.observations.flatten(0, 1)).log_prob(batch.actions.flatten())
    padded = -(padded_log_probs * weights_TN.flatten()).sum() / batch.num_steps
    torch.testing.assert_close(loss, padded)
    for grad, padded_grad in zip(
        torch.autograd.grad(loss, list(policy.parameters())),
        torch.autograd.grad(padded, list(policy.parameters())),
        strict=True,
    ):
        torch.testing.assert_close(grad, padded_grad)


@pytest.mark.parametrize("loss_reduction", ["mean_over_steps", "mean_over_episodes"])
def test_a_chunked_backward_gives_the_one_pass_loss_and_gradient(
    loss_reduction: LossReduction, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reinforce.core import loss as algorithm

    policy, batch = cartpole_batch(num_envs=5, episodes=9)
    config = TrainConfig(loss_reduction=loss_reduction, entropy_coef=0.3)
    weights_TN = policy_weights(batch, batch_returns(batch, config), config)
    loss, entropy = algorithm.policy_loss(policy, batch, weights_TN, config)
    expected = torch.autograd.grad(loss, list(policy.parameters()))

    chunk = 7
    assert batch.num_steps > 3 * chunk and batch.num_steps % chunk  # several chunks, the last one shorter
    monkeypatch.setattr(algorithm, "ONE_PASS_MAX_STEPS", chunk)
    monkeypatch.setattr(algorithm, "LOSS_CHUNK_STEPS", chunk)
    policy.zero_grad(set_to_none=True)
    chunked_loss, chunked_entropy = algorithm.backward_policy_loss(policy, batch, weights_TN, config)
    torch.testing.assert_close(chunked_loss, loss.detach())
    torch.testing.assert_close(chunked_entropy, entropy)
    for parameter, grad in zip(policy.parameters(), expected, strict=True):
        torch.testing.assert_close(parameter.grad, grad)
    # chunking is used only above the threshold: at or below it, one pass gives exactly the same floats
    monkeypatch.setattr(algorithm, "ONE_PASS_MAX_STEPS", batch.num_steps)
    policy.zero_grad(set_to_none=True)
    one_pass_loss, _ = algorithm.backward_policy_loss(policy, batch, weights_TN, config)
    assert torch.equal(one_pass_loss, loss.detach())
    for parameter, grad in zip(policy.parameters(), expected, strict=True):
        assert torch.equal(parameter.grad, grad)
