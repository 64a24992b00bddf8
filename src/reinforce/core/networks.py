"""Networks: the observation encoder, the MLP body and a user's own network with its head.

The encoder (`ObservationEncoder`) turns observations into features: ``Box`` vectors are flattened (and
standardised by running statistics if asked), ``Discrete`` observations are one-hot encoded, and images
(``uint8`` ``H x W x C``) go through a small CNN (`image_cnn`). The body (`body`) is an MLP (`mlp`: ReLU or
tanh; ``hidden_sizes=()`` gives the linear policy of the textbook) or a user's network followed by a linear
head (`custom_body`). `reinforce.core.policies` puts a distribution head on top; the value baseline
(`reinforce.core.baselines`) uses the same pieces.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn

from reinforce.config import Activation, Init
from reinforce.errors import ReinforceError
from reinforce.imports import first_line

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
    try:
        module = network() if not isinstance(network, nn.Module) and callable(network) else network
    except Exception as exc:
        raise ReinforceError(
            f"{name}() failed ({first_line(exc)}): fix the function, or pass the module",
            fields=(name,),
        ) from None
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
    if (
        not isinstance(features, Tensor)
        or features.ndim != 2
        or features.shape[0] != 2
        or features.shape[1] < 1
        or not features.is_floating_point()
    ):
        shape = f"{tuple(features.shape)} {features.dtype}" if isinstance(features, Tensor) else type(features).__name__
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
        mean, scale = self.normalization()
        normalized = (flat - mean) * scale
        return normalized.clamp(-NORMALIZED_OBSERVATION_CLIP, NORMALIZED_OBSERVATION_CLIP)

    def normalization(self) -> tuple[Tensor, Tensor]:
        """The float32 ``(mean, 1 / std)`` that `forward` standardises observations with (before the clip).

        The one definition, also for `reinforce.rollout.mlp_sampler.MLPSampler`'s NumPy copy of the policy.
        """
        return self.obs_mean.float(), (self.obs_var + 1e-8).rsqrt().float()

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
