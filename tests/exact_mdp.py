"""Small tabular MDPs whose policy gradient is known exactly, for unbiasedness tests of the estimators.

`MDP`: three states, two actions, one absorbing terminal state. `MASKED_MDP`: three states, three actions, of
which some are forbidden in some states (the env gives ``info["action_mask"]`` and raises on a forbidden
action). Observations are the state index (Discrete, one-hot encoded by the policy), so ``hidden_sizes=()``
gives the linear softmax policy ``pi(a|s) = softmax(W[:, s] + b)`` (over the allowed actions). For that policy
the expected discounted return ``J = mu0 . (I - gamma * P_pi)^-1 r_pi`` is a differentiable function of
``(W, b)``: `exact_gradient` solves the Bellman equations with linear algebra and differentiates through them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor


@dataclass(frozen=True)
class TabularMDP:
    initial: np.ndarray
    """Initial state distribution."""
    transitions: np.ndarray
    """``[S, A, S + 1]``: probabilities of the next state 0..S-1 and of termination (last entry)."""
    rewards: np.ndarray
    """``[S, A]``: reward of action a in state s (deterministic)."""
    allowed: np.ndarray | None = None
    """``[S, A]`` bool: the actions allowed in each state (None: all)."""

    @property
    def num_states(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def num_actions(self) -> int:
        return int(self.rewards.shape[1])


MDP = TabularMDP(
    initial=np.array([0.6, 0.3, 0.1]),
    transitions=np.array(
        [
            [[0.1, 0.5, 0.1, 0.3], [0.4, 0.1, 0.2, 0.3]],
            [[0.2, 0.1, 0.3, 0.4], [0.1, 0.3, 0.1, 0.5]],
            [[0.3, 0.2, 0.1, 0.4], [0.0, 0.2, 0.2, 0.6]],
        ]
    ),
    rewards=np.array([[1.0, -0.5], [0.0, 2.0], [-1.0, 1.5]]),
)
MASKED_MDP = TabularMDP(
    initial=np.array([0.5, 0.3, 0.2]),
    transitions=np.array(
        [
            [[0.1, 0.5, 0.1, 0.3], [0.4, 0.1, 0.2, 0.3], [0.2, 0.2, 0.2, 0.4]],
            [[0.2, 0.1, 0.3, 0.4], [0.1, 0.3, 0.1, 0.5], [0.3, 0.3, 0.1, 0.3]],
            [[0.3, 0.2, 0.1, 0.4], [0.0, 0.2, 0.2, 0.6], [0.1, 0.1, 0.1, 0.7]],
        ]
    ),
    rewards=np.array([[1.0, -0.5, 0.5], [0.0, 2.0, -2.0], [-1.0, 1.5, 3.0]]),
    # state 0: every action; state 1: actions 0 and 2; state 2: action 1 only
    allowed=np.array([[True, True, True], [True, False, True], [False, True, False]]),
)


class TabularEnv(gymnasium.Env[np.int64, np.int64]):
    """A `TabularMDP` as a Gymnasium env (no time limit: every episode terminates).

    With ``allowed``, the info of ``reset`` and ``step`` carries the state's ``action_mask`` and a forbidden
    action raises.
    """

    def __init__(self, mdp: TabularMDP = MDP) -> None:
        self.mdp = mdp
        self.observation_space = spaces.Discrete(mdp.num_states)
        self.action_space = spaces.Discrete(mdp.num_actions)
        self._state = 0

    def _info(self) -> dict[str, Any]:
        if self.mdp.allowed is None:
            return {}
        return {"action_mask": self.mdp.allowed[self._state].astype(np.int8)}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.int64, dict]:
        super().reset(seed=seed)
        self._state = int(self.np_random.choice(self.mdp.num_states, p=self.mdp.initial))
        return np.int64(self._state), self._info()

    def step(self, action: np.int64) -> tuple[np.int64, float, bool, bool, dict]:
        if self.mdp.allowed is not None and not self.mdp.allowed[self._state, int(action)]:
            raise ValueError(f"action {int(action)} is forbidden in state {self._state}")
        reward = float(self.mdp.rewards[self._state, int(action)])
        probabilities = self.mdp.transitions[self._state, int(action)]
        following = int(self.np_random.choice(self.mdp.num_states + 1, p=probabilities))
        terminated = following == self.mdp.num_states
        self._state = 0 if terminated else following
        return np.int64(self._state), reward, terminated, False, self._info()


def register() -> None:
    """Register ``toy/Tabular-v0`` and ``toy/MaskedTabular-v0`` (idempotent)."""
    if "toy/Tabular-v0" not in gymnasium.registry:
        gymnasium.register("toy/Tabular-v0", entry_point=TabularEnv)
    if "toy/MaskedTabular-v0" not in gymnasium.registry:
        gymnasium.register("toy/MaskedTabular-v0", entry_point=TabularEnv, kwargs={"mdp": MASKED_MDP})


def expected_return(weight: Tensor, bias: Tensor, gamma: float, mdp: TabularMDP = MDP) -> Tensor:
    """``J(W, b)``, the expected discounted return of the linear softmax policy, from the Bellman equations."""
    logits = weight.T + bias  # [S, A]: logits of state s are W[:, s] + b
    if mdp.allowed is not None:
        logits = logits.masked_fill(~torch.as_tensor(mdp.allowed), float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    transitions = torch.as_tensor(mdp.transitions[:, :, : mdp.num_states], dtype=weight.dtype)
    p_pi = torch.einsum("sa,sat->st", probs, transitions)
    r_pi = (probs * torch.as_tensor(mdp.rewards, dtype=weight.dtype)).sum(-1)
    values = torch.linalg.solve(torch.eye(mdp.num_states, dtype=weight.dtype) - gamma * p_pi, r_pi)
    return torch.as_tensor(mdp.initial, dtype=weight.dtype) @ values


def exact_gradient(weight: Tensor, bias: Tensor, gamma: float, mdp: TabularMDP = MDP) -> Tensor:
    """``grad J`` with respect to ``(W, b)``, flattened in the order of ``policy.parameters()``."""
    weight = weight.detach().double().requires_grad_(True)
    bias = bias.detach().double().requires_grad_(True)
    grads = torch.autograd.grad(expected_return(weight, bias, gamma, mdp), [weight, bias])
    return torch.cat([grad.flatten() for grad in grads])
