"""Exported policies (TorchScript and ONNX) act as `predict(..., deterministic=True)`, loaded without reinforce."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from cli_support import run_cli, snapshot
from torch import nn
from torch.distributions import Categorical
from toy_envs import ACTION_SPACES, OBSERVATION_SPACES

import reinforce
from reinforce import Reinforce, ReinforceError, export_policy
from reinforce.cli import main

ACTION_CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "discrete": ("toy/Spaces-box-discrete-v0", {}),  # Discrete(3, start=-1)
    "multidiscrete": ("toy/Spaces-box-multidiscrete-v0", {}),  # start [1, -1]
    "multibinary": ("toy/Spaces-box-multibinary-v0", {}),
    "box-clip": ("toy/Spaces-box-box-v0", {"action_squash": "clip", "log_std": "state_dependent"}),
    "box-tanh": ("toy/Spaces-box-box-v0", {"action_squash": "tanh"}),
}
CASES = [f"{action}-{norm}" for action in ACTION_CASES for norm in ("plain", "normalized")]
NUM_OBSERVATIONS = 1000

# Loads every exported file with reinforce out of reach (an import of it fails) and writes their actions.
LOAD_WITHOUT_REINFORCE = """
import json, sys
from pathlib import Path
sys.modules["reinforce"] = None
sys.path = [entry for entry in sys.path if not (Path(entry) / "reinforce").exists()]
import numpy as np, onnxruntime, torch
root = Path(sys.argv[1])
observations = np.load(root / "observations.npy")
descriptions = {}
for file in sorted(root.glob("*.pt")):
    extra = {"reinforce.json": ""}
    policy = torch.jit.load(str(file), _extra_files=extra)
    with torch.no_grad():
        np.save(root / f"{file.name}.npy", policy(torch.from_numpy(observations)).numpy())
        np.save(root / f"{file.name}.one.npy", policy(torch.from_numpy(observations[:1])).numpy())
    descriptions[file.name] = json.loads(extra["reinforce.json"])
for file in sorted(root.glob("*.onnx")):
    session = onnxruntime.InferenceSession(str(file), providers=["CPUExecutionProvider"])
    (name,) = [node.name for node in session.get_inputs()]
    np.save(root / f"{file.name}.npy", session.run(None, {name: observations})[0])
    np.save(root / f"{file.name}.one.npy", session.run(None, {name: observations[:1]})[0])
    descriptions[file.name] = json.loads(session.get_modelmeta().custom_metadata_map["reinforce"])
