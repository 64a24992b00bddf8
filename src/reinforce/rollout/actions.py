"""Actions: the policy's samples (`sample_actions`) and their mapping to the env's actions (`EnvActions`).

Shared by collection (`reinforce.rollout.collect`), `Reinforce.predict` (`predict_actions`), populations and
the exported policy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn
from torch.distributions import Bernoulli, Categorical, Distribution, Independent

from reinforce.core.distributions import MaskedCategorical
from reinforce.core.policies import CategoricalPolicy, Policy, unsupported_action_space
from reinforce.rollout.masks import action_mask_batch
from reinforce.rollout.observations import observation_batch


class EnvActions(nn.Module):
    """Maps a batch of the policy's actions ``[N, ...]`` to the env's actions, in torch.

    The one definition of that mapping: `collect` and `Reinforce.predict` run it (through `numpy`), and an
    exported policy (`reinforce.export`) contains it. ``Discrete`` and ``MultiDiscrete`` actions are shifted by
    the space's ``start`` (and reshaped to a MultiDiscrete space's shape); ``MultiBinary`` bits are reshaped.
    ``Box`` actions are reshaped to the space's shape, then with ``squash="clip"`` clipped to its bounds (the
    unclipped sample is the one whose log-prob is trained on), with ``squash="tanh"`` mapped from the
    pre-squash value ``u`` to ``low + (tanh(u) + 1) / 2 * (high - low)`` (in float64). The result is int64
    for the discrete spaces and float64 for Box; `numpy` casts it to the space's dtype.

    Raises:
        ReinforceError: an action space reinforce has no policy for.
    """

    start: Tensor | None
    low: Tensor
    high: Tensor

    def __init__(self, action_space: spaces.Space[Any], squash: str = "clip") -> None:
        super().__init__()
        if not isinstance(action_space, (spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary, spaces.Box)):
            raise unsupported_action_space(action_space)
        self.action_space = action_space
        self.shape = tuple(action_space.shape or ())
        self.squash = squash
        if isinstance(action_space, (spaces.Discrete, spaces.MultiDiscrete)):
            start = np.asarray(action_space.start, dtype=np.int64)
            self.register_buffer("start", torch.as_tensor(start) if start.any() else None, persistent=False)
        if isinstance(action_space, spaces.Box):
            self.register_buffer("low", torch.as_tensor(action_space.low, dtype=torch.float64), persistent=False)
            self.register_buffer("high", torch.as_tensor(action_space.high, dtype=torch.float64), persistent=False)

    def forward(self, actions: Tensor) -> Tensor:
        """The env's actions (int64, or float64 for Box) for the policy's actions ``[N, ...]``."""
        if isinstance(self.action_space, spaces.Discrete):
            indices = actions.long()
            return indices if self.start is None else indices + self.start
        shaped = actions.reshape((-1, *self.shape))
        if isinstance(self.action_space, spaces.MultiDiscrete):
            return shaped.long() if self.start is None else shaped.long() + self.start
        if isinstance(self.action_space, spaces.MultiBinary):
            return shaped.long()
        values = shaped.double()
        if self.squash == "tanh":
            values = self.low + (torch.tanh(values) + 1.0) / 2.0 * (self.high - self.low)
        return torch.clamp(values, self.low, self.high)

    def numpy(self, actions: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """The env's actions for a NumPy batch of the policy's actions, in the action space's dtype."""
        if isinstance(self.action_space, spaces.Discrete) and self.start is None:  # the mapping is the identity
            return np.asarray(actions).astype(self.action_space.dtype, copy=False)
        # forward, not __call__: no hooks to run, and this is once per vector step of every collection
        env_actions: np.ndarray[Any, Any] = self.forward(torch.from_numpy(np.asarray(actions))).numpy()
        return env_actions.astype(self.action_space.dtype, copy=False)


def to_env_actions(
    actions: np.ndarray[Any, Any], action_space: spaces.Space[Any], squash: str = "clip"
) -> np.ndarray[Any, Any]:
    """Map a batch of policy actions ``[N, ...]`` to what the vector env expects (see `EnvActions`)."""
    return EnvActions(action_space, squash).numpy(actions)


def predict_actions(
    policy: Policy,
    observation_space: spaces.Space[Any],
    action_space: spaces.Space[Any],
    observation: Any,
    *,
    deterministic: bool,
    action_mask: Any,
    device: torch.device,
) -> np.ndarray[Any, Any]:
    """The env's actions for one observation of ``observation_space`` or a batch of them (`Reinforce.predict`).

    Args:
        policy: the policy.
        observation_space: the env's single observation space.
        action_space: the env's single action space.
        observation: one observation or a batch ``[B, ...]``.
        deterministic: the distribution's mode instead of a sample.
        action_mask: the allowed actions (`reinforce.rollout.masks.action_mask_batch`), or None.
        device: the policy's device.
    """
    batch, batched = observation_batch(observation_space, observation)
    masks = None
    if action_mask is not None:
        masks = torch.as_tensor(action_mask_batch(action_mask, action_space, len(batch), batched))
    with torch.inference_mode():
        actions = sample_actions(policy(torch.as_tensor(batch, device=device), masks), deterministic)
    env_actions = to_env_actions(actions.cpu().numpy(), action_space, policy.action_squash)
    return env_actions if batched else env_actions[0]


