"""ShieldWrapper on the scripted point env: exact vetoes, info, every fault, construction errors, log, checkers."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from test_shield_scripted import PointEnv, next_position_risk

from shieldgym import ShieldError, ShieldWrapper
from shieldgym.backup import BrakeBackup, CallableBackup, MinRiskBackup
from shieldgym.critics import QEnsemble, as_critic
from shieldgym.wrappers.shield import REASONS, InterventionLog

A = np.float32


def act(x: float) -> np.ndarray:
    return np.array([x], A)


class FaultyCritic:
    """The known critic, or a fault chosen by ``mode``."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.calls = 0

    def __call__(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        self.calls += 1
        risk = next_position_risk(obs, actions)
        if self.mode == "raise":
            raise RuntimeError("sensor bus timeout")
        if self.mode == "nan":
            return np.full_like(risk, np.nan)
        if self.mode == "inf":
            return np.full_like(risk, np.inf)
        if self.mode == "shape":
            return risk[:, None].repeat(2, axis=1)
        if self.mode == "none":
            return None  # type: ignore[return-value]
        if self.mode == "slow":
            time.sleep(0.02)
        return risk


def make(critic=next_position_risk, **kw) -> ShieldWrapper:
    kw.setdefault("threshold", 1.0)
    return ShieldWrapper(PointEnv(), critic, **kw)


def test_veto_iff_risk_exceeds_threshold_and_boundary_passes() -> None:
    env = make()
    env.reset(seed=0)
    expected = [  # (proposed, risk, intervened, executed, x after)
        (0.5, 0.5, False, 0.5, 0.5),
        (0.5, 1.0, False, 0.5, 1.0),  # exactly at the threshold: passes
        (0.25, 1.25, True, 0.0, 1.0),
        (-1.0, 0.0, False, -1.0, 0.0),
        (-1.0, 1.0, False, -1.0, -1.0),
        (-0.5, 1.5, True, 0.0, -1.0),
    ]
    for proposed, risk, intervened, executed, x in expected:
        obs, reward, _, _, info = env.step(act(proposed))
        s = info["shield"]
        assert set(s) == {"proposed_action", "executed_action", "risk", "threshold", "intervened", "reason", "source"}
        assert s["proposed_action"].tolist() == [proposed]
        assert s["executed_action"].tolist() == [executed]
        assert s["risk"] == risk
        assert s["threshold"] == 1.0
        assert s["intervened"] is intervened
        assert s["reason"] == ("risk" if intervened else None)
        assert s["source"] == ("backup" if intervened else "policy")
        assert obs.tolist() == [x]
        assert reward == executed
    assert [a.tolist() for a in env.unwrapped.executed] == [[e[3]] for e in expected]
    assert env.shield.n_interventions == 2


def test_threshold_zero_vetoes_every_positive_risk() -> None:
    env = make(threshold=0.0)
    env.reset(seed=0)
    assert env.step(act(0.0))[4]["shield"]["intervened"] is False  # risk 0 <= 0
    assert env.step(act(0.1))[4]["shield"]["intervened"] is True


@pytest.mark.parametrize(
    ("mode", "reason", "risk_unavailable"),
    [
        ("raise", "critic_error", True),
        ("nan", "nan", True),
        ("inf", "nan", True),
        ("shape", "critic_error", True),
        ("none", "critic_error", True),
        ("slow", "deadline", False),
    ],
)
def test_every_critic_fault_executes_the_backup(mode: str, reason: str, risk_unavailable: bool) -> None:
    critic = FaultyCritic()
    env = make(critic, backup=CallableBackup(lambda obs: -0.5 * obs), max_latency_s=0.005)
    env.reset(seed=0, options={"x0": 0.5})
    critic.mode = mode
    obs, _, _, _, info = env.step(act(0.1))  # a safe action (risk 0.6): vetoed only because of the fault
    s = info["shield"]
    assert s["intervened"] is True
    assert s["reason"] == reason
    assert s["source"] == "backup"
    assert s["executed_action"].tolist() == [-0.25]
    assert env.unwrapped.executed[-1].tolist() == [-0.25]
    assert obs.tolist() == [0.25]
    assert (not math.isfinite(s["risk"])) is risk_unavailable
    critic.mode = "ok"
    assert env.step(act(0.1))[4]["shield"]["intervened"] is False


def test_non_finite_observation_or_proposed_action_executes_the_backup_without_calling_the_critic() -> None:
    critic = FaultyCritic()
    env = make(critic)
    env.unwrapped.nan_obs_at = 1
    env.reset(seed=0)
    env.step(act(0.5))  # returns a NaN observation
    calls = critic.calls
    info = env.step(act(0.1))[4]["shield"]
    assert (info["reason"], info["executed_action"].tolist(), critic.calls) == ("nan", [0.0], calls)
    for bad in (np.nan, np.inf, -np.inf):
        info = env.step(act(bad))[4]["shield"]
        assert (info["intervened"], info["reason"], info["executed_action"].tolist()) == (True, "nan", [0.0])
    assert critic.calls == calls


@pytest.mark.parametrize("failure", ["raise", "nan", "outside", "shape"])
def test_backup_failure_uses_safe_action_then_raises_without_one(failure: str) -> None:
    def bad_backup(obs: np.ndarray) -> np.ndarray:
        if failure == "raise":
            raise RuntimeError("backup controller offline")
        return {"nan": act(np.nan), "outside": act(2.0), "shape": np.zeros(3, A)}[failure]

    env = make(backup=bad_backup, safe_action=act(-0.25))
    env.reset(seed=0, options={"x0": 0.5})
    s = env.step(act(1.0))[4]["shield"]
    assert (s["intervened"], s["reason"], s["source"], s["executed_action"].tolist()) == (True, "risk", "safe_action", [-0.25])
    assert env.unwrapped.executed == [act(-0.25)]

    env = make(backup=bad_backup)
    env.reset(seed=0, options={"x0": 0.5})
    assert env.step(act(0.25))[4]["shield"]["intervened"] is False  # no veto: the backup is not needed
    with pytest.raises(ShieldError, match="no valid action"):
        env.step(act(1.0))
    assert len(env.unwrapped.executed) == 1  # the vetoed action never reached the env


def test_construction_errors_name_the_bad_value() -> None:
    for bad in (float("nan"), -0.1, float("inf"), "high"):
        with pytest.raises(ValueError, match="threshold"):
            make(threshold=bad)
    with pytest.raises(ValueError, match=r"shape \(2, 2\)"):
        make(lambda o, a: np.zeros((len(o), 2)))
    with pytest.raises(ValueError, match="raised"):
        make(lambda o, a: 1 / 0)
    with pytest.raises(ValueError, match="outside the bounds"):
        make(backup=BrakeBackup(act(3.0)))
    with pytest.raises(ValueError, match="safe_action"):
        make(safe_action=act(5.0))
    with pytest.raises(ValueError, match="max_latency_s"):
        make(max_latency_s=-1.0)
    env = gym.make("CartPole-v1")
    env.action_space = gym.spaces.MultiBinary(2)
    with pytest.raises(TypeError, match="Box and Discrete"):
        ShieldWrapper(env, lambda o, a: np.zeros(len(o)), validate_critic=False)
    with pytest.raises(TypeError, match="critic must be"):
        make(critic=42)
    shield = make()
    with pytest.raises(gym.error.ResetNeeded):
        shield.step(act(0.0))
    shield.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        shield.step(np.zeros(2, A))


def test_calibration_record_is_accepted_as_threshold() -> None:
    class Record:
        threshold = 1.0

    assert make(threshold=Record()).threshold == 1.0


def test_gymnasium_and_sb3_checkers_pass() -> None:
    gym_check_env(make().unwrapped, skip_render_check=True)
    with pytest.warns(UserWarning, match="different from the unwrapped"):
        gym_check_env(make(), skip_render_check=True)
    sb3_check_env(make(), warn=False)


def test_log_lines_are_json_and_complete(tmp_path: Path) -> None:
    log = tmp_path / "log" / "shield.jsonl"
    env = make(log_path=log)
    env.reset(seed=0)
    for a in (0.5, 0.5, 0.75, np.nan, -0.25):
        env.step(act(a))
    env.close()
    records = InterventionLog.read(log)
    assert [(r["step"], r["reason"], r["risk"], r["proposed_action"], r["executed_action"]) for r in records] == [
        (3, "risk", 1.75, [0.75], [0.0]),
        (4, "nan", None, [None], [0.0]),
    ]
    assert all(r["env"] == 0 and r["threshold"] == 1.0 and r["source"] == "backup" for r in records)


def test_log_survives_a_crash(tmp_path: Path) -> None:
    log = tmp_path / "crash.jsonl"
    script = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import numpy as np
        from test_shield_scripted import PointEnv, next_position_risk
        from shieldgym import ShieldWrapper
        env = ShieldWrapper(PointEnv(x0=1.0), next_position_risk, threshold=1.0, log_path={str(log)!r}, fsync=True)
        env.reset(seed=0)
        for _ in range(7):
            env.step(np.array([0.5], np.float32))
        os._exit(3)  # no close, no flush at exit: a crash
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr
    lines = log.read_text().splitlines()
    assert len(lines) == 7
    assert [json.loads(line)["step"] for line in lines] == list(range(1, 8))


def test_episode_statistics_count_interventions_exactly() -> None:
    from shieldgym import CostEpisodeStatistics

    env = CostEpisodeStatistics(ShieldWrapper(PointEnv(horizon=6), next_position_risk, threshold=1.0))
    env.reset(seed=0)
    infos = [env.step(act(a))[4] for a in (0.75, 0.75, 0.25, 0.5, 0.5, -1.0)]
    assert [i["shield"]["intervened"] for i in infos] == [False, True, False, True, True, False]
    episode = infos[-1]["episode"]
    assert episode["shield_interventions"] == 3
    assert episode["shield_rate"] == 0.5
    assert episode["c"] == 0.0  # the shield kept every step inside [-1, 1]


def test_discrete_action_space_with_default_min_risk_backup() -> None:
    env = gym.make("CartPole-v1")
    # risk: pushing right (1) is risky when the pole leans right (obs[2] > 0)
    critic = lambda o, a: ((a == 1) & (o[:, 2] > 0)).astype(float)  # noqa: E731
    env = ShieldWrapper(env, critic, threshold=0.5)
    assert isinstance(env.shield.backup, MinRiskBackup)
    obs, _ = env.reset(seed=1)
    for _ in range(10):
        leaning_right = obs[2] > 0
        obs, _, terminated, _, info = env.step(1)
        assert info["shield"]["intervened"] == leaning_right
        assert info["shield"]["executed_action"] == (0 if leaning_right else 1)
        if terminated:
            break
    with pytest.raises(ValueError, match="outside"):
        env.step(2)


def test_dict_observations() -> None:
    class DictPoint(gym.ObservationWrapper):
        def __init__(self, env: gym.Env) -> None:
            super().__init__(env)
            self.observation_space = gym.spaces.Dict({"x": env.observation_space})

        def observation(self, obs: np.ndarray) -> dict:
            return {"x": obs}

    env = ShieldWrapper(DictPoint(PointEnv(x0=0.5)), lambda o, a: np.abs(o["x"][:, 0] + a[:, 0]), threshold=1.0)
    env.reset(seed=0)
    assert env.step(act(0.75))[4]["shield"]["executed_action"].tolist() == [0.0]


def test_torch_module_and_cost_critic_adapters_reduce_by_max() -> None:
    torch.manual_seed(0)
    q = QEnsemble(features_dim=1, action_dim=1, n_critics=3, net_arch=(8,))
    obs, acts = np.array([[0.1], [0.2]], A), np.array([[0.3], [-0.4]], A)
    expected = q(torch.from_numpy(obs), torch.from_numpy(acts)).max(dim=0).values.detach().numpy()
    np.testing.assert_array_equal(as_critic(q)(obs, acts), expected)

    class Model:
        def cost_critic(self):
            return q

    np.testing.assert_array_equal(as_critic(Model())(obs, acts), expected)
    env = ShieldWrapper(PointEnv(x0=0.1), Model(), threshold=10.0)
    env.reset(seed=0)
    assert env.step(act(0.3))[4]["shield"]["risk"] == float(expected[0])


def test_reasons_are_the_documented_ones() -> None:
    assert REASONS == (None, "risk", "critic_error", "nan", "deadline")
