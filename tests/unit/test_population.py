"""Populations: K seeds in one process (`reinforce.population`), and the grouped collection under them."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch

import reinforce
from reinforce.core.policies import make_policy
from reinforce.errors import ReinforceError
from reinforce.population import Population, batched, population_act, train_population
from reinforce.population.rounds import update_members
from reinforce.rollout.collect import collect, collect_groups, sample_actions
from reinforce.rollout.envs import make_vec_env

TINY = {"num_envs": 2, "hidden_sizes": (8,)}


@pytest.mark.parametrize("env_id", ["toy/Counting-v0", "toy/CountingTruncated-v0"])
@pytest.mark.parametrize(("sizes", "wanted"), [(None, [5, 0, 2]), ([3, 1, 2], [5, 2, 2])])
def test_each_group_gets_the_batch_of_its_envs_alone(env_id: str, sizes: list[int] | None, wanted: list[int]) -> None:
    """Group k's batch equals `collect` on its envs alone, reset with its seeds; a group of 0 episodes is None.

    Without ``sizes`` the groups split the envs evenly (3 each); with ``sizes`` group k owns ``sizes[k]``.
    """
    seeds = [11, 22, 33]
    group_sizes = sizes if sizes is not None else [3] * len(wanted)
    envs = make_vec_env(env_id, sum(group_sizes))
    policy = make_policy(envs.single_observation_space, envs.single_action_space, hidden_sizes=())

    def act(observations: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
        return sample_actions(policy(observations, masks), deterministic=True)

    reset_seeds = [seed + index for seed, size in zip(seeds, group_sizes, strict=True) for index in range(size)]
    batches = collect_groups(envs, act, wanted, seed=reset_seeds, sizes=sizes)
    envs.close()
    for group, size in enumerate(group_sizes):
        batch = batches[group]
        if wanted[group] == 0:
            assert batch is None
            continue
        alone = make_vec_env(env_id, size)
        expected = collect(alone, policy, wanted[group], deterministic=True, seed=seeds[group])
        alone.close()
        assert batch is not None
        for field in ("observations", "actions", "rewards", "terminated", "truncated", "mask", "last_observations"):
            assert torch.equal(getattr(batch, field), getattr(expected, field)), field
        assert batch.episode_returns == expected.episode_returns
        assert batch.episode_lengths == expected.episode_lengths
        assert batch.episode_truncated == expected.episode_truncated
        assert batch.num_simulated_steps == expected.num_simulated_steps


def test_collect_groups_refuses_envs_that_do_not_split_and_collects_nothing_for_no_episodes() -> None:
    envs = make_vec_env("toy/Counting-v0", 3)
    try:
        with pytest.raises(ValueError, match="cannot be split"):
            collect_groups(envs, lambda observations, masks: observations[:, 0].long(), [1, 1])
        for sizes in ([1, 1], [3, 0], [2, 2]):  # not summing to the envs, an empty group
            with pytest.raises(ValueError, match="cannot be split"):
                collect_groups(envs, lambda observations, masks: observations[:, 0].long(), [1, 1], sizes=sizes)
        assert collect_groups(envs, lambda observations, masks: observations[:, 0].long(), [0, 0, 0]) == [None] * 3
    finally:
        envs.close()


@pytest.mark.parametrize("normalize", [False, True])
def test_the_batched_policy_call_is_each_members_policy(normalize: bool) -> None:
    """One batched call acts with member k's own weights (and observation statistics) on row block k."""
    envs = make_vec_env("toy/Counting-v0", 1)
    spaces = (envs.single_observation_space, envs.single_action_space)
    envs.close()
    policies = [make_policy(*spaces, hidden_sizes=(4, 4), normalize_observations=normalize) for _ in range(3)]
    favourite = [1, 0, 1]
    with torch.no_grad():
        for policy, action in zip(policies, favourite, strict=True):
            last = policy.body[-1]
            last.bias.copy_(torch.tensor([-50.0, 50.0]) if action else torch.tensor([50.0, -50.0]))
            if normalize:
                policy.encoder.update_normalization(torch.rand(5, 2) * 3)
    rows = 4
    observations = torch.rand(3 * rows, 2)
    actions = population_act(policies)(observations, None)
    assert actions.tolist() == [action for action in favourite for _ in range(rows)]
    # with ordinary weights: row block k is drawn from member k's own distribution, by the same inverse CDF
    for policy in policies:
        policy.body[-1].bias.data.zero_()
    act = population_act(policies)  # reads the parameters as they are now
    logits = torch.cat([policy(observations[k * rows : (k + 1) * rows]).logits for k, policy in enumerate(policies)])
    torch.manual_seed(1)
    draws = act(observations, None)
    torch.manual_seed(1)
    cumulative = logits.exp().cumsum(-1)
    uniform = torch.rand(3 * rows, 1) * cumulative[:, -1:]
    assert torch.equal(draws, (cumulative <= uniform).sum(-1))


