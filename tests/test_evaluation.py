"""rollout() and summarize() on a scripted env with known rewards and costs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from shieldgym.errors import CostSignalError
from shieldgym.evaluation import rollout, summarize


class ScriptedEnv(gym.Env):
    """Episodes of ``horizon`` steps; reward = action[0]; cost 1 on steps 2 and 4 (1-based); the shield
    "intervenes" on step 3. The first observation is the reset seed (so it is visible in records)."""

    def __init__(self, horizon: int = 5, cost: object = None) -> None:
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.horizon = horizon
        self.fixed_cost = cost
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([float(seed if seed is not None else -1)]), {}

    def step(self, action):
        self.t += 1
        cost = self.fixed_cost if self.fixed_cost is not None else float(self.t in (2, 4))
        info = {"cost": cost, "shield": {"intervened": self.t == 3}}
        return np.array([float(self.t)]), float(action[0]), False, self.t >= self.horizon, info


def test_records_are_exact_on_a_scripted_env():
    records = rollout(ScriptedEnv(), lambda obs: np.array([0.5], dtype=np.float32), n_episodes=3, seed=10)
    assert [r.seed for r in records] == [10, 11, 12]
    for r in records:
        assert (r.ret, r.cost, r.length, r.violations, r.interventions) == (2.5, 2.0, 5, 2, 1)
        assert r.seconds > 0


def test_summary_means_std_and_shield_rate():
    env = ScriptedEnv()
    records = rollout(env, lambda obs: np.array([0.5], dtype=np.float32), 2) + rollout(
        ScriptedEnv(horizon=3), lambda obs: np.array([1.0], dtype=np.float32), 2
    )
    s = summarize(records)
    assert s.episodes == 4
    assert s.ret_mean == pytest.approx((2.5 + 2.5 + 3.0 + 3.0) / 4)
    assert s.ret_std == pytest.approx(0.25)
    assert s.cost_mean == pytest.approx(1.5) and s.cost_std == pytest.approx(0.5)
    assert s.violations_mean == pytest.approx(1.5)
    assert s.length_mean == pytest.approx(4.0)
    assert s.shield_rate == pytest.approx(4 / 16)
    assert s.steps_per_s > 0


def test_max_steps_caps_episodes_and_random_policy_is_seeded():
    a = rollout(ScriptedEnv(horizon=50), None, 2, seed=3, max_steps=4)
    b = rollout(ScriptedEnv(horizon=50), None, 2, seed=3, max_steps=4)
    assert [r.length for r in a] == [4, 4]
    assert [r.ret for r in a] == [r.ret for r in b]
    assert a[0].ret != a[1].ret


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="n_episodes"):
        rollout(ScriptedEnv(), None, 0)
    with pytest.raises(CostSignalError, match="cost"):
        rollout(ScriptedEnv(cost=-1.0), None, 1)
    with pytest.raises(CostSignalError, match=r"NaN|finite"):
        rollout(ScriptedEnv(cost=float("nan")), None, 1)
    with pytest.raises(ValueError, match="at least one"):
        summarize([])
