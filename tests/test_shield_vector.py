"""Vector shields agree exactly with single shields, honour autoreset modes and check every sub-env in one call."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from stable_baselines3.common.vec_env import DummyVecEnv
from test_shield_scripted import PointEnv, next_position_risk

from shieldgym import ShieldWrapper, VecShieldWrapper, VectorShieldWrapper
from shieldgym.backup import CallableBackup

X0 = (0.0, 0.5, -0.75, 0.9)
BACKUP = CallableBackup(lambda obs: -0.5 * obs)


class CountingCritic:
    def __init__(self) -> None:
        self.batches: list[int] = []

    def __call__(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        self.batches.append(len(obs))
        return next_position_risk(obs, actions)


def action_sequence(steps: int, n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (steps, n, 1)).astype(np.float32)


def test_vector_and_single_shields_agree_exactly() -> None:
    n, steps = len(X0), 30
    actions = action_sequence(steps, n)
    singles = [ShieldWrapper(PointEnv(x0=x, horizon=1000), next_position_risk, BACKUP, threshold=1.0) for x in X0]
    for env in singles:
        env.reset(seed=0)
    critic = CountingCritic()
    venv = VectorShieldWrapper(
        SyncVectorEnv([lambda x=x: PointEnv(x0=x, horizon=1000) for x in X0]), critic, BACKUP, threshold=1.0
    )
    vobs, _ = venv.reset(seed=0)
    critic.batches.clear()
    n_vetoed = 0
    for t in range(steps):
        vobs, _, _, _, vinfo = venv.step(actions[t])
        for i, env in enumerate(singles):
            obs, _, _, _, info = env.step(actions[t, i])
            s, vs = info["shield"], vinfo["shield"]
            assert obs.tolist() == vobs[i].tolist()
            assert s["executed_action"].tolist() == vs["executed_action"][i].tolist()
            assert s["risk"] == vs["risk"][i]
            assert s["intervened"] == vs["intervened"][i]
            assert s["reason"] == vs["reason"][i]
            assert s["source"] == vs["source"][i]
            n_vetoed += s["intervened"]
    assert n_vetoed > 10  # the comparison covered many vetoes
    assert critic.batches == [n] * steps  # one critic call per vector step


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_autoreset_modes(mode: AutoresetMode) -> None:
    venv = VectorShieldWrapper(
        SyncVectorEnv([lambda: PointEnv(x0=0.5, horizon=2) for _ in range(2)], autoreset_mode=mode),
        next_position_risk,
        threshold=1.0,
    )
    venv.reset(seed=0)
    a = np.array([[0.75], [0.3]], np.float32)
    masks, vetoes = [], []
    for _ in range(4):
        _, _, _, _, info = venv.step(a)
        masks.append(info["_shield"].tolist())
        vetoes.append(info["shield"]["intervened"].tolist())
    if mode == AutoresetMode.NEXT_STEP:
        # step 3 resets both sub-envs: their actions are ignored, so they are not checked
        assert masks == [[True, True], [True, True], [False, False], [True, True]]
        assert vetoes == [[True, False], [True, True], [False, False], [True, False]]
        assert [len(e.executed) for e in venv.unwrapped.envs] == [3, 3]
    else:
        assert masks == [[True, True]] * 4
        assert vetoes == [[True, False], [True, True], [True, False], [True, True]]


def test_nan_observation_in_one_sub_env_vetoes_only_that_row() -> None:
    critic = CountingCritic()
    venv = VectorShieldWrapper(SyncVectorEnv([lambda: PointEnv(x0=0.5) for _ in range(3)]), critic, threshold=1.0)
    venv.reset(seed=0)
    venv.unwrapped.envs[1].nan_obs_at = 1
    venv.step(np.zeros((3, 1), np.float32))
    critic.batches.clear()
    info = venv.step(np.full((3, 1), 0.25, np.float32))[4]["shield"]
    assert info["intervened"].tolist() == [False, True, False]
    assert info["reason"].tolist() == [None, "nan", None]
    assert critic.batches == [2]


def test_sb3_vec_shield_agrees_with_single_shields() -> None:
    n, steps = len(X0), 25
    actions = action_sequence(steps, n, seed=1)
    critic = CountingCritic()
    venv = VecShieldWrapper(DummyVecEnv([lambda x=x: PointEnv(x0=x, horizon=7) for x in X0]), critic, BACKUP, threshold=1.0)
    singles = [ShieldWrapper(PointEnv(x0=x, horizon=7), next_position_risk, BACKUP, threshold=1.0) for x in X0]
    for env in singles:
        env.reset(seed=0)
    vobs = venv.reset()
    critic.batches.clear()
    for t in range(steps):
        vobs, _, dones, vinfos = venv.step(actions[t])
        for i, env in enumerate(singles):
            obs_i, _, terminated, truncated, info = env.step(actions[t, i])
            if terminated or truncated:
                assert dones[i]
                obs_i, _ = env.reset()
            assert obs_i.tolist() == vobs[i].tolist()
            for key in ("executed_action", "proposed_action"):
                assert info["shield"][key].tolist() == vinfos[i]["shield"][key].tolist()
            assert {k: v for k, v in info["shield"].items() if "action" not in k} == {
                k: v for k, v in vinfos[i]["shield"].items() if "action" not in k
            }
    assert critic.batches == [n] * steps


def test_vector_default_backup_uses_the_sub_env_brake_action() -> None:
    class Braking(PointEnv):
        brake_action = np.array([-0.125], np.float32)

    venv = VectorShieldWrapper(SyncVectorEnv([lambda: Braking(x0=0.5)]), next_position_risk, threshold=1.0)
    venv.reset(seed=0)
    assert venv.step(np.array([[1.0]], np.float32))[4]["shield"]["executed_action"].tolist() == [[-0.125]]
    vec = VecShieldWrapper(DummyVecEnv([lambda: Braking(x0=0.5)]), next_position_risk, threshold=1.0)
    vec.reset()
    assert vec.step(np.array([[1.0]], np.float32))[3][0]["shield"]["executed_action"].tolist() == [-0.125]


def test_vector_bad_actions_shape() -> None:
    venv = VectorShieldWrapper(gym.vector.SyncVectorEnv([PointEnv, PointEnv]), next_position_risk, threshold=1.0)
    venv.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(2, 1\)"):
        venv.step(np.zeros((3, 1), np.float32))
