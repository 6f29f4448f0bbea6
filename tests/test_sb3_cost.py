"""CostMonitor and CostLoggerCallback: exact cost statistics reach SB3's monitor CSV, VecEnv infos and logger."""

from __future__ import annotations

import csv
import warnings

import numpy as np
import pytest
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.logger import KVWriter, Logger
from stable_baselines3.common.monitor import load_results
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnvWrapper
from test_cost_wrappers import ACTIONS, COSTS, LineEnv, act, outside, run_episode

from shieldgym.costs.base import CostTerm, StepContext
from shieldgym.errors import CostSignalError
from shieldgym.wrappers import CostLoggerCallback, CostMonitor, CostWrapper

EPISODE_LENGTH = 8
WEIGHT = 0.5


class Schedule(CostTerm):
    """Episode ``k`` (counted by this term's resets) costs 1 on its first ``k % 4`` steps, whatever the actions."""

    def __init__(self) -> None:
        super().__init__("schedule", weight=WEIGHT)
        self.episode = -1

    def reset(self, env, obs, info):
        self.episode += 1

    def compute(self, ctx: StepContext) -> float:
        return float(ctx.info["t"] <= self.episode % 4)


def expected_episode_cost(k: int) -> float:
    return WEIGHT * (k % 4)


class Capture(KVWriter):
    """Keeps every dump of the SB3 logger."""

    def __init__(self) -> None:
        self.dumps: list[tuple[int, dict]] = []

    def write(self, key_values, key_excluded, step=0):
        self.dumps.append((step, dict(key_values)))

    def close(self):
        pass


def scheduled_venv(shield_every: int = 0) -> DummyVecEnv:
    return DummyVecEnv([lambda: CostMonitor(CostWrapper(LineEnv(EPISODE_LENGTH, shield_every=shield_every), [Schedule()]))])


# ------------------------------------------------------------------------------------------------- CostMonitor


def test_cost_monitor_adds_cost_to_the_episode_info_and_csv(tmp_path):
    env = CostMonitor(CostWrapper(LineEnv(), [outside]), filename=str(tmp_path / "run"), info_keywords=("t",))
    for _ in range(2):
        steps = run_episode(env)
        assert all("episode" not in s[4] for s in steps[:-1])
        episode = steps[-1][4]["episode"]
        assert episode["c"] == 3.0 and episode["violations"] == 3 and episode["l"] == 6 and episode["r"] == -1.0
        assert "shield_rate" not in episode
    env.close()
    assert env.get_episode_costs() == [3.0, 3.0] and env.get_episode_violations() == [3, 3]
    with open(tmp_path / "run.monitor.csv") as f:
        assert f.readline().startswith("#")
        rows = list(csv.DictReader(f))
    assert [(r["r"], r["l"], r["c"], r["violations"], r["t"] != "") for r in rows] == [("-1.0", "6", "3.0", "3", True)] * 2
    assert rows[0]["shield_rate"] == ""  # no shield: empty cell
    frame = load_results(str(tmp_path))
    assert frame["c"].tolist() == [3.0, 3.0]


def test_cost_monitor_records_shield_interventions(tmp_path):
    env = CostMonitor(CostWrapper(LineEnv(shield_every=3), [outside]), filename=str(tmp_path / "shield"))
    episode = run_episode(env)[-1][4]["episode"]
    assert episode["shield_interventions"] == 2 and episode["shield_rate"] == 2 / 6
    env.close()
    assert load_results(str(tmp_path))["shield_interventions"].tolist() == [2]


def test_cost_monitor_needs_the_cost_key():
    env = CostMonitor(LineEnv())
    env.reset(seed=0)
    with pytest.raises(CostSignalError, match="no cost key 'cost'"):
        env.step(act(0.5))


def test_cost_monitor_passes_the_sb3_checker():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sb3_check_env(CostMonitor(CostWrapper(LineEnv(), [outside])), warn=False)


