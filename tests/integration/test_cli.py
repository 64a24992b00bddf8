from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import one_line, run_cli, run_main, snapshot


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    result = run_cli(
        "train",
        "CartPole-v1",
        "--seed",
        "0",
        "--total-steps",
        "3000",
        "--num-envs",
        "4",
        "--hidden-sizes",
        "32",
        "--eval-episodes",
        "5",
        "--quiet",
        "--run-dir",
        root / "run",
        cwd=root,
    )
    assert result.returncode == 0, result.stderr
    assert "evaluation over 5 episodes" in result.stdout
    return root / "run"


def test_train_writes_a_complete_run_directory(trained_run: Path) -> None:
    names = {path.name for path in trained_run.iterdir()}
    checkpoint = json.loads((trained_run / "checkpoint.json").read_text())
    assert [name for name in names if name.startswith("state-")] == [checkpoint["state_file"]]
    assert {
        "config.json",
        "checkpoint.json",
        "metrics.csv",
        "episodes.csv",
        "curve.png",
        "evaluation.json",
    } <= names
    config = json.loads((trained_run / "config.json").read_text())
    assert config["env_id"] == "CartPole-v1" and config["seed"] == 0
    assert config["hyperparameters"]["num_envs"] == 4 and config["hyperparameters"]["hidden_sizes"] == [32]
    assert {"reinforce", "torch", "gymnasium"} <= set(config["versions"])
    header = (trained_run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {
        "env_steps",
        "episodes",
        "charts/episode_return_mean",
        "losses/policy_loss",
        "losses/entropy",
        "perf/steps_per_s",
        "wall_time_s",
    } <= set(header)
    assert (trained_run / "curve.png").read_bytes()[:4] == b"\x89PNG"


IMPORTED_AFTER = """
import sys
from reinforce.cli import main
before = sorted(name for name in ("torch", "matplotlib") if name in sys.modules)
try:
    main(sys.argv[1:])
except SystemExit as exit:
    assert exit.code == 0, exit.code
print(before, sorted(name for name in ("torch._dynamo", "matplotlib") if name in sys.modules))
"""


def test_the_train_command_imports_neither_torch_dynamo_nor_matplotlib(tmp_path: Path) -> None:
    """torch.optim's optimizer classes would import torch._dynamo (seconds); the curve is drawn by a child process."""
    args = ("train", "CartPole-v1", "--seed", "0", "--total-steps", "2000", "--num-envs", "4", "--quiet")
    settings = ("--baseline", "value", "--checkpoint-every", "1", "--run-dir", str(tmp_path / "run"))
    result = subprocess.run(
        [sys.executable, "-c", IMPORTED_AFTER, *args, *settings], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[] []"
    assert (tmp_path / "run" / "curve.png").read_bytes()[:4] == b"\x89PNG"


def test_eval_json(trained_run: Path) -> None:
    result = run_cli("eval", trained_run, "--episodes", "3", "--json", cwd=trained_run.parent)
    assert result.returncode == 0, result.stderr
    evaluation = json.loads(result.stdout)
    assert evaluation["episodes"] == 3 and evaluation["deterministic"] is True
    stochastic = run_cli("eval", trained_run, "--episodes", "3", "--stochastic", cwd=trained_run.parent)
    assert stochastic.returncode == 0 and "stochastic" in stochastic.stdout


def test_no_command_prints_the_help(tmp_path: Path) -> None:
    result = run_cli(cwd=tmp_path)
    assert result.returncode == 0 and "train" in result.stdout and "eval" in result.stdout


def test_run_directory_files_get_ordinary_permissions(trained_run: Path) -> None:
    modes = {path.name.split("-")[0]: path.stat().st_mode & 0o777 for path in trained_run.iterdir()}
    assert modes["config.json"] == modes["state"] == modes["metrics.csv"], modes


def test_plot_several_runs(trained_run: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(trained_run, other)
    out = tmp_path / "both.png"
    result = run_cli("plot", trained_run, other, "--out", out, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_saved_config_reproduces_the_run(trained_run: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    args = ("train", "--config", trained_run / "config.json", "--eval-episodes", "0", "--quiet", "--run-dir", again)
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (again / "episodes.csv").read_text() == (trained_run / "episodes.csv").read_text()


def test_config_prints_the_effective_settings_as_a_reusable_file(tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text("seed: 3\nhyperparameters:\n  lr: 1e-3\n  hidden_sizes: [16, 16]\n")
    result = run_cli("config", "CartPole-v1", "--config", "mine.yaml", "--gamma", "0.9", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    import yaml

    printed = yaml.safe_load(result.stdout)
    assert printed["env_id"] == "CartPole-v1" and printed["seed"] == 3 and printed["total_steps"] == 500_000
    assert printed["hyperparameters"]["lr"] == 1e-3 and printed["hyperparameters"]["hidden_sizes"] == [16, 16]
    assert printed["hyperparameters"]["gamma"] == 0.9 and printed["hyperparameters"]["num_envs"] == 32
    (tmp_path / "printed.yaml").write_text(result.stdout)
    again = run_cli("config", "--config", "printed.yaml", cwd=tmp_path)
    assert again.returncode == 0 and yaml.safe_load(again.stdout) == printed


def test_config_shows_the_shipped_values_under_the_flags(tmp_path: Path) -> None:
    import yaml

    result = run_cli("config", "Acrobot-v1", "--lr", "0.1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    hyperparameters = yaml.safe_load(result.stdout)["hyperparameters"]
    assert hyperparameters["lr"] == 0.1  # the flag
    assert hyperparameters["num_envs"] == 16 and hyperparameters["reward_threshold"] == -90  # hyperparams.yaml


MODULE = """
import gymnasium
import numpy as np


class Corridor(gymnasium.Env):
    def __init__(self, size=4):
        self.size = size
        self.observation_space = gymnasium.spaces.Box(0.0, 100.0, shape=(1,), dtype=np.float32)
        self.action_space = gymnasium.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.position = 0
        return np.array([0.0], dtype=np.float32), {}

    def step(self, action):
        self.position = max(0, self.position + (1 if int(action) == 1 else -1))
        return np.array([self.position], dtype=np.float32), -1.0, self.position >= self.size, False, {}


gymnasium.register("Corridor-v0", entry_point=Corridor, max_episode_steps=50)
"""


def test_a_module_in_the_current_directory_trains_with_env_kwargs(tmp_path: Path) -> None:
    (tmp_path / "my_corridor.py").write_text(MODULE)
    args = ["train", "my_corridor:Corridor-v0", "--env-kwargs", "size=3", "--total-steps", "300", "--quiet"]
    result = run_cli(*args, "--run-dir", "run", "--eval-episodes", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "run" / "config.json").read_text())["env"]
    assert record["id"] == "my_corridor:Corridor-v0" and record["kwargs"] == {"size": 3}
    # python -m reinforce is the same command
    again = subprocess.run(
        [sys.executable, "-m", "reinforce", "eval", "run", "--episodes", "2", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr
    assert max(json.loads(again.stdout)["returns"]) <= -3  # at least 3 steps of -1 with size=3


def test_nan_rewards_end_training_with_one_line_naming_the_env(tmp_path: Path) -> None:
    result = run_cli("train", "toy_envs:toy/NanReward-v0", "--quiet", "--run-dir", tmp_path / "run", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("reinforce: error: environment toy/NanReward-v0 returned non-finite rewards")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()  # a new run that fails before its first checkpoint leaves nothing


def test_a_population_whose_env_fails_at_once_ends_with_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    """As a single run: every member stopped by the env before an update is one error line, exit 2, no files."""
    args = ("train", "toy_envs:toy/NanReward-v0", "--seeds", "0,1", "--quiet", "--run-dir")
    result = run_cli(*args, tmp_path / "run", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("reinforce: error: environment toy/NanReward-v0 returned non-finite rewards")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()
    (tmp_path / "mine").mkdir()  # an empty --run-dir the user made stays, empty
    assert run_cli(*args, tmp_path / "mine", cwd=tmp_path).returncode == 2
    assert list((tmp_path / "mine").iterdir()) == []


BAD_INPUTS = [
    (["train", "NoSuchEnv-v0", "--quiet"], "unknown environment"),
    (["train", "CartPole-v1", "--gamma", "1.5"], "gamma"),
    (["train", "CartPole-v1", "--gamma", "abc"], "gamma"),
    (["train", "CartPole-v1", "--lr", "0"], "lr"),
    (["train", "CartPole-v1", "--num-envs", "0"], "--num-envs"),
    (["train", "CartPole-v1", "--total-steps", "-5"], "total-steps"),
    (["train", "CartPole-v1", "--optimizer", "adamw"], "optimizer"),
    (["train", "CartPole-v1", "--hidden-sizes", "64,x"], "hidden-sizes"),
    (["train", "CartPole-v1", "--run-dir", "{run}"], "already exists"),
    (["train", "toy_envs:toy/TextAction-v0", "--quiet"], "unsupported action space"),
    (["train", ".relative:X-v0", "--quiet"], "cannot import"),
    (["train", ":CartPole-v1", "--quiet"], "has nothing before ':'"),
    (["train", "CartPole-v1", "--env-kwargs", "size", "--quiet"], "--env-kwargs 'size' is not KEY=VALUE"),
    (["train", "CartPole-v1", "--env-kwargs", "no_such=1", "--quiet"], "cannot make CartPole-v1 with --env-kwargs"),
    (["train", "--resume", "{run}", "--env-kwargs", "a=1"], "--env-kwargs cannot change"),
    (["train", "toy_envs:toy/DictAction-v0", "--quiet"], "unsupported action space Dict"),
    (["train", "Pendulum-v1", "--action-squash", "squish"], "action-squash"),
    (["train", "Pendulum-v1", "--log-std-init", "3", "--quiet"], "--log-std-init"),
    (["train", "toy_envs:toy/Spaces-image-discrete-v0", "--normalize-observations", "-q"], "--normalize-observations"),
    (["train", "CartPole-v1", "--device", "meta", "--quiet"], "device"),
    (["train", "CartPole-v1", "--num-threads", "100000", "--quiet"], "--num-threads"),
    (["train", "CartPole-v1", "--seed", "100000000000000000000000"], "seed"),
    (["train", "CartPole-v1", "--quiet", "--run-dir", "{run}/config.json/sub"], "cannot create run directory"),
    (["train", "CartPole-v1", "--quiet", "--run-dir", "/dev/null"], "already exists"),
    (["train", "--config", "missing.yaml"], "does not exist"),
    (["train", "--config", "{bad_yaml}"], "not valid YAML"),
    (["train", "--config", "{run}/config.json", "Acrobot-v1"], "is for CartPole-v1"),
    (["train", "--quiet"], "no environment given"),
    (["config", "CartPole-v1", "--config", "{unknown_key}"], "unknown key(s) learning_rate"),
    (["config", "CartPole-v1", "--config", "{bad_value}"], "invalid gamma=2"),
    (["config", "NoSuchEnv-v0"], "unknown environment"),
    (["train", "CartPole-v1", "--preset", "fast"], "unknown preset 'fast'"),
    (["config", "Acrobot-v1", "--preset", "sample-efficient"], "no values for Acrobot-v1"),
    (["fly"], "No such command"),
    (["eval", "missing-dir"], "does not exist"),
    (["eval", "{run}/config.json"], "is not a directory"),
    (["eval", "{damaged}"], "not valid JSON"),
    (["eval", "{damaged}"], "the run directory is damaged; restore the file or start a new run"),
    (["eval", "{run}", "--episodes", "0"], "episodes"),
    (["eval", "{run}", "--device", "bogus"], "invalid --device 'bogus'"),
    (["plot", "missing-dir"], "does not exist"),
    (["plot", "{run}", "--out", "curve.txt"], ".png"),
    (["plot", "{run}", "--out", "{run}/config.json/x.png"], "cannot write"),
    (["plot", "{run}", "--x", "episodes"], "--x"),
    (["plot", "{run}", "{no_metrics}"], "metrics.csv is missing"),
    (["train", "--resume", "missing-dir"], "does not exist"),
    (["train", "--resume", "{run}/config.json"], "is not a directory"),
    (["train", "--resume", "{empty}"], "config.json is missing"),
    (["train", "--resume", "{run}", "--lr", "0.1"], "--lr cannot change"),
    (["train", "--resume", "{run}", "--seed", "3", "--no-stop-on-solve"], "--seed, --no-stop-on-solve"),
    (["train", "CartPole-v1", "--resume", "{run}"], "ENV_ID cannot change"),
    (["train", "--resume", "{run}", "--run-dir", "elsewhere"], "--run-dir cannot change"),
    (["train", "--resume", "{run}", "--config", "{bad_value}"], "--config cannot change"),
    (["train", "--resume", "{run}", "--checkpoint-every", "-1"], "checkpoint-every"),
    (["train", "--resume", "{run}", "--device", "bogus"], "invalid --device 'bogus'"),
    (["train", "--resume", "{damaged}"], "not valid JSON"),
    (["train", "--resume", "{truncated}"], "SHA-256"),
    (["train", "--resume", "{bad_optimizer}"], "invalid 'betas'"),
    (["train", "--resume", "{bad_checkpoint}"], "num_episodes"),
    (["eval", "{no_checkpoint}"], "no checkpoint yet"),
    (["eval", "{pickled}"], "not a valid safetensors file"),
    (["eval", "{bad_rng}"], "rng.torch"),
    (["eval", "{run}", "--video", "out.avi"], ".mp4 or .gif"),
    (["eval", "{run}", "--video", "{run}/config.json/x.gif"], "cannot write"),
    (["eval", "{run}", "--video", "out"], ".mp4 or .gif"),
    (["--log-level", "loud", "eval", "{run}"], "log-level"),
    (["train", "CartPole-v1", "--workers", "2", "--quiet"], "set --backend ray"),
    (["train", "CartPole-v1", "--envs-per-worker", "4", "--quiet"], "set --backend ray"),
    (["train", "CartPole-v1", "--backend", "ray", "--envs-per-worker", "0"], "--envs-per-worker"),
    (["train", "CartPole-v1", "--backend", "ray", "--workers", "40"], "must not exceed the episodes per update"),
    (
        ["train", "CartPole-v1", "--address", "auto", "--quiet"],
        "a Ray address is for Ray rollouts only: set --backend ray, or drop --address",
    ),
    (
        ["train", "--resume", "{run}", "--address", "auto"],
        "a Ray address is for Ray rollouts only: set --backend ray, or drop --address",
    ),
    (["train", "CartPole-v1", "--backend", "ray", "--address", "127.0.0.1:1", "-q"], "no Ray cluster answers"),
    (["train", "CartPole-v1", "--backend", "ray", "--address", "head-node", "-q"], "invalid Ray address"),
    (
        ["train", "CartPole-v1", "--backend", "ray", "--workers", "4096", "--episodes-per-update", "4096", "-q"],
        "--workers 4096 needs 4096 CPUs",
    ),
    (["sweep", "CartPole-v1", "--grid", "lrr=0.1"], "unknown hyperparameter 'lrr' in --grid"),
    (["sweep", "CartPole-v1", "--grid", "lr=0.1,x"], "invalid --grid value lr='x'"),
    (["sweep", "CartPole-v1", "--grid", "lr="], "'' is not a valid float; give each value as --lr takes it"),
    (["sweep", "CartPole-v1", "--grid", "gamma=0.9,1.5"], "grid setting gamma=1.5: invalid gamma=1.5"),
    (["sweep", "CartPole-v1", "--seeds", "0-x"], "invalid --seeds '0-x'"),
    (["sweep", "CartPole-v1", "--lr", "0.1", "--grid", "lr=0.2"], "lr is given both as --lr and in --grid"),
    (["sweep", "CartPole-v1", "--out", "{run}"], "not a sweep directory"),
    (["sweep", "CartPole-v1", "--backend", "ray"], "sweep trials train locally"),
    (["sweep", "CartPole-v1", "--workers", "2"], "so workers cannot be set"),
    (["sweep", "CartPole-v1", "--grid", "backend=local,ray"], "sweep trials train locally"),
    (["train", "CartPole-v1", "--num-envs", "100000000", "-q"], "--num-envs"),
    (["train", "CartPole-v1", "--hidden-sizes", "1000000000", "-q"], "--hidden-sizes"),
    (["train", "CartPole-v1", "--episodes-per-update", "100000000000", "-q"], "--episodes-per-update"),
    (["eval", "{huge_config}"], "invalid num_envs=100000000"),
    (["train", "--config", "{alias_bomb}", "-q"], "uses an anchor or alias"),
    (["train", "--config", "{deep_yaml}", "-q"], "nests deeper than 64 levels"),
    (["config", "CartPole-v1", "--config", "{repeated_key}"], "has the key 'lr' twice"),
    (["train", "--resume", "{negative_lr}"], "invalid 'lr'"),
    (["train", "--resume", "{negative_mean_square}"], "negative values in optimizer.policy.state.0.exp_avg_sq"),
    (["eval", "{nan_weights}"], "holds non-finite values in module.policy."),
    (["sweep", "CartPole-v1", "--seeds", "0-4294967295"], "at most 10000 seeds"),
    (["train", "CartPole-v1", "--seeds", "0-4294967295"], "at most 10000 seeds are taken at once; split them"),
    (["train", "--resume", "{repeated_row}", "--total-steps", "9000"], "has update 1 after update 1"),
    (["eval", "{linked_state}"], "outside the run directory"),
    (["eval", "{unknown_env}"], "cannot evaluate {unknown_env} here: unknown environment 'NoSuchEnv-v3'"),
    (["eval", "{unknown_env}", "--video", "out.gif"], "cannot evaluate {unknown_env} here: unknown environment"),
    (["train", "--resume", "{unknown_env}"], "cannot resume {unknown_env} here: unknown environment 'NoSuchEnv-v3'"),
]


class Payload:
    """Unpickling this creates the file `pwned`: the snapshot check fails if anything unpickles a planted file."""

    def __reduce__(self):
        return (open, ("pwned", "w"))


def checkpoint_document(run: Path) -> dict:
    return json.loads((run / "checkpoint.json").read_text())


def write_checkpoint(run: Path, document: dict) -> None:
    (run / "checkpoint.json").write_text(json.dumps(document))


def state_file(run: Path) -> Path:
    return run / checkpoint_document(run)["state_file"]


def damage_config(run: Path) -> None:
    (run / "config.json").write_text("{oops")


def truncate_state(run: Path) -> None:
    state_file(run).write_bytes(state_file(run).read_bytes()[:-100])


def plant_pickle(run: Path) -> None:
    import hashlib
    import pickle

    payload = pickle.dumps({"policy": Payload()})
    state_file(run).write_bytes(payload)
    (run / "policy.pt").write_bytes(payload)
    write_checkpoint(run, {**checkpoint_document(run), "state_sha256": hashlib.sha256(payload).hexdigest()})


def damage_optimizer(run: Path) -> None:
    document = checkpoint_document(run)
    document["optimizers"]["policy"]["param_groups"][0]["betas"] = "fast"
    write_checkpoint(run, document)


def damage_counter(run: Path) -> None:
    write_checkpoint(run, {**checkpoint_document(run), "num_episodes": 1.5})


def damage_rng(run: Path) -> None:
    import hashlib

    from safetensors.torch import load_file, save

    tensors = load_file(state_file(run))
    tensors["rng.torch"] = tensors["rng.torch"][:10]
    data = save(tensors)
    state_file(run).write_bytes(data)
    write_checkpoint(run, {**checkpoint_document(run), "state_sha256": hashlib.sha256(data).hexdigest()})


def huge_config(run: Path) -> None:
    document = json.loads((run / "config.json").read_text())
    document["hyperparameters"]["num_envs"] = 100_000_000
    (run / "config.json").write_text(json.dumps(document))


def negative_lr(run: Path) -> None:
    document = checkpoint_document(run)
    document["optimizers"]["policy"]["param_groups"][0]["lr"] = -0.03
    write_checkpoint(run, document)


def rewrite_tensor(run: Path, prefix: str, value: float) -> None:
    import hashlib

    from safetensors.torch import load_file, save

    tensors = load_file(state_file(run))
    next(tensor for key, tensor in tensors.items() if key.startswith(prefix)).fill_(value)
    data = save(tensors)
    state_file(run).write_bytes(data)
    write_checkpoint(run, {**checkpoint_document(run), "state_sha256": hashlib.sha256(data).hexdigest()})


def remove_checkpoint(run: Path) -> None:
    state_file(run).unlink()
    (run / "checkpoint.json").unlink()


def repeat_first_row(run: Path) -> None:
    lines = (run / "metrics.csv").read_text().splitlines(keepends=True)
    (run / "metrics.csv").write_text("".join([lines[0], lines[1], *lines[1:]]))


def link_state_outside(run: Path) -> None:
    outside = run.parent / f"{run.name}-elsewhere.safetensors"
    state_file(run).rename(outside)
    state_file(run).symlink_to(outside)


def name_unknown_env(run: Path) -> None:
    document = json.loads((run / "config.json").read_text())
    document["env_id"] = document["env"]["name"] = document["env"]["id"] = "NoSuchEnv-v3"
    (run / "config.json").write_text(json.dumps(document))


DAMAGED_RUNS = {
    "damaged": damage_config,
    "truncated": truncate_state,
    "pickled": plant_pickle,
    "bad_optimizer": damage_optimizer,
    "bad_checkpoint": damage_counter,
    "bad_rng": damage_rng,
    "no_checkpoint": remove_checkpoint,
    "huge_config": huge_config,
    "negative_lr": negative_lr,
    "negative_mean_square": lambda run: rewrite_tensor(run, "optimizer.policy.state.0.exp_avg_sq", -1.0),
    "nan_weights": lambda run: rewrite_tensor(run, "module.policy.", float("nan")),
    "no_metrics": lambda run: (run / "metrics.csv").unlink(),
    "repeated_row": repeat_first_row,
    "linked_state": link_state_outside,
    "unknown_env": name_unknown_env,
}


@pytest.mark.parametrize(("args", "message"), BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_gets_one_line_exit_2_and_changes_nothing(
    trained_run: Path,
    tmp_path: Path,
    args: list[str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    runs = {}
    for name, damage in DAMAGED_RUNS.items():
        if any(f"{{{name}}}" in arg for arg in args):
            runs[name] = tmp_path / name
            shutil.copytree(trained_run, runs[name])
            damage(runs[name])
    (tmp_path / "empty").mkdir()
    files = {
        "bad_yaml": "hyperparameters: [unclosed",
        "unknown_key": "learning_rate: 0.1",
        "bad_value": "hyperparameters: {gamma: 2}",
        "alias_bomb": "a: &a [x, x, x, x, x, x, x, x, x]\n"
        + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)),
        "deep_yaml": "[" * 100_000,
        "repeated_key": "hyperparameters:\n  lr: 0.1\n  lr: 0.2\n",
    }
    for name, text in files.items():
        (tmp_path / f"{name}.yaml").write_text(text)
    before = snapshot(tmp_path)
    names = {name: tmp_path / f"{name}.yaml" for name in files}
    command = [arg.format(run=run, empty=tmp_path / "empty", **runs, **names) for arg in args]
    if "--address" in args or "ray" in args:
        result = run_cli(*command, cwd=tmp_path)  # Ray may start: in a process of its own
    else:  # the same main() in this process: what a subprocess gives, without importing torch again
        result = run_main(*command, cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("reinforce: error: ") and message.format(**runs) in lines[0]
    assert "Traceback" not in result.stderr
    assert snapshot(tmp_path) == before


def test_default_run_directories_never_collide(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from reinforce.cli import claim_run_dir

    monkeypatch.chdir(tmp_path)
    first = claim_run_dir("CartPole-v1", 3)
    assert first.parent == Path("runs") and first.name.startswith("CartPole-v1-seed3-") and first.is_dir()
    second = claim_run_dir("CartPole-v1", 3)
    assert second != first and second.name.startswith(first.name) and second.is_dir()
    assert "/" not in claim_run_dir("toy_envs:toy/Counting-v0", None).name


def test_an_os_error_is_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from reinforce import cli

    def full_disk(**kwargs: object) -> None:
        raise OSError(28, "No space left on device", "runs/x/metrics.csv")

    monkeypatch.setattr(cli.cli, "main", full_disk)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "CartPole-v1"])
    assert exit_info.value.code == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("reinforce: error: runs/x/metrics.csv: No space left on device: check the path")


class InterruptedImport:
    """Stands for `reinforce.cli.entry` in sys.modules: importing from it is Ctrl-C during start-up."""

    def __getattr__(self, name: str) -> object:
        raise KeyboardInterrupt


@pytest.mark.parametrize("moment", ["importing the commands", "importing torch"])
def test_ctrl_c_before_training_starts_is_one_line_and_exit_130(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], moment: str
) -> None:
    from reinforce import cli
    from reinforce.cli import train

    def interrupt(*modules: str) -> None:
        raise KeyboardInterrupt

    if moment == "importing the commands":
        monkeypatch.setitem(sys.modules, "reinforce.cli.entry", InterruptedImport())
    else:
        monkeypatch.setattr(train, "import_long_lived", interrupt)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "CartPole-v1", "--quiet"])
    assert exit_info.value.code == 130
    assert capsys.readouterr().err == "reinforce: interrupted by Ctrl-C\n"
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize(("args", "written"), [(["--x", "time"], "run/curve-time.png"), ([], "run/curve.png")])
def test_plot_of_one_run_against_time_keeps_its_curve_png(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str], written: str
) -> None:
    from reinforce import Reinforce, cli

    run = tmp_path / "run"
    Reinforce("toy_envs:toy/Counting-v0", seed=0, num_envs=2, hidden_sizes=(4,)).learn(40, run_dir=run).close()
    (run / "curve.png").write_bytes(b"the run's own figure")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["plot", "run", *args])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"wrote {written}\n"
    assert (tmp_path / written).read_bytes()[:4] == b"\x89PNG"
    if args:
        assert (run / "curve.png").read_bytes() == b"the run's own figure"


@pytest.mark.parametrize(
    "args", [["other", "--out", "run/curve.png"], ["run", "--x", "time", "--out", "run/curve.png"]]
)
def test_plot_never_replaces_a_runs_curve_with_another_figure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    from reinforce import Reinforce, cli

    for name in ("run", "other"):
        Reinforce("toy_envs:toy/Counting-v0", seed=0, num_envs=2, hidden_sizes=(4,)).learn(40, run_dir=tmp_path / name)
    (tmp_path / "run" / "curve.png").write_bytes(b"the run's own figure")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["plot", *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write run/curve.png: it is the curve of the run in run" in err
    assert (tmp_path / "run" / "curve.png").read_bytes() == b"the run's own figure"


@pytest.mark.parametrize("args", [["run", "run"], ["run", "other", "./run/"], ["pop", "pop/seed-1"]])
def test_plot_refuses_a_run_given_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    from reinforce import Reinforce, cli

    for name in ("run", "other"):
        Reinforce("toy_envs:toy/Counting-v0", seed=0, num_envs=2, hidden_sizes=(4,)).learn(40, run_dir=tmp_path / name)
    if "pop" in args:
        from reinforce import Population

        population = Population("toy_envs:toy/Counting-v0", [0, 1], num_envs=2, hidden_sizes=(4,))
        population.learn(40, run_dir=tmp_path / "pop")
        population.close()
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["plot", *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is given twice" in err and "give each run once" in err
    assert snapshot(tmp_path) == before


def test_the_evaluation_line_counts_one_episode_as_one() -> None:
    from reinforce.cli.runs import evaluation_line

    evaluation = {"deterministic": True, "mean_return": 9.0, "std_return": 0.0, "min_return": 9.0}
    evaluation |= {"max_return": 9.0, "mean_length": 9.0}
    assert evaluation_line({**evaluation, "episodes": 1}).startswith("evaluation over 1 episode (deterministic)")
    assert evaluation_line({**evaluation, "episodes": 2}).startswith("evaluation over 2 episodes (deterministic)")


SECTIONED_COMMANDS = ("train", "config", "sweep")


def test_every_option_is_in_exactly_one_help_section() -> None:
    """A new option needs its line in OPTION_SECTIONS; one that is gone must leave it."""
    import click
    from click.testing import CliRunner

    from reinforce.cli import cli
    from reinforce.cli.sections import (
        COMMAND_SECTIONS,
        OPTION_SECTIONS,
        SECTIONS,
        SectionedCommand,
        option_section,
        section_key,
    )

    assert set(OPTION_SECTIONS.values()) | set(COMMAND_SECTIONS.values()) <= set(SECTIONS)
    used = set()
    for name in SECTIONED_COMMANDS:
        command = cli.commands[name]
        assert isinstance(command, SectionedCommand), name
        ctx = click.Context(command, info_name=name)
        options = [param for param in command.get_params(ctx) if isinstance(param, click.Option)]
        missing = [section_key(option) for option in options if section_key(option) not in OPTION_SECTIONS]
        assert not missing, f"reinforce {name}: add {missing} to OPTION_SECTIONS in src/reinforce/cli/sections.py"
        used |= {section_key(option) for option in options}
        help_text = CliRunner().invoke(cli, [name, "--help"], prog_name="reinforce").output
        heading = None
        seen: dict[str, str] = {}
        for line in help_text.splitlines():
            if line.endswith(":") and not line.startswith(" "):
                heading = line[:-1]
            flags = line.strip().split(" ")[0].rstrip(",")
            if line.startswith("  -") and heading is not None:
                option = next(option for option in options if flags in option.opts)
                assert section_key(option) not in seen, f"{flags} listed twice"
                seen[section_key(option)] = heading
        assert seen == {section_key(option): option_section(option, name) for option in options}, name
    stale = OPTION_SECTIONS.keys() - used
    assert not stale, f"OPTION_SECTIONS names options that no command has: {stale}"
    train_help = CliRunner().invoke(cli, ["train", "--help"], prog_name="reinforce").output
    assert "Sweep options" not in train_help  # train's --seeds is a run option


def test_one_style_writes_each_default_once_at_the_end() -> None:
    from reinforce.cli.sections import one_style

    assert one_style("Episodes per update (default: ``num_envs``; at most 10**7).") == (
        "Episodes per update (at most 10**7). [default: num_envs]"
    )
    assert one_style("Clip to this norm (default: no clipping).") == "Clip to this norm. [default: no clipping]"
    assert one_style("Workers (ray; default: 2; at most 9).") == "Workers (ray; at most 9). [default: 2]"
    assert one_style("Budget [default: 5].  [x>=0]") == "Budget [default: 5; x>=0]"
    assert one_style("Evaluation episodes.  [default: 100; x>=0]") == "Evaluation episodes. [default: 100; x>=0]"
    assert one_style("Discount in [0, 1]. [default: 0.99]") == "Discount in [0, 1]. [default: 0.99]"


LIGHT_IMPORTS = """
import sys
import reinforce.cli
light = sorted(name for name in ("click", "numpy", "torch") if name in sys.modules)
try:
    reinforce.cli.main(["train", "--help"])
except SystemExit as exit:
    assert exit.code == 0, exit.code
print(light, "torch" in sys.modules)
"""


def test_reinforce_cli_imports_nothing_heavy_and_train_help_no_torch() -> None:
    """A Ctrl-C while `reinforce` starts is caught only after `reinforce.cli` is imported: it must be light."""
    result = subprocess.run([sys.executable, "-c", LIGHT_IMPORTS], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[] False"
    assert "Algorithm options:" in result.stdout


def test_a_used_run_dir_is_refused_with_the_flags_that_continue_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("mine")
    single = run_main("train", "CartPole-v1", "--run-dir", used, cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys)
    population = run_main(
        "train",
        "CartPole-v1",
        "--seeds",
        "0-1",
        "--run-dir",
        used,
        cwd=tmp_path,
        monkeypatch=monkeypatch,
        capsys=capsys,
    )
    assert single.returncode == population.returncode == 2
    assert one_line(single.stderr).endswith(f"or continue it with --resume {used}")
    assert one_line(population.stderr).endswith(f"or continue it with --seeds 0-1 --resume {used}")
    assert sorted(path.name for path in used.iterdir()) == ["notes.txt"]
    assert (used / "notes.txt").read_text() == "mine"
