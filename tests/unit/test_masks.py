"""Action masks: the masked distribution, the sampler under masks, reading masks from infos, joined batches."""

from __future__ import annotations

import dataclasses
import re

import hypothesis.strategies as st
import numpy as np
import pytest
import torch
from gymnasium import spaces
from hypothesis import given, settings
from torch.distributions import Categorical

from reinforce import ReinforceError, TrainConfig, collect, make_policy
from reinforce.core.batch import concatenate_batches
from reinforce.core.distributions import MaskedCategorical
from reinforce.core.policies import policy_from_config
from reinforce.rollout.collect import sample_actions
from reinforce.rollout.envs import make_vec_env
from reinforce.rollout.masks import action_mask_batch, info_action_masks, step_action_masks
from reinforce.rollout.ray import RolloutWorker

MASK = torch.tensor([[True, False, True, False], [False, False, False, True], [True, True, True, True]])


def test_masked_actions_have_probability_zero_and_log_probs_are_over_the_valid_ones() -> None:
    logits = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    distribution = MaskedCategorical(logits, MASK)
    assert torch.all(distribution.probs[~MASK] == 0)
    for row in range(3):
        valid = MASK[row].nonzero().squeeze(-1)
        renormalised = Categorical(logits=logits[row, valid])
        log_probs = distribution.log_prob(valid[:, None].expand(-1, 3))[:, row]
        torch.testing.assert_close(log_probs, renormalised.logits)
        torch.testing.assert_close(distribution.entropy()[row], renormalised.entropy())
    assert torch.all(MASK.gather(1, distribution.mode[:, None]))


def test_the_entropy_and_its_gradient_are_never_nan() -> None:
    logits = torch.randn(3, 4, generator=torch.Generator().manual_seed(1), requires_grad=True)
    distribution = MaskedCategorical(logits * 50.0, MASK)
    (-1e6 * distribution.entropy().sum()).backward()
    assert torch.isfinite(distribution.entropy()).all()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    assert torch.all(logits.grad[~MASK] == 0)
    assert distribution.entropy()[1] == 0  # one valid action: no uncertainty


def test_a_draw_rounded_onto_the_last_action_takes_the_last_valid_one(monkeypatch: pytest.MonkeyPatch) -> None:
    # uniform == the cumulative total counts every action and is clamped to the last index, which is masked
    monkeypatch.setattr(torch, "rand", lambda shape, **kwargs: torch.ones(shape, **kwargs))
    distribution = MaskedCategorical(torch.zeros(3, 4), MASK)
    assert sample_actions(distribution).tolist() == [2, 3, 3]


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.lists(st.booleans(), min_size=5, max_size=5).filter(any), min_size=1, max_size=6),
    seed=st.integers(0, 2**16),
    scale=st.sampled_from([0.0, 1.0, 30.0]),
    deterministic=st.booleans(),
)
def test_no_masked_action_is_ever_drawn(rows: list[list[bool]], seed: int, scale: float, deterministic: bool) -> None:
    torch.manual_seed(seed)
    mask = torch.tensor(rows).repeat(200, 1)
    policy = make_policy(spaces.Box(-1, 1, (3,)), spaces.Discrete(5), hidden_sizes=())
    with torch.no_grad():
        policy.body[0].weight.mul_(scale)
        distribution = policy(torch.randn(mask.shape[0], 3), mask)
    actions = sample_actions(distribution, deterministic)
    assert torch.all(mask.gather(1, actions[:, None]))


def test_multidiscrete_masks_apply_per_component_and_padding_is_never_drawn() -> None:
    torch.manual_seed(0)
    policy = make_policy(spaces.Box(-1, 1, (3,)), spaces.MultiDiscrete([2, 4]), hidden_sizes=())
    mask = torch.tensor([[False, True, True, False, False, True]]).repeat(500, 1)
    distribution = policy(torch.randn(500, 3), mask)
    for deterministic in (False, True):
        actions = sample_actions(distribution, deterministic)
        assert torch.all(actions[:, 0] == 1) and set(actions[:, 1].tolist()) <= {0, 3}
    assert set(sample_actions(distribution)[:, 1].tolist()) == {0, 3}
    log_probs = distribution.log_prob(torch.tensor([[1, 0]]).expand(500, 2))
    component = Categorical(logits=distribution.base_dist.logits[:, 1, [0, 3]]).log_prob(torch.zeros(500))
    torch.testing.assert_close(log_probs, component)


def test_unmasked_policies_give_the_plain_distributions() -> None:
    observations = torch.randn(4, 3)
    discrete = make_policy(spaces.Box(-1, 1, (3,)), spaces.Discrete(3))
    assert type(discrete(observations)) is Categorical
    equal = make_policy(spaces.Box(-1, 1, (3,)), spaces.MultiDiscrete([3, 3]))
    assert type(equal(observations).base_dist) is Categorical
    box = make_policy(spaces.Box(-1, 1, (3,)), spaces.Box(-1, 1, (2,)))
    with pytest.raises(ReinforceError, match="pass action_mask=None"):
        box(observations, torch.ones(4, 2, dtype=torch.bool))


class _Envs:
    num_envs = 3
    spec = None


