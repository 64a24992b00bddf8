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
# # 4. Sutton & Barto's short corridor (Example 13.1, Figures 13.1 and 13.2)
#
# A corridor of three cells before the goal, a reward of -1 per step, two actions (left, right). In the second
# cell the actions are reversed. All three cells look the same to the agent: one feature vector for all of
# them, so the policy cannot tell them apart. A deterministic policy never arrives (always right gets stuck
# bouncing in the reversed cell, always left never leaves the first); an ε-greedy one does badly; the best
# policy is a *stochastic* one. This is the book's argument for learning a policy directly.

# %%
import math

import gymnasium as gym
import matplotlib.pyplot as plt
import numpy as np
import torch

import reinforce

LEFT, RIGHT = 0, 1
GOAL = 3


class ShortCorridor(gym.Env):
    """States 0, 1, 2 and the goal 3; the observation is the same constant in every state."""

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(1.0, 1.0, shape=(1,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.state = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.state = 0
        return np.ones(1, dtype=np.float32), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.state = next_state(self.state, int(action) == RIGHT)
        return np.ones(1, dtype=np.float32), -1.0, self.state == GOAL, False, {}


def next_state(state, right):
    """Works on ints and on arrays of states (one per run): right moves right, except in state 1."""
    right = np.where(np.equal(state, 1), np.logical_not(right), right)
    return np.maximum(np.asarray(state) + np.where(right, 1, -1), 0)


# %% [markdown]
# ## Figure 13.1: the value of the start against the probability of going right
#
# With `p` the probability of right in every state, the values solve three linear equations
# (`v(s) = -1 + p · v(right of s) + (1 - p) · v(left of s)`, and `v(goal) = 0`).


# %%
def start_value(p: float) -> float:
    a = np.eye(3)
    b = -np.ones(3)
    for state in range(3):
        for right, probability in ((True, p), (False, 1 - p)):
            following = int(next_state(state, right))
            if following != GOAL:
                a[state, following] -= probability
    return float(np.linalg.solve(a, b)[0])


probabilities = np.linspace(0.01, 0.99, 197)
values = np.array([start_value(p) for p in probabilities])
best = probabilities[values.argmax()]
print(f"best p(right) = {best:.2f}, value of the start = {values.max():.2f}")

fig, axis = plt.subplots(figsize=(6.5, 3.8))
axis.plot(probabilities, values)
axis.plot([best], [values.max()], "o", label=f"optimal stochastic policy ({values.max():.1f})")
for epsilon_greedy in (0.05, 0.95):
    axis.plot([epsilon_greedy], [start_value(epsilon_greedy)], "s", label=f"ε-greedy, p = {epsilon_greedy}")
axis.set_ylim(-100, 0)
axis.set_xlabel("probability of right")
axis.set_ylabel("J = value of the start")
axis.legend(fontsize=8)
axis.grid(alpha=0.3)
fig.tight_layout()

# %% [markdown]
# ## Figure 13.2: REINFORCE, with and without a baseline
#
# The book's algorithm updates after *every step* of an episode, once the episode is over:
# `theta += alpha · gamma^t · G_t · grad log pi(A_t | S_t, theta)` with gamma = 1, from a start where right has
# probability 0.05. With a baseline, the learned state value `v(s, w) = w` (one weight, since the features are
# constant) is subtracted from `G_t` and learned at the same time:
# `delta = G_t - w; w += alpha_w · delta; theta += alpha_theta · delta · grad log pi`.
#
# First the book's algorithm as it is written, in NumPy, vectorised over independent runs (each array has one
# entry per run; both variants run side by side, 20 runs each), 1000 episodes each, with the book's step sizes.


# %%
def sutton_barto_reinforce(alpha: np.ndarray, alpha_w: np.ndarray, episodes: int = 1000) -> np.ndarray:
    """Total reward of every episode, ``[runs, episodes]``, for runs with step sizes ``alpha``, ``alpha_w``.

    ``alpha_w`` 0 is no baseline (``w`` stays 0). With two actions and one logit each, ``theta = (theta_left,
    theta_right)`` and ``grad log pi(a) = onehot(a) - pi``: the update moves the two logits by opposite amounts,
    so only ``d = theta_right - theta_left`` matters (``p(right) = sigmoid(d)``), and it moves twice the step.
    """
    runs = len(alpha)
    rng = np.random.default_rng(0)
    d = np.full(runs, math.log(0.05 / 0.95))  # p(right) = 0.05
    w = np.zeros(runs)
    totals = np.zeros((runs, episodes))
    for episode in range(episodes):
        state, actions, lengths = np.zeros(runs, dtype=int), [], np.zeros(runs, dtype=int)
        while (state != GOAL).any():
            right = rng.random(runs) < 1 / (1 + np.exp(-d))
            actions.append(right)
            lengths += state != GOAL
            state = np.where(state != GOAL, next_state(state, right), GOAL)
        totals[:, episode] = -lengths
        for t, right in enumerate(actions):  # after the episode: one update per step, in order
            delta = np.where(t < lengths, -(lengths - t) - w, 0.0)  # G_t - w; 0 after a run's goal
            w += alpha_w * delta
            d += 2 * alpha * delta * (right - 1 / (1 + np.exp(-d)))
    return totals


RUNS = 20
totals = sutton_barto_reinforce(alpha=np.repeat([2**-13, 2**-9], RUNS), alpha_w=np.repeat([0.0, 2**-6], RUNS))
without_baseline, with_baseline = totals[:RUNS], totals[RUNS:]

fig, axis = plt.subplots(figsize=(7, 4))
axis.plot(without_baseline.mean(0), label="REINFORCE, alpha = 2^-13")
axis.plot(with_baseline.mean(0), label="REINFORCE with baseline, alpha_theta = 2^-9, alpha_w = 2^-6")
axis.axhline(values.max(), color="gray", linestyle="--", label=f"v*(start) = {values.max():.1f}")
axis.set_ylim(-90, -10)
axis.set_xlabel("episode")
axis.set_ylabel(f"total reward on episode (mean of {RUNS} runs)")
axis.legend(fontsize=8)
axis.grid(alpha=0.3)
fig.tight_layout()

# %% [markdown]
# As in the book: both approach the optimum, and the baseline, which allows a much larger step size for the
# policy, gets there far sooner. (That step size is near the edge of stability: a run that meets a very long
# episode early takes hundreds of large steps in one direction and can be thrown to a nearly deterministic
# policy that no longer reaches the goal. Seed 1 of this random generator does that; seed 0 does not.)
#
# ## The same algorithm with reinforce
#
# `update="per_step"` is this loop: after each episode, one optimizer step per time step, in order, on
# `-G_t · log pi(a_t | s_t)`, the policy re-evaluated after each step. With `hidden_sizes=()` the policy is
# linear in the observation; here the observation is the constant 1, so its logits are `W · 1 + b`: `W` and `b`
# both receive the book's gradient, and plain SGD at `lr = alpha / 2` moves the logits by exactly the book's
# step. No return normalisation, no batching: one episode per update.

# %%
torch.set_num_threads(1)
ALPHA = 2**-13
agent = reinforce.Reinforce(
    ShortCorridor,
    seed=0,
    hidden_sizes=(),
    update="per_step",
    optimizer="sgd",
    lr=ALPHA / 2,
    gamma=1.0,
    return_normalization="none",
    num_envs=1,
    episodes_per_update=1,
)
with torch.no_grad():  # the book's start: p(right) = 0.05
    agent.policy.body[0].weight.zero_()
    agent.policy.body[0].bias.copy_(torch.tensor([math.log(0.95), math.log(0.05)]))


def logit_difference() -> float:
    logits = agent.policy(torch.ones(1, 1)).logits[0]
    return (logits[RIGHT] - logits[LEFT]).item()


# %% [markdown]
# Take three episodes. For each, apply the book's update by hand (the NumPy loop above, for one run) to the
# episode the library collected, then let the library train on the same episode, and compare:

# %%
for _ in range(3):
    batch = agent.collect_batch()
    rights = batch.actions[batch.mask].numpy() == RIGHT  # one environment: the steps in time order
    d = logit_difference()
    for t, right in enumerate(rights):
        d += 2 * ALPHA * -(len(rights) - t) * (right - 1 / (1 + math.exp(-d)))
    agent.train_on_batch(batch)
    print(f"episode of {len(rights):3} steps: by hand d = {d:.6f}, reinforce d = {logit_difference():.6f}")
    assert abs(d - logit_difference()) < 1e-4
agent.close()

# %% [markdown]
# The same numbers, up to float32 rounding. The library's batched default (many episodes, one step) is the
# faster way to the same place; [From the tutorial to reinforce](../../tutorial/) says what changes then.
