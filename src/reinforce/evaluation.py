"""Evaluating a policy without learning: `evaluate_policy` on any env form, and the summary it returns.

An agent's evaluation episodes start from `evaluation_seed`: the one given, or one derived from the agent's own.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from reinforce.config import as_count, check_seed
from reinforce.errors import ReinforceError
from reinforce.rollout.collect import collect
from reinforce.rollout.envs import EnvLike, env_source
from reinforce.rollout.masks import mask_width

if TYPE_CHECKING:
    from reinforce.agent import Reinforce

EVALUATION_SEED_OFFSET = 1_000_003
"""Added to the agent's seed for the default evaluation seed, so evaluation episodes differ from training's."""


def evaluation_seed(agent_seed: int | None, seed: object) -> int | None:
    """``seed`` checked, or by default one derived from ``agent_seed`` (offset so it differs from training)."""
    checked = check_seed(seed)
    return agent_seed + EVALUATION_SEED_OFFSET if checked is None and agent_seed is not None else checked


def evaluate_policy(
    agent: Reinforce,
    env: EnvLike | None = None,
    *,
    episodes: int = 10,
    deterministic: bool = True,
    seed: int | None = None,
) -> dict[str, Any]:
    """Run ``episodes`` complete episodes of ``agent``'s policy on ``env``, without learning; summarise them.

    The episodes run in parallel in one vector env of up to 100 sub-envs (`reinforce.rollout.collect.collect`),
    made for this call and closed after it; a vector env that was given (as ``env``, or to the agent) is used
    as it is and left open. `Reinforce.evaluate` and `reinforce.callbacks.EvalCallback` call this.

    Example:
        >>> reinforce.evaluate_policy(agent, "CartPole-v1", episodes=10)["mean_return"]  # doctest: +SKIP

    Args:
        agent: the agent whose policy acts.
        env: the environment, in any form `reinforce.rollout.envs.EnvLike` (an id, a spec, a callable, a vector
            env, an `EnvSource`); None: the agent's own. Its observation and action spaces must be the agent's.
        episodes: number of episodes (>= 1).
        deterministic: act with the distribution's mode (the default) or sample.
        seed: env seed; by default derived from the agent's seed (offset so it differs from training), so that
            two evaluations of a seeded agent see the same episodes.

    Returns:
        ``mean_return``, ``std_return``, ``min_return``, ``max_return``, ``mean_length``, ``episodes``,
        ``deterministic``, and the per-episode ``returns`` and ``lengths`` (lists, in the order the episodes
        ended).

    Raises:
        ReinforceError: an invalid ``episodes`` or ``seed``, an env that cannot be made, one whose spaces differ
            from the agent's, or no env at all (an agent without one, and ``env`` None).
    """
    episodes = as_count("episodes", episodes, 1)
    seed = evaluation_seed(agent.seed, seed)
    source = agent.environments.require_source() if env is None else env_source(env)
    envs = source.make(min(episodes, 100), vectorization_mode=agent.config.vectorization_mode)
    try:
        for what, theirs, ours in (
            ("observation", envs.single_observation_space, agent.observation_space),
            ("action", envs.single_action_space, agent.action_space),
        ):
            if theirs != ours:
                raise ReinforceError(
                    f"the evaluation env's {what} space {theirs} is not the agent's {ours}: evaluate on an env "
                    "with the spaces the agent was built for"
                )
        batch = collect(envs, agent.policy, episodes, deterministic=deterministic, seed=seed, device=agent.device)
    finally:
        if source.vector_env is None:  # a vector env that was given stays its owner's to close
            envs.close()
    return summarize(batch.episode_returns, batch.episode_lengths, deterministic)


def record_policy_video(
    agent: Reinforce, path: Path, *, episodes: int = 1, deterministic: bool = True, seed: int | None = None
) -> dict[str, Any]:
    """Play ``episodes`` episodes of ``agent``'s own env one after the other, writing their frames to ``path``.

    The arguments are `evaluate_policy`'s (the episodes' first reset seed derived in the same way); the
    frames come from `reinforce.run.video.record_video`. `Reinforce.record_video` calls this.

    Returns:
        `summarize` of the recorded episodes, plus ``frames`` (the number written).
    """
    from reinforce.run.video import record_video

    episodes = as_count("episodes", episodes, 1)
    source = agent.environments.require_source()
    masked = mask_width(agent.action_space) is not None

    def act(observation: Any, action_mask: Any) -> Any:
        mask = action_mask if masked else None  # other spaces ignore info["action_mask"], as in training
        return agent.predict(observation, deterministic=deterministic, action_mask=mask)[0]

    returns, lengths, frames = record_video(source.make_one, act, path, episodes, evaluation_seed(agent.seed, seed))
    return {**summarize(returns, lengths, deterministic), "frames": frames}


def summarize(returns: list[float], lengths: list[int], deterministic: bool) -> dict[str, Any]:
    """The summary of `evaluate_policy` for episodes with these returns and lengths."""
    values = np.asarray(returns)
    return {
        "episodes": len(returns),
        "deterministic": deterministic,
        "mean_return": float(values.mean()),
        "std_return": float(values.std()),
        "min_return": float(values.min()),
        "max_return": float(values.max()),
        "mean_length": float(np.mean(lengths)),
        "returns": returns,
        "lengths": lengths,
    }
