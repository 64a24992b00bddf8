"""Callbacks of ``learn`` (stopping cleanly, resumably), `EvalCallback` (evaluations.csv, best/, stop_at) and
`evaluate_policy`."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import gymnasium
import pytest
import torch
from cli_support import one_line, run_cli, snapshot

import reinforce
from reinforce import EvalCallback, Reinforce, ReinforceError, evaluate_policy

SETTINGS = {"num_envs": 4, "hidden_sizes": (16,), "lr": 0.01}
TIMING_COLUMNS = {"perf/steps_per_s", "wall_time_s"}


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in csv.DictReader(file)]


def assert_same_parameters(first: Reinforce, second: Reinforce) -> None:
    assert (first.num_updates, first.num_env_steps) == (second.num_updates, second.num_env_steps)
    for key, tensor in first.policy.state_dict().items():
        torch.testing.assert_close(second.policy.state_dict()[key], tensor, rtol=0, atol=0)
    one, two = first.optimizer.state_dict()["state"], second.optimizer.state_dict()["state"]
    for index, entry in one.items():
        for key, value in entry.items():
            torch.testing.assert_close(two[index][key], value, rtol=0, atol=0)


def checkpoint_update(run_dir: Path) -> int:
    return int(json.loads((run_dir / "checkpoint.json").read_text())["num_updates"])


def test_callbacks_are_called_after_every_update_once_its_row_is_written(tmp_path: Path) -> None:
    calls: list[tuple[int, int, int]] = []
    others: list[int] = []

    def record(agent: Reinforce, metrics: dict[str, Any]) -> None:
        written = rows(tmp_path / "metrics.csv")
        calls.append((agent.num_updates, metrics["update"], int(written[-1]["update"])))

    agent = Reinforce("CartPole-v1", seed=0, **SETTINGS)
    agent.learn(500, run_dir=tmp_path, callback=[record, lambda agent, metrics: others.append(agent.num_updates)])
    assert agent.num_updates >= 3
    assert calls == [(update, update, update) for update in range(1, agent.num_updates + 1)]
    assert others == list(range(1, agent.num_updates + 1))
    agent.close()


def test_a_callback_returning_false_stops_with_a_checkpoint_and_the_run_resumes_to_its_budget(tmp_path: Path) -> None:
    whole = Reinforce("CartPole-v1", seed=3, **SETTINGS).learn(1_500, run_dir=tmp_path / "whole")
    calls = []

    def stop_at_update_3(agent: Reinforce, metrics: dict[str, Any]) -> bool:
        calls.append(agent.num_updates)
        return agent.num_updates < 3

    part = Reinforce("CartPole-v1", seed=3, **SETTINGS)
    part.learn(1_500, run_dir=tmp_path / "part", checkpoint_every=0, callback=stop_at_update_3)
    assert calls == [1, 2, 3] and part.num_updates == 3 < whole.num_updates
    assert checkpoint_update(tmp_path / "part") == 3
    # the budget stays the run's: a resume trains on to it, and ends where the uninterrupted run ended
    assert json.loads((tmp_path / "part" / "config.json").read_text())["total_steps"] == 1_500
    part.close()
    # resumed by the CLI, evaluating on the way (which changes nothing in training)
    part_dir = tmp_path / "part"
    result = run_cli("train", "--resume", part_dir, "--eval-every", "400", "--eval-episodes", "2", "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    resumed = reinforce.load(part_dir)
    assert_same_parameters(whole, resumed)
    assert rows(part_dir / "metrics.csv") == rows(tmp_path / "whole" / "metrics.csv")
    # --eval-every: evaluations from the resumed update on, the best policy loadable, named in the summary
    crossed = [int(row["env_steps"]) // 400 for row in evaluation_rows(part_dir)]
    assert crossed == list(range(1, resumed.num_env_steps // 400 + 1)) and len(crossed) >= 3
    assert f"saved in {part_dir / 'best'}" in result.stdout
    best = reinforce.load(part_dir / "best")
    assert best.num_updates == int(json.loads((part_dir / "best" / "evaluation.json").read_text())["update"])
    whole.close()
    resumed.close()
    best.close()


def test_an_invalid_callback_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    agent = Reinforce("CartPole-v1", seed=0, **SETTINGS)
    with pytest.raises(ReinforceError, match="callback must be a callable") as error:
        agent.learn(100, run_dir=tmp_path / "run", callback=[print, 5])  # type: ignore[list-item]
    assert error.value.fields == ("callback",)
    assert not (tmp_path / "run").exists() and agent.num_updates == 0
    with pytest.raises(ReinforceError, match="stop_at must be a finite return"):
        EvalCallback(stop_at=float("nan"))
    with pytest.raises(ReinforceError, match="every_steps"):
        EvalCallback(every_steps=0)
    agent.close()


def evaluation_rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "evaluations.csv").open(newline="") as file:
        return [{k: v for k, v in row.items() if k != "wall_time_s"} for row in csv.DictReader(file)]


def test_eval_callback_records_evaluations_and_keeps_the_best_policy_loadable(tmp_path: Path) -> None:
    run = tmp_path / "run"
    evaluation = EvalCallback(every_steps=300, episodes=3)
    agent = Reinforce("CartPole-v1", seed=1, **SETTINGS).learn(2_000, run_dir=run, callback=evaluation)
    steps = [row["env_steps"] for row in evaluation.evaluations]
    # one evaluation after each update that crosses a multiple of 300 env steps
    assert len(steps) == agent.num_env_steps // 300 >= 4
    assert [step // 300 for step in steps] == list(range(1, len(steps) + 1))
    recorded = evaluation_rows(run)
    assert [int(row["env_steps"]) for row in recorded] == steps
    assert [float(row["mean_return"]) for row in recorded] == [row["mean_return"] for row in evaluation.evaluations]
    best = evaluation.best
    assert best is not None and best["mean_return"] == max(row["mean_return"] for row in evaluation.evaluations)
    assert evaluation.best_dir == run / "best"
    loaded = reinforce.load(run / "best")
    assert (loaded.num_updates, loaded.num_env_steps) == (best["update"], best["env_steps"])
    # the same episodes as the callback's evaluation: the seed comes from the saved run's seed
    assert loaded.evaluate(episodes=3)["mean_return"] == best["mean_return"]
    assert json.loads((run / "best" / "evaluation.json").read_text())["mean_return"] == best["mean_return"]
    assert len(list((run / "best").glob("state-*.safetensors"))) == 1
    # the run's own checkpoint is the last update's, and its state files and best/ live side by side
    assert checkpoint_update(run) == agent.num_updates
    assert len(list(run.glob("state-*.safetensors"))) == 1
    loaded.close()
    agent.close()


def test_evaluating_during_training_leaves_training_as_it_would_be(tmp_path: Path) -> None:
    plain = Reinforce("CartPole-v1", seed=4, **SETTINGS).learn(800)
    # stochastic evaluations sample from a copy of torch's random state
    evaluation = EvalCallback(every_steps=200, episodes=2, deterministic=False)
    evaluated = Reinforce("CartPole-v1", seed=4, **SETTINGS).learn(800, callback=evaluation)
    assert len(evaluation.evaluations) >= 3 and evaluation.best_dir is None
    assert_same_parameters(plain, evaluated)
    plain.close()
    evaluated.close()


class CrashAfter:
    """A callback that raises after update ``update``, as a process killed there would stop."""

    def __init__(self, update: int) -> None:
        self.update = update

    def __call__(self, agent: Reinforce, metrics: dict[str, Any]) -> None:
        if agent.num_updates == self.update:
            raise RuntimeError("crash")


def test_a_resumed_run_keeps_the_evaluations_up_to_its_checkpoint_and_ends_as_an_uninterrupted_one(
    tmp_path: Path,
) -> None:
    whole = Reinforce("CartPole-v1", seed=1, **SETTINGS)
    whole.learn(1_500, run_dir=tmp_path / "whole", callback=EvalCallback(every_steps=150, episodes=2))
    part = Reinforce("CartPole-v1", seed=1, **SETTINGS)
    with pytest.raises(RuntimeError, match="crash"):
        part.learn(
            1_500,
            run_dir=tmp_path / "part",
            checkpoint_every=0,
            callback=[EvalCallback(every_steps=150, episodes=2), CrashAfter(whole.num_updates - 3)],
        )
    part.close()
    checkpoint = checkpoint_update(tmp_path / "part")
    later = [row for row in evaluation_rows(tmp_path / "part") if int(row["update"]) > checkpoint]
    assert later  # evaluations that the checkpoint does not cover (no new best since it)
    # any learn call on the run drops them, with or without an EvalCallback
    reinforce.resume(tmp_path / "part").learn(0, run_dir=tmp_path / "part").close()
    assert all(int(row["update"]) <= checkpoint for row in evaluation_rows(tmp_path / "part"))
    evaluation = EvalCallback(every_steps=150, episodes=2)
    resumed = reinforce.resume(tmp_path / "part")
    resumed.learn(1_500 - resumed.num_env_steps, run_dir=tmp_path / "part", callback=evaluation)
    assert_same_parameters(whole, resumed)
    assert evaluation_rows(tmp_path / "part") == evaluation_rows(tmp_path / "whole")
    assert len(evaluation.evaluations) == len(evaluation_rows(tmp_path / "whole"))
    best = reinforce.load(tmp_path / "part" / "best")
    assert best.num_updates == reinforce.load(tmp_path / "whole" / "best").num_updates
    whole.close()
    resumed.close()
    best.close()


class CrashBeforeBest(EvalCallback):
    """Dies after the run's checkpoint at a new best and before its copy in best/ (the second best)."""

    def _write_best(self, agent: Reinforce, run_dir: Path, row: dict[str, Any]) -> None:
        if (run_dir / "best").exists():
            raise RuntimeError("crash")
        super()._write_best(agent, run_dir, row)


