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

The encoder (`ObservationEncoder`) turns observations into features: ``Box`` vectors are flattened (and
standardised by running statistics if asked), ``Discrete`` observations are one-hot encoded, and images
(``uint8`` ``H x W x C``) go through a small CNN. The body is an MLP (ReLU or tanh); ``hidden_sizes=()`` gives the
linear policy of the textbook.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn
from torch.distributions import Bernoulli, Categorical, Distribution, Independent, Normal

from reinforce.config import ActionSquash, Activation, Init, LogStd, TrainConfig
from reinforce.core.distributions import MaskedCategorical, TanhNormal
from reinforce.errors import ReinforceError

LOG_STD_MIN = -5.0
"""Lower bound of the Gaussian head's log standard deviation (std >= 6.7e-3)."""
LOG_STD_MAX = 2.0
"""Upper bound of the Gaussian head's log standard deviation (std <= 7.4)."""
NORMALIZED_OBSERVATION_CLIP = 10.0
"""Standardised observations are clipped to [-10, 10], so an outlier cannot blow up the features."""
IMAGE_CHANNELS = (1, 3, 4)
"""Channel counts of a ``uint8`` ``H x W x C`` Box that is read as an image (grey, RGB, RGBA)."""


ACTIVATIONS: dict[Activation, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh}
"""The module of each ``activation`` setting."""
HIDDEN_GAIN = float(np.sqrt(2))
"""Gain of the orthogonal initialisation of hidden layers (``init="orthogonal"``)."""
POLICY_HEAD_GAIN = 0.01
"""Gain of the policy's last layer under ``init="orthogonal"``: the first policy is close to uniform."""


def mlp(
    in_features: int,
    hidden_sizes: Sequence[int],
    out_features: int,
    *,
    activation: Activation = "relu",
    init: Init = "default",
    head_gain: float = POLICY_HEAD_GAIN,
) -> nn.Sequential:
    """Linear layers of the given widths with ``activation`` between them; no activation on the output.

    ``init="orthogonal"`` re-initialises every weight orthogonally (gain `HIDDEN_GAIN`, ``head_gain`` for the
    last layer) and every bias to zero; ``"default"`` keeps torch's initialisation.
    """
    layers: list[nn.Module] = []
    width = in_features
    for hidden in hidden_sizes:
        layers += [nn.Linear(width, hidden), ACTIVATIONS[activation]()]
        width = hidden
    layers.append(nn.Linear(width, out_features))
    if init == "orthogonal":
        linears = [layer for layer in layers if isinstance(layer, nn.Linear)]
        for index, linear in enumerate(linears):
            nn.init.orthogonal_(linear.weight, gain=head_gain if index == len(linears) - 1 else HIDDEN_GAIN)
            nn.init.zeros_(linear.bias)
    return nn.Sequential(*layers)


Network = nn.Module | Callable[[], nn.Module]
"""A user's network: a ``torch.nn.Module``, or a function that returns a new one (called once per use)."""


def custom_body(network: Network, in_features: int, out_features: int, name: str = "network") -> nn.Sequential:
    """A user's ``network`` (features ``[B, in_features]`` -> ``[B, F]``) followed by a linear head to ``out_features``.

    ``F`` is found by one forward pass of a zero batch.

    Raises:
        ReinforceError: ``network`` is not a module (or a function returning one), fails on the features, or
            does not return a ``[B, F]`` float tensor.
    """
    module = network() if not isinstance(network, nn.Module) and callable(network) else network
    if not isinstance(module, nn.Module):
        raise ReinforceError(
            f"{name} must be a torch.nn.Module or a function returning one, got {type(module).__name__}",
            fields=(name,),
        )
    try:
        with torch.no_grad():
            features = module(torch.zeros(2, in_features))
    except Exception as exc:
        raise ReinforceError(
            f"{name} fails on a batch of {in_features} features ({type(exc).__name__}: {str(exc).strip()[:200]}): "
            f"it must map [B, {in_features}] float features to [B, F]",
            fields=(name,),
        ) from None
    if not isinstance(features, Tensor) or features.ndim != 2 or features.shape[0] != 2 or features.shape[1] < 1:
        shape = tuple(features.shape) if isinstance(features, Tensor) else type(features).__name__
        raise ReinforceError(
            f"{name} returned {shape} for a batch of 2: it must map [B, {in_features}] float features to [B, F]",
            fields=(name,),
        )
    return nn.Sequential(module, nn.Linear(int(features.shape[1]), out_features))


def body(
    in_features: int,
    hidden_sizes: Sequence[int],
    out_features: int,
    network: Network | None = None,
    *,
    activation: Activation = "relu",
    init: Init = "default",
    head_gain: float = POLICY_HEAD_GAIN,
) -> nn.Module:
    """The MLP of ``hidden_sizes`` (`mlp`), or a user's ``network`` and a linear head (`custom_body`)."""
    if network is None:
        return mlp(in_features, hidden_sizes, out_features, activation=activation, init=init, head_gain=head_gain)
    return custom_body(network, in_features, out_features)


def is_image_space(space: spaces.Space[Any]) -> bool:
    """Whether ``space`` is read as an image: a ``uint8`` Box of shape ``H x W x C`` with C in 1, 3, 4."""
    return (
        isinstance(space, spaces.Box)
        and space.dtype == np.uint8
        and len(space.shape) == 3
        and space.shape[-1] in IMAGE_CHANNELS
    )


