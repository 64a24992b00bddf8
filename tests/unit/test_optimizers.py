"""`EagerOptimizer` takes torch.optim's steps bit for bit and shares its state dict layout."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from reinforce.core.optim import RULES, EagerOptimizer

TORCH_OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop}
SHAPES = ((16, 4), (16,), (2, 16), (2,))


def parameters(seed: int = 0) -> list[nn.Parameter]:
    generator = torch.Generator().manual_seed(seed)
    return [nn.Parameter(torch.randn(shape, generator=generator)) for shape in SHAPES]


def set_gradients(params: list[nn.Parameter], step: int) -> None:
    """Gradients of varying scale, a function of ``step``; the last parameter has none on every third step."""
    generator = torch.Generator().manual_seed(step)
    scale = 10.0 ** ((step % 7) - 3)
    for index, parameter in enumerate(params):
        skipped = index == len(params) - 1 and step % 3 == 0
        parameter.grad = None if skipped else torch.randn(parameter.shape, generator=generator) * scale


def train(optimizer: torch.optim.Optimizer | EagerOptimizer, params: list[nn.Parameter], steps: range) -> None:
    for step in steps:
        set_gradients(params, step)
        optimizer.step()
        optimizer.zero_grad()


def assert_identical(ours: list[nn.Parameter], theirs: list[nn.Parameter]) -> None:
    for mine, other in zip(ours, theirs, strict=True):
        assert torch.equal(mine, other), (mine - other).abs().max()


def assert_same_state(ours: dict, theirs: dict) -> None:
    assert ours["param_groups"] == theirs["param_groups"]
    assert ours["state"].keys() == theirs["state"].keys()
    for index, entry in theirs["state"].items():
        assert ours["state"][index].keys() == entry.keys()
        for key, value in entry.items():
            assert ours["state"][index][key].dtype == value.dtype and torch.equal(ours["state"][index][key], value)


@pytest.mark.parametrize(("algorithm", "lr"), [("adam", 0.03), ("adam", 1e-3), ("sgd", 0.1), ("rmsprop", 0.01)])
def test_the_steps_equal_torch_optim_bit_for_bit(algorithm: str, lr: float) -> None:
    ours, theirs = parameters(), parameters()
    eager = EagerOptimizer(ours, algorithm, lr=lr)  # type: ignore[arg-type]
    reference = TORCH_OPTIMIZERS[algorithm](theirs, lr=lr)
    train(eager, ours, range(300))
    train(reference, theirs, range(300))
    assert_identical(ours, theirs)
    assert_same_state(eager.state_dict(), reference.state_dict())


@pytest.mark.parametrize("algorithm", sorted(RULES))
def test_the_param_groups_are_torch_optims(algorithm: str) -> None:
    """Same entries and defaults, so a checkpoint written with either optimizer loads into the other."""
    eager = EagerOptimizer(parameters(), algorithm, lr=0.02)  # type: ignore[arg-type]
    reference = TORCH_OPTIMIZERS[algorithm](parameters(), lr=0.02)
    assert eager.state_dict()["param_groups"] == reference.state_dict()["param_groups"]


@pytest.mark.parametrize("algorithm", sorted(RULES))
def test_state_moves_between_torch_optim_and_eager_and_training_continues_identically(algorithm: str) -> None:
    uninterrupted = parameters()
    reference = TORCH_OPTIMIZERS[algorithm](uninterrupted, lr=0.01)
    train(reference, uninterrupted, range(100))

    first = parameters()
    torch_first = TORCH_OPTIMIZERS[algorithm](first, lr=0.01)
    train(torch_first, first, range(40))
    second = [nn.Parameter(parameter.detach().clone()) for parameter in first]
    eager = EagerOptimizer(second, algorithm, lr=0.01)  # type: ignore[arg-type]
    eager.load_state_dict(torch_first.state_dict())
    train(eager, second, range(40, 70))
    third = [nn.Parameter(parameter.detach().clone()) for parameter in second]
    torch_again = TORCH_OPTIMIZERS[algorithm](third, lr=0.01)
    torch_again.load_state_dict(eager.state_dict())
    train(torch_again, third, range(70, 100))

    assert_identical(third, uninterrupted)
    assert_same_state(torch_again.state_dict(), reference.state_dict())


def test_zero_grad_sets_to_none_or_zeroes() -> None:
    params = parameters()
    optimizer = EagerOptimizer(params, "sgd", lr=0.1)
    for parameter in params:
        parameter.grad = torch.ones_like(parameter)
    optimizer.zero_grad(set_to_none=False)
    assert all(parameter.grad is not None and not parameter.grad.any() for parameter in params)
    optimizer.zero_grad()
    assert all(parameter.grad is None for parameter in params)


def test_a_parameter_without_gradient_gets_no_state_and_no_change() -> None:
    params = parameters()
    optimizer = EagerOptimizer(params, "adam", lr=0.1)
    before = params[0].detach().clone()
    params[1].grad = torch.ones_like(params[1])
    optimizer.step()
    assert torch.equal(params[0], before)
    assert list(optimizer.state_dict()["state"]) == [1]


def torch_adam_state(**options: object) -> dict:
    params = parameters()
    optimizer = torch.optim.Adam(params, lr=0.01, **options)  # type: ignore[arg-type]
    train(optimizer, params, range(3))
    return optimizer.state_dict()


@pytest.mark.parametrize(
    ("state_dict", "message"),
    [
        (torch_adam_state(amsgrad=True), "does not support"),
        (torch_adam_state(weight_decay=0.1), "does not support"),
        (torch_adam_state(betas=(0.5, 0.9)), "does not support"),
        (torch.optim.RMSprop(parameters(), lr=0.01).state_dict(), "entries"),
        ({"state": {}, "param_groups": []}, "number of parameter groups"),
        ({**torch_adam_state(), "state": {0: {"step": torch.tensor(1.0)}}}, "entries"),
        ({**torch_adam_state(), "state": {9: {}}}, "no parameter"),
    ],
)
def test_a_state_it_cannot_continue_is_refused(state_dict: dict, message: str) -> None:
    optimizer = EagerOptimizer(parameters(), "adam", lr=0.01)
    with pytest.raises(ValueError, match=message):
        optimizer.load_state_dict(state_dict)


def test_a_moment_of_the_wrong_shape_is_refused() -> None:
    state_dict = torch_adam_state()
    state_dict["state"][0]["exp_avg"] = torch.zeros(3)
    with pytest.raises(ValueError, match="shape"):
        EagerOptimizer(parameters(), "adam", lr=0.01).load_state_dict(state_dict)


@pytest.mark.parametrize(("arguments", "message"), [(([], "adam"), "empty"), ((None, "adamw"), "unknown")])
def test_invalid_construction_is_refused(arguments: tuple, message: str) -> None:
    params, algorithm = arguments
    with pytest.raises(ValueError, match=message):
        EagerOptimizer(parameters() if params is None else params, algorithm)
    with pytest.raises(ValueError, match="learning rate"):
        EagerOptimizer(parameters(), "adam", lr=0.0)


@pytest.mark.parametrize("algorithm", sorted(RULES))
def test_a_learning_rate_set_between_steps_changes_them_as_in_torch_optim(algorithm: str) -> None:
    """The schedule hook: ``param_groups[0]["lr"]`` set before each step, here to torch's `LinearLR` decay."""
    ours, theirs = parameters(), parameters()
    eager = EagerOptimizer(ours, algorithm, lr=0.05)  # type: ignore[arg-type]
    reference = TORCH_OPTIMIZERS[algorithm](theirs, lr=0.05)
    schedule = torch.optim.lr_scheduler.LinearLR(reference, start_factor=1.0, end_factor=0.1, total_iters=60)
    constant = parameters()
    train(EagerOptimizer(constant, algorithm, lr=0.05), constant, range(80))  # type: ignore[arg-type]
    for step in range(80):
        eager.param_groups[0]["lr"] = reference.param_groups[0]["lr"]
        train(eager, ours, range(step, step + 1))
        train(reference, theirs, range(step, step + 1))
        schedule.step()
    assert eager.param_groups[0]["lr"] == pytest.approx(0.005)
    assert_identical(ours, theirs)
    # the scheduler adds "initial_lr" to torch.optim's group, and its last step set the next lr
    assert_same_state({**eager.state_dict(), "param_groups": []}, {**reference.state_dict(), "param_groups": []})
    assert not torch.equal(ours[0], constant[0])
