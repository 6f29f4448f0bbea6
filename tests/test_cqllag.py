"""CQLLag as an SB3 algorithm: learning loop, cost bookkeeping, errors, save/load, adapters."""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3 import SAC
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.vec_env import DummyVecEnv

from shieldgym.algos.cqllag import CheckpointError, CostCritic, CostReplayBuffer, CQLLag, TrainingDivergedError
from shieldgym.errors import CostSignalError

EP_LEN = 5
SMALL = dict(net_arch=[16, 16])


class CostEnv(gym.Env):
    """Scripted env: obs = [t/EP_LEN, 1], reward = -|a0|, cost = 0.5 * t (t = 1..EP_LEN), truncated at EP_LEN."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, cost_key: str | None = "cost", reward: float | None = None, dict_obs: bool = False) -> None:
        self.cost_key, self.fixed_reward, self.dict_obs = cost_key, reward, dict_obs
        box = spaces.Box(-2.0, 2.0, (2,), np.float32)
        self.observation_space = spaces.Dict({"pos": box, "flag": spaces.Box(0.0, 1.0, (1,), np.float32)}) if dict_obs else box
        self.action_space = spaces.Box(-2.0, 2.0, (2,), np.float32)
        self.t = 0

    def _obs(self) -> Any:
        pos = np.array([self.t / EP_LEN, 1.0], dtype=np.float32)
        return {"pos": pos, "flag": np.ones(1, np.float32)} if self.dict_obs else pos

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict]:
        self.t += 1
        reward = -abs(float(action[0])) if self.fixed_reward is None else self.fixed_reward
        info = {} if self.cost_key is None else {self.cost_key: 0.5 * self.t}
        return self._obs(), reward, False, self.t >= EP_LEN, info


def small_model(env: Any, **kw: Any) -> CQLLag:
    kw.setdefault("policy_kwargs", SMALL)
    defaults = dict(learning_starts=20, batch_size=16, cql_n_actions=3, seed=0, device="cpu", episode_length=EP_LEN)
    defaults.update(kw)
    policy = "MultiInputPolicy" if isinstance(getattr(env, "observation_space", None), spaces.Dict) else "MlpPolicy"
    return CQLLag(policy, env, **defaults)


def test_learn_box_obs_logs_every_loss_and_episode_cost(capsys: pytest.CaptureFixture[str]) -> None:
    model = small_model(CostEnv())
    model.learn(200, progress_bar=True, log_interval=1)
    logged = model.logger.name_to_value
    for key in (
        "reward_critic_loss",
        "cost_critic_loss",
        "cql_reward_penalty",
        "cql_cost_penalty",
        "actor_loss",
        "ent_coef",
        "lambda",
        "alpha_cql",
        "beta_cql",
        "trainable_params",
    ):
        assert math.isfinite(logged[f"train/{key}"]), key
    # every episode costs 0.5 * (1 + 2 + 3 + 4 + 5) = 7.5
    assert list(model.ep_cost_buffer) == [7.5] * 40
    assert model.num_timesteps == 200 and model._n_updates == 180
    # the buffer holds info["cost"] at the right rows, and samples carry it
    assert isinstance(model.replay_buffer, CostReplayBuffer)
    np.testing.assert_array_equal(model.replay_buffer.costs[:10, 0], 0.5 * np.tile(np.arange(1, 6), 2))
    batch = model.replay_buffer.sample(8)
    assert batch.costs is not None and batch.costs.shape == (8, 1)
    assert model.cost_limit_discounted == pytest.approx(25.0 * (1 - 0.99**EP_LEN) / (0.01 * EP_LEN))


def test_learn_dict_obs_two_env_vecenv() -> None:
    venv = DummyVecEnv([lambda: CostEnv(dict_obs=True), lambda: CostEnv(dict_obs=True)])
    model = small_model(venv)
    model.learn(200, progress_bar=True)
    assert model.num_timesteps == 200
    assert sorted(model.ep_cost_buffer) == [7.5] * 40
    assert set(model.replay_buffer.costs[:5].ravel().tolist()) == {0.5, 1.0, 1.5, 2.0, 2.5}
    action, _ = model.predict(venv.reset(), deterministic=True)
    assert action.shape == (2, 2)


def test_missing_cost_key_fails_at_first_step_naming_the_key() -> None:
    model = small_model(CostEnv(cost_key=None))
    with pytest.raises(CostSignalError, match="'cost'"):
        model.learn(50)
    assert model.num_timesteps == 1


def test_custom_cost_key() -> None:
    model = small_model(CostEnv(cost_key="hazard"), cost_key="hazard")
    model.learn(30)
    assert model.replay_buffer.costs[0, 0] == 0.5
    with pytest.raises(CostSignalError, match="'hazard'"):
        small_model(CostEnv(), cost_key="hazard").learn(5)


def test_nan_loss_stops_training_naming_loss_and_step() -> None:
    model = small_model(CostEnv(reward=float("nan")), learning_starts=10)
    with pytest.raises(TrainingDivergedError, match=r"train/reward_critic_loss became nan at gradient step 1\b"):
        model.learn(50)


def test_save_load_round_trip_restores_predictions_lambda_and_optimizers(tmp_path: Path) -> None:
    env = CostEnv()
    model = small_model(env, lambda_init=0.3, cql_alpha_threshold=5.0)
    model.learn(60)
    model.lagrange.value.fill_(0.7)
    path = tmp_path / "model.zip"
    model.save(path)
    loaded = CQLLag.load(path, env=CostEnv(), device="cpu")

    obs = np.array([[0.2, 1.0], [0.6, 1.0], [1.0, 1.0]], dtype=np.float32)
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])
    assert float(loaded.lagrange.value) == 0.7
    assert float(loaded.log_alpha_cql.detach()) == float(model.log_alpha_cql.detach())
    for name in ("actor", "critic"):
        a = getattr(model, name).optimizer.state_dict()
        b = getattr(loaded, name).optimizer.state_dict()
        assert a["state"].keys() == b["state"].keys() and len(a["state"]) > 0
        for k in a["state"]:
            torch.testing.assert_close(a["state"][k]["exp_avg"], b["state"][k]["exp_avg"], rtol=0, atol=0)
    assert loaded.alpha_cql_optimizer is not None and loaded.alpha_cql_optimizer.state_dict()["state"]
    risk_a = model.cost_critic()(obs, np.zeros((3, 2), np.float32))
    risk_b = loaded.cost_critic()(obs, np.zeros((3, 2), np.float32))
    np.testing.assert_array_equal(risk_a, risk_b)
    loaded.learn(30, reset_num_timesteps=False)  # keeps training
    assert loaded.num_timesteps == 90


def test_truncated_or_foreign_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    model = small_model(CostEnv())
    path = tmp_path / "m.zip"
    model.save(path)
    raw = path.read_bytes()
    (tmp_path / "cut.zip").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        CQLLag.load(tmp_path / "cut.zip")
    (tmp_path / "junk.zip").write_bytes(b"not a zip at all")
    with pytest.raises(CheckpointError, match=r"junk\.zip"):
        CQLLag.load(tmp_path / "junk.zip")
    with pytest.raises(CheckpointError, match="not found"):
        CQLLag.load(tmp_path / "missing.zip")
    SAC("MlpPolicy", CostEnv(), policy_kwargs=SMALL, device="cpu").save(tmp_path / "sac.zip")
    with pytest.raises(CheckpointError, match="another algorithm"):
        CQLLag.load(tmp_path / "sac.zip")


def test_failed_save_leaves_the_previous_file_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import stable_baselines3.common.base_class as base_class

    model = small_model(CostEnv())
    path = tmp_path / "m.zip"
    model.save(path)
    before = path.read_bytes()

    def broken_writer(save_path: Any, *args: Any, **kwargs: Any) -> None:
        Path(save_path).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(base_class, "save_to_zip_file", broken_writer)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.zip"]
    assert zipfile.is_zipfile(path)


class FrozenExtractor(BaseFeaturesExtractor):
    """A frozen 'backbone' (Linear) followed by a small trainable adapter."""

    def __init__(self, observation_space: spaces.Box) -> None:
        super().__init__(observation_space, features_dim=8)
        self.backbone = torch.nn.Linear(int(np.prod(observation_space.shape)), 8)
        self.backbone.requires_grad_(False)
        self.adapter = torch.nn.Linear(8, 8)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        h = self.backbone(obs)
        return h + self.adapter(torch.relu(h))


def test_frozen_extractor_parameters_are_in_no_optimizer() -> None:
    model = small_model(CostEnv(), policy_kwargs=dict(net_arch=[16, 16], features_extractor_class=FrozenExtractor))
    frozen = {id(p) for m in (model.actor, model.critic) for p in m.features_extractor.backbone.parameters()}
    for opt in (model.actor.optimizer, model.critic.optimizer):
        in_opt = {id(p) for group in opt.param_groups for p in group["params"]}
        assert in_opt and not in_opt & frozen
    before = model.actor.features_extractor.backbone.weight.clone()
    model.learn(60)
    torch.testing.assert_close(model.actor.features_extractor.backbone.weight, before, rtol=0, atol=0)
    frozen_count = 2 * (2 * 8 + 8)  # actor's and critic's backbone: weight 2x8 + bias 8 each
    assert model.total_params - model.trainable_params == frozen_count
    assert model.logger.name_to_value["train/trainable_params"] == model.trainable_params
    assert model.trainable_fraction == pytest.approx(model.trainable_params / model.total_params)


def test_cost_critic_protocol_unscales_env_actions() -> None:
    model = small_model(CostEnv())
    model.learn(40)
    critic = model.cost_critic()
    assert isinstance(critic, CostCritic)
    obs = np.array([[0.2, 1.0], [0.8, 1.0]], dtype=np.float32)
    env_actions = np.array([[2.0, -1.0], [0.5, 0.5]], dtype=np.float32)  # env units, space [-2, 2]
    risk = critic(obs, env_actions)
    assert risk.shape == (2,) and risk.dtype == np.float32
    with torch.no_grad():
        q_c = model.critic(torch.as_tensor(obs), torch.as_tensor(env_actions / 2.0))[2:]
    np.testing.assert_allclose(risk, q_c.max(dim=0).values.numpy(), rtol=1e-6)
    np.testing.assert_allclose(model.cost_critic("mean")(obs, env_actions), q_c.mean(dim=0).numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="Expected 2 action"):
        critic(obs, env_actions[:1])
    with pytest.raises(ValueError, match="reduce"):
        model.cost_critic("median")  # type: ignore[arg-type]


def test_safe_predict_respects_the_threshold() -> None:
    model = small_model(CostEnv())
    model.learn(60)
    obs = np.array([[0.2, 1.0], [0.6, 1.0]], dtype=np.float32)
    risk = model.cost_critic()
    deterministic, _ = model.predict(obs, deterministic=True)

    def q_r(actions: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model.critic(torch.as_tensor(obs), torch.as_tensor(actions / 2.0))[:2].min(dim=0).values.numpy()

    greedy = model.safe_predict(obs, n_samples=32, threshold=math.inf, seed=1)
    assert np.all(q_r(greedy) >= q_r(deterministic) - 1e-6)
    cautious = model.safe_predict(obs, n_samples=32, threshold=-math.inf, seed=1)
    assert np.all(risk(obs, cautious) <= risk(obs, deterministic) + 1e-6)
    assert model.safe_predict(obs[0], n_samples=4, seed=0).shape == (2,)
    np.testing.assert_array_equal(model.safe_predict(obs, seed=3), model.safe_predict(obs, seed=3))


def test_rejects_a_buffer_without_costs_and_bad_weights() -> None:
    from stable_baselines3.common.buffers import ReplayBuffer

    with pytest.raises(TypeError, match="stores costs"):
        small_model(CostEnv(), replay_buffer_class=ReplayBuffer)
    with pytest.raises(ValueError, match="alpha_cql"):
        small_model(CostEnv(), alpha_cql=-1.0)
    with pytest.raises(ValueError, match="cql_n_actions"):
        small_model(CostEnv(), cql_n_actions=0)


def test_pid_lagrangian_option_saves_its_state(tmp_path: Path) -> None:
    import shieldgym
    from shieldgym.algos.cqllag import PIDLagrangeMultiplier

    assert shieldgym.CQLLag is CQLLag
    model = small_model(CostEnv(), pid_lagrangian=dict(kp=0.1, ki=0.01, kd=0.05))
    assert isinstance(model.lagrange, PIDLagrangeMultiplier)
    model.learn(40)
    assert int(model.lagrange.n_updates) == model._n_updates == 20
    model.save(tmp_path / "pid")
    loaded = CQLLag.load(tmp_path / "pid", device="cpu")
    assert isinstance(loaded.lagrange, PIDLagrangeMultiplier)
    for name in ("value", "integral", "cost_ema", "n_updates"):
        assert torch.equal(getattr(loaded.lagrange, name), getattr(model.lagrange, name)), name


def test_episode_length_comes_from_the_time_limit() -> None:
    model = CQLLag("MlpPolicy", gym.wrappers.TimeLimit(CostEnv(), 7), policy_kwargs=SMALL, device="cpu")
    assert model.episode_length == 7
    assert model.cost_limit_discounted == pytest.approx(25.0 * (1 - 0.99**7) / (0.01 * 7))
    with pytest.warns(UserWarning, match="episode length is unknown"):
        unknown = CQLLag("MlpPolicy", CostEnv(), policy_kwargs=SMALL, device="cpu")
    assert unknown.episode_length == 1000
