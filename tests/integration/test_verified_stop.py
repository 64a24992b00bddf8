"""The verified stop (``solve_criterion="verified"``): the decision, its verifier, and what old configs keep."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import reinforce
from reinforce import Reinforce, TrainConfig
from reinforce.config import saved_hyperparameters, stops_on
from reinforce.settings import parse_config_document
from reinforce.verification import CONFIRM_EPISODES, Verifier, make_verifier, verified_at_checkpoint


class Scripted(Verifier):
    """A Verifier whose evaluations return the given mean returns, in turn (no env is run).

    Without the update's ``charts/episode_return_max`` in the metrics, a Verifier checks as an EvalCallback.
    """

    def __init__(self, means: list[float], every_steps: int = 1, **kwargs: Any) -> None:
        super().__init__(every_steps=every_steps, stop_at=475.0, **kwargs)
        self.means = list(means)

    def _evaluate(self, agent: Any, episodes: int) -> tuple[dict[str, Any], dict[str, Any]]:
        mean = self.means.pop(0)
        summary = {"episodes": episodes, "mean_return": mean, "deterministic": True, "returns": [mean] * episodes}
        row = {"update": agent.num_updates, "env_steps": agent.num_env_steps, "episodes": episodes, "mean_return": mean}
        return row, summary


def decide(callback: Scripted, updates: int, metrics: dict[str, Any] | None = None) -> list[bool]:
    """Call ``callback`` after ``updates`` updates of 10 env steps each (each one crosses a multiple of 1)."""
    agents = [SimpleNamespace(num_updates=n, num_env_steps=10 * n) for n in range(1, updates + 1)]
    return [callback(agent, metrics or {}) for agent in agents]  # type: ignore[arg-type]


def test_a_check_is_also_due_after_an_update_with_a_training_episode_at_the_threshold() -> None:
    callback = Scripted([500.0, 500.0], episodes=10, confirm_episodes=100, every_steps=1_000)  # no multiple crossed
    assert decide(callback, 3, {"charts/episode_return_max": 474.0}) == [True, True, True]
    assert callback.evaluations == [] and callback.means == [500.0, 500.0]
    assert decide(callback, 1, {"charts/episode_return_max": 475.0}) == [False]
    assert callback.verified is not None


def test_a_check_below_the_threshold_goes_on_without_a_confirmation() -> None:
    callback = Scripted([300.0, 474.9], episodes=10, confirm_episodes=100)
    assert decide(callback, 2) == [True, True]
    assert [row["episodes"] for row in callback.evaluations] == [10, 10]
    assert not callback.stopped and callback.verified is None


def test_a_check_at_the_threshold_that_the_confirmation_refutes_goes_on() -> None:
    callback = Scripted([480.0, 470.0, 500.0, 490.0], episodes=10, confirm_episodes=100)
    assert decide(callback, 2) == [True, False]
    # one row per update: the confirmation stands for its check
    assert [(row["update"], row["episodes"], row["mean_return"]) for row in callback.evaluations] == [
        (1, 100, 470.0),
        (2, 100, 490.0),
    ]
    assert callback.stopped
    assert callback.verified is not None
    assert (callback.verified["update"], callback.verified["episodes"], callback.verified["mean_return"]) == (
        2,
        100,
        490.0,
    )
    assert callback.best is not None and callback.best["mean_return"] == 490.0


def test_a_check_with_as_many_episodes_as_the_confirmation_decides_alone() -> None:
    callback = Scripted([475.0], episodes=100, confirm_episodes=100)
    assert decide(callback, 1) == [False]
    assert len(callback.evaluations) == 1 and callback.verified is not None


def test_without_confirm_episodes_the_evaluation_itself_stops_as_before() -> None:
    callback = Scripted([476.0], episodes=10)
    assert decide(callback, 1) == [False]
    assert callback.verified is not None and callback.verified["episodes"] == 10


def test_stops_on_follows_stop_on_solve_and_the_criterion() -> None:
    assert stops_on(TrainConfig()) == "verified"
    assert stops_on(TrainConfig(solve_criterion="training_mean")) == "training_mean"
    assert stops_on(TrainConfig(stop_on_solve=False)) == "never"
    with pytest.raises(reinforce.ReinforceError, match="verify_every"):
        TrainConfig(verify_every=0)
    with pytest.raises(reinforce.ReinforceError, match="solve_criterion"):
        TrainConfig(solve_criterion="greedy")  # type: ignore[arg-type]


def test_a_saved_config_from_before_the_criterion_keeps_stopping_on_the_training_mean() -> None:
    old = {"lr": 0.03, "stop_on_solve": True}
    assert saved_hyperparameters(old) == {**old, "solve_criterion": "training_mean"}
    assert saved_hyperparameters({**old, "solve_criterion": "verified"})["solve_criterion"] == "verified"
    saved = parse_config_document({"format_version": 2, "hyperparameters": old}, "config.json")
    assert saved.hyperparameters["solve_criterion"] == "training_mean"
    written = parse_config_document({"hyperparameters": old}, "settings.yaml")  # a user's file: today's default
    assert "solve_criterion" not in written.hyperparameters


def test_the_verifier_is_made_for_the_verified_stop_on_an_env_with_a_threshold() -> None:
    agent = Reinforce("CartPole-v1", seed=0, num_envs=2, verify_every=3_000, verify_episodes=5)
    verifier = make_verifier(agent)
    assert verifier is not None
    assert (verifier.every_steps, verifier.episodes, verifier.stop_at) == (3_000, 5, 475.0)
    assert verifier.confirm_episodes == CONFIRM_EPISODES and verifier.deterministic
    for settings in ({"solve_criterion": "training_mean"}, {"stop_on_solve": False}):
        assert make_verifier(Reinforce("CartPole-v1", num_envs=2, **settings)) is None  # type: ignore[arg-type]
    assert make_verifier(Reinforce("Pendulum-v1", num_envs=2)) is None  # no reward threshold
    agent.close()


def test_a_verified_run_stops_with_the_confirmed_policy_and_resumes_as_finished(tmp_path: Path) -> None:
    """A low threshold: training episodes reach it at once, the deterministic policy a few updates later."""
    settings = {"num_envs": 4, "hidden_sizes": (16,), "reward_threshold": 15.0}
    agent = Reinforce("CartPole-v1", seed=0, **settings)  # type: ignore[arg-type]
    agent.learn(50_000, run_dir=tmp_path)
    assert agent.num_env_steps < 50_000
    verified = verified_at_checkpoint(agent, tmp_path)
    assert verified is not None and verified["episodes"] == CONFIRM_EPISODES and verified["mean_return"] >= 15.0
    saved = reinforce.load(tmp_path)
    assert saved.num_updates == agent.num_updates  # the final checkpoint is the verified policy
    assert saved.evaluate(CONFIRM_EPISODES)["mean_return"] == verified["mean_return"]
    saved.close()
    resumed = reinforce.resume(tmp_path)
    resumed.learn(50_000, run_dir=tmp_path)
    assert resumed.num_updates == agent.num_updates  # verified: nothing more to do
    resumed.close()
    agent.close()


def test_a_resumed_run_checks_and_stops_where_an_uninterrupted_one_does(tmp_path: Path) -> None:
    settings: dict[str, Any] = {"num_envs": 4, "hidden_sizes": (16,), "lr": 0.01, "reward_threshold": 60.0}
    settings["verify_every"] = 300
    whole = Reinforce("CartPole-v1", seed=3, **settings).learn(30_000, run_dir=tmp_path / "whole")
    whole.close()
    part = Reinforce("CartPole-v1", seed=3, **settings)
    part.learn(30_000, run_dir=tmp_path / "part", callback=lambda agent, metrics: agent.num_updates < 3)
    part.close()
    resumed = reinforce.resume(tmp_path / "part")
    resumed.learn(30_000 - resumed.num_env_steps, run_dir=tmp_path / "part")
    resumed.close()
    assert whole.num_env_steps < 30_000 and verified_at_checkpoint(whole, tmp_path / "whole") is not None
    rows = [
        [line.rsplit(",", 1)[0] for line in (tmp_path / name / "evaluations.csv").read_text().splitlines()]
        for name in ("whole", "part")
    ]  # all but wall_time_s
    assert len(rows[0]) > 3 and rows[0] == rows[1]  # failed checks before the confirmed one, the same ones
    assert (resumed.num_updates, resumed.num_env_steps) == (whole.num_updates, whole.num_env_steps)


def test_a_verifier_given_to_learn_is_the_only_one_that_evaluates(monkeypatch: pytest.MonkeyPatch) -> None:
    from reinforce import callbacks

    calls: list[int] = []

    def counting(*args: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append(kwargs["episodes"])
        return evaluate(*args, **kwargs)

    evaluate = callbacks.evaluate_policy
    monkeypatch.setattr(callbacks, "evaluate_policy", counting)
    agent = Reinforce("CartPole-v1", seed=0, num_envs=4, hidden_sizes=(16,), reward_threshold=15.0)
    verifier = make_verifier(agent)
    assert verifier is not None
    agent.learn(50_000, callback=verifier)
    agent.close()
    assert verifier.verified is not None
    # the checks recorded, and the passing check its confirmation stands for: nothing else evaluated
    assert calls == [row["episodes"] for row in verifier.evaluations[:-1]] + [20, CONFIRM_EPISODES]


def test_a_sweep_trial_that_stopped_verified_counts_as_solved_at_its_confirmation(tmp_path: Path) -> None:
    from reinforce.run.metrics import EVALUATION_FIELDS
    from reinforce.sweep.trials import criterion, steps_to_solve

    # a short check at 480 is not a verification; a confirmation at 470 is not one either
    rows = [(3, 9_000, 20, 480.0), (5, 16_000, 100, 470.0), (7, 23_000, 100, 490.0)]
    lines = [",".join(EVALUATION_FIELDS)]
    lines += [f"{update},{steps},{episodes},{mean},0,0,0,{mean},1.0" for update, steps, episodes, mean in rows]
    (tmp_path / "evaluations.csv").write_text("\n".join(lines) + "\n")
    assert steps_to_solve(tmp_path, 475.0, "verified") == 23_000
    assert steps_to_solve(tmp_path, 495.0, "verified") is None
    assert criterion(TrainConfig()) == "verified"
    assert criterion(TrainConfig(stop_on_solve=False)) == criterion(TrainConfig(solve_criterion="training_mean"))
