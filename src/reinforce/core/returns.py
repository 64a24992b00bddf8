"""Returns as pure tensor functions over ``[T]`` or ``[T, N]`` (time, environment) tensors."""

from __future__ import annotations

import torch
from torch import Tensor


def discounted_returns(
    rewards: Tensor,
    dones: Tensor,
    gamma: float,
    *,
    truncated: Tensor | None = None,
    bootstrap_values: Tensor | None = None,
) -> Tensor:
    """Discounted reward-to-go inside each episode: ``G_t = r_t + gamma * G_{t+1}``, cut where an episode ends.

    One reverse pass over time of vector operations on all environments at once.

    Args:
        rewards: tensor ``[T]`` or ``[T, N]`` (integers are converted to float); ``rewards[t]`` is the reward
            received after the action at t.
        dones: bool (or 0/1) tensor of the same shape, true where an episode ends after step t (terminated
            or truncated: at a time-limit cut the return is the Monte-Carlo sum up to the cut).
        gamma: discount factor in [0, 1].
        truncated: optional bool tensor of the same shape, true where an episode was cut (a time limit) after
            step t rather than terminated (only where ``dones`` is true too); needs ``bootstrap_values``.
        bootstrap_values: optional float tensor of the same shape, an estimate of the value of the state
            reached after step t; where ``truncated``, the return is ``G_t = r_t + gamma * bootstrap_values[t]``
            instead of ``r_t`` (the cut is not treated as the end of the task).

    Returns:
        Float tensor of the same shape as ``rewards``.

    Raises:
        ValueError: if the shapes differ or are not ``[T]`` / ``[T, N]``, gamma is outside [0, 1], or only one
            of ``truncated`` and ``bootstrap_values`` is given.

    Example:
        >>> rewards = torch.tensor([1.0, 1.0, 1.0, 1.0])
        >>> dones = torch.tensor([False, True, False, True])
        >>> discounted_returns(rewards, dones, gamma=0.5)
        tensor([1.5000, 1.0000, 1.5000, 1.0000])
    """
    if rewards.shape != dones.shape:
        raise ValueError(f"rewards {tuple(rewards.shape)} and dones {tuple(dones.shape)} must have one shape")
    if rewards.dim() not in (1, 2):
        raise ValueError(f"expected [T] or [T, N] tensors, got shape {tuple(rewards.shape)}")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    if not rewards.is_floating_point():
        rewards = rewards.to(torch.get_default_dtype())
    if (truncated is None) != (bootstrap_values is None):
        raise ValueError("truncated and bootstrap_values go together: pass both or neither")
    targets = rewards
    if truncated is not None and bootstrap_values is not None:
        if truncated.shape != rewards.shape or bootstrap_values.shape != rewards.shape:
            raise ValueError(
                f"truncated {tuple(truncated.shape)} and bootstrap_values {tuple(bootstrap_values.shape)} "
                f"must have the shape of rewards {tuple(rewards.shape)}"
            )
        cut = truncated.bool() & dones.bool()  # a truncation is an episode end; elsewhere it is ignored
        targets = rewards + gamma * torch.where(cut, bootstrap_values.to(rewards.dtype), torch.zeros_like(rewards))
    continues = (~dones.bool()).to(rewards.dtype) * gamma
    returns = torch.empty_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = targets[t] + continues[t] * running
        returns[t] = running
    return returns


def standardize(values: Tensor, mask: Tensor | None = None, eps: float = 1e-8) -> Tensor:
    """``(values - mean) / (std + eps)`` with mean and std taken over the entries where ``mask`` is true.

    Entries outside the mask are returned as 0, and so are all entries when the valid ones are equal (a single
    one included): computed in float64, so that the rounding noise of a constant input is not blown up to ±1.

    Args:
        values: float tensor of any shape.
        mask: bool tensor of the same shape, or None for all entries.
        eps: added to the standard deviation.

    Example:
        >>> standardize(torch.tensor([1.0, 2.0, 3.0]))  # the population standard deviation: sqrt(2/3)
        tensor([-1.2247,  0.0000,  1.2247])
    """
    if mask is None:
        mask = torch.ones_like(values, dtype=torch.bool)
    if mask.shape != values.shape:
        raise ValueError(f"mask {tuple(mask.shape)} must have the shape of values {tuple(values.shape)}")
    selected = values[mask].double()
    if selected.numel() == 0:
        return torch.zeros_like(values)
    mean = selected.mean()
    std = _spread(selected.std(correction=0), mean)
    standardised = ((values.double() - mean) / (std + eps)).to(values.dtype)
    return torch.where(mask, standardised, torch.zeros_like(values))


def _spread(std: Tensor, mean: Tensor) -> Tensor:
    """``std``, or 0 where it is only the rounding noise of a constant input (so constants standardise to 0)."""
    noise = 64 * torch.finfo(torch.float64).eps * mean.abs().clamp(min=1.0)
    return torch.where(std <= noise, torch.zeros_like(std), std)