def test_a_best_policy_not_yet_copied_is_copied_when_the_run_resumes(tmp_path: Path) -> None:
    run = tmp_path / "run"
    agent = Reinforce("CartPole-v1", seed=0, **SETTINGS)
    evaluation = CrashBeforeBest(every_steps=100, episodes=2)
    with pytest.raises(RuntimeError, match="crash"):
        agent.learn(5_000, run_dir=run, checkpoint_every=0, callback=evaluation)
    assert evaluation.best is not None
    update = evaluation.best["update"]
    assert checkpoint_update(run) == update == agent.num_updates  # committed, not copied
    assert checkpoint_update(run / "best") < update
    agent.close()
    resumed = reinforce.resume(run)
    again = EvalCallback(every_steps=100, episodes=2)
    resumed.learn(0, run_dir=run, callback=again)
    assert again.best is not None and again.best["update"] == update
    assert checkpoint_update(run / "best") == update
    assert json.loads((run / "best" / "evaluation.json").read_text())["update"] == update
    resumed.close()


def test_the_summary_does_not_claim_a_best_policy_that_a_user_removed(tmp_path: Path) -> None:
    run = tmp_path / "run"
    evaluation = EvalCallback(every_steps=200, episodes=2)
    agent = Reinforce("CartPole-v1", seed=2, **SETTINGS).learn(600, run_dir=run, callback=evaluation)
    assert evaluation.saved_best_dir == run / "best"
    assert evaluation.best is not None and evaluation.best["update"] < agent.num_updates  # not re-made on resume
    budget = str(agent.num_env_steps + 1)
    agent.close()
    for path in (run / "best").iterdir():
        path.unlink()
    # one more update and no evaluation due: the best stays the kept row, whose policy is gone
    result = run_cli(
        "train",
        "--resume",
        run,
        "--total-steps",
        budget,
        "--eval-every",
        "100000",
        "--eval-episodes",
        "2",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert f"not saved: {run / 'best'} does not hold its policy" in result.stdout
    assert "saved in" not in result.stdout and "holds no policy" in result.stderr


def test_a_best_directory_the_evaluations_do_not_account_for_is_refused(tmp_path: Path) -> None:
    (tmp_path / "best").mkdir()
    (tmp_path / "best" / "mine.txt").write_text("the user's")
    agent = Reinforce("CartPole-v1", seed=0, **SETTINGS)
    with pytest.raises(ReinforceError, match="does not account for"):
        agent.learn(200, run_dir=tmp_path, callback=EvalCallback(every_steps=50, episodes=1))
    assert (tmp_path / "best" / "mine.txt").read_text() == "the user's"
    assert agent.num_updates == 0
    agent.close()


@pytest.mark.parametrize("evaluated", [True, False])
def test_a_best_that_is_not_a_directory_is_refused_and_left_as_it_is(tmp_path: Path, evaluated: bool) -> None:
    run = tmp_path / "run"
    callback = EvalCallback(every_steps=50, episodes=1) if evaluated else None
    Reinforce("CartPole-v1", seed=0, **SETTINGS).learn(200, run_dir=run, callback=callback).close()
    if evaluated:
        for path in (run / "best").iterdir():
            path.unlink()
        (run / "best").rmdir()
    (run / "best").write_text("the user's")
    before = snapshot(tmp_path)
    agent = reinforce.resume(run)
    with pytest.raises(ReinforceError, match="best is not a directory, where the run keeps its best policy"):
        agent.learn(200, run_dir=run, callback=EvalCallback(every_steps=50, episodes=1))
    agent.close()
    assert snapshot(tmp_path) == before


def test_stop_at_stops_training_at_the_first_evaluation_that_reaches_it(tmp_path: Path) -> None:
    evaluation = EvalCallback(every_steps=200, episodes=2, stop_at=1.0)  # any CartPole episode reaches 1
    agent = Reinforce("CartPole-v1", seed=0, **SETTINGS).learn(100_000, run_dir=tmp_path, callback=evaluation)
    assert evaluation.stopped and len(evaluation.evaluations) == 1
    assert agent.num_env_steps // 200 == 1 and checkpoint_update(tmp_path) == agent.num_updates
    assert checkpoint_update(tmp_path / "best") == agent.num_updates
    agent.close()


def test_evaluate_policy_on_an_env_id_returns_every_episode(tmp_path: Path) -> None:
    agent = Reinforce("toy/Counting-v0", seed=2, num_envs=2, hidden_sizes=(8,))
    result = evaluate_policy(agent, "toy/Counting-v0", episodes=7)
    assert result["episodes"] == len(result["returns"]) == len(result["lengths"]) == 7
    # CountingEnv's return is 1 + 2 + ... + length
    assert result["returns"] == [length * (length + 1) / 2 for length in result["lengths"]]
    assert result["mean_length"] == sum(result["lengths"]) / 7
    assert result["min_return"] <= result["mean_return"] <= result["max_return"]
    assert agent.evaluate(episodes=7) == result  # one code path, the same default seed
    with pytest.raises(ReinforceError, match="observation space"):
        evaluate_policy(agent, "CartPole-v1", episodes=1)
    agent.close()


def test_evaluate_policy_on_an_env_factory_and_a_vector_env_it_leaves_open() -> None:
    agent = Reinforce("CartPole-v1", seed=0, **SETTINGS)
    on_id = evaluate_policy(agent, "CartPole-v1", episodes=3)
    assert evaluate_policy(agent, lambda: gymnasium.make("CartPole-v1"), episodes=3) == on_id
    envs = gymnasium.make_vec("CartPole-v1", num_envs=3, vectorization_mode="sync")
    assert evaluate_policy(agent, envs, episodes=3) == on_id
    envs.reset(seed=0)  # still open
    envs.close()
    agent.close()


def test_train_eval_every_without_evaluation_episodes_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    refused = run_cli("train", "CartPole-v1", "--eval-every", "400", "--eval-episodes", "0", cwd=tmp_path)
    assert refused.returncode == 2
    assert "--eval-every needs evaluation episodes" in one_line(refused.stderr)
    assert list(tmp_path.iterdir()) == []
