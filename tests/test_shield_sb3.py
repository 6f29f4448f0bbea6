"""Off-policy SB3 algorithms trained inside the shield store the executed action (or the proposed one)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from sb3_contrib import TQC, CrossQ
from stable_baselines3 import SAC, TD3
from stable_baselines3.common.callbacks import BaseCallback
from test_shield_scripted import PointEnv, next_position_risk

from shieldgym import CQLLag, ShieldWrapper
from shieldgym.wrappers.shield_sb3 import (
    ShieldCostDictReplayBuffer,
    ShieldCostReplayBuffer,
    ShieldDictReplayBuffer,
    ShieldReplayBuffer,
    scale_action,
    shield_transition,
)


class Recorder(BaseCallback):
    """Keeps ``(buffer position, info["shield"], reward)`` of each step (called before the transition is stored)."""

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[tuple[int, dict, float]] = []

    def _on_step(self) -> bool:
        pos = self.model.replay_buffer.pos
        self.steps.append((pos, self.locals["infos"][0]["shield"], float(self.locals["rewards"][0])))
        return True


def shielded_point(x0: float = 0.0, threshold: float = 1.0) -> ShieldWrapper:
    # A wide action space: uniform exploration often proposes steps past |x| = 1.
    class WidePoint(PointEnv):
        def __init__(self) -> None:
            super().__init__(x0=x0)
            self.action_space = gym.spaces.Box(-2.0, 1.0, (1,), np.float32)

    return ShieldWrapper(WidePoint(), next_position_risk, threshold=threshold)


def train(algo, steps: int = 300, threshold: float = 1.0, **buffer_kwargs):
    env = shielded_point(threshold=threshold)
    extra = dict(episode_length=20) if algo is CQLLag else {}
    model = algo(
        "MlpPolicy",
        env,
        learning_starts=100,
        buffer_size=1_000,
        batch_size=32,
        policy_kwargs=dict(net_arch=[16]),
        replay_buffer_class=ShieldCostReplayBuffer if algo is CQLLag else ShieldReplayBuffer,
        replay_buffer_kwargs=buffer_kwargs,
        seed=0,
        device="cpu",
        **extra,
    )
    rec = Recorder()
    model.learn(steps, callback=rec)
    return model, rec


@pytest.mark.parametrize("algo", [SAC, TD3, TQC, CrossQ, CQLLag])
def test_buffer_stores_executed_action_exactly_for_vetoed_steps(algo) -> None:
    model, rec = train(algo)
    buf = model.replay_buffer
    space = model.env.action_space
    vetoed = [(pos, s) for pos, s, _ in rec.steps if s["intervened"]]
    assert len(rec.steps) == 300
    assert len(vetoed) >= 20
    for pos, s in vetoed:
        want = scale_action(space, s["executed_action"]).astype(np.float32)
        assert buf.actions[pos, 0].tolist() == want.tolist()
        assert buf.actions[pos, 0].tolist() != scale_action(space, s["proposed_action"]).tolist()
    for pos, s, _ in rec.steps:  # every stored action maps back to what the env executed
        np.testing.assert_allclose(
            space.low + (buf.actions[pos, 0] + 1.0) * 0.5 * (space.high - space.low), s["executed_action"], atol=1e-6
        )


def test_proposed_mode_and_intervention_penalty() -> None:
    model, rec = train(SAC, steps=200, action_source="proposed", intervention_penalty=0.5)
    buf = model.replay_buffer
    space = model.env.action_space
    n_vetoed = 0
    for pos, s, reward in rec.steps:
        np.testing.assert_allclose(buf.actions[pos, 0], scale_action(space, s["proposed_action"]), atol=1e-6)
        assert buf.rewards[pos, 0] == np.float32(reward - 0.5 if s["intervened"] else reward)
        n_vetoed += s["intervened"]
    assert n_vetoed >= 10


def test_shield_transition_is_pure_and_validates() -> None:
    space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
    action = np.array([[0.5], [0.75]], np.float32)
    reward = np.array([1.0, 1.0], np.float32)
    infos = [
        {"shield": {"intervened": True, "executed_action": np.array([-1.0], np.float32)}},
        {"shield": {"intervened": False, "executed_action": np.array([1.5], np.float32)}},
    ]
    new_action, new_reward = shield_transition(space, action, reward, infos, "executed", 0.25)
    assert new_action.tolist() == [[-0.5], [0.75]]
    assert new_reward.tolist() == [0.75, 1.0]
    assert action.tolist() == [[0.5], [0.75]] and reward.tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="ShieldWrapper"):
        shield_transition(space, action, reward, [{}, {}], "executed", 0.0)
    with pytest.raises(ValueError, match="action_source"):
        ShieldReplayBuffer(10, space, space, action_source="both")
    with pytest.raises(ValueError, match="intervention_penalty"):
        ShieldReplayBuffer(10, space, space, intervention_penalty=-1.0)


def test_dict_observation_buffer_stores_executed_action() -> None:
    obs_space = gym.spaces.Dict({"x": gym.spaces.Box(-10, 10, (1,), np.float32)})
    act_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    buf = ShieldDictReplayBuffer(10, obs_space, act_space, device="cpu")
    obs = {"x": np.zeros((1, 1), np.float32)}
    info = {"shield": {"intervened": True, "executed_action": np.array([0.25], np.float32)}}
    buf.add(obs, obs, np.array([[0.9]], np.float32), np.array([1.0]), np.array([False]), [info])
    assert buf.actions[0, 0].tolist() == [0.25]


def test_discrete_actions_are_stored_unscaled() -> None:
    space = gym.spaces.Discrete(3)
    infos = [{"shield": {"intervened": True, "executed_action": np.int64(2)}}]
    new_action, _ = shield_transition(space, np.array([0]), np.array([0.0]), infos, "executed", 0.0)
    assert new_action.tolist() == [2]


def test_cqllag_inside_the_shield_stores_the_cost_of_the_executed_action() -> None:
    model, rec = train(CQLLag, steps=200, threshold=1.5)  # steps to 1 < |x| <= 1.5 pass and cost 1
    buf = model.replay_buffer
    space = model.env.action_space
    x = 0.0  # replay PointEnv: cost 1 when |x + executed action| > 1, episodes of 20 steps from x = 0
    n_costly = n_vetoed = 0
    for t, (pos, s, _) in enumerate(rec.steps):
        x = (0.0 if t % 20 == 0 else x) + float(np.clip(s["executed_action"][0], -1.0, 1.0))
        x = float(np.float32(x))
        assert buf.costs[pos, 0] == float(abs(x) > 1.0)
        n_costly += abs(x) > 1.0
        n_vetoed += s["intervened"]
        np.testing.assert_allclose(
            space.low + (buf.actions[pos, 0] + 1.0) * 0.5 * (space.high - space.low), s["executed_action"], atol=1e-6
        )
    assert 0 < n_costly < 200 and n_vetoed > 0


def test_cqllag_rejects_a_shield_buffer_without_costs() -> None:
    with pytest.raises(TypeError, match="ShieldCostReplayBuffer"):
        CQLLag("MlpPolicy", shielded_point(), replay_buffer_class=ShieldReplayBuffer, episode_length=20, device="cpu")


def test_shield_cost_dict_buffer_stores_executed_action_and_cost() -> None:
    obs_space = gym.spaces.Dict({"x": gym.spaces.Box(-10, 10, (1,), np.float32)})
    act_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    buf = ShieldCostDictReplayBuffer(10, obs_space, act_space, device="cpu", intervention_penalty=0.5)
    obs = {"x": np.zeros((1, 1), np.float32)}
    info = {"cost": 1.0, "shield": {"intervened": True, "executed_action": np.array([0.25], np.float32)}}
    buf.add(obs, obs, np.array([[0.9]], np.float32), np.array([1.0]), np.array([False]), [info])
    assert buf.actions[0, 0].tolist() == [0.25]
    assert buf.rewards[0, 0] == 0.5 and buf.costs[0, 0] == 1.0
    with pytest.raises(Exception, match="cost"):  # no cost key: the cost buffer's error, nothing written
        buf.add(obs, obs, np.array([[0.9]], np.float32), np.array([1.0]), np.array([False]), [{"shield": info["shield"]}])
    assert buf.pos == 1
