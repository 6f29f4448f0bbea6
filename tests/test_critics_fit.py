"""fit_cost_critic: ranks unsafe above safe actions and over-estimates out-of-data actions."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from test_shield_scripted import PointEnv

from shieldgym import ShieldWrapper
from shieldgym.critics import as_critic
from shieldgym.critics.fit import CostCritic, NumpyCostCritic, fit_cost_critic

SPACE = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)


def point_data(n: int, seed: int, action_scale: float = 1.0, obs_scale: float = 1.0) -> dict[str, np.ndarray]:
    """Transitions of the point env: x' = x + a, cost 1 when |x'| > 1."""
    rng = np.random.default_rng(seed)
    obs = rng.uniform(-obs_scale, obs_scale, (n, 1)).astype(np.float32)
    act = rng.uniform(-action_scale, action_scale, (n, 1)).astype(np.float32)
    nxt = obs + act
    cost = (np.abs(nxt[:, 0]) > 1.0).astype(np.float32)
    return {"obs": obs, "actions": act, "costs": cost, "next_obs": nxt, "dones": np.zeros(n, np.float32)}


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    pos, neg = scores[labels], scores[~labels]
    return float((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean())


def test_fitted_critic_ranks_unsafe_above_safe() -> None:
    data = point_data(4_000, seed=0)
    critic = fit_cost_critic(
        data, action_space=SPACE, gamma=0.5, fit_steps=600, batch_size=128, net_arch=(64, 64), seed=0, progress=False
    )
    test = point_data(1_000, seed=1)
    risk = as_critic(critic)(test["obs"], test["actions"])
    assert risk.shape == (1_000,) and (risk >= 0).all()
    assert auc(risk, test["costs"] > 0) > 0.95
    fn = as_critic(critic)
    assert (
        fn(np.array([[0.8]], np.float32), np.array([[0.9]], np.float32))[0]
        > fn(np.array([[0.8]], np.float32), np.array([[-0.5]], np.float32))[0]
    )
    assert len(critic.fit_history) == 6 and critic.fit_history[-1].step == 600


def test_conservative_penalty_makes_out_of_data_actions_an_upper_bound() -> None:
    # every data action is in [-0.3, 0.3] and costs nothing; nothing is known about |a| > 0.7
    data = point_data(2_000, seed=0, action_scale=0.3, obs_scale=0.5)
    kw = dict(action_space=SPACE, gamma=0.5, fit_steps=400, batch_size=128, net_arch=(64, 64), seed=0, progress=False)
    plain = fit_cost_critic(data, conservative_weight=0.0, **kw)
    conservative = fit_cost_critic(data, conservative_weight=1.0, **kw)
    obs = np.zeros((200, 1), np.float32)
    ood = np.linspace(0.7, 1.0, 200, dtype=np.float32)[:, None] * np.where(np.arange(200) % 2, 1, -1)[:, None]
    ind = np.linspace(-0.3, 0.3, 200, dtype=np.float32)[:, None]

    def q(critic: CostCritic, actions: np.ndarray) -> float:
        with torch.no_grad():
            return float(critic(torch.from_numpy(obs), torch.from_numpy(actions.astype(np.float32))).max(0).values.mean())

    # the penalty raises Q_c on out-of-data actions (an upper bound) and keeps it low on the data
    assert q(conservative, ood) > q(plain, ood) + 0.05
    assert q(conservative, ood) > q(conservative, ind) + 0.05
    assert q(conservative, ind) < 0.1
    assert conservative.fit_history[-1].penalty != 0.0 and plain.fit_history[-1].penalty == 0.0


def test_numpy_forward_matches_torch_and_feature_index() -> None:
    data = point_data(500, seed=0)
    data["obs"] = np.concatenate([data["obs"], np.ones((500, 2), np.float32)], axis=1)
    data["next_obs"] = np.concatenate([data["next_obs"], np.ones((500, 2), np.float32)], axis=1)
    critic = fit_cost_critic(
        data, action_space=SPACE, fit_steps=20, net_arch=(16, 16), feature_index=[0], seed=0, progress=False
    )
    fast = critic.numpy_critic()
    assert isinstance(as_critic(critic), NumpyCostCritic)
    obs, act = data["obs"][:7], data["actions"][:7]
    with torch.no_grad():
        ref = critic(torch.from_numpy(obs), torch.from_numpy(act)).max(0).values.clamp_min(0).numpy()
    np.testing.assert_allclose(fast(obs, act), ref, rtol=1e-5, atol=1e-6)
    env = ShieldWrapper(
        PointEnv(), lambda o, a: fast(np.concatenate([o, np.ones((len(o), 2), np.float32)], 1), a), threshold=0.5
    )
    env.reset(seed=0)
    env.step(np.array([0.1], np.float32))


def test_fit_is_seeded_and_leaves_global_rng_alone() -> None:
    data = point_data(300, seed=0)
    kw = dict(action_space=SPACE, fit_steps=10, net_arch=(8,), seed=3, progress=False)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = fit_cost_critic(data, **kw)
    assert torch.rand(1).item() == before.item()
    b = fit_cost_critic(data, **kw)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_fit_bad_input() -> None:
    data = point_data(50, seed=0)
    with pytest.raises(ValueError, match="bounds"):
        fit_cost_critic(data, progress=False)
    with pytest.raises(ValueError, match="next_obs"):
        fit_cost_critic({k: v for k, v in data.items() if k != "next_obs"}, action_space=SPACE, progress=False)
    with pytest.raises(ValueError, match="costs must be >= 0"):
        fit_cost_critic({**data, "costs": -data["costs"] - 1}, action_space=SPACE, progress=False)
    with pytest.raises(ValueError, match="NaN"):
        fit_cost_critic({**data, "obs": data["obs"] * np.nan}, action_space=SPACE, progress=False)
    with pytest.raises(ValueError, match="gamma"):
        fit_cost_critic(data, action_space=SPACE, gamma=1.0, progress=False)
    with pytest.raises(ValueError, match="rows"):
        fit_cost_critic({**data, "dones": data["dones"][:3]}, action_space=SPACE, progress=False)
