"""The Ray path's pure parts, without Ray: shares, seeds, joining worker batches, a worker's collection."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from reinforce import Reinforce
from reinforce.core.batch import RolloutBatch, concatenate_batches
from reinforce.core.loss import policy_loss
from reinforce.rollout.collect import collect
from reinforce.rollout.ray import RolloutWorker, episode_shares, worker_seeds


@pytest.mark.parametrize(("episodes", "workers", "shares"), [(8, 1, [8]), (8, 2, [4, 4]), (7, 3, [3, 2, 2])])
def test_episodes_are_shared_as_evenly_as_possible(episodes: int, workers: int, shares: list[int]) -> None:
    assert episode_shares(episodes, workers) == shares


def test_every_worker_needs_an_episode() -> None:
    with pytest.raises(ValueError, match="cannot be shared"):
        episode_shares(2, 3)


def test_worker_seeds_mirror_local_training_for_worker_0_and_differ_between_workers() -> None:
    seeds = worker_seeds(12345, 3)
    assert seeds[0] is not None and seeds[0][0] == 12345
    assert len({seed for pair in seeds if pair is not None for seed in pair}) == 6
    assert worker_seeds(12345, 3) == seeds
    assert worker_seeds(None, 2) == [None, None]


def _episodes_of(batch: RolloutBatch, columns: range) -> list[tuple[float, int, bool]]:
    """(return, length, truncated) of the episodes that end in ``columns``, read from the [T, N] layout."""
    episodes = []
    for n in columns:
        total, length = 0.0, 0
        for t in range(batch.mask.shape[0]):
            if batch.mask[t, n]:
                total += float(batch.rewards[t, n])
                length += 1
                if batch.dones[t, n]:
                    episodes.append((total, length, bool(batch.truncated[t, n])))
                    total, length = 0.0, 0
    return episodes


def _part(batch: RolloutBatch, columns: range) -> RolloutBatch:
    """The batch a worker running only ``columns``' environments would have returned (trimmed in time)."""
    cols = slice(columns.start, columns.stop)
    length = int(batch.mask[:, cols].any(1).nonzero().max()) + 1
    following = batch.observations[length, cols] if length < batch.mask.shape[0] else batch.last_observations[cols]
    episodes = _episodes_of(batch, columns)
    return RolloutBatch(
        observations=batch.observations[:length, cols],
        actions=batch.actions[:length, cols],
        rewards=batch.rewards[:length, cols],
        terminated=batch.terminated[:length, cols],
        truncated=batch.truncated[:length, cols],
        mask=batch.mask[:length, cols],
        last_observations=following,
        episode_returns=[e[0] for e in episodes],
        episode_lengths=[e[1] for e in episodes],
        episode_truncated=[e[2] for e in episodes],
    )


ESTIMATORS: list[dict[str, Any]] = [
    {},
    {"baseline": "value", "return_normalization": "none"},
    {"baseline": "leave_one_out", "return_normalization": "episode"},
    {"reward_to_go": False, "baseline": "batch_mean", "loss_reduction": "mean_over_episodes"},
    {"discount_gradient": True, "gamma": 0.8, "entropy_coef": 0.1},
]


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: ",".join(f"{k}={v}" for k, v in e.items()) or "default")
def test_joined_worker_batches_train_exactly_like_one_batch(estimator: dict[str, Any]) -> None:
    # time-limit cuts (toy/CountingTruncated-v0 stops at 3 steps) exercise the value bootstrap's final observations
    agent = Reinforce("toy/CountingTruncated-v0", seed=0, num_envs=5, **estimator)
    batch = collect(agent.envs, agent.policy, 13, seed=4)
    assert any(batch.episode_truncated) and not all(batch.episode_truncated)
    parts = [_part(batch, range(0, 2)), _part(batch, range(2, 5))]
    assert parts[0].mask.shape[0] != parts[1].mask.shape[0]  # the padding is exercised
    joined = concatenate_batches(parts)

    assert torch.equal(joined.mask, batch.mask)
    mask = batch.mask
    for name in ("observations", "actions", "rewards", "terminated", "truncated"):
        assert torch.equal(getattr(joined, name)[mask], getattr(batch, name)[mask]), name
    assert torch.equal(joined.dones, batch.dones)
    assert torch.equal(joined.next_observations(batch.dones), batch.next_observations(batch.dones))
    assert sorted(joined.episode_returns) == sorted(batch.episode_returns)
    assert joined.num_simulated_steps == sum(part.mask.numel() for part in parts) < batch.mask.numel()

    returns, weights = agent.batch_weights(batch)
    joined_returns, joined_weights = agent.batch_weights(joined)
    torch.testing.assert_close(joined_returns[mask], returns[mask], rtol=0, atol=1e-6)
    torch.testing.assert_close(joined_weights[mask], weights[mask], rtol=0, atol=1e-6)
    loss, entropy = policy_loss(agent.policy, batch, weights, agent.config)
    joined_loss, joined_entropy = policy_loss(agent.policy, joined, joined_weights, agent.config)
    torch.testing.assert_close(joined_loss, loss)
    torch.testing.assert_close(joined_entropy, entropy)
    agent.close()


def test_a_single_batch_is_returned_as_it_is() -> None:
    agent = Reinforce("toy/Counting-v0", seed=0, num_envs=2)
    batch = collect(agent.envs, agent.policy, 3, seed=1)
    assert concatenate_batches([batch]) is batch
    with pytest.raises(ValueError, match="at least one"):
        concatenate_batches([])
    agent.close()


def test_a_worker_collects_exactly_what_local_collection_would_with_its_seeds() -> None:
    agent = Reinforce("CartPole-v1", seed=0, num_envs=4)
    worker = RolloutWorker("CartPole-v1", agent.config.to_dict(), 4)
    _, remote = worker.collect(agent.policy.state_dict(), 6, (123, 7))
    torch.manual_seed(7)
    local = collect(agent.envs, agent.policy, 6, seed=123)
    for name in ("observations", "actions", "rewards", "mask", "last_observations"):
        assert torch.equal(getattr(remote, name), getattr(local, name)), name
    assert remote.episode_returns == local.episode_returns
    worker.close()
    agent.close()


def test_a_ray_address_without_ray_rollouts_is_refused() -> None:
    from reinforce import ReinforceError

    with pytest.raises(ReinforceError, match="a Ray address is for Ray rollouts only"):
        Reinforce("CartPole-v1", ray_address="auto")
