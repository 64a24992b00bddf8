"""The project's policy-gradient estimates against the exact gradient of a tabular MDP.

For each estimator variant, the mean of many independent batch estimates must match ``grad J`` computed from
the Bellman equations (tests/exact_mdp.py): a z-test per coordinate, with the standard error taken from the
sample variance and the critical value from a family-wise error rate (Bonferroni over the coordinates), not
a loose constant. Variants that are biased by construction must fail that same test, which shows it has the
power to see a bias; their bias is printed (``pytest -s``) and recorded in docs/ablations.md. A second MDP
forbids some actions by action masks: the estimate must match the masked policy's exact gradient.
"""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass
from typing import Any

import exact_mdp
import pytest
import torch

from reinforce import Reinforce, collect
from reinforce.core.loss import policy_loss

NUM_BATCHES = 600
EPISODES_PER_BATCH = 4
FAMILY_ERROR = 1e-3
"""Probability that an unbiased variant fails by chance (all coordinates together)."""

exact_mdp.register()


@dataclass(frozen=True)
class Estimates:
    mean: torch.Tensor
    standard_error: torch.Tensor
    total_variance: float
    """Trace of the covariance of one batch estimate."""


def initial_parameters(mdp: exact_mdp.TabularMDP = exact_mdp.MDP) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(7)
    weight = torch.randn(mdp.num_actions, mdp.num_states, generator=generator)
    bias = torch.randn(mdp.num_actions, generator=generator)
    return weight, bias


def summarize(samples: list[torch.Tensor], num_batches: int) -> Estimates:
    stacked = torch.stack(samples)
    variance = stacked.var(dim=0)
    return Estimates(stacked.mean(0), (variance / num_batches).sqrt(), float(variance.sum()))


def estimate(
    num_batches: int = NUM_BATCHES,
    seed: int = 0,
    env_id: str = "toy/Tabular-v0",
    mdp: exact_mdp.TabularMDP = exact_mdp.MDP,
    without_masks: list[torch.Tensor] | None = None,
    **hyperparameters: Any,
) -> Estimates:
    """Policy-gradient estimates of independent batches, from the project's own loss, at fixed parameters.

    ``without_masks``, if given, receives the estimates of the same batches with their action masks dropped
    from the loss (the log-probs of the unmasked softmax: a bias the masked exact-gradient test must see).
    """
    settings = {
        "num_envs": EPISODES_PER_BATCH,
        "hidden_sizes": (),
        "return_normalization": "none",
        "loss_reduction": "mean_over_episodes",
        "value_hidden_sizes": (),
        "value_lr": 0.05,
        **hyperparameters,
    }
    agent = Reinforce(env_id, seed=seed, vectorization_mode="sync", **settings)
    weight, bias = initial_parameters(mdp)
    with torch.no_grad():
        agent.policy.body[0].weight.copy_(weight)
        agent.policy.body[0].bias.copy_(bias)
    parameters = list(agent.policy.parameters())
    samples = []
    for index in range(num_batches):
        batch = collect(agent.envs, agent.policy, EPISODES_PER_BATCH, seed=seed if index == 0 else None)
        returns, weights = agent.batch_weights(batch)
        loss, _ = policy_loss(agent.policy, batch, weights, agent.config)
        samples.append(-torch.cat([grad.flatten() for grad in torch.autograd.grad(loss, parameters)]).double())
        if without_masks is not None:
            assert batch.action_masks is not None
            unmasked = dataclasses.replace(batch, action_masks=None)
            loss, _ = policy_loss(agent.policy, unmasked, weights, agent.config)
            gradient = torch.autograd.grad(loss, parameters)
            without_masks.append(-torch.cat([grad.flatten() for grad in gradient]).double())
        agent.fit_baseline(batch, returns)
    agent.close()
    return summarize(samples, num_batches)


def critical_value(num_coordinates: int) -> float:
    return statistics.NormalDist().inv_cdf(1 - FAMILY_ERROR / (2 * num_coordinates))


def z_scores(estimates: Estimates, gamma: float, mdp: exact_mdp.TabularMDP = exact_mdp.MDP) -> torch.Tensor:
    exact = exact_mdp.exact_gradient(*initial_parameters(mdp), gamma, mdp)
    return (estimates.mean - exact) / estimates.standard_error


