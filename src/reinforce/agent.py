"""The `Reinforce` agent: collect -> returns -> update -> log -> checkpoint, and `load` for saved runs."""

from __future__ import annotations

import functools
import logging
import math
import signal
import threading
import time
from collections import deque
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import torch
from torch import Tensor, nn

from reinforce.config import (
    DEFAULT_CHECKPOINT_EVERY,
    TrainConfig,
    as_count,
    check_seed,
    episodes_per_update,
    preset_hyperparameters,
    tuned_hyperparameters,
)
from reinforce.core.baselines import RunningMeanBaseline, ValueFunction
from reinforce.core.batch import RolloutBatch
from reinforce.core.loss import batch_returns, make_optimizer, policy_weights, update_baseline, update_policy
from reinforce.core.optim import EagerOptimizer
from reinforce.core.policies import policy_from_config
from reinforce.errors import ReinforceError, TrainingInterrupted
from reinforce.rollout.collect import collect, sample_actions, to_env_actions
from reinforce.rollout.envs import FLATTENED_OBSERVATION_SPACES, env_spec, flatten_observations, make_vec_env
from reinforce.rollout.ray import RayRollouts
from reinforce.run.checkpoint import (
    FORMAT_VERSION,
    load_tensors,
    pack_state,
    remove_stale_files,
    require,
    restore_modules,
    restore_optimizers,
    restore_rng,
    save_state_file,
    trim_csv,
)
from reinforce.run.files import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    EPISODES_FILE,
    METRICS_FILE,
    TENSORBOARD_DIR,
    read_json,
    write_json,
)
from reinforce.run.metrics import (
    EPISODE_FIELDS,
    METRIC_FIELDS,
    SOLVED_WINDOW,
    CSVLogger,
    TensorBoardLogger,
    is_solved,
    require_tensorboard,
)

logger = logging.getLogger("reinforce")

EVALUATION_SEED_OFFSET = 1_000_003
"""Added to the agent's seed for the default evaluation seed, so evaluation episodes differ from training's."""

COUNTERS = ("num_updates", "num_env_steps", "num_simulated_steps", "num_episodes")
"""The integer counters of an agent, saved in checkpoint.json."""


@functools.cache
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


