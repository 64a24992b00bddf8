"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import argparse
import json


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
