"""Guards that keep a NaN or an infinity from reaching an optimizer."""

from __future__ import annotations

import torch
from torch import Tensor

from reinforce.core.optim import Optimizer
from reinforce.errors import NonFiniteError


def check_finite_step(loss: Tensor, grad_norm: Tensor, optimizer: Optimizer, lr_field: str) -> None:
    """Raise `NonFiniteError` (after clearing the gradients) unless the loss and the gradient norm are finite.

    Called between ``backward`` and ``optimizer.step``, so a non-finite update never reaches the parameters.

    Args:
        loss: the loss just differentiated.
        grad_norm: the global L2 norm of the gradients.
        optimizer: the optimizer about to step (its gradients are cleared on failure).
        lr_field: the setting of that optimizer's learning rate, named in the message (``lr``, ``value_lr``).
    """
    if bool(torch.isfinite(loss)) and bool(torch.isfinite(grad_norm)):
        return
    optimizer.zero_grad(set_to_none=True)
    what = "loss" if not bool(torch.isfinite(loss)) else "gradient"
    network = "value network" if lr_field == "value_lr" else "policy"
    raise NonFiniteError(
        f"non-finite {what} of the {network} (loss {float(loss.item())}, gradient norm {float(grad_norm.item())}): "
        f"the step was skipped, the parameters are the last finite ones; likely causes: a learning rate too high "
        f"(lower {lr_field}), exploding gradients (set max_grad_norm), unscaled observations "
        "(set normalize_observations=True)",
        fields=(lr_field, "max_grad_norm", "normalize_observations"),
    )
