"""REINFORCE the tutorial way, in one file: what reinforce computes, one episode at a time.

One environment and a Python loop per step: convert the observation to a tensor, sample an action from a
softmax MLP (one hidden layer of 128 ReLU units) with a Categorical, keep its log-prob and the reward. When
the episode ends, compute the discounted reward-to-go G_t = r_t + gamma * G_{t+1} backwards, standardise it,
and take one Adam step on -sum_t log pi(a_t|s_t) * G_t.

The benchmarks use it as the reference point ("the tutorial loop"). Run it on its own:

    python examples/tutorial_reinforce.py [SEED]
"""

from __future__ import annotations

import sys
import time
from collections import deque

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical


class TutorialAgent:
    def __init__(self, seed: int, lr: float = 1e-2, gamma: float = 0.99) -> None:
        torch.manual_seed(seed)
        self.env = gym.make("CartPole-v1")
        self.seed = seed
        self.gamma = gamma
        self.net = nn.Sequential(nn.Linear(4, 128), nn.ReLU(), nn.Linear(128, 2))
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=lr)
        self.episodes = 0

    # --8<-- [start:episode]
    def run_episode(self, learn: bool = True) -> tuple[float, int]:
        observation, _ = self.env.reset(seed=self.seed if self.episodes == 0 else None)
        self.episodes += 1
        log_probs, rewards = [], []
        done = False
        while not done:
            state = torch.from_numpy(observation).float().unsqueeze(0)
            distribution = Categorical(logits=self.net(state))
            action = distribution.sample()
            log_probs.append(distribution.log_prob(action))
            observation, reward, terminated, truncated, _ = self.env.step(action.item())
            rewards.append(float(reward))
            done = terminated or truncated
        if learn:
            returns, running = [], 0.0
            for reward in reversed(rewards):
                running = reward + self.gamma * running
                returns.insert(0, running)
            weights = torch.tensor(returns)
            weights = (weights - weights.mean()) / (weights.std() + 1e-8) if len(returns) > 1 else weights * 0
            loss = -(torch.cat(log_probs) * weights).sum()
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
        return sum(rewards), len(rewards)

    # --8<-- [end:episode]

    def evaluate(self, episodes: int = 100) -> float:
        env = gym.make("CartPole-v1")
        total = 0.0
        with torch.inference_mode():
            for index in range(episodes):
                observation, _ = env.reset(seed=10_000 + index)
                done = False
                while not done:
                    action = int(self.net(torch.from_numpy(observation).float()).argmax())
                    observation, reward, terminated, truncated, _ = env.step(action)
                    total += float(reward)
                    done = terminated or truncated
        return total / episodes


def solve(seed: int, max_steps: int, max_seconds: float) -> dict[str, float | bool]:
    """Train until the 100-episode training mean reaches 475, or a budget runs out."""
    agent = TutorialAgent(seed)
    recent: deque[float] = deque(maxlen=100)
    steps = 0
    start = time.perf_counter()
    solved = False
    while steps < max_steps and time.perf_counter() - start < max_seconds:
        ret, length = agent.run_episode()
        steps += length
        recent.append(ret)
        if len(recent) == 100 and np.mean(recent) >= 475:
            solved = True
            break
    seconds = time.perf_counter() - start
    return {"solved": solved, "steps": steps, "seconds": seconds, "eval": agent.evaluate()}


if __name__ == "__main__":
    result = solve(seed=int(sys.argv[1]) if len(sys.argv) > 1 else 0, max_steps=300_000, max_seconds=600)
    print(result)
