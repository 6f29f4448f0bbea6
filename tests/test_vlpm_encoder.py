"""VLPMEncoder: input checks, identity of the adapted tower at init, text cache, shared frozen backbone."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from shieldgym.vlpm.adapters import load_adapters, save_adapters
from shieldgym.vlpm.backbone import build_tiny_clip, image_features
from shieldgym.vlpm.encoder import VLPMEncoder, to_depth_tensor, to_image_tensor


@pytest.fixture(scope="module")
def backbone():
    return build_tiny_clip()


def _rgb(batch: int = 2, size: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)


def test_image_layouts_and_dtypes_agree() -> None:
    rgb = _rgb()
    channels_last = to_image_tensor(rgb, 32)
    assert channels_last.shape == (2, 3, 32, 32)
    torch.testing.assert_close(to_image_tensor(rgb.astype(np.float32) / 255.0, 32), channels_last)
    torch.testing.assert_close(to_image_tensor(torch.as_tensor(rgb).permute(0, 3, 1, 2), 32), channels_last)
    torch.testing.assert_close(to_image_tensor(rgb[0], 32), channels_last[:1])
    assert to_image_tensor(_rgb(size=48), 32).shape == (2, 3, 32, 32)  # documented resize


@pytest.mark.parametrize(
    ("images", "match"),
    [
        (np.zeros((2, 32, 32, 4), np.uint8), r"3 colour channels.*\(2, 32, 32, 4\)"),
        (np.zeros((32, 32), np.uint8), r"shape \(H, W, 3\).*got \(32, 32\)"),
        (np.zeros((1, 2, 32, 32, 3), np.uint8), r"got \(1, 2, 32, 32, 3\)"),
        (np.zeros((2, 32, 32, 3), np.int32), "uint8 .* or float .*got dtype torch.int32"),
    ],
)
def test_bad_images_are_rejected(backbone, images, match) -> None:
    encoder = VLPMEncoder(backbone, 8, use_depth=False, seed=0)
    with pytest.raises(ValueError, match=match):
        encoder(images)


def test_depth_normalisation() -> None:
    depth = np.array([[[0.0, 1.5], [3.0, np.inf]]], np.float32)
    out = to_depth_tensor(depth, 2, (0.0, 3.0))
    torch.testing.assert_close(out, torch.tensor([[[[0.0, 0.5], [1.0, 1.0]]]]))
    with pytest.raises(ValueError, match="depth must have shape"):
        to_depth_tensor(np.zeros((2, 3, 4, 4)), 4, (0.0, 1.0))


def test_adapted_image_embedding_equals_backbone_at_init(backbone) -> None:
    encoder = VLPMEncoder(backbone, 8, bottleneck=16, use_depth=False, seed=0)
    x = to_image_tensor(_rgb(), 32)
    expected = image_features(backbone, (x - encoder.pixel_mean) / encoder.pixel_std)
    torch.testing.assert_close(encoder.encode_image(_rgb()), expected, rtol=0, atol=1e-6)


def test_embedding_shape_and_only_encoder_params_train(backbone) -> None:
    encoder = VLPMEncoder(backbone, 8, proprio_dim=3, seed=0)
    z = encoder(_rgb(), depth=np.ones((2, 32, 32)), text="open the drawer", proprio=np.zeros((2, 3)))
    assert z.shape == (2, 8)
    z.square().sum().backward()
    assert all(p.grad is None for p in backbone.parameters())
    assert all(p.grad is not None for p in encoder.parameters())
    names = set(encoder.state_dict())
    assert not any(n.startswith(("vision_model", "text_model", "backbone")) for n in names)
    report = encoder.parameter_report()
    assert report.total == sum(p.numel() for p in backbone.parameters()) + sum(p.numel() for p in encoder.parameters())
    assert report.trainable == sum(p.numel() for p in encoder.parameters())


def test_missing_inputs_are_reported(backbone) -> None:
    encoder = VLPMEncoder(backbone, 8, proprio_dim=3, seed=0)
    with pytest.raises(ValueError, match="use_depth=True: pass depth"):
        encoder(_rgb(), proprio=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="proprio_dim=3: pass proprio"):
        encoder(_rgb(), depth=np.ones((2, 32, 32)))
    with pytest.raises(ValueError, match=r"3 features per sample, got shape \(2, 4\)"):
        encoder(_rgb(), depth=np.ones((2, 32, 32)), proprio=np.zeros((2, 4)))
    with pytest.raises(ValueError, match="got 3 instructions for a batch of 2"):
        encoder(_rgb(), depth=np.ones((2, 32, 32)), text=["a", "b", "c"], proprio=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="must be frozen"):
        VLPMEncoder(build_tiny_clip().requires_grad_(True), 8)


def test_instruction_embedding_is_cached_per_string(backbone) -> None:
    encoder = VLPMEncoder(backbone, 8, use_depth=False, seed=0)
    calls = []
    handle = backbone.text_model.register_forward_hook(lambda *args: calls.append(1))
    try:
        first = encoder(_rgb(4), text=["push", "pull", "push", "pull"])
        again = encoder(_rgb(4), text="push")
    finally:
        handle.remove()
    assert len(calls) == 2  # one text-tower pass per distinct instruction, ever
    torch.testing.assert_close(first[0] - first[1], again[0] - encoder(_rgb(4), text="pull")[1])
    fresh = VLPMEncoder(backbone, 8, use_depth=False, seed=0)
    torch.testing.assert_close(fresh(_rgb(4), text=["push", "pull", "push", "pull"]), first)


def test_copies_share_the_frozen_backbone_but_not_adapters(backbone, tmp_path) -> None:
    encoder = VLPMEncoder(backbone, 8, use_depth=False, bottleneck=4, seed=0)
    clone = copy.deepcopy(encoder)
    assert clone.backbone is backbone
    for p in clone.adapters.parameters():
        torch.nn.init.normal_(p, std=0.2)
    assert (clone.encode_image(_rgb()) - encoder.encode_image(_rgb())).abs().max() > 1e-3
    path = save_adapters(clone, tmp_path / "clone.safetensors")
    load_adapters(encoder, path)
    torch.testing.assert_close(encoder.encode_image(_rgb()), clone.encode_image(_rgb()), rtol=0, atol=0)
