"""The curve drawn in a child process (`PlotProcess`), so that its imports overlap the training's."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from reinforce.errors import ReinforceError
from reinforce.run.plotting import partial_path, plot_comparison, plot_runs


class PlotProcess:
    """`plot_runs` (and `plot_comparison`) in a child process, started early so that its imports overlap the caller's.

    ``reinforce train`` starts a `PlotProcess` before it imports torch and trains: the child imports numpy and
    matplotlib meanwhile, on another core; when training ends, `submit` (in `reinforce.training.finish_run`)
    hands it the run, the policy is evaluated while the child draws, and `result` waits for the file. What this
    saves, and costs, is measured in docs/benchmarks.md ("The curve's child process"). ``reinforce train
    --seeds`` submits each member's curve as soon as that member stops, while the others train on, and the
    seeds' band at the end; the child draws the requests in order. If the child cannot be started, or fails in
    any way other than a `ReinforceError` of the plot, the plots it did not draw are drawn in this process
    instead: the files are the same either way. Leaving without `result` (an error, a signal) ends the child at
    once: the curves it finished stay, the others are not drawn, and none is left half written.

    Example:
        >>> with PlotProcess() as plotter:  # doctest: +SKIP
        ...     ...  # train, writing runs/X
        ...     plotter.submit([Path("runs/X")], Path("runs/X/curve.png"), threshold=475.0)
        ...     ...  # evaluate
        ...     plotter.result()
    """

    def __init__(self) -> None:
        self._requests: list[PlotRequest] = []
        self._replies: list[Any] = []
        self._unread = b""  # the start of a reply line not yet complete
        self.process: subprocess.Popen[bytes] | None
        try:
            self.process = subprocess.Popen(
                # not `-m`, which puts the working directory first on the path: a matplotlib.py (or json.py,
                # ...) there would be imported by the child; the code below drops that entry first
                [sys.executable, "-c", CHILD_COMMAND],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,  # its failures are reproduced, and reported, by the fallback
                start_new_session=True,  # a Ctrl-C in the terminal is the parent's to handle
            )
        except OSError:
            self.process = None

    def __enter__(self) -> PlotProcess:
        """The plotter itself; leaving the ``with`` block ends the child."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """End the child (see `close`)."""
        self.close()

    def submit(
        self, run_dirs: Sequence[Path], out: Path, *, threshold: float | None = None, comparison: bool = False
    ) -> None:
        """Ask for ``plot_runs(run_dirs, out, threshold=threshold)``; it is drawn while the caller goes on.

        Requests may follow one another until `result`; the child draws them in order. ``comparison``:
        `plot_comparison` instead (the seeds' mean and band of ``reinforce train --seeds``).
        """
        request = PlotRequest(list(run_dirs), out, threshold, comparison)
        self._requests.append(request)
        if self.process is None or self.process.stdin is None:
            return
        try:
            while self._read_replies(0.0):  # the child's replies so far, so that its output never fills up
                pass
            self.process.stdin.write((json.dumps(request.document()) + "\n").encode())
            self.process.stdin.flush()
        except OSError:  # the child died: `result` draws the plots here
            self._end_child()

    def result(self) -> Path:
        """Wait for every submitted plot and return the last one's path (those the child did not draw: drawn here).

        Raises:
            ReinforceError: a plot was refused (e.g. an unwritable ``out``); the others are drawn.
        """
        if not self._requests:
            raise RuntimeError("PlotProcess.result() before submit()")
        if self.process is not None and self.process.stdin is not None:
            with contextlib.suppress(OSError):  # a child that died leaves a broken pipe
                self.process.stdin.close()  # no more requests: the child exits after the last one
            # a child that does not answer in time is given up on (and ended): the rest is drawn here instead
            while len(self._replies) < len(self._requests) and self._read_replies(REPLY_TIMEOUT_S):
                pass
        self.close()
        errors: list[str] = []
        for index, request in enumerate(self._requests):
            reply = self._replies[index] if index < len(self._replies) else None
            if isinstance(reply, dict) and isinstance(reply.get("error"), str):
                errors.append(reply["error"])
            elif not (isinstance(reply, dict) and isinstance(reply.get("out"), str)):
                try:
                    request.draw()
                except ReinforceError as exc:
                    errors.append(str(exc))
        if errors:
            more = f" (and {len(errors) - 1} more plots refused)" if len(errors) > 1 else ""
            raise ReinforceError(errors[0] + more)
        return self._requests[-1].out

    def close(self) -> None:
        """End the child: at once if it has nothing to draw or left a plot undrawn (none half written), else on exit."""
        if not self._requests or len(self._replies) < len(self._requests):
            self._end_child()
            return
        process, self.process = self.process, None
        if process is None:
            return
        _close_streams(process)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _read_replies(self, timeout: float) -> bool:
        """Read what the child has replied, waiting up to ``timeout`` s for it; False when nothing came (or EOF)."""
        assert self.process is not None and self.process.stdout is not None
        descriptor = self.process.stdout.fileno()
        ready, _, _ = select.select([descriptor], [], [], timeout)
        chunk = os.read(descriptor, 1 << 16) if ready else b""
        if not chunk:
            return False
        *lines, self._unread = (self._unread + chunk).split(b"\n")
        for line in lines:
            try:
                self._replies.append(json.loads(line))
            except json.JSONDecodeError:
                self._replies.append(None)  # drawn here
        return True

    def _end_child(self) -> None:
        """Kill the child and remove the file it may have been writing (`save_figure`'s partial file)."""
        process, self.process = self.process, None
        if process is None:
            return
        process.kill()
        process.wait()
        _close_streams(process)
        for request in self._requests[len(self._replies) :]:
            partial_path(request.out, process.pid).unlink(missing_ok=True)


def _close_streams(process: subprocess.Popen[bytes]) -> None:
    """Close the child's input and output (a child that died leaves a broken pipe)."""
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


class PlotRequest(NamedTuple):
    """One plot `PlotProcess` was asked for."""

    run_dirs: list[Path]
    out: Path
    threshold: float | None
    comparison: bool

    def document(self) -> dict[str, Any]:
        """The request as the child reads it (one JSON line)."""
        return {
            "run_dirs": [str(path) for path in self.run_dirs],
            "out": str(self.out),
            "threshold": self.threshold,
            "comparison": self.comparison,
        }

    @classmethod
    def of(cls, document: dict[str, Any]) -> PlotRequest:
        """The request of a `document`."""
        run_dirs = [Path(path) for path in document["run_dirs"]]
        return cls(run_dirs, Path(document["out"]), document["threshold"], bool(document.get("comparison")))

    def draw(self) -> Path:
        """Draw it in this process (`plot_comparison` or `plot_runs`)."""
        plot = plot_comparison if self.comparison else plot_runs
        return plot(self.run_dirs, self.out, threshold=self.threshold)


REPLY_TIMEOUT_S = 60.0
"""How long `PlotProcess.result` waits for each of the child's replies before drawing the rest itself."""

CHILD_COMMAND = "import sys; del sys.path[0]; from reinforce.run.plot_process import _serve; _serve()"
"""What the `PlotProcess` child runs: `_serve`, without the working directory on its module path."""


def _serve() -> None:
    """The child of `PlotProcess`: import, then for each request read from stdin draw it and reply; exit at EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import matplotlib.figure  # noqa: F401  (the import that overlaps the parent's work)

    for line in sys.stdin:
        try:
            reply = {"out": str(PlotRequest.of(json.loads(line)).draw())}
        except ReinforceError as exc:
            reply = {"error": str(exc)}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
    os._exit(0)  # the file is written and closed; the interpreter's teardown would only delay the parent


if __name__ == "__main__":
    _serve()
