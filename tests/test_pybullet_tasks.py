"""PyBullet robot tasks and the hardware-style interface: costs, latency, noise, emergency stop, seeding."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pybullet")

import shieldgym
from shieldgym.costs import ContactCost, JointLimitCost
from shieldgym.envs.pybullet_tasks import TASK_IDS, make_pybullet_task
from shieldgym.errors import UnknownEnvError

DOWN = np.array([0.0, 0.0, -1.0], dtype=np.float32)


@pytest.fixture()
def panda():
    env = shieldgym.make("PandaRearrange-v0", max_episode_steps=60)
    yield env
    env.close()


def test_panda_holding_still_costs_nothing(panda):
    _, info = panda.reset(seed=0)
    assert info["instruction"] == panda.instruction
    for _ in range(10):
        _, _, _, _, info = panda.step(panda.brake_action)
        assert info["costs"] == {"collision": 0.0, "joint_limit": 0.0, "ee_speed": 0.0, "workspace": 0.0}


def test_panda_safe_motion_in_the_air_costs_nothing(panda):
    panda.reset(seed=0)
    for k in range(30):
        a = np.array([0.5, 0.5 if k < 15 else -0.5, 0.2], dtype=np.float32)  # 0.2 m/s along x, y swings back
        _, _, _, _, info = panda.step(a)
        assert info["cost"] == 0.0, info["costs"]


def test_panda_driving_into_the_table_collides_and_leaves_the_workspace(panda):
    panda.reset(seed=0)
    peak = {"collision": 0.0, "workspace": 0.0}
    for _ in range(40):
        _, _, _, _, info = panda.step(DOWN)
        peak = {k: max(v, info["costs"][k]) for k, v in peak.items()}
    assert peak == {"collision": 1.0, "workspace": 1.0}


def test_panda_joint_limit_term_fires_near_a_limit(panda):
    panda.reset(seed=0)
    p, cid, body = panda.unwrapped.p, panda.unwrapped.bullet_client_id, panda.unwrapped.bullet_bodies["panda"]
    p.resetJointState(body, 0, 2.95, physicsClientId=cid)  # joint1 limit is 2.9671 rad: 0.017 rad away
    term = next(t for t in panda.terms if t.name == "joint_limit")
    assert term.compute(None) == 1.0
    p.resetJointState(body, 0, 0.0, physicsClientId=cid)
    assert term.compute(None) == 0.0


def test_emergency_stop_brakes_and_terminates(panda):
    panda.reset(seed=0)
    panda.step(np.ones(3, dtype=np.float32))
    panda.emergency_stop()
    assert panda.unwrapped.emergency_stopped
    _, _, terminated, _, info = panda.step(np.ones(3, dtype=np.float32))
    np.testing.assert_array_equal(info["action_applied"], np.zeros(3, dtype=np.float32))
    assert info["emergency_stop"] is True and terminated is True
    _, info = panda.reset(seed=0)
    assert info["emergency_stop"] is False and not panda.unwrapped.emergency_stopped


def test_actions_are_clipped(panda):
    panda.reset(seed=0)
    _, _, _, _, info = panda.step(np.array([3.0, -7.0, 0.5], dtype=np.float32))
    np.testing.assert_array_equal(info["action_applied"], np.array([1.0, -1.0, 0.5], dtype=np.float32))


def rollout(env_id, seed, steps=15, **kwargs):
    env = shieldgym.make(env_id, **kwargs)
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(7)
    obs_list, rows = [obs], []
    for _ in range(steps):
        obs, r, _, _, info = env.step(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32))
        obs_list.append(obs)
        rows.append([r, info["cost"]])
    env.close()
    return np.array(obs_list), np.array(rows)


@pytest.mark.parametrize("env_id", TASK_IDS)
def test_same_seed_reproduces(env_id):
    obs_a, rows_a = rollout(env_id, 3)
    obs_b, rows_b = rollout(env_id, 3)
    obs_c, _ = rollout(env_id, 4)
    np.testing.assert_array_equal(obs_a, obs_b)
    np.testing.assert_array_equal(rows_a, rows_b)
    assert not np.array_equal(obs_a[0], obs_c[0])


def test_sensor_latency_delays_the_observation():
    obs_now, _ = rollout("PandaRearrange-v0", 1, steps=6)
    obs_late, _ = rollout("PandaRearrange-v0", 1, steps=6, sensor_latency=2)
    np.testing.assert_array_equal(obs_late[2:], obs_now[:-2])
    np.testing.assert_array_equal(obs_late[:3], np.repeat(obs_now[:1], 3, axis=0))


def test_sensor_noise_is_seeded_gaussian():
    clean, _ = rollout("PandaRearrange-v0", 1, steps=6)
    noisy_a, _ = rollout("PandaRearrange-v0", 1, steps=6, sensor_noise_std=0.01)
    noisy_b, _ = rollout("PandaRearrange-v0", 1, steps=6, sensor_noise_std=0.01)
    np.testing.assert_array_equal(noisy_a, noisy_b)
    err = (noisy_a[:1] - clean[:1]).ravel()  # before any action the true states agree
    assert 0.003 < err.std() < 0.03


def test_husky_instruction_and_collision():
    env = shieldgym.make("HuskyNav-v0", max_episode_steps=40)
    obs, info = env.reset(seed=0)
    target = info["target"]
    assert info["instruction"] == f"go to the {target} object" == env.instruction == env.unwrapped.instruction
    one_hot = obs[13:16]
    assert one_hot.tolist() == [float(c == target) for c in ("red", "green", "blue")]
    for _ in range(5):
        _, _, _, _, info = env.step(env.brake_action)
        assert info["costs"] == {"collision": 0.0}
    u = env.unwrapped
    u.p.resetBasePositionAndOrientation(
        u.bullet_bodies["obstacle0"], (1.2, 0.0, 0.3), (0, 0, 0, 1), physicsClientId=u.bullet_client_id
    )
    hits = 0.0
    for _ in range(30):  # straight ahead at 1 m/s into the box 1.2 m away
        _, _, _, _, info = env.step(np.array([1.0, 0.0], dtype=np.float32))
        hits += info["costs"]["collision"]
    assert hits >= 1.0
    env.close()


def test_camera_observation_from_the_tiny_renderer():
    env = shieldgym.make("HuskyNav-v0", camera=True, image_size=(24, 32), max_episode_steps=3)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert obs["rgb"].shape == (24, 32, 3) and obs["rgb"].dtype == np.uint8
    assert obs["depth"].shape == (24, 32) and obs["depth"].dtype == np.float32
    assert obs["rgb"].std() > 0 and 0.0 < obs["depth"].min() <= obs["depth"].max() <= env.unwrapped.far + 1e-3
    env.close()


@pytest.mark.parametrize("env_id", TASK_IDS)
def test_env_checkers(env_id):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = shieldgym.make(env_id, max_episode_steps=20)
    check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=False)
    env.close()


def test_unknown_ids_and_bad_names():
    with pytest.raises(UnknownEnvError, match="PandaRearrange-v0"):
        shieldgym.make("PandaRearange-v0")
    with pytest.raises(ValueError, match="PyBullet tasks: PandaRearrange-v0, HuskyNav-v0"):
        make_pybullet_task("Quadruped-v0")
    with pytest.raises(ValueError, match=r"Unknown body 'panda/gripper'\. Valid body names: \['panda', 'table'"):
        shieldgym.make("PandaRearrange-v0", cost_terms=[ContactCost(bodies="panda/gripper")])
    with pytest.raises(ValueError, match=r"Unknown joint 'panda/elbow'\. Valid joint names: \['panda/panda_joint1'"):
        shieldgym.make("PandaRearrange-v0", cost_terms=[JointLimitCost(joints="panda/elbow")])


def test_bad_hardware_options():
    with pytest.raises(ValueError, match="sensor_latency"):
        shieldgym.make("PandaRearrange-v0", sensor_latency=-1)
    with pytest.raises(ValueError, match="control_dt"):
        shieldgym.make("PandaRearrange-v0", control_dt=0.013)


def test_shield_brake_backup_reads_the_task_brake_action():
    from shieldgym.wrappers.shield import ShieldWrapper

    def always_risky(obs, actions):
        return np.ones(len(actions), dtype=np.float32)

    env = ShieldWrapper(shieldgym.make("HuskyNav-v0", max_episode_steps=5), always_risky, threshold=0.5)
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([1.0, 0.5], dtype=np.float32))
    assert info["shield"]["intervened"]
    np.testing.assert_array_equal(info["action_applied"], env.unwrapped.brake_action)
    env.close()
