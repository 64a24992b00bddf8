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
