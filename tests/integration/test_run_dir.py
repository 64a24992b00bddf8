"""The promises of a run directory (docs/reliability.md): one trainer at a time, a user's files left alone,
failures that change nothing, a finished run that stays finished."""

from __future__ import annotations

import csv
import re
import signal
import time
from pathlib import Path

import pytest
from cli_support import one_line, run_cli, snapshot, start_cli

import reinforce
from reinforce import Reinforce, ReinforceError
from reinforce.run.files import PID_FILE, training_lock

HYPERPARAMETERS = ("--num-envs", "4", "--hidden-sizes", "16", "--no-stop-on-solve")
OUTPUT = ("--eval-episodes", "0", "--quiet")
SETTINGS = {"num_envs": 4, "hidden_sizes": (16,), "lr": 0.01}


def updates(path: Path) -> list[int]:
    with path.open(newline="") as file:
        return [int(row["update"]) for row in csv.DictReader(file)]


def test_a_second_process_cannot_train_a_run_directory_being_trained(tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ("--seed", "0", "--total-steps", "100000000", *HYPERPARAMETERS, "--checkpoint-every", "1", *OUTPUT)
    process = start_cli("train", "CartPole-v1", *args, "--run-dir", run, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 120
        while not (run / "checkpoint.json").exists():
            assert process.poll() is None and time.monotonic() < deadline, process.stderr
            time.sleep(0.01)
        result = run_cli("train", "--resume", run, *OUTPUT, cwd=tmp_path)
        assert result.returncode != 0
        assert one_line(result.stderr) == (
            f"reinforce: error: run directory {run} is being trained by another process (pid {process.pid}): "
            "wait for it to finish or stop it"
        )
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    agent = reinforce.load(run)
    assert updates(run / "metrics.csv") == list(range(1, agent.num_updates + 1))  # no duplicate rows
    assert not (run / PID_FILE).exists()
    agent.close()


def test_simultaneous_resumes_of_one_run_directory_are_refused_but_one(tmp_path: Path) -> None:
    Reinforce("CartPole-v1", seed=0, **SETTINGS).learn(200, run_dir=tmp_path).close()
    with training_lock(tmp_path):  # another process's resume holds the directory
        before = snapshot(tmp_path)
        agent = reinforce.resume(tmp_path)
        with pytest.raises(reinforce.RunDirectoryBusy, match="is being trained by another process"):
            agent.learn(200, run_dir=tmp_path)
        assert snapshot(tmp_path) == before
    agent.learn(200, run_dir=tmp_path).close()  # once it is released, the run goes on
    assert not (tmp_path / PID_FILE).exists()


def test_save_leaves_the_users_own_files_alone(tmp_path: Path) -> None:
    own = {"notes.txt": b"mine", ".draft.tmp": b"draft", "state-of-the-art.safetensors": b"paper"}
    for name, data in own.items():
        (tmp_path / name).write_bytes(data)
    stale = ["state-000000001-0123456789abcdef.safetensors", ".checkpoint.json.ab_cd123.tmp"]
    for name in stale:
        (tmp_path / name).write_bytes(b"left by a killed write")
    agent = Reinforce("CartPole-v1", seed=0, **SETTINGS)
    agent.update()
    agent.save(tmp_path)
    agent.update()
    agent.save(tmp_path)
    for name, data in own.items():
        assert (tmp_path / name).read_bytes() == data
    assert not any((tmp_path / name).exists() for name in stale)
    loaded = reinforce.load(tmp_path)
    assert loaded.num_updates == 2
    loaded.close()
    agent.close()


def test_save_into_another_runs_directory_is_refused(tmp_path: Path) -> None:
    Reinforce("CartPole-v1", seed=0, **SETTINGS).learn(200, run_dir=tmp_path).close()
    before = snapshot(tmp_path)
    other = Reinforce("CartPole-v1", seed=1, **SETTINGS)
    other.update()
    with pytest.raises(ReinforceError, match="did not write"):
        other.save(tmp_path)
    assert snapshot(tmp_path) == before
    other.close()


def test_a_resume_that_fails_on_its_metrics_leaves_config_json_alone(tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ("--seed", "0", "--total-steps", "300", *HYPERPARAMETERS, *OUTPUT)
    assert run_cli("train", "CartPole-v1", *args, "--run-dir", run, cwd=tmp_path).returncode == 0
    (run / "metrics.csv").write_bytes(b"\x00\xff\xfe binary")
    before = snapshot(run)
    result = run_cli("train", "--resume", run, "--total-steps", "600", *OUTPUT, cwd=tmp_path)
    assert result.returncode != 0
    assert "metrics.csv" in one_line(result.stderr)
    assert snapshot(run) == before


def test_resuming_a_finished_run_says_so_and_changes_nothing(tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ("--seed", "0", "--total-steps", "300", *HYPERPARAMETERS, "--eval-episodes", "1")
    assert run_cli("train", "CartPole-v1", *args, "--run-dir", run, "--quiet", cwd=tmp_path).returncode == 0
    before = snapshot(run)
    steps = reinforce.load(run).num_env_steps
    result = run_cli("train", "--resume", run, "--eval-episodes", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no progress bar
    assert result.stdout == (
        f"run {run} already finished ({steps:,} env steps; its budget is 300): nothing to do; pass --total-steps "
        f"larger than {steps} to train further\n"
    )
    assert snapshot(run) == before


def test_a_new_run_that_fails_before_its_first_checkpoint_leaves_nothing(tmp_path: Path) -> None:
    args = ("--seed", "0", "--total-steps", "300", *HYPERPARAMETERS, "--lr", "1e308", *OUTPUT)
    result = run_cli("train", "CartPole-v1", *args, "--run-dir", tmp_path / "new", cwd=tmp_path)
    assert result.returncode != 0
    one_line(result.stderr)
    assert not (tmp_path / "new").exists()
    result = run_cli("train", "CartPole-v1", *args, cwd=tmp_path)  # the default runs/ENV-seedS-TIME
    assert result.returncode != 0
    assert list((tmp_path / "runs").iterdir()) == []
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_cli("train", "CartPole-v1", *args, "--run-dir", empty, cwd=tmp_path)
    assert result.returncode != 0
    assert empty.is_dir() and list(empty.iterdir()) == []


def test_resuming_a_solved_run_says_so_and_changes_nothing(tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ("--seed", "0", "--total-steps", "100000", "--num-envs", "4", "--hidden-sizes", "16", "--stop-on-solve")
    result = run_cli("train", "CartPole-v1", *args, "--reward-threshold", "1", *OUTPUT, "--run-dir", run, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    before = snapshot(run)
    steps = reinforce.load(run).num_env_steps
    assert steps < 100000
    result = run_cli("train", "--resume", run, "--total-steps", "200000", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.startswith(f"run {run} already finished (verified at {steps:,} env steps: deterministic mean")
    assert len(result.stdout.splitlines()) == 1
    assert snapshot(run) == before


def test_a_run_solved_by_the_training_mean_is_finished_too(tmp_path: Path) -> None:
    from reinforce.cli.runs import finished_line

    settings = {"num_envs": 4, "hidden_sizes": (16,), "reward_threshold": 1.0, "solve_criterion": "training_mean"}
    agent = reinforce.Reinforce("CartPole-v1", seed=0, **settings).learn(100_000, run_dir=tmp_path)  # type: ignore[arg-type]
    agent.close()
    assert agent.solved and agent.num_env_steps < 100_000
    finished = finished_line(agent, tmp_path, 200_000)
    assert finished is not None
    assert finished.startswith(
        f"run {tmp_path} already finished (solved at {agent.num_env_steps:,} env steps, with stop_on_solve)"
    )


def duplicate_row(path: Path, line: int) -> None:
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join([*lines[: line + 1], lines[line], *lines[line + 1 :]]))


def cut_after_line(path: Path, line: int, characters: int) -> None:
    """Keep ``path``'s lines up to ``line`` (0: the header) and the next one's first ``characters``."""
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[: line + 1]) + lines[line + 1][:characters])


def replace_line(path: Path, line: int, text: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join([*lines[:line], text, *lines[line + 1 :]]))


def link_state_outside(run: Path) -> None:
    state = next(run.glob("state-*.safetensors"))
    outside = run.parent / "elsewhere.safetensors"
    state.rename(outside)
    state.symlink_to(outside)


DAMAGES = {
    "metrics.csv a directory": (
        lambda run: ((run / "metrics.csv").unlink(), (run / "metrics.csv").mkdir()),
        "metrics.csv is a directory, not a file",
    ),
    "metrics.csv binary": (
        lambda run: (run / "metrics.csv").write_bytes(b"update\x00\xff\xfe"),
        "metrics.csv is not text (byte 7 is not UTF-8",
    ),
    "metrics.csv unreadable": (None, "metrics.csv cannot be read (permission denied): give your user read access"),
    "metrics.csv row twice": (
        lambda run: duplicate_row(run / "metrics.csv", 2),
        "metrics.csv has update 2 after update 2 (line 4: a row written twice, or out of order)",
    ),
    "episodes.csv row twice": (
        lambda run: duplicate_row(run / "episodes.csv", 5),
        "episodes.csv has episode 5 after episode 5 (line 7",
    ),
    "state file linked from outside": (link_state_outside, "outside the run directory: the run is damaged"),
    "metrics.csv cut short in a committed row": (
        lambda run: cut_after_line(run / "metrics.csv", 1, 12),
        "metrics.csv line 3 is cut short or malformed, though the checkpoint at update ",
    ),
    "episodes.csv malformed between rows": (
        lambda run: replace_line(run / "episodes.csv", 3, "garbage\n"),
        "episodes.csv line 4 is cut short or malformed, though rows follow it: the run directory is damaged",
    ),
}


@pytest.mark.parametrize("damage", DAMAGES, ids=list(DAMAGES))
def test_a_damaged_run_is_refused_in_words_that_say_what_is_wrong(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    run = tmp_path / "run"
    Reinforce("CartPole-v1", seed=0, **SETTINGS).learn(300, run_dir=run, checkpoint_every=1).close()
    assert len(updates(run / "metrics.csv")) >= 3
    make_damage, message = DAMAGES[damage]
    if make_damage is not None:
        make_damage(run)
    before = snapshot(tmp_path)
    with monkeypatch.context() as patch:
        if make_damage is None:  # root reads whatever the permissions say: refuse the read itself
            read_bytes = Path.read_bytes

            def refused(path: Path) -> bytes:
                if path.name == "metrics.csv":
                    raise PermissionError(13, "Permission denied", str(path))
                return read_bytes(path)

            patch.setattr(Path, "read_bytes", refused)
        with pytest.raises(ReinforceError, match=re.escape(message)) as caught:
            agent = reinforce.resume(run)
            try:
                agent.learn(300, run_dir=run)
            finally:
                agent.close()
    assert "\n" not in str(caught.value)
    assert snapshot(tmp_path) == before
