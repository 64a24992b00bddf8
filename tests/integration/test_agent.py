from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium.spaces import Box, Discrete

import reinforce
from reinforce import Reinforce, ReinforceError

TIMING_COLUMNS = {"perf/steps_per_s", "wall_time_s"}


def read_metrics(path: Path) -> list[dict[str, str]]:
    with path.open() as file:
        return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in csv.DictReader(file)]


def test_same_seed_gives_identical_metrics(tmp_path: Path) -> None:
    for name in ("a", "b"):
        agent = Reinforce("CartPole-v1", seed=3, num_envs=4)
        agent.learn(3_000, run_dir=tmp_path / name)
        agent.close()
    first, second = read_metrics(tmp_path / "a" / "metrics.csv"), read_metrics(tmp_path / "b" / "metrics.csv")
    assert len(first) >= 3
    assert first == second
    assert (tmp_path / "a" / "episodes.csv").read_text() == (tmp_path / "b" / "episodes.csv").read_text()


def test_update_reports_its_metrics_and_episodes() -> None:
    agent = Reinforce("CartPole-v1", seed=0, num_envs=4, episodes_per_update=6)
    metrics = agent.update()
    assert len(metrics["episode_returns"]) == 6
    assert metrics["env_steps"] == sum(metrics["episode_lengths"]) == agent.num_env_steps
    assert metrics["charts/episode_return_mean"] == pytest.approx(np.mean(metrics["episode_returns"]))
    assert 0 < metrics["perf/step_efficiency"] <= 1
    assert metrics["simulated_steps"] == agent.num_simulated_steps >= metrics["env_steps"]
    assert metrics["perf/step_efficiency"] == pytest.approx(metrics["env_steps"] / metrics["simulated_steps"])
    agent.close()


def test_save_load_round_trip_gives_the_same_actions(tmp_path: Path) -> None:
    agent = Reinforce("CartPole-v1", seed=1, num_envs=4, hidden_sizes=(32,))
    agent.learn(2_000, run_dir=tmp_path / "run")
    observations = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    torch.manual_seed(5)
    sampled = agent.predict(observations)[0]
    loaded = reinforce.load(tmp_path / "run")
    np.testing.assert_array_equal(
        loaded.predict(observations, deterministic=True)[0], agent.predict(observations, deterministic=True)[0]
    )
    torch.manual_seed(5)
    np.testing.assert_array_equal(loaded.predict(observations)[0], sampled)
    assert loaded.num_env_steps == agent.num_env_steps and loaded.config == agent.config
    for key, tensor in agent.policy.state_dict().items():
        torch.testing.assert_close(loaded.policy.state_dict()[key], tensor, rtol=0, atol=0)
    agent.close()
    loaded.close()


def test_predict_single_and_batched() -> None:
    agent = Reinforce("CartPole-v1", seed=0, num_envs=2)
    single = agent.predict(np.zeros(4, dtype=np.float32), deterministic=True)[0]
    assert single.shape == () and agent.action_space.contains(int(single))
    assert agent.predict(np.zeros((5, 4), dtype=np.float32))[0].shape == (5,)
    agent.close()


def test_predict_box_actions_are_within_bounds() -> None:
    agent = Reinforce("toy/Continuous-v0", seed=0, num_envs=2)
    actions = agent.predict(np.zeros((100, 3), dtype=np.float32))[0]
    assert actions.shape == (100, 2) and np.all(np.abs(actions) <= 1)
    agent.learn(300)
    agent.close()


def test_evaluate_runs_the_requested_episodes() -> None:
    agent = Reinforce("CartPole-v1", seed=0, num_envs=2)
    result = agent.evaluate(episodes=7)
    assert result["episodes"] == len(result["returns"]) == 7
    assert result["min_return"] <= result["mean_return"] <= result["max_return"]
    assert agent.evaluate(episodes=7) == result  # seeded from the agent's seed
    agent.close()


