"""The scripted 1-D point env and known critic used by every shield test (and tests of the env itself).

x' = x + clip(a, -1, 1); cost 1 when |x'| > 1; reward a; 20 steps. The critic ``|x + a|`` is the
distance from the origin after the step, so with threshold 1 the shield vetoes exactly the actions
that would leave [-1, 1].
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest


class PointEnv(gym.Env):
    """x' = x + a (a in [-1, 1]); cost 1 when |x'| > 1; reward a; ``horizon`` steps; brake action 0.

    Every executed action is appended to ``executed`` (so tests see what reached the env).
    """

    metadata = {"render_modes": []}
    brake_action = np.zeros(1, dtype=np.float32)

    def __init__(self, x0: float = 0.0, horizon: int = 20) -> None:
        self.observation_space = gym.spaces.Box(-100.0, 100.0, (1,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.x0, self.horizon = x0, horizon
        self.x = np.zeros(1, np.float32)
        self.t = 0
        self.executed: list[np.ndarray] = []
        self.nan_obs_at: int | None = None  # step index whose observation is NaN (fault injection)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        start = self.x0 if options is None else options.get("x0", self.x0)
        self.x = np.array([start], np.float32)
        self.t = 0
        return self.x.copy(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        a = np.asarray(action, np.float32).reshape(1)
        self.executed.append(a.copy())
        self.x = (self.x + np.clip(a, -1.0, 1.0)).astype(np.float32)
        self.t += 1
        cost = float(abs(self.x[0]) > 1.0)
        obs = self.x.copy()
        if self.nan_obs_at == self.t:
            obs[:] = np.nan
        return obs, float(a[0]), False, self.t >= self.horizon, {"cost": cost}


def next_position_risk(obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """risk(s, a) = |x + a|, the distance from the origin after the step."""
    return np.abs(obs[:, 0] + actions[:, 0]).astype(np.float64)


def test_point_env_dynamics_and_cost() -> None:
    env = PointEnv()
    obs, _ = env.reset(seed=0)
    assert obs.tolist() == [0.0]
    costs = []
    for a in (0.5, 0.5, 0.5, -1.0):
        obs, reward, _, _, info = env.step(np.array([a], np.float32))
        costs.append(info["cost"])
        assert reward == a
    assert obs.tolist() == [0.5]
    assert costs == [0.0, 0.0, 1.0, 0.0]


def test_known_critic_matches_cost_of_next_step() -> None:
    obs = np.array([[0.5], [0.5], [-0.75]], np.float32)
    act = np.array([[0.5], [0.75], [-0.5]], np.float32)
    assert next_position_risk(obs, act).tolist() == [1.0, 1.25, 1.25]


def test_shield_for_env_validates_the_critic_at_construction() -> None:
    from shieldgym.backup import BrakeBackup
    from shieldgym.wrappers.shield import Shield

    env = PointEnv()
    brake = BrakeBackup.from_env(env)
    shield = Shield.for_env(next_position_risk, brake, 1.0, env.action_space, env.observation_space)
    action, info = shield.filter(np.array([0.5], np.float32), np.array([0.75], np.float32))
    assert info["intervened"] is True and info["risk"] == 1.25 and action.tolist() == [0.0]

    def wrong_shape(obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        return np.zeros((len(obs), 2))

    with pytest.raises(ValueError, match="shape"):
        Shield.for_env(wrong_shape, brake, 1.0, env.action_space, env.observation_space)
    Shield.for_env(wrong_shape, brake, 1.0, env.action_space, env.observation_space, validate_critic=False)  # not called