def sample_actions(distribution: Distribution, deterministic: bool = False, uniform: Tensor | None = None) -> Tensor:
    """Actions from ``distribution``: its mode if ``deterministic``, else a sample.

    A Categorical (or independent Categoricals, for MultiDiscrete) is sampled by inverse CDF (one uniform
    per row, the first index whose cumulative probability exceeds it), which draws from the same
    distribution as ``Categorical.sample`` and is cheaper for large batches (benchmarks/sampling.py); other
    distributions use their own ``sample``. The mode of a Bernoulli bit is 1 where its probability is above
    one half (torch's ``mode`` is NaN at exactly one half). ``uniform``: the Categorical's uniforms in [0, 1),
    ``[*batch, 1]`` (`categorical_shape`), drawn elsewhere (a population's, from each member's own generator);
    None draws them from torch's.
    """
    base = distribution.base_dist if isinstance(distribution, Independent) else distribution
    if deterministic:
        if isinstance(base, Bernoulli):
            return (base.logits > 0).to(base.logits.dtype)
        return distribution.mode
    if isinstance(base, Categorical):
        # Categorical(logits=...) already normalised its logits: exp gives the probabilities without the
        # second normalisation (softmax) that `.probs` would run
        indices = inverse_cdf(base.logits.exp(), uniform)
        if isinstance(base, MaskedCategorical):
            # a masked action adds exactly 0 to the cumulative sum, so only the clamp (a draw that rounding put
            # at the very end) can land on one: such a draw takes the last valid action instead
            allowed = base.action_mask.gather(-1, indices.unsqueeze(-1)).squeeze(-1)
            last = base.logits.shape[-1] - 1
            last_valid = last - base.action_mask.flip(-1).to(torch.uint8).argmax(-1)
            indices = torch.where(allowed, indices, last_valid)
        return indices
    return distribution.sample()


def inverse_cdf(weights: Tensor, uniform: Tensor | None = None) -> Tensor:
    """A draw from each row of non-negative ``weights`` ``[*batch, n]``, with probabilities proportional to them.

    It is the first index whose cumulative weight exceeds ``uniform`` times the row's total. ``uniform``:
    ``[*batch, 1]`` in [0, 1); None draws ``torch.rand`` (in the weights' dtype and device).
    """
    cumulative = weights.cumsum(-1)
    # scaled by the total, so that rounding in the cumulative sum cannot push a draw past the last action
    if uniform is None:
        uniform = torch.rand((*cumulative.shape[:-1], 1), device=cumulative.device, dtype=cumulative.dtype)
    uniform = uniform * cumulative[..., -1:]
    return (cumulative <= uniform).sum(-1).clamp_(max=cumulative.shape[-1] - 1)


def plain_categorical(policy: Policy) -> Callable[[Tensor], Tensor] | None:
    """The function from observations to logits of a plain `CategoricalPolicy`, or None for any other policy.

    Plain: `CategoricalPolicy`'s own ``forward`` and ``head`` (a subclass may override neither) and no hooks on
    the policy module itself, so that ``policy(observations)`` is ``Categorical(logits=logits(observations))``.
    Collection samples its logits with `sample_logits`, without building the Distribution at every step.
    """
    if not isinstance(policy, CategoricalPolicy):
        return None
    kind = type(policy)
    if kind.forward is not CategoricalPolicy.forward or kind.head is not CategoricalPolicy.head:
        return None
    if policy._forward_hooks or policy._forward_pre_hooks:
        return None
    body, encoder = policy.body, policy.encoder
    return lambda observations: body(encoder(observations))


def sample_logits(logits: Tensor, deterministic: bool = False) -> Tensor:
    """`sample_actions` of ``Categorical(logits=logits)`` without the Distribution: the same law, a third of the ops.

    The mode is the largest logit; a sample is `inverse_cdf` of ``softmax(logits)`` with one ``torch.rand``
    uniform per row, the draw `sample_actions` makes, so torch's generator moves as it does there. The actions
    are `sample_actions`' except where a uniform falls within float rounding of a boundary of the cumulative
    probabilities (here softmax's, there ``exp`` of the normalised logits).
    """
    if deterministic:
        return logits.argmax(-1)
    return inverse_cdf(torch.softmax(logits, -1))


def categorical_shape(distribution: Distribution) -> tuple[int, ...] | None:
    """The shape of `sample_actions`'s uniforms for ``distribution`` (``[*batch, 1]``), or None if it draws none."""
    base = distribution.base_dist if isinstance(distribution, Independent) else distribution
    return (*base.logits.shape[:-1], 1) if isinstance(base, Categorical) else None
