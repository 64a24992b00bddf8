"""`MLPSampler`: the actions of reinforce's own softmax MLP policy, computed in NumPy during a collection.

In a collection loop each torch kernel of the policy call costs several times what it costs alone (the env's
step runs in between), and the default CartPole policy's call (the encoder, two linear layers, the activation,
the inverse CDF) was about twice the env's step; the same arithmetic in NumPy costs about a third of that
(docs/benchmarks.md, "Cheaper steps and checks").
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from reinforce.core.networks import NORMALIZED_OBSERVATION_CLIP, ObservationEncoder
from reinforce.core.policies import CategoricalPolicy, Policy

MLP_SAMPLER_MAX_SIZE = 1 << 22
"""The largest ``num_envs`` times the policy's number of weights that `MLPSampler` takes on; beyond it torch's
batched (multithreaded) kernels are left to do the work."""

ACTIVATIONS: dict[type[nn.Module], Any] = {nn.ReLU: lambda x: np.maximum(x, 0, out=x), nn.Tanh: np.tanh}
"""The activations of `reinforce.core.networks.mlp` and their NumPy forms (in place where NumPy allows)."""


class MLPSampler:
    """Samples (or takes the mode of) a softmax MLP policy's actions in NumPy, with torch's uniforms.

    It applies to reinforce's `CategoricalPolicy` over an MLP body (`reinforce.core.networks.mlp`: linear layers
    with ReLU or Tanh between them) and a Box observation encoder (flattened, optionally normalised), on the CPU,
    without hooks. With the parameters as they are when it is made, it computes the logits in the parameters'
    dtype, then draws as `reinforce.rollout.actions.sample_logits` draws: one ``torch.rand((N, 1))`` per step
    (so torch's generator moves as on the torch path) and the inverse CDF of the softmax; deterministic, the
    largest logit and no draw. The actions are the torch path's except where rounding (NumPy's matrix products
    and exponentials against torch's) moves a cumulative probability across a uniform, or reorders two logits
    within rounding of each other: the same law, and the same actions for the same seed on one machine.
    """

    def __init__(
        self,
        layers: list[tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]],
        activation: Any,
        normalization: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]] | None,
        deterministic: bool,
    ) -> None:
        self.layers = layers
        self.activation = activation
        self.normalization = normalization
        self.deterministic = deterministic
        self.dtype = layers[0][0].dtype
        self.torch_dtype = torch.from_numpy(layers[0][0][:0]).dtype

    @classmethod
    def of(cls, policy: Policy, num_envs: int, deterministic: bool = False) -> MLPSampler | None:
        """The sampler of ``policy`` for ``num_envs`` rows, or None where it does not apply (see the class)."""
        encoder, body = policy.encoder, policy.body
        if type(policy) is not CategoricalPolicy or type(encoder) is not ObservationEncoder:
            return None
        if encoder.num_categories is not None or encoder.cnn is not None or type(body) is not nn.Sequential:
            return None
        modules = list(body)
        linears = [module for module in modules[0::2] if type(module) is nn.Linear and module.bias is not None]
        activations = modules[1::2]
        if len(linears) != len(modules[0::2]):
            return None
        kinds = {type(module) for module in activations}
        if len(modules) % 2 == 0 or len(kinds) > 1 or not kinds <= set(ACTIVATIONS):
            return None
        if any(
            bool(module._forward_hooks or module._forward_pre_hooks) for module in (policy, encoder, body, *modules)
        ):
            return None
        parameters = [parameter for layer in linears for parameter in (layer.weight, layer.bias)]
        if any(parameter.device.type != "cpu" or parameter.dtype != parameters[0].dtype for parameter in parameters):
            return None
        if num_envs * sum(layer.weight.numel() for layer in linears) > MLP_SAMPLER_MAX_SIZE:
            return None
        layers = [
            (np.ascontiguousarray(layer.weight.detach().numpy().T), layer.bias.detach().numpy()) for layer in linears
        ]
        normalization = None
        if encoder.normalize:  # as the encoder computes them, once for the whole collection
            scale = (encoder.obs_var + 1e-8).rsqrt().float().numpy()
            normalization = (encoder.obs_mean.float().numpy(), scale)
        activation = ACTIVATIONS[kinds.pop()] if kinds else None
        return cls(layers, activation, normalization, deterministic)

    def __call__(self, observations: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """``[N]`` int64 actions for ``[N, *obs_shape]`` observations."""
        rows = len(observations)
        values = np.asarray(observations).reshape(rows, -1).astype(np.float32, copy=False)  # the encoder's .float()
        if self.normalization is not None:
            mean, scale = self.normalization
            values = np.clip((values - mean) * scale, -NORMALIZED_OBSERVATION_CLIP, NORMALIZED_OBSERVATION_CLIP)
        values = values.astype(self.dtype, copy=False)
        last = len(self.layers) - 1
        for index, (weight, bias) in enumerate(self.layers):
            values = values @ weight
            values += bias
            if index < last:
                values = self.activation(values)
        if self.deterministic:
            modes: np.ndarray[Any, Any] = values.argmax(-1).astype(np.int64, copy=False)
            return modes
        values -= values.max(-1, keepdims=True)
        cumulative = np.exp(values, out=values).cumsum(-1)
        threshold = torch.rand((rows, 1), dtype=self.torch_dtype).numpy()
        threshold *= cumulative[:, -1:]
        actions: np.ndarray[Any, Any] = (cumulative <= threshold).sum(-1, dtype=np.int64)
        np.minimum(actions, cumulative.shape[-1] - 1, out=actions)  # a draw that rounding put past the end
        return actions
