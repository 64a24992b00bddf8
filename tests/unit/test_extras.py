from __future__ import annotations

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
