"""The `Reinforce` agent: collect -> returns -> update -> log -> checkpoint, and `load` for saved runs."""

from __future__ import annotations

import math
import time
from collections import deque
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import torch

from reinforce.algorithm import batch_returns, make_optimizer, policy_weights, update_baseline, update_policy
from reinforce.baselines import RunningMeanBaseline, ValueFunction
from reinforce.checkpoint import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    EPISODES_FILE,
    FORMAT_VERSION,
    METRICS_FILE,
    POLICY_FILE,
    load_tensors,
    read_json,
    require,
    save_tensors,
    write_json,
)
from reinforce.config import TrainConfig, as_count, check_seed, episodes_per_update, tuned_hyperparameters
from reinforce.envs import FLATTENED_OBSERVATION_SPACES, env_spec, flatten_observations, make_vec_env
from reinforce.errors import ReinforceError
from reinforce.logging import CSVLogger
from reinforce.policies import make_policy
from reinforce.rollout import RolloutBatch, collect, sample_actions, to_env_actions

SOLVED_WINDOW = 100
"""Episodes in the moving mean that decides 'solved' (Gymnasium's convention)."""

METRIC_FIELDS = (
    "update",
    "env_steps",
    "simulated_steps",
    "episodes",
    "charts/episode_return_mean",
    "charts/episode_return_min",
    "charts/episode_return_max",
    "charts/episode_length_mean",
    "charts/episode_length_min",
    "charts/episode_length_max",
    "charts/episode_return_mean_100",
    "charts/truncated_fraction",
    "losses/policy_loss",
    "losses/entropy",
    "losses/grad_norm",
    "losses/value_loss",
    "losses/explained_variance",
    "perf/steps_per_s",
    "perf/step_efficiency",
    "wall_time_s",
)
"""Columns of metrics.csv, one row per update. ``perf/steps_per_s`` and ``wall_time_s`` are timings; the rest
is reproducible from the seed. The value columns are filled only with ``baseline="value"``."""
EPISODE_FIELDS = ("episode", "update", "env_steps", "return", "length", "truncated")
"""Columns of episodes.csv, one row per training episode."""


COUNTERS = ("num_updates", "num_env_steps", "num_simulated_steps", "num_episodes")
"""The integer counters of an agent, saved in checkpoint.json."""


def library_versions() -> dict[str, str]:
    """Versions of reinforce, torch, gymnasium and numpy, recorded in every run directory."""
    try:
        own = version("reinforce")
    except PackageNotFoundError:
        own = "unknown"
    return {
        "reinforce": own,
        "torch": torch.__version__,
        "gymnasium": gymnasium.__version__,
        "numpy": np.__version__,
    }


