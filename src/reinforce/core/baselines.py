"""Baselines: what is subtracted from the returns before they weight ``grad log pi``.

A baseline ``b_t`` that does not depend on the action taken at step t (nor on anything sampled after it)
leaves the policy-gradient estimate unbiased, ``E[grad log pi(a_t|s_t) * b_t] = 0``, and a good one lowers
its variance. docs/concepts.md defines each baseline and tests/unit/test_exact_gradient.py measures which are
unbiased.

Every baseline is a `Baseline`: called on a batch and its per-step credit (``G_t``, or the episode's return), it
gives the ``[T, N]`` values to subtract; `Baseline.fit` lets it learn from the batch after the policy step;
`Baseline.state` names what a checkpoint saves. `make_baseline` is the one place that maps the ``baseline``
setting to a class.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import torch
from gymnasium import spaces
from torch import Tensor, nn

from reinforce.config import Activation, Init, TrainConfig
from reinforce.core.batch import RolloutBatch
from reinforce.core.guards import check_finite_step
from reinforce.core.networks import Network, ObservationEncoder, body
from reinforce.core.optim import EagerOptimizer, Optimizer
from reinforce.core.returns import episode_ids, episode_steps

VALUE_HEAD_GAIN = 1.0
"""Gain of the value network's last layer under ``init="orthogonal"``."""
RUNNING_MEAN_RATE = 0.1
"""Weight of the newest batch in the running-mean baseline's exponential moving average."""


class Baseline(Protocol):
    """What is subtracted from each step's credit before it weights ``grad log pi``."""

    def __call__(self, batch: RolloutBatch, credit_TN: Tensor) -> Tensor:
        """``[T, N]`` values to subtract from ``credit_TN`` (its state before this batch's `fit`)."""
        ...

    def state_values(self, observations: Tensor) -> Tensor | None:
        """``[B]`` estimates V(s) of raw observations ``[B, ...]`` (CPU), or None without a learned value."""
        ...

    def fit(self, batch: RolloutBatch, credit_TN: Tensor, returns_TN: Tensor) -> dict[str, float]:
        """Learn from ``batch`` after the policy step; the metrics of the fit (empty if none)."""
        ...

    def state(self) -> tuple[dict[str, nn.Module], dict[str, Optimizer]]:
        """The modules and optimizers a checkpoint saves, by name."""
        ...


class NoBaseline:
    """No baseline: the credit itself weights the log-probs."""

    def __call__(self, batch: RolloutBatch, credit_TN: Tensor) -> Tensor:
        """Zeros."""
        return torch.zeros_like(credit_TN)

    def state_values(self, observations: Tensor) -> Tensor | None:
        """None: no learned value."""
        return None

    def fit(self, batch: RolloutBatch, credit_TN: Tensor, returns_TN: Tensor) -> dict[str, float]:
        """Nothing to learn."""
        return {}

    def state(self) -> tuple[dict[str, nn.Module], dict[str, Optimizer]]:
        """Nothing to save."""
        return {}, {}


class BatchMeanBaseline(NoBaseline):
    """The mean credit of the batch's valid steps (`batch_mean_baseline`)."""

    def __call__(self, batch: RolloutBatch, credit_TN: Tensor) -> Tensor:
        """The batch mean, for every step."""
        return batch_mean_baseline(credit_TN, batch.mask)


