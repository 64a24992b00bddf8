"""Every supported space trains a few updates, predicts and evaluates; the guards against NaN and inf."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import pytest
import torch
from toy_envs import ACTION_SPACES, OBSERVATION_SPACES

import reinforce
from reinforce import NonFiniteError, Reinforce
from reinforce.core.baselines import ValueBaseline

BOX_ACTION_MODES = [
    {"action_squash": "clip"},
    {"action_squash": "tanh"},
    {"action_squash": "tanh", "log_std": "state_dependent"},
    {"action_squash": "clip", "log_std": "state_dependent", "log_std_init": -1.0},
]


def _train_a_few_updates(env_id: str, **hyperparameters: Any) -> None:
    agent = Reinforce(env_id, seed=0, num_envs=3, hidden_sizes=(16,), **hyperparameters)
    before = [p.detach().clone() for p in agent.policy.parameters()]
    for _ in range(3):
        metrics = agent.update()
        assert np.isfinite([metrics["losses/policy_loss"], metrics["losses/grad_norm"]]).all()
    assert any(not torch.equal(a, b) for a, b in zip(before, agent.policy.parameters(), strict=True))
    single_env = gymnasium.make(env_id)
    observation, _ = single_env.reset(seed=1)
    for deterministic in (True, False):
        action = agent.predict(observation, deterministic=deterministic)[0]
        assert single_env.action_space.contains(action), action
    batch = gymnasium.vector.utils.concatenate(
        agent.envs.unwrapped.single_observation_space,
        [single_env.observation_space.sample() for _ in range(5)],
        gymnasium.vector.utils.create_empty_array(agent.envs.unwrapped.single_observation_space, 5),
    )
    actions = agent.predict(batch)[0]
    assert len(actions) == 5 and all(single_env.action_space.contains(action) for action in actions)
    assert agent.evaluate(episodes=3)["episodes"] == 3  # SpacesEnv asserts every action is in its space
    single_env.close()
    agent.close()


@pytest.mark.parametrize("observation", sorted(OBSERVATION_SPACES))
def test_every_observation_space_trains(observation: str) -> None:
    _train_a_few_updates(f"toy/Spaces-{observation}-discrete-v0")


@pytest.mark.parametrize("action", sorted(ACTION_SPACES))
def test_every_action_space_trains(action: str) -> None:
    _train_a_few_updates(f"toy/Spaces-dict-{action}-v0")


@pytest.mark.parametrize("mode", BOX_ACTION_MODES, ids=lambda mode: "-".join(map(str, mode.values())))
def test_every_box_action_mode_trains(mode: dict[str, Any]) -> None:
    _train_a_few_updates("toy/Spaces-box-box-v0", normalize_observations=True, **mode)


def test_normalization_statistics_survive_save_and_load(tmp_path: Path) -> None:
    agent = Reinforce("toy/Continuous-v0", seed=0, num_envs=4, normalize_observations=True, hidden_sizes=(8,))
    agent.learn(60, run_dir=tmp_path / "run")
    encoder = agent.policy.encoder
    assert encoder.obs_count.item() == agent.num_env_steps  # every valid observation, once
    assert encoder.obs_var.min() > 0 and encoder.obs_mean.abs().max() > 0
    loaded = reinforce.load(tmp_path / "run")
    for name in ("obs_count", "obs_mean", "obs_var"):
        torch.testing.assert_close(getattr(loaded.policy.encoder, name), getattr(encoder, name), rtol=0, atol=0)
    observations = np.random.default_rng(0).uniform(-1, 1, size=(16, 3)).astype(np.float32)
    np.testing.assert_array_equal(
        loaded.predict(observations, deterministic=True)[0], agent.predict(observations, deterministic=True)[0]
    )
    # predict applies the statistics: with them reset, the same observations give other actions
    with torch.no_grad():
        loaded.policy.encoder.obs_mean.zero_()
        loaded.policy.encoder.obs_var.fill_(1.0)
    assert not np.array_equal(
        loaded.predict(observations, deterministic=True)[0], agent.predict(observations, deterministic=True)[0]
    )
    agent.close()
    loaded.close()


def test_the_value_baseline_sees_the_same_normalised_observations() -> None:
    agent = Reinforce("toy/Continuous-v0", seed=0, num_envs=4, normalize_observations=True, baseline="value")
    agent.learn(60)
    assert isinstance(agent.baseline, ValueBaseline)
    assert agent.baseline.network.encoder is agent.policy.encoder  # one set of statistics, read by both
    assert agent.policy.encoder.obs_count.item() == agent.num_env_steps
    agent.close()


def test_nan_rewards_stop_training_naming_the_env() -> None:
    agent = Reinforce("toy/NanReward-v0", seed=0, num_envs=2)
    with pytest.raises(NonFiniteError, match=r"toy/NanReward-v0 returned non-finite rewards"):
        agent.learn(1_000)
    assert agent.num_updates == 0
    agent.close()


def _state(agent: Reinforce) -> dict[str, torch.Tensor]:
    return {key: value.clone() for key, value in agent.policy.state_dict().items()}


def test_an_absurd_learning_rate_stops_before_the_optimizer_step_and_keeps_the_checkpoint(tmp_path: Path) -> None:
    agent = Reinforce("CartPole-v1", seed=0, num_envs=4, lr=1e30)
    agent.learn(1, run_dir=tmp_path / "run")  # one update: finite, saved
    checkpoint = {
        path.name: path.read_bytes()
        for path in (tmp_path / "run").iterdir()
        if path.name == "checkpoint.json" or path.name.startswith("state-")
    }
    assert len(checkpoint) == 2
    last_good = _state(agent)
    with pytest.raises(NonFiniteError, match=r"non-finite loss .*skipped.*lower lr"):
        agent.learn(1, run_dir=tmp_path / "run")
    assert agent.num_updates == 1
    for key, value in _state(agent).items():
        torch.testing.assert_close(value, last_good[key], rtol=0, atol=0)
    for name, content in checkpoint.items():
        assert (tmp_path / "run" / name).read_bytes() == content
    assert {path.name for path in (tmp_path / "run").iterdir() if path.name.startswith("state-")} <= set(checkpoint)
    agent.close()


def test_a_diverged_gaussian_policy_is_caught_before_its_actions_reach_the_env() -> None:
    agent = Reinforce("toy/Continuous-v0", seed=0, num_envs=4, lr=1e30)
    agent.update()
    with pytest.raises(NonFiniteError, match=r"non-finite actions for environment toy/Continuous-v0.*lower lr"):
        agent.update()
    agent.close()
