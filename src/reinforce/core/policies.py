"""Policies: ``nn.Module``s that map an observation tensor to a ``torch.distributions.Distribution``.

`make_policy` picks the head from the action space:

* ``Discrete``: a Categorical over logits;
* ``MultiDiscrete``: independent Categoricals, one per component (log-probs summed);
* for both, an optional action mask (``info["action_mask"]``, see `reinforce.rollout.masks`) gives the masked
  actions probability 0 (`MaskedCategorical`);
* ``MultiBinary``: independent Bernoullis (log-probs summed);
* ``Box``: a diagonal Gaussian (log-probs summed over the action dimensions) with a log standard deviation
  that is one learned vector or a head of the network, clamped to [`LOG_STD_MIN`, `LOG_STD_MAX`]; with
  ``action_squash="tanh"`` it is a squashed Gaussian (`TanhNormal`).

Each policy is an observation encoder, a body and a distribution head; the encoder and the bodies (the MLP,
or a user's network) are in `reinforce.core.networks`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn
from torch.distributions import Bernoulli, Categorical, Distribution, Independent, Normal

from reinforce.config import ActionSquash, Activation, Init, LogStd, TrainConfig
from reinforce.core.distributions import MaskedCategorical, TanhNormal
from reinforce.core.networks import Network, ObservationEncoder, body
from reinforce.errors import ReinforceError, one_line
from reinforce.imports import first_line

LOG_STD_MIN = -5.0
"""Lower bound of the Gaussian head's log standard deviation (std >= 6.7e-3)."""
LOG_STD_MAX = 2.0
"""Upper bound of the Gaussian head's log standard deviation (std <= 7.4)."""


