"""Ray rollouts on a local Ray with 2 CPUs: the same distribution as local collection, reproducibility, faults."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import ray
import torch

from reinforce import NonFiniteError, Reinforce, ReinforceError
from reinforce.rollout.collect import collect
from reinforce.rollout.ray_support import init_ray

pytestmark = pytest.mark.usefixtures("local_ray")


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical CDFs."""
    grid = np.union1d(a, b)
    cdf_a = np.searchsorted(np.sort(a), grid, side="right") / len(a)
    cdf_b = np.searchsorted(np.sort(b), grid, side="right") / len(b)
    return float(np.abs(cdf_a - cdf_b).max())


def ks_critical(n: int, m: int, alpha: float = 1e-3) -> float:
    """The asymptotic critical value of the two-sample KS statistic at level ``alpha``."""
    return math.sqrt(-math.log(alpha / 2) / 2) * math.sqrt((n + m) / (n * m))


EPISODES = 480


def test_one_worker_collects_episodes_from_the_local_distribution() -> None:
    local = Reinforce("CartPole-v1", seed=0, num_envs=16)
    remote = Reinforce("CartPole-v1", seed=0, num_envs=16, backend="ray", workers=1)
    assert all(torch.equal(a, b) for a, b in zip(local.policy.parameters(), remote.policy.parameters(), strict=True))
    remote.environments.start_workers(remote.config)
    assert remote.environments.rollouts is not None
    local_batch = collect(local.envs, local.policy, EPISODES, seed=11)
    remote_batch = remote.environments.rollouts.collect(remote.policy, EPISODES, seed=11)
    # worker 0 resets with the collection seed itself, as local training does: the same first observations
    assert torch.equal(remote_batch.observations[0], local_batch.observations[0])
    local_lengths = np.asarray(local_batch.episode_lengths)
    remote_lengths = np.asarray(remote_batch.episode_lengths)
    assert ks_statistic(local_lengths, remote_lengths) < ks_critical(EPISODES, EPISODES)

    # the test has power: a policy that mostly pushes left (its episodes are short) is told apart
    with torch.no_grad():
        remote.policy.body[-1].bias.copy_(torch.tensor([3.0, -3.0]))
    skewed = remote.environments.rollouts.collect(remote.policy, EPISODES, seed=11)
    assert ks_statistic(local_lengths, np.asarray(skewed.episode_lengths)) > ks_critical(EPISODES, EPISODES)
    local.close()
    remote.close()


def _train(
    updates: int, kill_after: int | None = None, remove_after: int | None = None
) -> tuple[list[list[float]], list[torch.Tensor], int]:
    """Episode returns of each update, final policy state and worker restarts of a 2-worker run on a slow env."""
    agent = Reinforce(
        "toy_envs:toy/SlowCartPole-v0", seed=3, num_envs=8, backend="ray", workers=2, normalize_observations=True
    )
    agent.environments.start_workers(agent.config)
    assert agent.environments.rollouts is not None
    killer = None
    if kill_after is not None:
        victim = agent.environments.rollouts.pids[0]

        def kill_during_collection() -> None:
            while agent.num_updates < kill_after:
                time.sleep(0.001)
            time.sleep(0.05)  # a collection of 4 slowed envs takes ~0.2 s: the kill lands inside it
            os.kill(victim, signal.SIGKILL)

        killer = threading.Thread(target=kill_during_collection)
        killer.start()
    try:
        returns = []
        for update in range(updates):
            if update == remove_after:  # gone for good: Ray will not restart it, the learner replaces it
                ray.kill(agent.environments.rollouts.workers[0], no_restart=True)
            returns.append(agent.update()["episode_returns"])
        state = [value.clone() for value in agent.policy.state_dict().values()]  # normalisation statistics too
        return returns, state, agent.environments.rollouts.restarts
    finally:
        if killer is not None:
            killer.join()
        agent.close()  # frees the 2 CPUs for the next run's workers


def test_a_fixed_worker_count_reproduces_the_run_even_when_a_worker_is_killed() -> None:
    plain_returns, plain_parameters, plain_restarts = _train(updates=4)
    killed_returns, killed_parameters, restarts = _train(updates=4, kill_after=1)
    assert plain_restarts == 0
    assert restarts == 1  # worker 0 died during update 2 and was restarted by Ray
    assert len(killed_returns) == 4
    # the restarted worker collected its share again with the same weights and seeds: nothing changed
    assert killed_returns == plain_returns
    for a, b in zip(plain_parameters, killed_parameters, strict=True):
        assert torch.equal(a, b)
    replaced_returns, replaced_parameters, replaced = _train(updates=4, remove_after=2)
    assert replaced == 1 and replaced_returns == plain_returns
    for a, b in zip(plain_parameters, replaced_parameters, strict=True):
        assert torch.equal(a, b)


