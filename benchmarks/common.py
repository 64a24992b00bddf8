"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path


def seed_range(text: str) -> list[int]:
    """Seeds from ``"0-9"`` (inclusive range) or ``"0,3,7"``; an empty string gives none."""
    if "-" in text:
        low, high = text.split("-")
        return list(range(int(low), int(high) + 1))
    return [int(part) for part in text.split(",") if part]


def add_set_option(parser: argparse.ArgumentParser) -> None:
    """``--set NAME=VALUE`` (repeatable): hyperparameter overrides, read by `overrides`."""
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="override a hyperparameter, e.g. lr=0.01"
    )


def overrides(items: list[str]) -> dict[str, object]:
    """``["lr=0.01", "action_squash=tanh"]`` as keyword arguments: JSON values, bare words as strings."""
    parsed: dict[str, object] = {}
    for item in items:
        name, _, text = item.partition("=")
        try:
            parsed[name] = json.loads(text)
        except json.JSONDecodeError:
            parsed[name] = text
    return parsed


def train_process_seconds(arguments: list[str]) -> tuple[float, float]:
    """Wall clock and CPU time of a whole ``reinforce train ARGUMENTS --quiet`` process in a fresh run directory.

    The CPU time is the process's and that of the children it waited for (the curves' child process).
    """
    with tempfile.TemporaryDirectory() as directory:
        command = [sys.executable, "-m", "reinforce", "train", *arguments, "--quiet"]
        command += ["--run-dir", str(Path(directory) / "run")]
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(process.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"{' '.join(command)} failed")
        return time.perf_counter() - start, usage.ru_utime + usage.ru_stime


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, or what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine() -> str:
    """``x86_64, 2 CPUs (MODEL), Linux RELEASE``: where a benchmark ran."""
    return f"{platform.machine()}, {os.cpu_count()} CPUs ({cpu_model()}), {platform.system()} {platform.release()}"


def versions(*distributions: str) -> str:
    """``Python 3.11.7, torch 2.13.0+cpu, ...``: the interpreter and the installed versions of ``distributions``."""
    return ", ".join(
        [f"Python {platform.python_version()}", *(f"{name} {metadata.version(name)}" for name in distributions)]
    )
