from __future__ import annotations

import csv
import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from reinforce import ReinforceError
from reinforce.cli import main
from reinforce.run.metrics import METRIC_FIELDS
from reinforce.run.plot_process import PlotProcess
from reinforce.run.plotting import group_runs, mean_and_band, plot_comparison, plot_runs, t_quantile_95


def fake_run(root: Path, name: str, *, seed: int, lr: float, steps: list[int], returns: list[float]) -> Path:
    run = root / name
    run.mkdir()
    config = {"env_id": "CartPole-v1", "seed": seed, "total_steps": steps[-1], "hyperparameters": {"lr": lr}}
    (run / "config.json").write_text(json.dumps(config))
    with (run / "metrics.csv").open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=METRIC_FIELDS, restval=0)
        writer.writeheader()
        for update, (step, value) in enumerate(zip(steps, returns, strict=True), start=1):
            row = {"update": update, "env_steps": step, "wall_time_s": step / 1000}
            writer.writerow({**row, "charts/episode_return_mean_100": value})
    return run


def test_t_quantiles_match_the_table_and_approach_the_normal_one() -> None:
    assert t_quantile_95(1) == pytest.approx(12.706) and t_quantile_95(4) == pytest.approx(2.776)
    assert t_quantile_95(30) == pytest.approx(2.042, abs=0.005)
    assert t_quantile_95(1000) == pytest.approx(1.962, abs=0.005)


def test_the_band_is_the_t_interval_of_the_mean() -> None:
    curves = np.stack([np.arange(16.0), np.ones(16)], axis=1)  # 16 runs: the interval lies inside their range
    mean, low, high = mean_and_band(curves)
    np.testing.assert_allclose(mean, [7.5, 1.0])
    np.testing.assert_allclose(high - mean, [2.131 * np.std(np.arange(16.0), ddof=1) / 4, 0.0])
    np.testing.assert_allclose(mean - low, high - mean)
    with pytest.raises(ValueError):
        mean_and_band(curves[:1])


def test_the_band_never_leaves_the_range_of_the_seeds() -> None:
    """Two CartPole seeds at 10 and 400: the t interval (12.7 standard errors) would reach -2300, below any return."""
    curves = np.array([[10.0, 400.0, 500.0], [400.0, 10.0, 500.0]])
    mean, low, high = mean_and_band(curves)
    np.testing.assert_allclose(mean, [205.0, 205.0, 500.0])
    np.testing.assert_allclose(low, [10.0, 10.0, 500.0])
    np.testing.assert_allclose(high, [400.0, 400.0, 500.0])


def test_runs_differing_only_in_seed_form_one_group(tmp_path: Path) -> None:
    a = fake_run(tmp_path, "a", seed=0, lr=0.01, steps=[100, 200], returns=[10, 20])
    b = fake_run(tmp_path, "b", seed=1, lr=0.01, steps=[150, 250], returns=[12, 30])
    c = fake_run(tmp_path, "c", seed=0, lr=0.03, steps=[100, 300], returns=[15, 60])
    assert group_runs([a, b, c]) == {"CartPole-v1 lr=0.01": [a, b], "CartPole-v1 lr=0.03": [c]}
    for x in ("steps", "time"):
        out = plot_comparison([a, b, c], tmp_path / f"{x}.png", x=x, threshold=475.0)
        assert out.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ReinforceError, match="cannot plot against"):
        plot_comparison([a], tmp_path / "x.png", x="episodes")


def test_a_run_without_updates_is_a_clear_error(tmp_path: Path) -> None:
    run = fake_run(tmp_path, "a", seed=0, lr=0.01, steps=[100], returns=[10])
    (run / "metrics.csv").write_text(",".join(METRIC_FIELDS) + "\n")
    with pytest.raises(ReinforceError, match="no updates yet"):
        plot_comparison([run], tmp_path / "x.png")


