"""The shielded-vs-unshielded pipeline on the scripted point env (tiny data and fit)."""

from __future__ import annotations

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
