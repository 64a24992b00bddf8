from __future__ import annotations

import dataclasses
import json

import pytest

from reinforce import ReinforceError, TrainConfig
from reinforce.config import _tuned_table, episodes_per_update, field_docs, tuned_hyperparameters


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("gamma", 1.5, "gamma"),
        ("gamma", -0.1, "gamma"),
        ("gamma", float("nan"), "gamma"),
        ("lr", 0.0, "lr"),
        ("lr", -1e-3, "lr"),
        ("num_envs", 0, "num_envs"),
        ("num_envs", 2.5, "num_envs"),
        ("episodes_per_update", 0, "episodes_per_update"),
        ("optimizer", "adamw", "optimizer"),
        ("return_normalization", "episode-ish", "return_normalization"),
        ("hidden_sizes", (64, 0), "hidden_sizes"),
        ("max_grad_norm", 0.0, "max_grad_norm"),
        ("stop_on_solve", "yes", "stop_on_solve"),
        ("action_squash", "sigmoid", "action_squash"),
        ("log_std", "learned", "log_std"),
        ("log_std_init", 2.5, "log_std_init"),
        ("log_std_init", float("nan"), "log_std_init"),
        ("normalize_observations", 1, "normalize_observations"),
    ],
)
def test_invalid_values_name_the_field_and_the_flag(field: str, value: object, named: str) -> None:
    with pytest.raises(ReinforceError, match=named) as info:
        TrainConfig(**{field: value})
    assert "--" + field.replace("_", "-") in str(info.value)
    assert "must" in str(info.value)
    assert "\n" not in str(info.value)


def test_round_trip_through_json() -> None:
    config = TrainConfig(num_envs=4, hidden_sizes=(32, 32), lr=3e-3)
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_unknown_keys_are_rejected() -> None:
    with pytest.raises(ReinforceError, match="learning_rate"):
        TrainConfig.from_dict({"learning_rate": 0.1})


def test_every_field_has_a_docstring() -> None:
    docs = field_docs()
    assert {field.name for field in dataclasses.fields(TrainConfig)} == set(docs)
    assert all(docs.values())


def test_episodes_per_update_defaults_to_num_envs() -> None:
    assert episodes_per_update(TrainConfig(num_envs=7)) == 7
    assert episodes_per_update(TrainConfig(num_envs=7, episodes_per_update=3)) == 3


def test_every_shipped_entry_is_a_valid_config_for_a_registered_env() -> None:
    import gymnasium

    table = _tuned_table()
    assert {"Acrobot-v1", "InvertedPendulum-v5", "Pendulum-v1", "LunarLander-v3"} <= set(table)
    for env_id in table:
        assert env_id in gymnasium.registry, env_id
        config = TrainConfig.from_dict(tuned_hyperparameters(env_id))
        assert config.to_dict() != TrainConfig().to_dict(), f"{env_id}'s entry changes nothing"
