"""The textbook per-step mode's fast paths: the closed-form update and the Python-float sampler."""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium import spaces

from reinforce import Population, Reinforce, TrainConfig
from reinforce.core import loss as loss_module
from reinforce.core.baselines import BatchMeanBaseline, NoBaseline
from reinforce.core.batch import RolloutBatch
from reinforce.core.loss import update_policy
from reinforce.core.optim import EagerOptimizer
from reinforce.core.policies import Policy, make_policy
from reinforce.core.returns import discounted_returns, episode_ids, episode_steps
from reinforce.core.textbook import (
    LinearSoftmaxSampler,
    linear_softmax_per_step,
    linear_softmax_per_step_members,
    per_step_order,
    per_step_weights,
)
from reinforce.core.weights import batch_returns, policy_weights
from reinforce.errors import NonFiniteError
from reinforce.population.rounds import per_step_members
from reinforce.rollout import collect as collect_module
from reinforce.rollout.collect import collect, sample_actions
from reinforce.rollout.envs import make_vec_env

BOOK = TrainConfig(
    update="per_step",
    optimizer="sgd",
    lr=0.05,
    gamma=0.9,
    discount_gradient=True,
    return_normalization="none",
    hidden_sizes=(),
)
"""Sutton & Barto's REINFORCE (section 13.3): theta += lr * gamma^t * G_t * grad ln pi(A_t|S_t) after every step."""


def linear_batch(num_envs: int, episodes: int, seed: int = 0) -> tuple[Policy, RolloutBatch]:
    """A linear softmax policy (random weights, so that W's gradient is not 0) and a batch of toy/Counting-v0."""
    envs = make_vec_env("toy/Counting-v0", num_envs)
    torch.manual_seed(seed)
    policy = make_policy(envs.single_observation_space, envs.single_action_space, ())
    with torch.no_grad():
        for parameter in policy.parameters():
            parameter.normal_(0.0, 0.3)
    batch = collect(envs, policy, episodes, seed=seed)
    envs.close()
    return policy, batch


