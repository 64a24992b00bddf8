"""One trial of a sweep, the body of its Ray task: train (or resume), finish the run, write result.json."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reinforce.config import SolveCriterion, stops_on
from reinforce.errors import NonFiniteError, ReinforceError
from reinforce.run.files import CONFIG_FILE, METRICS_FILE, read_json, write_json
from reinforce.run.metrics import SOLVED_WINDOW, is_solved
from reinforce.run.plotting import read_columns, read_episodes
from reinforce.sweep.plan import Trial

if TYPE_CHECKING:
    from reinforce.agent import Reinforce
    from reinforce.config import TrainConfig
RESULT_FILE = "result.json"
"""Written last, atomically, in a trial's run directory: the trial is finished and is not run again."""


def steps_to_solve(
    run_dir: Path, reward_threshold: float | None, criterion: SolveCriterion = "training_mean"
) -> int | None:
    """Env steps at the first update of ``run_dir`` after which the run counted as solved; None if none did.

    Solved is the trainer's own criterion: with ``verified``, the first confirmed evaluation of the
    deterministic policy at the threshold (`reinforce.verification.verified_steps`, evaluations.csv); with
    ``training_mean``, `reinforce.run.metrics.is_solved` applied after each update (a row of metrics.csv) to the
    training episodes up to it (episodes.csv). None without a threshold.
    """
    if reward_threshold is None:
        return None
    if criterion == "verified":
        from reinforce.verification import verified_steps

        return verified_steps(run_dir, reward_threshold)
    metrics = read_columns(run_dir / METRICS_FILE, ("env_steps", "episodes"))
    returns = read_episodes(run_dir)["return"]
    for steps, episodes in zip(metrics["env_steps"], metrics["episodes"], strict=True):
        count = int(episodes)
        if is_solved(returns[max(0, count - SOLVED_WINDOW) : count].tolist(), reward_threshold):
            return int(steps)
    return None


def criterion(config: TrainConfig) -> SolveCriterion:
    """The criterion of 'solved' of a trial: the one it stops on, the training mean where it stops on none."""
    return "verified" if stops_on(config) == "verified" else "training_mean"


def run_trial(trial: Trial) -> dict[str, Any]:
    """Train, finish and summarise one trial in its run directory (the body of a sweep's Ray task).

    A trial with a result.json is returned as it is; one with a config.json (and maybe a checkpoint)
    continues from its last checkpoint (`reinforce.resume`); otherwise it starts. Training and
    `reinforce.training.finish_run` write what ``reinforce train`` writes (config, metrics, episodes,
    checkpoints, curve.png, evaluation.json); a divergence (`NonFiniteError`) ends the trial as unsolved, with
    its message in the result.

    Returns:
        The result document, also written (atomically, last) to ``run_dir/result.json``.
    """
    from reinforce.agent import Reinforce
    from reinforce.config import TrainConfig
    from reinforce.saved import resume
    from reinforce.training import finish_run

    run_dir = Path(trial.run_dir)
    if (run_dir / RESULT_FILE).is_file():
        return read_json(run_dir / RESULT_FILE)
    if (run_dir / CONFIG_FILE).is_file():
        agent = resume(run_dir)
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        agent = Reinforce(trial.env_id, config=TrainConfig.from_dict(trial.hyperparameters), seed=trial.seed)
    error = None
    evaluation = None
    try:
        try:
            agent.learn(
                max(0, trial.total_steps - agent.num_env_steps),
                run_dir=run_dir,
                checkpoint_every=trial.checkpoint_every,
            )
        except NonFiniteError as exc:
            error = str(exc)
        else:
            evaluation = finish_run(agent, run_dir, eval_episodes=trial.eval_episodes)
    finally:
        agent.close()
    return _write_result(trial, agent, evaluation, error)


