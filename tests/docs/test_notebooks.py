"""The notebooks of the documentation site run, top to bottom, as the site's build executes them.

Each notebook is a jupytext percent-format script (docs/notebooks/NN_name.py): its code cells run in order as
one Python file, so a failing cell (or one of the notebook's own checks) fails its test. Each is short by
design (well under a minute); the site (`make docs`) executes the same sources with a Jupyter kernel.
"""

from __future__ import annotations

import runpy
import tempfile
from pathlib import Path

import matplotlib
import pytest
import torch

NOTEBOOKS = sorted((Path(__file__).parents[2] / "docs" / "notebooks").glob("[0-9][0-9]_*.py"))


def test_the_five_notebooks_are_in_the_readers_order() -> None:
    assert [path.stem for path in NOTEBOOKS] == [
        "01_score_function",
        "02_cartpole",
        "03_variants",
        "04_short_corridor",
        "05_own_env",
    ]


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")  # torch 2.13 deprecates TorchScript
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.stem)
def test_the_notebook_runs(notebook: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # what a notebook writes goes to tmp_path
    threads = torch.get_num_threads()
    try:
        runpy.run_path(str(notebook), run_name="__main__")
    finally:
        torch.set_num_threads(threads)
        plt.close("all")
