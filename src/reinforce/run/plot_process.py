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
from reinforce.run.plotting import plot_comparison, plot_runs


class PlotProcess:
    """`plot_runs` in a child process, started early so that its imports overlap the caller's own work.

    ``reinforce train`` starts a `PlotProcess` before it imports torch and trains: the child imports numpy and
    matplotlib meanwhile, on another core; when training ends, `submit` (in `reinforce.training.finish_run`)
    hands it the run, the policy is evaluated while the child draws, and `result` waits for the file. What this
    saves, and costs, is measured in docs/benchmarks.md ("The curve's child process"). ``reinforce train
    --seeds`` submits each member's curve as soon as that member stops, while the others train on; the child
    draws the requests in order. If the child cannot be started, or fails in any way other than a
    `ReinforceError` of `plot_runs`, the plots it did not draw are drawn in this process instead: the files are
    the same either way.

    Example:
        >>> with PlotProcess() as plotter:  # doctest: +SKIP
        ...     ...  # train, writing runs/X
        ...     plotter.submit([Path("runs/X")], Path("runs/X/curve.png"), threshold=475.0)
        ...     ...  # evaluate
        ...     plotter.result()
    """

    def __init__(self) -> None:
        self._requests: list[tuple[list[Path], Path, float | None, bool]] = []
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

    def submit(
        self, run_dirs: Sequence[Path], out: Path, *, threshold: float | None = None, comparison: bool = False
    ) -> None:
        """Ask for ``plot_runs(run_dirs, out, threshold=threshold)``; it is drawn while the caller goes on.

        Requests may follow one another until `result`; the child draws them in order. ``comparison``:
        `plot_comparison` instead (the seeds' mean and band of ``reinforce train --seeds``).
        """
        self._requests.append((list(run_dirs), out, threshold, comparison))
        if self.process is None or self.process.stdin is None:
            return
        document = {
            "run_dirs": [str(path) for path in run_dirs],
            "out": str(out),
            "threshold": threshold,
            "comparison": comparison,
        }
        try:
            self.process.stdin.write(json.dumps(document) + "\n")
            self.process.stdin.flush()
        except OSError:  # the child died: `result` draws the plots here
            self.close()

    def result(self) -> Path:
        """Wait for every submitted plot and return the last one's path (those the child did not draw: drawn here).

        Raises:
            ReinforceError: `plot_runs` refused a request (e.g. an unwritable ``out``); the others are drawn.
        """
        if not self._requests:
            raise RuntimeError("PlotProcess.result() before submit()")
        replies: list[Any] = []
        if self.process is not None and self.process.stdin is not None and self.process.stdout is not None:
            with contextlib.suppress(OSError):  # a child that died leaves a broken pipe
                self.process.stdin.close()  # no more requests: the child exits after the last one
            # a child that hangs is given up on (and killed by `close`): the rest is drawn here instead
            while len(replies) < len(self._requests):
                ready, _, _ = select.select([self.process.stdout], [], [], REPLY_TIMEOUT_S)
                try:
                    replies.append(json.loads(self.process.stdout.readline() if ready else ""))
                except json.JSONDecodeError:
                    break
            self.close()
        errors: list[str] = []
        for index, (run_dirs, out, threshold, comparison) in enumerate(self._requests):
            reply = replies[index] if index < len(replies) else None
            if isinstance(reply, dict) and isinstance(reply.get("error"), str):
                errors.append(reply["error"])
            elif not (isinstance(reply, dict) and isinstance(reply.get("out"), str)):
                try:
                    (plot_comparison if comparison else plot_runs)(run_dirs, out, threshold=threshold)
                except ReinforceError as exc:
                    errors.append(str(exc))
        if errors:
            raise ReinforceError(errors[0])
        return self._requests[-1][1]

    def close(self) -> None:
        """End the child: killed if nothing was submitted, else it exits when its input closes (or in 5 s, killed)."""
        process, self.process = self.process, None
        if process is None:
            return
        if not self._requests:
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
    """The child of `PlotProcess`: import, then for each request read from stdin draw it and reply; exit at EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import matplotlib.figure  # noqa: F401  (the import that overlaps the parent's work)

    for line in sys.stdin:
        request = json.loads(line)
        draw = plot_comparison if request.get("comparison") else plot_runs
        try:
            out = draw(
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
