"""Branched rollouts on SafetyPointGoal1: exact restores, exact labels, an untouched main rollout, the regression fit."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from test_shield_scripted import PointEnv

import shieldgym
from shieldgym.backup.recovery import LidarNavigationBackup
from shieldgym.branching import BranchConfig, SimulatorBrancher, branch_labels, collect_branches, fit_branch_critic
from shieldgym.shield_eval import ShieldEvalConfig, collect_transitions, goal_seeking_policy, prepare_shield

ENV_ID = "SafetyPointGoal1-v0"


def _env(seed: int = 4) -> tuple[gym.Env, np.ndarray]:
    env = shieldgym.make(ENV_ID)
    obs, _ = env.reset(seed=seed)
    return env, obs


def _backup(env: gym.Env) -> LidarNavigationBackup:
    backup = LidarNavigationBackup(range(28, 44), range(12, 28), (3, 4), influence=0.6, repulsion=2.0, swirl=1.0)
    backup.bind(env.action_space, None)
    return backup


def _drive_to_a_hazard(env: gym.Env, obs: np.ndarray) -> np.ndarray:
    """Follow the goal-seeking policy until a hazard is within 0.5 m straight ahead (front lidar bins 0 and 15)."""
    for _ in range(1000):
        if (1.0 - max(obs[28], obs[43])) * 3.0 < 0.5:
            return obs
        obs, *_ = env.step(goal_seeking_policy(obs))
    raise AssertionError("no hazard came within 0.5 m ahead")


def test_a_branch_reproduces_the_env_and_leaves_it_untouched() -> None:
    rng, noise = np.random.default_rng(1), np.random.default_rng(0)
    reference, branched = _env(14), _env(14)
    obs = reference[1]
    sim = SimulatorBrancher(branched[0])
    assert sim.has_fast_readout
    # a brancher on a third env follows the env's own steps, bit for bit (suite readout) or to rounding (fast)
    replay_env, _ = _env(14)
    replay = SimulatorBrancher(replay_env)
    fast_env, _ = _env(14)
    fast = SimulatorBrancher(fast_env)
    ref_costs = []
    for i in range(300):
        # the goal-seeking policy drives through hazards: the costs are compared where they matter
        action = np.clip(goal_seeking_policy(obs) + noise.normal(0.0, 0.3, 2), -1.0, 1.0).astype(np.float32)
        if i % 5 == 0:  # branch 10 steps away from the main rollout, then restore
            state = sim.save()
            for other in rng.uniform(-1.0, 1.0, (10, 2)):
                sim.step(other, observe=True, fast=i % 10 == 0)
            sim.restore(state)
        obs, _, _, _, info = reference[0].step(action)
        obs_b, _, _, _, info_b = branched[0].step(action)
        cost_r, obs_r = replay.step(action, observe=True)
        cost_f, obs_f = fast.step(action, observe=True, fast=True)
        np.testing.assert_array_equal(obs_b, obs)
        if info.get("goal_met"):  # the env moves the goal (Python-side state a branch leaves alone): stop here
            break
        np.testing.assert_array_equal(obs_r, obs)
        np.testing.assert_allclose(obs_f, obs, rtol=0, atol=1e-12)
        assert info_b["cost"] == info["cost"] == cost_r == cost_f
        ref_costs.append(info["cost"])
    assert sum(ref_costs) > 0


def test_branch_labels_are_the_discounted_cost_of_the_action_then_the_backup() -> None:
    env, obs = _env(seed=1)
    sim, backup = SimulatorBrancher(env), _backup(env)
    obs, _ = env.reset(seed=10)  # a reset rebuilds the simulator: the brancher follows it
    obs = _drive_to_a_hazard(env, obs)
    first = np.array([[1.0, 0.0], [0.0, 0.0], [-1.0, 0.5]])
    hold, horizon, gamma = 20, 10, 0.9
    labels = branch_labels(sim, first, backup, hold=hold, horizon=horizon, gamma=gamma, fast=False)
    fast_labels = branch_labels(sim, first, backup, hold=hold, horizon=horizon, gamma=gamma, fast=True)
    state = sim.save()
    expected = []
    for action in first:  # the same branches through the env's own step
        twin, twin_obs = _env(10)
        SimulatorBrancher(twin).restore(state)
        total, o = 0.0, twin_obs
        for t in range(hold + horizon):
            o, _, _, _, info = twin.step((action if t < hold else backup(o)).astype(np.float32))
            total += gamma**t * info["cost"]
        expected.append(total)
    np.testing.assert_allclose(labels, expected, rtol=1e-12)
    np.testing.assert_allclose(fast_labels, expected, rtol=1e-9)
    assert labels[0] > 0.5 and labels[1] == labels[2] == 0.0  # full throttle into the hazard costs, braking does not
    # with the task policy between the hold and the backup: hold 2, the policy for 30 steps, the backup for 6
    follow = branch_labels(sim, first, backup, hold=2, horizon=6, gamma=gamma, policy=goal_seeking_policy, follow=30)
    for action, label in zip(first, follow):
        twin, o = _env(10)
        SimulatorBrancher(twin).restore(state)
        total = 0.0
        for t in range(38):
            step_action = action if t < 2 else goal_seeking_policy(o) if t < 32 else backup(o)
            o, _, _, _, info = twin.step(np.asarray(step_action, np.float32))
            total += gamma**t * info["cost"]
        assert label == pytest.approx(total, rel=1e-9, abs=1e-12)
    assert follow.max() > 0.0  # the task policy drives on into the hazard
    with pytest.raises(ValueError, match="follow > 0 needs the task policy"):
        branch_labels(sim, first, backup, hold=1, horizon=1, gamma=gamma, follow=2)
    # the env is where it was: its next step equals a fresh env's from the same state
    after, *_ = env.step(np.zeros(2, np.float32))
    twin, _ = _env(10)
    SimulatorBrancher(twin).restore(state)
    np.testing.assert_array_equal(twin.step(np.zeros(2, np.float32))[0], after)


def test_collect_branches_leaves_the_main_rollout_unchanged() -> None:
    env, _ = _env()
    kwargs: dict[str, Any] = dict(seed=3, random_prob=0.1, hold_steps=10)
    plain = collect_transitions(env, goal_seeking_policy, 1, **kwargs)
    config = BranchConfig(hold=3, horizon=5, gamma=0.9, n_random=2, near=0.6, near_prob=0.2, far_prob=0.0)
    seen: list[np.ndarray] = []

    def policy(obs: np.ndarray) -> np.ndarray:
        return goal_seeking_policy(obs)

    data = collect_branches(env, policy, _backup(env), 1, config, **kwargs)
    again = collect_transitions(env, goal_seeking_policy, 1, before_step=lambda o, e: seen.append(o), **kwargs)
    for key in plain:
        np.testing.assert_array_equal(again[key], plain[key])
    np.testing.assert_array_equal(np.asarray(seen, np.float32), plain["obs"])
    n = len(data["labels"])
    assert n > 0 and n % 4 == 0 and int(data["n_states"]) == len(plain["obs"])
    assert data["kind"].tolist() == [0, 1, 2, 2] * (n // 4)
    # each branched state is one the main rollout visited, closer than `near` to a hazard
    states = data["state"][::4]
    np.testing.assert_array_equal(data["obs"][::4], plain["obs"][states])
    assert ((1.0 - plain["obs"][states][:, 28:44].max(axis=1)) * 3.0 < 0.6).all()
    task_actions = np.stack([goal_seeking_policy(o) for o in plain["obs"][states]])  # (from float32 observations)
    np.testing.assert_allclose(data["actions"][::4], task_actions, rtol=0, atol=1e-6)
    assert (data["actions"][1::4] == 0).all()
    assert (data["labels"] >= 0).all() and (data["labels"] <= sum(0.9**t for t in range(8)) + 1e-6).all()


def test_fit_branch_critic_is_a_regression_onto_the_labels() -> None:
    rng = np.random.default_rng(0)
    obs = rng.uniform(-1.0, 1.0, (2048, 2)).astype(np.float32)
    actions = rng.uniform(-1.0, 1.0, (2048, 1)).astype(np.float32)
    labels = np.maximum(obs[:, 0] + actions[:, 0], 0.0).astype(np.float32)  # the action changes the label
    critic = fit_branch_critic(
        {"obs": obs, "actions": actions, "labels": labels},
        action_space=gym.spaces.Box(-1.0, 1.0, (1,)),
        fit_steps=1500,
        net_arch=(64, 64),
        n_critics=1,
    )
    test_obs = np.array([[0.5, 0.0]] * 3, np.float32)
    risk = critic.numpy_critic()(test_obs, np.array([[-1.0], [0.0], [1.0]], np.float32))
    np.testing.assert_allclose(risk, [0.0, 0.5, 1.5], atol=0.12)
    assert critic.fit_history[-1].penalty == 0.0  # no conservative term
    with pytest.raises(TypeError, match="Box action space"):
        fit_branch_critic({"obs": obs, "actions": actions, "labels": labels}, action_space=gym.spaces.Discrete(2))
    with pytest.raises(ValueError, match="no branches"):
        fit_branch_critic(
            {"obs": obs[:0], "actions": actions[:0], "labels": labels[:0]}, action_space=gym.spaces.Box(-1, 1, (1,))
        )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(hold=0), "hold"),
        (dict(horizon=-1), "horizon"),
        (dict(gamma=0.0), "gamma"),
        (dict(n_random=-2), "n_random"),
        (dict(near_prob=1.5), "near_prob"),
    ],
)
def test_branch_config_bad_input(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        BranchConfig(**kwargs)


def test_brancher_needs_a_safety_gymnasium_navigation_env() -> None:
    with pytest.raises(TypeError, match="Safety-Gymnasium navigation env"):
        SimulatorBrancher(PointEnv())


def test_prepare_shield_with_branches() -> None:
    config = ShieldEvalConfig(
        ENV_ID,
        collect_episodes=2,
        random_prob=0.1,
        hold_steps=10,
        fit_steps=20,
        critic_features="hazard_margin",
        backup="lidar_navigation",
        threshold=0.5,
        branches=BranchConfig(hold=2, horizon=3, n_random=1, near=0.5, near_prob=0.05, far_prob=0.0),
    )
    prepared = prepare_shield(config, progress=False)
    assert prepared.threshold == 0.5 and prepared.calibration is None
    assert prepared.n_transitions == 2000 and prepared.n_branches > 0 and prepared.n_branches % 3 == 0
    env = prepared.wrap(shieldgym.make(ENV_ID))
    obs, _ = env.reset(seed=0)
    _, _, _, _, info = env.step(goal_seeking_policy(obs))
    assert "shield" in info
    with pytest.raises(ValueError, match="acts without the critic"):
        prepare_shield(ShieldEvalConfig(ENV_ID, branches=BranchConfig()), progress=False)
