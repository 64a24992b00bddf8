"""Running the ``reinforce`` command in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

SCRIPT = Path(sys.executable).parent / "reinforce"
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "reinforce.cli"]
ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}


def run_cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COMMAND, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300, env=ENV)


def start_cli(*args: str | Path, cwd: Path, new_session: bool = False) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*COMMAND, *map(str, args)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        start_new_session=new_session,
    )


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def run_main(*args: str | Path, cwd: Path, monkeypatch: Any, capsys: Any) -> subprocess.CompletedProcess[str]:
    """``reinforce ARGS`` run in this process (``reinforce.cli.main``): what `run_cli` gives, without the ~3 s of a
    new interpreter importing torch. For commands that neither start Ray nor leave state in the process."""
    from reinforce.cli import main

    monkeypatch.chdir(cwd)
    capsys.readouterr()
    code: int
    try:
        main([str(arg) for arg in args])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess([str(arg) for arg in args], code, out, err)