def test_members_start_as_single_runs_and_write_loadable_run_directories(tmp_path: Path) -> None:
    population = Population("toy/Counting-v0", [3, 7], **TINY)
    try:
        for seed, member in zip((3, 7), population.members, strict=True):
            single = reinforce.Reinforce("toy/Counting-v0", seed=seed, **TINY)
            for name, value in single.policy.state_dict().items():
                assert torch.equal(value, member.policy.state_dict()[name]), name
            single.close()
        assert population.envs.num_envs == 4
        population.learn(40, run_dir=tmp_path, checkpoint_every=2)
    finally:
        population.close()
    for seed, member in zip((3, 7), population.members, strict=True):
        assert member.num_env_steps >= 40
        run_dir = tmp_path / f"seed-{seed}"
        loaded = reinforce.load(run_dir)
        assert loaded.seed == seed
        assert loaded.num_updates == member.num_updates
        for name, value in member.policy.state_dict().items():
            assert torch.equal(value, loaded.policy.state_dict()[name]), name
        rows = (run_dir / "metrics.csv").read_text().strip().splitlines()
        assert len(rows) == 1 + member.num_updates
        loaded.close()


def test_each_member_is_announced_once_when_it_stops_committed_while_the_others_train(tmp_path: Path) -> None:
    population = Population("toy/Counting-v0", [3, 7, 9], **TINY)
    announced: list[tuple[int, list[int]]] = []

    def member_finished(seed: int) -> None:
        member = population.members[population.seeds.index(seed)]
        assert member.checkpoint_update == member.num_updates  # its run directory is committed
        assert reinforce.load(tmp_path / f"seed-{seed}").num_updates == member.num_updates
        announced.append((seed, [other.num_updates for other in population.members]))

    try:
        population.learn([8, 40, 40], run_dir=tmp_path, checkpoint_every=0, member_finished=member_finished)
    finally:
        population.close()
    assert sorted(seed for seed, _ in announced) == [3, 7, 9]
    first, updates_then = announced[0]
    assert first == 3  # the smallest budget stops first, while the others train on
    assert updates_then[1] < population.members[1].num_updates


@pytest.mark.parametrize("signals", [1, 2])
def test_a_signal_stops_a_population_with_the_command_that_resumes_it(tmp_path: Path, signals: int) -> None:
    import os
    import signal

    from reinforce.errors import TrainingInterrupted

    def send(seed: int) -> None:  # the first member to stop sends the signal(s)
        for _ in range(signals):
            os.kill(os.getpid(), signal.SIGTERM)

    population = Population("toy/Counting-v0", [3, 7, 8], **TINY)
    try:
        with pytest.raises(TrainingInterrupted) as caught:
            population.learn([8, 400, 400], run_dir=tmp_path, checkpoint_every=1, member_finished=send)
    finally:
        population.close()
    state = "every member committed its last update" if signals == 1 else "each member at its last checkpoint"
    assert f"{state}: resume with `reinforce train --seeds 3,7-8 --resume {tmp_path}`" in str(caught.value)
    assert caught.value.exit_code == 143 and caught.value.update is None
    for seed, member in zip((3, 7, 8), population.members, strict=True):  # every member committed
        assert reinforce.load(tmp_path / f"seed-{seed}").num_updates == member.num_updates


def test_cli_a_members_failed_evaluation_names_its_seed_and_the_others_train_and_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli_support import one_line, run_main

    from reinforce.cli import population as cli_population

    evaluate = cli_population.final_evaluation
    failed: list[Path] = []

    def fail_once(member: Any, member_dir: Path, **kwargs: Any) -> str | None:
        if not failed:
            failed.append(member_dir)
            raise OSError(28, "No space left on device", str(member_dir / "evaluation.json"))
        return evaluate(member, member_dir, **kwargs)

    monkeypatch.setattr(cli_population, "final_evaluation", fail_once)
    args = ("train", "CartPole-v1", "--seeds", "0-2", "--num-envs", "4", "--hidden-sizes", "16")
    result = run_main(
        *args, "--reward-threshold", "40", "--run-dir", "pop", cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys
    )
    assert result.returncode == 1 and "No space left on device" in one_line(result.stderr)
    for seed in (0, 1, 2):  # every member trained to its stop and committed, the failed one's evaluation aside
        member_dir = tmp_path / "pop" / f"seed-{seed}"
        assert reinforce.load(member_dir).checkpoint_update is not None
        assert (member_dir / "evaluation.json").is_file() == (member_dir.name != failed[0].name)
    assert result.stdout.count(": verified in ") == 3


