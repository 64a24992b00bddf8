"""A population's batched computations: one policy call per env step, one backward per update, for K members.

Both stack the members' MLP weights (``[K, out, in]`` per layer) and run one batched matmul per layer
(``torch.baddbmm``), then the first member's head (the heads have no parameters) over all rows. Each member's
rows see its own weights only, so each member's gradient is its own loss's: `policy_step` sums the members'
losses, differentiates the sum once, clips each member's gradient by its own norm and steps each member's own
optimizer (its state, its learning rate).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.distributions import Categorical, Distribution, Independent

from reinforce.core.batch import RolloutBatch
from reinforce.core.guards import check_finite_step
from reinforce.core.loss import ONE_PASS_MAX_STEPS
from reinforce.core.policies import BernoulliPolicy, CategoricalPolicy, MultiCategoricalPolicy, Policy
from reinforce.errors import NonFiniteError
from reinforce.rollout.actions import categorical_shape, sample_actions
from reinforce.rollout.collect import Act
from reinforce.rollout.mlp_sampler import MemberUniforms

if TYPE_CHECKING:
    from reinforce.agent import Reinforce

STACKED_ACTIVATIONS: dict[type[nn.Module], Callable[[Tensor], Tensor]] = {nn.ReLU: torch.relu, nn.Tanh: torch.tanh}
"""The hidden activations a stacked MLP body may have, and the function that applies each."""


def _layers(policy: Policy) -> list[nn.Module]:
    """The body's layers if it is an MLP that stacks (Linear layers and `STACKED_ACTIVATIONS`), else []."""
    layers = list(policy.body.children()) if isinstance(policy.body, nn.Sequential) else []
    if not all(isinstance(layer, nn.Linear) or type(layer) in STACKED_ACTIVATIONS for layer in layers):
        return []
    linears = sum(isinstance(layer, nn.Linear) for layer in layers)
    return layers if linears and len(list(policy.parameters())) == 2 * linears else []


def stackable(policies: Sequence[Policy]) -> bool:
    """Whether ``policies`` run as one stacked computation.

    They do with one class of Categorical, MultiCategorical or Bernoulli head, vector (Box) observations and the
    same MLP body (Linear layers, ReLU or Tanh between them).
    """
    first = policies[0]
    layers = _layers(first)
    shape = [(type(layer), getattr(layer, "weight", torch.empty(0)).shape) for layer in layers]
    return (
        isinstance(first, (CategoricalPolicy, MultiCategoricalPolicy, BernoulliPolicy))
        and first.encoder.cnn is None
        and first.encoder.num_categories is None
        and bool(layers)
        and all(
            type(policy) is type(first)
            and [(type(layer), getattr(layer, "weight", torch.empty(0)).shape) for layer in _layers(policy)] == shape
            for policy in policies
        )
    )


@dataclass(frozen=True)
class _Stack:
    """The members' bodies as stacked tensors: per layer ``(weight [K, in, out], bias [K, 1, out])`` or a function."""

    layers: list[tuple[Tensor, Tensor] | Callable[[Tensor], Tensor]]

    @classmethod
    def of(cls, policies: Sequence[Policy], *, requires_grad: bool = False) -> _Stack:
        """The stacked copy of ``policies``' bodies (leaves of their own with ``requires_grad``)."""
        bodies = [_layers(policy) for policy in policies]
        layers: list[tuple[Tensor, Tensor] | Callable[[Tensor], Tensor]] = []
        for index, layer in enumerate(bodies[0]):
            if not isinstance(layer, nn.Linear):
                layers.append(STACKED_ACTIVATIONS[type(layer)])
                continue
            linears = [body[index] for body in bodies]
            weights = torch.stack([linear.weight.detach() for linear in linears if isinstance(linear, nn.Linear)])
            biases = torch.stack([linear.bias.detach() for linear in linears if isinstance(linear, nn.Linear)])
            weights, biases = weights.transpose(1, 2), biases.unsqueeze(1)
            if requires_grad:
                weights, biases = weights.requires_grad_(), biases.requires_grad_()
            layers.append((weights, biases))
        return cls(layers)

    def __call__(self, features: Tensor) -> Tensor:
        """``[K, B, in]`` features through member k's body on row block k: ``[K, B, out]``."""
        for layer in self.layers:
            features = torch.baddbmm(layer[1], features, layer[0]) if isinstance(layer, tuple) else layer(features)
        return features

    def rows(self, features: Sequence[Tensor]) -> Tensor:
        """Member k's ``[B_k, in]`` features through its body: ``[sum B_k, out]``, member after member.

        Padded to the longest member's rows and run as `__call__` where that wastes little; else each member's
        rows through its own slices of the stacked weights (one graph, one backward either way).
        """
        sizes = [part.shape[0] for part in features]
        if len(sizes) * max(sizes) <= PADDING_WASTE * sum(sizes):
            padded = nn.utils.rnn.pad_sequence(list(features), batch_first=True)  # [K, L, in]
            outputs = self(padded)
            return torch.cat([outputs[k, :size] for k, size in enumerate(sizes)])
        parts = []
        for k, part in enumerate(features):
            for layer in self.layers:
                part = torch.addmm(layer[1][k], part, layer[0][k]) if isinstance(layer, tuple) else layer(part)
            parts.append(part)
        return torch.cat(parts)

    def gradients(self) -> list[Tensor]:
        """The gradients of the stacked leaves, in the order of a member's ``policy.parameters()``: ``[K, ...]``."""
        grads = []
        for layer in self.layers:
            if isinstance(layer, tuple):
                weights, biases = layer
                assert weights.grad is not None and biases.grad is not None
                grads += [weights.grad.transpose(1, 2), biases.grad.squeeze(1)]
        return grads


