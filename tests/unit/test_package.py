"""The public names of `reinforce`, imported on first use."""

from __future__ import annotations

import importlib

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