@pytest.mark.parametrize(
    ("env_id", "kwargs", "message"),
    [
        ("NoSuchEnv-v0", {}, "unknown environment"),
        ("CartPole-v1", {"gamma": 2.0}, "gamma"),
        ("CartPole-v1", {"learning_rate": 0.1}, "unknown hyperparameter"),
        ("toy/TextAction-v0", {}, "unsupported action space"),
        (
            "CartPole-v1",
            {"device": "cuda:7"} if not torch.cuda.is_available() else {"device": "tpu"},
            "device",
        ),
    ],
)
def test_bad_construction_raises_one_clear_error(env_id: str, kwargs: dict, message: str) -> None:
    with pytest.raises(ReinforceError, match=message):
        Reinforce(env_id, **kwargs)


@pytest.mark.parametrize("config", ["config.yaml", {"lr": 0.01}, 0.01])
def test_a_config_that_is_not_a_train_config_is_one_error_naming_the_fix(config: object) -> None:
    with pytest.raises(ReinforceError, match=r"config must be a TrainConfig, got \w+: pass TrainConfig.from_dict"):
        Reinforce("CartPole-v1", config=config)  # type: ignore[arg-type]
    with pytest.raises(ReinforceError, match="config must be a TrainConfig"):
        Reinforce.from_spaces(Box(-1, 1, (2,)), Discrete(2), config=config)  # type: ignore[arg-type]


def make_run(tmp_path: Path) -> Path:
    agent = Reinforce("CartPole-v1", seed=0, num_envs=2, hidden_sizes=(8,))
    agent.learn(200, run_dir=tmp_path / "run")
    agent.close()
    return tmp_path / "run"


def corrupt(run: Path, name: str, content: bytes) -> None:
    (run / name).write_bytes(content)


def checkpoint_of(run: Path) -> dict:
    return json.loads((run / "checkpoint.json").read_text())


def state_path(run: Path) -> Path:
    return run / checkpoint_of(run)["state_file"]


def edit_checkpoint(run: Path, **changes) -> None:
    (run / "checkpoint.json").write_text(json.dumps({**checkpoint_of(run), **changes}))


def rewrite_state(run: Path, change) -> None:
    """Change the state file's tensors and record the new file's hash, so that only validation can catch it."""
    from safetensors.torch import load_file, save

    tensors = load_file(state_path(run))
    change(tensors)
    data = save(tensors)
    state_path(run).write_bytes(data)
    edit_checkpoint(run, state_sha256=hashlib.sha256(data).hexdigest())


def edit_optimizer(run: Path, change) -> None:
    document = checkpoint_of(run)
    change(document["optimizers"]["policy"])
    (run / "checkpoint.json").write_text(json.dumps(document))