def image_cnn(shape: tuple[int, ...]) -> tuple[nn.Sequential, int]:
    """A small CNN for ``H x W x C`` images (two stride-2 3x3 convolutions, 16 and 32 channels, ReLU).

    Returns:
        The network (input ``[B, C, H, W]`` floats) and its number of output features.
    """
    height, width, channels = shape
    cnn = nn.Sequential(
        nn.Conv2d(channels, 16, kernel_size=3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, kernel_size=3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
    )
    with torch.no_grad():
        features = int(cnn(torch.zeros(1, channels, height, width)).shape[1])
    return cnn, features


class ObservationEncoder(nn.Module):
    """Turns a batch of raw observations ``[B, *shape]`` into float features ``[B, features]``.

    ``Box`` observations are flattened; ``Discrete`` observations become one-hot vectors (the tabular case);
    ``uint8`` ``H x W x C`` images are scaled to [0, 1] and go through `image_cnn`. With ``normalize=True``
    (Box vectors only), features are standardised by running statistics, ``(x - mean) / sqrt(var + 1e-8)``
    clipped to [-10, 10]; the statistics are buffers (``obs_count``, ``obs_mean``, ``obs_var``), so they are
    saved and loaded with the policy's ``state_dict``, and only `update_normalization` changes them.
    Dict, Tuple, MultiDiscrete and MultiBinary observations are flattened by the environment wrapper first
    (`reinforce.rollout.envs.make_vec_env`), so the encoder sees a Box.
    """

    obs_count: Tensor
    obs_mean: Tensor
    obs_var: Tensor

    def __init__(self, observation_space: spaces.Space[Any], normalize: bool = False) -> None:
        super().__init__()
        self.cnn: nn.Module | None = None
        self.num_categories: int | None = None
        self.start = 0
        if isinstance(observation_space, spaces.Discrete):
            self.num_categories = int(observation_space.n)
            self.start = int(observation_space.start)
            self.features = self.num_categories
        elif is_image_space(observation_space):
            self.cnn, self.features = image_cnn(tuple(observation_space.shape or ()))
        elif isinstance(observation_space, spaces.Box):
            self.features = int(np.prod(observation_space.shape))
        else:
            raise ReinforceError(
                f"unsupported observation space {observation_space}: the policy takes Box or Discrete "
                "observations; Dict, Tuple, MultiDiscrete and MultiBinary are flattened by reinforce's env "
                "wrapper (gymnasium.wrappers.FlattenObservation)"
            )
        self.normalize = normalize
        if normalize:
            if self.cnn is not None or self.num_categories is not None:
                raise ReinforceError(
                    f"normalize_observations applies to Box vector observations, not {observation_space} "
                    "(images are scaled by 1/255, Discrete ones are one-hot): set normalize_observations=False",
                    fields=("normalize_observations",),
                )
            self.register_buffer("obs_count", torch.zeros((), dtype=torch.float64))
            self.register_buffer("obs_mean", torch.zeros(self.features, dtype=torch.float64))
            self.register_buffer("obs_var", torch.ones(self.features, dtype=torch.float64))

    def forward(self, observations: Tensor) -> Tensor:
        """Encode ``[B, *shape]`` observations as ``[B, features]`` floats."""
        if self.num_categories is not None:
            indices = observations.reshape(-1).long() - self.start
            return nn.functional.one_hot(indices, self.num_categories).float()
        if self.cnn is not None:
            images = observations.permute(0, 3, 1, 2).float() / 255.0
            features: Tensor = self.cnn(images)
            return features
        flat = observations.reshape(observations.shape[0], -1).float()
        if not self.normalize:
            return flat
        scale = (self.obs_var + 1e-8).rsqrt().float()
        normalized = (flat - self.obs_mean.float()) * scale
        return normalized.clamp(-NORMALIZED_OBSERVATION_CLIP, NORMALIZED_OBSERVATION_CLIP)

    @torch.no_grad()
    def update_normalization(self, observations: Tensor) -> None:
        """Fold a batch ``[B, *shape]`` of raw observations into the running mean and variance (no-op if off).

        The batch's mean and (population) variance are combined with the running ones by the parallel
        formula of Chan et al., in float64, so the result equals the statistics of all observations seen.
        """
        if not self.normalize or observations.shape[0] == 0:
            return
        flat = observations.reshape(observations.shape[0], -1).to(self.obs_mean.device, torch.float64)
        batch_count = float(flat.shape[0])
        batch_mean = flat.mean(0)
        batch_var = flat.var(0, unbiased=False)
        total = self.obs_count + batch_count
        delta = batch_mean - self.obs_mean
        self.obs_mean += delta * batch_count / total
        self.obs_var.copy_(
            (self.obs_var * self.obs_count + batch_var * batch_count + delta**2 * self.obs_count * batch_count / total)
            / total
        )
        self.obs_count.copy_(total)


class Policy(nn.Module):
    """Observations in, a distribution over actions out (the one policy interface of reinforce).

    ``action_squash`` says how `reinforce.rollout.collect.to_env_actions` maps a sampled action to the env: ``"clip"``
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


def module_policy(module: object, observation_space: spaces.Space[Any]) -> ModulePolicy:
    """A user's whole policy, checked on one sample observation of ``observation_space``.

    Raises:
        ReinforceError: ``module`` is not an ``nn.Module``, fails on an observation, or returns no Distribution.
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
