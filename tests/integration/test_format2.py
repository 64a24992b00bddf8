"""Run directories written by reinforce before the layered redesign (checkpoint format 2) load and act the same.

tests/fixtures/format2 was written by the code of commit 94b9b3e (make_fixture.py.txt there is the script):
four short runs (a value baseline, a running-mean baseline on Pendulum-v1 with observation normalisation, a
linear policy with SGD, RMSprop), with the deterministic actions of 16 observations, a 3-episode evaluation and
the policy after resuming and training 600 more env steps (resume_fixture.py.txt), as that code computed them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import reinforce

FIXTURES = Path(__file__).parent.parent / "fixtures" / "format2"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_format_2_run_loads_and_acts_as_it_did(name: str) -> None:
    expected = EXPECTED[name]
    agent = reinforce.load(FIXTURES / name)
    try:
        assert (agent.num_updates, agent.num_env_steps) == (expected["num_updates"], expected["num_env_steps"])
        # written before solve_criterion existed: stop_on_solve keeps meaning the training mean
        assert (agent.config.stop_on_solve, agent.config.solve_criterion) == (True, "training_mean")
        actions = agent.predict(np.asarray(expected["observations"], dtype=np.float32), deterministic=True)[0]
        np.testing.assert_allclose(actions, np.asarray(expected["actions"]), rtol=1e-5, atol=1e-5)
        evaluation = agent.evaluate(episodes=3)
        assert evaluation["mean_return"] == pytest.approx(expected["evaluate_mean_return"], rel=1e-4)
    finally:
        agent.close()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_format_2_run_resumes_as_it_did(name: str, tmp_path: Path) -> None:
    expected = EXPECTED[name]
    shutil.copytree(FIXTURES / name, tmp_path / "run")
    agent = reinforce.resume(tmp_path / "run")
    try:
        agent.learn(600, run_dir=tmp_path / "run")
        assert agent.num_updates == expected["resumed_600_num_updates"]
        state = torch.cat([tensor.reshape(-1).double() for _, tensor in sorted(agent.policy.state_dict().items())])
        # the optimizer state, the RNG state and the counters all carried over: the same parameters, up to the
        # float rounding of another CPU
        expected_state = torch.tensor(expected["resumed_600_policy_state"], dtype=torch.float64)
        torch.testing.assert_close(state, expected_state, rtol=1e-4, atol=1e-4)
    finally:
        agent.close()
