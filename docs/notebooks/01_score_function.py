# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 1. The score-function estimator, from scratch
#
# REINFORCE is one instance of a general trick: the gradient of an expectation over a distribution that depends
# on the parameters. Take a one-step problem with no environment at all: draw `x ~ N(mu, sigma²)` and pay
# `f(x) = (x - 2)²`. The objective is
#
#     J(mu, sigma) = E[f(x)] = (mu - 2)² + sigma²
#
# so the exact gradient is `dJ/dmu = 2 (mu - 2)` and `dJ/dsigma = 2 sigma`. We estimate it from samples in the
# two ways there are, and compare both with the exact value.
#
# - **Score function** (likelihood ratio, REINFORCE): `grad J = E[f(x) · grad log p(x)]`. It needs only the
#   values `f(x)` and the log-density of the samples, never the derivative of `f`: this is why it works when `f`
#   is a simulator, a game or an environment.
# - **Pathwise** (reparameterisation): write `x = mu + sigma · eps` with `eps ~ N(0, 1)`, then
#   `grad J = E[f'(x) · dx/dtheta]`. It needs `f` to be differentiable, and usually has a much lower variance.

# %%
import matplotlib.pyplot as plt
import torch

import reinforce

torch.manual_seed(0)
MU, SIGMA = 0.5, 1.0


def f(x: torch.Tensor) -> torch.Tensor:
    return (x - 2.0) ** 2


exact = torch.tensor([2 * (MU - 2.0), 2 * SIGMA])
print("exact gradient (dJ/dmu, dJ/dsigma):", exact.tolist())

# %% [markdown]
# ## By hand
#
# For a Gaussian, the score is known in closed form:
#
#     d log p / dmu    = (x - mu) / sigma²
#     d log p / dsigma = ((x - mu)² - sigma²) / sigma³
#
# The score-function estimate from `N` samples is the mean of `f(x)` times the score. The pathwise one is the
# mean of `f'(x) = 2 (x - 2)` times `dx/dmu = 1` and `dx/dsigma = eps`.


# %%
def score_function_by_hand(num_samples: int, repeats: int = 1) -> torch.Tensor:
    """``[repeats, 2]``: independent estimates of (dJ/dmu, dJ/dsigma), each from ``num_samples`` samples."""
    x = MU + SIGMA * torch.randn(repeats, num_samples)
    score = torch.stack([(x - MU) / SIGMA**2, ((x - MU) ** 2 - SIGMA**2) / SIGMA**3], dim=-1)
    return (f(x)[..., None] * score).mean(1)


def pathwise_by_hand(num_samples: int, repeats: int = 1) -> torch.Tensor:
    eps = torch.randn(repeats, num_samples)
    x = MU + SIGMA * eps
    return torch.stack([2 * (x - 2.0), 2 * (x - 2.0) * eps], dim=-1).mean(1)


by_hand = {"score function": score_function_by_hand(100_000)[0], "pathwise": pathwise_by_hand(100_000)[0]}
for name, estimate in by_hand.items():
    print(f"{name:14}, 100k samples: {estimate.tolist()}")
    assert torch.allclose(estimate, exact, atol=0.15)  # both unbiased: near the exact gradient

# %% [markdown]
# Both are unbiased: with many samples, both land on the exact gradient. They differ in how far one estimate
# from a few samples falls from it. Repeat each estimator many times at each sample size and measure the
# standard deviation of its estimates:

# %%
SAMPLE_SIZES = [2, 4, 8, 16, 32, 64, 128]
REPEATS = 2_000


def spread(estimator, num_samples: int) -> torch.Tensor:
    return estimator(num_samples, REPEATS).std(0)


spreads = {
    "score function": [spread(score_function_by_hand, n) for n in SAMPLE_SIZES],
    "pathwise": [spread(pathwise_by_hand, n) for n in SAMPLE_SIZES],
}
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
for index, (axis, name) in enumerate(zip(axes, ["dJ/dmu", "dJ/dsigma"], strict=True)):
    for label, values in spreads.items():
        axis.loglog(SAMPLE_SIZES, [float(v[index]) for v in values], marker="o", label=label)
    axis.set_title(f"{name} (exact {float(exact[index]):.1f})")
    axis.set_xlabel("samples per estimate (N)")
    axis.set_ylabel("standard deviation")
    axis.grid(alpha=0.3, which="both")
axes[0].legend()
fig.tight_layout()

# %% [markdown]
# Both fall as `1/sqrt(N)`, but the score-function estimator starts several times higher: it does not know
# which way `f` slopes, only how good each sample was. That is the price of needing nothing but `f(x)`.
#
# ## With autograd
#
# Nobody writes the score by hand. The surrogate `log p(x) · f(x)`, with `f(x)` held constant, has the
# score-function estimate as its gradient, whatever the distribution:

# %%
mu = torch.tensor(MU, requires_grad=True)
sigma = torch.tensor(SIGMA, requires_grad=True)
distribution = torch.distributions.Normal(mu, sigma)
x = distribution.sample((100_000,))  # sample(): no gradient flows through x
surrogate = distribution.log_prob(x) * f(x)
surrogate.mean().backward()
print("autograd score function:", [mu.grad.item(), sigma.grad.item()])

# %% [markdown]
# And the pathwise estimator is `rsample()`, which keeps `x` differentiable:

# %%
mu.grad = sigma.grad = None
x = torch.distributions.Normal(mu, sigma).rsample((100_000,))
f(x).mean().backward()
print("autograd pathwise:      ", [mu.grad.item(), sigma.grad.item()])

# %% [markdown]
# ## With reinforce
#
# `reinforce.score_function_surrogate(log_probs, f, baseline)` is that surrogate, with `f` and the baseline
# detached for you. A baseline `b` that does not depend on the sample leaves the estimate unbiased and can cut
# its variance: here the leave-one-out mean of the other samples' `f`. The policy gradient of the next
# notebooks is this same surrogate, where `x` is an action and `f` the return that followed it.


# %%
def surrogate_estimate(num_samples: int, leave_one_out: bool) -> torch.Tensor:
    mu = torch.tensor(MU, requires_grad=True)
    sigma = torch.tensor(SIGMA, requires_grad=True)
    distribution = torch.distributions.Normal(mu, sigma)
    x = distribution.sample((num_samples,))
    values = f(x)
    baseline = (values.sum() - values) / (num_samples - 1) if leave_one_out else None
    surrogate = reinforce.score_function_surrogate(distribution.log_prob(x), values, baseline)
    return torch.stack(torch.autograd.grad(surrogate.mean(), [mu, sigma]))


for leave_one_out in (False, True):
    estimates = torch.stack([surrogate_estimate(16, leave_one_out) for _ in range(500)])
    print(
        f"N=16, leave-one-out baseline={leave_one_out!s:5}: mean {estimates.mean(0).tolist()}, "
        f"std {estimates.std(0).tolist()}"
    )

# %% [markdown]
# The means match the exact gradient `(-3, 2)` in both cases (up to the noise of 500 repeats); the baseline
# makes the spread smaller. The same comparison as a script is `examples/score_function_vs_pathwise.py`
# and its figure:
#
# ![score function against pathwise](../../figures/score_function_vs_pathwise.png)