UNBIASED = {
    "reward-to-go": ({"gamma": 1.0}, 1.0),
    "whole-episode return": ({"gamma": 1.0, "reward_to_go": False}, 1.0),
    "leave-one-out": ({"gamma": 1.0, "baseline": "leave_one_out"}, 1.0),
    "leave-one-out, whole-episode": ({"gamma": 1.0, "baseline": "leave_one_out", "reward_to_go": False}, 1.0),
    "running mean": ({"gamma": 1.0, "baseline": "running_mean"}, 1.0),
    "value": ({"gamma": 1.0, "baseline": "value"}, 1.0),
    "gamma 0.8, discounted gradient": ({"gamma": 0.8, "discount_gradient": True}, 0.8),
    "gamma 0.8, whole-episode return": ({"gamma": 0.8, "reward_to_go": False}, 0.8),
    "gamma 0.8, discounted gradient, value": ({"gamma": 0.8, "discount_gradient": True, "baseline": "value"}, 0.8),
}


@pytest.mark.parametrize("variant", list(UNBIASED))
def test_unbiased_estimators_match_the_exact_gradient(variant: str) -> None:
    hyperparameters, gamma = UNBIASED[variant]
    z = z_scores(estimate(**hyperparameters), gamma)
    assert z.abs().max() < critical_value(z.numel()), z


BIASED = {
    "batch mean (includes the episode itself)": ({"gamma": 1.0, "baseline": "batch_mean"}, 1.0),
    "batch normalisation": ({"gamma": 1.0, "return_normalization": "batch"}, 1.0),
    "gamma 0.8, reward-to-go without the gamma^t factor": ({"gamma": 0.8}, 0.8),
}


@pytest.mark.parametrize("variant", list(BIASED))
def test_biased_estimators_are_detected(variant: str) -> None:
    hyperparameters, gamma = BIASED[variant]
    estimates = estimate(**hyperparameters)
    z = z_scores(estimates, gamma)
    exact = exact_mdp.exact_gradient(*initial_parameters(), gamma)
    relative_bias = float((estimates.mean - exact).norm() / exact.norm())
    print(f"{variant}: relative bias {relative_bias:.3f}, max |z| {float(z.abs().max()):.1f}")
    assert z.abs().max() > critical_value(z.numel()), z


def test_masked_mdp_estimates_match_the_masked_policys_exact_gradient() -> None:
    # toy/MaskedTabular-v0 raises on a forbidden action: the run itself shows none is ever taken. The weights
    # of forbidden actions, and of state 2 (one allowed action, taken with probability 1), get no gradient,
    # exactly; the others pass the z-test. The same batches with their masks dropped from the loss (log-probs
    # of the unmasked softmax) must fail it.
    mdp = exact_mdp.MASKED_MDP
    without_masks: list[torch.Tensor] = []
    estimates = estimate(env_id="toy/MaskedTabular-v0", mdp=mdp, without_masks=without_masks, gamma=1.0)
    exact = exact_mdp.exact_gradient(*initial_parameters(mdp), 1.0, mdp)
    fixed = torch.zeros_like(exact, dtype=torch.bool)
    fixed[: mdp.num_actions * mdp.num_states] = torch.as_tensor(~mdp.allowed.T | (mdp.allowed.sum(1) == 1)).flatten()
    assert int(fixed.sum()) == 4  # W[1, 1], W[0, 2], W[1, 2], W[2, 2]
    assert torch.all(exact[fixed] == 0) and torch.all(estimates.mean[fixed] == 0)
    z = ((estimates.mean - exact) / estimates.standard_error)[~fixed]
    assert z.abs().max() < critical_value(z.numel()), z
    biased = z_scores(summarize(without_masks, NUM_BATCHES), 1.0, mdp)
    assert biased.abs().max() > critical_value(biased.numel()), biased


@pytest.mark.parametrize("mdp", [exact_mdp.MDP, exact_mdp.MASKED_MDP], ids=["mdp", "masked"])
def test_exact_gradient_matches_finite_differences(mdp: exact_mdp.TabularMDP) -> None:
    weight, bias = initial_parameters(mdp)
    gradient = exact_mdp.exact_gradient(weight, bias, 0.9, mdp)
    flat = torch.cat([weight.flatten(), bias]).double()
    step = 1e-6
    for index in range(flat.numel()):
        shifted = [flat.clone(), flat.clone()]
        shifted[0][index] += step
        shifted[1][index] -= step
        values = [
            exact_mdp.expected_return(p[: weight.numel()].reshape(weight.shape), p[weight.numel() :], 0.9, mdp)
            for p in shifted
        ]
        assert float((values[0] - values[1]) / (2 * step)) == pytest.approx(float(gradient[index]), abs=1e-6)
