from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from reinforce import ReinforceError
from reinforce.cli import parse_seeds
from reinforce.run.metrics import EPISODE_FIELDS, METRIC_FIELDS, CSVLogger
from reinforce.sweep import (
    MedianSummary,
    check_seeds,
    check_sweep_dir,
    median_interval_ranks,
    plan_sweep,
    setting_slug,
    steps_to_solve,
    summarize_median,
    summarize_trials,
)


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (5, None),  # [x_(1), x_(5)] covers 1 - 2/32 = 0.9375 < 0.95
        (6, (1, 6, 1 - 2 / 64)),
        (10, (2, 9, 1 - 2 * (1 + 10) / 1024)),
        (20, (6, 15, 1 - 2 * (1 + 20 + 190 + 1140 + 4845 + 15504) / 2**20)),  # the textbook table's 6th and 15th
        (100, (40, 61, None)),
    ],
)
def test_median_interval_ranks_match_the_binomial_table(n: int, expected: tuple | None) -> None:
    ranks = median_interval_ranks(n)
    if expected is None:
        assert ranks is None
        return
    assert ranks[:2] == expected[:2]
    if expected[2] is not None:
        assert ranks[2] == pytest.approx(expected[2], rel=1e-12)
    assert ranks[2] >= 0.95


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_too_few_trials_have_no_interval(n: int) -> None:
    assert median_interval_ranks(n) is None
    summary = summarize_median(np.arange(n, dtype=float))
    assert summary.low is None and summary.high is None and summary.coverage is None


@pytest.mark.parametrize("n", [6, 10, 13])
def test_the_coverage_is_what_sampling_gives(n: int) -> None:
    low, high, coverage = median_interval_ranks(n)
    samples = np.sort(np.random.default_rng(n).exponential(size=(40_000, n)), axis=1)
    median = math.log(2)  # of the exponential distribution
    covered = np.mean((samples[:, low - 1] <= median) & (median <= samples[:, high - 1]))
    assert covered == pytest.approx(coverage, abs=0.005)


def test_censored_values_make_the_median_infinite_unless_more_than_half_solved() -> None:
    inf = math.inf
    assert summarize_median([1.0, 2.0, inf, inf]).median == inf  # half solved: not solved
    assert summarize_median([1.0, 2.0, 3.0, inf]).median == 2.5
    assert summarize_median([5.0, 1.0, 3.0, inf, 2.0, 4.0]) == MedianSummary(3.5, 1.0, inf, 1 - 2 / 64)
    with pytest.raises(ValueError):
        summarize_median([])


@pytest.mark.parametrize(
    ("text", "seeds"), [("0-9", tuple(range(10))), ("0,2,5", (0, 2, 5)), ("0-2, 7", (0, 1, 2, 7)), ("4", (4,))]
)
def test_seeds_take_ranges_and_lists(text: str, seeds: tuple[int, ...]) -> None:
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["", "a", "3-1", "1-", "0,,2", "-1", "1,1", "5000000000", "0-4294967295", "0-10000"])
def test_bad_seeds_are_refused(text: str) -> None:
    with pytest.raises(ReinforceError, match="seed"):
        parse_seeds(text)


def test_many_seeds_are_checked_in_linear_time_and_capped() -> None:
    assert parse_seeds("0-9999") == tuple(range(10_000))  # the quadratic duplicate check took minutes here
    with pytest.raises(ReinforceError, match="at most 10000 seeds") as error:
        check_seeds(range(10**9))
    assert error.value.fields == ("seeds",)
    with pytest.raises(ReinforceError, match="seed 9998 is given twice"):
        check_seeds([*range(9_999), 9_998])


def test_setting_slugs_are_readable_and_safe() -> None:
    assert setting_slug({}) == "default"
    assert setting_slug({"lr": 0.01, "baseline": "value"}) == "baseline=value,lr=0.01"
    assert setting_slug({"hidden_sizes": (64, 64), "reward_to_go": False}) == "hidden_sizes=64x64,reward_to_go=false"
    assert setting_slug({"hidden_sizes": (), "device": "cuda:1"}) == "device=cuda-1,hidden_sizes=none"
    long = setting_slug({f"key{index}": "v" * 20 for index in range(10)})
    assert len(long) <= 120 and "/" not in long


def test_a_plan_validates_every_setting_before_anything_exists(tmp_path: Path) -> None:
    common = {"seeds": [0, 1], "total_steps": 1000, "out": tmp_path / "out"}
    plan = plan_sweep("CartPole-v1", grid={"lr": [0.01, 0.03], "baseline": ["none", "value"]}, **common)
    assert len(plan.trials) == 8 and next(iter(plan.settings)) == "baseline=none,lr=0.01"
    assert plan.trials[0].run_dir == str(tmp_path / "out" / "baseline=none,lr=0.01" / "seed-0")
    assert plan.trials[0].hyperparameters["num_envs"] == 32  # the base under the grid
    bad = [
        ({"lrr": [1]}, "unknown hyperparameter 'lrr'"),
        ({"lr": []}, "no value for lr"),
        ({"lr": [0.1, 0.1]}, "lr=0.1 twice"),
        ({"gamma": [0.5, 2.0]}, r"grid setting gamma=2.0: invalid gamma=2.0"),
        ({"device": ["cpu", "meta"]}, r"grid setting device=meta: device 'meta'"),
        ({"workers": [1, 2]}, "sweep trials train locally, each in a Ray task of its own, so workers cannot be set"),
        ({"backend": ["local", "ray"]}, "so backend cannot be set"),
    ]
    for grid, message in bad:
        with pytest.raises(ReinforceError, match=message):
            plan_sweep("CartPole-v1", grid=grid, **common)
    assert not (tmp_path / "out").exists()


