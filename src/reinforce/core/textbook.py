"""The textbook per-step update (``update="per_step"``) of a linear softmax policy, in closed form.

For a linear softmax policy ``pi(.|s) = softmax(W x(s) + b)`` (``hidden_sizes=()``, a Categorical head over
the encoder's features ``x(s)``), the gradient of ``log pi(a|s)`` is ``(onehot(a) - pi(.|s))`` outer
``x(s)`` for ``W`` and ``onehot(a) - pi(.|s)`` for ``b``. With plain SGD (no momentum, weight decay or
gradient clipping) and no entropy bonus, Sutton & Barto's update after every step,
``theta += lr * w_t * grad log pi(a_t|s_t)`` (``w_t = gamma^t G_t`` with ``discount_gradient``), needs no
autograd: `linear_softmax_per_step` runs a whole batch's updates in a loop of Python floats (float64, written
back in the parameters' dtype), where the general loop of `reinforce.core.loss.update_policy` runs a forward
pass, a backward pass and an optimizer step per step; the two agree up to float rounding
(tests/unit/test_textbook.py checks both against the book's rule written out). `LinearSoftmaxSampler` does
the same for the sampling of such a policy's actions during collection, `per_step_weights` computes the
returns and weights of the textbook case in NumPy (the same floats), and `linear_softmax_per_step_members`
takes a population's members' per-step updates as one batched computation. docs/benchmarks.md, "The textbook
per-step mode", has the measurements.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pad_sequence

from reinforce.config import TrainConfig
from reinforce.core.baselines import Baseline, NoBaseline
from reinforce.core.batch import RolloutBatch
from reinforce.core.optim import EagerOptimizer, Optimizer
from reinforce.core.policies import CategoricalPolicy, Policy


def per_step_weights(batch: RolloutBatch, config: TrainConfig, baseline: Baseline) -> tuple[Tensor, Tensor] | None:
    """``(returns_TN, weights_TN)`` of the textbook case in NumPy: the floats of the general path, or None.

    The case: ``update="per_step"``, no baseline (`NoBaseline`), ``reward_to_go`` and no return
    normalisation, float rewards on the CPU; the returns are then `reinforce.core.returns.discounted_returns`
    without bootstrap and the weights ``gamma^t G_t`` (``discount_gradient``) or ``G_t``. The same float
    operations as `reinforce.core.weights.batch_returns` and ``policy_weights`` (tests/unit/test_textbook.py
    compares them bit for bit), at a fraction of torch's per-call cost on an episode or two.
    """
    if (
        config.update != "per_step"
        or type(baseline) is not NoBaseline
        or not config.reward_to_go
        or config.return_normalization != "none"
        or batch.rewards.device.type != "cpu"
        or batch.rewards.dtype not in (torch.float32, torch.float64)
    ):
        return None
    rewards = batch.rewards.numpy()
    dones = batch.dones.numpy()
    gamma = rewards.dtype.type(config.gamma)  # torch multiplies a float32 tensor by the float32 gamma
    continues = (~dones).astype(rewards.dtype) * gamma
    returns = np.empty_like(rewards)
    running = np.zeros(rewards.shape[1:], dtype=rewards.dtype)
    for t in range(rewards.shape[0] - 1, -1, -1):  # discounted_returns' loop
        running = rewards[t] + continues[t] * running
        returns[t] = running
    returns_TN = torch.from_numpy(returns)
    weights_TN = returns_TN
    mask = batch.mask
    if config.discount_gradient:
        steps = _episode_steps(dones, mask.numpy())
        weights_TN = returns_TN * config.gamma ** torch.from_numpy(steps).to(returns_TN.dtype)
    return returns_TN, torch.where(mask, weights_TN, torch.zeros_like(weights_TN))


def _episode_steps(dones: np.ndarray[Any, Any], mask: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """`reinforce.core.returns.episode_steps` (the same formula) in NumPy."""
    counted = np.cumsum(mask, axis=0, dtype=np.int64)
    at_ends = np.maximum.accumulate(np.where(dones & mask, counted, 0), axis=0)
    before = np.concatenate([np.zeros_like(at_ends[:1]), at_ends[:-1]])
    return np.where(mask, counted - mask - before, 0)


def per_step_order(batch: RolloutBatch) -> Tensor:
    """``[B, 2]`` positions ``(t, n)`` of the batch's valid steps in the order of the per-step update.

    Episode by episode (in the order of `reinforce.core.returns.episode_ids`: each env's first episodes, then
    their second ones, ...), and within an episode in time order.
    """
    mask = batch.mask.numpy()
    length, num_envs = mask.shape
    if num_envs == 1:  # one env's episodes follow each other in time
        times = np.flatnonzero(mask[:, 0])
        return torch.from_numpy(np.stack([times, np.zeros_like(times)], axis=1))
    dones = batch.dones.numpy().astype(np.int64)
    ended = np.cumsum(dones, axis=0) - dones  # episodes of env n that ended before step t
    keys = (ended * num_envs + np.arange(num_envs)) * length + np.arange(length)[:, None]
    times, envs = np.nonzero(mask)
    order = np.argsort(keys[times, envs], kind="stable")
    return torch.from_numpy(np.stack([times[order], envs[order]], axis=1))


def linear_softmax_layer(policy: Policy) -> nn.Linear | None:
    """The one linear layer of a linear softmax policy (with a bias, over a parameter-free encoder), or None."""
    if type(policy) is not CategoricalPolicy or not isinstance(policy.body, nn.Sequential) or len(policy.body) != 1:
        return None
    layer = policy.body[0]
    if type(layer) is not nn.Linear or layer.bias is None:
        return None
    parameters = list(policy.parameters())
    if len(parameters) != 2 or parameters[0] is not layer.weight or parameters[1] is not layer.bias:
        return None  # the encoder learns (a CNN): not a linear policy of fixed features
    return layer


SAMPLER_MAX_SIZE = 256
"""The largest ``num_envs * actions * (features + 1)`` that `LinearSoftmaxSampler` takes on (in Python floats,
its cost grows with it; beyond it torch's batched kernels are the faster)."""


class LinearSoftmaxSampler:
    """Samples the actions of a small linear softmax policy in Python floats.

    It does what `reinforce.rollout.actions.sample_actions` does in torch, with the policy's parameters
    as they are when it is made, and draws the same uniforms: one ``torch.rand(N)`` call per step in the
    parameters' dtype, the draw of ``sample_actions`` (``torch.rand((N, 1))``), so torch's generator moves
    exactly as on the torch path. The inverse CDF is the same (the first action whose cumulative probability
    exceeds the uniform times the total), in float64 where torch computes in the parameters' dtype: the
    actions are the torch path's except where a uniform falls within rounding of a boundary of the cumulative
    probabilities, and follow the same distribution everywhere. A few
    microseconds a step, against a dozen torch kernels (docs/benchmarks.md, "The textbook per-step mode").
    """

    def __init__(self, layer: nn.Linear) -> None:
        self.rows = list(zip(layer.weight.tolist(), layer.bias.tolist(), strict=True))
        self.last = len(self.rows) - 1
        self.dtype = layer.weight.dtype

    @classmethod
    def of(cls, policy: Policy, num_envs: int) -> LinearSoftmaxSampler | None:
        """The sampler of ``policy`` for ``num_envs`` rows, or None where it does not apply.

        It applies to a linear softmax policy (`linear_softmax_layer`) over plain Box features (not one-hot, not
        normalised), on the CPU, where ``num_envs`` rows fit `SAMPLER_MAX_SIZE`.
        """
        layer = linear_softmax_layer(policy)
        if layer is None:  # also any policy without reinforce's encoder (a user's whole policy)
            return None
        encoder = policy.encoder
        if encoder.num_categories is not None or encoder.normalize:
            return None
        num_actions, num_features = layer.weight.shape
        if layer.weight.device.type != "cpu" or num_envs * num_actions * (num_features + 1) > SAMPLER_MAX_SIZE:
            return None
        return cls(layer)

    def __call__(self, observations: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """``[N]`` int64 actions for ``[N, *obs_shape]`` observations."""
        features = np.asarray(observations).reshape(len(observations), -1).tolist()
        actions = []
        for x, uniform in zip(features, torch.rand(len(features), dtype=self.dtype).tolist(), strict=True):
            logits = [bias + sum(map(operator.mul, row, x)) for row, bias in self.rows]
            largest = max(logits)
            # the cumulative sum of exp(logit - largest) against the uniform times its total: torch's
            # cumulative probabilities times a constant
            cumulative = list(itertools.accumulate(math.exp(logit - largest) for logit in logits))
            threshold = uniform * cumulative[-1]
            actions.append(min(sum(value <= threshold for value in cumulative), self.last))
        return np.array(actions, dtype=np.int64)


def plain_sgd_lr(optimizer: Optimizer, layer: nn.Linear) -> float | None:
    """The learning rate if ``optimizer`` is plain SGD over exactly ``layer``'s parameters, else None.

    Plain: `EagerOptimizer`'s sgd, or ``torch.optim.SGD`` without momentum, weight decay or ``maximize``, one
    parameter group and a float learning rate; its step is ``p -= lr * grad``.
    """
    if isinstance(optimizer, EagerOptimizer):
        if optimizer.algorithm != "sgd":
            return None
    elif type(optimizer) is not torch.optim.SGD:
        return None
    if len(optimizer.param_groups) != 1:
        return None
    group: dict[str, Any] = optimizer.param_groups[0]
    params = group["params"]
    plain = group.get("momentum", 0) == 0 and group.get("weight_decay", 0) == 0 and not group.get("maximize")
    lr = group["lr"]
    if not plain or len(params) != 2 or params[0] is not layer.weight or params[1] is not layer.bias:
        return None
    return float(lr) if isinstance(lr, float) and math.isfinite(lr) else None


def linear_softmax_per_step(
    policy: Policy, optimizer: Optimizer, batch: RolloutBatch, weights_TN: Tensor, config: TrainConfig
) -> dict[str, float] | None:
    """The per-step update of a linear softmax policy with plain SGD, in closed form; None where it does not apply.

    It applies without action masks, ``entropy_coef`` or ``max_grad_norm``, to the policies of
    `linear_softmax_layer` with the optimizers of `plain_sgd_lr`.
    Each step t, in `per_step_order`, with the parameters as the previous steps left them:
    ``p = softmax(W x_t + b)``, ``g = onehot(a_t) - p``, ``W += lr * w_t * g x_t^T``, ``b += lr * w_t * g``.
    A step whose loss or gradient is not finite makes it return None with the parameters untouched (the
    general loop then raises at that step, as it always does).

    Returns:
        The metrics of `reinforce.core.loss.update_policy` (the means over the steps of the loss
        ``-w_t log pi(a_t|s_t)``, the entropy and the gradient norm, each before its step), or None.
    """
    case = _closed_form_case(policy, optimizer, batch, config)
    if case is None:
        return None
    layer, lr = case
    features_BF, actions_B, weights_B = _steps_in_order(policy, batch, weights_TN)
    weight, bias = layer.weight.double().tolist(), layer.bias.double().tolist()
    sums = _python_steps(weight, bias, features_BF.tolist(), actions_B.tolist(), weights_B.tolist(), lr)
    if sums is None:
        return None  # the general loop raises at the non-finite step, before its update
    loss_sum, entropy_sum, norm_sum = sums
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight, dtype=torch.float64))
        layer.bias.copy_(torch.tensor(bias, dtype=torch.float64))
    layer.weight.grad = layer.bias.grad = None  # the policy's only parameters (linear_softmax_layer)
    num_steps = len(actions_B)
    return {
        "losses/policy_loss": loss_sum / num_steps,
        "losses/entropy": entropy_sum / num_steps,
        "losses/grad_norm": norm_sum / num_steps,
    }


