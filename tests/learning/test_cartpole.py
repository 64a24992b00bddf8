from __future__ import annotations

from pathlib import Path

import pytest

import reinforce
from reinforce import Reinforce
from reinforce.run.plotting import read_columns
from reinforce.verification import verified_at_checkpoint


@pytest.mark.slow
def test_defaults_stop_on_a_verified_policy_before_the_training_mean_would(tmp_path: Path) -> None:
    agent = Reinforce("CartPole-v1", seed=0)
    agent.learn(300_000, run_dir=tmp_path)
    agent.close()
    verified = verified_at_checkpoint(agent, tmp_path)
    assert verified is not None, f"not verified after {agent.num_env_steps} steps"
    assert verified["mean_return"] >= 475 and agent.num_env_steps <= 300_000
    saved = reinforce.load(tmp_path)  # what was saved is what was verified
    assert saved.evaluate(episodes=100)["mean_return"] >= 475
    saved.close()
    # the checks leave training as it is, so the training-mean criterion had not fired by then on this seed
    means = read_columns(tmp_path / "metrics.csv", ("charts/episode_return_mean_100",))
    assert means["charts/episode_return_mean_100"].max() < 475


@pytest.mark.slow
def test_sample_efficient_preset_solves_cartpole_in_few_env_steps() -> None:
    """The benchmark's criterion: a 100-episode deterministic evaluation >= 475, checked every 1000 steps."""
    agent = Reinforce("CartPole-v1", seed=0, preset="sample-efficient", stop_on_solve=False)
    next_check = 1_000
    while agent.num_env_steps < 25_000:
        agent.update()
        if agent.num_env_steps >= next_check:
            next_check = (agent.num_env_steps // 1_000 + 1) * 1_000
            if agent.evaluate(episodes=100, seed=1_000_000)["mean_return"] >= 475:
                break
    else:
        pytest.fail("the sample-efficient preset did not solve CartPole-v1 within 25k env steps")
    agent.close()
