"""Learning-rate schedules: the factor on the configured learning rates at a point of the training budget."""

from __future__ import annotations

from reinforce.config import LrSchedule
from reinforce.core.optim import Optimizer


def lr_factor(schedule: LrSchedule, progress: float) -> float:
    """The factor on the learning rates when ``progress`` (0 to 1) of the budget is done.

    ``constant`` is 1 throughout; ``linear`` is ``1 - progress`` (the decay of Tianshou's REINFORCE and
    Stable-Baselines3's linear schedules), so the last update of a budget still takes a small step.

    Example:
        >>> lr_factor("linear", 0.25)
        0.75
    """
    if schedule == "constant":
        return 1.0
    return 1.0 - min(max(progress, 0.0), 1.0)


def set_lr(optimizer: Optimizer, lr: float) -> None:
    """Set every param group's learning rate (read at each step, as torch.optim's schedulers set it)."""
    for group in optimizer.param_groups:
        group["lr"] = lr
