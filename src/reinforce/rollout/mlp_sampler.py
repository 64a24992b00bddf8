"""`MLPSampler`: the actions of reinforce's own softmax MLP policies, computed in NumPy during a collection.

In a collection loop each torch kernel of the policy call costs several times what it costs alone (the env's
step runs in between): the default CartPole policy's call (the encoder, two linear layers, the activation, the
inverse CDF) cost more than the env's step, the same arithmetic in NumPy about half as much (docs/benchmarks.md,
"Cheaper steps: the policy's samples in NumPy"). A population's members share one (`MLPSampler.of_members`), their
uniforms drawn from each member's own generator a block of steps at a time (`MemberUniforms`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from reinforce.core.networks import NORMALIZED_OBSERVATION_CLIP, ObservationEncoder
from reinforce.core.policies import CategoricalPolicy, Policy

MLP_SAMPLER_MAX_SIZE = 1 << 22
"""The largest ``num_envs`` times the policy's number of weights that `MLPSampler` takes on; beyond it torch's
batched (multithreaded) kernels are left to do the work."""

_NUMPY_ACTIVATIONS: dict[type[nn.Module], Any] = {nn.ReLU: lambda x: np.maximum(x, 0, out=x), nn.Tanh: np.tanh}
"""The activations of `reinforce.core.networks.mlp` and their NumPy forms (in place where NumPy allows)."""


_GLOBAL_HOOKS = ("_global_forward_hooks", "_global_forward_pre_hooks")
"""torch's registries of the forward hooks on every module (private: read with a default)."""


Layers = list[tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]]
"""Per linear layer, the weight transposed ``[K, in, out]`` and the bias ``[K, 1, out]`` of K policies."""


UNIFORM_BLOCK = 64
"""Steps of uniforms that `MemberUniforms` draws from each member's generator at a time."""


class MemberUniforms:
    """K members' uniforms, ``rows`` per member per step, each member's from its own generator, drawn in blocks.

    Step after step, `next` returns what one ``torch.rand((rows, 1), generator=generators[k])`` per member per
    step would (a block of ``block * rows`` uniforms is that many single draws, in order) for one call per member
    every ``block`` steps instead of one per member per step (CPU generators: on CUDA a block is not the same
    values as single draws, and a population draws per step there). Each member's values are its own generator's,
    whatever the other members do; the generators are left up to a block ahead of the values used, so they are
    for one collection and then dropped (a population's round makes its members' generators afresh).
    """

    def __init__(
        self,
        generators: Sequence[torch.Generator],
        rows: int,
        dtype: torch.dtype = torch.float32,
        block: int = UNIFORM_BLOCK,
    ) -> None:
        self.generators = list(generators)
        self.rows, self.dtype, self.block = rows, dtype, block
        self._buffer = torch.empty((len(self.generators), 0, 1), dtype=dtype)
        self._used = 0

    def next(self) -> torch.Tensor:
        """The next step's uniforms: ``[K * rows, 1]``, member k's rows in block k."""
        if self._used == self._buffer.shape[1]:
            size = (self.block * self.rows, 1)
            self._buffer = torch.stack(
                [torch.rand(size, generator=g, dtype=self.dtype, device=g.device) for g in self.generators]
            )
            self._used = 0
        values = self._buffer[:, self._used : self._used + self.rows]
        self._used += self.rows
        return values.reshape(-1, 1)


