"""The median of a sweep setting's trials and its distribution-free confidence interval (docs/scaling.md)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

CONFIDENCE = 0.95
"""The confidence asked of the interval of a median (the actual coverage is at least this, and is reported)."""


def median_interval_ranks(n: int, confidence: float = CONFIDENCE) -> tuple[int, int, float] | None:
    """Ranks of the distribution-free confidence interval of a median from ``n`` samples, and its coverage.

    With the samples sorted, ``x_(1) <= ... <= x_(n)``, the interval ``[x_(l), x_(u)]`` with ``u = n + 1 - l``
    contains the population median with probability ``P(l <= B <= u - 1)`` for ``B ~ Binomial(n, 1/2)``
    (the number of samples below the median), whatever the distribution (continuous, or with ties: then at
    least that). The largest ``l`` (the narrowest such interval) whose coverage is at least ``confidence`` is
    returned.

    Example:
        >>> median_interval_ranks(10)  # [x_(2), x_(9)] covers with probability 1 - 2 * 11 / 1024
        (2, 9, 0.978515625)
        >>> median_interval_ranks(5) is None  # [x_(1), x_(5)] covers only 1 - 2 / 32 = 0.9375
        True

    Args:
        n: the number of samples.
        confidence: the coverage asked for, in (0, 1).

    Returns:
        ``(l, u, coverage)`` with 1-based ranks, or None when even ``[x_(1), x_(n)]`` covers less.
    """
    if n < 1 or not 0.0 < confidence < 1.0:
        raise ValueError(f"need n >= 1 and a confidence in (0, 1), got n={n}, confidence={confidence}")
    below = Fraction(0)  # P(B <= l - 1), exactly
    best = None
    for rank in range(1, n // 2 + 1):
        below += Fraction(math.comb(n, rank - 1), 2**n)
        coverage = 1 - 2 * below
        if coverage < confidence:
            break
        best = (rank, n + 1 - rank, float(coverage))
    return best


@dataclass(frozen=True)
class MedianSummary:
    """The median of some trials' values and its order-statistic confidence interval.

    ``math.inf`` stands for a censored value (a trial that did not solve); None for an unavailable bound.
    """

    median: float
    """The sample median (the mean of the two middle values for an even count; inf if either is inf)."""
    low: float | None
    """``x_(l)``, the interval's lower end, or None with too few trials for a 95% interval."""
    high: float | None
    """``x_(n+1-l)``, the interval's upper end (inf: beyond the budget), or None with too few trials."""
    coverage: float | None
    """The interval's exact coverage probability (at least `CONFIDENCE`), or None without an interval."""


def summarize_median(values: Sequence[float], confidence: float = CONFIDENCE) -> MedianSummary:
    """The median of ``values`` (inf allowed, for censored trials) and its order-statistic interval.

    Example:
        >>> summarize_median([5.0, 1.0, 3.0, math.inf, 2.0, 4.0])
        MedianSummary(median=3.5, low=1.0, high=inf, coverage=0.96875)

    Raises:
        ValueError: ``values`` is empty or holds a NaN.
    """
    ordered = sorted(float(value) for value in values)
    if not ordered or any(math.isnan(value) for value in ordered):
        raise ValueError("the median needs at least one value and no NaN")
    n = len(ordered)
    middle = ordered[(n - 1) // 2 : n // 2 + 1]
    median = math.inf if math.inf in middle else sum(middle) / len(middle)
    ranks = median_interval_ranks(n, confidence)
    if ranks is None:
        return MedianSummary(median, None, None, None)
    low, high, coverage = ranks
    return MedianSummary(median, ordered[low - 1], ordered[high - 1], coverage)