CONFIG_V2 = {"format_version": 2, "env_id": "CartPole-v1"}


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda run: corrupt(run, "config.json", b"{not json"), "not valid JSON"),
        (lambda run: (run / "config.json").unlink(), "missing"),
        (lambda run: state_path(run).unlink(), "checkpoint.json, is missing: the run directory is damaged"),
        (lambda run: state_path(run).write_bytes(b"\x00" * 40), "SHA-256"),
        (lambda run: state_path(run).write_bytes(state_path(run).read_bytes()[:-7]), "SHA-256"),
        (
            lambda run: (
                state_path(run).write_bytes(b"\x00" * 40),
                edit_checkpoint(run, state_sha256=hashlib.sha256(b"\x00" * 40).hexdigest()),
            ),
            "not a valid safetensors",
        ),
        (lambda run: edit_checkpoint(run, state_file="../../etc/passwd.safetensors"), "outside the run"),
        (lambda run: edit_checkpoint(run, state_file=7), "state_file"),
        (
            lambda run: corrupt(
                run, "config.json", json.dumps({**CONFIG_V2, "hyperparameters": {"gamma": 7}}).encode()
            ),
            "gamma",
        ),
        (
            lambda run: corrupt(
                run, "config.json", json.dumps({**CONFIG_V2, "hyperparameters": {"hidden_sizes": [16]}}).encode()
            ),
            "not what the config gives",
        ),
        (lambda run: corrupt(run, "config.json", json.dumps({**CONFIG_V2, "format_version": 1}).encode()), "format"),
        (lambda run: corrupt(run, "checkpoint.json", b"[]"), "JSON object"),
        (lambda run: corrupt(run, "checkpoint.json", b'{"format_version": 99}'), "format_version"),
        (lambda run: edit_checkpoint(run, num_updates=-1), "num_updates"),
        (lambda run: edit_checkpoint(run, num_env_steps="12"), "num_env_steps"),
        (lambda run: edit_checkpoint(run, train_time_s=float("nan")), "train_time_s"),
        (lambda run: edit_checkpoint(run, recent_returns=[1.0] * 101), "recent_returns"),
        (lambda run: edit_checkpoint(run, recent_returns=["x"]), "recent_returns"),
        (lambda run: edit_checkpoint(run, optimizers={}), "optimizers"),
        (lambda run: edit_optimizer(run, lambda o: o["param_groups"][0].update(lr="fast")), "'lr'"),
        (lambda run: edit_optimizer(run, lambda o: o["param_groups"][0].update(params=[0, 1, 2, 99])), "'params'"),
        (lambda run: edit_optimizer(run, lambda o: o["state"].update({"99": {}})), "state entry"),
        (lambda run: edit_optimizer(run, lambda o: o["state"]["0"].update(x=[1, 2])), "non-scalar"),
        (
            lambda run: rewrite_state(run, lambda t: t.update({"optimizer.policy.state.0.exp_avg": torch.zeros(3)})),
            "exp_avg",
        ),
        (lambda run: rewrite_state(run, lambda t: t.update({"rng.torch": torch.zeros(5, dtype=torch.uint8)})), "rng"),
        (lambda run: rewrite_state(run, lambda t: t.pop("rng.torch")), "rng"),
        (lambda run: rewrite_state(run, lambda t: t.update({"value.weight": torch.zeros(1)})), "unknown tensors"),
        (lambda run: rewrite_state(run, lambda t: t.update({"module.value.weight": torch.zeros(1)})), "modules"),
        (lambda run: edit_checkpoint(run, num_updates=10**30), "num_updates"),
        (lambda run: edit_checkpoint(run, format_version=2.0), "format_version"),
        (lambda run: edit_optimizer(run, lambda o: o["param_groups"][0].update(lr=-0.03)), "'lr'"),
        (lambda run: edit_optimizer(run, lambda o: o["param_groups"][0].update(lr=0)), "'lr'"),
        (lambda run: edit_optimizer(run, lambda o: o["param_groups"][0].update(lr=1e300)), "'lr'"),
        (lambda run: edit_optimizer(run, lambda o: o["param_groups"][0].update(lr=0.06)), "'lr'"),
        (lambda run: edit_optimizer(run, lambda o: o["param_groups"][0].update(betas=[0.5, 0.999])), "'betas'"),
        (lambda run: edit_optimizer(run, lambda o: o["param_groups"][0].update(eps=1e-3)), "'eps'"),
        (lambda run: edit_optimizer(run, lambda o: o["param_groups"][0].update(maximize=True)), "'maximize'"),
        (lambda run: edit_optimizer(run, lambda o: o["state"]["0"].update(step=-1)), "invalid step"),
        (
            lambda run: rewrite_state(run, lambda t: t["optimizer.policy.state.0.exp_avg_sq"].fill_(-1.0)),
            "negative values in optimizer.policy.state.0.exp_avg_sq",
        ),
        (
            lambda run: rewrite_state(run, lambda t: t["optimizer.policy.state.0.exp_avg"].fill_(math.nan)),
            "non-finite values in optimizer.policy.state.0.exp_avg",
        ),
        (
            lambda run: rewrite_state(run, lambda t: t["optimizer.policy.state.0.step"].fill_(2.5)),
            "optimizer.policy.state.0.step that is not a non-negative integer",
        ),
        (
            lambda run: rewrite_state(run, lambda t: t["optimizer.policy.state.0.step"].fill_(-3.0)),
            "optimizer.policy.state.0.step that is not a non-negative integer",
        ),
        (
            lambda run: rewrite_state(
                run, lambda t: next(v for k, v in t.items() if k.startswith("module.")).fill_(math.inf)
            ),
            "holds non-finite values in module.policy.",
        ),
    ],
)
def test_damaged_run_directories_are_refused_and_left_as_they_are(tmp_path: Path, damage, message: str) -> None:
    run = make_run(tmp_path)
    damage(run)
    before = {path.name: path.read_bytes() for path in run.iterdir()}
    with pytest.raises(ReinforceError, match=re.escape(message)) as info:
        reinforce.load(run)
    assert {path.name: path.read_bytes() for path in run.iterdir()} == before
    text = str(info.value).replace(str(tmp_path), "RUN")
    assert "damaged" not in text or re.search(r"damaged; \w", text), f"names the damage but no fix: {text}"


