"""Episode videos (MP4 or GIF) from ``rgb_array`` rendering, through imageio (the ``video`` extra)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from reinforce.errors import ReinforceError
from reinforce.run.files import refuse_special_file

VIDEO_SUFFIXES = (".mp4", ".gif")
SDL_DRIVERS = {"SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"}
"""What `headless_sdl` sets: off-screen rendering needs no window and no sound device."""


@contextlib.contextmanager
def headless_sdl() -> Iterator[None]:
    """Set SDL's video and audio drivers to ``dummy`` (where not set already) and put them back afterwards.

    pygame-rendered environments (the classic-control ones) initialise SDL when they first render; on a
    machine without a display or sound card SDL would otherwise print errors to stderr.
    """
    added = [name for name in SDL_DRIVERS if name not in os.environ]
    os.environ.update({name: SDL_DRIVERS[name] for name in added})
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def check_video_path(path: Path) -> None:
    """Refuse a file name without a video suffix, and check the extra is installed, before anything runs.

    Raises:
        ReinforceError: the suffix is not .mp4 or .gif, ``path`` is a device, a named pipe or a socket, or
            imageio (and imageio-ffmpeg for MP4) is missing.
    """
    suffix = path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise ReinforceError(f"cannot write a video to {path}: give a .mp4 or .gif file name")
    refuse_special_file(path)  # ffmpeg blocked on a named pipe, then printed its own errors
    try:
        import imageio  # noqa: F401

        if suffix == ".mp4":
            import imageio_ffmpeg  # noqa: F401
    except ImportError:
        raise ReinforceError(
            f"writing {path} needs imageio and imageio-ffmpeg: pip install 'reinforce[video]'"
        ) from None


class VideoWriter:
    """Appends RGB frames (``[H, W, 3]`` uint8 arrays) to an MP4 or GIF file.

    Args:
        path: the file to write; its suffix picks the format.
        fps: frames per second (the env's ``render_fps``).
    """

    def __init__(self, path: Path, fps: float) -> None:
        check_video_path(path)
        import imageio.v2 as imageio

        self.path = path
        self.num_frames = 0
        options: dict[str, Any]
        if path.suffix.lower() == ".gif":
            options = {"duration": 1000.0 / fps, "loop": 0}  # Pillow's GIF writer takes ms per frame, not fps
        else:
            options = {"fps": fps, "macro_block_size": 1}  # keep the frame size as rendered
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = imageio.get_writer(path, **options)
        except OSError as exc:
            raise ReinforceError(f"cannot write {path} ({exc.strerror or exc}): choose another video path") from None

    def append(self, frame: Any) -> None:
        """Add one frame."""
        self._writer.append_data(frame)
        self.num_frames += 1

    def close(self) -> None:
        """Finish the file."""
        self._writer.close()


def record_video(
    make_env: Callable[[str], Any], act: Callable[[Any, Any], Any], path: Path, episodes: int, seed: int | None
) -> tuple[list[float], list[int], int]:
    """Play ``episodes`` episodes of ``make_env("rgb_array")`` with ``act`` (see `record_episodes`).

    ``make_env`` makes one environment with the given render mode (as
    `reinforce.rollout.envs.EnvSource.make_one` does).

    One ``rgb_array``-rendering env plays them one after the other, the first reset with ``seed``. While it
    records, SDL (pygame's renderer) is told to use no display and no sound device (`headless_sdl`).

    Returns:
        The episodes' returns, their lengths and the number of frames written.

    Raises:
        ReinforceError: ``path`` is not an .mp4 or .gif file, the ``video`` extra is missing, or the env does
            not render frames.
    """
    check_video_path(path)
    with headless_sdl():
        return record_episodes(make_env("rgb_array"), act, path, episodes=episodes, seed=seed)


def record_episodes(
    env: Any, act: Callable[[Any, Any], Any], path: Path, *, episodes: int, seed: int | None
) -> tuple[list[float], list[int], int]:
    """Play ``episodes`` episodes of ``env`` (rendering ``rgb_array`` frames) with ``act`` and write them to ``path``.

    Args:
        env: a Gymnasium env made with ``render_mode="rgb_array"``; closed at the end.
        act: the action for one observation and its ``info["action_mask"]`` (None where the info has none).
        path: the video file (``.mp4`` or ``.gif``).
        episodes: episodes, recorded one after the other.
        seed: the reset seed of the first episode.

    Returns:
        The episodes' returns, their lengths and the number of frames written.
    """
    returns: list[float] = []
    lengths: list[int] = []
    try:
        writer = VideoWriter(path, fps=float(env.metadata.get("render_fps") or 30))
        try:
            for episode in range(episodes):
                observation, info = env.reset(seed=seed if episode == 0 else None)
                _append_frame(writer, env)
                total, length, done = 0.0, 0, False
                while not done:
                    action = act(observation, info.get("action_mask"))
                    observation, reward, terminated, truncated, info = env.step(action)
                    _append_frame(writer, env)
                    total += float(reward)
                    length += 1
                    done = bool(terminated or truncated)
                returns.append(total)
                lengths.append(length)
        finally:
            writer.close()
    finally:
        env.close()
    return returns, lengths, writer.num_frames


def _append_frame(writer: VideoWriter, env: Any) -> None:
    frame = env.render()
    if not isinstance(frame, np.ndarray) or frame.ndim != 3:
        name = env.spec.id if env.spec is not None else "the environment"
        raise ReinforceError(f"{name} does not render rgb_array frames: it cannot be recorded")
    writer.append(frame)
