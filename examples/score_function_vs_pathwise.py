"""The score-function (REINFORCE) estimator against the pathwise (reparameterised) one, on a Gaussian.

Objective: J(mu, sigma) = E_{x ~ N(mu, sigma^2)}[(x - 2)^2] = (mu - 2)^2 + sigma^2, so the exact gradient is
dJ/dmu = 2 (mu - 2) and dJ/dsigma = 2 sigma. Each estimator averages N samples; repeating that many times
gives its standard deviation, printed as a table and plotted against N.

- score function: mean of (f(x) - b) * grad log p(x) via `reinforce.core.loss.score_function_surrogate`, with
  no baseline, and with the leave-one-out baseline (the mean of f over the other N - 1 samples);
- pathwise: x = mu + sigma * eps (`rsample`), mean of grad f(x).

    python examples/score_function_vs_pathwise.py [--out docs/figures/score_function_vs_pathwise.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from reinforce.core.loss import score_function_surrogate

MU, SIGMA = 0.5, 1.0
SAMPLE_SIZES = (2, 4, 8, 16, 32, 64, 128, 256)
REPEATS = 2_000


def objective(x: torch.Tensor) -> torch.Tensor:
    return (x - 2.0) ** 2


def gradient_estimates(method: str, num_samples: int) -> torch.Tensor:
    """``[REPEATS, 2]`` estimates of (dJ/dmu, dJ/dsigma), each from ``num_samples`` samples."""
    mu = torch.full((REPEATS, 1), MU, requires_grad=True)
    sigma = torch.full((REPEATS, 1), SIGMA, requires_grad=True)
    distribution = torch.distributions.Normal(mu.expand(-1, num_samples), sigma.expand(-1, num_samples))
    if method == "pathwise":
        surrogate = objective(distribution.rsample())
    else:
        x = distribution.sample()
        f = objective(x)
        baseline = None
        if method == "score function, leave-one-out baseline":
            baseline = (f.sum(dim=1, keepdim=True) - f) / (num_samples - 1)
        surrogate = score_function_surrogate(distribution.log_prob(x), f, baseline)
    # each row is one estimator run: the mean over its samples; rows are independent, so sum them up
    grads = torch.autograd.grad(surrogate.mean(dim=1).sum(), [mu, sigma])
    return torch.cat(grads, dim=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/figures/score_function_vs_pathwise.png"))
    args = parser.parse_args()
    torch.manual_seed(0)
    exact = torch.tensor([2 * (MU - 2.0), 2 * SIGMA])
    methods = ("score function", "score function, leave-one-out baseline", "pathwise")
    stds: dict[str, list[torch.Tensor]] = {method: [] for method in methods}
    print(f"exact gradient (dJ/dmu, dJ/dsigma) = ({exact[0]:.2f}, {exact[1]:.2f}) at mu={MU}, sigma={SIGMA}")
    print("| N | estimator | mean dJ/dmu | std dJ/dmu | mean dJ/dsigma | std dJ/dsigma |")
    print("| --- | --- | --- | --- | --- | --- |")
    for num_samples in SAMPLE_SIZES:
        for method in methods:
            estimates = gradient_estimates(method, num_samples)
            mean, std = estimates.mean(0), estimates.std(0)
            stds[method].append(std)
            print(f"| {num_samples} | {method} | {mean[0]:.3f} | {std[0]:.3f} | {mean[1]:.3f} | {std[1]:.3f} |")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for index, (axis, name) in enumerate(zip(axes, ("dJ/dmu", "dJ/dsigma"), strict=True)):
        for method in methods:
            axis.loglog(SAMPLE_SIZES, [float(std[index]) for std in stds[method]], marker="o", label=method)
        axis.set_title(f"{name} (exact {float(exact[index]):.1f})")
        axis.set_xlabel("samples per estimate (N)")
        axis.set_ylabel("standard deviation of the estimate")
        axis.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=8)
    fig.suptitle("E[(x - 2)^2], x ~ N(0.5, 1): score-function vs pathwise gradient estimators")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
