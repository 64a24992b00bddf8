"""The examples run as the README says (quick settings)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parents[2] / "examples"


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")  # torch 2.13 deprecates TorchScript
def test_own_env_trains_masks_evaluates_and_exports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    import own_env

    evaluation = own_env.main(steps=60_000, out=tmp_path, seed=0)
    assert evaluation["mean_return"] > -0.7  # near the optimum, -0.6; a random walk takes far longer
    assert (tmp_path / "run" / "best" / "checkpoint.json").is_file() and (tmp_path / "policy.pt").is_file()
    sys.modules.pop("own_env", None)