assert not [name for name, module in sys.modules.items() if name.startswith("reinforce") and module is not None]
(root / "descriptions.json").write_text(json.dumps(descriptions))
"""


def assert_same_actions(actions: np.ndarray, expected: np.ndarray) -> None:
    """Equal integer actions; float32 Box actions equal up to float rounding (matrix products in another order)."""
    assert actions.shape == expected.shape
    if expected.dtype.kind == "f":
        assert actions.dtype == np.float32
        np.testing.assert_allclose(actions, expected, rtol=1e-5, atol=1e-6)
    else:
        assert actions.dtype == np.int64
        np.testing.assert_array_equal(actions, expected)


def deterministic_actions(agent: Reinforce, observations: np.ndarray) -> np.ndarray:
    """`predict`'s actions, whether it returns them alone or SB3-style as ``(actions, state)``."""
    result = agent.predict(observations, deterministic=True)
    return np.asarray(result[0] if isinstance(result, tuple) else result)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every case exported in both formats, `predict`'s actions, and what a process without reinforce computed."""
    root = tmp_path_factory.mktemp("export")
    rng = np.random.default_rng(0)
    observations = rng.normal(0.0, 3.0, size=(NUM_OBSERVATIONS, 3)).astype(np.float32)
    np.save(root / "observations.npy", observations)
    expected, unnormalized = {}, {}
    for case in CASES:
        action, _, norm = case.rpartition("-")
        env_id, hyperparameters = ACTION_CASES[action]
        normalized = norm == "normalized"
        agent = Reinforce(
            env_id, seed=0, num_envs=1, hidden_sizes=(16,), normalize_observations=normalized, **hyperparameters
        )
        if normalized:
            unnormalized[case] = deterministic_actions(agent, observations)
            agent.policy.encoder.update_normalization(torch.as_tensor(rng.normal(2.0, 0.5, size=(64, 3))))
        expected[case] = deterministic_actions(agent, observations)
        assert export_policy(agent, root / f"{case}.pt") == root / f"{case}.pt"
        export_policy(agent, root / f"{case}.onnx", format="onnx")
        assert agent.policy.training and all(p.requires_grad for p in agent.policy.parameters())  # a copy was traced
        agent.close()
    result = subprocess.run(
        [sys.executable, "-I", "-c", LOAD_WITHOUT_REINFORCE, str(root)], cwd=root, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    descriptions = json.loads((root / "descriptions.json").read_text())
    return {"root": root, "expected": expected, "unnormalized": unnormalized, "descriptions": descriptions}


@pytest.mark.parametrize("file_format", ["pt", "onnx"])
@pytest.mark.parametrize("case", CASES)
def test_an_exported_policy_acts_as_predict_without_reinforce(
    exported: dict[str, Any], case: str, file_format: str
) -> None:
    root, expected = exported["root"], exported["expected"][case]
    actions = np.load(root / f"{case}.{file_format}.npy")
    assert expected.shape == (NUM_OBSERVATIONS, *ACTION_SPACES[case.split("-")[0]].shape)
    assert_same_actions(actions, expected)
    assert_same_actions(np.load(root / f"{case}.{file_format}.one.npy"), expected[:1])  # any batch size
    description = exported["descriptions"][f"{case}.{file_format}"]
    assert description["env_id"] == ACTION_CASES[case.rpartition("-")[0]][0]
    assert description["input"] == "observations" and description["output"] == "actions"


@pytest.mark.parametrize("case", CASES)
def test_the_cases_exercise_what_they_claim(exported: dict[str, Any], case: str) -> None:
    """Varied actions, clipped and unclipped Box actions, and normalisation that changes the actions."""
    expected = exported["expected"][case]
    assert len(np.unique(expected.reshape(NUM_OBSERVATIONS, -1), axis=0)) > 1
    space = ACTION_SPACES[case.split("-")[0]]
    if case.startswith("box-clip"):
        at_bounds = (expected == space.low) | (expected == space.high)
        assert at_bounds.any() and not at_bounds.all()
    if case.startswith("box-tanh"):
        assert (expected > space.low).all() and (expected < space.high).all()
    if case.endswith("normalized"):
        assert not np.array_equal(exported["unnormalized"][case], expected)


def test_the_export_command_writes_the_runs_policy(tmp_path: Path) -> None:
    agent = Reinforce("toy_envs:toy/Spaces-discrete-multidiscrete-v0", seed=0, num_envs=2, hidden_sizes=(8,))
    agent.update()
    agent.save(tmp_path / "run")
    agent.close()
    result = run_cli("export", tmp_path / "run", "--format", "onnx", "--out", tmp_path / "policy.onnx", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote {tmp_path / 'policy.onnx'} (onnx)"
    import onnxruntime

    observations = np.arange(2, 6, dtype=np.float32)  # the Discrete(4, start=2) observations
    session = onnxruntime.InferenceSession(tmp_path / "policy.onnx", providers=["CPUExecutionProvider"])
    loaded = reinforce.load(tmp_path / "run")
    np.testing.assert_array_equal(
        session.run(None, {"observations": observations})[0], deterministic_actions(loaded, observations)
    )
    loaded.close()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    for name, env_id in (("run", "toy_envs:toy/Spaces-box-discrete-v0"), ("dict", "toy_envs:toy/Spaces-dict-box-v0")):
        agent = Reinforce(env_id, seed=0, num_envs=1, hidden_sizes=(4,))
        agent.save(root / name)
        agent.close()
    return root


BAD_INPUTS = [
    (["{runs}/missing", "--out", "{out}"], "run directory {runs}/missing does not exist"),
    (["{runs}/run", "--format", "tflite", "--out", "{out}"], "unknown --format tflite: give --format torchscript"),
    (["{runs}/run", "--format", "onnx", "--out", "{out}", "[no onnx]"], "pip install 'reinforce[export]'"),
    (["{runs}/run", "--out", "{tmp}/missing/policy.pt"], "{tmp}/missing does not exist"),
    (["{runs}/run", "--out", "{out}/policy.pt"], "{out} is not a directory"),
    (["{runs}/run", "--out", "{tmp}"], "is a directory"),
    (["{runs}/run"], "Missing option '--out'"),
    (["{runs}/dict", "--out", "{out}"], "cannot export a policy for the observation space Dict"),
    (["{runs}/run/config.json", "--out", "{out}"], "is not a directory"),
    (["{runs}/run", "--out", "{runs}/run/config.json"], "config.json: it is one of the files of the run directory"),
    (["{runs}/run", "--out", "{runs}/run/metrics.csv"], "metrics.csv: it is one of the files of the run directory"),
    (
        ["{runs}/run", "--out", "{tmp}/policy.ONNX"],
        "cannot write {tmp}/policy.ONNX as --format torchscript: .ONNX is the suffix of onnx files, and onnx's "
        "loaders cannot read this one; give --format onnx, or a file name ending in .pt",
    ),
    (
        ["{runs}/run", "--format", "onnx", "--out", "{out}"],
        "cannot write {out} as --format onnx: .pt is the suffix of torchscript files, and torchscript's loaders "
        "cannot read this one; give --format torchscript, or a file name ending in .onnx",
    ),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUTS, ids=[" ".join(args) for args, _ in BAD_INPUTS])
def test_bad_export_input_gets_one_line_exit_2_and_changes_nothing(
    runs: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    out = tmp_path / "policy.pt"
    out.write_bytes(b"an earlier export")
    names = {"runs": runs, "out": out, "tmp": tmp_path}
    if "[no onnx]" in args:
        monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
        args = [arg for arg in args if arg != "[no onnx]"]
    # in this process, not the CLI's own: no gc.freeze of the test session's objects
    monkeypatch.setattr("reinforce.cli.export.import_long_lived", lambda *modules: None)
    before = snapshot(tmp_path), snapshot(runs)
    with pytest.raises(SystemExit) as exit_info:
        main(["export", *(arg.format(**names) for arg in args)])
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("reinforce: error: ") and message.format(**names) in line
    assert (snapshot(tmp_path), snapshot(runs)) == before


def test_export_onto_a_pipe_or_a_link_to_one_is_refused_and_leaves_it(
    runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # a rename onto a device or a pipe replaces it with a file: as root, `--out /dev/null` replaced /dev/null
    pipe = tmp_path / "pipe.pt"
    os.mkfifo(pipe)
    (tmp_path / "link.pt").symlink_to(pipe)
    monkeypatch.setattr("reinforce.cli.export.import_long_lived", lambda *modules: None)
    for out in (pipe, tmp_path / "link.pt"):
        with pytest.raises(SystemExit) as exit_info:
            main(["export", str(runs / "run"), "--out", str(out)])
        assert exit_info.value.code == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line == (
            f"reinforce: error: cannot write {out}: it is not a regular file (a device, a named pipe, a socket or a "
            "broken link); give a file name"
        )
        with pytest.raises(ReinforceError, match="it is not a regular file"):
            export_policy(runs / "run", out)
    assert stat.S_ISFIFO(os.lstat(pipe).st_mode) and (tmp_path / "link.pt").is_symlink()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["link.pt", "pipe.pt"]


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("observation", ["discrete", "image"])
def test_an_agent_without_an_environment_exports_discrete_and_image_observations(
    tmp_path: Path, observation: str
) -> None:
    observation_space = OBSERVATION_SPACES[observation]
    agent = Reinforce.from_spaces(observation_space, ACTION_SPACES["multidiscrete"], seed=0, hidden_sizes=(8,))
    with torch.no_grad():  # weights far from the initial ones, so that the four Discrete observations differ
        for parameter in agent.policy.parameters():
            parameter.normal_(0.0, 1.0)
    export_policy(agent, tmp_path / "policy.pt")
    observation_space.seed(0)
    observations = np.stack([observation_space.sample() for _ in range(50)]).astype(np.float32)
    expected = deterministic_actions(agent, observations)
    assert len(np.unique(expected, axis=0)) > 1
    with torch.no_grad():
        actions = torch.jit.load(tmp_path / "policy.pt")(torch.from_numpy(observations)).numpy()
    assert_same_actions(actions, expected)


class WholePolicy(nn.Module):
    """A user's whole policy for toy/Spaces-box-discrete-v0: raw observations -> Categorical over 3 actions."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 3))

    def forward(self, observations: torch.Tensor) -> Categorical:
        return Categorical(logits=self.net(observations.float()))


class BranchingBody(nn.Module):
    """A body that branches in Python on a tensor's value: a trace would keep only the branch it took."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 8)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features) if features.sum() > 0 else -self.linear(features)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("module", ["network", "policy"])
def test_a_users_network_or_whole_policy_exports(tmp_path: Path, module: str) -> None:
    users = {"network": nn.Sequential(nn.Linear(3, 8), nn.Tanh())} if module == "network" else {"policy": WholePolicy()}
    agent = Reinforce("toy/Spaces-box-discrete-v0", seed=0, num_envs=1, **users)
    export_policy(agent, tmp_path / "policy.pt")
    export_policy(agent, tmp_path / "policy.onnx", format="onnx")
    observations = np.random.default_rng(0).normal(0.0, 3.0, size=(200, 3)).astype(np.float32)
    expected = deterministic_actions(agent, observations)
    assert len(np.unique(expected)) > 1
    with torch.no_grad():
        assert_same_actions(torch.jit.load(tmp_path / "policy.pt")(torch.from_numpy(observations)).numpy(), expected)
    import onnxruntime

    session = onnxruntime.InferenceSession(tmp_path / "policy.onnx", providers=["CPUExecutionProvider"])
    assert_same_actions(session.run(None, {"observations": observations})[0], expected)
    agent.close()


def test_a_network_the_tracer_cannot_follow_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    agent = Reinforce("toy/Spaces-box-discrete-v0", seed=0, num_envs=1, network=BranchingBody())
    for file_format in ("torchscript", "onnx"):
        with pytest.raises(ReinforceError, match=rf"cannot export the policy to {file_format} \(TracerWarning: "):
            export_policy(agent, tmp_path / "policy", format=file_format)
    agent.close()
    assert not list(tmp_path.iterdir())


def test_the_api_names_the_format_as_a_field(tmp_path: Path) -> None:
    agent = Reinforce("toy/Spaces-box-discrete-v0", seed=0, num_envs=1, hidden_sizes=(4,))
    with pytest.raises(ReinforceError, match=r"unknown format='tflite'") as error:
        export_policy(agent, tmp_path / "policy.tflite", format="tflite")
    assert error.value.fields == ("format",)
    agent.close()
    assert not list(tmp_path.iterdir())