PADDING_WASTE = 1.25
"""`_Stack.rows` pads the members' rows to the longest member's and runs one batched matmul per layer where
that is at most this many times their rows; else it runs each member's rows alone (padding costs arithmetic)."""


def population_act(
    policies: Sequence[Policy],
    *,
    deterministic: bool = False,
    generators: Sequence[torch.Generator] | None = None,
    uniforms: MemberUniforms | None = None,
) -> Act:
    """One batched policy call for K members' policies of one class: `rollout.collect.Act` for ``[K * G]`` rows.

    Row block k (``G`` rows each) is member k's. The members' parameters are read when this is called and used
    as they are then (a collection does not change them). `stackable` policies run as one call (each member's
    observations through its own encoder, whose running statistics differ); the others (Gaussian, images,
    one-hot observations, custom bodies) are called member by member. It samples the actions, or with
    ``deterministic`` takes each distribution's mode. ``generators``: one per member, from which its rows'
    Categorical draws come (`rollout.actions.sample_actions`), so that a member's draws do not depend on the
    other members; None (and other distributions) draw from torch's generator. ``uniforms``: the members'
    Categorical draws for a stacked call taken from these instead (`MemberUniforms`: the values of ``generators``
    drawn in blocks, shared with the collection's `MLPSampler`), one ``[K * G, 1]`` step at a time.
    """
    first = policies[0]
    count = len(policies)

    def draws(distribution: Distribution, members: range) -> Tensor | None:
        """The draws of ``members``' rows of ``distribution`` from their generators (None: torch's)."""
        shape = None if deterministic else categorical_shape(distribution)
        if shape is None:
            return None
        base = distribution.base_dist if isinstance(distribution, Independent) else distribution
        assert isinstance(base, Categorical)
        if uniforms is not None and len(members) == count and len(shape) == 2:
            return uniforms.next().to(base.logits.device)
        if generators is None:
            return None
        rows, logits = shape[0] // len(members), base.logits
        return torch.cat(
            [
                torch.rand((rows, *shape[1:]), generator=generators[k], dtype=logits.dtype, device=logits.device)
                for k in members
            ]
        )

    if not stackable(policies):

        def each(observations: Tensor, action_masks: Tensor | None) -> Tensor:
            rows = observations.shape[0] // count
            actions = []
            for index, policy in enumerate(policies):
                part = slice(index * rows, (index + 1) * rows)
                distribution = policy(observations[part], None if action_masks is None else action_masks[part])
                uniform = draws(distribution, range(index, index + 1))
                actions.append(sample_actions(distribution, deterministic, uniform))
            return torch.cat(actions)

        return each

    assert isinstance(first, (CategoricalPolicy, MultiCategoricalPolicy, BernoulliPolicy))
    head: Callable[[Tensor, Tensor | None], Any] = first.head
    body = _Stack.of(policies)

    argmax = deterministic and isinstance(first, CategoricalPolicy)  # the mode without building the distribution

    def stacked(observations: Tensor, action_masks: Tensor | None) -> Tensor:
        features = _encode(policies, observations.reshape(count, -1, *observations.shape[1:]))
        logits = body(features)
        if argmax and action_masks is None:
            return logits.reshape(-1, logits.shape[-1]).argmax(-1)
        distribution = head(logits.reshape(-1, logits.shape[-1]), action_masks)
        return sample_actions(distribution, deterministic, draws(distribution, range(count)))

    return stacked


def _encode(policies: Sequence[Policy], observations: Tensor) -> Tensor:
    """``[K, B, *shape]`` raw observations as ``[K, B, features]``: member k's rows through its own encoder."""
    first = policies[0]
    if first.encoder.normalize:  # each member's own running statistics
        return torch.stack([policy.encoder(observations[k]) for k, policy in enumerate(policies)])
    count, rows = observations.shape[:2]
    features: Tensor = first.encoder(observations.reshape(count * rows, *observations.shape[2:]))
    return features.reshape(count, rows, -1)