def _python_steps(
    weight: list[list[float]],
    bias: list[float],
    features: list[list[float]],
    actions: list[int],
    weights: list[float],
    lr: float,
) -> tuple[float, float, float] | None:
    """The per-step updates of `linear_softmax_per_step` on the float64 lists ``weight`` and ``bias``, in place.

    Returns the sums of the steps' losses, entropies and gradient norms, or None at a step whose loss or norm is
    not finite (the parameters then hold the steps before it).
    """
    loss_sum = entropy_sum = norm_sum = 0.0
    for x, action, w in zip(features, actions, weights, strict=True):
        logits = [b + sum(map(operator.mul, row, x)) for row, b in zip(weight, bias, strict=True)]
        largest = max(logits)
        exps = [math.exp(logit - largest) for logit in logits]
        total = sum(exps)
        log_total = largest + math.log(total)
        probabilities = [e / total for e in exps]
        # d log pi(a|s) / d logit_k = onehot(a)_k - p_k; W's row k gets it times x
        directions = [(k == action) - p for k, p in enumerate(probabilities)]
        loss = -w * (logits[action] - log_total)
        norm = abs(w) * math.hypot(*directions) * math.sqrt(sum(value * value for value in x) + 1.0)
        if not (math.isfinite(loss) and math.isfinite(norm)):
            return None
        loss_sum += loss
        entropy_sum += log_total - sum(p * logit for p, logit in zip(probabilities, logits, strict=True))
        norm_sum += norm
        for k, (row, direction) in enumerate(zip(weight, directions, strict=True)):
            change = lr * w * direction
            bias[k] += change
            row[:] = [value + change * feature for value, feature in zip(row, x, strict=True)]
    return loss_sum, entropy_sum, norm_sum


