"""An agent's run directory written: config.json (`write_run_config`) and a checkpoint (`write_snapshot`).

`reinforce.Reinforce.save` (`save_agent`), the training loop, a population's members and the best-policy copy of
`reinforce.callbacks.EvalCallback` write through these; `reinforce.saved` reads what they write.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from reinforce.core.build import json_state
from reinforce.rollout.env_records import env_record
from reinforce.rollout.spaces import space_to_json
from reinforce.run.checkpoint import refuse_foreign_checkpoint, write_checkpoint
from reinforce.run.files import CONFIG_FILE, write_config

if TYPE_CHECKING:
    from reinforce.agent import Reinforce

logger = logging.getLogger("reinforce")


def write_run_config(agent: Reinforce, run_dir: Path, total_steps: int) -> None:
    """Write ``run_dir/config.json`` of ``agent``: env id, seed, step budget, threshold, hyperparameters, versions.

    Also how the environment is rebuilt (``env``: see `reinforce.rollout.env_records.env_record`) and its
    observation and action spaces (``spaces``), so that `reinforce.load` can give an agent that predicts
    even where the environment cannot be made.
    """
    if agent.environments.source is not None:
        record = env_record(agent.environments.source)
    else:
        record = {"name": agent.env_id, "rebuildable": False, "why_not": "the agent was made without one"}
    write_config(
        run_dir,
        {
            "env_id": agent.env_id,
            "env": record,
            "spaces": {
                "observation": space_to_json(agent.env_observation_space),
                "action": space_to_json(agent.action_space),
            },
            "seed": agent.seed,
            "total_steps": total_steps,
            "reward_threshold": agent.reward_threshold,
            "hyperparameters": agent.config.to_dict(),
            **({"custom_modules": agent.custom_modules} if agent.custom_modules else {}),
            **({"custom_optimizer": agent.optimizer_record} if agent.optimizer_record else {}),
        },
    )


def write_snapshot(agent: Reinforce, run_dir: Path) -> None:
    """Write ``agent``'s checkpoint (and config.json if absent) into ``run_dir``, whatever it holds.

    What `Reinforce.save` writes, without its check that ``run_dir`` is this agent's and without making ``run_dir``
    the agent's: for a copy of the policy elsewhere, such as ``RUN_DIR/best``
    (`reinforce.callbacks.EvalCallback`). ``reinforce.load(run_dir)`` rebuilds the agent from it.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    if not (run_dir / CONFIG_FILE).exists():
        write_run_config(agent, run_dir, total_steps=agent.num_env_steps)
    modules, optimizers = agent.state()
    record = {
        **agent.counters,
        "train_time_s": agent.train_time_s,
        "solved": agent.solved,
        "recent_returns": list(agent.recent_returns),
    }
    if agent.lr_scheduler is not None:
        record["lr_scheduler"] = json_state(agent.lr_scheduler.state_dict())
    write_checkpoint(run_dir, modules, optimizers, record, agent.num_updates)


def save_agent(agent: Reinforce, run_dir: Path) -> None:
    """`write_snapshot` into ``run_dir`` after refusing another run's checkpoint there; it becomes the agent's."""
    refuse_foreign_checkpoint(run_dir, agent.checkpoint_update)
    write_snapshot(agent, run_dir)
    agent.checkpoint_update = agent.num_updates
    logger.debug("checkpoint at update %d written to %s", agent.num_updates, run_dir)
