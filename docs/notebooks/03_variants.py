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
# # 3. Why the variants exist: bias and variance against the exact gradient
#
# REINFORCE has many members: whole-episode returns (Williams 1992) or reward-to-go, a baseline or none,
# standardised weights or not, `gamma^t` in front of each step's term or not. Each is a switch of
# `reinforce.TrainConfig` ([Concepts](../../concepts/) says exactly what each computes). Which are unbiased, and
# what does each buy? On a small tabular MDP we can answer exactly: its expected return `J` can be computed from
# the Bellman equations, so its true gradient is known, and every estimator can be measured against it.

# %%
from typing import Any

import gymnasium as gym
import matplotlib.pyplot as plt
import numpy as np
import torch

import reinforce
from reinforce.core.loss import policy_loss

torch.set_num_threads(1)  # tiny tensors: one thread is fastest (`learn` does this itself; `update` does not)

# %% [markdown]
# ## The MDP
#
# Three states, two actions, a reward per (state, action), random transitions, and a probability of ending the
# episode after every step. Observations are the state's index; reinforce one-hot encodes a `Discrete`
# observation, so with `hidden_sizes=()` the policy is the linear softmax `pi(a|s) = softmax(W[:, s] + b)`.

# %%
INITIAL = np.array([0.6, 0.3, 0.1])
# TRANSITIONS[s, a] = probabilities of the next state 0, 1, 2 and of the end of the episode
TRANSITIONS = np.array(
    [
        [[0.1, 0.5, 0.1, 0.3], [0.4, 0.1, 0.2, 0.3]],
        [[0.2, 0.1, 0.3, 0.4], [0.1, 0.3, 0.1, 0.5]],
        [[0.3, 0.2, 0.1, 0.4], [0.0, 0.2, 0.2, 0.6]],
    ]
)
REWARDS = np.array([[1.0, -0.5], [0.0, 2.0], [-1.0, 1.5]])
NUM_STATES, NUM_ACTIONS = REWARDS.shape
GAMMA = 0.7


class TabularEnv(gym.Env):
    def __init__(self) -> None:
        self.observation_space = gym.spaces.Discrete(NUM_STATES)
        self.action_space = gym.spaces.Discrete(NUM_ACTIONS)
        self.state = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[int, dict]:
        super().reset(seed=seed)
        self.state = int(self.np_random.choice(NUM_STATES, p=INITIAL))
        return self.state, {}

    def step(self, action: int) -> tuple[int, float, bool, bool, dict]:
        reward = float(REWARDS[self.state, int(action)])
        following = int(self.np_random.choice(NUM_STATES + 1, p=TRANSITIONS[self.state, int(action)]))
        terminated = following == NUM_STATES
        self.state = 0 if terminated else following
        return self.state, reward, terminated, False, {}


# %% [markdown]
# ## The exact objective
#
# For a policy `pi`, the values solve `V = r_pi + gamma · P_pi V`, so `J = mu0 · (I - gamma · P_pi)⁻¹ r_pi`. We
# compute `pi(·|s)` with the agent's own policy module, so autograd gives `grad J` with respect to exactly the
# parameters the estimators update.


# %%
def expected_return(policy: torch.nn.Module) -> torch.Tensor:
    probs = policy(torch.arange(NUM_STATES)).probs.double()  # [S, A]
    p_pi = torch.einsum("sa,sat->st", probs, torch.as_tensor(TRANSITIONS[:, :, :NUM_STATES]))
    r_pi = (probs * torch.as_tensor(REWARDS)).sum(-1)
    values = torch.linalg.solve(torch.eye(NUM_STATES, dtype=torch.float64) - GAMMA * p_pi, r_pi)
    return torch.as_tensor(INITIAL) @ values


def flat_gradient(value: torch.Tensor, policy: torch.nn.Module) -> torch.Tensor:
    return torch.cat([g.flatten() for g in torch.autograd.grad(value, list(policy.parameters()))]).double()


def make_agent(seed: int, **switches: Any) -> reinforce.Reinforce:
    settings = {"hidden_sizes": (), "gamma": GAMMA, "return_normalization": "none", "num_envs": 8, "lr": 0.1}
    settings.update(switches)
    return reinforce.Reinforce(TabularEnv, seed=seed, vectorization_mode="sync", **settings)


