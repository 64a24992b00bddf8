"""The public names of `reinforce`, imported on first use."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import reinforce


@pytest.mark.parametrize("name", reinforce.__all__)
def test_each_public_name_is_its_submodules(name: str) -> None:
    value = getattr(reinforce, name)
    assert getattr(importlib.import_module(value.__module__), name) is value
    assert name in dir(reinforce)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        reinforce.no_such_name  # noqa: B018


def test_type_checkers_see_the_public_names_and_no_others(tmp_path: Path) -> None:
    from mypy import api

    snippet = tmp_path / "snippet.py"
    snippet.write_text("import reinforce\nfrom reinforce import Reinforce, Reinforcee\nreinforce.make_polcy\n")
    cache = Path(__file__).parents[2] / ".mypy_cache"  # the test command's own mypy run fills it
    out, _, status = api.run([str(snippet), "--cache-dir", str(cache), "--no-error-summary"])
    assert status == 1
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert len(errors) == 2 and '"Reinforcee"' in errors[0] and '"make_polcy"' in errors[1], out


def test_the_cli_gc_pause_leaves_the_callers_gc_state() -> None:
    import gc

    from reinforce.cli import import_long_lived

    gc.disable()
    try:
        import_long_lived("json")
        assert not gc.isenabled()
    finally:
        gc.unfreeze()
        gc.enable()
    import_long_lived("json")
    assert gc.isenabled()
    gc.unfreeze()


def test_type_checkers_check_the_keyword_hyperparameters(tmp_path: Path) -> None:
    from mypy import api

    snippet = tmp_path / "snippet.py"
    snippet.write_text(
        "import reinforce\n"
        "reinforce.Reinforce('CartPole-v1', lr=0.01, baseline='value', hidden_sizes=(64, 64))\n"
        "reinforce.Reinforce('CartPole-v1', config=reinforce.TrainConfig(gamma=0.9), num_envs=4)\n"
        "reinforce.Reinforce('CartPole-v1', learning_rate=0.01)\n"
        "reinforce.Reinforce('CartPole-v1', lr='fast')\n"
        "reinforce.Reinforce('CartPole-v1', baseline='valu')\n"
    )
    cache = Path(__file__).parents[2] / ".mypy_cache"
    out, _, status = api.run([str(snippet), "--cache-dir", str(cache), "--no-error-summary"])
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert status == 1 and [line.split(":")[1] for line in errors] == ["4", "5", "6"], out