def batched_update(members: Sequence[Reinforce], batches: Sequence[RolloutBatch]) -> bool:
    """Whether `policy_step` takes these members' step on these batches (else each member updates alone).

    It does for `stackable` policies with ``update="batch"`` and batches that one pass differentiates
    (`reinforce.core.loss.ONE_PASS_MAX_STEPS`); a per-step (textbook) update or a chunked one is each member's.
    """
    return (
        len(members) > 1
        and all(member.config.update == "batch" for member in members)
        and stackable([member.policy for member in members])
        and all(int(batch.mask.sum()) <= ONE_PASS_MAX_STEPS for batch in batches)
    )


def policy_step(
    members: Sequence[Reinforce], batches: Sequence[RolloutBatch], weights: Sequence[Tensor]
) -> list[dict[str, float] | NonFiniteError]:
    """One policy-gradient step of every member on its batch: one batched forward and backward for all.

    Member k's loss is `reinforce.core.loss.policy_loss` of its batch and weights ``[T, N]`` (its own
    ``loss_reduction`` and ``entropy_coef``); the sum of the losses is differentiated once, and as member k's
    rows see only its weights, the gradient of its stacked weights is that of its own loss. Each member's
    gradient is then clipped by its own norm (``max_grad_norm``, as ``torch.nn.utils.clip_grad_norm_``),
    checked (`reinforce.core.guards.check_finite_step`) and stepped by its own optimizer. A member whose loss
    or gradient is not finite does not step: its entry is the `NonFiniteError`, and the others step as usual.
    `batched_update` says where this applies.

    Returns:
        Per member, its loss metrics (``losses/policy_loss``, ``losses/entropy``, ``losses/grad_norm``) or the
        error that kept it from stepping.
    """
    policies = [member.policy for member in members]
    first = policies[0]
    device = next(first.parameters()).device
    valid = [batch.mask for batch in batches]
    sizes = [int(mask.sum()) for mask in valid]
    owner = torch.repeat_interleave(torch.arange(len(members)), torch.tensor(sizes)).to(device)  # [S]: its member

    def rows(values: Sequence[Tensor]) -> Tensor:
        """``[S, ...]``: the members' valid steps, member after member."""
        return torch.cat([value[mask] for value, mask in zip(values, valid, strict=True)]).to(device)

    observations = [batch.observations[mask].to(device) for batch, mask in zip(batches, valid, strict=True)]
    actions = rows([batch.actions for batch in batches])
    masks = None
    if any(batch.action_masks is not None for batch in batches):
        masks = rows([batch.action_masks for batch in batches])  # type: ignore[misc]
    stack = _Stack.of(policies, requires_grad=True)
    logits = stack.rows([policy.encoder(part) for policy, part in zip(policies, observations, strict=True)])
    assert isinstance(first, (CategoricalPolicy, MultiCategoricalPolicy, BernoulliPolicy))
    head: Callable[[Tensor, Tensor | None], Any] = first.head
    distribution = head(logits, masks)

    def per_member(values: Tensor) -> Tensor:
        """``[S]`` -> ``[K]``: each member's sum over its rows."""
        return torch.zeros(len(members), dtype=values.dtype, device=device).index_add_(0, owner, values)

    steps = torch.tensor(sizes, dtype=logits.dtype, device=device)
    episodes = torch.tensor([len(batch.episode_returns) for batch in batches], dtype=logits.dtype, device=device)
    per_episode = torch.tensor([m.config.loss_reduction == "mean_over_episodes" for m in members], device=device)
    entropies = per_member(distribution.entropy()) / steps
    surrogate = distribution.log_prob(actions) * rows(weights)
    losses = -per_member(surrogate) / torch.where(per_episode, episodes, steps)
    coefs = torch.tensor([member.config.entropy_coef for member in members], dtype=losses.dtype, device=device)
    losses = losses - coefs * torch.where(per_episode, steps / episodes, 1.0) * entropies
    losses.sum().backward()  # type: ignore[no-untyped-call]
    grads = stack.gradients()
    norms = torch.linalg.vector_norm(torch.stack([grad.flatten(1).norm(dim=1) for grad in grads], dim=1), dim=1)
    limits = torch.tensor(
        [math.inf if member.config.max_grad_norm is None else member.config.max_grad_norm for member in members],
        dtype=norms.dtype,
        device=device,
    )
    scales = (limits / (norms + 1e-6)).clamp(max=1.0)  # clip_grad_norm_'s coefficient
    results: list[dict[str, float] | NonFiniteError] = []
    for k, member in enumerate(members):
        member.optimizer.zero_grad(set_to_none=True)
        try:
            check_finite_step(losses[k].detach(), norms[k], member.optimizer, "lr")
        except NonFiniteError as error:
            results.append(error)
            continue
        for parameter, grad in zip(member.policy.parameters(), grads, strict=True):
            parameter.grad = grad[k] * scales[k]
        member.optimizer.step()
        results.append(
            {
                "losses/policy_loss": float(losses[k].item()),
                "losses/entropy": float(entropies[k].item()),
                "losses/grad_norm": float(norms[k].item()),
            }
        )
    return results