def check_ray_address(address: str | None, backend: str) -> None:
    """Refuse a Ray cluster address for an agent that collects locally (it would be ignored)."""
    if address is not None and backend != "ray":
        raise ReinforceError(
            "a Ray address is for Ray rollouts only: add --backend ray, or drop --address "
            "(in Python: backend='ray', or no ray_address)"
        )


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
        preset: a named set of values shipped with the package for ``env_id`` (presets.yaml, e.g.
            ``"sample-efficient"`` for CartPole-v1), over the tuned ones.
        ray_address: with ``backend="ray"``, the Ray cluster to join (``HOST:PORT`` or ``"auto"``); None starts
            a local Ray with this machine's CPUs. Ray and the workers start at the first update.
        **hyperparameters: fields of `reinforce.config.TrainConfig` (``num_envs``, ``gamma``, ``lr``, ...);
            they override the preset, which overrides the package's tuned values for ``env_id``
            (`reinforce.config.tuned_hyperparameters`), which override the dataclass defaults.

    Raises:
        ReinforceError: an unknown hyperparameter or environment, an invalid value, an unsupported space.
    """

    def __init__(
        self,
        env_id: str,
        *,
        seed: int | None = None,
        preset: str | None = None,
        ray_address: str | None = None,
        **hyperparameters: Any,
    ) -> None:
        preset_values = preset_hyperparameters(preset, env_id) if preset is not None else {}
        self.config = TrainConfig.from_dict({**tuned_hyperparameters(env_id), **preset_values, **hyperparameters})
        check_ray_address(ray_address, self.config.backend)
        seed = check_seed(seed)
        self.env_id = env_id
        self.seed = seed
        self.device = resolve_device(self.config.device)
        spec = env_spec(env_id)
        threshold = self.config.reward_threshold
        self.reward_threshold: float | None = threshold if threshold is not None else spec.reward_threshold
        # with Ray workers collecting, the learner's own vector env serves only to know the spaces
        local_envs = self.config.num_envs if self.config.backend == "local" else 1
        self.envs = make_vec_env(env_id, local_envs, vectorization_mode=self.config.vectorization_mode)
        self.ray_address = ray_address
        self._rollouts: RayRollouts | None = None
        self.observation_space = self.envs.single_observation_space
        self.action_space = self.envs.single_action_space
        if self.config.num_threads:
            torch.set_num_threads(self.config.num_threads)
        if seed is not None:
            torch.manual_seed(seed)
        try:
            self.policy = policy_from_config(self.config, self.observation_space, self.action_space)
        except ReinforceError:
            self.envs.close()
            raise
        self.policy.to(self.device)
        self.optimizer = make_optimizer(self.config, self.policy.parameters())
        self.value_function: ValueFunction | None = None
        self.value_optimizer: EagerOptimizer | None = None
        if self.config.baseline == "value":
            self.value_function = ValueFunction(
                self.observation_space,
                self.config.value_hidden_sizes,
                # one set of running statistics: the value network reads them from the policy's encoder
                encoder=self.policy.encoder if self.config.normalize_observations else None,
            ).to(self.device)
            self.value_optimizer = EagerOptimizer(self.value_function.parameters(), "adam", lr=self.config.value_lr)
        self.running_mean = RunningMeanBaseline() if self.config.baseline == "running_mean" else None
        self.num_updates = 0
        self.num_env_steps = 0
        self.num_episodes = 0
        self.num_simulated_steps = 0
        self.recent_returns: deque[float] = deque(maxlen=SOLVED_WINDOW)
        self.train_time_s = 0.0
        self._checkpoint_update: int | None = None
        self._stop_signal: int | None = None

    def _state_modules(self) -> dict[str, nn.Module]:
        """The modules a checkpoint saves and `load` restores, by name (their ``state_dict``, buffers included)."""
        modules: dict[str, nn.Module] = {"policy": self.policy}
        if self.value_function is not None:
            modules["value"] = self.value_function
        if self.running_mean is not None:
            modules["running_mean"] = self.running_mean
        return modules

    def _state_optimizers(self) -> dict[str, EagerOptimizer]:
        """The optimizers a checkpoint saves and `load` restores, by name."""
        optimizers = {"policy": self.optimizer}
        if self.value_optimizer is not None:
            optimizers["value"] = self.value_optimizer
        return optimizers

    def _collection_seed(self) -> int | None:
        """The env reset seed of the next collection: derived from (seed, updates done), or None unseeded.

        Every collection starts from a seeded reset, so the environments carry no random state from one update
        to the next, and a run resumed from a checkpoint sees the same episodes as an uninterrupted one.
        """
        if self.seed is None:
            return None
        return int(np.random.SeedSequence([self.seed, self.num_updates]).generate_state(1)[0])

    def start_workers(self) -> None:
        """With ``backend="ray"``, start (or join) Ray and the rollout workers now, if not yet done.

        `learn` calls it before writing anything, and `update` when needed, so an agent that is only evaluated
        never starts Ray.

        Raises:
            ReinforceError: Ray is missing or unreachable, or has fewer CPUs than ``workers``.
        """
        if self.config.backend == "ray" and self._rollouts is None:
            self._rollouts = RayRollouts(self.env_id, self.config, address=self.ray_address)

    @property
    def solved(self) -> bool:
        """Whether the mean return of the last 100 training episodes reached the reward threshold."""
        return is_solved(self.recent_returns, self.reward_threshold)

    def update(self) -> dict[str, Any]:
        """Collect ``episodes_per_update`` complete episodes and take one policy-gradient step on them.

        Returns:
            The update's metrics (the columns of metrics.csv) plus ``episode_returns``, ``episode_lengths``
            and ``episode_truncated``: one entry per episode the update used.
        """
        self.start_workers()
        start = time.perf_counter()
        batch = self.collect_batch()
        losses = self.train_on_batch(batch)
        if self.config.normalize_observations:
            # after the step, so that one batch is collected and trained on with the same statistics
            self.policy.encoder.update_normalization(batch.observations[batch.mask])
        elapsed = time.perf_counter() - start
        self.train_time_s += elapsed
        steps = batch.num_steps
        self.num_updates += 1
        self.num_env_steps += steps
        self.num_simulated_steps += batch.num_simulated_steps
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
            "perf/step_efficiency": steps / batch.num_simulated_steps,
            "wall_time_s": self.train_time_s,
            "episode_returns": batch.episode_returns,
            "episode_lengths": batch.episode_lengths,
            "episode_truncated": batch.episode_truncated,
        }

    def collect_batch(self) -> RolloutBatch:
        """The next update's ``episodes_per_update`` episodes, from its collection seed; nothing learns.

        They come from this process's vector env, or with ``backend="ray"`` from the workers (started first).
        """
        self.start_workers()
        if self._rollouts is not None:
            return self._rollouts.collect(self.policy, episodes_per_update(self.config), self._collection_seed())
        return collect(
            self.envs, self.policy, episodes_per_update(self.config), seed=self._collection_seed(), device=self.device
        )

    def train_on_batch(self, batch: RolloutBatch) -> dict[str, float]:
        """Returns, weights, policy step(s) and baseline fitting on ``batch``; returns the loss metrics."""
        returns_TN, weights_TN = self.batch_weights(batch)
        losses = update_policy(self.policy, self.optimizer, batch, weights_TN, self.config)
        return losses | self.fit_baseline(batch, returns_TN)

    def batch_weights(self, batch: RolloutBatch) -> tuple[Tensor, Tensor]:
        """``[T, N]`` returns and log-prob weights of ``batch`` under the current baseline (nothing learns)."""
        returns_TN = batch_returns(batch, self.config, self.value_function)
        weights_TN = policy_weights(
            batch, returns_TN, self.config, value_function=self.value_function, running_mean=self.running_mean
        )
        return returns_TN, weights_TN

    def fit_baseline(self, batch: RolloutBatch, returns_TN: Tensor) -> dict[str, float]:
        """Let a stateful baseline (running mean, value network) learn from ``batch``; its loss metrics."""
        return update_baseline(
            batch,
            returns_TN,
            self.config,
            value_function=self.value_function,
            value_optimizer=self.value_optimizer,
            running_mean=self.running_mean,
        )

    def learn(
        self,
        total_steps: int,
        *,
        run_dir: str | Path | None = None,
        progress_bar: bool = False,
        checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
        tensorboard: bool = False,
    ) -> Reinforce:
        """Update until ``total_steps`` more env steps are done, or the task is solved (``stop_on_solve``).

        SIGINT and SIGTERM are caught while this runs (the previous handlers are put back afterwards): the
        current update is finished, the checkpoint and metrics are written, and `TrainingInterrupted` is
        raised. A second signal abandons the update at once (the last checkpoint stays as it was).

        Args:
            total_steps: env-step budget of this call (counted in valid steps, see `RolloutBatch.num_steps`).
            run_dir: if given, the run directory to write: config.json at the start, a row of metrics.csv
                per update and of episodes.csv per episode, a checkpoint every ``checkpoint_every`` updates
                and at the end. A directory holding this agent's own earlier checkpoint (see `resume`) is
                continued: rows after the agent's update count are dropped first, so none is duplicated.
            progress_bar: show a progress bar on stderr (mean return of the last 100 episodes, steps/s, ETA).
            checkpoint_every: write a checkpoint every this many updates (0: only at the end); needs run_dir.
            tensorboard: also write the metrics as TensorBoard scalars to ``run_dir/tensorboard`` (needs the
                ``tensorboard`` extra: ``pip install 'reinforce[tensorboard]'``).

        Returns:
            self, so that ``Reinforce(...).learn(...)`` chains.

        Raises:
            TrainingInterrupted: SIGINT or SIGTERM arrived; the checkpoint was written first.
            ReinforceError: an invalid argument, or ``run_dir`` holds another run.
        """
        total_steps = as_count("total_steps", total_steps, 0)
        checkpoint_every = as_count("checkpoint_every", checkpoint_every, 0)
        from tqdm.auto import tqdm

        target = self.num_env_steps + total_steps
        path = Path(run_dir) if run_dir is not None else None
        self.start_workers()
        if tensorboard:
            if path is None:
                raise ReinforceError("tensorboard=True needs a run_dir to write the event files to: pass run_dir")
            require_tensorboard()
        writer = None
        metrics_log = episodes_log = None
        if path is not None:
            self._claim(path)
            if tensorboard:
                purge_step = self.num_env_steps + 1 if self.num_updates else None
                writer = TensorBoardLogger(path / TENSORBOARD_DIR, purge_step=purge_step)
            self._write_config(path, target)
            trim_csv(path / METRICS_FILE, METRIC_FIELDS, self.num_updates)
            trim_csv(path / EPISODES_FILE, EPISODE_FIELDS, self.num_updates)
            metrics_log = CSVLogger(path / METRICS_FILE, METRIC_FIELDS)
            episodes_log = CSVLogger(path / EPISODES_FILE, EPISODE_FIELDS)
        bar = tqdm(
            total=target,
            initial=self.num_env_steps,  # a resumed run's bar starts where the run is
            unit="step",
            disable=not progress_bar,
            dynamic_ncols=True,
            leave=True,
            smoothing=0.1,
        )
        self._stop_signal = None
        committed: int | None = None  # the update of the last checkpoint this call wrote
        previous = self._install_signal_handlers(path)
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
                if writer is not None:
                    writer.write(metrics, step=self.num_env_steps)
                if path is not None and checkpoint_every and self.num_updates % checkpoint_every == 0:
                    self._commit(path, (metrics_log, episodes_log, writer))
                    committed = self.num_updates
                if self._stop_signal is not None:
                    break
            if path is not None and committed != self.num_updates:
                self._commit(path, (metrics_log, episodes_log, writer))
        finally:
            self._restore_signal_handlers(previous)
            bar.close()
            for log in (metrics_log, episodes_log, writer):
                if log is not None:
                    log.close()
        if self._stop_signal is not None:
            signal_number, self._stop_signal = self._stop_signal, None
            logger.info("stopped by signal %d after update %d", signal_number, self.num_updates)
            raise TrainingInterrupted(signal_number, None if path is None else str(path), self.num_updates)
        return self

    def _commit(self, run_dir: Path, logs: tuple[CSVLogger | TensorBoardLogger | None, ...]) -> None:
        """Put the metrics rows on disk, then the checkpoint that covers them (so a crash cannot lose rows)."""
        for log in logs:
            if log is not None:
                log.sync()
        self.save(run_dir)

    def _claim(self, run_dir: Path) -> None:
        """Refuse a run directory whose checkpoint belongs to another run (or to another point of this one)."""
        run_dir.mkdir(parents=True, exist_ok=True)
        if not (run_dir / CHECKPOINT_FILE).is_file():
            return
        try:
            saved = read_json(run_dir / CHECKPOINT_FILE).get("num_updates")
        except ReinforceError:
            saved = None
        if saved != self.num_updates or self._checkpoint_update != self.num_updates:
            raise ReinforceError(
                f"{run_dir} holds a checkpoint at update {saved} that this agent did not write: continue it "
                "with reinforce.resume(run_dir), or pass another run_dir"
            )

    def _install_signal_handlers(self, run_dir: Path | None) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}  # signal handlers can only be set in the main thread

        def handler(signal_number: int, frame: Any) -> None:
            if self._stop_signal is None:
                self._stop_signal = signal_number
                logger.info("signal %d: finishing the current update, then saving", signal_number)
                return
            if run_dir is None:
                raise TrainingInterrupted(signal_number, None, self.num_updates)
            raise TrainingInterrupted(signal_number, str(run_dir), self._checkpoint_update)

        previous: dict[int, Any] = {}
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            # None: the handler was not set from Python; restoring the default is the closest
            previous[signal_number] = signal.signal(signal_number, handler) or signal.SIG_DFL
        return previous

    @staticmethod
    def _restore_signal_handlers(previous: dict[int, Any]) -> None:
        for signal_number, handler in previous.items():
            signal.signal(signal_number, handler)

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

    def _evaluation_seed(self, seed: object) -> int | None:
        """``seed`` checked, or by default one derived from the agent's (offset so it differs from training)."""
        checked = check_seed(seed)
        return self.seed + EVALUATION_SEED_OFFSET if checked is None and self.seed is not None else checked

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
        seed = self._evaluation_seed(seed)
        envs = make_vec_env(self.env_id, min(episodes, 100), vectorization_mode=self.config.vectorization_mode)
        try:
            batch = collect(envs, self.policy, episodes, deterministic=deterministic, seed=seed, device=self.device)
        finally:
            envs.close()
        return _summary(batch.episode_returns, batch.episode_lengths, deterministic)

    def record_video(
        self, path: str | Path, *, episodes: int = 1, deterministic: bool = True, seed: int | None = None
    ) -> dict[str, Any]:
        """Play ``episodes`` episodes in one ``rgb_array``-rendering env and write them to an MP4 or GIF file.

        Needs the ``video`` extra (``pip install 'reinforce[video]'``). While it records, SDL (pygame's
        renderer) is told to use no display and no sound device (`reinforce.run.video.headless_sdl`).

        Args:
            path: the video file (``.mp4`` or ``.gif``).
            episodes: number of episodes, recorded one after the other.
            deterministic: act with the distribution's mode (the default) or sample.
            seed: env seed of the first episode; by default derived from the agent's seed, as in `evaluate`.

        Returns:
            The summary of `evaluate` over the recorded episodes, plus ``frames`` (the number written).
        """
        from reinforce.run.video import check_video_path, headless_sdl

        path = Path(path)
        episodes = as_count("episodes", episodes, 1)
        seed = self._evaluation_seed(seed)
        check_video_path(path)
        with headless_sdl():
            return self._record(path, episodes, deterministic, seed)

    def _record(self, path: Path, episodes: int, deterministic: bool, seed: int | None) -> dict[str, Any]:
        from reinforce.run.video import VideoWriter

        env = gymnasium.make(self.env_id, render_mode="rgb_array")
        returns: list[float] = []
        lengths: list[int] = []
        try:
            writer = VideoWriter(path, fps=float(env.metadata.get("render_fps") or 30))
            try:
                for episode in range(episodes):
                    observation, _ = env.reset(seed=seed if episode == 0 else None)
                    self._append_frame(writer, env.render())
                    total, length, done = 0.0, 0, False
                    while not done:
                        observation, reward, terminated, truncated, _ = env.step(
                            self.predict(observation, deterministic)
                        )
                        self._append_frame(writer, env.render())
                        total += float(reward)
                        length += 1
                        done = bool(terminated or truncated)
                    returns.append(total)
                    lengths.append(length)
            finally:
                writer.close()
        finally:
            env.close()
        return {**_summary(returns, lengths, deterministic), "frames": writer.num_frames}

    def _append_frame(self, writer: Any, frame: Any) -> None:
        if not isinstance(frame, np.ndarray) or frame.ndim != 3:
            raise ReinforceError(f"{self.env_id} does not render rgb_array frames: it cannot be recorded")
        writer.append(frame)

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
        """Write a checkpoint into ``run_dir`` (and config.json if absent): everything `resume` needs.

        The state file (every module and optimizer of `_state_modules` / `_state_optimizers`, and torch's RNG
        state) is written first under a new name, then checkpoint.json, which names it with its SHA-256, is
        renamed into place: that rename is the commit. Older state files are deleted afterwards.
        """
        path = Path(run_dir)
        path.mkdir(parents=True, exist_ok=True)
        if not (path / CONFIG_FILE).exists():
            self._write_config(path, total_steps=self.num_env_steps)
        tensors, structure = pack_state(self._state_modules(), self._state_optimizers())
        state_file, sha256 = save_state_file(path, self.num_updates, tensors)
        write_json(
            path / CHECKPOINT_FILE,
            {
                "format_version": FORMAT_VERSION,
                "reinforce_version": library_versions()["reinforce"],
                **{key: getattr(self, key) for key in COUNTERS},
                "train_time_s": self.train_time_s,
                "solved": self.solved,
                "recent_returns": list(self.recent_returns),
                "state_file": state_file,
                "state_sha256": sha256,
                **structure,
            },
        )
        self._checkpoint_update = self.num_updates
        remove_stale_files(path, keep=state_file)
        logger.debug("checkpoint at update %d written to %s", self.num_updates, path)

    def close(self) -> None:
        """Close the environments (and stop the Ray workers, if any)."""
        self.envs.close()
        if self._rollouts is not None:
            self._rollouts.close()
            self._rollouts = None


