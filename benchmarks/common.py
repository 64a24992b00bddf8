"""Helpers shared by the benchmark scripts."""

from __future__ import annotations


def seed_range(text: str) -> list[int]:
    """Seeds from ``"0-9"`` (inclusive range) or ``"0,3,7"``; an empty string gives none."""
    if "-" in text:
        low, high = text.split("-")
        return list(range(int(low), int(high) + 1))
    return [int(part) for part in text.split(",") if part]
