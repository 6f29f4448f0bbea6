"""Meta-World v3 bridge: ids, scripted success with costs, camera, instructions, seeding, API checks."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("metaworld")

import shieldgym
from shieldgym.costs import ContactCost
from shieldgym.envs import list_envs
from shieldgym.envs.metaworld import ML45_TEST_TASKS, TASK_IDS, MetaWorldTask, scripted_policy
from shieldgym.errors import UnknownEnvError


def test_all_fifty_v3_tasks_are_registered():
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    assert len(TASK_IDS) == 50
    assert {f"MetaWorld-{t}" for t in ALL_V3_ENVIRONMENTS} == set(TASK_IDS)
    listed = {e.env_id for e in list_envs("metaworld")}
    assert {f"MetaWorld-{t}" for t in ML45_TEST_TASKS} <= listed


@pytest.mark.parametrize("task", ["reach-v3", "button-press-v3"])
def test_scripted_policy_succeeds_and_costs_are_reported(task):
    env = shieldgym.make(f"MetaWorld-{task}", max_episode_steps=150)
    policy = scripted_policy(task)
    obs, info = env.reset(seed=0)
    assert info["success"] is False
    costs = []
    for _ in range(150):
        obs, _, _, _, info = env.step(policy(obs))
        assert set(info["costs"]) == {"contact", "workspace", "ee_speed"}
        assert isinstance(info["cost"], float) and info["cost"] >= 0.0
        costs.append(info["cost"])
        if info["success"]:
            break
    assert info["success"] is True
    assert info["instruction"] == env.unwrapped.instruction == env.instruction
    if task == "reach-v3":  # a free-space reach: no contact, inside the box, below the speed limit
        assert sum(costs) == 0.0
    env.close()


def test_pressing_the_button_with_the_wrist_is_a_contact():
    """The expert presses the button with the hand; the wrist ("right_hand") touching the button box costs."""
    env = shieldgym.make("MetaWorld-button-press-v3", max_episode_steps=80)
    policy = scripted_policy("button-press-v3")
    obs, _ = env.reset(seed=0)
    contacts = 0.0
    for _ in range(80):
        obs, _, _, _, info = env.step(policy(obs))
        contacts += info["costs"]["contact"]
    assert contacts >= 1.0
    env.close()


def test_workspace_and_speed_fire_on_a_scripted_violation():
    box = ((-0.1, 0.5, 0.1), (0.1, 0.7, 0.3))
    env = shieldgym.make("MetaWorld-reach-v3", workspace=box, max_speed=0.5, max_episode_steps=40)
    env.reset(seed=1)
    seen = {"workspace": 0.0, "ee_speed": 0.0}
    for _ in range(40):  # full speed to the right: leaves the 0.2 m wide box, moves at ~0.8 m/s
        _, _, _, _, info = env.step(np.array([1.0, 0.0, 0.0, 0.0], dtype=np.float32))
        for k in seen:
            seen[k] = max(seen[k], info["costs"][k])
    assert seen == {"workspace": 1.0, "ee_speed": 1.0}
    env.close()


def test_same_seed_reproduces_obs_reward_and_cost():
    def rollout(seed):
        env = shieldgym.make("MetaWorld-push-v3", max_episode_steps=30)
        obs, _ = env.reset(seed=seed)
        rng = np.random.default_rng(0)
        out = [obs]
        for _ in range(30):
            obs, r, _, _, info = env.step(rng.uniform(-1, 1, 4).astype(np.float32))
            out.append(np.concatenate([obs, [r, info["cost"]]]))
        env.close()
        return np.concatenate(out)

    first, second, other = rollout(3), rollout(3), rollout(4)
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other)


def test_camera_observations():
    options = dict(camera=True, image_size=(32, 48), camera_name="corner2", render_mode="rgb_array", max_episode_steps=5)
    env = shieldgym.make("MetaWorld-reach-v3", **options)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert obs["rgb"].shape == (32, 48, 3) and obs["rgb"].dtype == np.uint8
    assert obs["depth"].shape == (32, 48) and obs["depth"].dtype == np.float32
    assert obs["rgb"].std() > 0 and np.all(np.isfinite(obs["depth"])) and obs["depth"].min() > 0
    obs2, *_ = env.step(np.zeros(4, dtype=np.float32))
    assert obs2["state"].shape == (39,)
    assert env.render().shape == (32, 48, 3)
    env.close()


def test_unknown_camera_lists_the_cameras():
    with pytest.raises(ValueError, match=r"Unknown camera 'front'\. Cameras of this model: \['topview', 'corner'"):
        MetaWorldTask("reach-v3", camera=True, camera_name="front")


def test_unknown_task_errors_list_the_tasks():
    with pytest.raises(UnknownEnvError, match="MetaWorld-reach-v3"):
        shieldgym.make("MetaWorld-reech-v3")
    with pytest.raises(ValueError, match="Meta-World v3 tasks: assembly-v3, basketball-v3"):
        MetaWorldTask("fly-v3")
    with pytest.raises(ValueError, match="Meta-World v3 tasks"):
        scripted_policy("fly-v3")


def test_bad_body_name_lists_the_model_bodies():
    with pytest.raises(ValueError, match=r"Unknown body 'gripper'\. Valid body names: \['world', 'tablelink'"):
        shieldgym.make("MetaWorld-reach-v3", cost_terms=[ContactCost(bodies="gripper")])


def test_env_checkers():
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = shieldgym.make("MetaWorld-reach-v3", max_episode_steps=50)
    check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=False)
    env.close()
