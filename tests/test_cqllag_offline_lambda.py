"""Offline lambda warm-up of CQLLag: the multiplier stays put for the first steps, then updates every step."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from shieldgym.algos.cqllag import CQLLag


class Bandit(gym.Env):
    """One state, one step, reward 1 and cost 0.5 for every action."""

    observation_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        return np.ones(1, np.float32), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        return np.ones(1, np.float32), 1.0, True, False, {"cost": 0.5}


def bandit_data(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return dict(
        observations=np.ones((n, 1), np.float32),
        actions=rng.uniform(-1.0, 1.0, size=(n, 1)).astype(np.float32),
        rewards=np.ones(n, np.float32),
        costs=np.full(n, 0.5, np.float32),
        next_observations=np.ones((n, 1), np.float32),
        terminals=np.ones(n, bool),
        timeouts=np.zeros(n, bool),
    )


def make_model() -> CQLLag:
    return CQLLag(
        "MlpPolicy",
        Bandit(),
        batch_size=16,
        cql_n_actions=2,
        policy_kwargs=dict(net_arch=[8]),
        cost_limit_discounted=0.0,  # every estimate violates the limit, so an update always moves lambda
        lambda_init=0.25,
        pid_lagrangian=dict(ki=0.01),  # counts its updates in n_updates
        seed=0,
        device="cpu",
    )


def test_lambda_is_frozen_during_the_warmup_then_updated_every_step() -> None:
    model = make_model()
    # warm-up of 15 steps crosses the log_interval chunks (4, 4, 4, 3 frozen; then 4, 1 updating)
    model.learn_offline(bandit_data(64), gradient_steps=20, log_interval=4, lambda_warmup_steps=15)
    assert int(model.lagrange.n_updates) == 5
    assert float(model.lagrange.value) > 0.25
    # a full warm-up leaves lambda exactly where it was
    value = float(model.lagrange.value)
    model.learn_offline(None, gradient_steps=6, log_interval=4, lambda_warmup_steps=6)
    assert int(model.lagrange.n_updates) == 5 and float(model.lagrange.value) == value
    # the warm-up ends with the call: the next call updates on every step again
    model.learn_offline(None, gradient_steps=3)
    assert int(model.lagrange.n_updates) == 8


@pytest.mark.parametrize("warmup", [-1, 11])
def test_bad_lambda_warmup_is_rejected(warmup: int) -> None:
    model = make_model()
    with pytest.raises(ValueError, match=f"lambda_warmup_steps must be in \\[0, gradient_steps=10\\], got {warmup}"):
        model.learn_offline(bandit_data(32), gradient_steps=10, lambda_warmup_steps=warmup)
    assert int(model.lagrange.n_updates) == 0


def two_step_data(n_episodes: int) -> dict[str, np.ndarray]:
    """Episodes s0 -> s1 -> end: no cost at the start state s0 = [0], cost 10 at s1 = [1] (then terminal)."""
    rng = np.random.default_rng(0)
    obs = np.tile(np.array([[0.0], [1.0]], np.float32), (n_episodes, 1))
    return dict(
        observations=obs,
        actions=rng.uniform(-1.0, 1.0, size=(2 * n_episodes, 1)).astype(np.float32),
        rewards=np.zeros(2 * n_episodes, np.float32),
        costs=np.tile(np.array([0.0, 10.0], np.float32), n_episodes),
        next_observations=np.tile(np.array([[1.0], [1.0]], np.float32), (n_episodes, 1)),
        terminals=np.tile(np.array([False, True]), n_episodes),
        timeouts=np.zeros(2 * n_episodes, bool),
    )


@pytest.mark.parametrize(("lambda_states", "rises"), [("batch", True), ("initial", False)])
def test_lambda_reads_the_cost_at_episode_starts_when_asked(lambda_states: str, rises: bool) -> None:
    # gamma 0.1: Q_c(s0) = 0 + 0.1 * 10 = 1 below the limit 3, Q_c(s1) = 10; the batch mean (~5.5) is above it
    model = CQLLag(
        "MlpPolicy",
        Bandit(),
        gamma=0.1,
        batch_size=32,
        cql_n_actions=2,
        beta_cql=0.0,
        alpha_cql=0.0,
        learning_rate=3e-3,
        policy_kwargs=dict(net_arch=[32, 32]),
        cost_limit_discounted=3.0,
        lambda_lr=0.05,
        seed=0,
        device="cpu",
    )
    model.learn_offline(two_step_data(32), gradient_steps=600, log_interval=600, lambda_states=lambda_states)
    q_c = model.cost_critic()(np.array([[0.0], [1.0]], np.float32), np.zeros((2, 1), np.float32))
    assert abs(q_c[0] - 1.0) < 0.5 and abs(q_c[1] - 10.0) < 2.0, q_c
    if rises:
        assert float(model.lagrange.value) > 1.0
    else:
        assert float(model.lagrange.value) == 0.0


def test_initial_lambda_states_need_the_dataset() -> None:
    model = make_model()
    model.learn_offline(bandit_data(32), gradient_steps=1)
    with pytest.raises(ValueError, match="lambda_states='initial' needs the dataset"):
        model.learn_offline(None, gradient_steps=1, lambda_states="initial")
    with pytest.raises(ValueError, match="lambda_states must be 'batch' or 'initial', got 'start'"):
        model.learn_offline(None, gradient_steps=1, lambda_states="start")  # type: ignore[arg-type]
