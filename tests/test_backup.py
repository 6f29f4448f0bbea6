"""Backup policies: brake, min-risk candidates, SB3 model, callables."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from test_shield_scripted import PointEnv, next_position_risk

from shieldgym.backup import BrakeBackup, CallableBackup, MinRiskBackup, SB3Backup, action_error, as_backup

BOX = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)


def test_brake_from_space_env_and_bounds() -> None:
    assert BrakeBackup.from_space(BOX)(None).tolist() == [0.0, 0.0]
    shifted = gym.spaces.Box(np.array([0.5, -1.0], np.float32), np.array([1.0, 1.0], np.float32))
    assert BrakeBackup.from_space(shifted)(None).tolist() == [0.5, 0.0]

    class Braking(PointEnv):
        brake_action = np.array([-0.25], np.float32)

    assert BrakeBackup.from_env(Braking())(None).tolist() == [-0.25]
    assert BrakeBackup.from_env(PointEnv())(None).tolist() == [0.0]
    with pytest.raises(TypeError, match="Box"):
        BrakeBackup.from_space(gym.spaces.Discrete(3))
    with pytest.raises(ValueError, match="outside the bounds"):
        BrakeBackup([2.0, 0.0]).bind(BOX, None)
    with pytest.raises(ValueError, match="shape"):
        BrakeBackup([0.0]).bind(BOX, None)


def test_brake_action_is_read_only() -> None:
    b = BrakeBackup.from_space(BOX)
    with pytest.raises(ValueError):
        b(None)[0] = 1.0


def test_min_risk_picks_the_lowest_risk_candidate_and_always_has_the_brake() -> None:
    space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    backup = MinRiskBackup(16, seed=0)
    backup.bind(space, next_position_risk)
    obs = np.array([0.6], np.float32)
    cand = backup.candidates(proposed=np.array([1.0], np.float32))
    assert cand.shape == (16, 1)
    assert cand[0].tolist() == [0.0]
    assert cand[1:3, 0].tolist() == [0.5, 0.25]  # proposed shrunk towards the brake action
    a = backup(obs, proposed=np.array([1.0], np.float32))
    risks = next_position_risk(np.repeat(obs[None], 16, 0), backup.candidates(np.array([1.0], np.float32)))
    assert backup.last_risk is not None
    assert float(np.abs(obs[0] + a[0])) == pytest.approx(float(backup.last_risk.min()))
    assert risks.shape == (16,)
    # every candidate non-finite -> brake
    broken = MinRiskBackup(4, critic=lambda o, x: np.full(len(o), np.nan), seed=0)
    broken.bind(space, None)
    assert broken(obs).tolist() == [0.0]


def test_min_risk_closest_safe_keeps_the_proposal_direction() -> None:
    space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    backup, twin = MinRiskBackup(64, select="closest_safe", seed=0), MinRiskBackup(64, seed=0)
    backup.bind(space, next_position_risk, threshold=1.0)
    twin.bind(space, next_position_risk)
    obs, proposed = np.array([0.6], np.float32), np.array([1.0], np.float32)
    cand = twin.candidates(proposed)[:, 0]  # the same candidates (same seed)
    a = backup(obs, proposed=proposed)
    safe = cand[np.abs(obs[0] + cand) <= 1.0]
    assert a[0] == safe.max()  # the safe candidate closest to the proposal
    assert a[0] > 0.25


def test_min_risk_seeded_and_discrete() -> None:
    space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    one, two = MinRiskBackup(8, seed=3), MinRiskBackup(8, seed=3)
    one.bind(space, next_position_risk)
    two.bind(space, next_position_risk)
    assert one.candidates().tolist() == two.candidates().tolist()
    disc = MinRiskBackup(8)
    disc.bind(gym.spaces.Discrete(3), lambda o, a: np.array([2.0, 0.5, 1.0])[a])
    assert disc(np.zeros(1)) == 1
    with pytest.raises(ValueError, match="critic"):
        MinRiskBackup(4).bind(space, None)
    with pytest.raises(ValueError, match="n_candidates"):
        MinRiskBackup(0)
    with pytest.raises(ValueError, match="select"):
        MinRiskBackup(4, select="best")  # type: ignore[arg-type]


def test_sb3_backup_and_callable_adapters() -> None:
    from stable_baselines3 import TD3

    model = TD3("MlpPolicy", PointEnv(), policy_kwargs=dict(net_arch=[8]), seed=0, device="cpu")
    backup = as_backup(model)
    assert isinstance(backup, SB3Backup)
    obs = np.array([0.3], np.float32)
    assert backup(obs).tolist() == model.predict(obs, deterministic=True)[0].tolist()
    assert isinstance(as_backup(lambda o: o), CallableBackup)
    assert as_backup(lambda o: -o)(np.array([1.0])).tolist() == [-1.0]
    with pytest.raises(TypeError):
        as_backup(object())
    assert as_backup([0.5]).action.tolist() == [0.5]  # a fixed action is a brake backup


def test_action_error_messages() -> None:
    assert action_error(BOX, [0.0, 0.5]) is None
    assert "shape" in action_error(BOX, [0.0])
    assert "NaN" in action_error(BOX, [np.nan, 0.0])
    assert "outside" in action_error(BOX, [0.0, 1.5])
    disc = gym.spaces.Discrete(3, start=1)
    assert action_error(disc, 3) is None
    assert "outside" in action_error(disc, 0)
    assert "integer" in action_error(disc, 1.5)
