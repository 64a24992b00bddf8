"""Run lifecycle through the Python API: exact resume, periodic checkpoints, safe loading, TensorBoard."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

import reinforce
from reinforce import Reinforce, ReinforceError

TIMING_COLUMNS = {"perf/steps_per_s", "wall_time_s"}
SETTINGS = {"num_envs": 4, "hidden_sizes": (16,), "lr": 0.01}


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in csv.DictReader(file)]


def assert_same_state(first: Reinforce, second: Reinforce) -> None:
    modules, optimizers = first.state()
    assert modules.keys() == second.state()[0].keys() and optimizers.keys() == second.state()[1].keys()
    for name, module in modules.items():
        for key, tensor in module.state_dict().items():
            torch.testing.assert_close(second.state()[0][name].state_dict()[key], tensor, rtol=0, atol=0)
    for name, optimizer in optimizers.items():
        one, two = optimizer.state_dict(), second.state()[1][name].state_dict()
        assert one["param_groups"] == two["param_groups"]
        for index, entry in one["state"].items():
            for key, value in entry.items():
                torch.testing.assert_close(two["state"][index][key], value, rtol=0, atol=0)
    assert list(first.recent_returns) == list(second.recent_returns)
    assert first.num_env_steps == second.num_env_steps and first.num_updates == second.num_updates


def signal_after_update(agent: Reinforce, update: int, *signals: int) -> None:
    """Make ``agent`` send itself ``signals`` right after its update number ``update``."""
    import os

    original_update = agent.update

    def update_then_signal() -> dict:
        metrics = original_update()
        if agent.num_updates == update:
            for number in signals:
                os.kill(os.getpid(), number)
        return metrics

    agent.update = update_then_signal  # type: ignore[method-assign]


@pytest.mark.parametrize(
    "extra",
    [{}, {"baseline": "value", "value_hidden_sizes": (8,)}, {"baseline": "running_mean"}],
    ids=["policy", "value-baseline", "running-mean-baseline"],
)
def test_interrupted_and_resumed_run_ends_with_the_parameters_of_an_uninterrupted_one(
    tmp_path: Path, extra: dict
) -> None:
    whole = Reinforce("CartPole-v1", seed=11, **SETTINGS, **extra).learn(2_000, run_dir=tmp_path / "whole")
    part = Reinforce("CartPole-v1", seed=11, **SETTINGS, **extra).learn(700, run_dir=tmp_path / "part")
    assert 2 <= part.num_updates < whole.num_updates - 2
    part.close()
    torch.manual_seed(999)  # whatever happens to the process's generator in between does not matter
    resumed = reinforce.resume(tmp_path / "part")
    resumed.learn(2_000 - resumed.num_env_steps, run_dir=tmp_path / "part")
    assert_same_state(whole, resumed)
    assert set(json.loads((tmp_path / "part" / "checkpoint.json").read_text())["modules"]) == set(whole.state()[0])
    assert rows(tmp_path / "part" / "metrics.csv") == rows(tmp_path / "whole" / "metrics.csv")
    assert (tmp_path / "part" / "episodes.csv").read_text() == (tmp_path / "whole" / "episodes.csv").read_text()
    config = json.loads((tmp_path / "part" / "config.json").read_text())
    assert config["total_steps"] == 2_000 == json.loads((tmp_path / "whole" / "config.json").read_text())["total_steps"]
    whole.close()
    resumed.close()


def test_resume_drops_rows_written_after_the_last_checkpoint(tmp_path: Path) -> None:
    run = tmp_path / "run"
    agent = Reinforce("CartPole-v1", seed=2, **SETTINGS)
    agent.learn(600, run_dir=run, checkpoint_every=2)
    checkpoint = json.loads((run / "checkpoint.json").read_text())
    saved = {name: (run / name).read_bytes() for name in ("checkpoint.json", checkpoint["state_file"])}
    metrics_then, episodes_then = rows(run / "metrics.csv"), rows(run / "episodes.csv")
    agent.learn(300, run_dir=run, checkpoint_every=0)  # more rows; then "crash" back to the saved checkpoint
    for name, data in saved.items():
        (run / name).write_bytes(data)
    with (run / "metrics.csv").open("a") as file:
        file.write("99,12")  # a torn last line, as a kill in mid-write leaves
    assert len(rows(run / "metrics.csv")) > len(metrics_then)
    resumed = reinforce.resume(run)
    resumed.learn(0, run_dir=run)
    assert rows(run / "metrics.csv") == metrics_then and rows(run / "episodes.csv") == episodes_then
    resumed.close()
    agent.close()


def test_periodic_checkpoints_keep_one_state_file(tmp_path: Path) -> None:
    agent = Reinforce("CartPole-v1", seed=0, **SETTINGS)
    agent.learn(400, run_dir=tmp_path, checkpoint_every=1)
    # a name atomic_write gives (the user's own .tmp files are kept: tests/integration/test_run_dir.py)
    (tmp_path / ".state-000000001-0123456789abcdef.safetensors.x_y12345.tmp").write_bytes(b"partial")
    agent.save(tmp_path)
    states = sorted(path.name for path in tmp_path.glob("state-*.safetensors"))
    assert states == [json.loads((tmp_path / "checkpoint.json").read_text())["state_file"]]
    assert not list(tmp_path.glob(".*.tmp"))
    agent.close()


def test_a_run_without_a_checkpoint_resumes_from_the_start_but_does_not_load(tmp_path: Path) -> None:
    agent = Reinforce("CartPole-v1", seed=5, **SETTINGS).learn(300, run_dir=tmp_path / "full")
    (tmp_path / "early").mkdir()
    (tmp_path / "early" / "config.json").write_bytes((tmp_path / "full" / "config.json").read_bytes())
    with pytest.raises(ReinforceError, match="no checkpoint yet"):
        reinforce.load(tmp_path / "early")
    again = reinforce.resume(tmp_path / "early")
    assert again.num_updates == 0
    again.learn(300, run_dir=tmp_path / "early")
    assert_same_state(agent, again)
    agent.close()
    again.close()


def test_learning_into_another_runs_directory_is_refused(tmp_path: Path) -> None:
    Reinforce("CartPole-v1", seed=0, **SETTINGS).learn(200, run_dir=tmp_path).close()
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    with pytest.raises(ReinforceError, match="did not write"):
        Reinforce("CartPole-v1", seed=1, **SETTINGS).learn(200, run_dir=tmp_path)
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before


class Payload:
    """Unpickling this creates the marker file: the test fails if anything unpickles a checkpoint file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_loading_never_unpickles_a_planted_file(tmp_path: Path) -> None:
    run = tmp_path / "run"
    Reinforce("CartPole-v1", seed=0, **SETTINGS).learn(200, run_dir=run).close()
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(Payload(probe)))
    assert probe.exists()  # the payload does run code when unpickled
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"policy": Payload(marker)})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:  # the layout of a torch.save file
        archive.writestr("archive/data.pkl", payload)
    for name in ("policy.pt", "policy.pkl", "policy.safetensors", "model.bin"):
        (run / name).write_bytes(payload)
    state = run / json.loads((run / "checkpoint.json").read_text())["state_file"]
    for planted in (payload, buffer.getvalue()):
        state.write_bytes(planted)
        with pytest.raises(ReinforceError, match="SHA-256"):
            reinforce.load(run)
        document = json.loads((run / "checkpoint.json").read_text())
        document["state_sha256"] = hashlib.sha256(planted).hexdigest()
        (run / "checkpoint.json").write_text(json.dumps(document))
        with pytest.raises(ReinforceError, match="not a valid safetensors file"):
            reinforce.load(run)
        with pytest.raises(ReinforceError, match="not a valid safetensors file"):
            reinforce.resume(run)
    assert not marker.exists()