class LeaveOneOutBaseline(NoBaseline):
    """For each episode, the mean of the other episodes' credit (`leave_one_out_baseline`)."""

    def __init__(self, time_dependent: bool = True) -> None:
        self.time_dependent = time_dependent

    def __call__(self, batch: RolloutBatch, credit_TN: Tensor) -> Tensor:
        """The other episodes' mean, at the same step (``time_dependent``) or over whole episodes."""
        ids, _ = episode_ids(batch.dones, batch.mask)
        steps = episode_steps(batch.dones, batch.mask)
        return leave_one_out_baseline(credit_TN, ids, steps, time_dependent=self.time_dependent)


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
    it is computed from episodes independent of episode i, so the estimate stays unbiased. Episodes whose
    returns are equal (e.g. every one cut at the time limit with the same rewards) get exactly their own return
    as baseline: zero advantages, so no update, rather than the rounding noise of the mean.

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
    # [E, L] table of the returns, and of which (episode, step) cells exist; in float64, where the sums of a
    # float32 batch are exact, so that episodes with equal returns get their own return back, bit for bit
    # (advantages exactly 0, not float32 rounding noise that standardisation would blow up to unit size)
    table = torch.zeros(num_episodes, length, dtype=torch.float64)
    present = torch.zeros(num_episodes, length, dtype=torch.float64)
    table[index, step] = returns_TN[valid].double()
    present[index, step] = 1.0
    others_sum = table.sum(0, keepdim=True) - table
    others_count = present.sum(0, keepdim=True) - present
    means = torch.where(others_count > 0, others_sum / others_count.clamp(min=1.0), torch.zeros_like(table))
    baseline = torch.zeros_like(returns_TN)
    baseline[valid] = means[index, step].to(returns_TN.dtype)
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

    def forward(self, batch: RolloutBatch, credit_TN: Tensor) -> Tensor:
        """The current running mean, for every step."""
        return self.mean.to(credit_TN.dtype).expand_as(credit_TN)

    def state_values(self, observations: Tensor) -> Tensor | None:
        """None: no learned value."""
        return None

    def fit(self, batch: RolloutBatch, credit_TN: Tensor, returns_TN: Tensor) -> dict[str, float]:
        """Fold this batch's mean credit into the average."""
        self.update(credit_TN, batch.mask)
        return {}

    def state(self) -> tuple[dict[str, nn.Module], dict[str, Optimizer]]:
        """Its buffers, as ``running_mean``."""
        return {"running_mean": self}, {}

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
        network: a user's network in place of the MLP, with a linear head to one value
            (`reinforce.core.networks.custom_body`).
        activation: the MLP's hidden activation, ``"relu"`` or ``"tanh"``.
        init: the MLP's initialisation, ``"default"`` or ``"orthogonal"`` (last layer gain `VALUE_HEAD_GAIN`).
    """

    encoder: ObservationEncoder

    def __init__(
        self,
        observation_space: spaces.Space[object],
        hidden_sizes: Sequence[int],
        *,
        encoder: ObservationEncoder | None = None,
        network: Network | None = None,
        activation: Activation = "relu",
        init: Init = "default",
    ) -> None:
        super().__init__()
        if encoder is not None and next(encoder.parameters(), None) is not None:
            raise ValueError("a shared encoder must have no parameters, or the value fit would train it")
        if encoder is None:
            self.encoder = ObservationEncoder(observation_space)
        else:
            # kept out of this module's submodules (and so out of its state_dict): the statistics belong to the
            # policy, and a checkpoint stores them once (safetensors refuses one tensor under two names)
            object.__setattr__(self, "encoder", encoder)
        self.body = body(
            self.encoder.features, hidden_sizes, 1, network, activation=activation, init=init, head_gain=VALUE_HEAD_GAIN
        )

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
        check_finite_step(loss, nn.utils.get_total_norm(_gradients(value_function)), optimizer, "value_lr")
        optimizer.step()
    return float(loss.item()), before


class ValueBaseline:
    """A learned ``V(s)`` (Sutton & Barto's REINFORCE with baseline), fitted to the returns after each update.

    Args:
        network: the value network.
        optimizer: its optimizer.
        steps: full-batch gradient steps per `fit`.
    """

    def __init__(self, network: ValueFunction, optimizer: Optimizer, steps: int) -> None:
        self.network = network
        self.optimizer = optimizer
        self.steps = steps

    def _device(self) -> torch.device:
        return next(self.network.parameters()).device

    def __call__(self, batch: RolloutBatch, credit_TN: Tensor) -> Tensor:
        """V(s_t) at the valid steps (0 elsewhere), from the network as it was before this batch."""
        values = torch.zeros_like(credit_TN)
        values[batch.mask] = self._values(batch.observations[batch.mask]).to(credit_TN.dtype)
        return values

    def state_values(self, observations: Tensor) -> Tensor | None:
        """V(s) of ``observations``, without gradient, on the CPU."""
        return self._values(observations)

    def _values(self, observations: Tensor) -> Tensor:
        with torch.no_grad():
            values: Tensor = self.network(observations.to(self._device())).cpu()
        return values

    def fit(self, batch: RolloutBatch, credit_TN: Tensor, returns_TN: Tensor) -> dict[str, float]:
        """`fit_value_function` to the valid steps' returns; the value loss and the explained variance."""
        device = self._device()
        observations = batch.observations[batch.mask].to(device)
        targets = returns_TN[batch.mask].to(device)
        loss, before = fit_value_function(self.network, self.optimizer, observations, targets, self.steps)
        variance = targets.var(correction=0)
        explained = 1.0 - float(((targets - before).var(correction=0) / variance).item()) if variance > 0 else math.nan
        return {"losses/value_loss": loss, "losses/explained_variance": explained}

    def state(self) -> tuple[dict[str, nn.Module], dict[str, Optimizer]]:
        """The network and its optimizer, as ``value``."""
        return {"value": self.network}, {"value": self.optimizer}


def make_baseline(
    config: TrainConfig,
    observation_space: spaces.Space[object],
    *,
    shared_encoder: ObservationEncoder | None = None,
    device: torch.device | None = None,
    network: Network | None = None,
) -> Baseline:
    """The baseline named by ``config.baseline``, with its network and optimizer for ``value``.

    Args:
        config: ``baseline``, and for ``value`` its ``value_hidden_sizes``, ``value_lr``, ``value_steps``,
            ``activation`` and ``init``;
            ``reward_to_go`` makes the leave-one-out baseline time-dependent.
        observation_space: the env's single observation space (the value network's input).
        shared_encoder: an encoder without parameters to share with the value network (the policy's, when it
            normalises observations: one set of running statistics).
        device: where the value network lives.
        network: a user's network for ``value`` (see `ValueFunction`).
    """
    if config.baseline == "batch_mean":
        return BatchMeanBaseline()
    if config.baseline == "running_mean":
        return RunningMeanBaseline()
    if config.baseline == "leave_one_out":
        return LeaveOneOutBaseline(time_dependent=config.reward_to_go)
    if config.baseline == "value":
        value = ValueFunction(
            observation_space,
            config.value_hidden_sizes,
            encoder=shared_encoder,
            network=network,
            activation=config.activation,
            init=config.init,
        )
        value.to(device)
        optimizer = EagerOptimizer(value.parameters(), "adam", lr=config.value_lr)
        return ValueBaseline(value, optimizer, config.value_steps)
    return NoBaseline()