def test_an_address_other_than_the_connected_cluster_is_refused() -> None:
    with pytest.raises(ReinforceError, match="already connected to the Ray cluster"):
        init_ray("127.0.0.1:1")
    assert init_ray() is ray and init_ray("auto") is ray  # the running Ray is reused


def test_bad_input_found_by_a_worker_is_the_same_one_line_error() -> None:
    agent = Reinforce("toy_envs:toy/NanReward-v0", seed=0, num_envs=2, backend="ray", workers=1)
    with pytest.raises(NonFiniteError, match="non-finite rewards") as caught:
        agent.update()
    assert "Traceback" not in str(caught.value) and len(str(caught.value).splitlines()) == 1
    agent.close()


def test_a_replacement_that_fails_too_is_a_one_line_error() -> None:
    agent = Reinforce("CartPole-v1", seed=0, num_envs=2, backend="ray", workers=1)
    agent.environments.start_workers(agent.config)
    assert agent.environments.rollouts is not None
    ray.kill(agent.environments.rollouts.workers[0], no_restart=True)
    _, *rest = agent.environments.rollouts._arguments
    agent.environments.rollouts._arguments = ("NoSuchEnv-v0", *rest)  # the replacement cannot even make its env
    with pytest.raises(ReinforceError, match="Ray worker 0 died and its replacement failed too") as caught:
        agent.update()
    assert len(str(caught.value).splitlines()) == 1
    agent.close()


def test_workers_that_cannot_get_a_cpu_in_time_are_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    holder = Reinforce("CartPole-v1", seed=0, num_envs=2, backend="ray", workers=2)
    holder.environments.start_workers(holder.config)  # both CPUs of the local Ray are taken
    monkeypatch.setattr("reinforce.rollout.ray.START_TIMEOUT_S", 1.0)
    waiting = Reinforce("CartPole-v1", seed=0, num_envs=2, backend="ray", workers=1)
    with pytest.raises(ReinforceError, match=r"did not start within 1 s \(0 CPUs of the cluster are free\)"):
        waiting.environments.start_workers(waiting.config)
    waiting.close()
    holder.close()


def test_without_an_address_a_local_ray_is_started_whatever_ray_address_says(tmp_path: Path) -> None:
    from cli_support import COMMAND, ENV

    args = ["train", "CartPole-v1", "--backend", "ray", "--workers", "1", "--num-envs", "2", "--total-steps", "200"]
    result = subprocess.run(
        [*COMMAND, *args, "--quiet", "--eval-episodes", "1", "--run-dir", "run"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,  # joining the dead address would retry for minutes
        env={**ENV, "RAY_ADDRESS": "127.0.0.1:1"},
    )
    assert result.returncode == 0, result.stderr


def test_learn_with_ray_workers_writes_a_run_that_resumes(tmp_path: Path) -> None:
    from reinforce import resume

    agent = Reinforce("CartPole-v1", seed=1, num_envs=8, backend="ray", workers=2)
    agent.learn(2_000, run_dir=tmp_path / "run", checkpoint_every=2)
    steps = agent.num_env_steps
    assert agent.num_simulated_steps >= steps >= 2_000
    agent.close()
    again = resume(tmp_path / "run")
    assert again.config.backend == "ray" and again.config.workers == 2 and again.num_env_steps == steps
    again.learn(1_000, run_dir=tmp_path / "run")
    assert again.num_env_steps >= steps + 1_000
    again.close()


def test_the_cli_trains_on_ray_workers_stops_on_ctrl_c_and_resumes(tmp_path: Path) -> None:
    from cli_support import run_cli, start_cli

    args = ["--backend", "ray", "--workers", "2", "--num-envs", "8", "--no-stop-on-solve", "--checkpoint-every", "50"]
    process = start_cli(
        "train",
        "toy_envs:toy/SlowCartPole-v0",
        "--seed",
        "0",
        "--total-steps",
        "2500",
        "--run-dir",
        "run",
        "-q",
        *args,
        cwd=tmp_path,
        new_session=True,
    )
    metrics = tmp_path / "run" / "metrics.csv"
    deadline = time.monotonic() + 120
    while not (metrics.exists() and len(metrics.read_text().splitlines()) > 2) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group; Ray's processes survive it
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "checkpoint saved" in stderr
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["hyperparameters"]["backend"] == "ray" and config["hyperparameters"]["workers"] == 2

    result = run_cli("train", "--resume", "run", "--quiet", "--eval-episodes", "5", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "run" / "checkpoint.json").read_text())["num_env_steps"] >= 2500
    updates = [int(line.split(",")[0]) for line in metrics.read_text().splitlines()[1:]]
    assert updates == list(range(1, len(updates) + 1))  # no row lost or repeated across the interruption