class Policy(nn.Module):
    """Observations in, a distribution over actions out (the one policy interface of reinforce).

    ``action_squash`` says how `reinforce.rollout.actions.to_env_actions` maps a sampled action to the env: ``"clip"``
    (the default; a no-op for discrete actions) or ``"tanh"`` (`TanhNormal` samples are pre-squash values).
    """

    action_squash: ActionSquash = "clip"
    accepts_action_mask = False
    """Whether ``forward`` takes an ``action_mask`` (the Categorical heads)."""

    def __init__(self, encoder: ObservationEncoder, body: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.body = body

    def __call__(self, observations: Tensor, action_mask: Tensor | None = None) -> Distribution:
        """Distribution of the actions for a batch of raw observations ``[B, *obs_shape]``.

        ``action_mask`` (Discrete and MultiDiscrete heads only; None: every action valid) is ``[B, n]`` bool,
        ``n`` the number of actions or ``sum(nvec)``: the actions where it is false get probability 0.
        """
        if action_mask is None:
            distribution: Distribution = super().__call__(observations)
            return distribution
        if not self.accepts_action_mask:
            raise ReinforceError(
                f"action masks apply to Discrete and MultiDiscrete action spaces, not to {type(self).__name__}'s: "
                "pass action_mask=None"
            )
        masked: Distribution = super().__call__(observations, action_mask)
        return masked


class CategoricalPolicy(Policy):
    """Softmax policy over ``n`` discrete actions: ``pi(a|s) = softmax(body(s))[a]`` (over the valid actions)."""

    accepts_action_mask = True

    def forward(self, observations: Tensor, action_mask: Tensor | None = None) -> Distribution:
        """Categorical distribution over the action indices ``0..n-1``; a `MaskedCategorical` given a mask."""
        return self.head(self.body(self.encoder(observations)), action_mask)

    def head(self, logits: Tensor, action_mask: Tensor | None = None) -> Distribution:
        """The distribution for the body's outputs ``[B, n]`` (`forward` after the body; it has no parameters)."""
        if action_mask is not None:
            return MaskedCategorical(logits, action_mask.to(logits.device))
        return Categorical(logits=logits, validate_args=False)


class MultiCategoricalPolicy(Policy):
    """Independent softmax policies, one per component of a MultiDiscrete space with sizes ``nvec``.

    The body outputs ``sum(nvec)`` logits; they are laid out as ``[B, D, max(nvec)]`` with the missing
    entries of smaller components masked (probability 0, a `MaskedCategorical`), so that one ``Independent``
    Categorical serves all components: ``log pi(a|s) = sum_d log softmax(logits_d)[a_d]``. An action mask is
    ``[B, sum(nvec)]`` bool, the components' masks concatenated, laid out the same way.
    """

    accepts_action_mask = True
    index: Tensor
    padding: Tensor

    def __init__(self, encoder: ObservationEncoder, body: nn.Module, nvec: Sequence[int]) -> None:
        super().__init__(encoder, body)
        self.nvec = [int(n) for n in nvec]
        width = max(self.nvec)
        index = torch.full((len(self.nvec), width), -1, dtype=torch.long)
        offset = 0
        for component, n in enumerate(self.nvec):
            index[component, :n] = torch.arange(offset, offset + n)
            offset += n
        self.register_buffer("index", index.clamp(min=0), persistent=False)
        self.register_buffer("padding", index < 0, persistent=False)
        self.padded = len(set(self.nvec)) > 1

    def forward(self, observations: Tensor, action_mask: Tensor | None = None) -> Distribution:
        """Independent Categoricals over the ``D`` components; ``log_prob`` takes ``[B, D]`` indices from 0."""
        return self.head(self.body(self.encoder(observations)), action_mask)

    def head(self, flat: Tensor, action_mask: Tensor | None = None) -> Distribution:
        """The distribution for the body's outputs ``[B, sum(nvec)]`` (`forward` after the body; no parameters)."""
        logits = flat[:, self.index]
        valid = ~self.padding
        if action_mask is not None:
            valid = valid & action_mask.to(flat.device)[:, self.index]
        elif not self.padded:
            return Independent(Categorical(logits=logits, validate_args=False), 1, validate_args=False)
        return Independent(MaskedCategorical(logits, valid), 1, validate_args=False)


class BernoulliPolicy(Policy):
    """Independent Bernoulli policies over the ``n`` bits of a MultiBinary space: ``p_i = sigmoid(body(s)_i)``."""

    def forward(self, observations: Tensor) -> Distribution:
        """Independent Bernoullis; ``log_prob`` takes ``[B, n]`` float bits and sums over them."""
        return self.head(self.body(self.encoder(observations)))

    def head(self, logits: Tensor, action_mask: Tensor | None = None) -> Distribution:
        """The distribution for the body's outputs ``[B, n]`` (`forward` after the body; it takes no mask)."""
        return Independent(Bernoulli(logits=logits, validate_args=False), 1, validate_args=False)


class GaussianPolicy(Policy):
    """Diagonal Gaussian policy: the mean from the body, the log standard deviation learned, clamped.

    Args:
        encoder: the observation encoder.
        body: maps features to ``action_dim`` means, or ``2 * action_dim`` (means, then log-stds) if
            ``state_dependent``.
        action_dim: the number of action dimensions.
        state_dependent: the log-std is a head of the body (else one learned vector, the default).
        log_std_init: the initial log-std (the vector, or the bias of the log-std head).
        bounds: ``(low, high)`` of the action space, needed (finite) for ``action_squash="tanh"``.
        action_squash: ``"clip"`` (a Gaussian; the env gets a clipped copy of the sample) or ``"tanh"``
            (`TanhNormal`).
    """

    log_scale: Tensor

    def __init__(
        self,
        encoder: ObservationEncoder,
        body: nn.Module,
        action_dim: int,
        *,
        state_dependent: bool = False,
        log_std_init: float = 0.0,
        bounds: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]] | None = None,
        action_squash: ActionSquash = "clip",
    ) -> None:
        super().__init__(encoder, body)
        self.action_dim = action_dim
        self.state_dependent = state_dependent
        self.action_squash = action_squash
        if state_dependent:
            last = [module for module in body.modules() if isinstance(module, nn.Linear)][-1]
            with torch.no_grad():
                last.bias[action_dim:].fill_(log_std_init)
        else:
            self.log_std = nn.Parameter(torch.full((action_dim,), float(log_std_init)))
        if action_squash == "tanh":
            if bounds is None or not (np.isfinite(bounds[0]).all() and np.isfinite(bounds[1]).all()):
                raise ReinforceError(
                    "action_squash='tanh' needs a Box action space with finite bounds: set action_squash='clip'",
                    fields=("action_squash",),
                )
            scale = (np.asarray(bounds[1], np.float64) - np.asarray(bounds[0], np.float64)).reshape(-1) / 2
            self.register_buffer("log_scale", torch.as_tensor(np.log(scale), dtype=torch.float32), persistent=False)

    def forward(self, observations: Tensor) -> Distribution:
        """Independent Normal (or `TanhNormal`) over the flattened action vector; ``log_prob`` sums over it."""
        out = self.body(self.encoder(observations))
        if self.state_dependent:
            mean, log_std = out[:, : self.action_dim], out[:, self.action_dim :]
        else:
            mean, log_std = out, self.log_std.expand_as(out)
        std = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX).exp()
        if self.action_squash == "tanh":
            return TanhNormal(mean, std, self.log_scale)
        return Independent(Normal(mean, std, validate_args=False), 1, validate_args=False)


