from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from gymnasium import spaces
from torch.distributions import Categorical

from reinforce import ReinforceError, make_policy
from reinforce.policies import LOG_STD_MAX, LOG_STD_MIN, CategoricalPolicy, GaussianPolicy


def test_default_policy_is_the_tutorial_network() -> None:
    policy = make_policy(spaces.Box(-1, 1, (4,)), spaces.Discrete(2))
    assert isinstance(policy, CategoricalPolicy)
    shapes = [tuple(p.shape) for p in policy.parameters()]
    assert shapes == [(128, 4), (128,), (2, 128), (2,)]
    assert isinstance(policy(torch.zeros(5, 4)), Categorical)


def test_linear_softmax_score_matches_the_closed_form() -> None:
    # grad_W log pi(a|x) = (onehot(a) - pi(.|x)) outer x; grad_b = onehot(a) - pi(.|x)
    torch.manual_seed(0)
    policy = make_policy(spaces.Box(-1, 1, (3,)), spaces.Discrete(4), hidden_sizes=())
    (layer,) = [m for m in policy.modules() if isinstance(m, torch.nn.Linear)]
    features = torch.randn(3)
    for action in range(4):
        policy.zero_grad()
        policy(features[None]).log_prob(torch.tensor([action])).sum().backward()
        probs = torch.softmax(layer(features), dim=-1).detach()
        score = torch.nn.functional.one_hot(torch.tensor(action), 4).float() - probs
        torch.testing.assert_close(layer.weight.grad, torch.outer(score, features))
        torch.testing.assert_close(layer.bias.grad, score)


def test_gaussian_log_prob_matches_the_closed_form_summed_over_action_dims() -> None:
    torch.manual_seed(0)
    policy = make_policy(spaces.Box(-1, 1, (3,)), spaces.Box(-2, 2, (2,)), hidden_sizes=(8,))
    assert isinstance(policy, GaussianPolicy)
    with torch.no_grad():
        policy.log_std.copy_(torch.tensor([-0.5, 0.3]))
    observations = torch.randn(6, 3)
    actions = torch.randn(6, 2)
    distribution = policy(observations)
    mean = distribution.mean
    std = torch.tensor([-0.5, 0.3]).exp()
    expected = (-((actions - mean) ** 2) / (2 * std**2) - std.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
    torch.testing.assert_close(distribution.log_prob(actions), expected)
    assert distribution.mode.shape == (6, 2)


def test_gaussian_log_std_is_kept_in_its_range() -> None:
    policy = make_policy(spaces.Box(-1, 1, (1,)), spaces.Box(-1, 1, (1,)))
    assert isinstance(policy, GaussianPolicy)
    with torch.no_grad():
        policy.log_std.fill_(50.0)
    assert policy(torch.zeros(1, 1)).stddev.item() == pytest.approx(math.exp(LOG_STD_MAX))
    with torch.no_grad():
        policy.log_std.fill_(-50.0)
    assert policy(torch.zeros(1, 1)).stddev.item() == pytest.approx(math.exp(LOG_STD_MIN))


def test_discrete_observations_are_one_hot() -> None:
    policy = make_policy(spaces.Discrete(5, start=1), spaces.Discrete(2), hidden_sizes=())
    torch.testing.assert_close(policy.encoder(torch.tensor([1, 5])), torch.eye(5)[[0, 4]])


@pytest.mark.parametrize(
    ("observation_space", "action_space", "named"),
    [
        (spaces.Box(-1, 1, (2,)), spaces.MultiBinary(3), "MultiBinary"),
        (spaces.Dict({"a": spaces.Discrete(2)}), spaces.Discrete(2), "Dict"),
    ],
)
def test_unsupported_spaces_raise_a_clear_error(
    observation_space: spaces.Space, action_space: spaces.Space, named: str
) -> None:
    with pytest.raises(ReinforceError, match=named):
        make_policy(observation_space, action_space)


def test_policy_outputs_are_finite_for_large_inputs() -> None:
    policy = make_policy(spaces.Box(-np.inf, np.inf, (4,)), spaces.Discrete(2))
    probs = policy(torch.full((2, 4), 1e4)).probs
    assert torch.isfinite(probs).all()
