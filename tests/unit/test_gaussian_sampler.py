"""`GaussianMLPSampler`: reinforce's Gaussian MLP policies sampled without their modules and Distribution."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
import torch
from gymnasium import spaces
from sampler_support import drawn_alike
from torch import nn

from reinforce import Reinforce, collect, make_policy
from reinforce.core.policies import GaussianPolicy, Policy
from reinforce.rollout import collect as collect_module
from reinforce.rollout.actions import sample_actions
from reinforce.rollout.envs import make_vec_env
from reinforce.rollout.gaussian_sampler import GaussianMLPSampler
from reinforce.rollout.mlp_sampler import MLPSampler

OBSERVATIONS = spaces.Box(-5.0, 5.0, (5,))
ACTIONS = spaces.Box(-2.0, 1.0, (3,))
ROWS = 600


def gaussian_policy(
    activation: str = "relu",
    normalize: bool = False,
    squash: str = "clip",
    observation_space: spaces.Box = OBSERVATIONS,
    action_space: spaces.Box = ACTIONS,
    **kwargs: Any,
) -> Policy:
    """A Gaussian MLP policy with random weights, log-stds (one clamped) and observation statistics."""
    torch.manual_seed(1)
    policy = make_policy(
        observation_space,
        action_space,
        activation=activation,  # type: ignore[arg-type]
        normalize_observations=normalize,
        action_squash=squash,  # type: ignore[arg-type]
        **{"hidden_sizes": (16, 8), **kwargs},
    )
    if isinstance(policy, GaussianPolicy) and not policy.state_dependent:
        with torch.no_grad():
            log_std = torch.tensor([2.5, -0.7, 0.4])  # the first beyond LOG_STD_MAX: the clamp matters
            policy.log_std.copy_(log_std[: len(policy.log_std)])
    if normalize:  # statistics away from the identity, so that the normalisation and its clip matter
        features = policy.encoder.features
        policy.encoder.update_normalization(torch.randn(50, features, dtype=torch.float64) * 0.5 + 1)
    return policy


def random_observations(rows: int = ROWS) -> np.ndarray:
    return np.random.default_rng(0).uniform(-4.0, 4.0, (rows, 5)).astype(np.float32)


CASES = list(itertools.product(("relu", "tanh"), (False, True), ("clip", "tanh"), (False, True)))


@pytest.mark.parametrize(("activation", "normalize", "squash", "deterministic"), CASES)
def test_gaussian_sampler_draws_the_torch_paths_actions_and_normals(
    activation: str, normalize: bool, squash: str, deterministic: bool
) -> None:
    """`sample_actions` on the policy's Distribution: the same actions bit for bit, and the generator left alike."""
    policy = gaussian_policy(activation, normalize, squash)
    observations = random_observations()
    sampler = GaussianMLPSampler.of(policy, ROWS, deterministic)
    assert sampler is not None
    steps = (ROWS, 7, ROWS)  # another number of rows between two steps of the usual one
    ours, theirs = drawn_alike(
        lambda: [sampler(observations[:rows]) for rows in steps],
        lambda: [
            sample_actions(policy(torch.from_numpy(observations[:rows])), deterministic).numpy() for rows in steps
        ],
        9,
    )
    for mine, torchs in zip(ours, theirs, strict=True):
        assert mine.dtype == torchs.dtype == np.float32 and mine.shape == torchs.shape
        np.testing.assert_array_equal(mine, torchs)
    if not deterministic:  # a sample, not the mean; the third step's draws are not the first's
        with torch.no_grad():
            mean = sample_actions(policy(torch.from_numpy(observations)), True).numpy()
        assert not np.allclose(ours[0], mean, atol=1e-3)
        assert not np.allclose(ours[0], ours[2], atol=1e-3)


def test_a_linear_gaussian_policy_is_sampled_alike() -> None:
    """``hidden_sizes=()``: one linear layer, no activation; the same samples and generator state."""
    policy = gaussian_policy(hidden_sizes=())
    observations = random_observations()
    sampler = GaussianMLPSampler.of(policy, ROWS)
    assert sampler is not None
    ours, theirs = drawn_alike(
        lambda: sampler(observations), lambda: sample_actions(policy(torch.from_numpy(observations))).numpy(), 2
    )
    np.testing.assert_array_equal(ours, theirs)


class Doubled(nn.Module):
    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features * 2


class ShiftedGaussian(GaussianPolicy):
    """A user's subclass: its ``forward`` is not the one the sampler computes."""

    def forward(self, observations: torch.Tensor) -> torch.distributions.Distribution:
        distribution = super().forward(observations)
        return torch.distributions.Independent(torch.distributions.Normal(distribution.mean + 1, 1.0), 1)


def test_the_gaussian_sampler_leaves_other_policies_to_torch() -> None:
    """A state-dependent log-std, a user's network or subclass, a hook, float64: the policy's own call samples."""
    state_dependent = gaussian_policy(log_std="state_dependent")
    custom = gaussian_policy(network=Doubled())
    hooked = gaussian_policy()
    hooked.register_forward_hook(lambda module, inputs, output: output)
    doubled = gaussian_policy().double()
    base = gaussian_policy()
    subclass = ShiftedGaussian(base.encoder, base.body, 3)
    categorical = make_policy(OBSERVATIONS, spaces.Discrete(3), hidden_sizes=(4,))
    for policy in (state_dependent, custom, hooked, doubled, subclass, categorical):
        assert GaussianMLPSampler.of(policy, 4) is None
    assert MLPSampler.of(gaussian_policy(), 4) is None  # the softmax sampler takes no Gaussian
    assert GaussianMLPSampler.of(gaussian_policy(), 4) is not None
    assert GaussianMLPSampler.of(gaussian_policy(), 1 << 20) is not None  # torch's own kernels: no batch too large


