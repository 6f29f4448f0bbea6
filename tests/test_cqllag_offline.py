"""Offline CQLLag: conservative bounds on a bandit with known values, DSRL dicts, Minari datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from shieldgym.algos.cqllag import CQLLag, OfflineDataset, load_offline_dataset
from shieldgym.errors import CostSignalError

REWARD, COST = 1.0, 0.5


class Bandit(gym.Env):
    """One state, one step: reward 1 and cost 0.5 for every action, so Q_r = 1 and Q_c = 0.5 everywhere."""

    observation_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        return np.ones(1, np.float32), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        return np.ones(1, np.float32), REWARD, True, False, {"cost": COST}


def bandit_data(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Only actions in [-1, -0.5] are in the data."""
    rng = np.random.default_rng(seed)
    return dict(
        observations=np.ones((n, 1), np.float32),
        actions=rng.uniform(-1.0, -0.5, size=(n, 1)).astype(np.float32),
        rewards=np.full(n, REWARD, np.float32),
        costs=np.full(n, COST, np.float32),
        next_observations=np.ones((n, 1), np.float32),
        terminals=np.ones(n, bool),
        timeouts=np.zeros(n, bool),
    )


def q_values(model: CQLLag, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    obs = torch.ones((len(actions), 1))
    with torch.no_grad():
        q = model.critic(obs, torch.as_tensor(actions, dtype=torch.float32).reshape(-1, 1))
    return q[:2].min(dim=0).values.numpy(), q[2:].max(dim=0).values.numpy()


def test_reward_critic_is_a_lower_bound_and_cost_critic_an_upper_bound_off_data() -> None:
    torch.manual_seed(0)
    model = CQLLag(
        "MlpPolicy",
        Bandit(),
        batch_size=64,
        cql_n_actions=4,
        alpha_cql=1.0,
        beta_cql=1.0,
        policy_kwargs=dict(net_arch=[32, 32]),
        learning_rate=1e-3,
        seed=0,
        device="cpu",
        episode_length=1,
    )
    model.learn_offline(bandit_data(512), gradient_steps=1000, log_interval=500)
    in_data = np.linspace(-0.95, -0.55, 9)
    off_data = np.linspace(0.5, 1.0, 11)
    q_r_in, q_c_in = q_values(model, in_data)
    q_r_off, q_c_off = q_values(model, off_data)
    # off-data: strictly pessimistic on both sides, by a clear margin
    print("Q_r in/off", q_r_in.round(3), q_r_off.round(3), "Q_c in/off", q_c_in.round(3), q_c_off.round(3))
    assert q_r_off.max() < REWARD - 0.1, q_r_off
    assert q_c_off.min() > COST + 0.1, q_c_off
    # and more pessimistic than on the data, where the values stay near the truth
    assert q_r_off.mean() < q_r_in.mean() and q_c_off.mean() > q_c_in.mean()
    assert np.abs(q_r_in - REWARD).max() < 0.4 and np.abs(q_c_in - COST).max() < 0.4


def small(env: gym.Env, **kw: Any) -> CQLLag:
    kw.setdefault("episode_length", 1)
    return CQLLag(
        "MlpPolicy", env, batch_size=32, cql_n_actions=2, policy_kwargs=dict(net_arch=[16]), seed=0, device="cpu", **kw
    )


def test_dict_dataset_then_online_on_the_same_buffer() -> None:
    data = bandit_data(100)
    data["costs"] = np.linspace(0.0, 1.0, 100).astype(np.float32)
    model = small(Bandit(), learning_starts=0)
    model.learn_offline(data, gradient_steps=20, log_interval=10, progress_bar=True)
    assert model._n_updates == 20 and model.replay_buffer.size() == 100
    np.testing.assert_array_equal(model.replay_buffer.costs[:100, 0], data["costs"])
    model.learn(30)  # online continues, appending to the offline data
    assert model.replay_buffer.size() == 130
    assert model.replay_buffer.costs[100, 0] == COST
    assert model._n_updates == 50


def test_bad_datasets_get_clear_errors() -> None:
    data = bandit_data(10)
    no_costs = {k: v for k, v in data.items() if k != "costs"}
    with pytest.raises(CostSignalError, match="'costs'"):
        load_offline_dataset(no_costs)
    short = dict(data, rewards=data["rewards"][:9])
    with pytest.raises(ValueError, match="same length"):
        load_offline_dataset(short)
    with pytest.raises(CostSignalError, match="index 3"):
        load_offline_dataset(dict(data, costs=np.where(np.arange(10) == 3, np.nan, 0.0)))
    with pytest.raises(ValueError, match="missing"):
        load_offline_dataset({k: v for k, v in data.items() if k != "terminals"})
    with pytest.raises(ValueError, match="room for"):
        small(Bandit(), buffer_size=5).learn_offline(data, gradient_steps=1)
    with pytest.raises(ValueError, match=r"observation rows have shape \(2,\)"):
        small(Bandit()).learn_offline(dict(data, observations=np.ones((10, 2)), next_observations=np.ones((10, 2))), 1)
    with pytest.raises(TypeError, match="dict of arrays"):
        load_offline_dataset(42)


def make_minari(dataset_id: str, with_costs: bool = True) -> Any:
    minari = pytest.importorskip("minari")
    from minari.data_collector.episode_buffer import EpisodeBuffer

    episodes = []
    for i, steps in enumerate((3, 4)):
        infos = {"cost": np.arange(steps + 1, dtype=np.float64) + 10 * i} if with_costs else {"other": np.zeros(steps + 1)}
        episodes.append(
            EpisodeBuffer(
                id=i,
                observations=np.ones((steps + 1, 1), np.float32),
                actions=np.full((steps, 1), -0.5 - 0.1 * i, np.float32),
                rewards=[REWARD] * steps,
                terminations=[False] * (steps - 1) + [True],
                truncations=[False] * steps,
                infos=infos,
            )
        )
    return minari.create_dataset_from_buffers(
        dataset_id,
        episodes,
        observation_space=Bandit.observation_space,
        action_space=Bandit.action_space,
        algorithm_name="scripted",
    )


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_offline_training_from_a_minari_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    make_minari("bandit/costs-v0")
    data = load_offline_dataset("bandit/costs-v0")
    assert isinstance(data, OfflineDataset) and len(data) == 7
    # the reset info (index 0) is dropped: episode 0 costs 1, 2, 3; episode 1 costs 11..14
    np.testing.assert_array_equal(data.costs, [1, 2, 3, 11, 12, 13, 14])
    np.testing.assert_array_equal(data.terminals, [0, 0, 1, 0, 0, 0, 1])
    model = small(Bandit())
    model.learn_offline("bandit/costs-v0", gradient_steps=10)
    assert model._n_updates == 10 and model.replay_buffer.size() == 7
    np.testing.assert_allclose(model.replay_buffer.actions[:3, 0, 0], -0.5)

    make_minari("bandit/nocost-v0", with_costs=False)
    with pytest.raises(CostSignalError, match=r"infos\['cost'\]"):
        load_offline_dataset("bandit/nocost-v0")
