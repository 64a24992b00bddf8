"""A user's own networks: a policy body, a value network, a whole policy; saved, loaded and trained on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from gymnasium.spaces import Box, Discrete, MultiBinary, MultiDiscrete
from torch import nn
from torch.distributions import Categorical, Distribution, Normal

import reinforce
from reinforce import Reinforce, ReinforceError


def tanh_body() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 16), nn.Tanh())


class LogitsPolicy(nn.Module):
    """A whole CartPole policy: raw observations -> Categorical over the two actions."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))

    def forward(self, observations: torch.Tensor) -> Distribution:
        return Categorical(logits=self.net(observations.float()))


def test_a_custom_body_gets_the_head_for_the_action_space_and_trains(tmp_path: Path) -> None:
    agent = Reinforce("CartPole-v1", network=tanh_body, seed=0, num_envs=4)
    head = agent.policy.body[-1]
    assert isinstance(head, nn.Linear) and (head.in_features, head.out_features) == (16, 2)
    assert any(isinstance(module, nn.Tanh) for module in agent.policy.modules())
    agent.learn(2_000, run_dir=tmp_path / "run")
    observations = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
    expected = agent.predict(observations, deterministic=True)[0]
    agent.close()
    with pytest.raises(ReinforceError, match=r"trained with network: pass network=\.\.\."):
        reinforce.load(tmp_path / "run")
    loaded = reinforce.load(tmp_path / "run", network=tanh_body)
    np.testing.assert_array_equal(loaded.predict(observations, deterministic=True)[0], expected)
    loaded.close()


def test_a_custom_body_on_a_continuous_env_with_a_state_dependent_log_std() -> None:
    agent = Reinforce(
        "toy/Continuous-v0", network=nn.Sequential(nn.Linear(3, 8), nn.Tanh()), log_std="state_dependent", seed=0
    )
    assert agent.policy.body[-1].out_features == 4  # two means and two log-stds
    agent.update()
    agent.close()


def test_a_custom_value_network_is_the_baselines() -> None:
    agent = Reinforce("CartPole-v1", baseline="value", value_network=tanh_body(), seed=0, num_envs=4)
    value_modules = agent.state()[0]["value"]
    assert any(isinstance(module, nn.Tanh) for module in value_modules.modules())
    agent.update()
    agent.close()
    with pytest.raises(ReinforceError, match=r"set baseline='value'"):
        Reinforce("CartPole-v1", value_network=tanh_body())


def test_a_whole_policy_trains_saves_and_loads(tmp_path: Path) -> None:
    torch.manual_seed(0)
    agent = Reinforce("CartPole-v1", policy=LogitsPolicy(), seed=0, num_envs=4)
    agent.learn(2_000, run_dir=tmp_path / "run")
    observations = np.random.default_rng(1).normal(size=(16, 4)).astype(np.float32)
    expected = agent.predict(observations, deterministic=True)[0]
    agent.close()
    loaded = reinforce.load(tmp_path / "run", policy=LogitsPolicy())
    np.testing.assert_array_equal(loaded.predict(observations, deterministic=True)[0], expected)
    loaded.close()


class WholePolicy(nn.Module):
    """A whole CartPole policy that returns ``distribution(self.net(observations))``: right or wrong for the env."""

    def __init__(self, outputs: int, distribution: type[Distribution]) -> None:
        super().__init__()
        self.net = nn.Linear(4, outputs)
        self.distribution = distribution

    def forward(self, observations: torch.Tensor) -> Distribution:
        features = self.net(observations.float())
        return Categorical(logits=features) if self.distribution is Categorical else Normal(features, 1.0)


class IntegerBody(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(4, 8)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features).long()


def failing_body() -> nn.Module:
    raise RuntimeError("no weights file")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"network": 3}, "network must be a torch.nn.Module"),
        ({"network": IntegerBody()}, r"network returned \(2, 8\) torch.int64 for a batch of 2: it must map .* float"),
        ({"network": failing_body}, r"^network\(\) failed \(RuntimeError: no weights file\): fix the function"),
        (  # the env's step failed on action 2 and the error said "fix the environment"
            {"policy": WholePolicy(3, Categorical)},
            r"^policy's Categorical samples action 2, where Discrete\(2\) needs integer indices in \[0, 2\)",
        ),
        (
            {"policy": WholePolicy(1, Normal)},
            r"^policy's Normal samples actions of shape \(1, 1\) for one observation, where Discrete\(2\) needs \(1,\)",
        ),
        ({"network": nn.Linear(7, 3)}, r"network fails on a batch of 4 features"),
        ({"network": nn.Flatten(0)}, r"network returned \(8,\)"),
        ({"policy": nn.Linear(4, 2)}, "policy returned Tensor, not a torch.distributions.Distribution"),
        ({"policy": LogitsPolicy(), "normalize_observations": True}, "set normalize_observations=False"),
        ({"network": tanh_body, "backend": "ray", "workers": 2}, "backend='local'"),
    ],
)
def test_networks_that_do_not_fit_are_one_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ReinforceError, match=message) as info:
        Reinforce("CartPole-v1", num_envs=2, **kwargs)
    assert "\n" not in str(info.value)
    if "policy" in kwargs:  # an agent without an env checks the same
        with pytest.raises(ReinforceError, match=message):
            Reinforce.from_spaces(Box(-1, 1, (4,)), Discrete(2), **kwargs)


def test_checking_a_whole_policys_samples_leaves_torchs_generator_where_it_was() -> None:
    from reinforce.core.policies import module_policy

    observations, actions = Box(-1, 1, (4,)), Discrete(2)
    draws = []
    for action_space in (None, actions):  # the samples' check (with the action space) draws 64 actions
        torch.manual_seed(0)
        observations.seed(0)
        module_policy(LogitsPolicy(), observations, action_space)
        draws.append(torch.rand(3))
    assert torch.equal(draws[0], draws[1])


class ThreeNormals(nn.Module):
    """Three values an observation, where the spaces below hold four or six."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 3)

    def forward(self, observations: torch.Tensor) -> Distribution:
        return Normal(self.linear(observations.float()), 1.0)


@pytest.mark.parametrize(
    "action_space",
    [Box(-1, 1, (2, 3)), MultiBinary([2, 2]), MultiDiscrete([[2, 3], [4, 5]])],
    ids=["box-2x3", "multibinary-2x2", "multidiscrete-2x2"],
)
def test_a_whole_policy_with_flat_samples_is_taken_as_reinforces_own_are(action_space: Any) -> None:
    from reinforce.core.policies import make_policy, module_policy

    observations = Box(-1, 1, (3,))
    own = make_policy(observations, action_space, hidden_sizes=(8,))  # its samples are flat: [1, size]
    module_policy(own, observations, action_space)
    with pytest.raises(ReinforceError, match="for one observation") as info:  # too few values is refused
        module_policy(ThreeNormals(), observations, action_space)
    assert "\n" not in str(info.value)


class BatchNormal(nn.Module):
    """A Pendulum policy whose Normal has batch shape [B] (no action dimension): EnvActions reshapes it."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 1)

    def forward(self, observations: torch.Tensor) -> Distribution:
        return Normal(self.linear(observations.float()).squeeze(-1), 1.0)


def test_a_whole_policy_of_one_action_value_without_its_dimension_trains() -> None:
    agent = Reinforce("Pendulum-v1", num_envs=2, policy=BatchNormal(), seed=0, normalize_observations=False)
    agent.learn(400)
    assert agent.num_updates >= 1
    agent.close()
