"""VLPMObservation / VectorVLPMObservation on scripted camera envs: spaces, values, instructions, vector agreement."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from shieldgym.vlpm.backbone import build_tiny_clip, load_tokenizer
from shieldgym.vlpm.encoder import VLPMEncoder
from shieldgym.wrappers.vlpm import VectorVLPMObservation, VLPMObservation


class CameraEnv(gym.Env):
    """Dict observation (state, rgb, depth) that encodes the step count; the instruction changes at step 2."""

    metadata = {"render_modes": []}

    def __init__(self, offset: int = 0) -> None:
        self.offset = offset
        self.observation_space = spaces.Dict(
            {
                "state": spaces.Box(-10, 10, (3,), np.float64),
                "rgb": spaces.Box(0, 255, (32, 32, 3), np.uint8),
                "depth": spaces.Box(0.0, np.inf, (32, 32), np.float32),
            }
        )
        self.action_space = spaces.Box(-1, 1, (2,), np.float32)
        self.t = 0

    def _obs(self) -> dict[str, np.ndarray]:
        v = self.t + self.offset
        rgb = np.zeros((32, 32, 3), np.uint8)
        rgb[: 4 * (v % 8) + 1, :, v % 3] = 200
        return {
            "state": np.array([v, -v, 0.5], np.float64),
            "rgb": rgb,
            "depth": np.full((32, 32), 0.25 * (v % 8), np.float32),
        }

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.t = int(self.np_random.integers(0, 3))
        return self._obs(), {"instruction": "pick the cube"}

    def step(self, action):
        self.t += 1
        info = {"instruction": "place the cube"} if self.t >= 2 else {}
        return self._obs(), 1.0, False, self.t >= 6, info


class RenderEnv(gym.Env):
    """Box observation; the frame is drawn by ``render()``; the instruction is an env attribute."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, render_mode: str | None = "rgb_array") -> None:
        self.render_mode = render_mode
        self.observation_space = spaces.Box(-1, 1, (2,), np.float32)
        self.action_space = spaces.Box(-1, 1, (1,), np.float32)
        self.instruction = "swing up"
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.full(2, 0.1 * self.t, np.float32), 0.0, False, self.t >= 4, {}

    def render(self):
        return np.full((24, 16, 3), 10 * self.t, np.uint8)


@pytest.fixture(scope="module")
def backbone():
    return build_tiny_clip()


@pytest.fixture(scope="module")
def tokenizer(backbone):
    return load_tokenizer(backbone)


def test_raw_mode_space_and_values(tokenizer) -> None:
    env = VLPMObservation(CameraEnv(), tokenizer=tokenizer)
    space = env.observation_space
    assert isinstance(space, spaces.Dict)
    assert sorted(space.spaces) == ["depth", "instruction", "instruction_mask", "proprio", "rgb"]
    assert space["rgb"] == spaces.Box(0, 255, (32, 32, 3), np.uint8)
    assert space["depth"] == spaces.Box(0.0, np.inf, (32, 32), np.float32)
    assert space["proprio"] == spaces.Box(-np.inf, np.inf, (3,), np.float32)
    assert space["instruction"] == spaces.Box(0, 299, (16,), np.int64)
    obs, _ = env.reset(seed=3)
    inner = env.unwrapped._obs()
    np.testing.assert_array_equal(obs["rgb"], inner["rgb"])
    np.testing.assert_array_equal(obs["depth"], inner["depth"])
    np.testing.assert_array_equal(obs["proprio"], inner["state"].astype(np.float32))
    ids, mask = tokenizer("pick the cube")
    np.testing.assert_array_equal(obs["instruction"], ids)
    np.testing.assert_array_equal(obs["instruction_mask"], mask)
    for _ in range(2):
        obs, *_ = env.step(np.zeros(2, np.float32))
    np.testing.assert_array_equal(obs["instruction"], tokenizer("place the cube")[0])
    assert env.instruction == "place the cube"


def test_instruction_precedence(tokenizer) -> None:
    env = VLPMObservation(RenderEnv(), tokenizer=tokenizer, instruction="fallback")
    env.reset(seed=0)
    assert env.instruction == "swing up"  # env.unwrapped.instruction beats the argument
    bare = RenderEnv()
    del bare.instruction
    env = VLPMObservation(bare, tokenizer=tokenizer, instruction="fallback")
    env.reset(seed=0)
    assert env.instruction == "fallback"
    env = VLPMObservation(CameraEnv(), tokenizer=tokenizer, instruction="fallback")
    env.reset(seed=0)
    assert env.instruction == "pick the cube"  # info beats both