def _closed_form_case(
    policy: Policy, optimizer: Optimizer, batch: RolloutBatch, config: TrainConfig
) -> tuple[nn.Linear, float] | None:
    """The layer and learning rate of a per-step update that the closed form takes, or None."""
    if config.entropy_coef or config.max_grad_norm is not None or batch.action_masks is not None:
        return None
    layer = linear_softmax_layer(policy)
    if layer is None:
        return None
    lr = plain_sgd_lr(optimizer, layer)
    return None if lr is None else (layer, lr)


def _steps_in_order(policy: Policy, batch: RolloutBatch, weights_TN: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The float64 features ``[B, F]``, actions ``[B]`` and float64 weights ``[B]`` of the steps in `per_step_order`."""
    positions = per_step_order(batch)
    times, envs = positions[:, 0], positions[:, 1]
    device = next(policy.parameters()).device
    with torch.no_grad():
        features = policy.encoder(batch.observations[times, envs].to(device)).double().cpu()
    return features, batch.actions[times, envs], weights_TN[times, envs].double()


def linear_softmax_per_step_members(
    policies: Sequence[Policy],
    optimizers: Sequence[Optimizer],
    batches: Sequence[RolloutBatch],
    weights: Sequence[Tensor],
    configs: Sequence[TrainConfig],
) -> list[dict[str, float]] | None:
    """`linear_softmax_per_step` of K members at once: their step-t updates as one batched tensor operation.

    Member k's steps (`per_step_order` of its batch, its weights ``[T, N]``) are padded to the longest
    member's count ``B``; then for each of the ``B`` positions, in float64 NumPy, every member's
    ``p = softmax(W_k x + b_k)``, ``g = onehot(a) - p``, ``W_k += lr_k * w * g x^T``, ``b_k += lr_k * w * g``
    (``w = 0`` on padding), each member with its own parameters, step size and steps: what its own
    `linear_softmax_per_step` computes, up to float64 rounding (tests/unit/test_textbook.py), in ``B``
    batched steps instead of ``K * B`` Python ones. The parameters are written back in their dtype.

    Returns:
        Each member's metrics (as `linear_softmax_per_step`'s), or None where the closed form does not apply to
        some member, or a step of some member is not finite; the parameters are then untouched (each member
        then updates alone, and the general loop raises at its non-finite step).
    """
    cases = [
        _closed_form_case(policy, optimizer, batch, config)
        for policy, optimizer, batch, config in zip(policies, optimizers, batches, configs, strict=True)
    ]
    layers = [case[0] for case in cases if case is not None]
    if len(layers) != len(cases) or len({layer.weight.shape for layer in layers}) != 1:
        return None
    steps = [_steps_in_order(policy, batch, w) for policy, batch, w in zip(policies, batches, weights, strict=True)]
    # the members with the most steps first: at position b only the first active_B[b] have a step, and the
    # loop takes only theirs (a member stuck at a long episode does not make every position cost all members)
    order = sorted(range(len(steps)), key=lambda k: -len(steps[k][1]))
    steps, layers = [steps[k] for k in order], [layers[k] for k in order]
    counts = np.array([len(actions) for _, actions, _ in steps], dtype=np.float64)
    features_BKF = pad_sequence([features for features, _, _ in steps]).numpy()
    actions_BK = pad_sequence([actions for _, actions, _ in steps]).numpy()
    weights_BK = pad_sequence([w for _, _, w in steps]).numpy()  # 0 on padding: no update there
    active_B = (np.arange(len(features_BKF))[:, None] < counts[None, :]).sum(1).tolist()
    rates_K = np.array([case[1] for case in (cases[k] for k in order) if case is not None], dtype=np.float64)
    with torch.no_grad():
        weight_KAF = torch.stack([layer.weight.detach() for layer in layers]).double().cpu().numpy()
        bias_KA = torch.stack([layer.bias.detach() for layer in layers]).double().cpu().numpy()
    onehot_BKA = np.eye(weight_KAF.shape[1])[actions_BK]
    losses_K, entropies_K, norms_K = np.zeros_like(rates_K), np.zeros_like(rates_K), np.zeros_like(rates_K)
    # NumPy: a few microseconds an operation on these small arrays, where torch takes several times that
    # where one member alone has steps left (the others' episodes were shorter), its steps in Python floats
    alone = active_B.index(1) if 1 in active_B else len(active_B)
    with np.errstate(all="ignore"):  # a non-finite member is found below
        for x_KF, onehot_KA, w_K, active in zip(
            features_BKF[:alone], onehot_BKA[:alone], weights_BK[:alone], active_B[:alone], strict=True
        ):
            x_KF, onehot_KA, w_K = x_KF[:active], onehot_KA[:active], w_K[:active]
            weight, bias = weight_KAF[:active], bias_KA[:active]  # views: updated in place
            logits_KA = np.matmul(weight, x_KF[:, :, None])[:, :, 0] + bias
            shifted_KA = logits_KA - logits_KA.max(1, keepdims=True)
            exps_KA = np.exp(shifted_KA)
            totals_K1 = exps_KA.sum(1, keepdims=True)
            p_KA = exps_KA / totals_K1
            log_p_KA = shifted_KA - np.log(totals_K1)
            direction_KA = onehot_KA - p_KA  # d log pi(a|s) / d logits
            losses_K[:active] -= w_K * (onehot_KA * log_p_KA).sum(1)
            entropies_K[:active] -= (p_KA * log_p_KA).sum(1)
            scale_K = np.sqrt(np.square(x_KF).sum(1) + 1.0)
            norms_K[:active] += np.abs(w_K) * np.sqrt(np.square(direction_KA).sum(1)) * scale_K
            change_KA = (rates_K[:active] * w_K)[:, None] * direction_KA
            bias += change_KA
            weight += change_KA[:, :, None] * x_KF[:, None, :]
    if alone < len(active_B):
        weight_list, bias_list = weight_KAF[0].tolist(), bias_KA[0].tolist()
        sums = _python_steps(
            weight_list,
            bias_list,
            features_BKF[alone:, 0].tolist(),
            actions_BK[alone:, 0].tolist(),
            weights_BK[alone:, 0].tolist(),
            float(rates_K[0]),
        )
        if sums is None:
            return None
        weight_KAF[0], bias_KA[0] = weight_list, bias_list
        losses_K[0] += sums[0]
        entropies_K[0] += sums[1]
        norms_K[0] += sums[2]
    if not (np.isfinite(losses_K).all() and np.isfinite(norms_K).all() and np.isfinite(weight_KAF).all()):
        return None
    weight_tensor, bias_tensor = torch.from_numpy(weight_KAF), torch.from_numpy(bias_KA)
    with torch.no_grad():
        for k, layer in enumerate(layers):
            layer.weight.copy_(weight_tensor[k])
            layer.bias.copy_(bias_tensor[k])
            layer.weight.grad = layer.bias.grad = None
    metrics: list[dict[str, float]] = [{}] * len(order)
    for k, loss, entropy, norm in zip(
        order, (losses_K / counts).tolist(), (entropies_K / counts).tolist(), (norms_K / counts).tolist(), strict=True
    ):
        metrics[k] = {"losses/policy_loss": loss, "losses/entropy": entropy, "losses/grad_norm": norm}
    return metrics