def episodes_run(root: Path) -> Path:
    run = root / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"env_id": "CartPole-v1"}))
    with (run / "episodes.csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["return", "length", "env_steps"])
        writer.writerows([[float(n % 50), n % 50, 10 * n] for n in range(1, 300)])
    return run


def finish_ordered_episodes(updates: int, per_update: int = 10) -> dict[str, np.ndarray]:
    """Every update draws the same returns 10, 20, ..., listed as episodes.csv lists them: short ones first."""
    returns = np.tile(np.arange(1, per_update + 1) * 10.0, updates)
    steps = np.repeat((np.arange(updates) + 1) * 1000, per_update)
    return {"return": returns, "length": returns / 2, "env_steps": steps}


def test_the_per_update_curve_shows_no_saw_tooth_of_the_finish_order() -> None:
    from reinforce.run.plotting import moving_average, per_update

    episodes = finish_ordered_episodes(updates=6, per_update=20)
    assert np.ptp(moving_average(episodes["return"], 10)[20:40]) == 100  # the old 10-episode curve: a saw-tooth
    updates = per_update(episodes)
    np.testing.assert_array_equal(updates["env_steps"], [1000, 2000, 3000, 4000, 5000, 6000])
    np.testing.assert_allclose(updates["return"], 105.0)  # flat: the policy did not change
    np.testing.assert_allclose(updates["length"], 52.5)
    np.testing.assert_allclose(updates["return_mean_100"][4:], 105.0)  # 100 episodes = 5 whole updates
    shuffled = {key: value.copy() for key, value in episodes.items()}
    shuffled["return"][:20] = shuffled["return"][:20][::-1]
    shuffled["length"][:20] = shuffled["length"][:20][::-1]
    for key in ("return", "length"):  # the order within an update changes nothing
        np.testing.assert_array_equal(per_update(shuffled)[key], updates[key])


@pytest.mark.parametrize("length_is_return", [False, True])
def test_the_run_figure_shows_every_episode_in_its_legend_and_one_panel_where_length_is_return(
    length_is_return: bool,
) -> None:
    from reinforce.run.plotting import draw_runs

    episodes = finish_ordered_episodes(updates=3)
    if length_is_return:
        episodes["length"] = episodes["return"].copy()
    figure = draw_runs([(Path("run"), episodes)], threshold=475.0, title="CartPole-v1")
    assert len(figure.axes) == (1 if length_is_return else 2)
    labels = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert labels == ["each episode", "mean of each update", "mean of the last 100 episodes", "solved (475)"]
    (dots,) = figure.axes[0].collections
    assert len(dots.get_offsets()) == 30 and dots.get_alpha() >= 0.4  # every episode, visibly
    title = figure.axes[0].get_title()
    assert ("one panel for both" in title) == length_is_return
    assert ("= length" in figure.axes[0].get_ylabel()) == length_is_return


def test_the_plot_process_draws_in_its_child_what_plot_runs_draws_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = episodes_run(tmp_path)
    expected = plot_runs([run], tmp_path / "here.png", threshold=20.0)
    with PlotProcess() as plotter:
        monkeypatch.setattr("reinforce.run.plot_process.plot_runs", lambda *args, **kwargs: pytest.fail("drawn here"))
        plotter.submit([run], tmp_path / "child.png", threshold=20.0)
        assert plotter.result() == tmp_path / "child.png"
    assert (tmp_path / "child.png").read_bytes() == expected.read_bytes()


def test_the_plot_process_draws_several_requests_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
    runs = [episodes_run(tmp_path / name) for name in ("a", "b", "c")]
    expected = [plot_runs([run], tmp_path / f"here-{index}.png") for index, run in enumerate(runs)]
    with PlotProcess() as plotter:
        monkeypatch.setattr("reinforce.run.plot_process.plot_runs", lambda *args, **kwargs: pytest.fail("drawn here"))
        for index, run in enumerate(runs):
            plotter.submit([run], tmp_path / f"child-{index}.png")
        assert plotter.result() == tmp_path / "child-2.png"
    for index, here in enumerate(expected):
        assert (tmp_path / f"child-{index}.png").read_bytes() == here.read_bytes()
    assert not list(tmp_path.glob(".*.partial"))


def test_a_curve_without_a_suffix_is_a_png_and_no_partial_file_stays(tmp_path: Path) -> None:
    out = plot_runs([episodes_run(tmp_path)], tmp_path / "curve")
    assert out.read_bytes().startswith(b"\x89PNG") and not list(tmp_path.glob(".*partial"))


def test_a_curve_onto_a_pipe_is_refused_and_leaves_it(tmp_path: Path) -> None:
    run = episodes_run(tmp_path)
    seed = fake_run(tmp_path, "seed-0", seed=0, lr=0.1, steps=[10, 20], returns=[1.0, 2.0])
    pipe = tmp_path / "pipe.png"
    os.mkfifo(pipe)
    for draw in (lambda: plot_runs([run], pipe), lambda: plot_comparison([seed], pipe)):
        with pytest.raises(ReinforceError, match=f"cannot write {pipe}: it is not a regular file"):
            draw()
    assert stat.S_ISFIFO(os.lstat(pipe).st_mode) and not list(tmp_path.glob(".*partial"))
    with pytest.raises(SystemExit) as exit_info:  # `reinforce plot --out`, before anything is drawn
        main(["plot", str(run), "--out", str(pipe)])
    assert exit_info.value.code == 2 and stat.S_ISFIFO(os.lstat(pipe).st_mode)


def test_many_requests_never_block_on_the_childs_replies(tmp_path: Path) -> None:
    import signal

    def hung(*_: object) -> None:
        raise AssertionError("the parent and the child blocked each other")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    try:
        with PlotProcess() as plotter:  # 1500 replies (refusals, each naming its long path) overflow the pipe
            for index in range(1500):
                plotter.submit([tmp_path / ("missing" * 20) / str(index)], tmp_path / f"{index}.png")
            with pytest.raises(ReinforceError, match=r"and 1499 more plots refused"):
                plotter.result()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_leaving_without_the_result_ends_the_child_and_leaves_nothing_half_written(tmp_path: Path) -> None:
    from reinforce.run.plotting import partial_path

    run = episodes_run(tmp_path)
    plotter = PlotProcess()
    assert plotter.process is not None
    partial = partial_path(tmp_path / "curve.png", plotter.process.pid)
    partial.write_bytes(b"half a PNG")  # as a child killed while writing would leave it
    plotter.submit([run], tmp_path / "curve.png")
    plotter.close()  # an error or a signal before `result`: the child is ended at once
    assert plotter.process is None and not partial.exists()


def test_the_plot_process_child_ignores_modules_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shadow = tmp_path / "cwd"
    shadow.mkdir()
    (shadow / "matplotlib.py").write_text(f"open({str(tmp_path / 'imported')!r}, 'w').close()\nraise ImportError\n")
    monkeypatch.chdir(shadow)
    run = episodes_run(tmp_path)
    with PlotProcess() as plotter:
        monkeypatch.setattr("reinforce.run.plot_process.plot_runs", lambda *args, **kwargs: pytest.fail("drawn here"))
        plotter.submit([run], tmp_path / "child.png")
        assert plotter.result() == tmp_path / "child.png"
    assert not (tmp_path / "imported").exists()


def test_the_plot_process_reports_what_plot_runs_refuses(tmp_path: Path) -> None:
    (tmp_path / "blocked").write_text("a file, not a directory")
    with PlotProcess() as plotter, pytest.raises(ReinforceError, match="cannot write"):
        plotter.submit([episodes_run(tmp_path)], tmp_path / "blocked" / "curve.png")
        plotter.result()


def test_a_child_that_does_not_answer_in_time_is_given_up_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("reinforce.run.plot_process.REPLY_TIMEOUT_S", 0.0)  # the child needs ~0.2 s to draw
    drawn_here: list[Path] = []
    original = plot_runs

    def plot_here(run_dirs: list[Path], out: Path, **kwargs: object) -> Path:
        drawn_here.append(out)
        return original(run_dirs, out, **kwargs)  # type: ignore[arg-type]

    with PlotProcess() as plotter:
        monkeypatch.setattr("reinforce.run.plot_process.plot_runs", plot_here)
        plotter.submit([episodes_run(tmp_path)], tmp_path / "curve.png")
        assert plotter.result() == tmp_path / "curve.png"
        assert plotter.process is None  # the child was ended
    assert drawn_here == [tmp_path / "curve.png"] and (tmp_path / "curve.png").stat().st_size > 0


@pytest.mark.parametrize("failure", ["not started", "died"])
def test_without_its_child_the_plot_process_draws_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    if failure == "not started":
        monkeypatch.setattr("sys.executable", str(tmp_path / "no-python"))
    plotter = PlotProcess()
    assert (plotter.process is None) == (failure == "not started")
    if plotter.process is not None:
        plotter.process.kill()
        plotter.process.wait()
    plotter.submit([episodes_run(tmp_path)], tmp_path / "curve.png")
    assert plotter.result() == tmp_path / "curve.png" and (tmp_path / "curve.png").stat().st_size > 0
    plotter.close()
