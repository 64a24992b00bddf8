from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from gymnasium import spaces
from torch.distributions import Categorical

from reinforce import ReinforceError, make_policy
from reinforce.core.distributions import TanhNormal
from reinforce.core.networks import ObservationEncoder
from reinforce.core.policies import (
    LOG_STD_MAX,
    LOG_STD_MIN,
    BernoulliPolicy,
    CategoricalPolicy,
    GaussianPolicy,
    MultiCategoricalPolicy,
)
from reinforce.rollout.collect import sample_actions, to_env_actions


def test_default_policy_is_the_tutorial_network() -> None:
    policy = make_policy(spaces.Box(-1, 1, (4,)), spaces.Discrete(2))
    assert isinstance(policy, CategoricalPolicy)
    shapes = [tuple(p.shape) for p in policy.parameters()]
    assert shapes == [(128, 4), (128,), (2, 128), (2,)]
    assert isinstance(policy(torch.zeros(5, 4)), Categorical)


def test_default_activation_and_init_build_the_same_network_as_before() -> None:
    # activation="relu", init="default" must keep seeded runs bit for bit: the layers torch built before them
    torch.manual_seed(3)
    policy = make_policy(spaces.Box(-1, 1, (4,)), spaces.Discrete(2), hidden_sizes=(16, 8))
    torch.manual_seed(3)
    before = torch.nn.Sequential(
        torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)
    )
    assert str(policy.body) == str(before)
    for ours, theirs in zip(policy.body.state_dict().values(), before.state_dict().values(), strict=True):
        assert torch.equal(ours, theirs)


def test_tanh_and_orthogonal_init_reach_the_policy_and_the_value_network() -> None:
    from reinforce import TrainConfig
    from reinforce.core.baselines import VALUE_HEAD_GAIN, ValueBaseline, make_baseline
    from reinforce.core.networks import HIDDEN_GAIN, POLICY_HEAD_GAIN
    from reinforce.core.policies import policy_from_config

    config = TrainConfig(
        hidden_sizes=(16, 8), value_hidden_sizes=(16, 8), activation="tanh", init="orthogonal", baseline="value"
    )
    observation_space = spaces.Box(-1, 1, (4,))
    policy = policy_from_config(config, observation_space, spaces.Discrete(2))
    baseline = make_baseline(config, observation_space)
    assert isinstance(baseline, ValueBaseline)
    for body, head_gain in ((policy.body, POLICY_HEAD_GAIN), (baseline.network.body, VALUE_HEAD_GAIN)):
        assert [type(m) for m in body if not isinstance(m, torch.nn.Linear)] == [torch.nn.Tanh, torch.nn.Tanh]
        linears = [m for m in body if isinstance(m, torch.nn.Linear)]
        for index, linear in enumerate(linears):
            gain = head_gain if index == len(linears) - 1 else HIDDEN_GAIN
            weight = linear.weight.detach().double()  # orthogonal: the shorter side's Gram matrix is gain^2 I
            gram = weight @ weight.T if weight.shape[0] <= weight.shape[1] else weight.T @ weight
            assert torch.allclose(gram, gain**2 * torch.eye(len(gram), dtype=torch.float64), atol=1e-5)
            assert not linear.bias.any()


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
        (spaces.Box(-1, 1, (2,)), spaces.Text(3), "Text"),
        (spaces.Box(-1, 1, (2,)), spaces.Dict({"a": spaces.Discrete(2)}), "Dict"),
        (spaces.Box(-1, 1, (2,)), spaces.Tuple((spaces.Discrete(2),)), "Tuple"),
        (spaces.Box(-1, 1, (2,)), spaces.Sequence(spaces.Discrete(2)), "Sequence"),
        (spaces.Box(-1, 1, (2,)), spaces.Graph(spaces.Box(0, 1, (2,)), None), "Graph"),
        (spaces.Dict({"a": spaces.Discrete(2)}), spaces.Discrete(2), "Dict"),
        (spaces.Text(3), spaces.Discrete(2), "Text"),
        (spaces.Box(-1, 1, (2,)), spaces.Box(-np.inf, np.inf, (2,)), "finite bounds"),
    ],
)
def test_unsupported_spaces_raise_a_clear_error(
    observation_space: spaces.Space, action_space: spaces.Space, named: str
) -> None:
    with pytest.raises(ReinforceError, match=named):
        make_policy(observation_space, action_space, action_squash="tanh" if named == "finite bounds" else "clip")


def test_policy_outputs_are_finite_for_large_inputs() -> None:
    policy = make_policy(spaces.Box(-np.inf, np.inf, (4,)), spaces.Discrete(2))
    probs = policy(torch.full((2, 4), 1e4)).probs
    assert torch.isfinite(probs).all()