def test_a_population_names_its_seeds_as_the_command_line_does() -> None:
    from reinforce.config_checks import seeds_text

    assert seeds_text(range(10)) == "0-9"  # type: ignore[arg-type]
    assert [seeds_text(seeds) for seeds in ([0, 2, 3, 4, 7], [5], [3, 7], [9, 8])] == ["0,2-4,7", "5", "3,7", "9,8"]


def test_a_member_that_diverges_or_solves_leaves_the_others_training() -> None:
    population = Population(
        "toy/Counting-v0",
        [0, 1, 2],
        stop_on_solve=True,
        solve_criterion="training_mean",
        reward_threshold=1000.0,
        **TINY,
    )
    try:
        diverged, solved, healthy = population.members
        with torch.no_grad():
            for parameter in diverged.policy.parameters():
                parameter.fill_(float("nan"))
        solved.recent_returns.extend([2000.0] * 100)
        population.learn(30)
    finally:
        population.close()
    assert set(population.errors) == {0}
    assert isinstance(population.errors[0], reinforce.NonFiniteError)
    assert diverged.num_updates == 0
    assert solved.num_updates == 0
    assert healthy.num_env_steps >= 30


def test_train_population_refuses_repeated_seeds_and_vector_envs() -> None:
    with pytest.raises(ReinforceError, match="distinct seeds"):
        train_population("toy/Counting-v0", [1, 1], 10)
    with pytest.raises(ReinforceError, match="distinct seeds"):
        train_population("toy/Counting-v0", [], 10)
    envs = make_vec_env("toy/Counting-v0", 2)
    try:
        with pytest.raises(ReinforceError, match="vector env"):
            train_population(envs, [1, 2], 10)
    finally:
        envs.close()


