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
# # 2. REINFORCE on CartPole, by hand and with the library
#
# The policy gradient is the score-function estimator of notebook 1 where the sample is a whole episode:
#
#     grad J = E[ sum_t grad log pi(a_t | s_t) · G_t ]
#
# with `G_t` the (discounted) return from step t on. This notebook takes one CartPole episode through every
# piece of that formula by hand: the returns, the loss, its reading as a weighted cross-entropy, one optimizer
# step. Then it trains with `reinforce.Reinforce`, which does the same on many episodes at once.

# %%
import gymnasium as gym
import matplotlib.pyplot as plt
import torch
from torch import nn

import reinforce

torch.manual_seed(0)
env = gym.make("CartPole-v1")
policy = nn.Sequential(nn.Linear(4, 128), nn.ReLU(), nn.Linear(128, 2))  # logits of the two actions
optimizer = torch.optim.Adam(policy.parameters(), lr=0.01)

# %% [markdown]
# ## One episode
#
# At each step: the observation goes through the network, a `Categorical` over the logits picks the action,
# and we keep what the update needs: the observation, the action, the reward.

# %%
observations, actions, rewards = [], [], []
observation, _ = env.reset(seed=0)
done = False
while not done:
    state = torch.as_tensor(observation, dtype=torch.float32)
    with torch.no_grad():
        action = torch.distributions.Categorical(logits=policy(state)).sample()
    observations.append(state)
    actions.append(action)
    observation, reward, terminated, truncated, _ = env.step(action.item())
    rewards.append(float(reward))
    done = terminated or truncated
observations, actions, rewards = torch.stack(observations), torch.stack(actions), torch.tensor(rewards)
print(f"{len(rewards)} steps, return {rewards.sum():.0f}, terminated={terminated}, truncated={truncated}")

# %% [markdown]
# ## The returns
#
# `G_t = r_t + gamma · G_{t+1}`, computed backwards from the last step. `reinforce.discounted_returns` does the
# same for `[T]` or `[T, N]` tensors (time, environment), cut wherever `dones` says an episode ended.

# %%
GAMMA = 0.99
returns, running = [], 0.0
for reward in reversed(rewards.tolist()):
    running = reward + GAMMA * running
    returns.insert(0, running)
returns = torch.tensor(returns)

dones = torch.zeros(len(rewards), dtype=torch.bool)
dones[-1] = True
assert torch.allclose(returns, reinforce.discounted_returns(rewards, dones, GAMMA))
print("G_0, G_1, ..., last:", [round(g, 2) for g in returns[:3].tolist()], "...", round(returns[-1].item(), 2))

# %% [markdown]
# Every `G_t` is positive on CartPole (a reward of 1 per step), so on its own every action taken would be made
# more likely, the bad ones less than the good ones. Standardising the weights (subtract their mean, divide by
# their standard deviation) makes the late steps, those that led to the fall, negative: those actions are
# made less likely. This is what the classic tutorial does per episode; reinforce does it over a batch of
# episodes (`return_normalization`, see [Concepts](../../concepts/)).

# %%
weights = (returns - returns.mean()) / (returns.std() + 1e-8)
print("weights of the first and last steps:", round(weights[0].item(), 2), round(weights[-1].item(), 2))

# %% [markdown]
# ## The loss, and its cross-entropy reading
#
# The surrogate loss is `-mean_t log pi(a_t | s_t) · w_t`. Its gradient is minus the policy-gradient estimate,
# so a step of gradient descent on it is a step of ascent on J. `log pi(a_t | s_t)` of a softmax policy is
# minus the cross-entropy of the logits with the taken action as the label: REINFORCE is supervised learning
# on its own actions, each example weighted by how well things went afterwards.

# %%
logits = policy(observations)
log_probs = torch.distributions.Categorical(logits=logits).log_prob(actions)
loss = -(log_probs * weights).mean()
cross_entropy = nn.functional.cross_entropy(logits, actions, reduction="none")
assert torch.allclose(loss, (cross_entropy * weights).mean())
assert torch.allclose(loss, reinforce.reinforce_loss(log_probs, weights))
print(f"loss {loss.item():.4f}")

# %% [markdown]
# ## One step
#
# Backpropagation sends gradient only through `log pi` of the action that was taken; the weights are
# constants. After the step, the loss on this episode is lower: weighted by `w_t`, the log-probabilities of the
# actions taken went up, those with a positive weight (the early steps) gaining on those with a negative one.

# %%
optimizer.zero_grad()
loss.backward()
optimizer.step()
with torch.no_grad():
    new_log_probs = torch.distributions.Categorical(logits=policy(observations)).log_prob(actions)
change = new_log_probs - log_probs.detach()
print(f"loss before the step {loss.item():.4f}, after {-(new_log_probs * weights).mean().item():.4f}")
print(f"mean of w_t times the change of log pi(a_t|s_t): {(weights * change).mean().item():+.4f}")

# %% [markdown]
# Repeating this loop, one episode at a time, is the tutorial algorithm; it solves CartPole in a few hundred
# episodes. [From the tutorial to reinforce](../../tutorial/) puts it side by side with the library.
#
# ## With the library
#
# `reinforce.Reinforce` collects many episodes at once on a vector of environments (one batched policy call per
# step), computes the same returns and the same loss over the whole batch, and takes one step per batch. Its
# defaults are tuned on CartPole-v1. We record each update's mean return with a callback, and stop on a budget
# of 30,000 env steps to keep this notebook short (a full run, `reinforce train CartPole-v1`, verifies a solved
# policy after 25,000 to 100,000, a median of 49,000 over seeds 10-19: see the Benchmarks).

# %%
agent = reinforce.Reinforce("CartPole-v1", seed=0, stop_on_solve=False)
curve = []


def record(agent: reinforce.Reinforce, metrics: dict) -> bool:
    curve.append((metrics["env_steps"], metrics["charts/episode_return_mean"]))
    return True  # go on


agent.learn(30_000, callback=record)
steps, mean_returns = zip(*curve, strict=True)
fig, axis = plt.subplots(figsize=(7, 3.5))
axis.plot(steps, mean_returns, marker=".")
axis.set_xlabel("env steps")
axis.set_ylabel("mean return of the update's episodes")
axis.set_title("reinforce.Reinforce('CartPole-v1', seed=0, stop_on_solve=False)")
axis.grid(alpha=0.3)
fig.tight_layout()

# %% [markdown]
# The deterministic policy (the most likely action in each state) is what an evaluation measures:

# %%
evaluation = reinforce.evaluate_policy(agent, episodes=5)
print(f"deterministic mean return over 5 episodes: {evaluation['mean_return']:.1f}")
agent.close()