class MLPSampler:
    """Samples (or takes the mode of) softmax MLP policies' actions in NumPy, with torch's uniforms.

    It applies to reinforce's `CategoricalPolicy` over an MLP body (`reinforce.core.networks.mlp`: linear layers
    with ReLU or Tanh between them) and a Box observation encoder (flattened, optionally normalised), on the CPU,
    without hooks; `of_members` takes K such policies of one architecture (a population's members), row block k
    being member k's. With the parameters as they are when it is made, it computes the logits in the
    parameters' dtype, then draws as `reinforce.rollout.actions.sample_logits` draws: one ``torch.rand((N, 1))``
    per step (so torch's generator moves as on the torch path; a population's rows take each member's own
    `MemberUniforms`, shared with `reinforce.population.batched.population_act`) and the inverse CDF of the softmax;
    deterministic, the largest logit and no draw. The actions are the torch path's except where rounding
    (NumPy's matrix products and exponentials against torch's) moves a cumulative probability across a uniform,
    or reorders two logits within rounding of each other: the same law, and the same actions for the same seed
    on one machine.
    """

    def __init__(
        self,
        layers: Layers,
        activation: Any,
        normalization: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]] | None,
        deterministic: bool,
        uniforms: MemberUniforms | None = None,
    ) -> None:
        self.members = len(layers[0][0])
        if self.members == 1:  # two-dimensional products, as torch's linear layers compute them
            layers = [(weight[0], bias[0]) for weight, bias in layers]
        self.layers = layers
        self.activation = activation
        self.normalization = normalization
        self.deterministic = deterministic
        self.uniforms = uniforms
        self.dtype = layers[0][0].dtype
        self.torch_dtype = torch.from_numpy(layers[0][0][:0]).dtype

    @classmethod
    def of(cls, policy: Policy, num_envs: int, deterministic: bool = False) -> MLPSampler | None:
        """The sampler of ``policy`` for ``num_envs`` rows, or None where it does not apply (see the class)."""
        return cls.of_members([policy], num_envs, deterministic)

    @classmethod
    def of_members(
        cls,
        policies: Sequence[Policy],
        num_envs: int,
        deterministic: bool = False,
        uniforms: MemberUniforms | None = None,
    ) -> MLPSampler | None:
        """The sampler of K ``policies`` for ``num_envs`` rows (``num_envs / K`` each), or None where it does not apply.

        ``uniforms``: the members' own uniforms (one generator per policy); None: torch's generator.
        """
        found = [_parts(policy) for policy in policies]
        parts = [part for part in found if part is not None]
        if len(parts) != len(found) or num_envs % len(parts):
            return None
        layers, activation, normalization = parts[0]
        shapes = [(weight.shape, weight.dtype) for weight, _ in layers]
        for other_layers, other_activation, other_normalization in parts:
            if [(weight.shape, weight.dtype) for weight, _ in other_layers] != shapes:
                return None
            if other_activation is not activation or (other_normalization is None) != (normalization is None):
                return None
        if num_envs // len(parts) * sum(weight.size for weight, _ in layers) > MLP_SAMPLER_MAX_SIZE:
            return None
        stacked = [
            (np.stack([part[0][index][0] for part in parts]), np.stack([part[0][index][1] for part in parts])[:, None])
            for index in range(len(layers))
        ]
        statistics = None
        if normalization is not None:
            means = [part[2][0] for part in parts if part[2] is not None]
            scales = [part[2][1] for part in parts if part[2] is not None]
            statistics = (np.stack(means)[:, None], np.stack(scales)[:, None])
        return cls(stacked, activation, statistics, deterministic, uniforms)

    def __call__(self, observations: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """``[N]`` int64 actions for ``[N, *obs_shape]`` observations."""
        # silent on non-finite parameters or observations, as torch is: the loss of the batch reports them
        with np.errstate(all="ignore"):
            return self._actions(observations)

    def _actions(self, observations: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        rows, members = len(observations), self.members
        shape = (rows, -1) if members == 1 else (members, rows // members, -1)
        values = np.asarray(observations).reshape(shape).astype(np.float32, copy=False)  # the encoder's .float()
        if self.normalization is not None:
            mean, scale = self.normalization
            if members == 1:
                mean, scale = mean[0], scale[0]
            values = np.clip((values - mean) * scale, -NORMALIZED_OBSERVATION_CLIP, NORMALIZED_OBSERVATION_CLIP)
        values = values.astype(self.dtype, copy=False)
        last = len(self.layers) - 1
        for index, (weight, bias) in enumerate(self.layers):
            values = values @ weight
            values += bias
            if index < last:
                values = self.activation(values)
        values = values.reshape(rows, -1)
        if self.deterministic:
            modes: np.ndarray[Any, Any] = values.argmax(-1).astype(np.int64, copy=False)
            return modes
        values -= values.max(-1, keepdims=True)
        cumulative = np.exp(values, out=values).cumsum(-1)
        if self.uniforms is None:
            threshold = torch.rand((rows, 1), dtype=self.torch_dtype, device="cpu").numpy()
        else:
            threshold = self.uniforms.next().numpy().copy()
        threshold *= cumulative[:, -1:]
        actions: np.ndarray[Any, Any] = (cumulative <= threshold).sum(-1, dtype=np.int64)
        np.minimum(actions, cumulative.shape[-1] - 1, out=actions)  # a draw that rounding put past the end
        return actions


def _parts(policy: Policy) -> tuple[Layers, Any, tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]] | None] | None:
    """One policy's layers (weights transposed, copied), activation and normalisation, or None (see `MLPSampler`)."""
    if type(policy) is not CategoricalPolicy:  # also a user's whole policy, which has no encoder
        return None
    modules = mlp_modules(policy)
    if modules is None:
        return None
    encoder, linears, activation = modules
    # copies: the parameters as they are now, laid out for NumPy's matrix product
    layers = [(layer.weight.detach().numpy().T.copy(), layer.bias.detach().numpy().copy()) for layer in linears]
    normalization = None
    if encoder.normalize:  # the encoder's own statistics, once for the whole collection
        mean, scale = encoder.normalization()
        normalization = (mean.numpy(), scale.numpy())
    return layers, None if activation is None else _NUMPY_ACTIVATIONS[activation], normalization


def mlp_modules(policy: Policy) -> tuple[ObservationEncoder, list[nn.Linear], type[nn.Module] | None] | None:
    """The Box encoder, the linear layers and the activation (None: one layer) of reinforce's encoder and MLP body.

    None where ``policy`` has none (a user's whole policy or network) or they are not what the samplers compute
    (`MLPSampler`, `reinforce.rollout.gaussian_sampler.GaussianMLPSampler`): an encoder of Discrete observations
    or images, another module than Linear (with a bias), ReLU and Tanh, a hook on the policy, its encoder, body or
    a layer or on every module, parameters off the CPU or not float32.
    """
    encoder, body = getattr(policy, "encoder", None), getattr(policy, "body", None)
    if type(encoder) is not ObservationEncoder:
        return None
    if encoder.num_categories is not None or encoder.cnn is not None or type(body) is not nn.Sequential:
        return None
    modules = list(body)
    linears = [module for module in modules[0::2] if type(module) is nn.Linear and module.bias is not None]
    activations = modules[1::2]
    if len(linears) != len(modules[0::2]):
        return None
    kinds = {type(module) for module in activations}
    if len(modules) % 2 == 0 or len(kinds) > 1 or not kinds <= set(_NUMPY_ACTIVATIONS):
        return None
    hooked = (bool(module._forward_hooks or module._forward_pre_hooks) for module in (policy, encoder, body, *modules))
    # hooks on every module (`torch.nn.modules.module.register_module_forward_hook`) would see no call either
    global_hooks = (getattr(torch.nn.modules.module, name, None) for name in _GLOBAL_HOOKS)
    if any(hooked) or any(global_hooks):
        return None
    parameters = [parameter for layer in linears for parameter in (layer.weight, layer.bias)]
    # float32 only: the encoder gives float32 features, which torch's layers of another dtype refuse
    if any(parameter.device.type != "cpu" or parameter.dtype != torch.float32 for parameter in parameters):
        return None
    return encoder, linears, kinds.pop() if kinds else None