def test_a_directory_of_another_sweep_or_of_something_else_is_refused(tmp_path: Path) -> None:
    from reinforce.run.files import write_json

    plan = plan_sweep("CartPole-v1", seeds=[0, 1], total_steps=1000, out=tmp_path, grid={"lr": [0.01, 0.03]})
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ReinforceError, match="not a sweep directory"):
        check_sweep_dir(plan)
    write_json(tmp_path / "sweep.json", plan.spec)
    check_sweep_dir(plan_sweep("CartPole-v1", seeds=[1, 0], total_steps=1000, out=tmp_path, grid={"lr": [0.03, 0.01]}))
    for changes, differing in [
        ({"seeds": [0, 1, 2]}, "differ in: seeds ("),
        ({"total_steps": 2000}, "differ in: total steps ("),
        ({"grid": {"lr": [0.01]}}, "differ in: grid ("),
        ({"grid": {"lr": [0.01, 0.03]}, "hyperparameters": {"num_envs": 4}}, "differ in: hyperparameters ("),
    ]:
        arguments = {"seeds": [0, 1], "total_steps": 1000, "grid": {"lr": [0.01, 0.03]}, **changes}
        with pytest.raises(ReinforceError, match=re.escape(differing)):
            check_sweep_dir(plan_sweep("CartPole-v1", out=tmp_path, **arguments))
    with pytest.raises(ReinforceError, match="whose settings differ in: env id, hyperparameters "):
        check_sweep_dir(
            plan_sweep("Acrobot-v1", seeds=[0, 1], total_steps=1000, out=tmp_path, grid={"lr": [0.01, 0.03]})
        )


def test_a_relative_sweep_directory_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Ray's workers run where Ray was started: a relative path would put the trials somewhere else
    monkeypatch.chdir(tmp_path)
    plan = plan_sweep("CartPole-v1", seeds=[0], total_steps=1000, out="sweeps/x")
    assert Path(plan.trials[0].run_dir) == tmp_path / "sweeps" / "x" / "default" / "seed-0"


def test_a_diverged_trial_counts_as_the_worst_final_return() -> None:
    def result(seed: int, final_return: float | None, error: str | None = None) -> dict[str, object]:
        return {"setting": "default", "seed": seed, "steps_to_solve": None, "final_return": final_return} | {
            "error": error
        }

    results = [result(0, 100.0), result(1, 200.0), result(2, None, "non-finite rewards")]
    (row,) = summarize_trials({"default": {}}, results)
    assert row.failed == 1 and row.final_return is not None and row.final_return.median == 100.0
    (unevaluated,) = summarize_trials({"default": {}}, [result(0, None), result(1, None, "diverged")], evaluated=False)
    assert unevaluated.final_return is None  # no evaluations asked for: no final return, diverged or not


@pytest.mark.parametrize(
    ("seeds", "message"), [([], "at least one seed in seeds"), ([1, 2, 1], "1 is given twice in seeds")]
)
def test_seed_errors_below_the_cli_name_the_argument_not_the_flag(seeds: list[int], message: str) -> None:
    with pytest.raises(ReinforceError, match=message) as error:
        check_seeds(seeds)
    assert "--" not in str(error.value)


def solving_run(root: Path, batches: list[list[float]]) -> Path:
    """A run directory whose metrics.csv and episodes.csv hold one update per batch of episode returns."""
    metrics, episodes = CSVLogger(root / "metrics.csv", METRIC_FIELDS), CSVLogger(root / "episodes.csv", EPISODE_FIELDS)
    count = 0
    for update, returns in enumerate(batches, start=1):
        for value in returns:
            count += 1
            episodes.write({"episode": count, "update": update, "env_steps": 10 * count, "return": value, "length": 1})
        metrics.write({"update": update, "env_steps": 10 * count, "episodes": count})
    metrics.close()
    episodes.close()
    return root


def test_steps_to_solve_is_the_trainers_criterion_after_each_update(tmp_path: Path) -> None:
    run = solving_run(tmp_path, [[500.0] * 99, [0.0], [500.0] * 50, [500.0] * 50])
    assert steps_to_solve(run, 495.0) == 10 * 100  # not after 99 episodes at 500: the window is not full
    assert steps_to_solve(run, 496.0) == 10 * 200  # the 0 leaves the window of the last 100 with update 4
    assert steps_to_solve(run, 501.0) is None
    assert steps_to_solve(run, None) is None  # no threshold, nothing is solved


def test_a_settings_seeds_are_one_population_split_only_for_idle_cpus(tmp_path: Path) -> None:
    from reinforce.sweep import plan_sweep, population_groups

    plan = plan_sweep("CartPole-v1", seeds=range(5), total_steps=100, out=tmp_path, grid={"lr": [0.01, 0.02]})
    groups = population_groups(plan.trials, cpus=2)
    assert [[trial.seed for trial in group] for group in groups] == [[0, 1, 2, 3, 4]] * 2
    assert [group[0].setting for group in groups] == ["lr=0.01", "lr=0.02"]
    split = population_groups(plan.trials, cpus=4)
    assert sorted(len(group) for group in split) == [2, 2, 3, 3]
    assert all(len({trial.setting for trial in group}) == 1 for group in split)
    assert sorted(trial.run_dir for group in split for trial in group) == sorted(t.run_dir for t in plan.trials)
    assert all(len(group) == 1 for group in population_groups(plan.trials, cpus=64))
