from __future__ import annotations

import pytest
import torch
from gymnasium import spaces

from reinforce import make_policy, reinforce_loss


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
