"""Training runs in their run directory: `finish_run`, what every run does once `Reinforce.learn` has returned."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from reinforce.run.files import CURVE_FILE, EVALUATION_FILE, write_json
from reinforce.run.plotting import plot_runs

if TYPE_CHECKING:
    from reinforce.agent import Reinforce
    from reinforce.run.plotting import PlotProcess


def finish_run(
    agent: Reinforce, run_dir: Path, *, eval_episodes: int, plotter: PlotProcess | None = None
) -> dict[str, Any] | None:
    """Draw ``run_dir``'s curve.png, evaluate the deterministic policy and write evaluation.json.

    What ``reinforce train`` and every sweep trial do after training.

    Args:
        agent: the agent that has just trained in ``run_dir``.
        run_dir: the run directory `Reinforce.learn` wrote.
        eval_episodes: deterministic evaluation episodes; 0 skips the evaluation (and evaluation.json).
        plotter: a `PlotProcess` started before training, which draws the curve while this process evaluates;
            None draws it here first.

    Returns:
        The evaluation (`Reinforce.evaluate`'s document, as written), or None without one.

    Raises:
        ReinforceError: the curve cannot be written.
    """
    if plotter is None:
        plot_runs([run_dir], run_dir / CURVE_FILE, threshold=agent.reward_threshold)
    else:
        plotter.submit([run_dir], run_dir / CURVE_FILE, threshold=agent.reward_threshold)
    evaluation = None
    if eval_episodes:
        evaluation = agent.evaluate(episodes=eval_episodes)
        write_json(run_dir / EVALUATION_FILE, evaluation)
    if plotter is not None:
        plotter.result()
    return evaluation