def run_population(trials: Sequence[Trial]) -> list[dict[str, Any] | str]:
    """Train, finish and summarise trials of one setting (one seed each) as one population (a sweep's Ray task).

    What `run_trial` does for each trial, with the trials trained together as a
    `reinforce.population.Population` (their run directories are ``SETTING_DIR/seed-S``, a population's
    members'): finished trials are returned as they are, the others start or continue from their last
    checkpoint; a member that diverges (`NonFiniteError`) ends its trial as unsolved, with its message.

    Returns:
        Per trial, its result document (also written to its ``result.json``), or why it failed (a member's
        error other than a divergence: no result.json is written, and the sweep runs the trial again).
    """
    from reinforce.agent import Reinforce
    from reinforce.config import TrainConfig
    from reinforce.population import Population
    from reinforce.saved import resume
    from reinforce.training import finish_run

    results: dict[int, dict[str, Any] | str] = {}
    todo = []
    for index, trial in enumerate(trials):
        run_dir = Path(trial.run_dir)
        if (run_dir / RESULT_FILE).is_file():
            results[index] = read_json(run_dir / RESULT_FILE)
        else:
            todo.append(index)
    if todo:
        agents: list[Reinforce] = []
        try:
            for index in todo:
                trial = trials[index]
                if (Path(trial.run_dir) / CONFIG_FILE).is_file():
                    agents.append(resume(trial.run_dir))
                else:
                    config = TrainConfig.from_dict(trial.hyperparameters)
                    agents.append(Reinforce(trial.env_id, config=config, seed=trial.seed))
        except BaseException:
            for agent in agents:
                agent.close()
            raise
        population = Population.from_agents(agents)
        try:
            first = trials[todo[0]]
            budgets = [
                max(0, trials[index].total_steps - agent.num_env_steps)
                for index, agent in zip(todo, agents, strict=True)
            ]
            population.learn(budgets, run_dir=Path(first.run_dir).parent, checkpoint_every=first.checkpoint_every)
        finally:
            population.close()
        for index, agent in zip(todo, agents, strict=True):
            trial = trials[index]
            error = population.errors.get(trial.seed)
            if error is not None and not isinstance(error, NonFiniteError):
                results[index] = f"{type(error).__name__}: {error}"
                continue
            evaluation = None
            if error is None:
                verifier = population.verifiers.get(trial.seed)
                verified = None if verifier is None else verifier.verified
                done = verified if verified is not None and verified["episodes"] == trial.eval_episodes else None
                evaluation = finish_run(agent, Path(trial.run_dir), eval_episodes=trial.eval_episodes, evaluation=done)
            results[index] = _write_result(trial, agent, evaluation, None if error is None else str(error))
    return [results[index] for index in range(len(trials))]


def _write_result(
    trial: Trial, agent: Reinforce, evaluation: dict[str, Any] | None, error: str | None
) -> dict[str, Any]:
    """The result document of ``trial``, trained as ``agent``, written last (atomically) to its result.json."""
    run_dir = Path(trial.run_dir)
    result = {
        "env_id": trial.env_id,
        "seed": trial.seed,
        "setting": trial.setting,
        "reward_threshold": agent.reward_threshold,
        "steps_to_solve": steps_to_solve(run_dir, agent.reward_threshold, criterion(agent.config)),
        "final_return": None if evaluation is None else evaluation["mean_return"],
        "eval_episodes": 0 if evaluation is None else evaluation["episodes"],
        "env_steps": agent.num_env_steps,
        "updates": agent.num_updates,
        "episodes": agent.num_episodes,
        "train_time_s": agent.train_time_s,
        "error": error,
    }
    write_json(run_dir / RESULT_FILE, result)
    return result


def finished_result(trial: Trial) -> dict[str, Any] | None:
    """The result of a finished trial (one with a result.json), or None."""
    path = Path(trial.run_dir) / RESULT_FILE
    if not path.is_file():
        return None
    fix = "delete it to run that trial again"
    try:
        result = read_json(path)
    except ReinforceError as exc:
        raise ReinforceError(f"{exc} ({fix})") from None
    if result.get("setting") != trial.setting or result.get("seed") != trial.seed:
        raise ReinforceError(f"{path} belongs to another trial: the sweep directory is damaged; {fix}")
    numbers: dict[str, type | tuple[type, ...]] = {
        "steps_to_solve": int,
        "final_return": (int, float),
        "env_steps": int,
    }
    for key, kind in numbers.items():
        value = result.get(key)
        if (key != "env_steps" and value is None) or (isinstance(value, kind) and not isinstance(value, bool)):
            continue
        raise ReinforceError(f"{path} has an invalid or missing {key!r}: the trial's result is damaged; {fix}")
    if not isinstance(result.get("error"), (str, type(None))):
        raise ReinforceError(f"{path} has an invalid 'error': the trial's result is damaged; {fix}")
    return result
