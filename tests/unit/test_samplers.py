"""The fast paths of a collection step: `MLPSampler` (NumPy) and `sample_logits` (torch without a Distribution)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces
from sampler_support import drawn_alike
from torch import nn

from reinforce import collect, make_policy
from reinforce.core.policies import Policy
from reinforce.population.batched import population_act
from reinforce.rollout import collect as collect_module
from reinforce.rollout.actions import plain_categorical, sample_actions, sample_logits
from reinforce.rollout.envs import make_vec_env
from reinforce.rollout.mlp_sampler import MemberUniforms, MLPSampler

OBSERVATIONS = spaces.Box(-5.0, 5.0, (3,))


def mlp_policy(activation: str = "relu", normalize: bool = False, num_actions: int = 3) -> Policy:
    torch.manual_seed(1)
    policy = make_policy(
        OBSERVATIONS,
        spaces.Discrete(num_actions),
        hidden_sizes=(16, 8),
        activation=activation,
        normalize_observations=normalize,
    )
    if normalize:  # statistics away from the identity, so that the normalisation matters
        policy.encoder.update_normalization(torch.randn(50, 3, dtype=torch.float64) * 3 + 1)
    return policy


def random_observations(rows: int = 4000) -> np.ndarray:
    return np.random.default_rng(0).uniform(-4.0, 4.0, (rows, 3)).astype(np.float32)


@pytest.mark.parametrize(("activation", "normalize"), [("relu", False), ("tanh", False), ("relu", True)])
def test_mlp_sampler_draws_the_torch_paths_actions_and_uniforms(activation: str, normalize: bool) -> None:
    """The same actions as `sample_actions` on the policy's Distribution, and torch's generator left as it leaves it."""
    policy = mlp_policy(activation, normalize)
    observations = random_observations()
    sampler = MLPSampler.of(policy, len(observations))
    assert sampler is not None
    ours, theirs = drawn_alike(
        lambda: sampler(observations), lambda: sample_actions(policy(torch.from_numpy(observations))).numpy(), 9
    )
    # equal but where a uniform falls within float rounding of a boundary (none in these 4000 rows)
    np.testing.assert_array_equal(ours, theirs)
    assert set(np.unique(ours)) == {0, 1, 2}  # not a degenerate policy


def test_mlp_sampler_mode_is_the_distributions() -> None:
    policy = mlp_policy()
    observations = random_observations()
    sampler = MLPSampler.of(policy, len(observations), deterministic=True)
    assert sampler is not None
    state = torch.get_rng_state()
    ours = sampler(observations)
    assert torch.equal(state, torch.get_rng_state())  # no draw
    with torch.no_grad():
        theirs = sample_actions(policy(torch.from_numpy(observations)), deterministic=True).numpy()
    np.testing.assert_array_equal(ours, theirs)


def test_sample_logits_is_sample_actions() -> None:
    policy = mlp_policy()
    logits_of = plain_categorical(policy)
    assert logits_of is not None
    observations = torch.from_numpy(random_observations())
    with torch.no_grad():
        ours, theirs = drawn_alike(
            lambda: sample_logits(logits_of(observations)), lambda: sample_actions(policy(observations)), 4
        )
        assert torch.equal(ours, theirs)
        assert torch.equal(sample_logits(logits_of(observations), True), sample_actions(policy(observations), True))


class Doubled(nn.Module):
    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features * 2


def test_the_fast_paths_leave_other_policies_to_torch() -> None:
    """A user's network, a MultiDiscrete head, a hook, float64 weights: the sampler and the logits path decline."""
    custom = make_policy(OBSERVATIONS, spaces.Discrete(2), network=Doubled())
    multi = make_policy(OBSERVATIONS, spaces.MultiDiscrete([2, 3]), hidden_sizes=(4,))
    hooked = mlp_policy()
    hooked.body.register_forward_hook(lambda module, inputs, output: output * 0)
    doubled = mlp_policy().double()  # torch refuses its encoder's float32 features: so must collection
    for policy in (custom, multi, hooked, doubled):
        assert MLPSampler.of(policy, 4) is None
    assert plain_categorical(multi) is None
    policy = mlp_policy()
    policy.register_forward_hook(lambda module, inputs, output: output)
    assert plain_categorical(policy) is None
    assert MLPSampler.of(mlp_policy(), 1 << 20) is None  # too large a batch: torch's kernels do it