def test_non_finite_normalisation_statistics_are_refused_at_load(tmp_path: Path) -> None:
    agent = Reinforce("Pendulum-v1", seed=0, num_envs=2, hidden_sizes=(8,), normalize_observations=True)
    agent.learn(400, run_dir=tmp_path / "run")
    agent.close()
    run = tmp_path / "run"
    keys = [key for key in load_state_keys(run) if key.startswith("module.policy.") and "weight" not in key]
    key = next(key for key in keys if "mean" in key or "var" in key)
    rewrite_state(run, lambda t: t[key].fill_(math.nan))
    message = f"holds non-finite values in {key}: the run directory is damaged; restore the file"
    with pytest.raises(ReinforceError, match=re.escape(message)):
        reinforce.load(run)


def load_state_keys(run: Path) -> list[str]:
    from safetensors.torch import load_file

    return list(load_file(state_path(run)))


def test_a_linear_schedule_checkpoint_with_its_lowered_lr_loads(tmp_path: Path) -> None:
    agent = Reinforce("CartPole-v1", seed=0, num_envs=2, hidden_sizes=(8,), lr_schedule="linear")
    agent.learn(300, run_dir=tmp_path / "run")
    agent.close()
    saved_lr = checkpoint_of(tmp_path / "run")["optimizers"]["policy"]["param_groups"][0]["lr"]
    assert 0 < saved_lr < agent.config.lr
    reinforce.load(tmp_path / "run").close()


@pytest.mark.parametrize(
    ("observation", "message"),
    [
        (np.zeros(3), "has shape (3,)"),
        (np.zeros((2, 2, 4)), "has shape (2, 2, 4)"),
        (np.zeros((0, 4)), "has shape (0, 4)"),
        ([[1, 2], [1, 2, 3, 4]], "not an array"),
        ("abcd", "not numeric"),
        (None, "not numeric"),
        ([math.nan, 0, 0, 0], "NaN or infinite"),
        (np.full((2, 4), math.inf), "NaN or infinite"),
    ],
)
def test_predict_refuses_bad_observations_naming_the_expected_shape(observation: object, message: str) -> None:
    agent = Reinforce("CartPole-v1", seed=0, num_envs=1, hidden_sizes=(8,))
    with pytest.raises(ReinforceError, match=re.escape(message)) as error:
        agent.predict(observation)[0]
    assert "shape (4,)" in str(error.value) and "(B, 4)" in str(error.value)
    agent.close()


def test_missing_run_directory(tmp_path: Path) -> None:
    with pytest.raises(ReinforceError, match="does not exist"):
        reinforce.load(tmp_path / "nothing")


def test_a_second_learn_call_continues_the_run_directory(tmp_path: Path) -> None:
    agent = Reinforce("CartPole-v1", seed=0, num_envs=2, hidden_sizes=(8,))
    agent.learn(300, run_dir=tmp_path)
    rows = len(read_metrics(tmp_path / "metrics.csv"))
    agent.learn(300, run_dir=tmp_path)
    metrics = read_metrics(tmp_path / "metrics.csv")
    assert len(metrics) == agent.num_updates > rows
    assert [int(row["update"]) for row in metrics] == list(range(1, agent.num_updates + 1))
    agent.close()


