"""RoboSuite 1.5 bridge: Gymnasium API, costs on scripted motions, camera, seeding, errors."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("robosuite")

import shieldgym
from shieldgym.costs import JointLimitCost
from shieldgym.envs.robosuite import make_robosuite
from shieldgym.errors import UnknownEnvError

HOLD = np.zeros(7, dtype=np.float32)
LEFT = np.array([0, 1, 0, 0, 0, 0, 0], dtype=np.float32)  # OSC: move the gripper along +y at full speed


@pytest.fixture(scope="module")
def lift():
    env = shieldgym.make("RoboSuite-Lift-Panda-v0", max_speed=0.2, max_episode_steps=50)
    yield env
    env.close()


def test_costs_zero_when_holding_and_fire_when_leaving_the_workspace(lift):
    _, info = lift.reset(seed=0)
    assert info == {"success": False, "instruction": "lift the cube off the table"}
    for _ in range(5):
        _, _, _, _, info = lift.step(HOLD)
        assert info["costs"] == {"contact": 0.0, "joint_limit": 0.0, "torque": 0.0, "ee_speed": 0.0, "workspace": 0.0}
        assert info["cost"] == 0.0 and info["success"] is False
    peak = dict.fromkeys(info["costs"], 0.0)
    for _ in range(45):  # ~0.26 m/s sideways: faster than 0.2 m/s, and past y = 0.5 m after ~40 steps
        _, _, _, truncated, info = lift.step(LEFT)
        peak = {k: max(v, info["costs"][k]) for k, v in peak.items()}
    assert peak["ee_speed"] == 1.0 and peak["workspace"] == 1.0
    assert peak["contact"] == 0.0
    assert truncated is True  # 5 + 45 steps: the 50-step horizon


def test_same_seed_reproduces(lift):
    def rollout(seed):
        obs, _ = lift.reset(seed=seed)
        rng = np.random.default_rng(1)
        rows = [obs]
        for _ in range(8):
            obs, r, _, _, info = lift.step(rng.uniform(-1, 1, 7).astype(np.float32))
            rows.append(np.concatenate([obs, [r, info["cost"]]]))
        return np.concatenate(rows)

    np.testing.assert_array_equal(rollout(5), rollout(5))
    assert not np.array_equal(rollout(5)[:60], rollout(6)[:60])  # another cube placement


def test_env_checkers(lift):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    check_env(lift, skip_render_check=True)
    sb3_check_env(lift, warn=False)


def test_door_with_camera():
    env = shieldgym.make("RoboSuite-Door-Panda-v0", camera=True, image_size=(24, 32), max_episode_steps=3)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert obs["rgb"].shape == (24, 32, 3) and obs["depth"].shape == (24, 32)
    assert obs["rgb"].std() > 0 and obs["depth"].min() > 0
    _, _, _, _, info = env.step(HOLD)
    assert info["instruction"] == env.instruction == "open the door"
    assert set(info["costs"]) == {"contact", "joint_limit", "torque", "ee_speed", "workspace"}
    env.close()


def test_unknown_ids_and_bad_names():
    with pytest.raises(UnknownEnvError, match="RoboSuite-Lift-Panda-v0"):
        shieldgym.make("RoboSuite-Lift-Pand-v0")
    with pytest.raises(ValueError, match="RoboSuite tasks: RoboSuite-Lift-Panda-v0, RoboSuite-PickPlace-Panda-v0"):
        make_robosuite("RoboSuite-Wipe-Panda-v0")
    with pytest.raises(ValueError, match=r"Unknown joint 'robot0_elbow'\. Valid joint names: \['robot0_joint1'"):
        shieldgym.make("RoboSuite-Lift-Panda-v0", cost_terms=[JointLimitCost(joints="robot0_elbow")])
