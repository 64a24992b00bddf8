"""Environments in every form a user brings them: ids with kwargs, specs, callables, vector envs, wrappers."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from toy_envs import CountingEnv

import reinforce
from reinforce import Reinforce, ReinforceError
from reinforce.rollout.envs import env_source


class Corridor(gymnasium.Env[np.ndarray, np.int64]):
    """An unregistered env with a constructor argument: walk right ``size`` cells to finish; reward -1 a step."""

    def __init__(self, size: int = 4, render_mode: str | None = None) -> None:
        self.size = size
        self.render_mode = render_mode
        self.observation_space = gymnasium.spaces.Box(0.0, float(size), shape=(1,), dtype=np.float32)
        self.action_space = gymnasium.spaces.Discrete(2)
        self._position = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._position = 0
        return np.array([0.0], dtype=np.float32), {}

    def step(self, action: np.int64) -> tuple[np.ndarray, float, bool, bool, dict]:
        self._position = max(0, self._position + (1 if int(action) == 1 else -1))
        return np.array([self._position], dtype=np.float32), -1.0, self._position >= self.size, False, {}


class DoubleReward(gymnasium.RewardWrapper):  # type: ignore[type-arg]
    def reward(self, reward: Any) -> float:
        return 2.0 * float(reward)


def corridor_of_six() -> Corridor:
    return Corridor(size=6)


def short_episodes(env: gymnasium.Env[Any, Any]) -> gymnasium.Env[Any, Any]:
    return gymnasium.wrappers.TimeLimit(env, max_episode_steps=3)


def first_update(agent: Reinforce) -> dict[str, Any]:
    metrics = agent.update()
    agent.close()
    return metrics


@pytest.mark.parametrize(
    "env",
    [
        "CartPole-v1",
        gymnasium.spec("CartPole-v1"),
        lambda: gymnasium.make("CartPole-v1"),
    ],
    ids=["id", "spec", "lambda"],
)
def test_an_id_a_spec_and_a_callable_of_one_env_train_alike(env: Any) -> None:
    # the same seeded CartPole episodes whichever form names it (sync vectorisation for all three)
    metrics = first_update(Reinforce(env, seed=0, num_envs=2, vectorization_mode="sync"))
    reference = first_update(Reinforce("CartPole-v1", seed=0, num_envs=2, vectorization_mode="sync"))
    assert metrics["episode_returns"] == reference["episode_returns"]


def test_a_class_with_env_kwargs_and_wrappers_is_called_once_per_env(tmp_path: Path) -> None:
    made: list[int] = []

    def counted(size: int) -> Corridor:
        made.append(size)
        return Corridor(size=size)

    agent = Reinforce(counted, env_kwargs={"size": 3}, wrappers=[DoubleReward], seed=0, num_envs=3)
    assert made == [3, 3, 3] and agent.envs is not None and agent.envs.num_envs == 3
    metrics = agent.update()
    # every reward doubled by the wrapper: each step pays -2
    pairs = zip(metrics["episode_returns"], metrics["episode_lengths"], strict=True)
    assert all(episode_return == -2 * length for episode_return, length in pairs)
    agent.close()


def test_env_kwargs_reach_gymnasium_make_and_are_recorded(tmp_path: Path) -> None:
    agent = Reinforce("CartPole-v1", env_kwargs={"max_episode_steps": 7}, seed=0, num_envs=2)
    metrics = agent.update()
    assert max(metrics["episode_lengths"]) <= 7
    agent.save(tmp_path / "run")
    agent.close()
    record = json.loads((tmp_path / "run" / "config.json").read_text())["env"]
    assert record["id"] == "CartPole-v1" and record["kwargs"] == {"max_episode_steps": 7} and record["rebuildable"]
    loaded = reinforce.load(tmp_path / "run")
    assert max(loaded.evaluate(episodes=3)["returns"]) <= 7
    loaded.close()


def test_a_vector_env_is_used_as_it_is() -> None:
    envs = SyncVectorEnv([lambda: Corridor(size=2)] * 3, autoreset_mode=AutoresetMode.NEXT_STEP)
    agent = Reinforce(envs, seed=0, num_envs=8)
    assert agent.envs is envs and agent.config.num_envs == 3
    agent.update()
    assert agent.evaluate(episodes=4)["episodes"] == 4  # on the same vector env, which stays open
    envs.step(np.zeros(3, dtype=np.int64))
    agent.close()


def test_a_vector_env_with_same_step_autoreset_is_refused() -> None:
    envs = SyncVectorEnv([lambda: Corridor(size=2)], autoreset_mode=AutoresetMode.SAME_STEP)
    with pytest.raises(ReinforceError, match="next-step autoreset"):
        Reinforce(envs)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (None, "is not an environment"),
        (5, "is not an environment"),
        ("", "is empty"),
        (":CartPole-v1", "nothing before ':'"),
        ("no_such_module_xyz:Env-v0", "cannot import 'no_such_module_xyz'"),
        (lambda: 42, "returned int, not a gymnasium.Env"),
    ],
    ids=["None", "int", "empty", "colon", "missing-module", "not-an-env"],
)
def test_what_is_not_an_environment_is_one_error_naming_the_accepted_kinds(env: Any, message: str) -> None:
    with pytest.raises(ReinforceError, match=message):
        Reinforce(env)


def test_an_env_instance_is_refused_with_the_forms_that_work() -> None:
    env = gymnasium.make("CartPole-v1")
    with pytest.raises(ReinforceError, match="'CartPole-v1', its class or a function"):
        Reinforce(env)
    env.close()


def test_bad_env_kwargs_and_wrappers_are_refused() -> None:
    with pytest.raises(ReinforceError, match="env_kwargs"):
        Reinforce("CartPole-v1", env_kwargs={"no_such_argument": 1})
    with pytest.raises(ReinforceError, match="env_kwargs must map names"):
        Reinforce("CartPole-v1", env_kwargs=[1, 2])  # type: ignore[arg-type]
    with pytest.raises(ReinforceError, match="is not callable"):
        Reinforce("CartPole-v1", wrappers=[3])  # type: ignore[list-item]
    with pytest.raises(ReinforceError, match="creating the environment with"):
        Reinforce(Corridor, env_kwargs={"length": 3})


@pytest.mark.parametrize("env", ["CartPole-v1", "toy/Counting-v0"], ids=["vector-entry-point", "sync"])
def test_a_wrapper_that_fails_or_returns_no_env_is_one_error_naming_the_wrapper(env: str) -> None:
    for vectorization_mode in ("sync", "auto"):
        with pytest.raises(ReinforceError, match=r"the wrapper '\S*<lambda>' returned NoneType, not a gymnasium.Env"):
            Reinforce(env, wrappers=[lambda env: None], vectorization_mode=vectorization_mode)
    # ClipAction on a Discrete action space: the wrapper's fault, not env_kwargs'
    with pytest.raises(ReinforceError) as info:
        Reinforce(env, wrappers=[gymnasium.wrappers.ClipAction])
    assert re.fullmatch(
        r"the wrapper 'ClipAction' failed on \S+ \(TypeError: ClipAction requires a Box action space, .*\): fix the "
        r"wrapper, or leave it out of wrappers",
        str(info.value),
    ), info.value
    with pytest.raises(ReinforceError, match=r"the wrapper '\S*<lambda>' returned NoneType"):  # video's single env
        env_source(env, wrappers=[lambda env: None]).make_one()


@pytest.mark.parametrize(
    ("module_text", "message"),
    [
        ("raise RuntimeError('boom')\n", "RuntimeError: boom"),
        ("def broken(:\n", "SyntaxError"),
        ("import sys\nsys.exit(0)\n", "SystemExit"),
    ],
    ids=["raises", "syntax-error", "sys-exit"],
)
def test_a_module_that_fails_on_import_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module_text: str, message: str
) -> None:
    name = f"user_env_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(module_text)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ReinforceError, match=message):
        Reinforce(f"{name}:Env-v0")


class BrokenEnv(CountingEnv):
    def __init__(self, fault: str) -> None:
        super().__init__(max_length=3)
        self.fault = fault

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        if self.fault == "reset":
            raise ValueError("reset is broken")
        observation, info = super().reset(seed=seed)
        return (observation[:1], info) if self.fault == "shape" else (observation, info)

    def step(self, action: np.int64) -> Any:
        observation, reward, terminated, truncated, info = super().step(action)
        if self.fault == "step":
            raise KeyError("step is broken")
        if self.fault == "four":
            return observation, reward, terminated, info
        if self.fault == "text":
            return observation, "one", terminated, truncated, info
        if self.fault == "none":
            return observation, None, terminated, truncated, info
        return observation, reward, terminated, truncated, info


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("reset", r"failed in reset\(\) \(ValueError: reset is broken\)"),
        ("step", r"failed in step\(\) \(KeyError"),
        ("four", r"failed in step\(\)"),
        ("text", r"failed in step\(\)"),
        ("none", r"failed in step\(\)|rewards"),
        ("shape", r"failed in reset\(\)|observations of shape"),
    ],
)
def test_an_env_that_breaks_its_contract_is_one_error_naming_it(fault: str, message: str) -> None:
    agent = Reinforce(lambda: BrokenEnv(fault), seed=0, num_envs=2)
    with pytest.raises(ReinforceError, match=message) as raised:
        agent.update()
    assert "\n" not in str(raised.value)
    agent.close()


def test_a_callable_run_loads_without_its_env_and_predicts(tmp_path: Path) -> None:
    agent = Reinforce(lambda: Corridor(size=3), seed=0, num_envs=2)
    agent.learn(60, run_dir=tmp_path / "run")
    observations = np.array([[0.0], [1.0], [2.0]], dtype=np.float32)
    expected, state = agent.predict(observations, deterministic=True)
    assert state is None
    agent.close()
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    assert record["env"]["rebuildable"] is False and "<lambda> is not a registered id" in record["env"]["why_not"]
    loaded = reinforce.load(tmp_path / "run")
    assert loaded.envs is None
    np.testing.assert_array_equal(loaded.predict(observations, deterministic=True)[0], expected)
    with pytest.raises(ReinforceError, match=r"no environment .*reinforce.load\(run_dir, env=...\)"):
        loaded.evaluate(episodes=1)
    with pytest.raises(ReinforceError, match="no environment"):
        loaded.learn(10)
    # with the env supplied, it evaluates and trains on
    resumed = reinforce.resume(tmp_path / "run", env=lambda: Corridor(size=3))
    assert resumed.evaluate(episodes=2)["episodes"] == 2
    resumed.learn(30, run_dir=tmp_path / "run")
    resumed.close()


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # DtypeObservation's own Box
def test_an_env_given_to_load_with_other_spaces_is_refused_naming_both(tmp_path: Path) -> None:
    agent = Reinforce(lambda: Corridor(size=3), seed=0, num_envs=2, hidden_sizes=(4,))
    agent.save(tmp_path / "run")
    agent.close()
    before = {path.name: path.read_bytes() for path in (tmp_path / "run").iterdir()}
    for call in (reinforce.load, reinforce.resume):  # the state file did not fit, and the run was called damaged
        with pytest.raises(ReinforceError) as info:
            call(tmp_path / "run", env="CartPole-v1")
        assert re.fullmatch(
            r"the env given to load has the spaces Box\(.*\(4,\), float32\) -> Discrete\(2\), and the run in "
            r"\S+ was trained on Box\(0\.0, 3\.0, \(1,\), float32\) -> Discrete\(2\): pass an env with the "
            r"run's spaces \(or none: the recorded one\)",
            str(info.value),
        ), info.value
    # a space whose NumPy repr wraps over lines is named on one line
    with pytest.raises(ReinforceError, match="the env given to load has the spaces") as info:
        reinforce.load(
            tmp_path / "run", env=lambda: gymnasium.wrappers.TimeAwareObservation(gymnasium.make("CartPole-v1"))
        )
    assert "\n" not in str(info.value) and "was trained on Box(0.0, 3.0, (1,), float32)" in str(info.value)
    assert {path.name: path.read_bytes() for path in (tmp_path / "run").iterdir()} == before
    # other Box bounds (a longer corridor) fit the same networks: the policy acts there
    longer = reinforce.load(tmp_path / "run", env=lambda: Corridor(size=5))
    assert longer.predict(np.array([4.0], dtype=np.float32))[0] in (0, 1)
    longer.close()
    # so do float64 observations of the same shape
    wide = reinforce.load(tmp_path / "run", env=lambda: gymnasium.wrappers.DtypeObservation(Corridor(), np.float64))
    assert wide.predict(np.array([2.0]))[0] in (0, 1)
    wide.close()


def test_an_importable_env_class_is_rebuilt_from_the_run_directory(tmp_path: Path) -> None:
    agent = Reinforce(CountingEnv, env_kwargs={"max_length": 4}, seed=0, num_envs=2)
    agent.learn(40, run_dir=tmp_path / "run")
    agent.close()
    record = json.loads((tmp_path / "run" / "config.json").read_text())["env"]
    assert record == {
        "name": "toy_envs:CountingEnv",
        "entry_point": "toy_envs:CountingEnv",
        "kwargs": {"max_length": 4},
        "wrappers": [],
        "rebuildable": True,
    }
    loaded = reinforce.load(tmp_path / "run")
    assert loaded.envs is not None and max(loaded.evaluate(episodes=5)["returns"]) <= 10  # 1+2+3+4
    loaded.close()


def test_a_run_directory_never_calls_a_function_it_names(tmp_path: Path) -> None:
    agent = Reinforce(CountingEnv, seed=0, num_envs=2)
    agent.learn(20, run_dir=tmp_path / "run")
    agent.close()
    config_file = tmp_path / "run" / "config.json"
    config = json.loads(config_file.read_text())
    config["env"] = {"entry_point": "subprocess:run", "kwargs": {"args": "touch pwned", "shell": True}}
    config_file.write_text(json.dumps(config))
    loaded = reinforce.load(tmp_path / "run")  # predicts from the recorded spaces; nothing ran
    assert loaded.envs is None and "not a gymnasium.Env" in str(loaded.environments.unavailable)
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


def test_agent_creation_leaves_torch_threads_alone_and_learn_update_evaluate_put_them_back() -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        agent = Reinforce("CartPole-v1", seed=0, num_envs=2, num_threads=1)
        assert torch.get_num_threads() == 2
        seen: list[int] = []  # torch's thread count at each policy call: collection, update and evaluation
        agent.policy.register_forward_pre_hook(lambda module, args: seen.append(torch.get_num_threads()))
        for call in (lambda: agent.learn(50), agent.update, lambda: agent.evaluate(episodes=2)):
            seen.clear()
            call()
            assert seen and set(seen) == {1}
            assert torch.get_num_threads() == 2
        agent.close()
    finally:
        torch.set_num_threads(before)


def test_device_auto_is_cpu_without_cuda() -> None:
    agent = Reinforce("CartPole-v1", device="auto", num_envs=2)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert agent.device.type == expected and next(agent.policy.parameters()).device.type == expected
    agent.close()


def test_from_spaces_predicts_without_an_env() -> None:
    agent = Reinforce.from_spaces(
        gymnasium.spaces.Dict({"a": gymnasium.spaces.Discrete(3), "b": gymnasium.spaces.Box(-1, 1, (2,))}),
        gymnasium.spaces.Discrete(4, start=1),
        seed=0,
    )
    action, state = agent.predict({"a": 2, "b": np.zeros(2, dtype=np.float32)}, deterministic=True)
    assert state is None and 1 <= int(action) <= 4
    with pytest.raises(ReinforceError, match="no environment"):
        agent.update()


def test_learn_without_an_env_writes_nothing(tmp_path: Path) -> None:
    agent = Reinforce.from_spaces(gymnasium.spaces.Box(-1, 1, (4,)), gymnasium.spaces.Discrete(2), seed=0)
    with pytest.raises(ReinforceError, match="no environment"):
        agent.learn(100, run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("run_dir", [None, 5, ""])
def test_load_resume_save_and_learn_refuse_what_is_not_a_path(run_dir: Any) -> None:
    for call in (reinforce.load, reinforce.resume):
        with pytest.raises(ReinforceError, match="run_dir must be a directory path"):
            call(run_dir)
    agent = Reinforce("CartPole-v1", num_envs=2)
    if run_dir is not None:  # learn(run_dir=None) trains without a run directory
        with pytest.raises(ReinforceError, match="run_dir must be a directory path"):
            agent.learn(10, run_dir=run_dir)
    with pytest.raises(ReinforceError, match="run_dir must be a directory path"):
        agent.save(run_dir)
    agent.close()


def test_save_and_learn_into_a_file_are_refused_and_leave_it(tmp_path: Path) -> None:
    existing = tmp_path / "notes.txt"
    existing.write_text("mine")
    agent = Reinforce("CartPole-v1", num_envs=2)
    with pytest.raises(ReinforceError, match="is a file, not a directory"):
        agent.save(existing)
    with pytest.raises(ReinforceError, match="is a file, not a directory"):
        agent.learn(10, run_dir=existing)
    for under in (existing / "run", existing / "runs" / "run"):  # a directory under a file cannot be made
        message = f"cannot create run directory {under}: {existing} is a file, not a directory"
        with pytest.raises(ReinforceError, match=re.escape(message)):
            agent.save(under)
        with pytest.raises(ReinforceError, match=re.escape(message)):
            agent.learn(10, run_dir=under)
    agent.close()
    assert existing.read_text() == "mine" and [path.name for path in tmp_path.iterdir()] == ["notes.txt"]
