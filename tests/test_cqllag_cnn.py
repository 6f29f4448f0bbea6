"""CQLLag with image observations (``CnnPolicy``, SB3's NatureCNN encoder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from shieldgym import CQLLag, ShieldWrapper
from shieldgym.algos.cqllag import CostReplayBuffer

SIZE, EP_LEN = 36, 4  # NatureCNN needs at least 36 x 36 pixels


class ImageCostEnv(gym.Env):
    """A channel-last uint8 image whose pixels all equal ``40 * t``; cost ``t`` at step ``t``; reward ``-|a|``."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self) -> None:
        self.observation_space = spaces.Box(0, 255, (SIZE, SIZE, 1), np.uint8)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.t = 0

    def _obs(self) -> np.ndarray:
        return np.full((SIZE, SIZE, 1), 40 * self.t, np.uint8)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        return self._obs(), -abs(float(action[0])), False, self.t >= EP_LEN, {"cost": float(self.t)}


def cnn_model() -> CQLLag:
    return CQLLag(
        "CnnPolicy",
        ImageCostEnv(),
        buffer_size=500,
        learning_starts=16,
        batch_size=8,
        cql_n_actions=2,
        policy_kwargs=dict(net_arch=[16], features_extractor_kwargs=dict(features_dim=16)),
        episode_length=EP_LEN,
        seed=0,
        device="cpu",
    )


def test_cnn_policy_learns_stores_costs_and_round_trips(tmp_path: Path) -> None:
    model = cnn_model()
    model.learn(40)
    assert model.num_timesteps == 40 and model._n_updates == 24
    assert list(model.ep_cost_buffer) == [10.0] * 10  # 1 + 2 + 3 + 4 per episode
    buf = model.replay_buffer
    assert isinstance(buf, CostReplayBuffer)
    assert buf.costs[:8, 0].tolist() == [1.0, 2.0, 3.0, 4.0] * 2
    assert buf.observations.shape[2:] == (1, SIZE, SIZE)  # stored channel-first, as SB3 transposes images
    assert buf.observations[1, 0].min() == buf.observations[1, 0].max() == 40
    assert np.isfinite(model.logger.name_to_value["train/cost_critic_loss"])

    obs = np.stack([np.full((SIZE, SIZE, 1), v, np.uint8) for v in (0, 80, 160)])  # channel-last, as the env gives
    path = tmp_path / "cnn.zip"
    model.save(path)
    loaded = CQLLag.load(path, env=ImageCostEnv(), device="cpu")
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])

    # the shield's risk function takes the env's channel-last images and the env's actions
    acts = np.array([[-1.0], [0.0], [0.5]], np.float32)
    risk = model.cost_critic()(obs, acts)
    assert risk.shape == (3,)
    with torch.no_grad():
        direct = model.policy.cost_values(torch.as_tensor(obs.transpose(0, 3, 1, 2)), torch.as_tensor(acts)).max(dim=0).values
    np.testing.assert_allclose(risk, direct.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(risk, loaded.cost_critic()(obs, acts))

    shielded = ShieldWrapper(ImageCostEnv(), model.cost_critic(), threshold=float(risk.max()) + 1.0)
    first, _ = shielded.reset(seed=0)
    _, _, _, _, info = shielded.step(model.predict(first, deterministic=True)[0])
    assert info["shield"]["intervened"] is False and info["cost"] == 1.0
