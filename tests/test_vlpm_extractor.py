"""VLPMExtractor inside SB3 SAC (and CQLLag): only adapters and heads train, the backbone is untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces
from test_vlpm_wrapper import CameraEnv

from shieldgym.vlpm.backbone import build_tiny_clip, load_tokenizer
from shieldgym.vlpm.extractor import VLPMExtractor
from shieldgym.wrappers.vlpm import VLPMObservation


class CostlyCameraEnv(CameraEnv):
    """CameraEnv that also reports ``info["cost"]`` (1 when the first action component is positive)."""

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        return obs, reward, terminated, truncated, {**info, "cost": float(action[0] > 0)}


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def _changed(before: dict[str, torch.Tensor], module: torch.nn.Module) -> set[str]:
    return {name for name, p in module.named_parameters() if not torch.equal(before[name], p.detach())}


def test_extractor_forward_on_sb3_preprocessed_batch() -> None:
    backbone = build_tiny_clip()
    env = VLPMObservation(CameraEnv(), tokenizer=load_tokenizer(backbone))
    extractor = VLPMExtractor(env.observation_space, backbone, features_dim=6, bottleneck=4, seed=0)
    assert extractor.encoder.use_depth and extractor.encoder.proprio_dim == 3
    obs, _ = env.reset(seed=0)
    batch = {k: torch.as_tensor(v[None]).float() for k, v in obs.items()}
    batch["rgb"] = batch["rgb"].permute(0, 3, 1, 2) / 255.0  # what SB3's VecTransposeImage + preprocessing give
    raw = {k: torch.as_tensor(v[None]) for k, v in obs.items()}
    torch.testing.assert_close(extractor(batch), extractor(raw))
    assert extractor(batch).shape == (1, 6)
    with pytest.raises(ValueError, match="Dict observation space with an 'rgb' key"):
        VLPMExtractor(spaces.Box(0, 1, (3,)), backbone)  # type: ignore[arg-type]


@pytest.mark.parametrize("algo", ["sac", "cqllag"])
def test_rl_training_updates_only_adapters_and_heads(algo) -> None:
    backbone = build_tiny_clip()
    backbone_before = _snapshot(backbone)
    env = VLPMObservation(CostlyCameraEnv(), tokenizer=load_tokenizer(backbone))
    policy_kwargs = {
        "features_extractor_class": VLPMExtractor,
        "features_extractor_kwargs": {"backbone": backbone, "features_dim": 8, "bottleneck": 4, "seed": 0},
        "net_arch": [16],
        "share_features_extractor": True,
    }
    common = {"learning_starts": 8, "batch_size": 8, "buffer_size": 64, "seed": 0, "device": "cpu"}
    if algo == "sac":
        from stable_baselines3 import SAC

        model = SAC("MultiInputPolicy", env, policy_kwargs=policy_kwargs, **common)
    else:
        cqllag = pytest.importorskip("shieldgym.algos.cqllag")
        model = cqllag.CQLLag("MultiInputPolicy", env, policy_kwargs=policy_kwargs, cql_n_actions=2, **common)
    extractor = model.actor.features_extractor
    assert isinstance(extractor, VLPMExtractor) and extractor.encoder.backbone is backbone
    adapters_before = _snapshot(extractor.encoder.adapters)
    assert not any(name.startswith("vision_model") for name, _ in model.policy.named_parameters())
    model.learn(24)
    assert not any(p.requires_grad for p in backbone.parameters())
    assert _changed(backbone_before, backbone) == set()
    changed = _changed(adapters_before, extractor.encoder.adapters)
    assert {name.split(".")[-2] + "." + name.split(".")[-1] for name in changed} >= {"up.weight", "up.bias"}
    obs, _ = env.reset(seed=1)
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(action)


def test_extractor_starts_from_an_infonce_checkpoint(tmp_path) -> None:
    from shieldgym.pretrain.infonce import ContrastiveData, pretrain
    from shieldgym.vlpm.encoder import VLPMEncoder

    backbone = build_tiny_clip()
    rng = np.random.default_rng(0)
    data = ContrastiveData(
        rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8),
        rng.normal(size=(8, 3)),
        rng.normal(size=(8, 2)),
        rng.uniform(0, 3, (8, 32, 32)).astype(np.float32),
    )
    encoder = VLPMEncoder(backbone, 8, bottleneck=4, seed=0)
    pretrain(encoder, data, steps=2, batch_size=4, lr=1e-2, checkpoint=tmp_path / "ck.pt", progress=False)
    env = VLPMObservation(CameraEnv(), tokenizer=load_tokenizer(backbone))
    extractor = VLPMExtractor(env.observation_space, backbone, 8, bottleneck=4, seed=1, pretrained=str(tmp_path / "ck.pt"))
    for name, value in encoder.state_dict().items():
        torch.testing.assert_close(extractor.encoder.state_dict()[name], value, rtol=0, atol=0, msg=name)
    no_depth = spaces.Dict({k: v for k, v in env.observation_space.spaces.items() if k != "depth"})
    with pytest.raises(ValueError, match="does not fit this extractor: unexpected"):
        VLPMExtractor(no_depth, backbone, 8, bottleneck=4, pretrained=str(tmp_path / "ck.pt"))


def test_sac_save_load_round_trip(tmp_path) -> None:
    from stable_baselines3 import SAC

    backbone = build_tiny_clip()
    backbone.save_pretrained(tmp_path / "backbone")
    env = VLPMObservation(CameraEnv(), tokenizer=load_tokenizer(backbone))
    kwargs = {"backbone": str(tmp_path / "backbone"), "features_dim": 8, "bottleneck": 4, "seed": 0}
    policy_kwargs = {"features_extractor_class": VLPMExtractor, "features_extractor_kwargs": kwargs, "net_arch": [16]}
    model = SAC("MultiInputPolicy", env, policy_kwargs=policy_kwargs, learning_starts=4, batch_size=4, buffer_size=32, seed=0)
    model.learn(8)
    obs, _ = env.reset(seed=0)
    model.save(tmp_path / "sac.zip")
    assert (tmp_path / "sac.zip").stat().st_size < 2_000_000  # the backbone is not in the file
    loaded = SAC.load(tmp_path / "sac.zip", env=env)
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])