def unsupported_action_space(action_space: spaces.Space[Any]) -> ReinforceError:
    """The error for an action space reinforce has no policy for, naming it."""
    return ReinforceError(
        f"unsupported action space {action_space} ({type(action_space).__name__}): reinforce handles Discrete, "
        "MultiDiscrete, MultiBinary and Box actions; wrap the env to expose one of them"
    )


def make_policy(
    observation_space: spaces.Space[Any],
    action_space: spaces.Space[Any],
    hidden_sizes: Sequence[int] = (128,),
    *,
    action_squash: ActionSquash = "clip",
    log_std: LogStd = "state_independent",
    log_std_init: float = 0.0,
    normalize_observations: bool = False,
    network: Network | None = None,
    activation: Activation = "relu",
    init: Init = "default",
) -> Policy:
    """Build the policy for one environment's (not the vector env's) spaces.

    Args:
        observation_space: a ``Box`` (a ``uint8`` ``H x W x C`` one is an image) or ``Discrete`` space.
        action_space: ``Discrete`` (Categorical head), ``MultiDiscrete`` (independent Categoricals),
            ``MultiBinary`` (independent Bernoullis) or ``Box`` (Gaussian head).
        hidden_sizes: MLP hidden widths; ``()`` for a linear policy.
        action_squash: Box actions only: ``"clip"`` or ``"tanh"`` (see `GaussianPolicy`).
        log_std: Box actions only: ``"state_independent"`` or ``"state_dependent"``.
        log_std_init: Box actions only: the initial log standard deviation.
        normalize_observations: standardise Box observations by running statistics (see `ObservationEncoder`).
        network: a user's network in place of the MLP (``hidden_sizes`` then unused): it maps the encoder's
            features ``[B, F_in]`` (flattened, standardised, one-hot, or the built-in CNN's for images) to
            ``[B, F]``, and the head for the action space is a linear layer on them (`custom_body`).
        activation: the MLP's hidden activation, ``"relu"`` or ``"tanh"``.
        init: the MLP's initialisation, ``"default"`` (torch's) or ``"orthogonal"`` (see `mlp`).

    Raises:
        ReinforceError: for any other space, naming it; a ``network`` that does not fit.

    Example:
        >>> from gymnasium import spaces
        >>> policy = make_policy(spaces.Box(-1.0, 1.0, (4,)), spaces.Discrete(2), hidden_sizes=(128,))
        >>> policy(torch.zeros(3, 4)).sample().shape
        torch.Size([3])
    """
    encoder = ObservationEncoder(observation_space, normalize=normalize_observations)
    network_body = functools.partial(body, activation=activation, init=init)

    if isinstance(action_space, spaces.Discrete):
        return CategoricalPolicy(encoder, network_body(encoder.features, hidden_sizes, int(action_space.n), network))
    if isinstance(action_space, spaces.MultiDiscrete):
        nvec = [int(n) for n in np.asarray(action_space.nvec).reshape(-1)]
        return MultiCategoricalPolicy(encoder, network_body(encoder.features, hidden_sizes, sum(nvec), network), nvec)
    if isinstance(action_space, spaces.MultiBinary):
        bits = int(np.prod(action_space.shape))
        return BernoulliPolicy(encoder, network_body(encoder.features, hidden_sizes, bits, network))
    if isinstance(action_space, spaces.Box):
        action_dim = int(np.prod(action_space.shape))
        state_dependent = log_std == "state_dependent"
        return GaussianPolicy(
            encoder,
            network_body(encoder.features, hidden_sizes, 2 * action_dim if state_dependent else action_dim, network),
            action_dim,
            state_dependent=state_dependent,
            log_std_init=log_std_init,
            bounds=(action_space.low, action_space.high),
            action_squash=action_squash,
        )
    raise unsupported_action_space(action_space)


class ModulePolicy(Policy):
    """A user's whole policy: any ``nn.Module`` mapping raw observations ``[B, *obs_shape]`` to a Distribution.

    Its actions are what the env gets (``action_squash`` is ``"clip"``: Box actions are clipped to the bounds);
    observations are not normalised (it has no encoder).
    """

    def __init__(self, module: nn.Module) -> None:
        nn.Module.__init__(self)
        self.module = module

    def forward(self, observations: Tensor) -> Distribution:
        """The user module's distribution for ``observations``."""
        distribution: Distribution = self.module(observations)
        return distribution