def books_rule(policy: Policy, batch: RolloutBatch, lr: float, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """The book's loop in float64 NumPy, one env (episodes in time order): W and b after every step's update."""
    assert batch.mask.shape[1] == 1
    weight = policy.body[0].weight.detach().double().numpy().copy()
    bias = policy.body[0].bias.detach().double().numpy().copy()
    steps = batch.mask[:, 0].nonzero().flatten().tolist()
    episodes: list[list[int]] = [[]]
    for t in steps:
        episodes[-1].append(t)
        if batch.dones[t, 0]:
            episodes.append([])
    for episode in episodes:
        rewards = [float(batch.rewards[t, 0]) for t in episode]
        for k, t in enumerate(episode):
            g = sum(gamma ** (i - k) * rewards[i] for i in range(k, len(episode)))
            x = batch.observations[t, 0].double().numpy()
            preferences = weight @ x + bias
            pi = np.exp(preferences - preferences.max())
            pi /= pi.sum()
            direction = -pi
            direction[int(batch.actions[t, 0])] += 1.0  # grad ln pi(a|s) at the logits
            weight += lr * gamma**k * g * np.outer(direction, x)
            bias += lr * gamma**k * g * direction
    return weight, bias


def book_weights(batch: RolloutBatch, config: TrainConfig) -> torch.Tensor:
    return policy_weights(batch, discounted_returns(batch.rewards, batch.dones, config.gamma), config)


def general_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `update_policy` take the general per-step loop (forward, backward, optimizer step per step)."""
    monkeypatch.setattr(loss_module, "linear_softmax_per_step", lambda *args: None)


def test_closed_form_per_step_update_is_the_books_rule() -> None:
    policy, batch = linear_batch(num_envs=1, episodes=4)
    assert len(batch.episode_returns) == 4 and batch.num_steps > 8
    expected_weight, expected_bias = books_rule(policy, batch, BOOK.lr, BOOK.gamma)
    optimizer = EagerOptimizer(policy.parameters(), "sgd", lr=BOOK.lr)
    metrics = update_policy(policy, optimizer, batch, book_weights(batch, BOOK), BOOK)
    # float32 parameters against the book's float64: one rounding of the result apart
    np.testing.assert_allclose(policy.body[0].weight.detach().numpy(), expected_weight, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(policy.body[0].bias.detach().numpy(), expected_bias, rtol=1e-6, atol=1e-7)
    assert all(math.isfinite(value) for value in metrics.values())


@pytest.mark.parametrize("num_envs", [1, 3])
def test_closed_form_per_step_update_equals_the_general_loop(num_envs: int, monkeypatch: pytest.MonkeyPatch) -> None:
    policy, batch = linear_batch(num_envs=num_envs, episodes=5)
    general = make_policy(spaces.Box(0.0, np.inf, (2,)), spaces.Discrete(2), ())
    general.load_state_dict(policy.state_dict())
    weights = book_weights(batch, BOOK)
    fast = update_policy(policy, torch.optim.SGD(policy.parameters(), lr=BOOK.lr), batch, weights, BOOK)
    general_loop(monkeypatch)
    slow = update_policy(general, torch.optim.SGD(general.parameters(), lr=BOOK.lr), batch, weights, BOOK)
    for ours, theirs in zip(policy.parameters(), general.parameters(), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)
    assert fast.keys() == slow.keys()
    for key in fast:
        assert fast[key] == pytest.approx(slow[key], rel=1e-5), key


def test_per_step_order_is_episode_by_episode_in_time() -> None:
    """The order of the general loop before the closed form existed: episode ids, then steps within episodes."""
    generator = torch.Generator().manual_seed(0)
    for _ in range(200):
        shape = (int(torch.randint(1, 12, (), generator=generator)), int(torch.randint(1, 4, (), generator=generator)))
        dones = torch.rand(shape, generator=generator) < 0.3
        mask = torch.rand(shape, generator=generator) < 0.8
        if not mask.any():
            continue
        batch = RolloutBatch(
            observations=torch.zeros((*shape, 1)),
            actions=torch.zeros(shape, dtype=torch.long),
            rewards=torch.zeros(shape),
            terminated=dones,
            truncated=torch.zeros(shape, dtype=torch.bool),
            mask=mask,
            last_observations=torch.zeros((shape[1], 1)),
            episode_returns=[],
            episode_lengths=[],
            episode_truncated=[],
        )
        ids, _ = episode_ids(batch.dones, mask)
        steps = episode_steps(batch.dones, mask)
        keys = ids[mask] * (int(steps.max()) + 1) + steps[mask]
        assert torch.equal(per_step_order(batch), mask.nonzero()[torch.argsort(keys)])


def test_episode_steps_matches_a_loop() -> None:
    generator = torch.Generator().manual_seed(1)
    for trial in range(300):
        length = int(torch.randint(0, 10, (), generator=generator))
        shape = (length, 3) if trial % 2 else (length,)
        dones = torch.rand(shape, generator=generator) < 0.3
        mask = torch.rand(shape, generator=generator) < 0.8
        expected = torch.zeros(shape, dtype=torch.long)
        counter = torch.zeros(shape[1:], dtype=torch.long)
        for t in range(length):
            expected[t] = torch.where(mask[t], counter, 0)
            counter = torch.where(dones[t] & mask[t], 0, counter + mask[t].long())
        assert torch.equal(episode_steps(dones, mask), expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_discounted_returns_are_torchs_floats(dtype: torch.dtype) -> None:
    generator = torch.Generator().manual_seed(2)
    rewards = (torch.randn((40, 3), generator=generator) * 10).to(dtype)
    dones = torch.rand((40, 3), generator=generator) < 0.2
    continues = (~dones).to(dtype) * 0.97
    expected = torch.empty_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in range(39, -1, -1):
        running = rewards[t] + continues[t] * running
        expected[t] = running
    returns = discounted_returns(rewards, dones, 0.97)
    assert returns.dtype == dtype and torch.equal(returns, expected)


@pytest.mark.parametrize(
    "change",
    [
        {"entropy_coef": 0.01},
        {"max_grad_norm": 1.0},
        {"optimizer": "adam"},
        {"hidden_sizes": (4,)},
    ],
)
def test_closed_form_applies_only_to_its_case(change: dict[str, object]) -> None:
    config = TrainConfig(**{**BOOK.__dict__, **change})  # type: ignore[arg-type]
    envs = make_vec_env("toy/Counting-v0", 1)
    policy = make_policy(envs.single_observation_space, envs.single_action_space, config.hidden_sizes)
    batch = collect(envs, policy, 2, seed=0)
    envs.close()
    optimizer = EagerOptimizer(policy.parameters(), config.optimizer, lr=config.lr)  # type: ignore[arg-type]
    before = [parameter.detach().clone() for parameter in policy.parameters()]
    assert linear_softmax_per_step(policy, optimizer, batch, book_weights(batch, config), config) is None
    assert all(torch.equal(a, b) for a, b in zip(before, policy.parameters(), strict=True))


def test_a_non_finite_step_leaves_the_parameters_to_the_general_loop() -> None:
    policy, batch = linear_batch(num_envs=1, episodes=2)
    weights = book_weights(batch, BOOK)
    weights[batch.mask.nonzero()[1].tolist()] = math.inf  # the second step
    before = [parameter.detach().clone() for parameter in policy.parameters()]
    optimizer = EagerOptimizer(policy.parameters(), "sgd", lr=BOOK.lr)
    assert linear_softmax_per_step(policy, optimizer, batch, weights, BOOK) is None
    assert all(torch.equal(a, b) for a, b in zip(before, policy.parameters(), strict=True))
    with pytest.raises(NonFiniteError):
        update_policy(policy, optimizer, batch, weights, BOOK)  # the general loop: the first step was taken


@pytest.mark.parametrize("num_envs", [1, 3])
def test_sampler_collects_the_torch_paths_batch(num_envs: int, monkeypatch: pytest.MonkeyPatch) -> None:
    policy, _ = linear_batch(num_envs=num_envs, episodes=1)
    assert LinearSoftmaxSampler.of(policy, num_envs) is not None
    batches, states = [], []
    for use_sampler in (True, False):
        if not use_sampler:
            monkeypatch.setattr(collect_module.LinearSoftmaxSampler, "of", classmethod(lambda cls, *args: None))
        envs = make_vec_env("toy/Counting-v0", num_envs)
        torch.manual_seed(7)
        batches.append(collect(envs, policy, 9, seed=3))
        states.append(torch.get_rng_state())
        envs.close()
    fast, slow = batches
    for name in ("observations", "actions", "rewards", "terminated", "truncated", "mask"):
        assert torch.equal(getattr(fast, name), getattr(slow, name)), name
    assert torch.equal(states[0], states[1])  # the generator is where the torch path leaves it


@pytest.mark.parametrize("env_id", ["toy/Counting-v0", "toy/CountingTruncated-v0", "toy/Masked-discrete-v0"])
def test_one_env_collection_is_the_vector_envs(env_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stepping the one sub-env directly gives the general loop's batch, draws, and vector env state after."""
    batches, states, after = [], [], []
    for direct in (True, False):
        if not direct:
            monkeypatch.setattr(collect_module, "direct_env", lambda envs: None)
        envs = make_vec_env(env_id, 1)
        assert direct == (collect_module.direct_env(envs) is not None)
        torch.manual_seed(3)
        policy = make_policy(envs.single_observation_space, envs.single_action_space, ())
        torch.manual_seed(7)
        batches.append(collect(envs, policy, 6, seed=11))
        states.append(torch.get_rng_state())
        after.append(envs.step(np.zeros(1, dtype=np.int64)))  # the vector env resets: the autoreset flag was set
        envs.close()
    fast, slow = batches
    for name in ("observations", "actions", "rewards", "terminated", "truncated", "mask", "last_observations"):
        assert torch.equal(getattr(fast, name), getattr(slow, name)), name
    assert (fast.action_masks is None) == (slow.action_masks is None)
    if fast.action_masks is not None:
        assert slow.action_masks is not None and torch.equal(fast.action_masks, slow.action_masks)
    assert fast.episode_returns == slow.episode_returns and len(fast.episode_returns) == 6
    assert fast.episode_lengths == slow.episode_lengths
    assert fast.episode_truncated == slow.episode_truncated
    assert torch.equal(states[0], states[1])
    for ours, theirs in zip(after[0][:4], after[1][:4], strict=True):
        np.testing.assert_array_equal(ours, theirs)
    if env_id == "toy/CountingTruncated-v0":
        assert any(fast.episode_truncated)


def test_sampler_draws_torchs_actions_and_uniforms() -> None:
    """Where claimed exact: the actions and generator state of ``sample_actions``, on many rows and logits."""
    policy, _ = linear_batch(num_envs=1, episodes=1)
    observations = np.random.default_rng(0).uniform(0.0, 6.0, (4000, 2)).astype(np.float32)
    sampler = LinearSoftmaxSampler.of(policy, 1)
    assert sampler is not None
    torch.manual_seed(9)
    ours = sampler(observations)
    state = torch.get_rng_state()
    torch.manual_seed(9)
    theirs = sample_actions(policy(torch.from_numpy(observations))).numpy()
    np.testing.assert_array_equal(ours, theirs)
    assert torch.equal(state, torch.get_rng_state())


def test_textbook_weights_are_the_general_floats() -> None:
    """`per_step_weights` (NumPy) against `batch_returns` and `policy_weights` (torch), bit for bit."""
    generator = torch.Generator().manual_seed(0)
    for trial in range(200):
        shape = (int(torch.randint(1, 30, (), generator=generator)), int(torch.randint(1, 4, (), generator=generator)))
        dtype = torch.float32 if trial % 3 else torch.float64
        batch = RolloutBatch(
            observations=torch.zeros((*shape, 1)),
            actions=torch.zeros(shape, dtype=torch.long),
            rewards=(torch.randn(shape, generator=generator) * 10).to(dtype),
            terminated=torch.rand(shape, generator=generator) < 0.2,
            truncated=torch.zeros(shape, dtype=torch.bool),
            mask=torch.rand(shape, generator=generator) < 0.85,
            last_observations=torch.zeros((shape[1], 1)),
            episode_returns=[],
            episode_lengths=[],
            episode_truncated=[],
        )
        gamma = (1.0, 0.9, 0.97, 0.0)[trial % 4]
        config = dataclasses.replace(BOOK, gamma=gamma, discount_gradient=bool(trial % 2))
        result = per_step_weights(batch, config, NoBaseline())
        assert result is not None
        returns = batch_returns(batch, config, NoBaseline())
        assert torch.equal(result[0], returns) and result[0].dtype == dtype
        assert torch.equal(result[1], policy_weights(batch, returns, config, NoBaseline()))
    changes = (
        {"update": "batch"},
        {"reward_to_go": False, "discount_gradient": False},
        {"return_normalization": "batch"},
    )
    for change in changes:
        assert per_step_weights(batch, dataclasses.replace(BOOK, **change), NoBaseline()) is None  # type: ignore[arg-type]
    assert per_step_weights(batch, BOOK, BatchMeanBaseline()) is None


@pytest.mark.parametrize("num_envs", [1, 2])
def test_members_per_step_updates_are_each_members_own(num_envs: int) -> None:
    """K members' batched per-step updates against each member's own closed form, each with its own step size."""
    members, batches, weights, rates = [], [], [], [0.05, 0.2, 0.01]
    for seed in range(len(rates)):
        policy, batch = linear_batch(num_envs=num_envs, episodes=2 + seed, seed=seed)
        members.append(policy)
        batches.append(batch)
        weights.append(book_weights(batch, BOOK))
    copies = [make_policy(spaces.Box(0.0, np.inf, (2,)), spaces.Discrete(2), ()) for _ in members]
    for copy, policy in zip(copies, members, strict=True):
        copy.load_state_dict(policy.state_dict())
    optimizers = [EagerOptimizer(p.parameters(), "sgd", lr=rate) for p, rate in zip(members, rates, strict=True)]
    together = linear_softmax_per_step_members(members, optimizers, batches, weights, [BOOK] * 3)
    assert together is not None
    for copy, batch, w, rate, policy, metrics in zip(copies, batches, weights, rates, members, together, strict=True):
        alone = linear_softmax_per_step(copy, EagerOptimizer(copy.parameters(), "sgd", lr=rate), batch, w, BOOK)
        assert alone is not None
        for ours, theirs in zip(policy.parameters(), copy.parameters(), strict=True):
            torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-7)  # float64 sums in another order
        assert metrics == pytest.approx(alone, rel=1e-9)


