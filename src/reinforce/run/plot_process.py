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
from typing import Any

from reinforce.errors import ReinforceError
from reinforce.run.plotting import plot_runs


class PlotProcess:
    """`plot_runs` in a child process, started early so that its imports overlap the caller's own work.

    ``reinforce train`` starts a `PlotProcess` before it imports torch and trains: the child imports numpy and
    matplotlib meanwhile, on another core; when training ends, `submit` (in `reinforce.training.finish_run`)
    hands it the run, the policy is evaluated while the child draws, and `result` waits for the file. What this
    saves, and costs, is measured in docs/benchmarks.md ("The curve's child process"). If the child cannot be
    started, or fails in any way other than a `ReinforceError` of `plot_runs`, the plot is drawn in this
    process instead: the file is the same either way.

    Example:
        >>> with PlotProcess() as plotter:  # doctest: +SKIP
        ...     ...  # train, writing runs/X
        ...     plotter.submit([Path("runs/X")], Path("runs/X/curve.png"), threshold=475.0)
        ...     ...  # evaluate
        ...     plotter.result()
    """

    def __init__(self) -> None:
        self._request: tuple[list[Path], Path, float | None] | None = None
        self.process: subprocess.Popen[str] | None
        try:
            self.process = subprocess.Popen(
                # not `-m`, which puts the working directory first on the path: a matplotlib.py (or json.py,
                # ...) there would be imported by the child; the code below drops that entry first
                [sys.executable, "-c", CHILD_COMMAND],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,  # its failures are reproduced, and reported, by the fallback
                text=True,
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

    def submit(self, run_dirs: Sequence[Path], out: Path, *, threshold: float | None = None) -> None:
        """Ask for ``plot_runs(run_dirs, out, threshold=threshold)``; it is drawn while the caller goes on."""
        self._request = (list(run_dirs), out, threshold)
        if self.process is None or self.process.stdin is None:
            return
        document = {"run_dirs": [str(path) for path in run_dirs], "out": str(out), "threshold": threshold}
        try:
            self.process.stdin.write(json.dumps(document) + "\n")
            self.process.stdin.close()
        except OSError:  # the child died: `result` draws the plot here
            self.close()

    def result(self) -> Path:
        """Wait for the submitted plot and return its path (drawn here if the child failed).

        Raises:
            ReinforceError: `plot_runs` refused the request (e.g. an unwritable ``out``).
        """
        if self._request is None:
            raise RuntimeError("PlotProcess.result() before submit()")
        reply: Any = None
        if self.process is not None and self.process.stdout is not None:
            # a child that hangs is given up on (and killed by `close`): the plot is drawn here instead
            ready, _, _ = select.select([self.process.stdout], [], [], REPLY_TIMEOUT_S)
            line = self.process.stdout.readline() if ready else ""
            self.close()
            try:
                reply = json.loads(line)
            except json.JSONDecodeError:
                reply = None
        if isinstance(reply, dict) and isinstance(reply.get("error"), str):
            raise ReinforceError(reply["error"])
        if isinstance(reply, dict) and isinstance(reply.get("out"), str):
            return Path(reply["out"])
        run_dirs, out, threshold = self._request
        return plot_runs(run_dirs, out, threshold=threshold)

    def close(self) -> None:
        """End the child: killed if nothing was submitted, else it exits when its input closes (or in 5 s, killed)."""
        process, self.process = self.process, None
        if process is None:
            return
        if self._request is None:
            process.kill()  # nothing to draw (training failed or was interrupted): no need to wait for its imports
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):  # a child that died leaves a broken pipe
                    stream.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


REPLY_TIMEOUT_S = 60.0
"""How long `PlotProcess.result` waits for the child's reply before drawing the plot itself."""

CHILD_COMMAND = "import sys; del sys.path[0]; from reinforce.run.plot_process import _serve; _serve()"
"""What the `PlotProcess` child runs: `_serve`, without the working directory on its module path."""


def _serve() -> None:
    """The child of `PlotProcess`: import, read one request from stdin, draw it, reply on stdout, exit."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import matplotlib.figure  # noqa: F401  (the import that overlaps the parent's work)

    line = sys.stdin.readline()
    if line:
        request = json.loads(line)
        try:
            out = plot_runs(
                [Path(path) for path in request["run_dirs"]], Path(request["out"]), threshold=request["threshold"]
            )
            reply = {"out": str(out)}
        except ReinforceError as exc:
            reply = {"error": str(exc)}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
    os._exit(0)  # the file is written and closed; the interpreter's teardown would only delay the parent


if __name__ == "__main__":
    _serve()