def resolve_device(name: str) -> torch.device:
    """``torch.device(name)``, or a `ReinforceError` if it is malformed or not available here."""
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ReinforceError(f"invalid device {name!r}: use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ReinforceError(f"device {name!r} asked for but CUDA is not available here: use --device cpu")
    if device.type == "meta":
        raise ReinforceError(f"device {name!r} holds no data and cannot train: use cpu or cuda")
    try:
        torch.empty(1, device=device) + 1
    except Exception as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ReinforceError(f"device {name!r} is not usable here ({first_line}): use --device cpu") from None
    return device


class Reinforce:
    """REINFORCE on a Gymnasium environment, in the conventions of Stable-Baselines3.

    Creating an agent sets two process-wide torch settings: the number of CPU threads (``num_threads``,
    default 1, fastest for small networks; 0 leaves it alone) and, with a seed, torch's global random seed.

    Example:
        >>> agent = Reinforce("CartPole-v1", seed=0, num_envs=8)
        >>> agent.learn(total_steps=20_000)  # doctest: +SKIP
        >>> agent.evaluate(episodes=10)["mean_return"]  # doctest: +SKIP

    Args:
        env_id: a registered Gymnasium id.
        seed: seeds torch (the policy's initial weights and sampling) and the environments; None for random.
        **hyperparameters: fields of `reinforce.config.TrainConfig` (``num_envs``, ``gamma``, ``lr``, ...);
            they override the package's tuned values for ``env_id`` (`reinforce.config.tuned_hyperparameters`),
            which override the dataclass defaults.

    Raises:
        ReinforceError: an unknown hyperparameter or environment, an invalid value, an unsupported space.
    """

    def __init__(self, env_id: str, *, seed: int | None = None, **hyperparameters: Any) -> None:
        self.config = TrainConfig.from_dict({**tuned_hyperparameters(env_id), **hyperparameters})
        seed = check_seed(seed)
        self.env_id = env_id
        self.seed = seed
        self.device = resolve_device(self.config.device)
        spec = env_spec(env_id)
        threshold = self.config.reward_threshold
        self.reward_threshold: float | None = threshold if threshold is not None else spec.reward_threshold
        self.envs = make_vec_env(env_id, self.config.num_envs, vectorization_mode=self.config.vectorization_mode)
        self.observation_space = self.envs.single_observation_space
        self.action_space = self.envs.single_action_space
        if self.config.num_threads:
            torch.set_num_threads(self.config.num_threads)
        if seed is not None:
            torch.manual_seed(seed)
        try:
            self.policy = make_policy(
                self.observation_space,
                self.action_space,
                self.config.hidden_sizes,
                action_squash=self.config.action_squash,
                log_std=self.config.log_std,
                log_std_init=self.config.log_std_init,
                normalize_observations=self.config.normalize_observations,
            )
        except ReinforceError:
            self.envs.close()
            raise
        self.policy.to(self.device)
        self.optimizer = make_optimizer(self.config, self.policy.parameters())
        self.value_function: ValueFunction | None = None
        self.value_optimizer: torch.optim.Optimizer | None = None
        if self.config.baseline == "value":
            self.value_function = ValueFunction(
                self.observation_space,
                self.config.value_hidden_sizes,
                normalize=self.config.normalize_observations,
            ).to(self.device)
            self.value_optimizer = torch.optim.Adam(self.value_function.parameters(), lr=self.config.value_lr)
        self.running_mean = RunningMeanBaseline() if self.config.baseline == "running_mean" else None
        self.num_updates = 0
        self.num_env_steps = 0
        self.num_episodes = 0
        self.num_simulated_steps = 0
        self.recent_returns: deque[float] = deque(maxlen=SOLVED_WINDOW)
        self.train_time_s = 0.0
        self._reset_seed = seed

    @property
    def solved(self) -> bool:
        """Whether the mean return of the last 100 training episodes reached the reward threshold."""
        return (
            self.reward_threshold is not None
            and len(self.recent_returns) == SOLVED_WINDOW
            and float(np.mean(self.recent_returns)) >= self.reward_threshold
        )

    def update(self) -> dict[str, Any]:
        """Collect ``episodes_per_update`` complete episodes and take one policy-gradient step on them.

        Returns:
            The update's metrics (the columns of metrics.csv) plus ``episode_returns``, ``episode_lengths``
            and ``episode_truncated``: one entry per episode the update used.
        """
        start = time.perf_counter()
        batch = collect(
            self.envs,
            self.policy,
            episodes_per_update(self.config),
            seed=self._reset_seed,
            device=self.device,
        )
        self._reset_seed = None  # later collections continue the environments' random streams
        losses = self.train_on_batch(batch)
        # after the step, so that one batch is collected and trained on with the same statistics
        valid_observations = batch.observations[batch.mask]
        self.policy.encoder.update_normalization(valid_observations)
        if self.value_function is not None:
            self.value_function.encoder.update_normalization(valid_observations)
        elapsed = time.perf_counter() - start
        self.train_time_s += elapsed
        steps = batch.num_steps
        self.num_updates += 1
        self.num_env_steps += steps
        self.num_simulated_steps += batch.mask.numel()
        self.num_episodes += len(batch.episode_returns)
        self.recent_returns.extend(batch.episode_returns)
        returns = np.asarray(batch.episode_returns)
        lengths = np.asarray(batch.episode_lengths)
        return {
            "update": self.num_updates,
            "env_steps": self.num_env_steps,
            "simulated_steps": self.num_simulated_steps,
            "episodes": self.num_episodes,
            "charts/episode_return_mean": float(returns.mean()),
            "charts/episode_return_min": float(returns.min()),
            "charts/episode_return_max": float(returns.max()),
            "charts/episode_length_mean": float(lengths.mean()),
            "charts/episode_length_min": int(lengths.min()),
            "charts/episode_length_max": int(lengths.max()),
            "charts/episode_return_mean_100": float(np.mean(self.recent_returns)),
            "charts/truncated_fraction": float(np.mean(batch.episode_truncated)),
            **losses,
            "perf/steps_per_s": steps / elapsed if elapsed > 0 else math.inf,
            "perf/step_efficiency": steps / batch.mask.numel(),
            "wall_time_s": self.train_time_s,
            "episode_returns": batch.episode_returns,
            "episode_lengths": batch.episode_lengths,
            "episode_truncated": batch.episode_truncated,
        }

    def train_on_batch(self, batch: RolloutBatch) -> dict[str, float]:
        """Returns, weights, policy step(s) and baseline fitting on ``batch``; returns the loss metrics."""
        returns_TN = batch_returns(batch, self.config, self.value_function)
        weights_TN = policy_weights(
            batch, returns_TN, self.config, value_function=self.value_function, running_mean=self.running_mean
        )
        losses = update_policy(self.policy, self.optimizer, batch, weights_TN, self.config)
        return losses | update_baseline(
            batch,
            returns_TN,
            self.config,
            value_function=self.value_function,
            value_optimizer=self.value_optimizer,
            running_mean=self.running_mean,
        )

    def learn(self, total_steps: int, *, run_dir: str | Path | None = None, progress_bar: bool = False) -> Reinforce:
        """Update until ``total_steps`` more env steps are done, or the task is solved (``stop_on_solve``).

        Args:
            total_steps: env-step budget of this call (counted in valid steps, see `RolloutBatch.num_steps`).
            run_dir: if given, the run directory to write: config.json at the start, a row of metrics.csv
                per update and of episodes.csv per episode, and the checkpoint at the end.
            progress_bar: show a progress bar on stderr.

        Returns:
            self, so that ``Reinforce(...).learn(...)`` chains.
        """
        total_steps = as_count("total_steps", total_steps, 0)
        from tqdm.auto import tqdm

        target = self.num_env_steps + total_steps
        path = Path(run_dir) if run_dir is not None else None
        metrics_log = episodes_log = None
        if path is not None:
            path.mkdir(parents=True, exist_ok=True)
            self._write_config(path, total_steps)
            metrics_log = CSVLogger(path / METRICS_FILE, METRIC_FIELDS)
            episodes_log = CSVLogger(path / EPISODES_FILE, EPISODE_FIELDS)
        bar = tqdm(total=total_steps, unit="step", disable=not progress_bar, dynamic_ncols=True, leave=True)
        try:
            while self.num_env_steps < target and not (self.config.stop_on_solve and self.solved):
                metrics = self.update()
                bar.update(min(self.num_env_steps, target) - bar.n)
                bar.set_postfix(
                    return_100=f"{metrics['charts/episode_return_mean_100']:.1f}",
                    steps_per_s=f"{metrics['perf/steps_per_s']:.0f}",
                    refresh=False,
                )
                if metrics_log is not None and episodes_log is not None:
                    metrics_log.write(metrics)
                    self._log_episodes(episodes_log, metrics)
        finally:
            bar.close()
            for log in (metrics_log, episodes_log):
                if log is not None:
                    log.close()
        if path is not None:
            self.save(path)
        return self

    def _log_episodes(self, log: CSVLogger, metrics: dict[str, Any]) -> None:
        first = self.num_episodes - len(metrics["episode_returns"])
        for offset, (ret, length, truncated) in enumerate(
            zip(metrics["episode_returns"], metrics["episode_lengths"], metrics["episode_truncated"], strict=True)
        ):
            log.write(
                {
                    "episode": first + offset + 1,
                    "update": self.num_updates,
                    "env_steps": self.num_env_steps,
                    "return": ret,
                    "length": length,
                    "truncated": int(truncated),
                }
            )

    def predict(self, observation: Any, deterministic: bool = False) -> np.ndarray[Any, Any]:
        """Actions for one observation or a batch of them, NumPy in and out.

        Args:
            observation: an observation of the env's single observation space, or a batch ``[B, ...]``.
            deterministic: take the distribution's mode (argmax / Gaussian mean) instead of sampling.

        Returns:
            One action (shape of the single action space) or a batch of ``B`` actions, as the env expects
            them (Box actions clipped to the bounds).
        """
        env_space = self.envs.unwrapped.single_observation_space
        if isinstance(env_space, FLATTENED_OBSERVATION_SPACES):  # as the env wrapper flattens them
            batch, batched = flatten_observations(env_space, observation)
        else:
            observations = np.asarray(observation)
            single_ndim = len(self.observation_space.shape or ())
            batched = observations.ndim > single_ndim
            batch = observations if batched else observations[None]
        with torch.inference_mode():
            actions = sample_actions(self.policy(torch.as_tensor(batch, device=self.device)), deterministic)
        env_actions = to_env_actions(actions.cpu().numpy(), self.action_space, self.policy.action_squash)
        return env_actions if batched else env_actions[0]

    def evaluate(self, episodes: int = 100, deterministic: bool = True, seed: int | None = None) -> dict[str, Any]:
        """Run ``episodes`` complete episodes in parallel, without learning, and summarise them.

        Args:
            episodes: number of episodes (all run in one vector env of up to 100 sub-envs).
            deterministic: act with the distribution's mode (the default) or sample.
            seed: env seed; by default derived from the agent's seed (offset so it differs from training).

        Returns:
            ``mean_return``, ``std_return``, ``min_return``, ``max_return``, ``mean_length``, ``episodes``
            and ``returns`` (the list).
        """
        episodes = as_count("episodes", episodes, 1)
        seed = check_seed(seed)
        if seed is None and self.seed is not None:
            seed = self.seed + 1_000_003
        envs = make_vec_env(self.env_id, min(episodes, 100), vectorization_mode=self.config.vectorization_mode)
        try:
            batch = collect(envs, self.policy, episodes, deterministic=deterministic, seed=seed, device=self.device)
        finally:
            envs.close()
        returns = np.asarray(batch.episode_returns)
        return {
            "episodes": episodes,
            "deterministic": deterministic,
            "mean_return": float(returns.mean()),
            "std_return": float(returns.std()),
            "min_return": float(returns.min()),
            "max_return": float(returns.max()),
            "mean_length": float(np.mean(batch.episode_lengths)),
            "returns": batch.episode_returns,
        }

    def _write_config(self, run_dir: Path, total_steps: int) -> None:
        write_json(
            run_dir / CONFIG_FILE,
            {
                "format_version": FORMAT_VERSION,
                "env_id": self.env_id,
                "seed": self.seed,
                "total_steps": total_steps,
                "reward_threshold": self.reward_threshold,
                "hyperparameters": self.config.to_dict(),
                "versions": library_versions(),
            },
        )

    def save(self, run_dir: str | Path) -> None:
        """Write the checkpoint (policy tensors and counters) and, if absent, config.json into ``run_dir``."""
        path = Path(run_dir)
        path.mkdir(parents=True, exist_ok=True)
        if not (path / CONFIG_FILE).exists():
            self._write_config(path, total_steps=0)
        save_tensors(path / POLICY_FILE, self.policy.state_dict())
        write_json(
            path / CHECKPOINT_FILE,
            {
                "format_version": FORMAT_VERSION,
                "reinforce_version": library_versions()["reinforce"],
                **{key: getattr(self, key) for key in COUNTERS},
                "train_time_s": self.train_time_s,
                "solved": self.solved,
            },
        )

    def close(self) -> None:
        """Close the environments."""
        self.envs.close()


def _counters(checkpoint: dict[str, Any], path: Path) -> dict[str, int]:
    counters = {}
    for key in COUNTERS:
        value = require(checkpoint, key, int, path)
        if value < 0:
            raise ReinforceError(f"{path} has a negative {key!r}: the run directory is damaged")
        counters[key] = value
    return counters


def load(run_dir: str | Path, *, device: str | None = None) -> Reinforce:
    """Rebuild the agent saved in ``run_dir`` (config.json, checkpoint.json, policy.safetensors).

    No pickle: the tensors come from safetensors and the rest from JSON, all checked before use. (An env id of
    the form ``module:Env-v0`` imports ``module``, exactly as ``gymnasium.make`` would.) With a seed, the
    loaded agent's torch generator and environments are seeded from (seed, updates done), so continuing a
    loaded run is reproducible; the optimizer state is not saved yet, so it restarts.

    Args:
        run_dir: a directory written by `Reinforce.save` or ``reinforce train``.
        device: overrides the saved ``device`` (e.g. ``"cpu"`` for a run trained on a GPU).

    Raises:
        ReinforceError: the directory or one of its files is missing or damaged.
    """
    path = Path(run_dir)
    if not path.is_dir():
        problem = "is not a directory" if path.exists() else "does not exist"
        raise ReinforceError(f"run directory {path} {problem}: pass the directory `reinforce train` wrote")
    config = read_json(path / CONFIG_FILE)
    checkpoint = read_json(path / CHECKPOINT_FILE)
    for document, file in ((config, CONFIG_FILE), (checkpoint, CHECKPOINT_FILE)):
        if document.get("format_version") != FORMAT_VERSION:
            raise ReinforceError(
                f"{path / file} has format_version {document.get('format_version')!r}, this reinforce reads "
                f"{FORMAT_VERSION}: install the reinforce version that wrote it"
            )
    env_id = require(config, "env_id", str, path / CONFIG_FILE)
    hyperparameters = require(config, "hyperparameters", dict, path / CONFIG_FILE)
    counters = _counters(checkpoint, path / CHECKPOINT_FILE)
    try:
        train_time_s = float(require(checkpoint, "train_time_s", (int, float), path / CHECKPOINT_FILE))
    except OverflowError:
        train_time_s = math.inf
    if not math.isfinite(train_time_s) or train_time_s < 0:
        raise ReinforceError(f"{path / CHECKPOINT_FILE} has an invalid 'train_time_s': the run directory is damaged")
    tensors = load_tensors(path / POLICY_FILE)
    seed = config.get("seed")
    if device is not None:
        resolve_device(device)  # a bad override is the caller's, not config.json's
        hyperparameters = {**hyperparameters, "device": device}
    try:
        agent = Reinforce(env_id, seed=seed, **hyperparameters)
    except ReinforceError as exc:
        raise ReinforceError(f"{path / CONFIG_FILE} is invalid: {exc}") from None
    try:
        agent.policy.load_state_dict(tensors, strict=True)
    except RuntimeError:
        agent.close()
        raise ReinforceError(
            f"{path / POLICY_FILE} does not match the policy that config.json describes: the run is damaged"
        ) from None
    for key, value in counters.items():
        setattr(agent, key, value)
    agent.train_time_s = train_time_s
    if seed is not None and agent.num_updates:
        derived = int(np.random.SeedSequence([seed, agent.num_updates]).generate_state(1)[0])
        torch.manual_seed(derived)
        agent._reset_seed = derived
    return agent
