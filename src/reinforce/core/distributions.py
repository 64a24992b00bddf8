"""Action distributions that torch.distributions lacks.

`TanhNormal`, the squashed Gaussian of bounded Box actions; `MaskedCategorical`, a Categorical whose masked
actions have probability exactly 0 (action masks, and the padding of a MultiDiscrete head).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.distributions import Categorical, Distribution, Independent, Normal, constraints


class MaskedCategorical(Categorical):
    """A Categorical over the actions where ``action_mask`` is true; the others have probability exactly 0.

    The masked logits are replaced by ``torch.finfo(dtype).min`` (not ``-inf``, whose products with a zero
    probability are NaN): their probability underflows to exactly 0, and ``log_prob`` of a valid action is
    ``logit - logsumexp`` over the valid actions only, exact. `entropy` sums ``-p log p`` over the valid actions
    only, so neither it nor its gradient is ever NaN; the masked logits get no gradient. ``mode`` (argmax of
    the probabilities) is a valid action. Every row of ``action_mask`` needs at least one true entry (the
    callers check it, see `reinforce.rollout.masks`).

    Args:
        logits: ``[..., n]`` unnormalised log-probabilities.
        action_mask: ``[..., n]`` bool, true where an action is allowed (broadcastable to ``logits``).
    """

    def __init__(self, logits: Tensor, action_mask: Tensor) -> None:
        self.action_mask = action_mask.expand_as(logits)
        masked_logits = logits.masked_fill(~self.action_mask, torch.finfo(logits.dtype).min)
        super().__init__(logits=masked_logits, validate_args=False)

    def entropy(self) -> Tensor:
        """``-sum p log p`` over the valid actions (the masked ones contribute exactly 0)."""
        return -torch.where(self.action_mask, self.logits * self.probs, 0.0).sum(-1)


class TanhNormal(Distribution):
    """A diagonal Gaussian over pre-squash values ``u``, squashed by ``a = low + (tanh(u) + 1) / 2 * (high - low)``.

    Samples and ``log_prob`` arguments are the pre-squash ``u`` (what a `reinforce.core.batch.RolloutBatch`
    stores); ``log_prob(u)`` is the log-density of the *squashed* action ``a`` at ``a(u)``, by the change of
    variables ``log pi(a) = log N(u) - sum_i log(scale_i * (1 - tanh(u_i)^2))`` with ``scale = (high - low)
    / 2``, computed stably as ``log(1 - tanh(u)^2) = 2 * (log 2 - u - softplus(-2u))`` (finite for every
    finite ``u``). ``mode`` is the Gaussian mean, so the deterministic action is the squashed mean (the mode
    of the squashed density itself can lie elsewhere). ``entropy`` is the entropy of the pre-squash Gaussian
    (the squashed one has no closed form).
    """

    arg_constraints: dict[str, constraints.Constraint] = {}  # noqa: RUF012 (torch's class attribute)
    has_rsample = True

    def __init__(self, mean: Tensor, std: Tensor, log_scale: Tensor) -> None:
        self.base = Independent(Normal(mean, std, validate_args=False), 1, validate_args=False)
        self.log_scale = log_scale
        super().__init__(self.base.batch_shape, self.base.event_shape, validate_args=False)

    @property
    def mean(self) -> Tensor:
        """The pre-squash Gaussian mean."""
        mean: Tensor = self.base.mean
        return mean

    @property
    def mode(self) -> Tensor:
        """The pre-squash Gaussian mean: its squashed value is the deterministic action."""
        return self.mean

    @property
    def stddev(self) -> Tensor:
        """The pre-squash Gaussian standard deviation."""
        stddev: Tensor = self.base.stddev
        return stddev

    def sample(self, sample_shape: torch.Size | list[int] | tuple[int, ...] = ()) -> Tensor:
        """Pre-squash samples ``u``."""
        sample: Tensor = self.base.sample(sample_shape)
        return sample

    def rsample(self, sample_shape: torch.Size | list[int] | tuple[int, ...] = ()) -> Tensor:
        """Reparameterised pre-squash samples ``u``."""
        sample: Tensor = self.base.rsample(sample_shape)
        return sample

    def log_prob(self, value: Tensor) -> Tensor:
        """Log-density of the squashed action ``a(value)``, for pre-squash values ``value`` ``[..., D]``."""
        log_det = self.log_scale + 2.0 * (math.log(2.0) - value - nn.functional.softplus(-2.0 * value))
        log_prob: Tensor = self.base.log_prob(value) - log_det.sum(-1)  # type: ignore[no-untyped-call]
        return log_prob

    def entropy(self) -> Tensor:
        """Entropy of the pre-squash Gaussian."""
        entropy: Tensor = self.base.entropy()  # type: ignore[no-untyped-call]
        return entropy