def test_images_from_render(tokenizer) -> None:
    env = VLPMObservation(RenderEnv(), tokenizer=tokenizer, image_shape=(24, 16))
    assert sorted(env.observation_space.spaces) == ["instruction", "instruction_mask", "proprio", "rgb"]
    assert env.observation_space["rgb"].shape == (24, 16, 3)
    env.reset(seed=0)
    obs, *_ = env.step(np.zeros(1, np.float32))
    np.testing.assert_array_equal(obs["rgb"], np.full((24, 16, 3), 10, np.uint8))
    np.testing.assert_array_equal(obs["proprio"], np.full(2, 0.1, np.float32))
    probed = VLPMObservation(RenderEnv(), tokenizer=tokenizer)  # shape found by one reset + render
    assert probed.observation_space["rgb"].shape == (24, 16, 3)


def test_embed_mode_matches_the_encoder(backbone) -> None:
    encoder = VLPMEncoder(backbone, 8, proprio_dim=3, seed=0)
    env = VLPMObservation(CameraEnv(), "embed", encoder=encoder)
    assert env.observation_space == spaces.Box(-np.inf, np.inf, (8,), np.float32)
    obs, _ = env.reset(seed=1)
    inner = env.unwrapped._obs()
    with torch.no_grad():
        expected = encoder(inner["rgb"][None], inner["depth"][None], ["pick the cube"], inner["state"][None])[0]
    assert obs.dtype == np.float32 and obs.shape == (8,)
    np.testing.assert_allclose(obs, expected.numpy(), rtol=0, atol=1e-6)


def test_wrapper_errors(backbone, tokenizer) -> None:
    with pytest.raises(ValueError, match="mode='raw' needs tokenizer="):
        VLPMObservation(CameraEnv())
    with pytest.raises(ValueError, match="mode='embed' needs encoder="):
        VLPMObservation(CameraEnv(), "embed")
    with pytest.raises(ValueError, match="mode must be 'raw' or 'embed'"):
        VLPMObservation(CameraEnv(), "pixels", tokenizer=tokenizer)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="render_mode=None"):
        VLPMObservation(RenderEnv(render_mode=None), tokenizer=tokenizer)
    with pytest.raises(ValueError, match="uses depth"):
        VLPMObservation(RenderEnv(), "embed", encoder=VLPMEncoder(backbone, 8, seed=0))
    with pytest.raises(ValueError, match="proprio_dim=5 but the env state has 3"):
        VLPMObservation(CameraEnv(), "embed", encoder=VLPMEncoder(backbone, 8, proprio_dim=5, seed=0))


@pytest.mark.parametrize("mode", ["raw", "embed"])
def test_passes_env_checkers(backbone, tokenizer, mode) -> None:
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    encoder = VLPMEncoder(backbone, 8, proprio_dim=3, seed=0)
    kwargs = {"tokenizer": tokenizer} if mode == "raw" else {"encoder": encoder}
    check_env(VLPMObservation(CameraEnv(), mode, **kwargs), skip_render_check=True)
    sb3_check_env(VLPMObservation(CameraEnv(), mode, **kwargs), warn=False)


@pytest.mark.parametrize("mode", ["raw", "embed"])
def test_vector_version_agrees_with_single(backbone, tokenizer, mode) -> None:
    encoder = VLPMEncoder(backbone, 8, proprio_dim=3, seed=0)
    kwargs = {"tokenizer": tokenizer} if mode == "raw" else {"encoder": encoder}
    vec = VectorVLPMObservation(gym.vector.SyncVectorEnv([lambda: CameraEnv(0), lambda: CameraEnv(5)]), mode, **kwargs)
    singles = [VLPMObservation(CameraEnv(0), mode, **kwargs), VLPMObservation(CameraEnv(5), mode, **kwargs)]
    assert vec.single_observation_space == singles[0].observation_space
    batch, _ = vec.reset(seed=[11, 12])
    assert [env.t for env in vec.env.envs] == [0, 1]  # the instruction changes at different steps
    firsts = [env.reset(seed=s)[0] for env, s in zip(singles, (11, 12))]
    steps = [(batch, firsts)]
    for _ in range(3):
        batch, *_ = vec.step(np.zeros((2, 2), np.float32))
        steps.append((batch, [env.step(np.zeros(2, np.float32))[0] for env in singles]))
        if len(steps) == 2:
            assert vec.instructions == ["pick the cube", "place the cube"]
    for batch, single in steps:
        assert batch in vec.observation_space
        for i, obs in enumerate(single):
            if mode == "raw":
                for key in obs:
                    np.testing.assert_array_equal(batch[key][i], obs[key])
            else:
                np.testing.assert_allclose(batch[i], obs, rtol=0, atol=1e-5)
    assert vec.instructions == ["place the cube", "place the cube"]