def _summary(returns: list[float], lengths: list[int], deterministic: bool) -> dict[str, Any]:
    """The summary of `Reinforce.evaluate` for episodes with these returns and lengths."""
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
    }


def _counters(checkpoint: dict[str, Any], path: Path) -> dict[str, int]:
    counters = {}
    for key in COUNTERS:
        value = require(checkpoint, key, int, path)
        if value < 0:
            raise ReinforceError(f"{path} has a negative {key!r}: the run directory is damaged")
        counters[key] = value
    return counters


def _recent_returns(checkpoint: dict[str, Any], path: Path) -> list[float]:
    values = require(checkpoint, "recent_returns", list, path)
    if len(values) > SOLVED_WINDOW or not all(
        isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) for value in values
    ):
        raise ReinforceError(
            f"{path} has an invalid 'recent_returns' (at most {SOLVED_WINDOW} finite numbers): the run is damaged"
        )
    return [float(value) for value in values]


def _check_run_dir(path: Path) -> None:
    if not path.is_dir():
        problem = "is not a directory" if path.exists() else "does not exist"
        raise ReinforceError(f"run directory {path} {problem}: pass the directory `reinforce train` wrote")


def _check_format(document: dict[str, Any], path: Path) -> None:
    if document.get("format_version") != FORMAT_VERSION:
        raise ReinforceError(
            f"{path} has format_version {document.get('format_version')!r}, this reinforce reads "
            f"{FORMAT_VERSION}: install the reinforce version that wrote it"
        )


