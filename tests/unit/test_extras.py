from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from reinforce import ReinforceError
from reinforce.run.metrics import require_tensorboard
from reinforce.run.video import check_video_path


def test_a_missing_tensorboard_names_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard now raises ImportError
    with pytest.raises(ReinforceError, match=r"pip install 'reinforce\[tensorboard\]'"):
        require_tensorboard()


@pytest.mark.parametrize(("module", "name"), [("imageio", "out.gif"), ("imageio_ffmpeg", "out.mp4")])
def test_a_missing_video_package_names_its_extra(monkeypatch: pytest.MonkeyPatch, module: str, name: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ReinforceError, match=r"pip install 'reinforce\[video\]'"):
        check_video_path(Path(name))


@pytest.mark.parametrize("name", ["out.avi", "out", "out.gif.txt"])
def test_only_mp4_and_gif_are_video_files(name: str) -> None:
    with pytest.raises(ReinforceError, match=r"\.mp4 or \.gif"):
        check_video_path(Path(name))
    check_video_path(Path("out.GIF"))


@pytest.mark.parametrize("name", ["pipe.mp4", "pipe.gif"])
def test_a_video_onto_a_pipe_is_refused_before_anything_runs(tmp_path: Path, name: str) -> None:
    pipe = tmp_path / name
    os.mkfifo(pipe)  # ffmpeg blocked on it until a reader came, then printed seven lines of its own errors
    with pytest.raises(ReinforceError, match=f"cannot write {pipe}: it is not a regular file"):
        check_video_path(pipe)
    assert stat.S_ISFIFO(os.lstat(pipe).st_mode)


@pytest.mark.parametrize(
    ("env_id", "module", "extra"), [("LunarLander-v3", "Box2D", "box2d"), ("Hopper-v5", "mujoco", "mujoco")]
)
def test_a_missing_gymnasium_dependency_names_reinforces_extra(
    monkeypatch: pytest.MonkeyPatch, env_id: str, module: str, extra: str
) -> None:
    from reinforce.rollout.envs import env_source

    monkeypatch.setitem(sys.modules, module, None)  # importing it now raises ImportError
    family = f"gymnasium.envs.{extra}"
    for name in [name for name in sys.modules if name.startswith(family)]:
        monkeypatch.delitem(sys.modules, name)  # so that the env's module imports its dependency again
    with pytest.raises(ReinforceError, match=rf"needs an optional dependency .*: pip install 'reinforce\[{extra}\]'$"):
        env_source(env_id).make(1)


def test_mujoco_envs_write_no_log_file_in_the_working_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mujoco = pytest.importorskip("mujoco")
    from reinforce.rollout.envs import env_source

    monkeypatch.chdir(tmp_path)
    previous = mujoco.get_mju_user_warning()
    try:
        mujoco.set_mju_user_warning(None)
        env_source("InvertedPendulum-v5").make(2).close()  # MuJoCo 4 warns of a deprecation in Gymnasium's model
        assert not (tmp_path / "MUJOCO_LOG.TXT").exists()
        handler = mujoco.get_mju_user_warning()
        with caplog.at_level("DEBUG", logger="reinforce"):
            handler("Nan, Inf or huge value in QACC at DOF 0. The simulation is unstable.")
            handler("compiler attribute 'x' is deprecated")
        assert [record[1] for record in caplog.record_tuples] == [30, 10]  # the deprecation to the debug log

        def users(message: str) -> None:
            pass

        mujoco.set_mju_user_warning(users)
        env_source("InvertedPendulum-v5").make(1).close()
        assert mujoco.get_mju_user_warning() is users  # a handler of the user's stays
    finally:
        mujoco.set_mju_user_warning(previous)