def test_vector_infos_give_masks_in_either_multidiscrete_form_and_missing_ones_allow_everything() -> None:
    space = spaces.MultiDiscrete([2, 3])
    tuples = np.full(3, None, dtype=object)
    tuples[0] = (np.array([1, 0], np.int8), np.array([0, 1, 1], np.int8))
    tuples[2] = (np.array([0, 1], np.int8), np.array([1, 0, 0], np.int8))
    present = np.array([True, False, True])
    masks = info_action_masks({"action_mask": tuples, "_action_mask": present}, space, _Envs())  # type: ignore[arg-type]
    flat = np.array([[1, 0, 0, 1, 1], [0, 0, 0, 0, 0], [0, 1, 1, 0, 0]], np.int8)
    expected = np.array([[1, 0, 0, 1, 1], [1, 1, 1, 1, 1], [0, 1, 1, 0, 0]], bool)
    np.testing.assert_array_equal(masks, expected)
    masks = info_action_masks({"action_mask": flat, "_action_mask": present}, space, _Envs())  # type: ignore[arg-type]
    np.testing.assert_array_equal(masks, expected)
    assert info_action_masks({"prob": np.ones(3)}, space, _Envs()) is None  # type: ignore[arg-type]
    assert info_action_masks({"action_mask": flat}, spaces.MultiBinary(5), _Envs()) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("space", "values", "expected"),
    [
        (spaces.Discrete(4), np.ones((3, 5), np.int8), "shape (5,)) for Discrete(4): give a 0/1 array of shape (4,)"),
        (spaces.Discrete(4), np.full((3, 4), 2, np.int8), "give a 0/1 array of shape (4,)"),
        (spaces.MultiDiscrete([2, 3]), np.ones((3, 4), np.int8), "sizes (2, 3), or their concatenation of shape (5,)"),
    ],
)
def test_a_mask_of_the_wrong_shape_names_the_expected_one(
    space: spaces.Space, values: np.ndarray, expected: str
) -> None:
    with pytest.raises(ReinforceError, match=re.escape(expected)):
        info_action_masks({"action_mask": values}, space, _Envs())  # type: ignore[arg-type]


def test_a_mask_without_valid_action_is_refused_where_the_env_acts_only() -> None:
    space = spaces.MultiDiscrete([2, 3])
    masks = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0]], bool)
    with pytest.raises(ReinforceError, match="sub-environment 1 allows no action"):
        step_action_masks(masks, np.array([True, True, False]), space, _Envs())  # type: ignore[arg-type]
    resetting = step_action_masks(masks, np.array([True, False, False]), space, _Envs())  # type: ignore[arg-type]
    assert resetting is not None and resetting[1:].all() and not masks[1:].all()


def test_predict_masks_in_gymnasium_forms() -> None:
    space = spaces.MultiDiscrete([2, 3])
    single = (np.array([0, 1], np.int8), np.array([1, 0, 1], np.int8))
    expected = np.array([[0, 1, 1, 0, 1]], bool)
    np.testing.assert_array_equal(action_mask_batch(single, space, 1, batched=False), expected)
    np.testing.assert_array_equal(action_mask_batch([0, 1, 1, 0, 1], space, 1, batched=False), expected)
    np.testing.assert_array_equal(action_mask_batch(np.repeat(expected, 2, 0), space, 2, batched=True)[1:], expected)
    np.testing.assert_array_equal(action_mask_batch([single, single], space, 2, batched=True)[1:], expected)
    with pytest.raises(ReinforceError, match=re.escape("for a batch of B observations, shape (B, 5)")):
        action_mask_batch(expected, space, 2, batched=True)
    with pytest.raises(ReinforceError, match="row 1 allows no action"):
        action_mask_batch([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]], space, 2, batched=True)
    with pytest.raises(ReinforceError, match="not to Box"):
        action_mask_batch([1, 1], spaces.Box(-1, 1, (2,)), 1, batched=False)


def test_collected_masks_are_the_ones_acted_under_and_joined_batches_keep_them() -> None:
    envs = make_vec_env("toy/Masked-multidiscrete-v0", 3)
    torch.manual_seed(0)
    policy = make_policy(envs.single_observation_space, envs.single_action_space, hidden_sizes=(8,))
    batch = collect(envs, policy, 5, seed=0)  # the env raises on a forbidden action
    envs.close()
    assert batch.action_masks is not None and batch.action_masks.shape == (*batch.mask.shape, 9)
    # the observation is the mask, so the stored mask of every valid step is its observation
    torch.testing.assert_close(batch.action_masks[batch.mask].float(), batch.observations[batch.mask])
    joined = concatenate_batches([batch, dataclasses.replace(batch, action_masks=None)])
    assert joined.action_masks is not None and joined.action_masks.shape == (batch.mask.shape[0], 6, 9)
    assert joined.action_masks[:, 3:].all()
    assert torch.equal(joined.action_masks[:, :3], batch.action_masks)
    assert concatenate_batches([dataclasses.replace(batch, action_masks=None)] * 2).action_masks is None


def test_ray_workers_return_the_masks() -> None:
    config = TrainConfig(hidden_sizes=(8,))
    worker = RolloutWorker("toy/Masked-discrete-v0", config.to_dict(), 2)
    state = policy_from_config(config, worker.envs.single_observation_space, worker.envs.single_action_space)
    _, batch = worker.collect(state.state_dict(), 3, (0, 0))
    worker.close()
    assert batch.action_masks is not None and batch.action_masks.shape == (*batch.mask.shape, 5)
