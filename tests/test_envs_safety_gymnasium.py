"""Safety-Gymnasium 1.0.0 through shieldgym's compatibility layer and bridge."""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import shieldgym
from shieldgym.envs import safety_gymnasium as sgb
from shieldgym.envs._sg_tasks import SAFETY_GYMNASIUM_TASK_IDS
from shieldgym.errors import MissingDependencyError, ShieldgymError

pytestmark = pytest.mark.skipif(importlib.util.find_spec("safety_gymnasium") is None, reason="safety-gymnasium not installed")


@pytest.fixture(scope="module")
def sg():
    return sgb.load_safety_gymnasium()


@pytest.fixture(scope="module")
def goal_env():
    env = shieldgym.make("SafetyPointGoal1-v0")
    yield env
    env.close()


def _package_dir() -> Path:
    spec = importlib.util.find_spec("safety_gymnasium")
    assert spec is not None and spec.origin is not None
    return Path(spec.origin).parent


def _hash_tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_static_id_list_equals_what_the_package_registers(sg):
    from safety_gymnasium.utils.registration import safe_registry

    assert len(SAFETY_GYMNASIUM_TASK_IDS) == len(set(SAFETY_GYMNASIUM_TASK_IDS)) == 298
    assert set(SAFETY_GYMNASIUM_TASK_IDS) == set(safe_registry)
    for env_id in SAFETY_GYMNASIUM_TASK_IDS:
        assert sgb.max_episode_steps_of(env_id) == gym.spec(env_id).max_episode_steps, env_id
    assert sgb.SUITE.task_ids == SAFETY_GYMNASIUM_TASK_IDS
    assert shieldgym.envs.suite_of("SafetyPointGoal1-v0").name == "safety-gymnasium"


def test_every_patch_matches_the_installed_source():
    for patch in sgb.PATCHES:
        for module in patch.modules:
            path = _package_dir().joinpath(*module.split(".")[1:]).with_suffix(".py")
            source = path.read_text(encoding="utf-8")
            patched = patch.apply(module, source)
            assert patched != source
            compile(patched, str(path), "exec")


def test_patch_on_unexpected_source_names_module_and_version():
    patch = sgb.PATCHES[1]
    with pytest.raises(ShieldgymError, match=r"safety_gymnasium\.utils\.registration.*1\.0\.0"):
        patch.apply("safety_gymnasium.utils.registration", "print('another version')\n")


def test_using_the_suite_changes_nothing_in_the_installed_package():
    # A fresh interpreter, so the import itself (where a .pyc would be written) is covered.
    before = _hash_tree(_package_dir())
    code = (
        "import shieldgym, numpy as np\n"
        "env = shieldgym.make('SafetyPointGoal0-v0')\n"
        "env.reset(seed=0)\n"
        "for _ in range(5): env.step(np.zeros(2))\n"
        "env.close()\n"
        "import safety_gymnasium\n"
        "assert safety_gymnasium.make('SafetyHopperVelocity-v1') is not None\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")
    assert _hash_tree(_package_dir()) == before
    # gymnasium-robotics' import-time notice about its Adroit tasks is not passed on
    assert "AdroitHand" not in out.stderr, out.stderr[-2000:]


def test_same_seed_and_actions_match_the_suites_own_six_tuple_step(sg, goal_env):
    own = sg.make("SafetyPointGoal1-v0")
    actions = np.random.default_rng(7).uniform(-1, 1, size=(60, 2))
    obs_own, _ = own.reset(seed=3)
    obs, _ = goal_env.reset(seed=3)
    np.testing.assert_array_equal(obs, obs_own)
    for a in actions:
        o_own, r_own, c_own, te_own, tr_own, info_own = own.step(a)
        o, r, te, tr, info = goal_env.step(a)
        np.testing.assert_array_equal(o, o_own)
        assert r == r_own
        assert info["cost"] == c_own == info_own["cost_sum"]
        assert info["costs"] == {"cost_hazards": info_own["cost_hazards"]}
        assert (te, tr) == (te_own, tr_own)
    # the bridge built its world without the skybox (it never renders), the suite's own env with it
    assert _has_skybox(own.unwrapped.task.model) and not _has_skybox(goal_env.unwrapped.suite_env.task.model)


def _has_skybox(model) -> bool:
    import mujoco

    return int(mujoco.mjtTexture.mjTEXTURE_SKYBOX) in model.tex_type.tolist()


def test_skybox_is_kept_wherever_a_frame_can_show_it():
    for env_id, mode in (
        ("SafetyPointGoal0-v0", "rgb_array"),
        ("SafetyPointGoal0-v0", "depth_array"),
        ("SafetyPointGoal0Vision-v0", None),
    ):
        env = shieldgym.make(env_id, render_mode=mode, width=48, height=64)
        env.reset(seed=0)
        assert _has_skybox(env.unwrapped.suite_env.task.model), (env_id, mode)
        env.reset(seed=1)  # a rebuilt world keeps it too
        assert _has_skybox(env.unwrapped.suite_env.task.model), (env_id, mode)
        env.close()
    env = shieldgym.make("SafetyPointGoal0-v0")
    env.reset(seed=0)
    env.reset(seed=1)
    assert not _has_skybox(env.unwrapped.suite_env.task.model)
    env.close()