def _agent_from_config(path: Path, device: str | None, ray_address: str | None = None) -> Reinforce:
    """A fresh agent (update 0) built from ``path/config.json``, validated like CLI input."""
    config = read_json(path / CONFIG_FILE)
    _check_format(config, path / CONFIG_FILE)
    env_id = require(config, "env_id", str, path / CONFIG_FILE)
    hyperparameters = require(config, "hyperparameters", dict, path / CONFIG_FILE)
    # bad overrides are the caller's, not config.json's
    check_ray_address(ray_address, hyperparameters.get("backend", "local"))
    if device is not None:
        resolve_device(device)
        hyperparameters = {**hyperparameters, "device": device}
    try:
        return Reinforce(env_id, seed=config.get("seed"), ray_address=ray_address, **hyperparameters)
    except ReinforceError as exc:
        raise ReinforceError(f"{path / CONFIG_FILE} is invalid: {exc}") from None


def _read_checkpoint(path: Path) -> tuple[dict[str, Any], str, dict[str, torch.Tensor]]:
    """checkpoint.json, the name of its state file and that file's tensors (hash checked).

    A training process may commit a newer checkpoint, and delete the state file the older one names, between
    the two reads; that case is retried, so a run can be loaded while it trains.
    """
    file = path / CHECKPOINT_FILE
    for attempt in range(3):
        checkpoint = read_json(file)
        _check_format(checkpoint, file)
        state_file = require(checkpoint, "state_file", str, file)
        sha256 = require(checkpoint, "state_sha256", str, file)
        if Path(state_file).name != state_file or not state_file.endswith(".safetensors"):
            raise ReinforceError(f"{file} names a state file {state_file!r} outside the run: the run is damaged")
        try:
            return checkpoint, state_file, load_tensors(path / state_file, sha256=sha256)
        except ReinforceError:
            committed_since = read_json(file).get("state_file") != state_file
            if attempt == 2 or not committed_since:
                raise
    raise AssertionError("unreachable")


