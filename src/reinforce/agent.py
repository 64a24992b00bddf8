"""The `Reinforce` agent: build, collect -> returns -> update, predict, evaluate, save."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium
import numpy as np
import torch
from gymnasium.vector import VectorEnv
from torch import Tensor, nn

from reinforce.config import DEFAULT_CHECKPOINT_EVERY, Hyperparameters, TrainConfig, check_seed
from reinforce.core.batch import RolloutBatch
from reinforce.core.build import (
    SchedulerFactory,
    UserObjects,
    build_learner,
    check_learning_rates,
    split_optimizer,
    user_objects,
)
from reinforce.core.device import in_config_threads, resolve_device
from reinforce.core.loss import update_policy
from reinforce.core.networks import Network
from reinforce.core.optim import Optimizer
from reinforce.core.policies import Policy
from reinforce.core.textbook import per_step_weights
from reinforce.core.weights import batch_returns, credit, policy_weights
from reinforce.evaluation import evaluate_policy, record_policy_video
from reinforce.rollout.actions import predict_actions
from reinforce.rollout.environments import Environments, collection_seed
from reinforce.rollout.envs import EnvLike, Wrapper, env_source
from reinforce.rollout.observations import policy_observation_space
from reinforce.run.checkpoint import COUNTERS
from reinforce.run.files import run_path
from reinforce.run.metrics import SOLVED_WINDOW, is_solved, update_metrics
from reinforce.settings import resolve
from reinforce.snapshots import save_agent

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from reinforce.callbacks import Callback  # for the annotation of `Reinforce.learn` only


class Reinforce:
    """REINFORCE on a Gymnasium environment, in the conventions of Stable-Baselines3.

    Creating an agent with a seed seeds torch's global random generator; nothing else process-wide changes.
    `learn`, `update` and `evaluate` run with ``num_threads`` torch CPU threads (default 1, fastest for small
    networks; 0 leaves torch's count) and put the previous count back when they return.

    Example:
        >>> agent = Reinforce("CartPole-v1", seed=0, num_envs=8)
        >>> agent.learn(total_steps=20_000)  # doctest: +SKIP
        >>> agent.evaluate(episodes=10)["mean_return"]  # doctest: +SKIP

    Args:
        env: the environment (`reinforce.rollout.envs.EnvLike`): a registered id (``"module:Env-v0"`` imports
            ``module``, also from the current directory), a ``gymnasium.envs.registration.EnvSpec``, a callable
            returning a ``gymnasium.Env`` (a class, a function, a lambda: called once per environment), or a
            ``gymnasium.vector.VectorEnv`` with next-step autoreset, used as it is (``num_envs`` becomes its
            size). config.json records how to rebuild it where that is possible (see `reinforce.load`).
        config: a complete `TrainConfig` to train with (the values shipped for ``env`` and ``preset`` are
            then not applied); None: `reinforce.settings.resolve` of ``env``'s id and ``preset``.
        seed: seeds torch (the policy's initial weights and sampling) and the environments; None for random.
        preset: a named set of values shipped with the package for ``env_id`` (presets.yaml, e.g.
            ``"sample-efficient"`` for CartPole-v1), over the values shipped for ``env_id``.
        ray_address: with ``backend="ray"``, the Ray cluster to join (``HOST:PORT`` or ``"auto"``); None starts
            a local Ray with this machine's CPUs. Ray and the workers start at the first update.
        env_kwargs: keyword arguments for ``gymnasium.make`` (an id or a spec) or for the callable.
        wrappers: callables ``Env -> Env`` (wrapper classes, functions) applied to every environment, in order.
        network: a ``torch.nn.Module`` (or a function returning one) as the policy's body: it maps the
            encoder's features ``[B, F_in]`` to ``[B, F]``, and a linear head for the action space follows
            (``hidden_sizes`` is then unused). Saved with the run; `reinforce.load` needs it given again.
        value_network: the same for the value network of ``baseline="value"`` (a linear head to one value).
        policy: a whole policy, a ``torch.nn.Module`` mapping raw observations ``[B, *obs_shape]`` to a
            ``torch.distributions.Distribution`` whose samples are the env's actions.
        optimizer_kwargs: with ``optimizer=`` a torch.optim class or a factory ``(parameters, lr=, **kwargs)``
            (instead of a name: adam, sgd, rmsprop), its keyword arguments; ``lr`` stays the ``lr`` setting.
            config.json records an importable class and its kwargs, so `reinforce.load` rebuilds it.
        lr_scheduler: a function from the policy's optimizer to a torch LR scheduler (e.g. ``lambda opt:
            torch.optim.lr_scheduler.StepLR(opt, 50)``), stepped after every update and saved in checkpoints;
            give it again to `reinforce.load` / `reinforce.resume` to train further.
        **overrides: `TrainConfig` fields (``num_envs``, ``gamma``, ``lr``, ...) over everything else.

    Raises:
        ReinforceError: an unknown hyperparameter or environment, an env of another kind than the above, an
            invalid value, an unsupported space.
    """

    def __init__(
        self,
        env: EnvLike,
        *,
        config: TrainConfig | None = None,
        seed: int | None = None,
        preset: str | None = None,
        ray_address: str | None = None,
        env_kwargs: Mapping[str, Any] | None = None,
        wrappers: Sequence[Wrapper] | None = None,
        network: Network | None = None,
        value_network: Network | None = None,
        policy: nn.Module | None = None,
        optimizer_kwargs: Mapping[str, Any] | None = None,
        lr_scheduler: SchedulerFactory | None = None,
        **overrides: Unpack[Hyperparameters],
    ) -> None:
        source = env_source(env, env_kwargs=env_kwargs, wrappers=wrappers)
        values, factory = split_optimizer(dict(overrides))
        custom = user_objects(network, value_network, policy, factory, optimizer_kwargs, lr_scheduler)
        resolved = resolve(source.env_id, preset=preset, overrides=values, base=config)
        vector_env = source.vector_env
        if vector_env is not None and vector_env.num_envs != resolved.num_envs:
            resolved = TrainConfig.from_dict({**resolved.to_dict(), "num_envs": vector_env.num_envs})
        own_modules = any(module is not None for module in (network, value_network, policy))
        environments = Environments.open(source, resolved, ray_address=ray_address, custom_modules=own_modules)
        envs = environments.require()
        try:
            spaces = (envs.unwrapped.single_observation_space, envs.single_action_space)
            self._build(source.name, resolved, seed, *spaces, custom)
        except BaseException:
            environments.close()
            raise
        self.environments = environments
        threshold = self.config.reward_threshold
        self.reward_threshold = threshold if threshold is not None else source.reward_threshold

    @classmethod
    def from_spaces(
        cls,
        observation_space: gymnasium.Space[Any],
        action_space: gymnasium.Space[Any],
        *,
        config: TrainConfig | None = None,
        seed: int | None = None,
        name: str = "environment",
        network: Network | None = None,
        value_network: Network | None = None,
        policy: nn.Module | None = None,
        optimizer_kwargs: Mapping[str, Any] | None = None,
        lr_scheduler: SchedulerFactory | None = None,
        **overrides: Unpack[Hyperparameters],
    ) -> Reinforce:
        """An agent for these spaces without an environment: it predicts, saves and exports, but cannot learn.

        `reinforce.load` gives one where a run's environment cannot be made here.

        Args:
            observation_space: the environment's single observation space (Dict and Tuple are flattened).
            action_space: its single action space.
            config: the whole config; None: `TrainConfig`'s defaults.
            seed: torch's seed for the initial weights.
            name: how messages call the environment.
            network: as `Reinforce`'s.
            value_network: as `Reinforce`'s.
            policy: as `Reinforce`'s.
            optimizer_kwargs: as `Reinforce`'s.
            lr_scheduler: as `Reinforce`'s.
            **overrides: `TrainConfig` fields over ``config``.
        """
        agent = cls.__new__(cls)
        values, factory = split_optimizer(dict(overrides))
        custom = user_objects(network, value_network, policy, factory, optimizer_kwargs, lr_scheduler)
        agent._build(name, resolve(None, overrides=values, base=config), seed, observation_space, action_space, custom)
        agent.environments = Environments()
        agent.reward_threshold = agent.config.reward_threshold
        return agent

    def _build(
        self,
        name: str,
        config: TrainConfig,
        seed: object,
        observation_space: gymnasium.Space[Any],
        action_space: gymnasium.Space[Any],
        modules: UserObjects,
    ) -> None:
        """Everything but the environments: config, seed, the learner (with the user's ``modules``), counters."""
        self.config = config
        self.env_id = name
        """The environment's id, or the name of the callable or vector env it came from."""
        self.seed = check_seed(seed)
        self.device = resolve_device(self.config.device)
        self.env_observation_space = observation_space
        """The environment's single observation space, as `predict` takes it."""
        self.observation_space = policy_observation_space(observation_space)
        """The policy's observation space (Dict, Tuple, MultiDiscrete and MultiBinary flattened into a Box)."""
        self.action_space = action_space
        if self.seed is not None:
            torch.manual_seed(self.seed)
        learner = build_learner(self.config, self.observation_space, action_space, modules, self.device)
        self.policy: Policy = learner.policy
        self.optimizer: Optimizer = learner.optimizer
        self.lr_scheduler: Any = learner.lr_scheduler
        """The user's learning-rate scheduler of the policy's optimizer, stepped after every update."""
        self.baseline = learner.baseline
        self.custom_modules = learner.custom_modules
        """Which of ``network``, ``value_network`` and ``policy`` the user gave (config.json records the names)."""
        self.optimizer_record = learner.optimizer_record
        """How config.json records a user's optimizer (None for the built-in ones)."""
        self.needs_for_training: str | None = None
        """What `reinforce.load` could not restore for training further (the run's lr_scheduler), or None."""
        self.num_updates = 0
        self.num_env_steps = 0
        self.num_episodes = 0
        self.num_simulated_steps = 0
        self.recent_returns: deque[float] = deque(maxlen=SOLVED_WINDOW)
        self.train_time_s = 0.0
        self.checkpoint_update: int | None = None
        """The update count of the last checkpoint this agent wrote or was loaded from."""

    @property
    def envs(self) -> VectorEnv[Any, Any, Any] | None:
        """The agent's vector env (`reinforce.rollout.environments.Environments`), or None without one."""
        return self.environments.envs

    @property
    def counters(self) -> dict[str, int]:
        """The counters a checkpoint saves: updates, env steps (valid and simulated), episodes."""
        return {key: getattr(self, key) for key in COUNTERS}

    def state(self) -> tuple[dict[str, nn.Module], dict[str, Optimizer]]:
        """The modules and optimizers that a checkpoint saves and `load` restores, by name."""
        modules, optimizers = self.baseline.state()
        return {"policy": self.policy, **modules}, {"policy": self.optimizer, **optimizers}

    @property
    def solved(self) -> bool:
        """Whether the mean return of the last 100 training episodes reached the reward threshold."""
        return is_solved(self.recent_returns, self.reward_threshold)

    @in_config_threads
    def update(
        self, batch: RolloutBatch | None = None, *, stepped: tuple[Tensor, dict[str, float]] | None = None
    ) -> dict[str, Any]:
        """Collect ``episodes_per_update`` complete episodes and take one policy-gradient step on them.

        Args:
            batch: the update's episodes, collected elsewhere with this agent's policy (a population's batched
                collection, `reinforce.population`); None collects them (`collect_batch`).
            stepped: the policy step on ``batch`` taken already (a population's batched step): the batch's
                returns ``[T, N]`` and the step's loss metrics; the update does the rest (baseline, counters).

        Returns:
            The update's metrics (the columns of metrics.csv) plus ``episode_returns``, ``episode_lengths``
            and ``episode_truncated``: one entry per episode the update used.
        """
        if batch is None:  # Ray's start, if any, is not training time; an agent only evaluated never starts it
            self.environments.start_workers(self.config)
        start = time.perf_counter()
        batch = self.collect_batch() if batch is None else batch
        losses = self.train_on_batch(batch) if stepped is None else stepped[1] | self.fit_baseline(batch, stepped[0])
        if self.lr_scheduler is not None:
            self.lr_scheduler.step()
            check_learning_rates(self.optimizer, "the lr_scheduler")
        if self.config.normalize_observations:
            # after the step, so that one batch is collected and trained on with the same statistics
            self.policy.encoder.update_normalization(batch.observations[batch.mask])
        elapsed = time.perf_counter() - start
        self.train_time_s += elapsed
        self.num_updates += 1
        self.num_env_steps += batch.num_steps
        self.num_simulated_steps += batch.num_simulated_steps
        self.num_episodes += len(batch.episode_returns)
        self.recent_returns.extend(batch.episode_returns)
        return update_metrics(batch, losses, self.counters, self.recent_returns, elapsed, self.train_time_s)

    def collect_batch(self) -> RolloutBatch:
        """The next update's ``episodes_per_update`` episodes, from its collection seed; nothing learns.

        They come from this process's vector env, or with ``backend="ray"`` from the workers (started first).
        """
        seed = collection_seed(self.seed, self.num_updates)
        return self.environments.collect(self.policy, config=self.config, seed=seed, device=self.device)

    def train_on_batch(self, batch: RolloutBatch) -> dict[str, float]:
        """Returns, weights, policy step(s), then the baseline's fit on ``batch``; returns the loss metrics."""
        returns_TN, weights_TN = self.batch_weights(batch)
        losses = update_policy(self.policy, self.optimizer, batch, weights_TN, self.config)
        return losses | self.fit_baseline(batch, returns_TN)

    def fit_baseline(self, batch: RolloutBatch, returns_TN: Tensor) -> dict[str, float]:
        """Let the baseline learn from ``batch`` (after the policy step); its metrics."""
        return self.baseline.fit(batch, credit(batch, returns_TN, self.config), returns_TN)

    def batch_weights(self, batch: RolloutBatch) -> tuple[Tensor, Tensor]:
        """``[T, N]`` returns and log-prob weights of ``batch`` under the current baseline (nothing learns)."""
        textbook = per_step_weights(batch, self.config, self.baseline)  # the same floats, in NumPy
        if textbook is not None:
            return textbook
        returns_TN = batch_returns(batch, self.config, self.baseline)
        return returns_TN, policy_weights(batch, returns_TN, self.config, self.baseline)

    @in_config_threads
    def learn(
        self,
        total_steps: int,
        *,
        run_dir: str | Path | None = None,
        progress_bar: bool = False,
        checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
        tensorboard: bool = False,
        callback: Callback | Sequence[Callback] | None = None,
    ) -> Reinforce:
        """Update until ``total_steps`` more env steps are done, or solved (``stop_on_solve``), or called off.

        A callback that returns False calls the training off. The loop is `reinforce.training.learn` (arguments,
        callbacks, signals, run directory and errors are described there). SIGINT and SIGTERM finish the current
        update, write the checkpoint and raise `TrainingInterrupted`.

        Returns:
            self, so that ``Reinforce(...).learn(...)`` chains.
        """
        from reinforce import training  # the loop is the layer above the agent; it calls back into it

        return training.learn(
            self,
            total_steps,
            run_dir=run_dir,
            progress_bar=progress_bar,
            checkpoint_every=checkpoint_every,
            tensorboard=tensorboard,
            callback=callback,
        )

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = False,
        action_mask: Any = None,
    ) -> tuple[np.ndarray[Any, Any], None]:
        """Actions for one observation or a batch of them, NumPy in and out, as Stable-Baselines3's ``predict``.

        Example:
            >>> action, _ = agent.predict(observation, deterministic=True)  # doctest: +SKIP

        Args:
            observation: an observation of the env's single observation space, or a batch ``[B, ...]``.
            state: a recurrent policy's state in Stable-Baselines3; these policies have none (ignored).
            episode_start: ignored, as ``state``.
            deterministic: take the distribution's mode (argmax / Gaussian mean) instead of sampling.
            action_mask: Discrete and MultiDiscrete actions: the env's ``info["action_mask"]`` for the observation
                (0/1, ``(n,)``; MultiDiscrete: one array per component or their concatenation), or ``[B, width]``
                for a batch; the actions it excludes are never returned. None: every action allowed.

        Returns:
            One action (shape of the single action space) or a batch of ``B`` actions, as the env expects
            them (Box actions clipped or squashed to the bounds), and the next state: always None.

        Raises:
            ReinforceError: the observation is not one of the observation space or a batch of them (the
                message names the expected shape), or holds NaN or infinities; an action mask of the wrong
                shape, for a space that takes none, or that allows no action.
        """
        spaces = (self.env_observation_space, self.action_space)
        actions = predict_actions(
            self.policy, *spaces, observation, deterministic=deterministic, action_mask=action_mask, device=self.device
        )
        return actions, None

    @in_config_threads
    def evaluate(self, episodes: int = 100, deterministic: bool = True, seed: int | None = None) -> dict[str, Any]:
        """Run ``episodes`` complete episodes of the agent's env in parallel, without learning; summarise them.

        `evaluate_policy` on the agent's own environment (see there for the arguments and the summary).
        """
        return evaluate_policy(self, episodes=episodes, deterministic=deterministic, seed=seed)

    def record_video(
        self, path: str | Path, *, episodes: int = 1, deterministic: bool = True, seed: int | None = None
    ) -> dict[str, Any]:
        """Record ``episodes`` episodes, one after the other, to an MP4 or GIF file (needs ``reinforce[video]``).

        The arguments are `evaluate`'s (see `reinforce.evaluation.record_policy_video`); returns the summary of
        the recorded episodes, plus ``frames`` (the number written).
        """
        return record_policy_video(self, Path(path), episodes=episodes, deterministic=deterministic, seed=seed)

    def save(self, run_dir: str | Path) -> None:
        """Write a checkpoint into ``run_dir`` (and config.json if absent): everything `resume` needs.

        See `reinforce.run.checkpoint.write_checkpoint`: a kill at any moment leaves a loadable run. Other
        files in ``run_dir`` are left alone; a checkpoint there that this agent did not write is refused.

        Raises:
            ReinforceError: ``run_dir`` is not a directory path, is a file, or holds another run's checkpoint.
        """
        save_agent(self, run_path(run_dir, writing=True))

    def close(self) -> None:
        """Close the environments (and stop the Ray workers, if any)."""
        self.environments.close()
