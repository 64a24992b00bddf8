"""Baselines: what is subtracted from the returns before they weight ``grad log pi``.

A baseline ``b_t`` that does not depend on the action taken at step t (nor on anything sampled after it)
leaves the policy-gradient estimate unbiased, ``E[grad log pi(a_t|s_t) * b_t] = 0``, and a good one lowers
its variance. All functions take ``[T, N]`` tensors with the batch's ``mask``; docs/concepts.md defines each
baseline and tests/unit/test_exact_gradient.py measures which are unbiased.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from gymnasium import spaces
from torch import Tensor, nn

from reinforce.core.guards import check_finite_step
from reinforce.core.optim import Optimizer
from reinforce.core.policies import ObservationEncoder, mlp

RUNNING_MEAN_RATE = 0.1
"""Weight of the newest batch in the running-mean baseline's exponential moving average."""


def batch_mean_baseline(returns_TN: Tensor, mask: Tensor) -> Tensor:
    """The mean of ``returns_TN`` over the batch's valid steps, for every step.

    It includes the step's own episode, so it is correlated with that episode's actions: the estimate is
    biased by ``O(1 / episodes)`` (measured in tests/unit/test_exact_gradient.py).
    """
    return returns_TN[mask].mean().expand_as(returns_TN) if mask.any() else torch.zeros_like(returns_TN)


def leave_one_out_baseline(returns_TN: Tensor, ids: Tensor, steps: Tensor, *, time_dependent: bool = True) -> Tensor:
    """For each episode, the mean of the *other* episodes of the batch (the RLOO idea).

    With ``time_dependent`` (reward-to-go), the baseline of episode i at its step t is the mean of ``G_t`` over
    the other episodes that lasted more than t steps (0 if none did): a time-dependent baseline. Without it
    (whole-episode returns), every step of episode i gets the mean return of the other episodes. Either way
    it is computed from episodes independent of episode i, so the estimate stays unbiased.

    Args:
        returns_TN: ``[T, N]`` float returns (``G_t``, or each step's whole-episode return).
        ids: ``[T, N]`` episode ids from `reinforce.core.returns.episode_ids` (-1 outside the batch).
        steps: ``[T, N]`` step index within the episode from `reinforce.core.returns.episode_steps`.
        time_dependent: compare step t with step t of the other episodes (True) or whole episodes (False).

    Returns:
        ``[T, N]`` baseline values (0 outside the batch).
    """
    valid = ids >= 0
    if not valid.any():
        return torch.zeros_like(returns_TN)
    index = ids[valid]
    step = steps[valid] if time_dependent else torch.zeros_like(index)  # otherwise one cell per episode
    num_episodes, length = int(index.max()) + 1, int(step.max()) + 1
    if num_episodes < 2:
        return torch.zeros_like(returns_TN)
    # [E, L] table of the returns, and of which (episode, step) cells exist
    table = torch.zeros(num_episodes, length, dtype=returns_TN.dtype)
    present = torch.zeros(num_episodes, length, dtype=returns_TN.dtype)
    table[index, step] = returns_TN[valid]
    present[index, step] = 1.0
    others_sum = table.sum(0, keepdim=True) - table
    others_count = present.sum(0, keepdim=True) - present
    means = torch.where(others_count > 0, others_sum / others_count.clamp(min=1.0), torch.zeros_like(table))
    baseline = torch.zeros_like(returns_TN)
    baseline[valid] = means[index, step]
    return baseline


class RunningMeanBaseline(nn.Module):
    """An exponential moving average of the batch-mean return of *previous* updates (0 before the first).

    It never sees the batch it is applied to, so the estimate stays unbiased. Its state is a buffer, so
    it is saved with the checkpoint.
    """

    mean: Tensor
    count: Tensor

    def __init__(self, rate: float = RUNNING_MEAN_RATE) -> None:
        super().__init__()
        self.rate = rate
        self.register_buffer("mean", torch.zeros(()))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    def forward(self, returns_TN: Tensor) -> Tensor:
        """The current running mean, for every step."""
        return self.mean.to(returns_TN.dtype).expand_as(returns_TN)

    def update(self, returns_TN: Tensor, mask: Tensor) -> None:
        """Fold the mean of this batch's valid returns into the average (call after using the baseline)."""
        if not mask.any():
            return
        batch_mean = returns_TN[mask].mean().to(self.mean.dtype)
        self.mean.copy_(batch_mean if self.count == 0 else self.mean + self.rate * (batch_mean - self.mean))
        self.count += 1


class ValueFunction(nn.Module):
    """A learned state-value estimate ``V(s)``: its own observation encoder and MLP, one output.

    REINFORCE with baseline (Sutton & Barto 13.4) subtracts ``V(s_t)``, fitted by regression to the
    Monte-Carlo returns. A baseline that depends only on the state keeps the estimate unbiased.

    Args:
        observation_space: the env's single observation space.
        hidden_sizes: MLP hidden widths.
        encoder: an encoder to share, such as the policy's when it normalises observations (it then holds
            only the running statistics, no parameters, so the value fit never changes it); None builds one.
    """

    def __init__(
        self,
        observation_space: spaces.Space[object],
        hidden_sizes: Sequence[int],
        *,
        encoder: ObservationEncoder | None = None,
    ) -> None:
        super().__init__()
        if encoder is not None and next(encoder.parameters(), None) is not None:
            raise ValueError("a shared encoder must have no parameters, or the value fit would train it")
        self.encoder = encoder if encoder is not None else ObservationEncoder(observation_space)
        self.body = mlp(self.encoder.features, hidden_sizes, 1)

    def forward(self, observations: Tensor) -> Tensor:
        """``[B]`` values of a batch of raw observations ``[B, *obs_shape]``."""
        values: Tensor = self.body(self.encoder(observations)).squeeze(-1)
        return values


def _gradients(module: nn.Module) -> list[Tensor]:
    return [parameter.grad for parameter in module.parameters() if parameter.grad is not None]


def fit_value_function(
    value_function: ValueFunction,
    optimizer: Optimizer,
    observations: Tensor,
    targets: Tensor,
    steps: int,
) -> tuple[float, Tensor]:
    """``steps`` full-batch gradient steps of the mean squared error ``(V(s) - target)^2``.

    Returns:
        The last loss, and the values before the first step (detached), for the explained variance.
    """
    loss = torch.zeros(())
    before = torch.zeros(())
    for step in range(steps):
        values = value_function(observations)
        if step == 0:
            before = values.detach()
        loss = nn.functional.mse_loss(values, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        check_finite_step(loss, nn.utils.get_total_norm(_gradients(value_function)), optimizer, "--value-lr")
        optimizer.step()
    return float(loss.item()), before