def _restore_checkpoint(agent: Reinforce, path: Path) -> None:
    """Load ``path``'s checkpoint into ``agent``, checking every value; on an error the agent is unusable."""
    file = path / CHECKPOINT_FILE
    checkpoint, state_file, tensors = _read_checkpoint(path)
    counters = _counters(checkpoint, file)
    try:
        train_time_s = float(require(checkpoint, "train_time_s", (int, float), file))
    except OverflowError:
        train_time_s = math.inf
    if not math.isfinite(train_time_s) or train_time_s < 0:
        raise ReinforceError(f"{file} has an invalid 'train_time_s': the run directory is damaged")
    recent_returns = _recent_returns(checkpoint, file)
    unknown = sorted(key for key in tensors if not key.startswith(("module.", "optimizer.", "rng.")))
    if unknown:
        raise ReinforceError(f"{path / state_file} holds unknown tensors {unknown[:3]}: the run is damaged")
    restore_modules(agent._state_modules(), tensors, path / state_file)
    restore_optimizers(agent._state_optimizers(), checkpoint.get("optimizers"), tensors, file)
    restore_rng(tensors, path / state_file)
    for key, value in counters.items():
        setattr(agent, key, value)
    agent.train_time_s = train_time_s
    agent.recent_returns.clear()
    agent.recent_returns.extend(recent_returns)
    agent._checkpoint_update = agent.num_updates


