from __future__ import annotations

import pytest

from reinforce import Reinforce


@pytest.mark.slow
def test_defaults_solve_cartpole_within_the_step_budget() -> None:
    agent = Reinforce("CartPole-v1", seed=0)
    agent.learn(300_000)
    assert agent.solved, f"not solved after {agent.num_env_steps} steps"
    assert agent.num_env_steps <= 300_000
    assert agent.evaluate(episodes=100)["mean_return"] >= 475
    agent.close()


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
