"""`GaussianMLPSampler`: reinforce's own Gaussian MLP policies sampled without their modules and Distribution.

The Box counterpart of `reinforce.rollout.mlp_sampler.MLPSampler`. On the MuJoCo preset (4 envs, a 64x64 tanh MLP)
the policy call cost about a quarter of a collection step, most of it not arithmetic: the module calls, the
``Normal`` and ``Independent`` (or `TanhNormal`) objects built at every step. The same torch operations called
directly cost a quarter to a half of it, and they are the same kernels on the same operands, so the actions are
the torch path's bit for bit (docs/benchmarks.md, "Gaussian policies' samples without the Distribution"; the same
arithmetic in NumPy was as fast, but its rounding differs, which chaotic MuJoCo trajectories amplify).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from reinforce.core.networks import NORMALIZED_OBSERVATION_CLIP
from reinforce.core.policies import LOG_STD_MAX, LOG_STD_MIN, GaussianPolicy, Policy
from reinforce.rollout.mlp_sampler import mlp_modules

_ACTIVATIONS: dict[type[nn.Module], Callable[[Tensor], Tensor]] = {nn.ReLU: torch.relu, nn.Tanh: torch.tanh}
"""What the MLP's activation modules compute (``nn.ReLU.forward`` and ``nn.Tanh.forward`` call these)."""


class GaussianMLPSampler:
    """Samples (or takes the mean of) a Gaussian MLP policy's actions with torch's functions, for a collection.

    It applies to reinforce's `GaussianPolicy` with a state-independent log-std over an MLP body and a Box
    observation encoder (`reinforce.rollout.mlp_sampler.mlp_modules`: ReLU or Tanh, on the CPU, float32, without
    hooks), with either action squash: its actions are what the policy's distribution samples (the unclipped
    sample for ``"clip"``, the pre-squash value for ``"tanh"``), as a `reinforce.core.batch.RolloutBatch` stores
    them. Each step runs the operations of the policy's ``forward`` and of ``Normal.sample`` on the policy's
    parameters: the encoder's ``(x - mean) * scale`` clamped, ``nn.functional.linear`` and the activation per
    layer, the log-std expanded, clamped and exponentiated, ``torch.normal(mean, std)``; deterministic, the mean
    (the mode of the Normal and of `TanhNormal`) and no draw. So the actions, and torch's generator after them,
    are the torch path's exactly. The encoder's statistics and the std are taken when the sampler is made (a
    collection changes neither): one sampler per collection, as `reinforce.rollout.collect.collect` makes it.
    """

    def __init__(
        self,
        layers: list[nn.Linear],
        activation: Callable[[Tensor], Tensor] | None,
        normalization: tuple[Tensor, Tensor] | None,
        log_std: Tensor,
        deterministic: bool,
    ) -> None:
        self.layers = [(layer.weight.detach(), layer.bias.detach()) for layer in layers]
        self.activation = activation
        self.normalization = normalization
        self.log_std = log_std.detach()
        self.deterministic = deterministic
        self._stds: dict[int, Tensor] = {}

    @classmethod
    def of(cls, policy: Policy, num_envs: int, deterministic: bool = False) -> GaussianMLPSampler | None:
        """The sampler of ``policy`` (``num_envs``: the rows of its steps), or None where it does not apply.

        See the class. Unlike `MLPSampler`, no batch is too large: these are the torch path's own kernels.
        """
        if type(policy) is not GaussianPolicy or policy.state_dependent:  # also a user's subclass or whole policy
            return None
        modules = mlp_modules(policy)
        log_std = policy.log_std
        if modules is None or log_std.device.type != "cpu" or log_std.dtype != torch.float32:
            return None
        encoder, linears, activation = modules
        normalization = encoder.normalization() if encoder.normalize else None
        function = None if activation is None else _ACTIVATIONS[activation]
        sampler = cls(linears, function, normalization, log_std, deterministic)
        sampler.std(num_envs)  # the usual rows' std, now
        return sampler

    def std(self, rows: int) -> Tensor:
        """The ``[rows, D]`` standard deviations as the policy's ``forward`` computes them (once per ``rows``)."""
        std = self._stds.get(rows)
        if std is None:
            std = self._stds[rows] = self.log_std.expand(rows, -1).clamp(LOG_STD_MIN, LOG_STD_MAX).exp()
        return std

    def __call__(self, observations: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """``[N, D]`` float32 actions (the distribution's samples, or its mean) for ``[N, *obs_shape]`` observations."""
        # detached parameters: no graph, inside a collection's inference mode or not
        values = torch.as_tensor(observations)
        values = values.reshape(values.shape[0], -1).float()  # the encoder's
        if self.normalization is not None:
            mean, scale = self.normalization
            values = ((values - mean) * scale).clamp(-NORMALIZED_OBSERVATION_CLIP, NORMALIZED_OBSERVATION_CLIP)
        last = len(self.layers) - 1
        for index, (weight, bias) in enumerate(self.layers):
            values = nn.functional.linear(values, weight, bias)
            if index < last and self.activation is not None:
                values = self.activation(values)
        if not self.deterministic:
            values = torch.normal(values, self.std(len(values)))  # Normal.sample's draw
        actions: np.ndarray[Any, Any] = values.numpy()
        return actions