def test_cost_reaches_the_vecenv_step_output():
    venv = DummyVecEnv([lambda: CostMonitor(CostWrapper(LineEnv(), [outside]))] * 2)
    venv.reset()
    seen = []
    for a in ACTIONS:
        _, _, dones, infos = venv.step(np.array([[a], [-a]], dtype=np.float32))
        seen.append([info["cost"] for info in infos])
        assert infos[0]["costs"] == {"outside": infos[0]["cost"]}
    assert seen == [[c, c] for c in COSTS]  # the line is symmetric
    assert dones.tolist() == [True, True]
    assert [info["episode"]["c"] for info in infos] == [3.0, 3.0]


# ----------------------------------------------------------------------------------------- CostLoggerCallback


def assert_logged_exactly(dumps: list[tuple[int, dict]], shield_rate: float | None) -> None:
    checked = 0
    for step, values in dumps:
        n = step // EPISODE_LENGTH  # episodes finished by this dump
        if n == 0:
            continue
        costs = [expected_episode_cost(k) for k in range(max(0, n - 100), n)]
        assert values["rollout/ep_cost_mean"] == float(np.mean(costs)), step
        assert values["rollout/ep_violations_mean"] == float(np.mean([k % 4 for k in range(max(0, n - 100), n)])), step
        if shield_rate is not None:
            assert values["rollout/shield_rate_mean"] == shield_rate
        else:
            assert "rollout/shield_rate_mean" not in values
        checked += 1
    assert checked >= 3


class VecShield(VecEnvWrapper):
    """Stand-in for a shield around the VecEnv: ``infos[i]["shield"]``, intervening on every third step."""

    def reset(self):
        self.counts = np.zeros(self.num_envs, dtype=int)
        return self.venv.reset()

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        self.counts += 1
        for i, info in enumerate(infos):
            info["shield"] = {"intervened": bool(self.counts[i] % 3 == 0)}
        self.counts[dones] = 0
        return obs, rewards, dones, infos


@pytest.mark.parametrize(
    ("shield", "rate"),
    [("none", None), ("inside", 0.5), ("around", 2 / EPISODE_LENGTH)],  # inside: every 2nd step; around: steps 3, 6
)
def test_logger_receives_exact_cost_means_with_ppo(shield, rate):
    venv = scheduled_venv(2 if shield == "inside" else 0)
    model = PPO("MlpPolicy", VecShield(venv) if shield == "around" else venv, n_steps=64, batch_size=32, n_epochs=1, seed=0)
    capture = Capture()
    model.set_logger(Logger(folder=None, output_formats=[capture]))
    model.learn(256, callback=CostLoggerCallback())
    assert len(capture.dumps) == 4
    assert_logged_exactly(capture.dumps, rate)


def test_logger_receives_exact_cost_means_with_sac():
    model = SAC("MlpPolicy", scheduled_venv(), learning_starts=48, batch_size=32, policy_kwargs={"net_arch": [16]}, seed=0)
    capture = Capture()
    model.set_logger(Logger(folder=None, output_formats=[capture]))
    model.learn(200, callback=CostLoggerCallback(), log_interval=4)
    assert [step for step, _ in capture.dumps] == [32, 64, 96, 128, 160, 192]
    assert_logged_exactly(capture.dumps, None)


def test_callback_window_and_bad_window():
    callback = CostLoggerCallback(stats_window_size=2)
    callback.locals = {"infos": [{"episode": {"c": c, "violations": 1}} for c in (1.0, 2.0, 4.0)] + [{"episode": {"r": 1}}]}

    class Recorder:
        def __init__(self) -> None:
            self.values: dict = {}

        def record(self, key, value):
            self.values[key] = value

    recorder = Recorder()
    callback.model = type("M", (), {"logger": recorder})()
    assert callback._on_step() is True
    assert recorder.values == {"rollout/ep_cost_mean": 3.0, "rollout/ep_violations_mean": 1.0}
    with pytest.raises(ValueError, match="stats_window_size must be a positive int, got 0"):
        CostLoggerCallback(stats_window_size=0)
