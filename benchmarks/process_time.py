"""Wall time and peak memory of whole `reinforce train CartPole-v1` processes, and where that time goes.

Each seed runs ``reinforce train CartPole-v1 --seed S --quiet --run-dir DIR`` (plus any flags after ``--``) in a
fresh process and a fresh run directory, as a user runs it, ``--repeat`` times: the wall clock is taken from the
start of the process to its exit; the peak resident memory of that process and its CPU time (user and system,
with the children it waited for) come from ``wait4``, the peak of the process tree (the process and any children
it starts, their RSS summed) from sampling ``/proc`` every 10 ms; the env steps, training seconds and evaluation
come from what it prints. Run it with the project's interpreter (``.venv/bin/python``), whose ``reinforce``
script it starts.

With ``--phases``, every seed runs a second time through a driver that times the command's steps inside the
process: importing ``reinforce.cli``, starting the curve's child process, importing torch and the rest of the
training code, building the agent, ``learn`` (training, metrics and checkpoints), the evaluation and the wait for
the curve; "interpreter start and exit" is the process's wall clock less the time inside the driver.

    .venv/bin/python benchmarks/process_time.py [--seeds 0-4] [--repeat 1] [--phases] [-- --num-envs 16 ...]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

from common import machine, seed_range, versions

REINFORCE = Path(sys.executable).parent / "reinforce"
PHASES_PREFIX = "PHASES "
SUMMARY = re.compile(r"in ([\d,]+) env steps, .* ([\d.]+) s of training")
EVALUATION = re.compile(r"mean return ([-\d.]+)")


PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def tree_rss_kib(pid: int) -> int:
    """The resident memory of ``pid`` and all its descendants, summed (KiB); 0 for processes already gone."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            total += int(Path(f"/proc/{current}/statm").read_text().split()[1]) * PAGE_KIB
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(child) for child in (task / "children").read_text().split()]
        except (OSError, ValueError, IndexError):
            continue
    return total


class TreePeak(threading.Thread):
    """Samples `tree_rss_kib` of a process every 10 ms until `stop`; ``peak_kib`` is the largest sample."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak_kib, self._stop_event = pid, 0, threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(0.01):
            self.peak_kib = max(self.peak_kib, tree_rss_kib(self.pid))

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return self.peak_kib


class Run(NamedTuple):
    """One process run to its exit."""

    wall_s: float
    rss_kib: int
    """Peak RSS of the process itself."""
    tree_kib: int
    """Peak RSS of the process and its children, summed."""
    cpu_s: float
    """User and system CPU seconds of the process and the children it waited for."""
    stdout: str
    stderr: str


def run_process(command: list[str]) -> Run:
    """Run ``command`` to its exit: its wall time, memory, CPU time and output."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        sampler = TreePeak(process.pid)
        sampler.start()
        _, status, usage = os.wait4(process.pid, 0)
        wall_s = time.perf_counter() - start
        tree_kib = max(sampler.stop(), usage.ru_maxrss)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}):\n{stderr}")
    return Run(wall_s, usage.ru_maxrss, tree_kib, usage.ru_utime + usage.ru_stime, stdout, stderr)


def train_args(seed: int, run_dir: Path, extra: list[str]) -> list[str]:
    return ["train", "CartPole-v1", "--seed", str(seed), "--quiet", "--run-dir", str(run_dir), *extra]