def episode_steps(dones: Tensor, mask: Tensor) -> Tensor:
    """Index of each valid step within its episode (0 at the episode's first step), over ``[T]`` or ``[T, N]``.

    Steps outside ``mask`` (reset and idle steps) neither count nor belong to an episode; they get 0.

    Args:
        dones: bool tensor, true where an episode ends after step t.
        mask: bool tensor of the same shape, true on the steps that belong to an episode.

    Example:
        >>> episode_steps(torch.tensor([False, True, False, False]), torch.tensor([True, True, False, True]))
        tensor([0, 1, 0, 0])
    """
    if dones.shape != mask.shape:
        raise ValueError(f"dones {tuple(dones.shape)} and mask {tuple(mask.shape)} must have one shape")
    dones, mask = dones.bool(), mask.bool()
    steps = torch.zeros(mask.shape, dtype=torch.long)
    counter = torch.zeros(mask.shape[1:], dtype=torch.long)
    for t in range(mask.shape[0]):
        steps[t] = counter
        counter = torch.where(dones[t] & mask[t], torch.zeros_like(counter), counter + mask[t].long())
    return torch.where(mask, steps, torch.zeros_like(steps))


def episode_ids(dones: Tensor, mask: Tensor) -> tuple[Tensor, int]:
    """Number the episodes of a ``[T]`` or ``[T, N]`` batch ``0..E-1`` and label each valid step with its own.

    Args:
        dones: bool tensor, true where an episode ends after step t.
        mask: bool tensor of the same shape, true on the steps that belong to an episode.

    Returns:
        A long tensor of the shape of ``mask`` (-1 outside it) and the number of episodes ``E``.
    """
    if dones.shape != mask.shape:
        raise ValueError(f"dones {tuple(dones.shape)} and mask {tuple(mask.shape)} must have one shape")
    dones_TN = dones.bool().reshape(mask.shape[0], -1)
    mask_TN = mask.bool().reshape(dones_TN.shape)
    ended = dones_TN.long().cumsum(0) - dones_TN.long()  # episodes of this env that ended before step t
    keys = ended * dones_TN.shape[1] + torch.arange(dones_TN.shape[1])
    numbered, inverse = torch.unique(keys[mask_TN], return_inverse=True)
    ids = torch.full(mask_TN.shape, -1, dtype=torch.long)
    ids[mask_TN] = inverse
    return ids.reshape(mask.shape), int(numbered.numel())


def standardize_per_episode(values: Tensor, ids: Tensor, eps: float = 1e-8) -> Tensor:
    """`standardize` within each episode: ``(v - mean_e) / (std_e + eps)`` over the steps with id ``e``.

    Args:
        values: float tensor.
        ids: long tensor of the same shape from `episode_ids` (-1: not in an episode, returned as 0).
        eps: added to each episode's standard deviation (an episode of one step gets 0).
    """
    if ids.shape != values.shape:
        raise ValueError(f"ids {tuple(ids.shape)} must have the shape of values {tuple(values.shape)}")
    valid = ids >= 0
    if not valid.any():
        return torch.zeros_like(values)
    index = ids[valid]
    selected = values[valid].double()
    count = torch.zeros(int(index.max()) + 1, dtype=torch.float64).index_add_(0, index, torch.ones_like(selected))
    mean = torch.zeros_like(count).index_add_(0, index, selected) / count
    centred = selected - mean[index]
    std = _spread((torch.zeros_like(count).index_add_(0, index, centred**2) / count).sqrt(), mean)
    result = torch.zeros_like(values)
    result[valid] = (centred / (std[index] + eps)).to(values.dtype)
    return result


def whole_episode_returns(returns: Tensor, dones: Tensor, mask: Tensor) -> Tensor:
    """Give every valid step the return of its episode's first step (``G_0``, Williams' whole-episode return).

    Args:
        returns: float tensor ``[T]`` or ``[T, N]`` of reward-to-go (`discounted_returns`).
        dones: bool tensor of the same shape, true where an episode ends after step t.
        mask: bool tensor of the same shape, true on the steps that belong to an episode.

    Returns:
        Float tensor of the same shape (0 outside ``mask``).
    """
    if not returns.shape == dones.shape == mask.shape:
        raise ValueError(f"returns {tuple(returns.shape)}, dones and mask must have one shape")
    starts = mask.bool() & (episode_steps(dones, mask) == 0)
    result = torch.zeros_like(returns)
    current = torch.zeros_like(returns[0])
    for t in range(returns.shape[0]):
        current = torch.where(starts[t], returns[t], current)
        result[t] = torch.where(mask[t].bool(), current, torch.zeros_like(current))
    return result
