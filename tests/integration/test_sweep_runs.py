"""Sweeps on CartPole-v1 with a tiny budget: run dirs, table, plot, skipping, resuming, refusing."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from cli_support import one_line, run_cli, snapshot, start_cli

from reinforce import Reinforce, ReinforceError
from reinforce.sweep import SweepRow, run_sweep

SWEEP: dict[str, Any] = {
    "seeds": [0, 1],
    "grid": {"lr": [0.01, 0.03]},
    "hyperparameters": {"num_envs": 4, "hidden_sizes": [32]},
    "total_steps": 2_000,
    "eval_episodes": 5,
    "checkpoint_every": 5,
}
RUN_FILES = {"config.json", "checkpoint.json", "metrics.csv", "episodes.csv", "curve.png", "evaluation.json"}


def sweep(out: Path, **changes: Any) -> tuple[list[SweepRow], list[str]]:
    lines: list[str] = []
    rows = run_sweep("CartPole-v1", out=out, echo=lines.append, **{**SWEEP, **changes})
    return rows, lines


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory, local_ray: None) -> tuple[Path, list[SweepRow], list[str]]:
    out = tmp_path_factory.mktemp("sweep") / "out"
    rows, lines = sweep(out)
    return out, rows, lines


def trial_dirs(out: Path) -> list[Path]:
    return sorted(path.parent for path in out.glob("*/seed-*/result.json"))


def test_a_sweep_writes_run_dirs_a_table_and_a_plot(swept: tuple[Path, list[SweepRow], list[str]]) -> None:
    out, rows, lines = swept
    assert [path.relative_to(out).as_posix() for path in trial_dirs(out)] == [
        "lr=0.01/seed-0",
        "lr=0.01/seed-1",
        "lr=0.03/seed-0",
        "lr=0.03/seed-1",
    ]
    for run in trial_dirs(out):
        assert {path.name for path in run.iterdir()} >= RUN_FILES
        config = json.loads((run / "config.json").read_text())
        assert config["hyperparameters"]["num_envs"] == 4 and config["hyperparameters"]["num_threads"] == 1
        result = json.loads((run / "result.json").read_text())
        assert result["env_steps"] >= 2_000 and result["eval_episodes"] == 5
    assert [(row.setting, row.trials, row.hyperparameters) for row in rows] == [
        ("lr=0.01", 2, {"lr": 0.01}),
        ("lr=0.03", 2, {"lr": 0.03}),
    ]
    assert rows[0].steps_to_solve.coverage is None  # 2 seeds: no 95% interval
    table = (out / "results.md").read_text()
    assert "| lr=0.01 | 2 | 0 | not solved | n/a |" in table and "unavailable with 2 trial(s)" in table
    assert table.strip().endswith(lines[-2].strip())  # the table printed is the table written
    saved = json.loads((out / "results.json").read_text())
    assert saved["rows"][0]["steps_to_solve"]["median"] is None  # not solved: +inf, null in JSON
    assert saved["sweep"]["seeds"] == [0, 1]
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert "4 to start" in lines[0]


def test_running_a_finished_sweep_again_runs_nothing(swept: tuple[Path, list[SweepRow], list[str]]) -> None:
    out, rows, _ = swept
    runs = {run: snapshot(run) for run in trial_dirs(out)}
    again, lines = sweep(out)
    assert "4 skipped (finished), 0 to resume, 0 to start" in lines[0]
    assert not any(line.startswith("[") for line in lines)  # no trial ran
    assert {run: snapshot(run) for run in trial_dirs(out)} == runs
    assert again == rows


def test_an_interrupted_trial_continues_from_its_checkpoint(
    swept: tuple[Path, list[SweepRow], list[str]], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(swept[0], out)
    original = swept[0] / "lr=0.03" / "seed-1"
    trial = out / "lr=0.03" / "seed-1"
    shutil.rmtree(trial)
    config = json.loads((original / "config.json").read_text())
    partial = Reinforce("CartPole-v1", seed=1, **config["hyperparameters"])
    partial.learn(800, run_dir=trial, checkpoint_every=2)  # a trial stopped after a checkpoint
    partial.close()
    rows_before = (trial / "metrics.csv").read_text()
    _, lines = sweep(out)
    assert "3 skipped (finished), 1 to resume, 0 to start" in lines[0]
    assert (trial / "metrics.csv").read_text().startswith(rows_before)  # timings included: nothing was redone
    # a trial trains as a member of its setting's population, with its own env seeds and the population's
    # sampling: the resumed one goes on from its checkpoint, not through the uninterrupted trial's numbers
    result = json.loads((trial / "result.json").read_text())
    assert result["updates"] == len((trial / "metrics.csv").read_text().splitlines()) - 1
    assert result["env_steps"] >= 2_000 or result["steps_to_solve"] is not None


def test_another_sweep_in_the_same_directory_is_refused(swept: tuple[Path, list[SweepRow], list[str]]) -> None:
    out = swept[0]
    before = snapshot(out)
    for changes in ({"seeds": [0, 1, 2]}, {"total_steps": 3_000}, {"grid": {"lr": [0.01]}}):
        with pytest.raises(ReinforceError, match="holds another sweep"):
            sweep(out, **changes)
    assert snapshot(out) == before


def test_the_sweep_command_runs_skips_and_refuses(tmp_path: Path) -> None:
    args = ["sweep", "CartPole-v1", "--seeds", "3", "--grid", "hidden_sizes=16/8,8", "--num-envs", "2"]
    args += ["--total-steps", "300", "--eval-episodes", "2", "--out", "out"]
    first = run_cli(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "| hidden_sizes=8x8 | 1 | 0 | not solved | n/a |" in first.stdout
    assert {path.name for path in (tmp_path / "out" / "hidden_sizes=16" / "seed-3").iterdir()} >= RUN_FILES
    again = run_cli(*args, cwd=tmp_path)
    assert again.returncode == 0 and "2 skipped (finished)" in again.stdout
    before = snapshot(tmp_path)
    other = run_cli(*[arg if arg != "300" else "400" for arg in args], cwd=tmp_path)
    assert other.returncode == 2 and "whose settings differ in: total steps (" in one_line(other.stderr)
    assert "/--out" not in other.stderr  # the directory out, in a path, is not written as the flag
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("stop", ["ctrl-c", "sigterm"])
def test_an_interrupted_sweep_continues_with_the_same_command(tmp_path: Path, stop: str) -> None:
    args = ["sweep", "CartPole-v1", "--seeds", "0-1", "--total-steps", "200000", "--no-stop-on-solve"]
    args += ["--eval-episodes", "2", "--checkpoint-every", "1", "--out", "out"]
    process = start_cli(*args, cwd=tmp_path, new_session=True)
    checkpoints = [tmp_path / "out" / "default" / f"seed-{seed}" / "checkpoint.json" for seed in (0, 1)]
    deadline = time.monotonic() + 120
    while not all(path.exists() for path in checkpoints) and time.monotonic() < deadline:
        time.sleep(0.05)
    if stop == "ctrl-c":
        os.killpg(process.pid, signal.SIGINT)  # the terminal's Ctrl-C reaches the whole group
    else:
        process.send_signal(signal.SIGTERM)  # the driver alone
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "continue the sweep with the same command: reinforce sweep CartPole-v1" in one_line(stderr)
    assert not any((path.parent / "result.json").exists() for path in checkpoints)
    again = run_cli(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "0 skipped (finished), 2 to resume, 0 to start" in again.stdout
    assert all((path.parent / "result.json").exists() for path in checkpoints)


def test_a_diverging_trial_is_an_unsolved_result_not_a_failure(tmp_path: Path) -> None:
    from reinforce.sweep import plan_sweep, run_trial, summarize_trials

    plan = plan_sweep("toy_envs:toy/NanReward-v0", seeds=[0], total_steps=100, out=tmp_path, eval_episodes=2)
    result = run_trial(plan.trials[0])
    assert "non-finite rewards" in result["error"] and result["final_return"] is None
    assert json.loads((Path(plan.trials[0].run_dir) / "result.json").read_text()) == result
    (row,) = summarize_trials(plan.settings, [result])
    assert (row.solved, row.failed) == (0, 1)
    assert row.final_return is not None and row.final_return.median == -math.inf  # 'diverged' in the table


def test_a_damaged_trial_result_is_a_one_line_error_that_names_the_fix(tmp_path: Path) -> None:
    from reinforce.sweep import Trial
    from reinforce.sweep.trials import finished_result

    trial = Trial("CartPole-v1", 0, "default", {}, str(tmp_path), 1000, 0, 10)
    for text in ("{", '{"setting": "default", "seed": 0}', '{"setting": "default", "seed": 0, "steps_to_solve": "x"}'):
        (tmp_path / "result.json").write_text(text)
        with pytest.raises(ReinforceError, match="delete it to run that trial again"):
            finished_result(trial)


def test_a_settings_seeds_train_as_one_population_with_each_trials_result(tmp_path: Path) -> None:
    """`run_population`: a trial per member, each with its result.json; a diverging member is an unsolved result."""
    from reinforce.sweep import plan_sweep, run_population

    plan = plan_sweep("toy_envs:toy/NanReward-v0", seeds=[0, 1], total_steps=100, out=tmp_path, eval_episodes=2)
    results = run_population(plan.trials)
    for trial, result in zip(plan.trials, results, strict=True):
        assert isinstance(result, dict) and result["seed"] == trial.seed
        assert "non-finite rewards" in result["error"] and result["final_return"] is None
        assert json.loads((Path(trial.run_dir) / "result.json").read_text()) == result
    plan = plan_sweep("toy_envs:toy/Counting-v0", seeds=[3, 4], total_steps=40, out=tmp_path / "ok", eval_episodes=2)
    results = run_population(plan.trials)
    for trial, result in zip(plan.trials, results, strict=True):
        assert isinstance(result, dict) and result["error"] is None and result["env_steps"] >= 40
        assert result["eval_episodes"] == 2 and (Path(trial.run_dir) / "evaluation.json").is_file()
    assert run_population(plan.trials) == results  # finished trials are returned as they are