def _tanh_policy(low: list[float], high: list[float], **kwargs: object) -> GaussianPolicy:
    policy = make_policy(
        spaces.Box(-1, 1, (3,)),
        spaces.Box(np.array(low, np.float32), np.array(high, np.float32)),
        hidden_sizes=(8,),
        action_squash="tanh",
        **kwargs,
    )
    assert isinstance(policy, GaussianPolicy)
    return policy


def test_tanh_log_prob_matches_a_numerical_change_of_variables() -> None:
    # log pi(a) = log N(u) - log |da/du|, with da/du by central differences of the map that to_env_actions applies
    torch.manual_seed(0)
    low, high = [-2.0, 0.0], [1.0, 0.5]
    space = spaces.Box(np.array(low), np.array(high), dtype=np.float64)  # float64, for the finite differences
    policy = _tanh_policy(low, high)
    distribution = policy(torch.randn(200, 3))
    assert isinstance(distribution, TanhNormal)
    u = distribution.sample().double()
    step = 1e-6
    derivative = (
        to_env_actions((u + step).numpy(), space, "tanh") - to_env_actions((u - step).numpy(), space, "tanh")
    ) / (2 * step)
    mean, std = distribution.mean.double(), distribution.stddev.double()
    gaussian = (-((u - mean) ** 2) / (2 * std**2) - std.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
    expected = gaussian - torch.from_numpy(np.log(np.abs(derivative))).sum(-1)
    torch.testing.assert_close(distribution.log_prob(u.float()).double(), expected, rtol=0, atol=1e-4)


def test_tanh_density_integrates_to_one_over_the_bounds() -> None:
    low, high = -3.0, 1.0
    policy = _tanh_policy([low], [high])
    with torch.no_grad():
        policy.log_std.fill_(0.4)
    actions = torch.linspace(low, high, 200_001, dtype=torch.float64)[1:-1]
    u = torch.atanh(2 * (actions - low) / (high - low) - 1)
    distribution = policy(torch.zeros(1, 3))
    density = distribution.log_prob(u.float()[:, None]).double().exp()
    assert torch.trapezoid(density, actions).item() == pytest.approx(1.0, abs=2e-3)


def test_tanh_log_prob_is_finite_far_in_the_tails_and_the_mode_is_the_squashed_mean() -> None:
    policy = _tanh_policy([-1.0], [3.0])
    with torch.no_grad():
        distribution = policy(torch.randn(4, 3))
    u = torch.tensor([[-60.0], [-20.0], [20.0], [60.0]])
    assert torch.isfinite(distribution.log_prob(u)).all()
    mode = sample_actions(distribution, deterministic=True)
    squashed_mean = -1.0 + (torch.tanh(distribution.mean) + 1) / 2 * 4.0
    np.testing.assert_allclose(
        to_env_actions(mode.numpy(), spaces.Box(-1.0, 3.0, (1,)), "tanh"), squashed_mean, rtol=1e-5
    )
    env_actions = to_env_actions(u.numpy(), spaces.Box(-1.0, 3.0, (1,), np.float32), "tanh")
    assert env_actions.min() >= -1.0 and env_actions.max() <= 3.0


def test_state_dependent_log_std_is_a_clamped_head() -> None:
    torch.manual_seed(0)
    policy = make_policy(
        spaces.Box(-1, 1, (3,)), spaces.Box(-1, 1, (2,)), hidden_sizes=(), log_std="state_dependent", log_std_init=-1
    )
    assert isinstance(policy, GaussianPolicy) and not hasattr(policy, "log_std")
    torch.testing.assert_close(policy(torch.zeros(1, 3)).stddev, torch.full((1, 2), math.exp(-1.0)))
    observations = torch.randn(5, 3)
    assert not torch.allclose(policy(observations).stddev[0], policy(observations).stddev[1])
    huge = torch.full((2, 3), 1e6) * torch.tensor([[1.0], [-1.0]])
    stddev = policy(huge).stddev
    assert stddev.min() >= math.exp(LOG_STD_MIN) - 1e-6 and stddev.max() <= math.exp(LOG_STD_MAX) + 1e-5


def test_multidiscrete_log_prob_is_the_sum_of_independent_softmaxes() -> None:
    torch.manual_seed(0)
    policy = make_policy(spaces.Box(-1, 1, (3,)), spaces.MultiDiscrete([2, 4, 3]), hidden_sizes=(8,))
    assert isinstance(policy, MultiCategoricalPolicy)
    observations = torch.randn(7, 3)
    actions = torch.stack([torch.randint(0, n, (7,)) for n in (2, 4, 3)], dim=1)
    logits = policy.body(policy.encoder(observations))
    parts = torch.split(logits, [2, 4, 3], dim=1)
    expected = sum(
        torch.log_softmax(part, dim=1).gather(1, actions[:, i : i + 1]).squeeze(1) for i, part in enumerate(parts)
    )
    distribution = policy(observations)
    torch.testing.assert_close(distribution.log_prob(actions), expected)
    expected_entropy = sum(Categorical(logits=part).entropy() for part in parts)
    torch.testing.assert_close(distribution.entropy(), expected_entropy)
    samples = torch.stack([sample_actions(distribution) for _ in range(300)])
    assert (samples >= 0).all() and (samples.amax((0, 1)) == torch.tensor([1, 3, 2])).all()
    torch.testing.assert_close(
        sample_actions(distribution, deterministic=True), torch.stack([p.argmax(1) for p in parts], 1)
    )


def test_multidiscrete_env_actions_are_shifted_by_start_and_shaped() -> None:
    space = spaces.MultiDiscrete(np.array([[2, 3], [4, 5]]), start=np.array([[1, -1], [0, 10]]))
    actions = np.array([[1, 2, 3, 4], [0, 0, 0, 0]])
    env_actions = to_env_actions(actions, space)
    assert env_actions.shape == (2, 2, 2) and all(space.contains(action) for action in env_actions)
    np.testing.assert_array_equal(env_actions[0], [[2, 1], [3, 14]])


def test_multibinary_log_prob_is_the_sum_of_independent_bernoullis() -> None:
    torch.manual_seed(0)
    space = spaces.MultiBinary([2, 3])
    policy = make_policy(spaces.Box(-1, 1, (3,)), space, hidden_sizes=(8,))
    assert isinstance(policy, BernoulliPolicy)
    observations = torch.randn(6, 3)
    bits = torch.randint(0, 2, (6, 6)).float()
    logits = policy.body(policy.encoder(observations))
    p = torch.sigmoid(logits)
    expected = (bits * p.log() + (1 - bits) * (1 - p).log()).sum(1)
    distribution = policy(observations)
    torch.testing.assert_close(distribution.log_prob(bits), expected)
    mode = sample_actions(distribution, deterministic=True)
    torch.testing.assert_close(mode, (logits > 0).float())
    env_actions = to_env_actions(sample_actions(distribution).numpy(), space)
    assert env_actions.shape == (6, 2, 3) and all(space.contains(action) for action in env_actions)


def test_running_normalization_matches_the_statistics_of_everything_seen() -> None:
    encoder = ObservationEncoder(spaces.Box(-np.inf, np.inf, (2, 2)), normalize=True)
    rng = np.random.default_rng(0)
    batches = [rng.normal(loc=[3, -1, 0, 100], scale=[1, 2, 0.5, 30], size=(n, 4)) for n in (5, 40, 1, 17)]
    for batch in batches:
        encoder.update_normalization(torch.as_tensor(batch.reshape(-1, 2, 2), dtype=torch.float32))
    everything = np.concatenate(batches).astype(np.float32).astype(np.float64)
    assert encoder.obs_count.item() == len(everything)
    np.testing.assert_allclose(encoder.obs_mean.numpy(), everything.mean(0), rtol=1e-10)
    np.testing.assert_allclose(encoder.obs_var.numpy(), everything.var(0), rtol=1e-10)
    features = encoder(torch.as_tensor(everything[:3].reshape(-1, 2, 2), dtype=torch.float32))
    expected = (everything[:3] - everything.mean(0)) / np.sqrt(everything.var(0) + 1e-8)
    np.testing.assert_allclose(features.numpy(), expected, rtol=1e-4, atol=1e-4)
    outlier = torch.full((1, 2, 2), 1e9)
    assert encoder(outlier).max().item() == 10.0


def test_normalization_is_refused_for_images_and_discrete_observations() -> None:
    with pytest.raises(ReinforceError, match="normalize_observations"):
        make_policy(spaces.Box(0, 255, (8, 8, 3), np.uint8), spaces.Discrete(2), normalize_observations=True)
    with pytest.raises(ReinforceError, match="normalize_observations"):
        make_policy(spaces.Discrete(3), spaces.Discrete(2), normalize_observations=True)


def test_images_go_through_a_cnn_scaled_to_unit_range() -> None:
    torch.manual_seed(0)
    policy = make_policy(spaces.Box(0, 255, (12, 10, 3), np.uint8), spaces.Discrete(2), hidden_sizes=(8,))
    assert policy.encoder.cnn is not None
    images = torch.randint(0, 256, (4, 12, 10, 3), dtype=torch.uint8)
    expected = policy.encoder.cnn(images.permute(0, 3, 1, 2).float() / 255)
    torch.testing.assert_close(policy.encoder(images), expected)
    assert policy(images).logits.shape == (4, 2)
