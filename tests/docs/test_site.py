"""The documentation site builds with warnings as errors, and every public name has a reference entry with an
example that runs.

`mkdocs build --strict` fails on a broken link, a missing page or anchor, and a reference entry that names
nothing; the notebooks are converted without being executed here (tests/docs/test_notebooks.py runs them).
"""

from __future__ import annotations

import doctest
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import reinforce

ROOT = Path(__file__).parents[2]
MODULES = reinforce._MODULES


def test_the_site_builds_strictly_with_every_page_and_public_name(tmp_path: Path) -> None:
    site = tmp_path / "site"
    env = {**os.environ, "REINFORCE_DOCS_EXECUTE": "false", "NO_MKDOCS_2_WARNING": "1"}
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    reference = (site / "reference" / "index.html").read_text(encoding="utf-8")
    for name in reinforce.__all__:
        assert f'id="reinforce.{MODULES[name]}.{name}"' in reference, name
    for notebook in sorted((ROOT / "docs" / "notebooks").glob("[0-9][0-9]_*.py")):
        page = site / "notebooks" / notebook.stem / "index.html"
        # mkdocs does not check the links of a notebook's Markdown cells: every relative one must lead to a file
        for target in re.findall(r'(?:href|src)="(\.\./[^"#]*)', page.read_text(encoding="utf-8")):
            resolved = (page.parent / target).resolve()
            assert resolved.is_file() or (resolved / "index.html").is_file(), (notebook.stem, target)
    for page in ("index.html", "tutorial/index.html", "concepts/index.html", "benchmarks/index.html"):
        assert (site / page).is_file(), page
    # nothing is fetched from the web when a page is read: no web fonts, no scripts from a CDN
    for html in site.rglob("*.html"):
        text = html.read_text(encoding="utf-8")
        assert not re.search(r'<(script|link)[^>]+(src|href)="(https?:)?//', text), html


def test_the_reference_page_names_every_public_name() -> None:
    entries = set(re.findall(r"^::: (\S+)$", (ROOT / "docs" / "reference.md").read_text(), flags=re.MULTILINE))
    assert entries == {f"reinforce.{MODULES[name]}.{name}" for name in reinforce.__all__}


@pytest.mark.parametrize("name", reinforce.__all__)
def test_every_public_name_has_an_example_that_runs(name: str) -> None:
    obj = getattr(reinforce, name)
    docstring = obj.__doc__ or ""
    assert "Example:" in docstring, f"reinforce.{name} has no Example: section"
    globs = {"reinforce": reinforce, "torch": torch, name: obj}
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in doctest.DocTestFinder(recurse=False).find(obj, name, globs=globs):
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
