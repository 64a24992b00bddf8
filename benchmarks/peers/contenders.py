"""One contender, one seed: train on CartPole-v1 until the common solve criterion holds, print the result as JSON.

`run.py` starts this once per (contender, seed), in its own process, with the interpreter of the environment
the contender lives in: the project's `.venv` for reinforce and the two single-file loops, `benchmarks/peers/.venv`
for Tianshou and Stable-Baselines3. Each contender imports its library (torch included) itself: that time is
`import_s` (NumPy and Gymnasium, which all share, are imported before); building the agent (networks, optimizer,
environments, and Tianshou's Numba compilation) is `setup_s`; neither is training.

The criterion (`Judge`): after an update that brings the env steps to the next multiple of `--eval-every` or past it,
the policy at that moment plays 100 CartPole-v1 episodes greedily (the mode of its action distribution), in one
vector env reset with the same seed at every check; the run is solved when their mean return is >= 475. So each
contender is checked at its own update boundaries, at most once per `--eval-every` env steps. `train_s` is the wall
clock from the first training step to the check that found it solved, less the time of the checks before it;
`eval_s` is the time of all checks. Env steps are the transitions the contender trained on: for reinforce,
`num_env_steps`, without the idle steps its vector env also simulates (`simulated_steps` in the result, see
docs/concepts.md); for the others every step their environments took.

    python contenders.py CONTENDER --seed 0 [--max-steps 300000] [--max-seconds 300] [--eval-every 1000]
                         [--num-threads 1]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

ENV_ID = "CartPole-v1"
EVAL_EPISODES = 100
SOLVED_MEAN_RETURN = 475.0
EVAL_SEED_OFFSET = 1_000_000  # evaluation episodes start from other states than training's
REPO = Path(__file__).resolve().parents[2]
RESULT_PREFIX = "RESULT "

Act = Callable[[np.ndarray], np.ndarray]  # a batch of observations -> a batch of greedy actions


class Judge:
    """The common solve criterion and the clocks; contenders call `check` after every update."""

    def __init__(self, seed: int, *, eval_every: int, max_steps: int, max_seconds: float) -> None:
        self.eval_envs = gym.make_vec(ENV_ID, num_envs=EVAL_EPISODES, vectorization_mode="vector_entry_point")
        self.eval_seed = EVAL_SEED_OFFSET + seed
        self.eval_every = eval_every
        self.max_steps = max_steps
        self.max_seconds = max_seconds
        self.next_check = eval_every
        self.created = time.perf_counter()
        self.imported = self.started = self.created
        self.eval_s = 0.0
        self.evaluations: list[tuple[int, float]] = []  # (env steps, mean return)
        self.solved = False
        self.stopped_at = (0, 0.0)  # (env steps, training seconds) when `check` said stop
        self.extras: dict[str, Any] = {}  # anything else a contender reports

    def mark_imported(self) -> None:
        """The contender's library is imported; setup starts."""
        self.imported = time.perf_counter()

    def begin(self) -> None:
        """Setup is done; training starts."""
        self.started = time.perf_counter()

    def train_seconds(self) -> float:
        return time.perf_counter() - self.started - self.eval_s

    def check(self, env_steps: int, act: Act, *, final: bool = False) -> bool:
        """Evaluate if due (or at the end of the budget); True when training must stop: solved or out of budget."""
        train_s = self.train_seconds()
        out_of_budget = final or env_steps >= self.max_steps or train_s >= self.max_seconds
        last_checked = self.evaluations[-1][0] if self.evaluations else None
        if env_steps >= self.next_check or (out_of_budget and last_checked != env_steps):
            mean_return = self.evaluate(act)
            self.evaluations.append((env_steps, mean_return))
            self.next_check = (env_steps // self.eval_every + 1) * self.eval_every
            self.solved = mean_return >= SOLVED_MEAN_RETURN
        if self.solved or out_of_budget:
            self.stopped_at = (env_steps, train_s)
            return True
        return False

    def evaluate(self, act: Act) -> float:
        """Mean return of one greedy episode in each of the 100 sub-envs."""
        start = time.perf_counter()
        observations, _ = self.eval_envs.reset(seed=self.eval_seed)
        returns = np.zeros(EVAL_EPISODES)
        running = np.ones(EVAL_EPISODES, dtype=bool)
        while running.any():
            actions = np.asarray(act(observations))
            if actions.shape != (EVAL_EPISODES,):  # a scalar would be broadcast to every sub-env
                raise ValueError(f"act returned actions of shape {actions.shape}, expected ({EVAL_EPISODES},)")
            observations, rewards, terminated, truncated, _ = self.eval_envs.step(actions)
            returns += rewards * running  # a finished sub-env autoresets: ignore it from then on
            running &= ~(terminated | truncated)
        self.eval_s += time.perf_counter() - start
        return float(returns.mean())

    def result(self) -> dict[str, Any]:
        """Env steps and training seconds to solve (or spent, if unsolved), and the evaluation record."""
        env_steps, train_s = self.stopped_at
        returns = [mean_return for _, mean_return in self.evaluations]
        return {
            "solved": self.solved,
            "env_steps": env_steps,
            "train_s": train_s,
            "eval_s": self.eval_s,
            "evaluations": len(self.evaluations),
            "last_eval": returns[-1] if returns else None,
            "best_eval": max(returns) if returns else None,
            "import_s": self.imported - self.created,
            "setup_s": self.started - self.imported,
            **self.extras,
        }


def set_num_threads(num_threads: int) -> None:
    """Use ``num_threads`` torch threads; 0 leaves torch's default."""
    import torch

    if num_threads:
        torch.set_num_threads(num_threads)


def train_reinforce(seed: int, judge: Judge, num_threads: int, preset: str | None = None) -> None:
    """reinforce for CartPole-v1 (`reinforce train CartPole-v1 [--preset P]`), driven update by update."""
    from reinforce import Reinforce

    judge.mark_imported()
    agent = Reinforce(ENV_ID, seed=seed, preset=preset, **({"num_threads": num_threads} if num_threads else {}))

    def act(observations: np.ndarray) -> np.ndarray:
        return agent.predict(observations, deterministic=True)[0]

    judge.begin()
    while True:
        agent.update()
        if judge.check(agent.num_env_steps, act):
            break
    judge.extras["simulated_steps"] = agent.num_simulated_steps
    agent.close()


def train_tianshou_reinforce(seed: int, judge: Judge, num_threads: int) -> None:
    """Tianshou 2.0.1's `Reinforce` with the settings of its CartPole example, test/discrete/test_reinforce.py.

    8 training envs (DummyVectorEnv), MLP 64-64 with a softmax head and orthogonal init (gain sqrt 2), Categorical,
    Adam lr 1e-3, gamma 0.95, return standardisation on, 8 episodes per collection, 2 passes in mini-batches of 64,
    buffer 20,000. Each step is OnPolicyTrainer's training step (collect, update on the whole buffer, reset the
    buffer); the trainer itself is not used because its test schedule (each epoch of 40,000 steps, or when the
    training returns reach the threshold) is not the common criterion.
    """
    import torch
    from gymnasium.spaces import Box
    from tianshou.algorithm.modelfree.reinforce import ProbabilisticActorPolicy, Reinforce
    from tianshou.algorithm.optim import AdamOptimizerFactory
    from tianshou.data import Collector, CollectStats, VectorReplayBuffer
    from tianshou.env import DummyVectorEnv
    from tianshou.utils.net.common import Net
    from tianshou.utils.space_info import SpaceInfo
    from tianshou.utils.torch_utils import policy_within_training_step

    judge.mark_imported()
    set_num_threads(num_threads)
    env = gym.make(ENV_ID)
    train_envs = DummyVectorEnv([lambda: gym.make(ENV_ID) for _ in range(8)])
    np.random.seed(seed)  # noqa: NPY002  (as the example: NumPy's global generator too)
    torch.manual_seed(seed)
    train_envs.seed(seed)
    space_info = SpaceInfo.from_env(env)
    net = Net(
        state_shape=space_info.observation_info.obs_shape,
        action_shape=space_info.action_info.action_shape,
        hidden_sizes=[64, 64],
        softmax=True,
    )
    policy = ProbabilisticActorPolicy(
        actor=net,
        dist_fn=torch.distributions.Categorical,
        action_space=env.action_space,
        action_scaling=isinstance(env.action_space, Box),
    )
    algorithm = Reinforce(policy=policy, optim=AdamOptimizerFactory(lr=1e-3), gamma=0.95, return_standardization=True)
    for module in net.modules():
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.orthogonal_(module.weight, gain=np.sqrt(2))
            torch.nn.init.zeros_(module.bias)
    collector = Collector[CollectStats](algorithm, train_envs, VectorReplayBuffer(20_000, len(train_envs)))
    collector.reset()

    def act(observations: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return net(observations)[0].argmax(-1).numpy()

    env_steps = 0
    judge.begin()
    while True:
        with policy_within_training_step(policy):
            stats = collector.collect(n_episode=8)
            algorithm.update(buffer=collector.buffer, batch_size=64, repeat=2)
        collector.reset_buffer(keep_statistics=True)
        env_steps += stats.n_collected_steps
        if judge.check(env_steps, act):
            break
    train_envs.close()


# RL Baselines3 Zoo's CartPole-v1 entries (DLR-RM/rl-baselines3-zoo, hyperparams/a2c.yml and hyperparams/ppo.yml);
# "lin_X" there is rl_zoo3.utils.linear_schedule(X): X times the remaining progress, 1 -> 0 over n_timesteps.
ZOO_A2C = {"n_envs": 8, "n_timesteps": 500_000, "kwargs": {"ent_coef": 0.0}}
ZOO_PPO = {
    "n_envs": 8,
    "n_timesteps": 100_000,
    "kwargs": {"n_steps": 32, "batch_size": 256, "gae_lambda": 0.8, "gamma": 0.98, "n_epochs": 20, "ent_coef": 0.0},
    "linear": {"learning_rate": 0.001, "clip_range": 0.2},
}


def train_sb3(algorithm_name: str, seed: int, judge: Judge, num_threads: int) -> None:
    """Stable-Baselines3 A2C or PPO, "MlpPolicy", with the RL Zoo's CartPole-v1 hyperparameters.

    The environments are the Zoo's: `make_vec_env(ENV_ID, n_envs, seed=seed)` (DummyVecEnv of Monitor-wrapped
    envs). `learn` runs for the Zoo's n_timesteps, which is also the horizon of the linear schedules; a callback
    checks at the start of each rollout, that is after each update, and stops training through `_on_step`.
    """
    from stable_baselines3 import A2C, PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    judge.mark_imported()
    set_num_threads(num_threads)
    zoo: dict[str, Any] = ZOO_A2C if algorithm_name == "a2c" else ZOO_PPO
    schedules: dict[str, Any] = {name: linear_schedule(value) for name, value in zoo.get("linear", {}).items()}
    envs = make_vec_env(ENV_ID, n_envs=zoo["n_envs"], seed=seed)
    algorithm = A2C if algorithm_name == "a2c" else PPO
    model = algorithm("MlpPolicy", envs, seed=seed, device="cpu", verbose=0, **zoo["kwargs"], **schedules)

    def act(observations: np.ndarray) -> np.ndarray:
        return model.predict(observations, deterministic=True)[0]

    class JudgeCallback(BaseCallback):
        stop = False

        def _on_rollout_start(self) -> None:
            if self.model.num_timesteps > 0:
                self.stop = judge.check(self.model.num_timesteps, act)

        def _on_step(self) -> bool:
            return not self.stop

    callback = JudgeCallback()
    judge.begin()
    model.learn(total_timesteps=zoo["n_timesteps"], callback=callback)
    if not callback.stop:  # learn ran to the Zoo's n_timesteps
        judge.check(model.num_timesteps, act, final=True)
    envs.close()


def linear_schedule(initial_value: float) -> Callable[[float], float]:
    """rl_zoo3.utils.linear_schedule: ``initial_value`` times the remaining progress (1 at the start, 0 at the end)."""

    def schedule(progress_remaining: float) -> float:
        return progress_remaining * initial_value

    return schedule


def train_tutorial(seed: int, judge: Judge, num_threads: int) -> None:
    """The project's tutorial loop, examples/tutorial_reinforce.py: one env, one Adam step per episode."""
    sys.path.insert(0, str(REPO / "examples"))
    import torch
    from tutorial_reinforce import TutorialAgent

    judge.mark_imported()
    set_num_threads(num_threads)
    agent = TutorialAgent(seed)

    def act(observations: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return agent.net(torch.as_tensor(observations, dtype=torch.float32)).argmax(-1).numpy()

    env_steps = 0
    judge.begin()
    while True:
        _, length = agent.run_episode()
        env_steps += length
        if judge.check(env_steps, act):
            break


def train_pytorch_example(seed: int, judge: Judge, num_threads: int) -> None:
    """The canonical pytorch/examples reinforcement_learning/reinforce.py, its loop and settings unchanged.

    The upstream script cannot be imported (it parses arguments and builds its env at import), so its loop is
    repeated here: Linear(4, 128), Dropout(0.6), ReLU, Linear(128, 2), softmax; Adam lr 1e-2; gamma 0.99; one
    step per episode on the standardised discounted returns. As upstream, an episode ends only on ``terminated``
    (``truncated`` is ignored), so an episode can run past CartPole-v1's 500-step limit. Greedy evaluation puts the
    network in eval mode (no dropout).
    """
    import torch
    from torch import nn
    from torch.distributions import Categorical

    judge.mark_imported()
    set_num_threads(num_threads)
    gamma = 0.99
    env = gym.make(ENV_ID)
    env.reset(seed=seed)
    torch.manual_seed(seed)
    policy = nn.Sequential(nn.Linear(4, 128), nn.Dropout(p=0.6), nn.ReLU(), nn.Linear(128, 2), nn.Softmax(dim=1))
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-2)
    eps = np.finfo(np.float32).eps.item()

    def act(observations: np.ndarray) -> np.ndarray:
        policy.eval()
        with torch.inference_mode():
            actions = policy(torch.as_tensor(observations, dtype=torch.float32)).argmax(-1).numpy()
        policy.train()
        return actions

    env_steps = 0
    judge.begin()
    while True:
        observation, _ = env.reset()
        log_probs, rewards = [], []
        for _ in range(1, 10_000):
            distribution = Categorical(policy(torch.from_numpy(observation).float().unsqueeze(0)))
            action = distribution.sample()
            log_probs.append(distribution.log_prob(action))
            observation, reward, terminated, _, _ = env.step(action.item())
            rewards.append(float(reward))
            if terminated:
                break
        env_steps += len(rewards)
        returns: list[float] = []
        running = 0.0
        for reward in reversed(rewards):
            running = reward + gamma * running
            returns.insert(0, running)
        weights = torch.tensor(returns)
        weights = (weights - weights.mean()) / (weights.std() + eps)
        loss = torch.cat([-log_prob * weight for log_prob, weight in zip(log_probs, weights, strict=True)]).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if judge.check(env_steps, act):
            break


@dataclass(frozen=True)
class Contender:
    """How run.py shows a contender and which environment runs it."""

    label: str
    venv: str  # "project" (the project's .venv) or "peers" (benchmarks/peers/.venv)
    distribution: str | None  # the package whose version is reported
    train: Callable[[int, Judge, int], None]  # (seed, judge, num_threads): train until judge.check says stop


CONTENDERS = {
    "reinforce": Contender("reinforce (defaults)", "project", "reinforce", train_reinforce),
    "reinforce-sample-efficient": Contender(
        "reinforce --preset sample-efficient",
        "project",
        "reinforce",
        partial(train_reinforce, preset="sample-efficient"),
    ),
    "tianshou-reinforce": Contender(
        "Tianshou Reinforce (its CartPole example)", "peers", "tianshou", train_tianshou_reinforce
    ),
    "sb3-a2c": Contender("SB3 A2C (RL Zoo)", "peers", "stable-baselines3", partial(train_sb3, "a2c")),
    "sb3-ppo": Contender("SB3 PPO (RL Zoo)", "peers", "stable-baselines3", partial(train_sb3, "ppo")),
    "tutorial": Contender("tutorial loop (examples/)", "project", None, train_tutorial),
    "pytorch-example": Contender("pytorch/examples reinforce.py", "project", None, train_pytorch_example),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("contender", choices=sorted(CONTENDERS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-steps", type=int, default=300_000)
    parser.add_argument("--max-seconds", type=float, default=300.0, help="training seconds (checks excluded)")
    parser.add_argument("--eval-every", type=int, default=1_000, help="env steps between checks, at least")
    parser.add_argument("--num-threads", type=int, default=1, help="torch threads; 0 leaves each library's default")
    args = parser.parse_args()
    contender = CONTENDERS[args.contender]
    judge = Judge(args.seed, eval_every=args.eval_every, max_steps=args.max_steps, max_seconds=args.max_seconds)
    contender.train(args.seed, judge, args.num_threads)
    import torch

    distributions = ["torch", "gymnasium", "numpy", *([contender.distribution] if contender.distribution else [])]
    result = {
        "contender": args.contender,
        "seed": args.seed,
        **judge.result(),
        "torch_threads": torch.get_num_threads(),
        "python": sys.version.split()[0],
        "versions": {name: metadata.version(name) for name in distributions},
    }
    print(RESULT_PREFIX + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
