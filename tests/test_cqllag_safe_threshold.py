"""tune_safe_threshold: choosing safe_predict's threshold from rollouts, exact on a scripted env; on a real CQLLag."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3.common.vec_env import DummyVecEnv

from shieldgym.algos.cqllag import CQLLag, SafeThresholdTuning, tune_safe_threshold
from shieldgym.errors import CostSignalError

EP_LEN = 4


class ActionCostEnv(gym.Env):
    """obs = [t], reward = a, cost = 1 when a > 0.5, EP_LEN steps per episode."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, cost_key: str | None = "cost") -> None:
        self.cost_key = cost_key
        self.observation_space = spaces.Box(0.0, float(EP_LEN), (1,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.t = 0
        self.reset_seeds: list[int | None] = []

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.reset_seeds.append(seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        a = float(np.asarray(action).reshape(-1)[0])
        info = {} if self.cost_key is None else {self.cost_key: float(a > 0.5)}
        return np.array([float(self.t)], np.float32), a, False, self.t >= EP_LEN, info


class ThresholdModel:
    """Plays action threshold / 10 (capped at 1) and records the candidate seeds it is given per threshold."""

    def __init__(self, cost_limit: float = 2.0) -> None:
        self.cost_limit, self.cost_key = cost_limit, "cost"
        env = ActionCostEnv()
        self.observation_space, self.action_space = env.observation_space, env.action_space
        self.seeds: dict[float, list[int]] = {}

    def safe_predict(self, obs: Any, n_samples: int, threshold: float, seed: int) -> np.ndarray:
        assert n_samples == 16
        self.seeds.setdefault(threshold, []).append(seed)
        return np.array([min(threshold / 10.0, 1.0)], np.float32)


def test_keeps_the_best_return_within_the_limit_exactly() -> None:
    model, env = ThresholdModel(cost_limit=2.0), ActionCostEnv()
    record = tune_safe_threshold(model, env, [8, 2, 5], n_episodes=3, seed=100)
    # actions 0.2, 0.5, 0.8 for EP_LEN = 4 steps: returns 0.8, 2.0, 3.2; only 0.8 > 0.5 costs (4 per episode)
    assert [r.threshold for r in record.results] == [2.0, 5.0, 8.0]
    np.testing.assert_allclose([r.ret_mean for r in record.results], [0.8, 2.0, 3.2], rtol=1e-6)
    assert [r.cost_mean for r in record.results] == [0.0, 0.0, 4.0]
    assert [r.ret_std for r in record.results] == pytest.approx([0.0, 0.0, 0.0], abs=1e-6)
    assert [r.within_limit for r in record.results] == [True, True, False]
    assert record.threshold == 5.0 and record.feasible and record.cost_limit == 2.0
    assert (record.n_episodes, record.n_samples, record.seed) == (3, 16, 100)
    # every candidate plays reset seeds 100, 101, 102 with the same per-step draws
    assert env.reset_seeds == [100, 101, 102] * 3
    assert len(model.seeds[2.0]) == 3 * EP_LEN
    assert model.seeds[2.0] == model.seeds[5.0] == model.seeds[8.0]
    assert len(set(model.seeds[2.0])) == len(model.seeds[2.0])
    assert "| 5 (chosen) | 2.00 ± 0.00 | 0.00 ± 0.00 | yes |" in record.table()
    assert record.as_dict()["results"][2]["cost_mean"] == 4.0


def test_a_looser_limit_admits_the_larger_threshold() -> None:
    record = tune_safe_threshold(ThresholdModel(), ActionCostEnv(), [2, 5, 8], n_episodes=1, cost_limit=4.0)
    assert record.threshold == 8.0 and record.feasible


def test_ties_go_to_the_lower_threshold() -> None:
    # 10 and 20 both play action 1 (return 4, cost 4): same return, the lower threshold is kept
    record = tune_safe_threshold(ThresholdModel(), ActionCostEnv(), [20, 10], n_episodes=1, cost_limit=4.0)
    assert record.threshold == 10.0


def test_no_candidate_within_the_limit_warns_and_keeps_the_least_costly() -> None:
    with pytest.warns(UserWarning, match="no candidate threshold kept the mean episode cost within 1"):
        record = tune_safe_threshold(ThresholdModel(), ActionCostEnv(), [9, 6, 7], n_episodes=2, cost_limit=1.0)
    # all three cost 4 per episode: the lowest threshold of the tie
    assert record.threshold == 6.0 and not record.feasible


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(thresholds=[]), ValueError, "thresholds is empty"),
        (dict(thresholds=[1.0, math.nan]), ValueError, "finite"),
        (dict(thresholds=[1.0, 1.0]), ValueError, "repeated"),
        (dict(thresholds="abc"), ValueError, "sequence of numbers"),
        (dict(thresholds=[1.0], n_episodes=0), ValueError, "n_episodes"),
        (dict(thresholds=[1.0], n_samples=0), ValueError, "n_samples"),
        (dict(thresholds=[1.0], cost_limit=-1.0), ValueError, "cost_limit"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        tune_safe_threshold(ThresholdModel(), ActionCostEnv(), **kwargs)


def test_wrong_env_is_refused() -> None:
    model = ThresholdModel()
    with pytest.raises(TypeError, match="not a VecEnv"):
        tune_safe_threshold(model, DummyVecEnv([ActionCostEnv]), [1.0])  # type: ignore[arg-type]
    other = ActionCostEnv()
    other.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
    with pytest.raises(ValueError, match="Action spaces do not match"):
        tune_safe_threshold(model, other, [1.0])
    with pytest.raises(CostSignalError, match="'cost'"):
        tune_safe_threshold(model, ActionCostEnv(cost_key="hazard"), [1.0])


def test_cqllag_method_sets_the_default_threshold_and_saves_it(tmp_path: Path) -> None:
    env = ActionCostEnv()
    model = CQLLag(
        "MlpPolicy",
        env,
        learning_starts=20,
        batch_size=16,
        cql_n_actions=3,
        seed=0,
        device="cpu",
        cost_limit=2.0,
        episode_length=EP_LEN,
        policy_kwargs=dict(net_arch=[16, 16]),
    )
    model.learn(80)
    assert model.safe_threshold is None
    obs = np.array([[1.0], [3.0]], np.float32)
    before = model.safe_predict(obs, n_samples=8, seed=5)
    np.testing.assert_array_equal(before, model.safe_predict(obs, n_samples=8, threshold=model.cost_limit_discounted, seed=5))

    record = model.tune_safe_threshold(
        env, [-1e6, 1e6], n_episodes=2, seed=40, n_samples=8, cost_limit=float(EP_LEN), progress_bar=True
    )
    assert isinstance(record, SafeThresholdTuning)
    assert model.safe_threshold == record.threshold in (-1e6, 1e6)
    chosen = model.safe_predict(obs, n_samples=8, seed=5)
    np.testing.assert_array_equal(chosen, model.safe_predict(obs, n_samples=8, threshold=record.threshold, seed=5))

    # the recorded figures of the chosen threshold replay exactly: reset seeds 40, 41, per-step draws from rng(40)
    rng, rets, costs = np.random.default_rng(40), [], []
    for ep in range(2):
        o, _ = env.reset(seed=40 + ep)
        ret = cost = 0.0
        done = False
        while not done:
            action = model.safe_predict(o, n_samples=8, threshold=record.threshold, seed=int(rng.integers(2**31 - 1)))
            o, r, term, trunc, info = env.step(action)
            ret, cost, done = ret + r, cost + info["cost"], term or trunc
        rets.append(ret)
        costs.append(cost)
    row = next(r for r in record.results if r.threshold == record.threshold)
    assert row.ret_mean == pytest.approx(np.mean(rets), rel=1e-9) and row.cost_mean == np.mean(costs)

    model.save(tmp_path / "m.zip")
    loaded = CQLLag.load(tmp_path / "m.zip", device="cpu")
    assert loaded.safe_threshold == record.threshold
    np.testing.assert_array_equal(loaded.safe_predict(obs, n_samples=8, seed=5), chosen)
