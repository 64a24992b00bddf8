"""The textbook per-step update (``update="per_step"``) of a linear softmax policy, in closed form.

For a linear softmax policy ``pi(.|s) = softmax(W x(s) + b)`` (``hidden_sizes=()``, a Categorical head over
the encoder's features ``x(s)``), the gradient of ``log pi(a|s)`` is ``(onehot(a) - pi(.|s))`` outer
``x(s)`` for ``W`` and ``onehot(a) - pi(.|s)`` for ``b``. With plain SGD (no momentum, weight decay or
gradient clipping) and no entropy bonus, Sutton & Barto's update after every step,
``theta += lr * w_t * grad log pi(a_t|s_t)`` (``w_t = gamma^t G_t`` with ``discount_gradient``), needs no
autograd: `linear_softmax_per_step` runs a whole batch's updates in a NumPy loop over the steps, in the
parameters' dtype, about a hundred times faster than the general loop of `reinforce.core.loss.update_policy`
(which does a forward, a backward and an optimizer step per step), with the same floats up to rounding
(tests/unit/test_textbook.py checks both against the book's rule written out).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from reinforce.config import TrainConfig
from reinforce.core.batch import RolloutBatch
from reinforce.core.optim import EagerOptimizer, Optimizer
from reinforce.core.policies import CategoricalPolicy, Policy


def per_step_order(batch: RolloutBatch) -> Tensor:
    """``[B, 2]`` positions ``(t, n)`` of the batch's valid steps in the order of the per-step update.

    Episode by episode (in the order of `reinforce.core.returns.episode_ids`: each env's first episodes, then
    their second ones, ...), and within an episode in time order.
    """
    mask = batch.mask.numpy()
    dones = batch.dones.numpy().astype(np.int64)
    length, num_envs = mask.shape
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
    if config.entropy_coef or config.max_grad_norm is not None or batch.action_masks is not None:
        return None
    layer = linear_softmax_layer(policy)
    if layer is None:
        return None
    lr = plain_sgd_lr(optimizer, layer)
    if lr is None:
        return None
    positions = per_step_order(batch)
    times, envs = positions[:, 0], positions[:, 1]
    with torch.no_grad():
        features = policy.encoder(batch.observations[times, envs].to(layer.weight.device)).cpu()
        weight = layer.weight.detach().cpu().numpy().copy()
        bias = layer.bias.detach().cpu().numpy().copy()
    dtype = weight.dtype
    features_np = features.numpy().astype(dtype, copy=False)
    actions = batch.actions[times, envs].long().tolist()
    weights = weights_TN[times, envs].to(torch.float64).tolist()
    num_steps = len(actions)
    logits = np.empty((num_steps, bias.shape[0]), dtype=dtype)
    scale = dtype.type(-lr)
    for i in range(num_steps):
        x = features_np[i]
        logits[i] = weight @ x + bias
        exps = np.exp(logits[i] - logits[i].max())
        p = exps / exps.sum()
        # the loss -w log pi(a|s) has the gradient -w (onehot(a) - p) at the logits; SGD steps against it
        grad_logits = p * dtype.type(weights[i])
        grad_logits[actions[i]] -= dtype.type(weights[i])
        weight += scale * np.outer(grad_logits, x)
        bias += scale * grad_logits
    return _finish(policy, layer, (weight, bias), logits, features_np, actions, weights)


def _finish(
    policy: Policy,
    layer: nn.Linear,
    parameters: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]],
    logits: np.ndarray[Any, Any],
    features: np.ndarray[Any, Any],
    actions: list[int],
    weights: list[float],
) -> dict[str, float] | None:
    """The metrics of the steps, and the new parameters into ``layer``; None (nothing written) if not finite."""
    rows = np.arange(len(actions))
    shifted = logits.astype(np.float64) - logits.max(1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    probabilities = np.exp(log_probs)
    weights_np = np.asarray(weights)
    losses = -weights_np * log_probs[rows, actions]
    entropies = -(probabilities * log_probs).sum(1)
    directions = -probabilities
    directions[rows, actions] += 1.0
    feature_norms = np.sqrt((features.astype(np.float64) ** 2).sum(1) + 1.0)  # [x, 1]: W's and b's share
    norms = np.abs(weights_np) * np.linalg.norm(directions, axis=1) * feature_norms
    finite = [np.isfinite(values).all() for values in (losses, norms, *parameters)]
    if not all(finite):
        return None
    weight, bias = parameters
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(weight))
        layer.bias.copy_(torch.from_numpy(bias))
        for parameter in policy.parameters():
            parameter.grad = None
    return {
        "losses/policy_loss": float(losses.mean()),
        "losses/entropy": float(entropies.mean()),
        "losses/grad_norm": float(norms.mean()),
    }