def batches_and_states(policy: Policy, monkeypatch: pytest.MonkeyPatch, deterministic: bool) -> list[Any]:
    """A collection on toy/Continuous-v0 with `GaussianMLPSampler`, then without it: batch and generator state."""
    assert GaussianMLPSampler.of(policy, 3) is not None
    steps = []
    sample = GaussianMLPSampler.__call__
    monkeypatch.setattr(GaussianMLPSampler, "__call__", lambda self, rows: steps.append(rows) or sample(self, rows))
    results = []
    for fast in (True, False):
        if not fast:
            monkeypatch.setattr(collect_module.GaussianMLPSampler, "of", classmethod(lambda cls, *args: None))
        envs = make_vec_env("toy/Continuous-v0", 3)
        torch.manual_seed(7)
        results.append((collect(envs, policy, 7, seed=3, deterministic=deterministic), torch.get_rng_state()))
        envs.close()
        assert len(steps) == (len(results[0][0].mask) if fast else 0)  # collect took every step with the sampler
        steps.clear()
    return results


@pytest.mark.parametrize(("squash", "deterministic"), [("clip", False), ("tanh", False), ("tanh", True)])
def test_collection_with_the_gaussian_sampler_is_the_torch_paths(
    squash: str, deterministic: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch (its actions the unclipped or pre-squash samples), episodes and generator state, bit for bit."""
    policy = gaussian_policy("tanh", True, squash, spaces.Box(-1.0, 1.0, (3,)), spaces.Box(-1.0, 1.0, (2,)))
    (ours, our_state), (theirs, their_state) = batches_and_states(policy, monkeypatch, deterministic)
    for name in ("observations", "actions", "rewards", "terminated", "truncated", "mask", "last_observations"):
        assert torch.equal(getattr(ours, name), getattr(theirs, name)), name
    assert ours.episode_returns == theirs.episode_returns
    assert torch.equal(our_state, their_state)
    if squash == "clip" and not deterministic:  # unclipped samples are stored: some lie outside the bounds
        assert (ours.actions[ours.mask].abs() > 1).any()


def updates(env_id: str, fast: bool, monkeypatch: pytest.MonkeyPatch, **settings: Any) -> list[dict[str, Any]]:
    """Three seeded updates' metrics, with the sampler or without it, and the policy's parameters after them."""
    if not fast:
        monkeypatch.setattr(collect_module.GaussianMLPSampler, "of", classmethod(lambda cls, *args: None))
    agent = Reinforce(env_id, seed=0, **settings)
    assert (GaussianMLPSampler.of(agent.policy, agent.config.num_envs) is not None) == fast
    metrics = [agent.update() for _ in range(3)]
    metrics.append({name: value.detach().clone() for name, value in agent.policy.state_dict().items()})
    agent.close()
    monkeypatch.undo()
    return metrics


MUJOCO_PRESET = {
    "hidden_sizes": (16, 16),
    "activation": "tanh",
    "init": "orthogonal",
    "normalize_observations": True,
    "action_squash": "tanh",
    "log_std_init": -0.5,
    "num_envs": 4,
}
"""The shipped MuJoCo preset's policy (hyperparams.yaml, HalfCheetah-v5), with a smaller MLP."""


@pytest.mark.parametrize(
    ("env_id", "settings"),
    [("toy/Continuous-v0", {"num_envs": 3, "hidden_sizes": (8,)}), ("InvertedPendulum-v5", MUJOCO_PRESET)],
)
def test_updates_with_the_gaussian_sampler_are_the_torch_paths(
    env_id: str, settings: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A seeded agent's first updates: the same metrics and parameters with the sampler as without it."""
    if env_id.startswith("Inverted"):
        pytest.importorskip("mujoco")
    ours, theirs = (updates(env_id, fast, monkeypatch, **settings) for fast in (True, False))
    for mine, torchs in zip(ours[:-1], theirs[:-1], strict=True):
        assert mine.keys() == torchs.keys()
        for name, value in mine.items():
            if name.startswith("perf/") or "time" in name:
                continue
            assert value == torchs[name], name
    for name, value in ours[-1].items():
        assert torch.equal(value, theirs[-1][name]), name


def test_hooks_on_every_module_leave_both_samplers_to_torch() -> None:
    box = gaussian_policy()
    softmax = make_policy(OBSERVATIONS, spaces.Discrete(3), hidden_sizes=(4,))
    assert GaussianMLPSampler.of(box, 4) is not None and MLPSampler.of(softmax, 4) is not None
    handle = torch.nn.modules.module.register_module_forward_hook(lambda module, inputs, output: None)
    try:
        assert GaussianMLPSampler.of(box, 4) is None and MLPSampler.of(softmax, 4) is None
    finally:
        handle.remove()