def drive(args: list[str]) -> None:
    """The ``--driver`` child: run the CLI with its steps timed, then print them after ``PHASES``."""
    entered = time.perf_counter()
    phases: dict[str, float] = {}

    def timed(owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)

        def wrapper(*arguments: Any, **keywords: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*arguments, **keywords)
            finally:
                phases[label] = phases.get(label, 0.0) + time.perf_counter() - start

        setattr(owner, name, wrapper)

    start = time.perf_counter()
    import reinforce.cli
    import reinforce.cli.train
    import reinforce.run.plot_process

    phases["import reinforce.cli"] = time.perf_counter() - start
    timed(reinforce.run.plot_process.PlotProcess, "__init__", "start the curve's child process")
    timed(reinforce.run.plot_process.PlotProcess, "result", "wait for the curve")
    import_long_lived = reinforce.cli.train.import_long_lived

    def import_and_wrap(*modules: str) -> None:
        start = time.perf_counter()
        import_long_lived(*modules)
        phases["import torch, Gymnasium, the trainer"] = time.perf_counter() - start
        from reinforce.agent import Reinforce

        timed(Reinforce, "__init__", "create the agent")
        timed(Reinforce, "learn", "learn (training, metrics, checkpoints)")
        timed(Reinforce, "evaluate", "evaluate (100 episodes)")

    reinforce.cli.train.import_long_lived = import_and_wrap  # the name the train command calls
    try:
        reinforce.cli.main(args)
    except SystemExit as exit:
        if exit.code:
            raise
    if "import torch, Gymnasium, the trainer" not in phases:  # the CLI moved: say so rather than drop the rows
        raise RuntimeError("the train command no longer calls reinforce.cli.train.import_long_lived: update drive()")
    phases["inside Python"] = time.perf_counter() - entered
    print(PHASES_PREFIX + json.dumps(phases), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0-4")
    parser.add_argument("--repeat", type=int, default=1, help="runs per seed, each in a fresh process and directory")
    parser.add_argument("--phases", action="store_true", help="also time the steps inside each process")
    parser.add_argument("extra", nargs="*", help="flags for `reinforce train` (after --)")
    if sys.argv[1:2] == ["--driver"]:
        drive(sys.argv[2:])
        return
    args = parser.parse_args()
    if not REINFORCE.exists():
        parser.error(f"{REINFORCE} does not exist: run this with the project's .venv/bin/python (make install)")
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"{date}; {machine()}; {versions('torch', 'gymnasium')}")
    print(f"`reinforce train CartPole-v1 --seed S --quiet {' '.join(args.extra)}`".replace(" `", "`"))
    print()
    print("| seed | env steps | training s | process wall s | CPU s | deterministic eval | peak RSS | peak RSS, tree |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    walls, trainings, cpus, trees, phase_runs = [], [], [], [], []
    runs = [(seed, index) for seed in seed_range(args.seeds) for index in range(args.repeat)]
    with tempfile.TemporaryDirectory() as root:
        for seed, index in runs:
            run = run_process([str(REINFORCE), *train_args(seed, Path(root, f"{seed}-{index}"), args.extra)])
            summary, evaluation = SUMMARY.search(run.stdout), EVALUATION.search(run.stdout)
            if summary is None:
                raise RuntimeError(f"unexpected output of seed {seed}:\n{run.stdout}")
            steps, training_s = summary.group(1), float(summary.group(2))
            walls.append(run.wall_s)
            trainings.append(training_s)
            trees.append(run.tree_kib / 1024)
            cpus.append(run.cpu_s)
            print(
                f"| {seed} | {steps} | {training_s:.2f} | {run.wall_s:.2f} | {run.cpu_s:.2f} | "
                f"{evaluation.group(1) if evaluation else '-'} | {run.rss_kib / 1024:.0f} MiB | "
                f"{run.tree_kib / 1024:.0f} MiB |",
                flush=True,
            )
            if args.phases:
                command = [
                    sys.executable,
                    __file__,
                    "--driver",
                    *train_args(seed, Path(root, f"{seed}-{index}-phases"), args.extra),
                ]
                run = run_process(command)
                line = next(line for line in run.stdout.splitlines() if line.startswith(PHASES_PREFIX))
                phases = json.loads(line[len(PHASES_PREFIX) :])
                phases["interpreter start and exit"] = run.wall_s - phases.pop("inside Python")
                phases["whole process"] = run.wall_s
                phase_runs.append(phases)
    print(
        f"| median | | {statistics.median(trainings):.2f} | {statistics.median(walls):.2f} | "
        f"{statistics.median(cpus):.2f} | | | {statistics.median(trees):.0f} MiB |"
    )
    if phase_runs:
        print()
        print("| phase | median s | " + " | ".join(f"seed {seed}" for seed, _ in runs) + " |")
        print("| --- | ---: |" + " ---: |" * len(phase_runs))
        for name in phase_runs[0]:
            values = [run.get(name, 0.0) for run in phase_runs]
            cells = " | ".join(f"{value:.2f}" for value in values)
            print(f"| {name} | {statistics.median(values):.2f} | {cells} |")


if __name__ == "__main__":
    main()
