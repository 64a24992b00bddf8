"""The verified stop: the `EvalCallback` that stops training on a checked and confirmed deterministic policy.

`make_verifier` makes it from an agent's config (``solve_criterion="verified"``); `verified_at_checkpoint` and
`verified_steps` read what it recorded in a run directory's evaluations.csv.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from reinforce.callbacks import EvalCallback, read_evaluations
from reinforce.config import stops_on
from reinforce.run.files import EVALUATIONS_FILE

if TYPE_CHECKING:
    from reinforce.agent import Reinforce


class Verifier(EvalCallback):
    """The `EvalCallback` of the verified stop (`make_verifier`): it also checks when a check is likely to pass.

    A check is due after an update that crosses a multiple of ``every_steps`` env steps, as for any
    `EvalCallback`, and also after one in which a training episode reached ``stop_at``: before any sampled
    episode does, the deterministic policy mostly is not there (the periodic checks catch it when it is), and on
    CartPole a check costs about as much as an update (its longest episode sets its length), so checks are
    sparse until then and follow every such update after. Both rules look at the update alone, so a resumed run
    checks where an uninterrupted one does.
    """

    def due(self, agent: Reinforce, metrics: dict[str, Any]) -> bool:
        """Whether a check is due: a multiple of ``every_steps`` crossed, or a training episode at ``stop_at``."""
        best = metrics.get("charts/episode_return_max")
        reached = self.stop_at is not None and isinstance(best, (int, float)) and best >= self.stop_at
        return reached or super().due(agent, metrics)


CONFIRM_EPISODES = 100
"""Episodes of the evaluation that confirms a verification check (that of ``reinforce train``'s final one)."""


def make_verifier(
    agent: Reinforce, *, every_steps: int | None = None, episodes: int | None = None, record: bool = True
) -> EvalCallback | None:
    """The `EvalCallback` that stops ``agent``'s training on a verified policy, or None where none is due.

    Due with ``stop_on_solve`` and ``solve_criterion="verified"`` and a reward threshold: every ``verify_every``
    env steps, and after every update in which a training episode reached the threshold (`Verifier`), a check of
    ``verify_episodes`` deterministic episodes on the agent's own env (seeded from the agent's seed, see
    `reinforce.evaluation.evaluate_policy`); a check that reaches the threshold is confirmed over
    `CONFIRM_EPISODES` episodes, and training stops if that one reaches it too. ``learn`` makes one itself unless
    it is given an `EvalCallback` (see `reinforce.training.learn`); ``reinforce train --eval-every`` makes its
    periodic evaluations this one, with ``every_steps`` and ``episodes`` in place of the config's.
    """
    config, threshold = agent.config, agent.reward_threshold
    if stops_on(config) != "verified" or threshold is None:
        return None
    return Verifier(
        every_steps=config.verify_every if every_steps is None else every_steps,
        episodes=config.verify_episodes if episodes is None else episodes,
        stop_at=threshold,
        confirm_episodes=CONFIRM_EPISODES,
        record=record,
    )


def verified_at_checkpoint(agent: Reinforce, run_dir: Path) -> dict[str, Any] | None:
    """The evaluation that verified ``agent`` (at its update) in ``run_dir``'s evaluations.csv, or None.

    A run that stopped on a verified policy has its confirmation as the row at the update of its checkpoint: a
    resumed run is finished then (`make_verifier` says when a run stops so).
    """
    threshold = agent.reward_threshold
    if stops_on(agent.config) != "verified" or threshold is None:
        return None
    rows = [row for row in read_evaluations(run_dir / EVALUATIONS_FILE) if row["update"] == agent.num_updates]
    confirmed = [row for row in rows if row["episodes"] >= CONFIRM_EPISODES and row["mean_return"] >= threshold]
    return confirmed[-1] if confirmed else None


def verified_steps(run_dir: Path, reward_threshold: float | None) -> int | None:
    """Env steps of ``run_dir``'s first verified policy, or None.

    That is its first evaluation of at least `CONFIRM_EPISODES` episodes (the confirmation of `make_verifier`)
    whose mean return reached ``reward_threshold``.
    """
    if reward_threshold is None:
        return None
    for row in read_evaluations(run_dir / EVALUATIONS_FILE):
        if row["episodes"] >= CONFIRM_EPISODES and row["mean_return"] >= reward_threshold:
            return int(row["env_steps"])
    return None