SAMPLE_DRAWS = 64
"""How many actions `module_policy` draws from a user's policy to check that they are the action space's."""


def _check_samples(distribution: Distribution, action_space: spaces.Space[Any]) -> None:
    """Refuse a distribution whose samples for one observation are not actions of ``action_space``.

    The samples are the policy's actions (`reinforce.rollout.actions.EnvActions` adds a ``start``): one index in
    ``[0, n)`` for Discrete; for MultiDiscrete (MultiBinary) and Box, as many indices below ``nvec`` (bits) or
    values as the space holds, in any shape (EnvActions reshapes them to the space's). Without this check the
    env's step failed on them, and the error blamed the env.
    """
    try:  # on a copy of torch's CPU generator: a seeded run's stream starts where it would without the check
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            draws = distribution.sample((SAMPLE_DRAWS,))
    except Exception as exc:
        raise ReinforceError(
            f"policy's {type(distribution).__name__} cannot sample ({first_line(exc)}): return a distribution "
            "that samples the env's actions"
        ) from None
    shape = (1, *(action_space.shape or ()))
    if isinstance(action_space, spaces.Discrete):
        limit: np.ndarray[Any, Any] | None = np.array(int(action_space.n))
    elif isinstance(action_space, spaces.MultiDiscrete):
        limit = np.asarray(action_space.nvec)
    elif isinstance(action_space, spaces.MultiBinary):
        limit = np.full(shape[1:], 2)
    else:
        limit = None
    given, space = tuple(draws.shape[1:]), one_line(action_space)
    if given != shape if isinstance(action_space, spaces.Discrete) else draws[0].numel() != math.prod(shape):
        problem = f"actions of shape {given} for one observation, where {space} needs {shape}"
    else:
        if limit is None:
            return
        values = draws.reshape(SAMPLE_DRAWS, *shape).double()
        outside = (values != values.round()) | (values < 0) | (values >= torch.as_tensor(limit, dtype=values.dtype))
        if not bool(outside.any()):
            return
        bound = f"below {limit.tolist()}" if limit.ndim else f"in [0, {int(limit)})"
        problem = f"action {values[outside][0].item():g}, where {space} needs integer indices {bound} (plus its start)"
    raise ReinforceError(
        f"policy's {type(distribution).__name__} samples {problem}: return a distribution over the env's actions"
    )


def module_policy(
    module: object, observation_space: spaces.Space[Any], action_space: spaces.Space[Any] | None = None
) -> ModulePolicy:
    """A user's whole policy, checked on one sample observation of ``observation_space``.

    With ``action_space``, the distribution's samples are checked to be its actions (`_check_samples`).

    Raises:
        ReinforceError: ``module`` is not an ``nn.Module``, fails on an observation, returns no Distribution, or
            one whose samples are not actions of ``action_space``.
    """
    if not isinstance(module, nn.Module):
        raise ReinforceError(f"policy must be a torch.nn.Module returning a Distribution, got {type(module).__name__}")
    sample = torch.as_tensor(np.asarray(observation_space.sample())[None])
    try:
        with torch.no_grad():
            distribution = module(sample)
    except Exception as exc:
        raise ReinforceError(
            f"policy fails on a batch of one observation of shape {tuple(sample.shape)} "
            f"({type(exc).__name__}: {str(exc).strip()[:200]}): it must map [B, *obs_shape] to a Distribution"
        ) from None
    if not isinstance(distribution, Distribution):
        raise ReinforceError(
            f"policy returned {type(distribution).__name__}, not a torch.distributions.Distribution: return one"
        )
    if action_space is not None:
        _check_samples(distribution, action_space)
    return ModulePolicy(module)


def policy_from_config(
    config: TrainConfig,
    observation_space: spaces.Space[Any],
    action_space: spaces.Space[Any],
    network: Network | None = None,
) -> Policy:
    """`make_policy` with the architecture settings of ``config`` (what the learner and every worker build)."""
    return make_policy(
        observation_space,
        action_space,
        config.hidden_sizes,
        action_squash=config.action_squash,
        log_std=config.log_std,
        log_std_init=config.log_std_init,
        normalize_observations=config.normalize_observations,
        network=network,
        activation=config.activation,
        init=config.init,
    )
