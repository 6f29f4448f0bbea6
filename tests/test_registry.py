"""The suite registry: shieldgym.make, gym.make("shieldgym/<id>"), make_vec, list_envs and id errors."""

from __future__ import annotations

import importlib.util

import gymnasium as gym
import numpy as np
import pytest

import shieldgym
from shieldgym.envs import registry
from shieldgym.errors import ShieldgymError, UnknownEnvError

needs_bullet = pytest.mark.skipif(importlib.util.find_spec("bullet_safety_gym") is None, reason="bullet-safety-gym missing")


def test_unknown_id_lists_close_matches():
    with pytest.raises(UnknownEnvError) as err:
        shieldgym.make("SafetyPointGoal-v0")
    message = str(err.value)
    assert "Unknown env id 'SafetyPointGoal-v0'" in message
    assert "Did you mean" in message and "SafetyPointGoal1-v0" in message
    assert isinstance(err.value, KeyError) and isinstance(err.value, ShieldgymError)


def test_unrelated_id_points_to_the_listing_command():
    with pytest.raises(UnknownEnvError, match="shieldgym envs"):
        shieldgym.make("zzzz")


def test_unknown_suite_lists_the_known_ones():
    with pytest.raises(UnknownEnvError, match=r"safety-gymnasium.*bullet-safety-gym"):
        registry.get_suite("no-such-suite")


def test_both_benchmark_suites_are_registered_with_static_lists():
    names = [s.name for s in registry.suites()]
    assert "safety-gymnasium" in names and "bullet-safety-gym" in names
    assert registry.suite_of("shieldgym/SafetyBallCircle-v0").name == "bullet-safety-gym"
    assert registry.suite_of("SafetyCarGoal2-v0").name == "safety-gymnasium"
    rows = registry.list_envs("bullet-safety-gym")
    assert [r.env_id for r in rows][:2] == ["SafetyBallReach-v0", "SafetyCarReach-v0"] and len(rows) == 18
    assert "shieldgym/SafetyPointGoal1-v0" in gym.registry


def test_an_id_cannot_be_registered_by_two_suites():
    suite = registry.Suite("imposter", requires=(), task_ids=("SafetyBallCircle-v0",), factory=lambda env_id: None)
    with pytest.raises(ValueError, match="already provided by suite 'bullet-safety-gym'"):
        registry.register_suite(suite)


@needs_bullet
def test_gym_make_with_namespace_gives_the_bridged_env():
    env = gym.make("shieldgym/SafetyBallCircle-v0")
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.zeros(2, dtype=np.float32))
    assert isinstance(info["cost"], float) and info["cost"] >= 0.0
    # Bullet tasks do not replay a trajectory exactly from a seed: the Gymnasium spec says so
    assert env.spec is not None and env.spec.nondeterministic
    assert not gym.spec("shieldgym/SafetyPointGoal1-v0").nondeterministic
    env.close()


@needs_bullet
def test_make_vec_reports_costs_as_an_array():
    envs = shieldgym.make_vec("SafetyBallRun-v0", num_envs=2)
    envs.reset(seed=[0, 1])
    for _ in range(3):
        _, _, _, _, infos = envs.step(np.ones((2, 2), dtype=np.float32))
    assert infos["cost"].shape == (2,)
    envs.close()
    with pytest.raises(ValueError, match="num_envs"):
        shieldgym.make_vec("SafetyBallRun-v0", num_envs=0)
