"""Run lifecycle through the ``reinforce`` command: signals, SIGKILL at random moments, resume, video."""

from __future__ import annotations

import csv
import os
import random
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from cli_support import one_line, run_cli, start_cli

import reinforce

HYPERPARAMETERS = ("--num-envs", "4", "--hidden-sizes", "16", "--no-stop-on-solve")
OUTPUT = ("--eval-episodes", "0", "--quiet")
TIMING_COLUMNS = {"perf/steps_per_s", "wall_time_s"}


def rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as file:
        return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in csv.DictReader(file)]


def wait_for_rows(path: Path, count: int, process: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return
        if path.exists() and path.read_text().count("\n") > count:  # the header and `count` rows
            return
        time.sleep(0.01)
    raise AssertionError(f"{path} did not reach {count} rows in {timeout} s")


def assert_same_parameters(first: Path, second: Path) -> None:
    one, two = reinforce.load(first), reinforce.load(second)
    for key, tensor in one.policy.state_dict().items():
        torch.testing.assert_close(two.policy.state_dict()[key], tensor, rtol=0, atol=0)
    for index, entry in one.optimizer.state_dict()["state"].items():
        for key, value in entry.items():
            torch.testing.assert_close(two.optimizer.state_dict()["state"][index][key], value, rtol=0, atol=0)
    assert one.num_env_steps == two.num_env_steps and list(one.recent_returns) == list(two.recent_returns)
    one.close()
    two.close()


def test_ctrl_c_to_the_process_group_spares_async_workers(tmp_path: Path) -> None:
    """Ctrl-C in a terminal signals every process of the group, the async env's workers included."""
    run = tmp_path / "run"
    args = ("--seed", "0", "--total-steps", "100000000", *HYPERPARAMETERS, "--vectorization-mode", "async", *OUTPUT)
    process = start_cli("train", "CartPole-v1", *args, "--run-dir", run, cwd=tmp_path, new_session=True)
    wait_for_rows(run / "metrics.csv", 2, process)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert one_line(stderr).startswith(f"reinforce: interrupted: checkpoint saved in {run} at update ")
    reinforce.load(run).close()


@pytest.mark.parametrize(("signal_number", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_saves_a_checkpoint_and_exits_with_its_code(tmp_path: Path, signal_number: int, code: int) -> None:
    run = tmp_path / "run"
    args = ("--seed", "0", "--total-steps", "100000000", *HYPERPARAMETERS, "--checkpoint-every", "0", *OUTPUT)
    process = start_cli("train", "CartPole-v1", *args, "--run-dir", run, cwd=tmp_path)
    wait_for_rows(run / "metrics.csv", 3, process)
    process.send_signal(signal_number)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == code, stderr
    line = one_line(stderr)
    match = re.fullmatch(
        rf"reinforce: interrupted: checkpoint saved in {re.escape(str(run))} at update (\d+); "
        rf"resume with `reinforce train --resume {re.escape(str(run))}`",
        line,
    )
    assert match, line
    update = int(match.group(1))
    agent = reinforce.load(run)
    assert agent.num_updates == update >= 3
    assert [int(row["update"]) for row in rows(run / "metrics.csv")] == list(range(1, update + 1))
    if signal_number == signal.SIGTERM:  # and the run goes on from there
        budget = str(agent.num_env_steps + 400)
        args = ("--log-level", "info", "train", "--resume", run, "--total-steps", budget, "--tensorboard", *OUTPUT)
        result = run_cli(*args, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert f"reinforce: INFO: resuming {run} at update {update}" in result.stderr
        resumed = reinforce.load(run)
        assert resumed.num_updates > update and resumed.num_env_steps >= int(budget)
        assert [int(row["update"]) for row in rows(run / "metrics.csv")] == list(range(1, resumed.num_updates + 1))
        assert list((run / "tensorboard").iterdir())
        resumed.close()
    agent.close()


def check_after_kill(run: Path, tmp_path: Path) -> bool:
    """The run directory is loadable, or says in one line why not; True if it held a checkpoint."""
    if not (run / "config.json").exists():  # killed before training started: nothing to load or resume
        result = run_cli("eval", run, cwd=tmp_path)
        assert result.returncode == 2 and one_line(result.stderr).startswith("reinforce: error: ")
        return False
    if not (run / "checkpoint.json").exists():
        with pytest.raises(reinforce.ReinforceError, match="no checkpoint yet"):
            reinforce.load(run)
        return False
    agent = reinforce.load(run)
    updates = [int(row["update"]) for row in rows(run / "metrics.csv")[: agent.num_updates]]
    assert updates == list(range(1, agent.num_updates + 1))  # every update up to the checkpoint has its row
    agent.close()
    return True


def test_sigkill_at_random_moments_leaves_a_resumable_run_that_ends_as_an_uninterrupted_one(tmp_path: Path) -> None:
    args = ("--seed", "3", "--total-steps", "15000", *HYPERPARAMETERS, "--checkpoint-every", "1", *OUTPUT)
    reference = tmp_path / "reference"  # what `reinforce train` does, uninterrupted
    agent = reinforce.Reinforce("CartPole-v1", seed=3, num_envs=4, hidden_sizes=(16,), stop_on_solve=False)
    agent.learn(15_000, run_dir=reference).close()
    run = tmp_path / "run"
    rng = random.Random(2026)
    moments: list[float | None] = [0.05, rng.uniform(1.0, 4.0), None, None, None]  # None: during training
    checkpoints = 0
    for moment in moments:
        if (run / "config.json").exists():
            process = start_cli("train", "--resume", run, "--checkpoint-every", "1", *OUTPUT, cwd=tmp_path)
        else:
            process = start_cli("train", "CartPole-v1", *args, "--run-dir", run, cwd=tmp_path)
        if moment is None:
            wait_for_rows(run / "metrics.csv", len(rows(run / "metrics.csv")) + rng.randint(1, 6), process)
            time.sleep(rng.uniform(0.0, 0.02))
        else:
            time.sleep(moment)
        process.kill()
        process.communicate(timeout=60)
        checkpoints += check_after_kill(run, tmp_path)
    assert checkpoints >= 2
    result = run_cli("train", "--resume", run, *OUTPUT, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert_same_parameters(reference, run)
    assert rows(run / "metrics.csv") == rows(reference / "metrics.csv")
    assert (run / "episodes.csv").read_text() == (reference / "episodes.csv").read_text()
    assert len(list(run.glob("state-*.safetensors"))) == 1 and not list(run.glob(".*.tmp"))
    evaluation = run_cli("eval", run, "--episodes", "2", cwd=tmp_path)
    assert evaluation.returncode == 0 and "evaluation over 2 episodes" in evaluation.stdout


def test_eval_records_a_gif_and_an_mp4(tmp_path: Path) -> None:
    imageio = pytest.importorskip("imageio.v2")
    run = tmp_path / "run"
    reinforce.Reinforce("CartPole-v1", seed=0, num_envs=2, hidden_sizes=(8,)).learn(200, run_dir=run).close()
    result = run_cli("eval", run, "--video", "episode.gif", cwd=tmp_path)
    assert result.returncode == 0 and not result.stderr, result.stderr
    frames = int(re.search(r"wrote episode\.gif \((\d+) frames\)", result.stdout).group(1))
    gif = (tmp_path / "episode.gif").read_bytes()
    assert gif[:6] == b"GIF89a" and 1 < len(imageio.mimread(tmp_path / "episode.gif")) <= frames
    agent = reinforce.load(run)
    evaluation = agent.record_video(tmp_path / "two.mp4", episodes=2)
    assert evaluation["episodes"] == 2 and evaluation["frames"] == round(evaluation["mean_length"] * 2) + 2
    assert (tmp_path / "two.mp4").read_bytes()[4:8] == b"ftyp"
    agent.close()
