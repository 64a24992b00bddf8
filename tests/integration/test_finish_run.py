"""`reinforce.training.finish_run`: what `reinforce train` and every sweep trial do once training has ended."""

from __future__ import annotations

import json
from pathlib import Path

from reinforce import Reinforce
from reinforce.run.plot_process import PlotProcess
from reinforce.training import finish_run


def test_a_finished_run_has_its_curve_and_the_evaluation_it_returns(tmp_path: Path) -> None:
    agent = Reinforce("CartPole-v1", seed=0, num_envs=2, hidden_sizes=(8,))
    try:
        agent.learn(300, run_dir=tmp_path)
        evaluation = finish_run(agent, tmp_path, eval_episodes=3)
        assert evaluation is not None and evaluation["episodes"] == 3 and evaluation["deterministic"]
        assert json.loads((tmp_path / "evaluation.json").read_text()) == evaluation
        curve = (tmp_path / "curve.png").read_bytes()
        assert curve[:4] == b"\x89PNG"
        (tmp_path / "evaluation.json").unlink()
        (tmp_path / "curve.png").unlink()
        with PlotProcess() as plotter:  # as `reinforce train` does it: the same files
            assert finish_run(agent, tmp_path, eval_episodes=3, plotter=plotter) == evaluation
        assert (tmp_path / "curve.png").read_bytes() == curve
        assert json.loads((tmp_path / "evaluation.json").read_text()) == evaluation
        (tmp_path / "evaluation.json").unlink()
        assert finish_run(agent, tmp_path, eval_episodes=0) is None  # no evaluation: no evaluation.json
        assert not (tmp_path / "evaluation.json").exists()
    finally:
        agent.close()