def load(run_dir: str | Path, *, device: str | None = None, ray_address: str | None = None) -> Reinforce:
    """Rebuild the agent saved in ``run_dir`` from its config.json, checkpoint.json and state file.

    No pickle: the tensors come from safetensors (after their SHA-256 is checked against checkpoint.json) and
    the rest from JSON, all checked before use; the hyperparameters are validated exactly like CLI input. (An
    env id of the form ``module:Env-v0`` imports ``module``, exactly as ``gymnasium.make`` would.) The loaded
    agent has the policy, the optimizer state, torch's RNG state, the counters and the last 100 returns of the
    checkpoint, so training it further with the same seed gives what the uninterrupted run would have.

    Args:
        run_dir: a directory written by `Reinforce.save` or ``reinforce train``.
        device: overrides the saved ``device`` (e.g. ``"cpu"`` for a run trained on a GPU).
        ray_address: the Ray cluster a ``backend="ray"`` run trains on if it is trained further (see `Reinforce`).

    Raises:
        ReinforceError: the directory or one of its files is missing or damaged, or it has no checkpoint yet.
    """
    path = Path(run_dir)
    _check_run_dir(path)
    if (path / CONFIG_FILE).is_file() and not (path / CHECKPOINT_FILE).exists():
        raise ReinforceError(
            f"{path} has no checkpoint yet (training stopped before the first one): "
            f"resume it with `reinforce train --resume {path}`"
        )
    agent = _agent_from_config(path, device, ray_address)
    try:
        _restore_checkpoint(agent, path)
    except BaseException:
        agent.close()
        raise
    return agent


def resume(run_dir: str | Path, *, device: str | None = None, ray_address: str | None = None) -> Reinforce:
    """The agent of ``run_dir`` at its last checkpoint, ready to continue with ``learn(..., run_dir=run_dir)``.

    Like `load`, except that a run stopped before its first checkpoint (config.json but no checkpoint.json)
    restarts from update 0 with its saved config, which is where a seeded run starts anyway.

    Example:
        >>> agent = reinforce.resume("runs/cartpole")  # doctest: +SKIP
        >>> agent.learn(300_000 - agent.num_env_steps, run_dir="runs/cartpole")  # doctest: +SKIP

    Raises:
        ReinforceError: the directory or one of its files is missing or damaged.
    """
    path = Path(run_dir)
    _check_run_dir(path)
    if (path / CHECKPOINT_FILE).exists():
        return load(path, device=device, ray_address=ray_address)
    return _agent_from_config(path, device, ray_address)
