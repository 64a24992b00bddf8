"""A collection steps only the sub-envs of a SyncVectorEnv that it still needs, and nothing it uses changes."""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
import pytest
import torch

import tests.toy_envs  # noqa: F401  (registers the toy environments)
from reinforce import Reinforce, collect
from reinforce.errors import ReinforceError
from reinforce.rollout.envs import make_vec_env
from reinforce.rollout.sync_steps import SyncSteps

# rows of metrics.csv that depend on the clock or on the steps simulated, not on what was learned
_NOT_COMPARED = {"simulated_steps", "perf/step_efficiency", "perf/steps_per_s", "wall_time_s"}


def _train(env_id: str, updates: int, **settings: Any) -> tuple[list[dict[str, Any]], list[torch.Tensor]]:
    agent = Reinforce(env_id, seed=3, vectorization_mode="sync", **settings)
    rows = [agent.update() for _ in range(updates)]
    parameters = [parameter.detach().clone() for parameter in agent.policy.parameters()]
    agent.close()
    return rows, parameters


@pytest.mark.parametrize(
    ("env_id", "settings"),
    [
        ("CartPole-v1", {"num_envs": 4, "episodes_per_update": 6}),
        ("InvertedPendulum-v5", {"num_envs": 3, "baseline": "value", "normalize_observations": True}),
        ("toy/Counting-v0", {"num_envs": 4, "episodes_per_update": 9, "hidden_sizes": ()}),
    ],
)
def test_training_is_the_same_with_the_idle_sub_envs_not_stepped(
    monkeypatch: pytest.MonkeyPatch, env_id: str, settings: dict[str, Any]
) -> None:
    direct_rows, direct_parameters = _train(env_id, 3, **settings)
    with monkeypatch.context() as patch:
        patch.setattr(SyncSteps, "of", classmethod(lambda cls, envs: None))
        full_rows, full_parameters = _train(env_id, 3, **settings)
    for direct, full in zip(direct_rows, full_rows, strict=True):
        assert {key: value for key, value in direct.items() if key not in _NOT_COMPARED} == {
            key: value for key, value in full.items() if key not in _NOT_COMPARED
        }
    assert all(torch.equal(a, b) for a, b in zip(direct_parameters, full_parameters, strict=True))
    # the idle sub-envs' steps are not simulated, so fewer steps are
    assert direct_rows[-1]["simulated_steps"] < full_rows[-1]["simulated_steps"]
    assert direct_rows[-1]["env_steps"] == full_rows[-1]["env_steps"]


def test_a_collection_steps_each_sub_env_until_its_last_episode_and_counts_those_steps() -> None:
    envs = make_vec_env("toy/Counting-v0", 3, vectorization_mode="sync")
    agent = Reinforce(envs, seed=0, hidden_sizes=())
    batch = collect(envs, agent.policy, num_episodes=4, seed=5)
    # a sub-env is stepped while it has an admitted episode, plus one reset step for each episode it starts
    # after its first; its idle steps are not taken
    lengths = batch.episode_lengths
    assert batch.num_simulated_steps == sum(lengths) + (len(lengths) - 3)
    assert batch.num_simulated_steps < batch.mask.numel()
    # the vector env resets, at its next step, the sub-envs whose last episode ended (all of them here)
    _, rewards, terminated, truncated, _ = envs.step(np.zeros(3, dtype=np.int64))
    assert rewards.tolist() == [0.0, 0.0, 0.0] and not terminated.any() and not truncated.any()
    envs.close()


def test_sub_envs_that_start_no_episode_are_not_stepped_and_not_reset_again() -> None:
    envs = make_vec_env("toy/Counting-v0", 4, vectorization_mode="sync")
    agent = Reinforce(envs, seed=0, hidden_sizes=())
    batch = collect(envs, agent.policy, num_episodes=2, seed=5)
    assert batch.num_simulated_steps == sum(batch.episode_lengths)
    assert envs._autoreset_envs.tolist() == [True, True, False, False]
    envs.close()


def test_only_a_plain_sync_vector_env_of_array_spaces_is_stepped_directly() -> None:
    sync = make_vec_env("CartPole-v1", 2, vectorization_mode="sync")
    assert SyncSteps.of(sync) is not None
    assert SyncSteps.of(make_vec_env("CartPole-v1", 2, vectorization_mode="vector_entry_point")) is None
    assert SyncSteps.of(gymnasium.wrappers.vector.RecordEpisodeStatistics(sync)) is None
    same_step = gymnasium.vector.SyncVectorEnv(
        [lambda: gymnasium.make("CartPole-v1")] * 2, autoreset_mode=gymnasium.vector.AutoresetMode.SAME_STEP
    )
    assert SyncSteps.of(same_step) is None
    sync.close()
    same_step.close()


class _InfoNoneEnv(gymnasium.Env[np.ndarray, np.int64]):
    """Box observations; its second step returns None as its info."""

    observation_space = gymnasium.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gymnasium.spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, dtype=np.float32), {}

    def step(self, action: np.int64) -> tuple[Any, float, bool, bool, Any]:
        self.t += 1
        return np.zeros(2, dtype=np.float32), 1.0, self.t >= 3, False, None if self.t == 2 else {}


def test_an_info_that_is_not_a_dict_is_one_error_naming_the_env_and_the_call() -> None:
    envs = gymnasium.vector.SyncVectorEnv([_InfoNoneEnv] * 2)
    assert SyncSteps.of(envs) is not None
    agent = Reinforce(envs, seed=0)
    with pytest.raises(ReinforceError, match=r"failed in step\(\) \(TypeError: its info is NoneType, not a dict\)"):
        agent.update()
    agent.close()


def test_a_vector_env_that_hands_back_its_own_buffer_is_refused_but_a_plain_sync_one_is_stepped_alike() -> None:
    def make(copy: bool) -> gymnasium.vector.VectorEnv:
        return gymnasium.vector.SyncVectorEnv([lambda: gymnasium.make("toy/Counting-v0")] * 3, copy=copy)

    batches = []
    for copy in (True, False):  # the sub-envs are stepped directly: the vector env's buffer is not used
        envs = make(copy)
        batches.append(collect(envs, Reinforce(envs, seed=0, hidden_sizes=()).policy, num_episodes=6, seed=1))
        envs.close()
    mask = batches[0].mask
    assert torch.equal(batches[0].observations[mask], batches[1].observations[mask])
    wrapped = gymnasium.wrappers.vector.RecordEpisodeStatistics(make(copy=False))  # stepped whole, its buffer back
    agent = Reinforce(wrapped, seed=0, hidden_sizes=())
    with pytest.raises(ReinforceError, match=r"copy=False.*make it with copy=True"):
        agent.update()
    agent.close()
