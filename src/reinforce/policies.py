"""Policies: ``nn.Module``s that map an observation tensor to a ``torch.distributions.Distribution``.

`make_policy` picks the head from the action space: a Categorical over logits for ``Discrete`` actions, a
diagonal Gaussian with a state-independent log standard deviation for ``Box`` actions (log-probs summed over
the action dimensions). The body is an MLP with ReLU; ``hidden_sizes=()`` gives the linear policy of the
textbook (softmax of a linear function of the features, or a linear-mean Gaussian).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn
from torch.distributions import Categorical, Distribution, Independent, Normal

from reinforce.errors import ReinforceError

LOG_STD_MIN = -5.0
"""Lower bound of the Gaussian head's log standard deviation (std >= 6.7e-3)."""
LOG_STD_MAX = 2.0
"""Upper bound of the Gaussian head's log standard deviation (std <= 7.4)."""


def mlp(in_features: int, hidden_sizes: Sequence[int], out_features: int) -> nn.Sequential:
    """Linear layers of the given widths with ReLU between them; no activation on the output."""
    layers: list[nn.Module] = []
    width = in_features
    for hidden in hidden_sizes:
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


class ObservationEncoder(nn.Module):
    """Turns a batch of raw observations ``[B, *shape]`` into float features ``[B, features]``.

    ``Box`` observations are flattened; ``Discrete`` observations become one-hot vectors (the tabular case).
    """

    def __init__(self, observation_space: spaces.Space[object]) -> None:
        super().__init__()
        if isinstance(observation_space, spaces.Discrete):
            self.num_categories: int | None = int(observation_space.n)
            self.start = int(observation_space.start)
            self.features = self.num_categories
        elif isinstance(observation_space, spaces.Box):
            self.num_categories = None
            self.start = 0
            self.features = int(np.prod(observation_space.shape))
        else:
            raise ReinforceError(
                f"unsupported observation space {observation_space}: "
                "reinforce handles Box and Discrete observations; wrap the env (e.g. FlattenObservation)"
            )

    def forward(self, observations: Tensor) -> Tensor:
        """Encode ``[B, *shape]`` observations as ``[B, features]`` floats."""
        if self.num_categories is not None:
            indices = observations.reshape(-1).long() - self.start
            return nn.functional.one_hot(indices, self.num_categories).float()
        return observations.reshape(observations.shape[0], -1).float()


class Policy(nn.Module):
    """Observations in, a distribution over actions out (the one policy interface of reinforce)."""

    def __init__(self, encoder: ObservationEncoder, body: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.body = body

    def __call__(self, observations: Tensor) -> Distribution:
        """Distribution of the actions for a batch of raw observations ``[B, *obs_shape]``."""
        distribution: Distribution = super().__call__(observations)
        return distribution


class CategoricalPolicy(Policy):
    """Softmax policy over ``n`` discrete actions: ``pi(a|s) = softmax(body(s))[a]``."""

    def forward(self, observations: Tensor) -> Distribution:
        """Categorical distribution over the action indices ``0..n-1``."""
        logits = self.body(self.encoder(observations))
        return Categorical(logits=logits, validate_args=False)


class GaussianPolicy(Policy):
    """Diagonal Gaussian policy: mean from the body, a state-independent learned log standard deviation."""

    def __init__(self, encoder: ObservationEncoder, body: nn.Module, action_dim: int) -> None:
        super().__init__(encoder, body)
        self.log_std = nn.Parameter(torch.zeros(action_dim))

    def forward(self, observations: Tensor) -> Distribution:
        """Independent Normal over the flattened action vector; ``log_prob`` sums over its dimensions."""
        mean = self.body(self.encoder(observations))
        std = self.log_std.clamp(LOG_STD_MIN, LOG_STD_MAX).exp().expand_as(mean)
        return Independent(Normal(mean, std, validate_args=False), 1, validate_args=False)


def make_policy(
    observation_space: spaces.Space[object],
    action_space: spaces.Space[object],
    hidden_sizes: Sequence[int] = (128,),
) -> Policy:
    """Build the policy for one environment's (not the vector env's) spaces.

    Args:
        observation_space: a ``Box`` or ``Discrete`` space.
        action_space: a ``Discrete`` space (Categorical head) or a ``Box`` space (Gaussian head).
        hidden_sizes: MLP hidden widths; ``()`` for a linear policy.

    Raises:
        ReinforceError: for any other space.
    """
    encoder = ObservationEncoder(observation_space)
    if isinstance(action_space, spaces.Discrete):
        return CategoricalPolicy(encoder, mlp(encoder.features, hidden_sizes, int(action_space.n)))
    if isinstance(action_space, spaces.Box):
        action_dim = int(np.prod(action_space.shape))
        return GaussianPolicy(encoder, mlp(encoder.features, hidden_sizes, action_dim), action_dim)
    raise ReinforceError(
        f"unsupported action space {action_space}: reinforce handles Discrete and Box actions; "
        "wrap the env to expose one of them"
    )
