"""GuidedNavigationBackup: the safe action closest to the proposal, the navigation action when none is safe."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from shieldgym.backup.recovery import GuidedNavigationBackup, LidarNavigationBackup
from shieldgym.shield_eval import ShieldEvalConfig, _make_backup

SPACE = gym.spaces.Box(-1.0, 1.0, (2,))


def _navigation() -> LidarNavigationBackup:
    return LidarNavigationBackup(range(0, 4), range(4, 8), (8, 9))


def _obs() -> np.ndarray:
    obs = np.zeros(10)
    obs[4] = 0.5  # goal ahead-left (bin 0 of 4), no hazard, standing still: navigation action [0.707, 1.0]
    return obs


def test_the_closest_safe_candidate_wins() -> None:
    calls: list[np.ndarray] = []

    def risk(obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        calls.append(actions)
        return np.where(actions[:, 0] > 0.6, 1.0, 0.0)  # a force above 0.6 is risky

    backup = GuidedNavigationBackup(_navigation(), blends=(0.25, 0.5), throttle=(0.5, 0.0))
    backup.bind(SPACE, risk, threshold=0.5)
    proposal = np.array([1.0, -1.0])
    action = backup(_obs(), proposed=proposal)
    # candidates: throttle [0.5, -1], [0, -1]; blends towards b = [0.707, 1]: [0.927, -0.5], [0.854, 0]
    np.testing.assert_allclose(calls[0], [[0.5, -1.0], [0.0, -1.0], [0.92678, -0.5], [0.85355, 0.0]], atol=1e-5)
    np.testing.assert_allclose(action, [0.5, -1.0])  # the only safe candidates are the throttled ones; 0.5 is closer
    assert action.dtype == SPACE.dtype


def test_no_safe_candidate_gives_the_navigation_action() -> None:
    backup = GuidedNavigationBackup(_navigation())
    backup.bind(SPACE, lambda o, a: np.ones(len(a)), threshold=0.5)
    np.testing.assert_allclose(backup(_obs(), proposed=np.array([1.0, -1.0])), [0.70710677, 1.0])
    np.testing.assert_allclose(backup(_obs()), [0.70710677, 1.0])  # no proposal: the navigation action
    nan_risk = GuidedNavigationBackup(_navigation())
    nan_risk.bind(SPACE, lambda o, a: np.full(len(a), np.nan), threshold=0.5)
    np.testing.assert_allclose(nan_risk(_obs(), proposed=np.array([1.0, -1.0])), [0.70710677, 1.0])


def test_guided_backup_bad_input() -> None:
    with pytest.raises(ValueError, match="blends"):
        GuidedNavigationBackup(_navigation(), blends=(1.0,))
    with pytest.raises(ValueError, match="throttle"):
        GuidedNavigationBackup(_navigation(), throttle=(-0.1,))
    with pytest.raises(ValueError, match="critic and threshold"):
        GuidedNavigationBackup(_navigation()).bind(SPACE, None, None)
    with pytest.raises(RuntimeError, match="not bound"):
        GuidedNavigationBackup(_navigation())(_obs(), proposed=np.zeros(2))


def test_the_config_builds_guided_and_plain_navigation() -> None:
    config = ShieldEvalConfig("SafetyPointGoal1-v0", backup="guided_navigation", backup_kwargs=(("swirl", 2.0),))
    guided = _make_backup(config, gym.make("CartPole-v1"))
    assert isinstance(guided, GuidedNavigationBackup) and guided.navigation.swirl == 2.0
    plain = _make_backup(config, gym.make("CartPole-v1"), guided=False)
    assert isinstance(plain, LidarNavigationBackup) and plain.swirl == 2.0