def test_cli_trains_seeds_as_a_population(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli_support import one_line, run_main

    args = ("train", "toy/Counting-v0", "--seeds", "4,6", "--total-steps", "20", "--num-envs", "2")
    result = run_main(
        *args, "--run-dir", "pop", "--eval-episodes", "2", cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys
    )
    assert result.returncode == 0, result.stderr
    assert "seed 4: trained in" in result.stdout
    assert (tmp_path / "pop" / "curve.png").is_file()
    for seed in (4, 6):
        assert (tmp_path / "pop" / f"seed-{seed}" / "evaluation.json").is_file()
        assert reinforce.load(tmp_path / "pop" / f"seed-{seed}").seed == seed
    more = ("train", "--seeds", "4,6", "--total-steps", "40", "--resume", "pop", "--eval-episodes", "0")
    resumed = run_main(*more, cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys)
    assert resumed.returncode == 0, resumed.stderr
    for seed in (4, 6):
        agent = reinforce.load(tmp_path / "pop" / f"seed-{seed}")
        assert agent.num_env_steps >= 40
        rows = (tmp_path / "pop" / f"seed-{seed}" / "metrics.csv").read_text().strip().splitlines()
        assert len(rows) == 1 + agent.num_updates
    refused = run_main(*args, "--seed", "1", cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys)
    assert refused.returncode == 2
    assert "--seeds trains a population, which takes no --seed" in one_line(refused.stderr)


def test_cli_a_signal_leaves_the_members_that_stopped_evaluated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import os
    import signal

    from cli_support import one_line, run_main

    from reinforce.cli import population as cli_population

    evaluate = cli_population.final_evaluation

    def evaluate_then_signal(*args: Any, **kwargs: Any) -> str | None:
        line = evaluate(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)  # a signal once the first member is evaluated, the others training
        return line

    monkeypatch.setattr(cli_population, "final_evaluation", evaluate_then_signal)
    args = ("train", "CartPole-v1", "--seeds", "0,1", "--num-envs", "4", "--hidden-sizes", "16")
    result = run_main(
        *args, "--reward-threshold", "15", "--run-dir", "pop", cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys
    )
    assert result.returncode == 143
    assert "resume with `reinforce train --seeds 0-1 --resume pop`" in one_line(result.stderr)
    stopped = [seed for seed in (0, 1) if (tmp_path / "pop" / f"seed-{seed}" / "evaluation.json").is_file()]
    assert stopped and all((tmp_path / "pop" / f"seed-{seed}" / "curve.png").is_file() for seed in stopped)


def test_a_population_resumes_from_its_members_run_directories(tmp_path: Path) -> None:
    train_population("toy/Counting-v0", [3, 7], 20, run_dir=tmp_path, checkpoint_every=1, **TINY)
    agents = [reinforce.resume(tmp_path / f"seed-{seed}") for seed in (3, 7)]
    done = [agent.num_updates for agent in agents]
    population = Population.from_agents(agents)
    try:
        population.learn([50 - agent.num_env_steps for agent in agents], run_dir=tmp_path)
    finally:
        population.close()
    for seed, member, before in zip((3, 7), population.members, done, strict=True):
        assert member.num_env_steps >= 50
        assert member.num_updates > before
        rows = (tmp_path / f"seed-{seed}" / "metrics.csv").read_text().strip().splitlines()
        assert len(rows) == 1 + member.num_updates  # every update once: none lost, none repeated
        assert reinforce.load(tmp_path / f"seed-{seed}").num_updates == member.num_updates
    mixed = [reinforce.Reinforce("toy/Counting-v0", seed=1, **TINY), reinforce.Reinforce("toy/Counting-v0", seed=9)]
    with pytest.raises(ReinforceError, match="differ only in their seeds"):
        Population.from_agents(mixed)
    for agent in mixed:
        agent.close()
    population = Population("toy/Counting-v0", [1, 2], **TINY)
    with pytest.raises(ReinforceError, match="one per member"):
        population.learn([10])
    population.close()


@pytest.mark.parametrize(
    "env_id",
    [
        "toy/Spaces-box-multidiscrete-v0",
        "toy/Spaces-dict-multibinary-v0",
        "toy/Spaces-discrete-discrete-v0",
        "toy/Spaces-image-box-v0",
        "toy/Masked-discrete-v0",
    ],
)
def test_a_population_trains_on_every_kind_of_space(env_id: str) -> None:
    """Stacked (Categorical, MultiCategorical, Bernoulli on vectors) and member-by-member policies, masks too."""
    population = Population(env_id, [0, 1], **TINY)
    try:
        population.learn(16)
    finally:
        population.close()
    assert population.errors == {}
    assert all(member.num_env_steps >= 16 for member in population.members)


STEP_SETTINGS = [
    {},
    {"loss_reduction": "mean_over_episodes", "entropy_coef": 0.05, "max_grad_norm": 0.05, "activation": "tanh"},
    {"optimizer": "rmsprop", "normalize_observations": True, "baseline": "value", "hidden_sizes": (8, 8)},
    {"env": "toy/Masked-discrete-v0"},
    {"env": "toy/Spaces-box-multidiscrete-v0"},
]


@pytest.mark.parametrize("padding", [0.0, float("inf")], ids=["each-members-rows", "padded"])
@pytest.mark.parametrize(
    "settings", STEP_SETTINGS, ids=["defaults", "clipped", "rmsprop-value", "masked", "multidiscrete"]
)
def test_the_batched_step_is_each_members_own_step(
    settings: dict[str, object], padding: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Members updated together on given batches end where single agents of their seeds updated on the same
    batches end: parameters and optimizer state equal to float tolerance. Per-member reductions, entropy,
    gradient clipping, optimizer state and learning rate (member 1's differs), padded or not."""
    monkeypatch.setattr(batched, "PADDING_WASTE", padding)
    settings = dict(settings)
    env_id = str(settings.pop("env", "toy/CountingTruncated-v0"))
    values = {**TINY, **settings}
    seeds = [3, 5, 8]
    population = Population(env_id, seeds, **values)  # type: ignore[arg-type]
    singles = [reinforce.Reinforce(env_id, seed=seed, **values) for seed in seeds]  # type: ignore[arg-type]
    try:
        for agent in (population.members[1], singles[1]):
            agent.optimizer.param_groups[0]["lr"] *= 3.0
        members = population.members
        assert batched.batched_update(members, [singles[0].collect_batch()] * 3)
        for _ in range(4):
            batches = [single.collect_batch() for single in singles]  # of different lengths
            expected = [single.update(batch) for single, batch in zip(singles, batches, strict=True)]
            results = update_members(members, batches)
            for member, single, result, metrics in zip(members, singles, results, expected, strict=True):
                assert isinstance(result, dict)
                for key in ("losses/policy_loss", "losses/entropy", "losses/grad_norm"):
                    assert result[key] == pytest.approx(metrics[key], rel=1e-4, abs=1e-6), key
                assert member.num_updates == single.num_updates
        for member, single in zip(members, singles, strict=True):
            for (name, value), expected_value in zip(
                member.policy.state_dict().items(), single.policy.state_dict().values(), strict=True
            ):
                torch.testing.assert_close(value, expected_value, rtol=1e-4, atol=1e-5, msg=name)
            optimizer, single_optimizer = member.optimizer.state_dict(), single.optimizer.state_dict()
            assert optimizer["param_groups"] == single_optimizer["param_groups"]
            for index, state in optimizer["state"].items():
                for name, value in state.items():
                    torch.testing.assert_close(value, single_optimizer["state"][index][name], rtol=1e-4, atol=1e-6)
    finally:
        population.close()
        for single in singles:
            single.close()


def test_members_stop_on_their_own_verified_policy_and_resume_as_finished(tmp_path: Path) -> None:
    """The verified stop per member (the default criterion): checks, a 100-episode confirmation, best/, and
    config.json naming the criterion; a resumed population of verified members trains no further."""
    from reinforce.run.files import read_json
    from reinforce.verification import CONFIRM_EPISODES, verified_at_checkpoint

    settings = {"num_envs": 4, "hidden_sizes": (16,), "reward_threshold": 15.0}
    population = train_population("CartPole-v1", [0, 1], 50_000, run_dir=tmp_path, **settings)  # type: ignore[arg-type]
    assert population.errors == {}
    for seed, member in zip((0, 1), population.members, strict=True):
        run_dir = tmp_path / f"seed-{seed}"
        verifier = population.verifiers[seed]
        assert verifier.verified is not None and verifier.verified["episodes"] == CONFIRM_EPISODES
        assert member.num_env_steps < 50_000
        assert verified_at_checkpoint(member, run_dir) is not None
        assert read_json(run_dir / "config.json")["hyperparameters"]["solve_criterion"] == "verified"
        assert reinforce.load(run_dir / "best").num_updates == member.num_updates  # the verified policy
    agents = [reinforce.resume(tmp_path / f"seed-{seed}") for seed in (0, 1)]
    done = [agent.num_updates for agent in agents]
    resumed = Population.from_agents(agents)
    try:
        resumed.learn(50_000, run_dir=tmp_path)
    finally:
        resumed.close()
    assert [member.num_updates for member in resumed.members] == done


@pytest.mark.parametrize(
    ("env_id", "own_envs"),
    [("CartPole-v1", True), ("toy/Counting-v0", True), ("toy/Counting-v0", False), ("toy/Masked-discrete-v0", False)],
)
def test_the_members_checks_together_are_each_members_own_evaluation(env_id: str, own_envs: bool) -> None:
    """`evaluate_members`: each member's summary is its own `evaluate_policy` (deterministic, default seed), on
    envs of its own or on one shared vector env that takes a seed per sub-env."""
    from reinforce.population.checks import evaluate_members

    population = Population(env_id, [0, 4, 9], **TINY)
    try:
        for episodes in (3, 7):
            together = evaluate_members(population.members, episodes, own_envs=own_envs)
            for member, summary in zip(population.members, together, strict=True):
                alone = member.evaluate(episodes)
                assert summary["returns"] == alone["returns"]
                assert summary["lengths"] == alone["lengths"]
    finally:
        population.close()


@pytest.mark.parametrize("event", ["diverges", "stops-early"])
def test_a_member_that_diverges_or_stops_early_does_not_change_the_others(event: str) -> None:
    """Exact where the envs take a seed per sub-env: each member draws from its own generator and resets its own
    sub-envs, so the others end as in a population without that member (batched steps, a smaller vector env)."""
    with_it = Population("toy/Counting-v0", [0, 1, 2], **TINY)
    without = Population("toy/Counting-v0", [1, 2], **TINY)
    try:
        if event == "diverges":
            with torch.no_grad():
                for parameter in with_it.members[0].policy.parameters():
                    parameter.fill_(float("nan"))
        with_it.learn([60 if event == "diverges" else 12, 60, 60])
        without.learn(60)
        assert (0 in with_it.errors) == (event == "diverges")
        assert with_it.members[0].num_env_steps < 60
        for member, alone in zip(with_it.members[1:], without.members, strict=True):
            assert (member.num_updates, member.num_env_steps) == (alone.num_updates, alone.num_env_steps)
            assert list(member.recent_returns) == list(alone.recent_returns)
            for name, value in member.policy.state_dict().items():  # batched matmuls of other shapes: rounding
                torch.testing.assert_close(value, alone.policy.state_dict()[name], rtol=1e-5, atol=1e-6, msg=name)
    finally:
        with_it.close()
        without.close()


def test_a_population_repeats_and_resumes_exactly_where_the_envs_take_a_seed_per_sub_env(tmp_path: Path) -> None:
    whole = train_population("toy/Counting-v0", [3, 7], 60, **TINY)
    train_population("toy/Counting-v0", [3, 7], 30, run_dir=tmp_path, **TINY)
    resumed = Population.from_agents([reinforce.resume(tmp_path / f"seed-{seed}") for seed in (3, 7)])
    try:
        resumed.learn([60 - member.num_env_steps for member in resumed.members], run_dir=tmp_path)
    finally:
        resumed.close()
    for member, again in zip(whole.members, resumed.members, strict=True):
        assert (member.num_updates, list(member.recent_returns)) == (again.num_updates, list(again.recent_returns))
        for name, value in member.policy.state_dict().items():  # the members' updates paired otherwise: rounding
            torch.testing.assert_close(value, again.policy.state_dict()[name], rtol=1e-5, atol=1e-6, msg=name)


def test_cli_members_stop_verified_and_a_resume_leaves_them_as_they_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli_support import run_main

    args = ("train", "CartPole-v1", "--seeds", "0,1", "--num-envs", "4", "--hidden-sizes", "16")
    result = run_main(
        *args, "--reward-threshold", "15", "--run-dir", "pop", cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": verified in ") == 2
    evaluations = [(tmp_path / "pop" / f"seed-{seed}" / "evaluation.json").read_text() for seed in (0, 1)]
    for seed, evaluation in zip((0, 1), evaluations, strict=True):  # the confirmation, as the member evaluates
        returns = reinforce.load(tmp_path / "pop" / f"seed-{seed}").evaluate(100)["returns"]
        assert json.loads(evaluation)["returns"] == returns
    (tmp_path / "pop" / "seed-0" / "curve.png").unlink()  # as a signal before the child drew it leaves it
    resumed = run_main(
        "train",
        "--seeds",
        "0,1",
        "--resume",
        "pop",
        "--eval-episodes",
        "3",
        cwd=tmp_path,
        monkeypatch=monkeypatch,
        capsys=capsys,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.count("already finished (verified at") == 2
    assert (tmp_path / "pop" / "seed-0" / "curve.png").is_file()  # drawn again; nothing else changed
    assert [(tmp_path / "pop" / f"seed-{seed}" / "evaluation.json").read_text() for seed in (0, 1)] == evaluations


@pytest.mark.parametrize("env_id", ["toy/Counting-v0", "toy/Masked-discrete-v0"])
def test_checks_riding_in_a_round_are_each_members_own_evaluation_and_change_no_update(env_id: str) -> None:
    """`riding_checks`: the checks due after an update, made in the next round's collection (their own sub-envs,
    reset with each member's evaluation seed), are each member's own `evaluate_policy` where the envs take a seed
    per sub-env (stepped beside the population's env, which stays as it is; action masks too); the members' updates
    of that round are those of a round without them (``_round``)."""
    from reinforce.population.checks import riding_checks
    from reinforce.population.rounds import MemberRun

    settings = {**TINY, "reward_threshold": 1e9, "verify_episodes": 3}
    riding = Population(env_id, [0, 4, 9], **settings)  # type: ignore[arg-type]
    plain = Population(env_id, [0, 4, 9], **settings)  # type: ignore[arg-type]
    try:
        alone = [member.evaluate(3) for member in riding.members]
        runs = [MemberRun(member, 10**6, None, None, 0) for member in riding.members]
        due = {"charts/episode_return_max": 1e9}  # a training episode at the threshold: a check is due
        riders = riding_checks([(runs[0], due), (runs[2], due), (runs[1], {})], runs)
        assert [run for run, _ in riders] == [runs[0], runs[2]]
        assert riding_checks([(runs[0], due)], runs[1:]) == []  # a member that trains no further checks alone
        envs = riding.envs
        riding._round(riding.members, 2, riders)
        plain._round(plain.members, 2)
        assert riding.envs is envs  # sync envs: the checks' own env beside the population's, not a new one
        for run, summary in ((runs[0], alone[0]), (runs[2], alone[2])):
            assert run.verifier is not None
            row = run.verifier.evaluations[-1]
            assert (row["update"], row["episodes"]) == (0, 3)
            for key in ("mean_return", "std_return", "min_return", "max_return"):
                assert row[key] == summary[key], key
        assert runs[1].verifier is not None and runs[1].verifier.evaluations == []
        for member, again in zip(riding.members, plain.members, strict=True):
            assert member.num_updates == again.num_updates == 1
            assert list(member.recent_returns) == list(again.recent_returns)
            for name, value in member.policy.state_dict().items():
                torch.testing.assert_close(value, again.policy.state_dict()[name], rtol=1e-5, atol=1e-6, msg=name)
    finally:
        riding.close()
        plain.close()


def test_a_riding_check_acts_with_the_members_own_greedy_policy() -> None:
    """`collect_round` without masks (the NumPy sampler), on an env whose episodes depend on the actions (sync
    CartPole): each rider's check has the episodes of its own `evaluate`, its returns and lengths one by one."""
    from reinforce.population.rounds import MemberRun, collect_round

    settings = {**TINY, "reward_threshold": 1e9, "verify_episodes": 5, "vectorization_mode": "sync"}
    population = Population("CartPole-v1", [0, 4, 9], **settings)  # type: ignore[arg-type]
    try:
        members = population.members
        runs = [MemberRun(member, 10**6, None, None, 0) for member in members]
        riders = [(runs[2], {}), (runs[0], {})]  # not in the members' order
        batches, made = collect_round(lambda checks: population._vector_env(3, checks), members, 2, riders, 2)
        assert [batch is not None and len(batch.episode_returns) == 2 for batch in batches] == [True] * 3
        for (run, _), summary in zip(riders, made, strict=True):
            alone = run.member.evaluate(5)
            assert (summary["returns"], summary["lengths"]) == (alone["returns"], alone["lengths"])
    finally:
        population.close()


def _metrics_updates(run_dir: Path) -> list[int]:
    with (run_dir / "metrics.csv").open() as file:
        return [int(row["update"]) for row in csv.DictReader(file)]


@pytest.mark.parametrize("interrupted", [0, 1])
def test_a_second_signal_in_a_rounds_updates_leaves_each_member_at_its_last_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, interrupted: int
) -> None:
    """`TrainingInterrupted` (a second signal) in a round's updates, after the riders' updates were finished with
    their checks, at the first member's update or midway (member 0 updated, member 1 not): nothing more is
    written, and every member resumes at its last checkpoint with its rows, each once, and its checks."""
    from reinforce.errors import TrainingInterrupted

    settings = {**TINY, "reward_threshold": 1e9, "verify_every": 10, "verify_episodes": 3}
    population = Population("toy/Counting-v0", [0, 1], **settings)  # type: ignore[arg-type]
    member = population.members[interrupted]
    update = member.update
    calls = []

    def interrupting(*args: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append(1)
        if len(calls) == 3:  # the round that carries the checks of update 2
            raise TrainingInterrupted(2, str(tmp_path), None)
        return update(*args, **kwargs)

    monkeypatch.setattr(member, "update", interrupting)
    try:
        with pytest.raises(TrainingInterrupted):
            population.learn(10_000, run_dir=tmp_path, checkpoint_every=1)
    finally:
        population.close()
    assert member.num_updates == 2
    for seed in (0, 1):
        assert _metrics_updates(tmp_path / f"seed-{seed}") == [1, 2]
        assert [row["update"] for row in population.verifiers[seed].evaluations] == [2]
        resumed = reinforce.resume(tmp_path / f"seed-{seed}")
        assert resumed.num_updates == 2
        assert _metrics_updates(tmp_path / f"seed-{seed}") == [1, 2]
        resumed.close()


def test_a_failed_round_carrying_checks_still_makes_them_and_a_resume_goes_on_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The collection fails in the round that carries the members' checks: each check is made (alone), so the
    members resume to the checks, rows and updates of an uninterrupted population."""
    from reinforce.population import rounds

    settings = {**TINY, "reward_threshold": 1e9, "verify_every": 10, "verify_episodes": 3}
    collect = rounds.collect_groups
    failures = []

    def failing(envs: Any, act: Any, num_episodes: Sequence[int], **kwargs: Any) -> Any:
        if len(num_episodes) > 2 and not failures:  # the first round with riding checks
            failures.append(1)
            raise ReinforceError("the env failed (injected)")
        return collect(envs, act, num_episodes, **kwargs)

    monkeypatch.setattr(rounds, "collect_groups", failing)
    failed = train_population("toy/Counting-v0", [0, 1], 10_000, run_dir=tmp_path / "failed", **settings)  # type: ignore[arg-type]
    assert failures and set(failed.errors) == {0, 1}
    for seed, member in zip((0, 1), failed.members, strict=True):
        assert [row["update"] for row in failed.verifiers[seed].evaluations] == [member.num_updates]
    monkeypatch.setattr(rounds, "collect_groups", collect)
    resumed = Population.from_agents([reinforce.resume(tmp_path / "failed" / f"seed-{seed}") for seed in (0, 1)])
    try:
        resumed.learn([30 - member.num_env_steps for member in resumed.members], run_dir=tmp_path / "failed")
    finally:
        resumed.close()
    whole = train_population("toy/Counting-v0", [0, 1], 30, run_dir=tmp_path / "whole", **settings)  # type: ignore[arg-type]
    for seed in (0, 1):
        checks = [(row["update"], row["env_steps"]) for row in whole.verifiers[seed].evaluations]
        assert len(checks) >= 2
        assert [(row["update"], row["env_steps"]) for row in resumed.verifiers[seed].evaluations] == checks
        assert _metrics_updates(tmp_path / "failed" / f"seed-{seed}") == _metrics_updates(
            tmp_path / "whole" / f"seed-{seed}"
        )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("eval", "pop"), "pop holds a population (seeds 3,7, each in pop/seed-S), not one run: pass one member's"),
        (("export", "pop", "--out", "p.pt"), "not one run: pass one member's run directory, such as pop/seed-3"),
        (("train", "--resume", "pop"), "not one run: continue it with --seeds 3,7 --resume pop"),
        (("train", "--seeds", "3,7", "--resume", "pop/seed-3"), "pop/seed-3 holds one run, not a population: continue"),
        (("train", "--seeds", "3,9", "--resume", "pop"), "no member of seed 9 (its seeds are 3,7): pass --seeds 3,7"),
        (("train", "toy/Counting-v0", "--run-dir", "pop"), "or continue it with --seeds 3,7 --resume pop"),
        (("train", "toy/Counting-v0", "--seeds", "1,2", "--run-dir", "pop/seed-3"), "continue it with --resume pop/"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, tuple) else None,
)
def test_a_population_directory_where_one_run_is_expected_is_refused_naming_the_fix(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    message: str,
) -> None:
    from cli_support import one_line, run_main, snapshot

    train_population("toy/Counting-v0", [3, 7], 20, run_dir=tmp_path / "pop", **TINY)
    before = snapshot(tmp_path)
    result = run_main(*args, cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys)
    assert result.returncode == 2, result.stderr
    assert message in one_line(result.stderr)
    assert snapshot(tmp_path) == before
    if args[0] == "eval":
        with pytest.raises(ReinforceError, match="holds a population"):
            reinforce.load(tmp_path / "pop")


def test_plot_of_a_population_directory_draws_its_seeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli_support import run_main

    from reinforce.cli import show

    train_population("toy/Counting-v0", [3, 7], 20, run_dir=tmp_path / "pop", **TINY)
    drawn: list[tuple[list[Path], Path]] = []
    monkeypatch.setattr(
        "reinforce.run.plotting.plot_comparison", lambda runs, out, **kwargs: drawn.append((list(runs), out))
    )
    assert show.default_plot_path([Path("pop")], None) == Path("pop/curve.png")
    result = run_main("plot", "pop", cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys)
    assert result.returncode == 0, result.stderr
    assert drawn == [([Path("pop/seed-3"), Path("pop/seed-7")], Path("pop/curve.png"))]
    result = run_main(
        "plot", "pop/seed-7", "pop/seed-3", "--out", "both.png", cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys
    )
    assert result.returncode == 0, result.stderr
    assert drawn[-1] == ([Path("pop/seed-7"), Path("pop/seed-3")], Path("both.png"))  # members named one by one


@pytest.mark.parametrize(
    ("seeds", "message"),
    [
        (None, "seeds must be integers, such as range(10) or [0, 2, 5], got None"),
        ("0-3", "seeds must be integers, such as range(10) or [0, 2, 5], got '0-3'"),
        (range(10**12), "a population takes at most 10000 seeds"),  # refused before the range is listed
    ],
)
def test_seeds_that_are_not_integers_or_too_many_are_one_error(seeds: Any, message: str) -> None:
    with pytest.raises(ReinforceError, match=re.escape(message)):
        Population("toy/Counting-v0", seeds, **TINY)
    with pytest.raises(ReinforceError, match=re.escape(message)):
        train_population("toy/Counting-v0", seeds, 10, **TINY)


def test_population_update_runs_in_the_configs_threads_and_puts_torchs_back(monkeypatch: pytest.MonkeyPatch) -> None:
    import reinforce.population.members as members

    seen: list[int] = []
    play_round = members.play_round
    monkeypatch.setattr(
        members, "play_round", lambda *args: (seen.append(torch.get_num_threads()), play_round(*args))[1]
    )
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        population = Population("CartPole-v1", seeds=[0, 1], num_envs=2, num_threads=1)
        population.update()
        assert seen == [1] and torch.get_num_threads() == 2
        population.close()
    finally:
        torch.set_num_threads(before)