@pytest.mark.parametrize("deterministic", [False, True])
def test_collection_with_the_sampler_is_the_torch_paths(deterministic: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The batch, episodes and generator state of a collection with `MLPSampler` and without it."""
    torch.manual_seed(0)
    policy = make_policy(spaces.Box(0, np.inf, (2,)), spaces.Discrete(2), hidden_sizes=(8,))
    assert MLPSampler.of(policy, 3) is not None
    batches, states = [], []
    for fast in (True, False):
        if not fast:
            monkeypatch.setattr(collect_module.MLPSampler, "of", classmethod(lambda cls, *args: None))
        envs = make_vec_env("toy/CountingTruncated-v0", 3)
        torch.manual_seed(7)
        batches.append(collect(envs, policy, 10, seed=3, deterministic=deterministic))
        states.append(torch.get_rng_state())
        envs.close()
    ours, theirs = batches
    for name in ("observations", "actions", "rewards", "terminated", "truncated", "mask", "last_observations"):
        assert torch.equal(getattr(ours, name), getattr(theirs, name)), name
    assert ours.episode_returns == theirs.episode_returns
    assert torch.equal(states[0], states[1])


@pytest.mark.parametrize("normalize", [False, True])
def test_members_sampler_draws_population_acts_actions_from_each_members_generator(normalize: bool) -> None:
    """K members' rows over three steps: the actions of `population_act` drawing from each generator per step."""
    policies = []
    for seed in range(4):
        torch.manual_seed(seed)
        policy = make_policy(OBSERVATIONS, spaces.Discrete(3), hidden_sizes=(16,), normalize_observations=normalize)
        if normalize:
            policy.encoder.update_normalization(torch.randn(20, 3, dtype=torch.float64) * (seed + 1))
        policies.append(policy)
    observations = random_observations(4 * 500)
    results = []
    for fast in (True, False):
        generators = [torch.Generator().manual_seed(100 + k) for k in range(4)]
        if fast:
            uniforms = MemberUniforms(generators, 500, block=3)
            sampler = MLPSampler.of_members(policies, len(observations), uniforms=uniforms)
            assert sampler is not None
            results.append(sampler(observations))
            results.append(sampler(observations))  # a second step, from the same block
            results.append(sampler(observations))  # and from the next one
        else:
            act = population_act(policies, generators=generators)  # a draw per member per step
            with torch.no_grad():
                for _ in range(3):
                    results.append(act(torch.from_numpy(observations), None).numpy())
    for ours, theirs in zip(results[:3], results[3:], strict=True):
        np.testing.assert_array_equal(ours, theirs)
    deterministic = MLPSampler.of_members(policies, len(observations), deterministic=True)
    assert deterministic is not None
    with torch.no_grad():
        modes = population_act(policies, deterministic=True)(torch.from_numpy(observations), None).numpy()
    np.testing.assert_array_equal(deterministic(observations), modes)
    wider = make_policy(OBSERVATIONS, spaces.Discrete(3), hidden_sizes=(8,))
    assert MLPSampler.of_members([*policies[:2], wider], 3) is None  # one architecture only


def test_member_uniforms_are_each_generators_draws_per_step() -> None:
    """Blocks of draws give every member the values of one draw of its own generator per step."""
    generators = [torch.Generator().manual_seed(seed) for seed in (5, 6)]
    uniforms = MemberUniforms(generators, rows=3, block=4)
    steps = [uniforms.next() for _ in range(10)]
    for k, seed in enumerate((5, 6)):
        generator = torch.Generator().manual_seed(seed)
        for step in steps:
            assert torch.equal(step[3 * k : 3 * (k + 1)], torch.rand((3, 1), generator=generator))


class WholePolicy(Policy):
    """A user's policy without reinforce's encoder and body."""

    def __init__(self) -> None:
        nn.Module.__init__(self)
        self.layer = nn.Linear(3, 2)

    def forward(self, observations: torch.Tensor) -> torch.distributions.Distribution:
        return torch.distributions.Categorical(logits=self.layer(observations))


def test_a_users_whole_policy_is_left_to_torch() -> None:
    policy = WholePolicy()
    assert MLPSampler.of(policy, 4) is None
    assert plain_categorical(policy) is None