agent = make_agent(seed=0)
exact = flat_gradient(expected_return(agent.policy), agent.policy)
print(f"J = {expected_return(agent.policy).item():.3f}, |grad J| = {exact.norm():.3f}")

# %% [markdown]
# ## The estimators, measured
#
# For each variant: at the same fixed parameters, collect many independent batches of 8 episodes with
# `reinforce.collect`, turn each into weights with the agent's own `batch_weights` (returns, baseline,
# normalisation, `gamma^t`, exactly as training does) and into a gradient estimate with the library's loss. The
# mean of the estimates against `grad J` is the bias; their spread is the variance.

# %%
VARIANTS = {
    "whole-episode return (Williams)": {"reward_to_go": False},
    "reward-to-go, gamma^t": {"discount_gradient": True},
    "reward-to-go, gamma^t, leave-one-out": {"discount_gradient": True, "baseline": "leave_one_out"},
    "reward-to-go, no gamma^t (common)": {},
    "reward-to-go, gamma^t, batch-standardised": {"discount_gradient": True, "return_normalization": "batch"},
}
NUM_BATCHES = 100


def estimates(switches: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact gradient at the agent's initial parameters, and ``NUM_BATCHES`` estimates of it."""
    agent = make_agent(seed=0, loss_reduction="mean_over_episodes", **switches)
    exact = flat_gradient(expected_return(agent.policy), agent.policy)
    samples = []
    for index in range(NUM_BATCHES):
        batch = reinforce.collect(agent.envs, agent.policy, 8, seed=1 if index == 0 else None)
        returns, weights = agent.batch_weights(batch)
        loss, _ = policy_loss(agent.policy, batch, weights, agent.config)
        samples.append(-flat_gradient(loss, agent.policy))  # minus: the loss is minus the objective
        agent.fit_baseline(batch, returns)
    agent.close()
    return exact, torch.stack(samples)


print(f"{'variant':45} {'bias':>6} {'(noise)':>8} {'variance':>9}")
for name, switches in VARIANTS.items():
    exact, samples = estimates(switches)
    bias = (samples.mean(0) - exact).norm().item()
    noise = (samples.var(0).sum() / NUM_BATCHES).sqrt().item()  # the size of the bias that chance alone gives
    variance = samples.var(0).sum().item()
    print(f"{name:45} {bias:6.3f} {noise:8.3f} {variance:9.3f}")

# %% [markdown]
# How to read it: a bias within about twice its noise is no bias that 100 batches can see. The unbiased
# variants (whole-episode returns; reward-to-go with `gamma^t`; with a leave-one-out baseline) differ in variance
# only: reward-to-go drops the rewards that came before each action, pure noise, and the baseline subtracts what
# the other episodes say to expect. Dropping `gamma^t` (as nearly every library does) and standardising the
# weights over the batch are biased: the first is not the gradient of any objective when `gamma < 1`, the
# second divides each batch by a random scale. Biased is not bad: they often learn faster, which is what the
# next measurement asks. The project's test (`tests/unit/test_exact_gradient.py`) makes this a statistical
# test with 600 batches per variant, and [What each part buys](../../ablations/) has its numbers.
#
# ## Learning curves over seeds
#
# Now train each variant from the same start with `agent.update()` (one batch, one step of Adam) and follow the
# exact `J` after every update, over 3 seeds.

# %%
SEEDS = range(3)
UPDATES = 30
fig, axis = plt.subplots(figsize=(8, 4))
for name, switches in VARIANTS.items():
    curves = []
    for seed in SEEDS:
        agent = make_agent(seed=seed, **switches)
        curve = [expected_return(agent.policy).item()]
        for _ in range(UPDATES):
            agent.update()
            curve.append(expected_return(agent.policy).item())
        curves.append(curve)
        agent.close()
    curves = np.array(curves)
    line = axis.plot(curves.mean(0), label=name)[0]
    axis.fill_between(range(UPDATES + 1), curves.min(0), curves.max(0), color=line.get_color(), alpha=0.15)
axis.set_xlabel("updates (8 episodes each)")
axis.set_ylabel("exact J of the policy")
axis.set_title("mean over 3 seeds, band: min to max")
axis.grid(alpha=0.3)
axis.legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# On so small a problem every variant gets there; the differences show in how the seeds spread. On CartPole and
# Acrobot, over 10 seeds, the same switches are measured in [What each part buys](../../ablations/):
#
# ![ablation on CartPole](../../figures/ablation_cartpole.png)
