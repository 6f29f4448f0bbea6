"""Bullet-Safety-Gym 1.4.0 through shieldgym's bridge."""

from __future__ import annotations

import importlib.util
import random
import warnings

import gymnasium as gym
import numpy as np
import pytest

import shieldgym
from shieldgym.envs import bullet_safety_gym as bsg
from shieldgym.errors import MissingDependencyError

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("bullet_safety_gym") is None, reason="bullet-safety-gym not installed"
)


def _package_ids() -> dict[str, int]:
    import bullet_safety_gym  # noqa: F401  (registers its ids)

    return {
        k: spec.max_episode_steps
        for k, spec in gym.registry.items()
        if isinstance(spec.entry_point, str) and spec.entry_point.startswith("bullet_safety_gym")
    }


def test_static_id_list_equals_what_the_package_registers():
    assert _package_ids() == bsg.BULLET_SAFETY_GYM_TASKS
    assert bsg.SUITE.task_ids == tuple(bsg.BULLET_SAFETY_GYM_TASKS)
    assert shieldgym.envs.suite_of("SafetyBallCircle-v0").name == "bullet-safety-gym"


@pytest.mark.parametrize("env_id", ["SafetyBallCircle-v0", "SafetyCarRun-v0"])
def test_gymnasium_and_sb3_env_checkers_pass(env_id):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = shieldgym.make(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env, skip_render_check=True)
        sb3_check_env(env)
    env.close()


def _own_env(env_id: str, layout_seed: int) -> gym.Env:
    # The package's env draws from the global generators: seed them as the bridge seeds its private streams.
    np.random.seed(layout_seed)
    random.seed(layout_seed)
    with bsg._named_std_streams():  # the package cannot build under pytest's captured streams otherwise
        return gym.make(env_id, disable_env_checker=True).unwrapped


@pytest.mark.parametrize("env_id", ["SafetyCarReach-v0", "SafetyCarGather-v0"])  # no moving obstacles
def test_same_seed_and_actions_match_the_package_env(env_id):
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        own = _own_env(env_id, 0)
        env = shieldgym.make(env_id)
        actions = np.random.default_rng(1).uniform(-1, 1, size=(2, 40, *env.action_space.shape)).astype(np.float32)
        for ep, seed in enumerate((5, 6)):
            np.random.seed(seed)
            obs_own, _ = own.reset()
            obs, _ = env.reset(seed=seed)
            np.testing.assert_array_equal(obs, obs_own)
            for a in actions[ep]:
                o_own, r_own, te_own, tr_own, info_own = own.step(a)
                assert not tr_own  # the package never truncates by itself
                o, r, te, tr, info = env.step(a)
                np.testing.assert_array_equal(o, o_own)
                assert r == r_own and te == te_own and not tr
                assert info["cost"] == float(info_own["cost"])
                assert info["costs"] == {k: float(v) for k, v in info_own.items() if k.startswith("cost_")}
        own.close()
        env.close()
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)


def test_reset_seed_reproduces_episodes_across_instances_and_leaves_global_rng_alone():
    np_state, py_state = np.random.get_state(), random.getstate()

    def episode(env: gym.Env, seed: int) -> list[np.ndarray]:
        obs, _ = env.reset(seed=seed)
        out = [obs]
        for _ in range(20):
            out.append(env.step(np.full(2, 0.7, dtype=np.float32))[0])
        return out

    # SafetyBallReach-v0 has a circling box: it follows simulated time, so this holds on any machine speed.
    a, b = shieldgym.make("SafetyBallReach-v0"), shieldgym.make("SafetyBallReach-v0")
    ep_a, ep_b = episode(a, 11), episode(b, 11)
    for x, y in zip(ep_a, ep_b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(episode(a, 12)[0], ep_a[0])
    assert np.array_equal(np.random.get_state()[1], np_state[1]) and random.getstate() == py_state
    a.close()
    b.close()


def test_cost_is_validated_and_components_reported():
    # Full throttle straight on the Run track crosses its boundary or speed limit: cost turns 1.
    env = shieldgym.make("SafetyBallRun-v0")
    env.reset(seed=0)
    seen = []
    done = False
    while not done:
        _, _, te, tr, info = env.step(np.array([1.0, 0.0], dtype=np.float32))
        assert isinstance(info["cost"], float)
        assert info["cost"] == min(1.0, sum(info["costs"].values()))
        seen.append(info["cost"])
        done = te or tr
    assert 1.0 in seen and seen[0] == 0.0
    assert len(seen) == 100  # the package's time limit for SafetyBallRun-v0
    env.close()


def test_wrong_action_and_bad_arguments_are_clear():
    env = shieldgym.make("SafetyBallCircle-v0")
    with pytest.raises(gym.error.ResetNeeded):
        env.step(np.zeros(2, dtype=np.float32))
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(2,\).*got shape \(4,\)"):
        env.step(np.zeros(4))
    with pytest.raises(ValueError, match="render_mode"):
        shieldgym.make("SafetyBallCircle-v0", render_mode="depth_array")
    with pytest.raises(ValueError, match="max_episode_steps"):
        shieldgym.make("SafetyBallCircle-v0", max_episode_steps=0)
    with pytest.raises(ValueError, match="obstacle_clock"):
        shieldgym.make("SafetyBallReach-v0", obstacle_clock="cpu")
    env.close()


def test_rgb_render_headless():
    env = shieldgym.make("SafetyBallCircle-v0", render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8
    assert float(frame.std()) > 0.0
    env.close()


def test_missing_package_names_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a, **k: None if n == "bullet_safety_gym" else real(n, *a, **k))
    with pytest.raises(MissingDependencyError, match=r"pip install --no-deps bullet-safety-gym==1\.4\.0"):
        shieldgym.make("SafetyBallCircle-v0")
    assert not bsg.SUITE.installed