@pytest.mark.parametrize("episodes", [(2, 2), (1, 6)])
def test_members_per_step_leaves_a_non_finite_step_to_each_member(episodes: tuple[int, int]) -> None:
    """(1, 6): the non-finite step is the longer member's last, among the steps it takes alone (Python floats)."""
    policies, batches, weights = [], [], []
    for seed, count in enumerate(episodes):
        policy, batch = linear_batch(num_envs=1, episodes=count, seed=seed)
        policies.append(policy)
        batches.append(batch)
        weights.append(book_weights(batch, BOOK))
    assert batches[1].mask.sum() > batches[0].mask.sum() or episodes == (2, 2)
    weights[1][tuple(batches[1].mask.nonzero()[-1 if episodes == (1, 6) else 1].tolist())] = math.inf
    before = [parameter.detach().clone() for policy in policies for parameter in policy.parameters()]
    optimizers = [EagerOptimizer(policy.parameters(), "sgd", lr=BOOK.lr) for policy in policies]
    assert linear_softmax_per_step_members(policies, optimizers, batches, weights, [BOOK] * 2) is None
    after = [parameter for policy in policies for parameter in policy.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    optimizers[1] = torch.optim.Adam(policies[1].parameters())  # type: ignore[assignment]
    assert linear_softmax_per_step_members(policies, optimizers, batches, weights, [BOOK] * 2) is None


def short_corridor() -> None:
    """Register ShortCorridor-v0 (examples/short_corridor_env.py)."""
    sys.path.insert(0, str(Path(__file__).parents[2] / "examples"))
    try:
        import short_corridor_env  # noqa: F401 (registers ShortCorridor-v0)
    finally:
        sys.path.pop(0)


def books_agent_settings(lr: float, **changes: object) -> dict[str, object]:
    """The book's REINFORCE on the short corridor: gamma 1, one episode per update, step size ``lr``."""
    settings = {**BOOK.__dict__, "gamma": 1.0, "lr": lr, "num_envs": 1, "episodes_per_update": 1}
    return settings | {"env_kwargs": {"max_steps": 500}, **changes}  # a drifting run's episodes end


def start_at_the_books_theta(agent: Reinforce) -> None:
    with torch.no_grad():  # pi(right) = 0.05, as in the figure
        agent.policy.body[0].weight.zero_()
        agent.policy.body[0].bias.copy_(torch.tensor([1.47, -1.47]))


def test_a_members_batched_update_is_its_single_update() -> None:
    """Given the same episode, a population member's update (batched with others) is the single agent's."""
    short_corridor()
    population = Population("ShortCorridor-v0", seeds=[0, 1, 2], **books_agent_settings(2.0**-6))  # type: ignore[arg-type]
    alone = Reinforce("ShortCorridor-v0", seed=1, **books_agent_settings(2.0**-6, vectorization_mode="sync"))  # type: ignore[arg-type]
    for member in [*population.members, alone]:
        start_at_the_books_theta(member)
    for _ in range(3):
        batches = [member.collect_batch() for member in population.members]
        returns, losses = per_step_members(population.members, batches)
        metrics = []
        for member, batch, returns_TN, step in zip(population.members, batches, returns, losses, strict=True):
            assert returns_TN is not None and isinstance(step, dict)
            metrics.append(member.update(batch, stepped=(returns_TN, step)))
        single = alone.update(batches[1])
        for name in ("losses/policy_loss", "losses/entropy", "losses/grad_norm", "episode_returns", "env_steps"):
            assert metrics[1][name] == pytest.approx(single[name], rel=1e-9), name
        for ours, theirs in zip(population.members[1].policy.parameters(), alone.policy.parameters(), strict=True):
            torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-7)
    population.close()
    alone.close()