def test_tensorboard_scalars_have_the_metric_names(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    agent = Reinforce("CartPole-v1", seed=0, **SETTINGS).learn(300, run_dir=tmp_path, tensorboard=True)
    accumulator = EventAccumulator(str(tmp_path / "tensorboard"))
    accumulator.Reload()
    tags = set(accumulator.Tags()["scalars"])
    assert {"charts/episode_return_mean", "charts/episode_return_mean_100", "losses/policy_loss"} <= tags
    assert {"losses/entropy", "perf/steps_per_s"} <= tags and "update" not in tags
    steps = [event.step for event in accumulator.Scalars("charts/episode_return_mean")]
    assert len(steps) == agent.num_updates and steps[-1] == agent.num_env_steps
    agent.close()


@pytest.mark.parametrize(("name", "code"), [("SIGTERM", 143), ("SIGHUP", 129)])
def test_a_signal_finishes_the_update_saves_and_raises(tmp_path: Path, name: str, code: int) -> None:
    import signal

    number = getattr(signal, name)
    agent = Reinforce("CartPole-v1", seed=0, **SETTINGS)
    signal_after_update(agent, 3, number)
    previous = signal.getsignal(number)
    with pytest.raises(reinforce.TrainingInterrupted) as caught:
        agent.learn(100_000, run_dir=tmp_path, checkpoint_every=0)
    assert caught.value.exit_code == code and caught.value.update == 3 and str(tmp_path) in str(caught.value)
    assert signal.getsignal(number) is previous
    assert reinforce.load(tmp_path).num_updates == 3 and len(rows(tmp_path / "metrics.csv")) == 3
    agent.close()


def test_a_run_loads_while_its_training_commits_a_newer_checkpoint(tmp_path: Path, monkeypatch) -> None:
    from reinforce.run import checkpoint as trainer

    agent = Reinforce("CartPole-v1", seed=0, **SETTINGS).learn(200, run_dir=tmp_path)
    real_load_tensors = trainer.load_tensors
    calls: list[Path] = []

    def racing_load_tensors(path: Path, sha256: str | None = None) -> dict:
        if not calls:  # between reading checkpoint.json and its state file, training commits the next checkpoint
            agent.update()
            agent.save(tmp_path)
        calls.append(path)
        return real_load_tensors(path, sha256=sha256)

    monkeypatch.setattr(trainer, "load_tensors", racing_load_tensors)
    loaded = reinforce.load(tmp_path)
    assert len(calls) == 2 and calls[0] != calls[1] and not calls[0].exists()
    assert loaded.num_updates == agent.num_updates
    agent.close()
    loaded.close()


@pytest.mark.parametrize(("checkpoint_every", "saved"), [(2, 2), (0, None)])
def test_a_second_signal_abandons_the_update_and_keeps_the_last_checkpoint(
    tmp_path: Path, checkpoint_every: int, saved: int | None
) -> None:
    import signal

    agent = Reinforce("CartPole-v1", seed=0, **SETTINGS)
    signal_after_update(agent, 3, signal.SIGINT, signal.SIGINT)  # the second raises before update 3 is saved
    with pytest.raises(reinforce.TrainingInterrupted) as caught:
        agent.learn(100_000, run_dir=tmp_path, checkpoint_every=checkpoint_every)
    assert caught.value.exit_code == 130 and caught.value.update == saved
    assert [int(row["update"]) for row in rows(tmp_path / "metrics.csv")] == [1, 2]
    if saved is None:
        assert "before its first checkpoint" in str(caught.value) and not (tmp_path / "checkpoint.json").exists()
        assert reinforce.resume(tmp_path).num_updates == 0
    else:
        assert reinforce.load(tmp_path).num_updates == saved
    agent.close()


def test_metrics_with_foreign_columns_are_refused_and_left_alone(tmp_path: Path) -> None:
    from reinforce.run.metrics import trim_csv

    path = tmp_path / "metrics.csv"
    path.write_text("update,some_other_column\n1,2\n")
    with pytest.raises(ReinforceError, match="columns this version of reinforce does not write"):
        trim_csv(path, ("update", "env_steps"), 0)
    assert path.read_text() == "update,some_other_column\n1,2\n"
    path.write_text("upd")  # a header torn by a crash: started again
    trim_csv(path, ("update", "env_steps"), 0)
    assert path.read_text() == ""


def test_a_value_baseline_sharing_the_normalisation_statistics_checkpoints_resumes_and_loads(tmp_path: Path) -> None:
    settings = {"baseline": "value", "num_envs": 2, "hidden_sizes": (8,), "value_hidden_sizes": (8,)}
    first = Reinforce("Pendulum-v1", seed=0, **settings)
    assert first.config.normalize_observations  # shipped for Pendulum-v1
    first.learn(800, run_dir=tmp_path, checkpoint_every=1)
    first.close()
    resumed = reinforce.resume(tmp_path)
    resumed.learn(800, run_dir=tmp_path)
    uninterrupted = Reinforce("Pendulum-v1", seed=0, **settings).learn(1600)
    assert_same_state(uninterrupted, resumed)
    loaded = reinforce.load(tmp_path)
    # one set of statistics, stored once (under the policy) and read by both networks
    assert loaded.baseline.network.encoder is loaded.policy.encoder  # type: ignore[attr-defined]
    assert float(loaded.policy.encoder.obs_count) == float(uninterrupted.policy.encoder.obs_count) > 0
    for agent in (resumed, uninterrupted, loaded):
        agent.close()
