"""A small tabular MDP whose policy gradient is known exactly, for unbiasedness tests of the estimators.

Three states, two actions, one absorbing terminal state. Observations are the state index (Discrete, one-hot
encoded by the policy), so ``hidden_sizes=()`` gives the linear softmax policy
``pi(a|s) = softmax(W[:, s] + b)``. For that policy the expected discounted return
``J = mu0 . (I - gamma * P_pi)^-1 r_pi`` is a differentiable function of ``(W, b)``: `exact_gradient` solves
the Bellman equations with linear algebra and differentiates through them.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor

NUM_STATES = 3
NUM_ACTIONS = 2
INITIAL = np.array([0.6, 0.3, 0.1])
"""Initial state distribution."""
# TRANSITIONS[s, a] = probabilities of the next state 0, 1, 2 and of termination (last entry)
TRANSITIONS = np.array(
    [
        [[0.1, 0.5, 0.1, 0.3], [0.4, 0.1, 0.2, 0.3]],
        [[0.2, 0.1, 0.3, 0.4], [0.1, 0.3, 0.1, 0.5]],
        [[0.3, 0.2, 0.1, 0.4], [0.0, 0.2, 0.2, 0.6]],
    ]
)
REWARDS = np.array([[1.0, -0.5], [0.0, 2.0], [-1.0, 1.5]])
"""Reward of action a in state s (deterministic)."""


class TabularEnv(gymnasium.Env[np.int64, np.int64]):
    """The MDP above as a Gymnasium env (no time limit: every episode terminates)."""

    def __init__(self) -> None:
        self.observation_space = spaces.Discrete(NUM_STATES)
        self.action_space = spaces.Discrete(NUM_ACTIONS)
        self._state = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.int64, dict]:
        super().reset(seed=seed)
        self._state = int(self.np_random.choice(NUM_STATES, p=INITIAL))
        return np.int64(self._state), {}

    def step(self, action: np.int64) -> tuple[np.int64, float, bool, bool, dict]:
        reward = float(REWARDS[self._state, int(action)])
        following = int(self.np_random.choice(NUM_STATES + 1, p=TRANSITIONS[self._state, int(action)]))
        terminated = following == NUM_STATES
        self._state = 0 if terminated else following
        return np.int64(self._state), reward, terminated, False, {}


def register() -> None:
    """Register ``toy/Tabular-v0`` (idempotent)."""
    if "toy/Tabular-v0" not in gymnasium.registry:
        gymnasium.register("toy/Tabular-v0", entry_point=TabularEnv)


def expected_return(weight: Tensor, bias: Tensor, gamma: float) -> Tensor:
    """``J(W, b)``, the expected discounted return of the linear softmax policy, from the Bellman equations."""
    probs = torch.softmax(weight.T + bias, dim=-1)  # [S, A]: logits of state s are W[:, s] + b
    transitions = torch.as_tensor(TRANSITIONS[:, :, :NUM_STATES], dtype=weight.dtype)
    p_pi = torch.einsum("sa,sat->st", probs, transitions)
    r_pi = (probs * torch.as_tensor(REWARDS, dtype=weight.dtype)).sum(-1)
    values = torch.linalg.solve(torch.eye(NUM_STATES, dtype=weight.dtype) - gamma * p_pi, r_pi)
    return torch.as_tensor(INITIAL, dtype=weight.dtype) @ values


def exact_gradient(weight: Tensor, bias: Tensor, gamma: float) -> Tensor:
    """``grad J`` with respect to ``(W, b)``, flattened in the order of ``policy.parameters()``."""
    weight = weight.detach().double().requires_grad_(True)
    bias = bias.detach().double().requires_grad_(True)
    grads = torch.autograd.grad(expected_return(weight, bias, gamma), [weight, bias])
    return torch.cat([grad.flatten() for grad in grads])
