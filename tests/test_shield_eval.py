"""The shielded-vs-unshielded pipeline on the scripted point env (tiny data and fit)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from test_shield_scripted import PointEnv

from shieldgym.shield_eval import (
    TASK_POLICIES,
    ShieldEvalConfig,
    circling_policy,
    collect_transitions,
    goal_seeking_policy,
    in_violation,
    run_shield_eval,
    unsafe_labels,
)


def test_labels() -> None:
    costs = np.array([0, 0, 1, 0, 0, 1, 0.0])
    episode = np.array([0, 0, 0, 0, 1, 1, 1])
    assert unsafe_labels(costs, episode, 1).tolist() == [False, False, True, False, False, True, False]
    assert unsafe_labels(costs, episode, 3).tolist() == [True, True, True, False, True, True, False]
    assert in_violation(costs, episode).tolist() == [False, False, False, True, False, False, True]
    with pytest.raises(ValueError, match="horizon"):
        unsafe_labels(costs, episode, 0)


def test_collect_transitions_shapes_and_next_actions() -> None:
    data = collect_transitions(PointEnv(horizon=5), lambda o: np.array([0.5], np.float32), 3, seed=0, random_prob=0.5)
    assert data["obs"].shape == (15, 1) and data["actions"].shape == (15, 1)
    assert data["episode"].tolist() == [0] * 5 + [1] * 5 + [2] * 5
    np.testing.assert_array_equal(
        data["next_obs"][:-1][data["episode"][1:] == data["episode"][:-1]],
        data["obs"][1:][data["episode"][1:] == data["episode"][:-1]],
    )
    np.testing.assert_array_equal(data["next_actions"][0], data["actions"][1])
    np.testing.assert_array_equal(data["next_actions"][4], data["actions"][4])  # last step repeats its own action
    assert (np.abs(data["actions"]) <= 1).all()
    assert data["costs"].tolist() == (np.abs(data["next_obs"][:, 0]) > 1).astype(float).tolist()


def test_scripted_task_policies() -> None:
    obs = np.zeros(60)
    obs[12] = 1.0  # goal straight ahead (bin 0 is just left of the heading)
    action = goal_seeking_policy(obs)
    assert action[0] == 1.0 and 0 < action[1] < 0.5
    obs[12], obs[20] = 0.0, 1.0  # goal behind: turn, slow
    assert goal_seeking_policy(obs)[0] == np.float32(0.2)
    ball = np.zeros(8, np.float32)
    ball[0] = 0.7  # at (7, 0), at rest: push clockwise (-y)
    assert circling_policy(ball).tolist() == pytest.approx([0.0, -0.8], abs=1e-6)
    assert set(TASK_POLICIES) == {"SafetyPointGoal1-v0", "SafetyBallCircle-v0"}


def test_pipeline_rows_on_the_point_env() -> None:
    def policy(obs: np.ndarray) -> np.ndarray:
        return np.array([0.6], np.float32)  # drives out of [-1, 1]

    config = ShieldEvalConfig(
        "Point",
        collect_episodes=60,
        random_prob=0.7,
        calib_fraction=0.5,
        fit_steps=400,
        batch_size=128,
        net_arch=(32, 32),
        eval_episodes=2,
        label_horizon=1,
        target_rate=0.2,
        gamma=0.5,
        backup="min_risk",
    )
    result = run_shield_eval(config, policy, make_env=lambda: PointEnv(horizon=10), progress=False)
    bare, shielded = result.rows
    assert [bare["variant"], shielded["variant"]] == ["unshielded", "shielded"]
    assert bare["cost_mean"] == 9.0  # x = 0.6, 1.2, ... leaves [-1, 1] at step 2 and never returns
    assert shielded["cost_mean"] <= 0.2 * bare["cost_mean"]
    assert shielded["shield_rate"] > 0
    assert result.calibration is not None and result.threshold == result.calibration["threshold"]
    assert result.n_transitions == 60 * 10
    assert set(result.seconds) == {"collect", "fit", "eval_unshielded", "eval_shielded"}
    with pytest.raises(ValueError, match="no scripted task policy"):
        run_shield_eval(ShieldEvalConfig("Unknown-v0"), make_env=PointEnv)


def test_hazard_margin_features_and_feature_critic() -> None:
    from shieldgym.shield_eval import FeatureCritic, HazardMarginFeatures

    obs = np.zeros((2, 60), np.float32)
    obs[0, 28], obs[0, 3] = 0.9, 1.0  # hazard 0.3 m just left of ahead (bin 0), driving at it at 1 m/s
    obs[1, 36], obs[1, 3] = 0.9, 1.0  # the same hazard behind (bin 8): moving away
    extra = HazardMarginFeatures()(obs)[:, 60:]
    closing = float(np.cos(np.pi / 16))
    assert extra[0].tolist() == pytest.approx([0.3, closing, 0.1 - closing**2 / 6.0], abs=1e-6)
    assert extra[1].tolist() == pytest.approx([0.3, -closing, 0.1], abs=1e-6)
    critic = FeatureCritic(lambda o, a: o[:, 62] + a[:, 0], HazardMarginFeatures())
    assert critic(obs, np.array([[1.0, 0.0], [0.0, 0.0]], np.float32)).tolist() == pytest.approx(
        [1.1 - closing**2 / 6.0, 0.1], abs=1e-6
    )


def test_collect_holds_random_actions() -> None:
    data = collect_transitions(
        PointEnv(horizon=20), lambda o: np.array([0.0], np.float32), 1, seed=0, random_prob=1.0, noise_std=0.0, hold_steps=5
    )
    acts = data["actions"][:, 0]
    for start in range(0, 20, 5):  # every step starts a random action, each kept for 5 steps
        assert np.all(acts[start : start + 5] == acts[start])
    assert len(np.unique(acts)) == 4
    with pytest.raises(ValueError, match="hold_steps"):
        collect_transitions(PointEnv(horizon=5), lambda o: np.zeros(1, np.float32), 1, hold_steps=0)


def test_lidar_retreat_backup_exact_actions() -> None:
    from shieldgym.backup import LidarRetreatBackup

    backup = LidarRetreatBackup(range(4), max_dist=3.0, near=0.5, far=1.0)
    backup.bind(gym.spaces.Box(-1.0, 1.0, (2,), np.float32), None)
    # hazard at 0.3 m, front right (bin 3 of 4, at -45 deg): straight away = back left, so reverse and
    # swing the rear to the left
    assert backup(np.array([0.0, 0.0, 0.0, 0.9])).tolist() == pytest.approx([-np.sqrt(0.5), -1.0], abs=1e-6)
    # the same hazard 1.5 m away: its tangent nearer the heading (front left, +45 deg)
    assert backup(np.array([0.0, 0.0, 0.0, 0.5])).tolist() == pytest.approx([np.sqrt(0.5), 1.0], abs=1e-6)
    assert backup(np.zeros(4)).tolist() == [0.0, 0.0]  # nothing seen: brake
    with pytest.raises(ValueError, match="near < far"):
        LidarRetreatBackup(range(4), near=1.0, far=0.5)
    with pytest.raises(TypeError, match="1-D Box"):
        LidarRetreatBackup(range(4)).bind(gym.spaces.Discrete(3), None)


def test_lidar_navigation_backup_exact_actions() -> None:
    from shieldgym.backup import LidarNavigationBackup

    backup = LidarNavigationBackup(range(0, 4), range(4, 8), (8, 9))
    backup.bind(gym.spaces.Box(-1.0, 1.0, (2,), np.float32), None)
    obs = np.zeros(10)
    obs[4] = 0.5  # goal at +45 deg, no hazard: half force, full left turn
    assert backup(obs).tolist() == pytest.approx([np.sqrt(0.5), 1.0], abs=1e-6)
    obs[0] = 0.5  # a hazard 1.5 m away (beyond influence 0.7) changes nothing
    assert backup(obs).tolist() == pytest.approx([np.sqrt(0.5), 1.0], abs=1e-6)
    obs[0] = 0.9  # the hazard at 0.3 m in the goal's direction: the field points back, reverse
    still = backup(obs)
    assert still[0] < 0 and still[1] == pytest.approx(-0.6771114, abs=1e-6)
    obs[8] = 1.0  # closing at 1 m/s: cannot stop before it, full reverse force
    assert backup(obs).tolist() == pytest.approx([-1.0, -0.6771114], abs=1e-6)
    behind = np.zeros(10)
    behind[6] = 0.5  # goal at -135 deg: reverse with the rear turned towards it
    assert backup(behind).tolist() == pytest.approx([-np.sqrt(0.5), 1.0], abs=1e-6)
    with pytest.raises(ValueError, match="velocity_index"):
        LidarNavigationBackup(range(4), range(4, 8), (8,))
    with pytest.raises(TypeError, match="shape"):
        LidarNavigationBackup(range(4), range(4, 8), (8, 9)).bind(gym.spaces.Box(-1.0, 1.0, (3,)), None)


def test_goal_seeking_policy_without_the_goal_in_range() -> None:
    obs = np.zeros(60)
    obs[32] = 0.5  # goal out of range; a hazard at bin 4 (+101.25 deg): turn left towards it, slowly
    assert goal_seeking_policy(obs).tolist() == [np.float32(0.2), 1.0]
    assert goal_seeking_policy(np.zeros(60)).tolist() == [-1.0, 0.0]  # nothing seen at all: reverse
