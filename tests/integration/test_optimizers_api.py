"""A user's optimizer (torch.optim class or factory, with kwargs) and learning-rate scheduler, through runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import reinforce
from reinforce import Reinforce, ReinforceError


def step_lr(optimizer: Any) -> Any:
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)


def parameters(agent: Reinforce) -> list[torch.Tensor]:
    return [parameter.detach().clone() for parameter in agent.policy.parameters()]


def test_a_torch_optim_class_with_kwargs_trains_and_is_rebuilt_by_load(tmp_path: Path) -> None:
    agent = Reinforce("CartPole-v1", optimizer=torch.optim.AdamW, optimizer_kwargs={"weight_decay": 0.25}, seed=0)
    assert isinstance(agent.optimizer, torch.optim.AdamW)
    assert agent.optimizer.param_groups[0]["weight_decay"] == 0.25 and agent.optimizer.param_groups[0]["lr"] == 0.03
    agent.learn(1_500, run_dir=tmp_path / "run")
    agent.close()
    record = json.loads((tmp_path / "run" / "config.json").read_text())["custom_optimizer"]
    assert record == {"optimizer": "torch.optim.adamw:AdamW", "kwargs": {"weight_decay": 0.25}, "rebuildable": True}
    loaded = reinforce.load(tmp_path / "run")
    assert isinstance(loaded.optimizer, torch.optim.AdamW)
    assert loaded.optimizer.param_groups[0]["weight_decay"] == 0.25
    assert loaded.optimizer.state_dict()["state"][0]["step"] == agent.optimizer.state_dict()["state"][0]["step"]
    loaded.close()


def test_a_scheduler_is_stepped_per_update_and_resumes_exactly(tmp_path: Path) -> None:
    straight = Reinforce("CartPole-v1", lr_scheduler=step_lr, seed=1, num_envs=4)
    for _ in range(5):
        straight.update()
    assert straight.optimizer.param_groups[0]["lr"] == pytest.approx(0.03 * 0.5**2)
    first = Reinforce("CartPole-v1", lr_scheduler=step_lr, seed=1, num_envs=4)
    for _ in range(3):
        first.update()
    first.save(tmp_path / "run")
    first.close()
    resumed = reinforce.resume(tmp_path / "run", lr_scheduler=step_lr)
    for _ in range(2):
        resumed.update()
    assert resumed.optimizer.param_groups[0]["lr"] == straight.optimizer.param_groups[0]["lr"]
    for ours, theirs in zip(parameters(resumed), parameters(straight), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    # without the scheduler the run loads (to predict and evaluate) but does not train on
    loaded = reinforce.load(tmp_path / "run")
    with pytest.raises(ReinforceError, match="cannot train further without the run's lr_scheduler"):
        loaded.learn(100)
    with pytest.raises(ReinforceError, match="cannot train further without the run's lr_scheduler"):
        reinforce.Population.from_agents([loaded])  # nor as a population's member, its LR frozen
    for agent in (straight, resumed, loaded):
        agent.close()


def test_an_optimizer_factory_must_be_given_again(tmp_path: Path) -> None:
    def sgd_momentum(params: Any, lr: float) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr=lr, momentum=0.9)

    agent = Reinforce("CartPole-v1", optimizer=sgd_momentum, seed=0, num_envs=4)
    agent.update()
    agent.save(tmp_path / "run")
    agent.close()
    with pytest.raises(ReinforceError, match="cannot be rebuilt from its run directory: pass optimizer="):
        reinforce.load(tmp_path / "run")
    loaded = reinforce.load(tmp_path / "run", optimizer=sgd_momentum)
    assert loaded.optimizer.param_groups[0]["momentum"] == 0.9
    loaded.close()


def test_a_run_directory_names_only_optimizer_classes(tmp_path: Path) -> None:
    agent = Reinforce("CartPole-v1", optimizer=torch.optim.Adam, seed=0, num_envs=4)
    agent.update()
    agent.save(tmp_path / "run")
    agent.close()
    config_file = tmp_path / "run" / "config.json"
    config = json.loads(config_file.read_text())
    config["custom_optimizer"]["optimizer"] = "os:system"
    config_file.write_text(json.dumps(config))
    with pytest.raises(ReinforceError, match=r"'os:system' is not a torch\.optim\.Optimizer class"):
        reinforce.load(tmp_path / "run")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"optimizer_kwargs": {"betas": (0.9, 0.99)}}, "optimizer_kwargs go with optimizer="),
        ({"optimizer": torch.optim.Adam, "optimizer_kwargs": {"lr": 0.1}}, "as lr=, not in optimizer_kwargs"),
        ({"optimizer": torch.optim.Adam, "optimizer_kwargs": {"nonsense": 1}}, "could not be made"),
        ({"lr_scheduler": step_lr, "lr_schedule": "linear"}, "set lr_schedule='constant'"),
        ({"lr_scheduler": lambda optimizer: 3}, "not a torch.optim.lr_scheduler"),
    ],
)
def test_optimizer_settings_that_do_not_fit_are_one_error(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ReinforceError, match=message):
        Reinforce("CartPole-v1", num_envs=2, **kwargs)


def test_a_scheduler_that_drives_the_learning_rate_below_zero_stops_training() -> None:
    def negative(optimizer: Any) -> Any:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda update: 1.0 - 0.75 * update)

    agent = Reinforce("CartPole-v1", lr_scheduler=negative, seed=0, num_envs=2)
    agent.update()  # the factor goes 1 -> 0.25 after the first update, then to -0.5
    with pytest.raises(ReinforceError, match="must stay finite and > 0"):
        agent.update()
    agent.close()
