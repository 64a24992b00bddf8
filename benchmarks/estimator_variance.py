"""Bias and variance of each estimator variant on the tabular MDP of tests/exact_mdp.py.

Runs the estimates of tests/unit/test_exact_gradient.py with more batches and prints, per variant, the
total variance (trace of the covariance) of one batch's gradient estimate relative to the plain estimator
with the same discount (reward-to-go, no baseline), the relative bias ||mean - exact|| / ||exact||, and the
largest per-coordinate z-score against the exact gradient.

    python benchmarks/estimator_variance.py [--batches 3000]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "unit"))

import argparse

import exact_mdp
from test_exact_gradient import BIASED, UNBIASED, critical_value, estimate, initial_parameters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=3000)
    args = parser.parse_args()
    variants = {**UNBIASED, **BIASED}
    reference = {gamma: estimate(args.batches, gamma=gamma).total_variance for gamma in (1.0, 0.8)}
    print(f"{args.batches} batches of 4 episodes; critical |z| {critical_value(8):.2f} (family-wise 1e-3)\n")
    print("| variant | unbiased by construction | variance vs plain | relative bias | max abs z |")
    print("| --- | --- | --- | --- | --- |")
    for name, (hyperparameters, gamma) in variants.items():
        estimates = estimate(args.batches, **hyperparameters)
        exact = exact_mdp.exact_gradient(*initial_parameters(), gamma)
        z = (estimates.mean - exact) / estimates.standard_error
        bias = float((estimates.mean - exact).norm() / exact.norm())
        print(
            f"| {name} | {'yes' if name in UNBIASED else 'no'} | {estimates.total_variance / reference[gamma]:.3f} | "
            f"{bias:.3f} | {float(z.abs().max()):.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