def test_population_rounds_play_one_episode_per_member() -> None:
    """`Population.update`: every member plays its own episode per round and counts it (the figure's loop)."""
    short_corridor()
    population = Population("ShortCorridor-v0", seeds=range(4), **books_agent_settings(2.0**-13))  # type: ignore[arg-type]
    for member in population.members:
        start_at_the_books_theta(member)
    rounds = [population.update() for _ in range(8)]
    population.close()
    assert not population.errors
    returns = np.array([[metrics["episode_returns"][0] for metrics in results if metrics] for results in rounds])
    assert returns.shape == (8, 4)
    assert len({tuple(column) for column in returns.T.tolist()}) == 4  # independent members, not copies
    for index, member in enumerate(population.members):
        assert member.num_updates == member.num_episodes == 8
        assert member.num_env_steps == -returns[:, index].sum()


def test_short_corridor_learns_with_the_books_settings() -> None:
    """Figure 13.1's setting at a larger step size (2^-10), so that 150 episodes show the learning.

    At 2^-10 a run can also drift to pi(right) = 0 (the book's NumPy loop: 7 of 12 seeds within 150 episodes);
    seed 0 learns, with the same draws as the torch path.
    """
    short_corridor()
    agent = Reinforce("ShortCorridor-v0", seed=0, **books_agent_settings(2.0**-10, vectorization_mode="sync"))  # type: ignore[arg-type]
    start_at_the_books_theta(agent)
    returns = [agent.update()["episode_returns"][0] for _ in range(150)]
    agent.close()
    # the first episodes take long (-169 steps, -10, -25, ...); the best policy's value is about -11.6
    assert np.mean(returns[:5]) < -30 and np.mean(returns[-50:]) > -25