def test_cost_is_the_suites_cost_and_components_are_reported():
    # Driving straight ahead leaves the circle's safe band: the cost must switch on and match the suite's.
    env = shieldgym.make("SafetyPointCircle1-v0")
    env.reset(seed=0)
    costs = []
    for _ in range(200):
        _, _, te, tr, info = env.step(np.array([1.0, 0.0]))
        assert set(info["costs"]) == {"cost_out_of_boundary"}
        assert info["cost"] == info["cost_sum"] == info["costs"]["cost_out_of_boundary"]
        assert isinstance(info["cost"], float)
        costs.append(info["cost"])
        if te or tr:
            break
    assert set(costs) == {0.0, 1.0}
    assert costs[0] == 0.0
    env.close()


@pytest.mark.parametrize(
    "env_id",
    ["SafetyPointGoal1-v0", pytest.param("SafetyCarCircle1-v0", marks=pytest.mark.slow), "SafetyHopperVelocity-v1"],
)
def test_gymnasium_and_sb3_env_checkers_pass(env_id):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = shieldgym.make(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # infinite obs bounds, float64 actions: the suite's choices
        check_env(env, skip_render_check=True)
        sb3_check_env(env)
    env.close()


def test_time_limits_are_the_suites():
    env = shieldgym.make("SafetyPointCircle0-v0")
    assert env._max_episode_steps == 500
    env.reset(seed=1)
    steps, done = 0, False
    while not done:
        _, _, te, tr, _ = env.step(np.zeros(2))
        steps += 1
        done = te or tr
    assert (steps, tr) == (500, True)
    assert shieldgym.make("SafetyHopperVelocity-v1")._max_episode_steps == 1000
    assert shieldgym.make("SafetyHopperVelocity-v1", max_episode_steps=7)._max_episode_steps == 7


def test_wrong_action_and_order_errors_are_clear(goal_env):
    fresh = shieldgym.make("SafetyPointGoal1-v0")
    with pytest.raises(gym.error.ResetNeeded):
        fresh.step(np.zeros(2))
    goal_env.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(2,\).*got shape \(3,\)"):
        goal_env.step(np.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        goal_env.step(np.array([np.nan, 0.0]))
    with pytest.raises(ValueError, match="render_mode"):
        shieldgym.make("SafetyPointGoal1-v0", render_mode="video")


def test_rgb_and_depth_render_headless():
    for mode, shape, dtype in (("rgb_array", (64, 48, 3), np.uint8), ("depth_array", (64, 48), np.float32)):
        env = shieldgym.make("SafetyPointGoal0-v0", render_mode=mode, width=48, height=64)
        env.reset(seed=0)
        env.step(np.zeros(2))
        frame = env.render()
        assert frame.shape == shape and frame.dtype == dtype
        assert float(frame.std()) > 0.0
        env.close()


def test_vision_task_observes_an_image():
    env = shieldgym.make("SafetyPointGoal0Vision-v0", render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    assert obs["vision"].shape == (256, 256, 3) and obs["vision"].dtype == np.uint8
    assert obs in env.observation_space
    obs, _, _, _, info = env.step(np.zeros(2))
    assert float(obs["vision"].std()) > 0.0
    np.testing.assert_array_equal(env.render(), obs["vision"])
    assert info["cost"] == 0.0
    env.close()


def test_missing_package_names_the_install_command(monkeypatch):
    real = importlib.util.find_spec

    def without(name, *args, **kwargs):
        return None if name == "safety_gymnasium" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", without)
    with pytest.raises(MissingDependencyError, match=r"pip install --no-deps safety-gymnasium==1\.0\.0"):
        shieldgym.make("SafetyPointGoal1-v0")
    assert not sgb.SUITE.installed


def test_missing_dependency_names_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a, **k: None if n == "gymnasium_robotics" else real(n, *a, **k)
    )
    with pytest.raises(MissingDependencyError, match=r"gymnasium_robotics.*shieldgym\[safety-gymnasium\]"):
        shieldgym.make("SafetyPointGoal1-v0")


def test_race_tasks_report_missing_textures_or_build(sg):
    missing = sgb._missing_race_assets(sg)
    if missing:
        with pytest.raises(MissingDependencyError, match=r"village_floor\.PNG"):
            shieldgym.make("SafetyPointRace0-v0")
    else:
        env = shieldgym.make("SafetyPointRace0-v0")
        obs, _ = env.reset(seed=0)
        assert obs in env.observation_space