def test_counts_accept_numpy_ints_and_integral_floats() -> None:
    agent = Reinforce("CartPole-v1", seed=np.int64(0), num_envs=2, hidden_sizes=(8,))
    assert type(agent.seed) is int
    agent.learn(np.int64(50))
    agent.learn(1e2)
    assert agent.evaluate(episodes=np.int32(2))["episodes"] == 2
    for bad in (2.5, -1, 10**400 * -1, float("inf"), "100"):
        with pytest.raises(ReinforceError, match="total_steps"):
            agent.learn(bad)
    agent.close()


def test_a_loaded_run_continues_reproducibly(tmp_path: Path) -> None:
    agent = Reinforce("CartPole-v1", seed=4, num_envs=2, hidden_sizes=(8,))
    agent.learn(300, run_dir=tmp_path)
    agent.close()
    first = reinforce.load(tmp_path).update()["episode_returns"]
    second = reinforce.load(tmp_path).update()["episode_returns"]
    assert first == second


def test_a_reward_threshold_override_stops_training_early_on_the_training_mean() -> None:
    """The criterion of before the verified stop, kept as an option."""
    agent = Reinforce("CartPole-v1", seed=0, num_envs=8, reward_threshold=15.0, solve_criterion="training_mean")
    agent.learn(100_000)
    assert agent.solved and agent.num_env_steps < 100_000
    assert np.mean(agent.recent_returns) >= 15.0
    agent.close()


def test_no_stop_on_solve_runs_the_whole_budget() -> None:
    agent = Reinforce("CartPole-v1", seed=0, num_envs=8, reward_threshold=15.0, stop_on_solve=False)
    agent.learn(3_000)
    assert agent.num_env_steps >= 3_000
    agent.close()


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop"])
def test_each_optimizer_takes_steps(optimizer: str) -> None:
    agent = Reinforce("CartPole-v1", seed=0, num_envs=4, optimizer=optimizer, lr=0.01)
    before = [p.detach().clone() for p in agent.policy.parameters()]
    agent.update()
    assert any(not torch.equal(b, p) for b, p in zip(before, agent.policy.parameters(), strict=True))
    agent.close()


def test_max_grad_norm_bounds_a_plain_sgd_step() -> None:
    agent = Reinforce(
        "CartPole-v1", seed=0, num_envs=4, optimizer="sgd", lr=1.0, max_grad_norm=1e-3, return_normalization="none"
    )
    before = torch.nn.utils.parameters_to_vector(agent.policy.parameters()).detach().clone()
    metrics = agent.update()
    after = torch.nn.utils.parameters_to_vector(agent.policy.parameters()).detach()
    assert metrics["losses/grad_norm"] > 1e-3  # the raw gradient was larger than the clip
    assert (after - before).norm().item() == pytest.approx(1e-3, rel=1e-3)
    agent.close()


def test_a_linear_schedule_decays_both_learning_rates_over_the_budget() -> None:
    from reinforce.core.schedule import lr_factor

    assert lr_factor("constant", 0.7) == 1.0 and lr_factor("linear", 0.0) == 1.0 and lr_factor("linear", 2.0) == 0.0
    agent = Reinforce("CartPole-v1", seed=0, num_envs=4, baseline="value", lr_schedule="linear", stop_on_solve=False)
    progress = []
    original = agent.update

    def update() -> dict:
        progress.append(agent.num_env_steps / 3000)
        return original()

    agent.update = update  # type: ignore[method-assign]
    agent.learn(3000)
    assert progress[0] == 0.0 and 0.0 < progress[-1] < 1.0
    assert agent.optimizer.param_groups[0]["lr"] == pytest.approx(0.03 * (1 - progress[-1]))
    _, optimizers = agent.state()
    assert optimizers["value"].param_groups[0]["lr"] == pytest.approx(0.01 * (1 - progress[-1]))
    agent.close()
    constant = Reinforce("CartPole-v1", seed=0, num_envs=4).learn(2000)
    assert constant.optimizer.param_groups[0]["lr"] == 0.03
    constant.close()
