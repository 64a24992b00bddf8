"""`GaussianMLPSampler`: the actions of reinforce's own Gaussian MLP policies, computed in NumPy during a collection.

The Box counterpart of `reinforce.rollout.mlp_sampler.MLPSampler`: on the MuJoCo preset (4 envs, a 64x64 tanh MLP)
the torch policy call (the encoder, three linear layers, the activations, the Normal and its sample) cost about a
quarter of a collection step; the same arithmetic in NumPy, with the normal noise still drawn from torch's
generator, costs a fraction of it (docs/benchmarks.md, "Gaussian policies' samples in NumPy").
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from reinforce.core.policies import LOG_STD_MAX, LOG_STD_MIN, GaussianPolicy, Policy
from reinforce.rollout.mlp_sampler import MLP_SAMPLER_MAX_SIZE, Layers, Normalization, mlp_outputs, mlp_parts


class GaussianMLPSampler:
    """Samples (or takes the mean of) a Gaussian MLP policy's actions in NumPy, with torch's normal draws.

    It applies to reinforce's `GaussianPolicy` with a state-independent log-std over an MLP body and a Box
    observation encoder (`reinforce.rollout.mlp_sampler.mlp_parts`: on the CPU, float32, without hooks), both
    action squashes (its actions are what the policy's distribution samples: the unclipped sample for
    ``"clip"``, the pre-squash value for ``"tanh"``, as a `reinforce.core.batch.RolloutBatch` stores them), and
    within `MLP_SAMPLER_MAX_SIZE`. With the parameters as they are when it is made, it computes the mean in NumPy
    and draws as ``Normal.sample`` does on the CPU: ``torch.normal(mean, std)`` fills its ``[N, D]`` output with
    standard normals from torch's generator, then multiplies by ``std`` and adds ``mean`` (in float32);
    here ``torch.randn((N, D))`` draws the same values and moves the generator alike, and the product and the sum
    are the same float32 operations. The std is computed by torch, as the policy's ``forward`` computes it
    (``log_std`` clamped, then ``exp``). Deterministic: the mean (the mode of the Normal and of `TanhNormal`), no
    draw. The actions are the torch path's up to the rounding of NumPy's matrix products and activations against
    torch's (about 1e-7 relative): the same law and draws, and the same actions for the same seed on one machine.
    """

    def __init__(
        self,
        layers: Layers,
        activation: Any,
        normalization: Normalization | None,
        log_std: torch.Tensor,
        deterministic: bool,
    ) -> None:
        self.layers = layers
        self.activation = activation
        self.normalization = normalization
        self.log_std = log_std
        self.deterministic = deterministic
        self._stds: dict[int, np.ndarray[Any, Any]] = {}

    @classmethod
    def of(cls, policy: Policy, num_envs: int, deterministic: bool = False) -> GaussianMLPSampler | None:
        """The sampler of ``policy`` for ``num_envs`` rows, or None where it does not apply (see the class)."""
        if type(policy) is not GaussianPolicy or policy.state_dependent:  # also a user's subclass or whole policy
            return None
        parts = mlp_parts(policy)
        log_std = policy.log_std
        if parts is None or log_std.device.type != "cpu" or log_std.dtype != torch.float32:
            return None
        layers, activation, normalization = parts
        if layers[-1][0].shape[-1] != policy.action_dim or log_std.shape != (policy.action_dim,):
            return None
        if num_envs * sum(weight.size for weight, _ in layers) > MLP_SAMPLER_MAX_SIZE:
            return None
        sampler = cls(layers, activation, normalization, log_std.detach().clone(), deterministic)
        sampler.std(num_envs)  # the usual rows' std, now
        return sampler

    def std(self, rows: int) -> np.ndarray[Any, Any]:
        """The ``[rows, D]`` standard deviations, as the policy's ``forward`` computes them for ``rows`` rows.

        Computed by torch on the expanded log-std, as there (its vectorised ``exp`` and its scalar tail need not
        round alike), once per number of rows.
        """
        std = self._stds.get(rows)
        if std is None:
            with torch.no_grad():
                expanded = self.log_std.expand(rows, len(self.log_std))
                std = self._stds[rows] = expanded.clamp(LOG_STD_MIN, LOG_STD_MAX).exp().numpy()
        return std

    def __call__(self, observations: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """``[N, D]`` float32 actions (the distribution's samples, or its mean) for ``[N, *obs_shape]`` observations."""
        # silent on non-finite parameters or observations, as torch is: `check_actions` stops non-finite actions
        with np.errstate(all="ignore"):
            mean = mlp_outputs(observations, self.layers, self.activation, self.normalization)
            if self.deterministic:
                return mean
            noise: np.ndarray[Any, Any] = torch.randn(mean.shape, dtype=torch.float32).numpy()
            noise *= self.std(len(mean))
            noise += mean
            return noise
