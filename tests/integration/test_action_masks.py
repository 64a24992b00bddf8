"""Envs with ``info["action_mask"]`` train, evaluate and predict without a forbidden action ever reaching them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import pytest
import torch

from reinforce import Reinforce, ReinforceError
from reinforce.core.loss import policy_loss


@pytest.mark.parametrize(
    ("env_id", "hyperparameters"),
    [
        ("toy/Masked-discrete-v0", {}),
        ("toy/Masked-multidiscrete-v0", {"entropy_coef": 0.05, "vectorization_mode": "async"}),
        ("toy/Masked-discrete-v0", {"update": "per_step", "num_envs": 2}),
    ],
)
def test_an_env_that_raises_on_a_forbidden_action_trains_and_evaluates(env_id: str, hyperparameters: Any) -> None:
    settings = {"num_envs": 3, "hidden_sizes": (16,), "lr": 0.02, **hyperparameters}
    agent = Reinforce(env_id, seed=0, **settings)
    before = [p.detach().clone() for p in agent.policy.parameters()]
    for _ in range(3):
        metrics = agent.update()  # MaskedEnv raises on a forbidden action
        assert np.isfinite([metrics["losses/policy_loss"], metrics["losses/entropy"]]).all()
    assert any(not torch.equal(a, b) for a, b in zip(before, agent.policy.parameters(), strict=True))
    for deterministic in (True, False):
        assert agent.evaluate(episodes=4, deterministic=deterministic)["episodes"] == 4
    agent.close()


@pytest.mark.parametrize(
    ("env_id", "message"),
    [
        ("toy/Masked-shape-v0", "info['action_mask'] (shape (4,)) for Discrete(5): give a 0/1 array of shape (5,)"),
        ("toy/Masked-empty-v0", "info['action_mask'] of sub-environment 0 allows no action"),
    ],
)
def test_a_bad_mask_from_the_env_ends_training_in_one_line(env_id: str, message: str) -> None:
    agent = Reinforce(env_id, seed=0, num_envs=2, hidden_sizes=(8,))
    with pytest.raises(ReinforceError, match=re.escape(message)) as error:
        agent.update()
    assert "\n" not in str(error.value) and env_id in str(error.value)
    assert agent.num_updates == 0
    agent.close()


def test_a_video_of_an_env_with_masks_takes_no_forbidden_action(tmp_path: Path) -> None:
    agent = Reinforce("toy/Masked-multidiscrete-v0", seed=0, num_envs=1, hidden_sizes=(8,))
    for deterministic in (True, False):  # MaskedEnv raises on a forbidden action
        summary = agent.record_video(tmp_path / "masked.gif", episodes=3, deterministic=deterministic)
        assert summary["episodes"] == 3 and summary["frames"] == 15
    agent.close()


def test_the_loss_entropy_is_over_the_valid_actions_only() -> None:
    agent = Reinforce("toy/Masked-discrete-v0", seed=0, num_envs=2, hidden_sizes=())
    with torch.no_grad():
        agent.policy.body[0].weight.zero_()
        agent.policy.body[0].bias.zero_()  # uniform over the valid actions: entropy log(number valid)
    batch = agent.collect_batch()
    assert batch.action_masks is not None
    _, entropy = policy_loss(agent.policy, batch, torch.zeros(batch.mask.shape), agent.config)
    valid_counts = batch.action_masks[batch.mask].sum(-1).double()
    torch.testing.assert_close(entropy.double(), valid_counts.log().mean(), rtol=1e-5, atol=1e-6)
    assert float(entropy) < np.log(5) - 0.1
    agent.close()


def test_taxi_collects_and_evaluates_with_its_masks() -> None:
    agent = Reinforce("Taxi-v4", seed=0, num_envs=2, episodes_per_update=2, hidden_sizes=(16,))
    batch = agent.collect_batch()
    assert batch.action_masks is not None and batch.action_masks.shape == (*batch.mask.shape, 6)
    masks, actions = batch.action_masks[batch.mask], batch.actions[batch.mask]
    assert torch.all(masks.gather(1, actions[:, None].long()))
    assert not masks.all()  # Taxi forbids moves into walls: the masks are really used
    env = gymnasium.make("Taxi-v4")
    observations = []
    for seed in range(20):
        observation, info = env.reset(seed=seed)
        observations.append(observation)
        action, _ = agent.predict(observation, deterministic=True, action_mask=info["action_mask"])
        assert info["action_mask"][action]
    env.close()
    assert agent.evaluate(episodes=2)["episodes"] == 2
    agent.close()


def test_predict_with_an_action_mask_never_returns_a_masked_action() -> None:
    agent = Reinforce("toy/Masked-multidiscrete-v0", seed=0, num_envs=1, hidden_sizes=(8,))
    rng = np.random.default_rng(0)
    masks = rng.random((300, 9)) < 0.4
    masks[:, [0, 4, 6]] |= ~(masks[:, 0:4].any(1) & masks[:, 4:6].any(1) & masks[:, 6:9].any(1))[:, None]
    observations = masks.astype(np.float32)
    for deterministic in (False, True):
        actions, _ = agent.predict(observations, deterministic=deterministic, action_mask=masks)
        offsets = np.array([0, 4, 6])
        assert np.all(masks[np.arange(300)[:, None], actions + offsets])
    single = (np.array([0, 0, 1, 0], np.int8), np.array([1, 0], np.int8), np.array([0, 0, 1], np.int8))
    assert agent.predict(observations[0], action_mask=single)[0].tolist() == [2, 0, 2]
    agent.close()


@pytest.mark.parametrize(
    ("env_id", "action_mask", "message"),
    [
        ("toy/Masked-discrete-v0", np.ones(4), "give a 0/1 array of shape (5,) per observation"),
        ("toy/Masked-discrete-v0", np.zeros(5), "allows no action"),
        ("toy/Continuous-v0", np.ones(2), "action masks apply to Discrete and MultiDiscrete action spaces"),
    ],
)
def test_predict_refuses_a_bad_action_mask_in_one_line(env_id: str, action_mask: Any, message: str) -> None:
    agent = Reinforce(env_id, seed=0, num_envs=1, hidden_sizes=(8,))
    observation = agent.envs.single_observation_space.sample()
    with pytest.raises(ReinforceError, match=re.escape(message)) as error:
        agent.predict(observation, action_mask=action_mask)
    assert "\n" not in str(error.value)
    agent.close()
