"""Backbone loading, parameter accounting, bottleneck adapters and LoRA on tiny random CLIP models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from shieldgym.vlpm.accounting import ParameterReport, parameter_report
from shieldgym.vlpm.adapters import (
    DEFAULT_BOTTLENECK,
    AdapterMismatchError,
    BottleneckAdapter,
    adapter_parameters,
    add_adapters,
    load_adapters,
    save_adapters,
    set_active_adapter,
)
from shieldgym.vlpm.backbone import (
    BackboneError,
    build_tiny_clip,
    image_features,
    load_backbone,
    text_features,
    vit_b32_clip_config,
)


def _pixels(seed: int = 0, batch: int = 3) -> torch.Tensor:
    return torch.as_tensor(np.random.default_rng(seed).normal(size=(batch, 3, 32, 32)), dtype=torch.float32)


def _text() -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.tensor([[298, 5, 6, 7, 299, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]])
    return ids, (ids != 0).long()


def test_parameter_report_counts_exactly() -> None:
    net = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    net[0].requires_grad_(False)
    report = parameter_report(net)
    assert isinstance(report, ParameterReport)
    assert report == ParameterReport(trainable=8, total=23, fraction=8 / 23, trainable_bytes=32, total_bytes=92)
    assert "8 / 23" in str(report) and "34.783%" in str(report)


def test_parameter_report_counts_tied_weights_once_and_rejects_non_modules() -> None:
    shared = nn.Linear(2, 2, bias=False)
    net = nn.Sequential(shared, shared)
    assert parameter_report(net).total == 4
    assert parameter_report(nn.ReLU()).fraction == 0.0
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        parameter_report("not a module")  # type: ignore[arg-type]


def test_load_backbone_round_trip_frozen(tmp_path) -> None:
    model = build_tiny_clip(seed=1)
    model.save_pretrained(tmp_path / "tiny")
    loaded = load_backbone(tmp_path / "tiny")
    assert not loaded.training
    assert not any(p.requires_grad for p in loaded.parameters())
    torch.testing.assert_close(image_features(loaded, _pixels()), image_features(model, _pixels()), rtol=0, atol=0)


def test_bad_backbone_path_names_it(tmp_path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(BackboneError, match=r"no-such-model.*does not exist"):
        load_backbone(missing)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BackboneError, match=r"empty.*no download is possible"):
        load_backbone(tmp_path / "empty")


def test_offline_hub_id_error(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackboneError, match=r"'shieldgym-test/not-a-model'.*offline: no download is possible"):
        load_backbone("shieldgym-test/not-a-model")


def test_non_clip_model_is_rejected(tmp_path) -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8)
    transformers.BertModel(config).save_pretrained(tmp_path / "bert")
    with pytest.raises(BackboneError, match=r"model_type 'bert'.*CLIP or SigLIP"):
        load_backbone(tmp_path / "bert")
    with pytest.raises(BackboneError, match="kind must be"):
        load_backbone(tmp_path / "bert", kind="vit")  # type: ignore[arg-type]


def test_adapters_start_as_identity() -> None:
    model = build_tiny_clip()
    pixels = _pixels()
    before_img, before_txt = image_features(model, pixels), text_features(model, *_text())
    add_adapters(model, 8, towers=("vision", "text"))
    torch.testing.assert_close(image_features(model, pixels), before_img, rtol=0, atol=0)
    torch.testing.assert_close(text_features(model, *_text()), before_txt, rtol=0, atol=0)


def test_bottleneck_adapter_formula() -> None:
    torch.manual_seed(0)
    adapter = BottleneckAdapter(6, 3)
    nn.init.normal_(adapter.up.weight)
    h = torch.randn(2, 4, 6)
    expected = h + adapter.up(nn.functional.gelu(adapter.down(h)))
    torch.testing.assert_close(adapter(h), expected)


def test_only_adapter_params_get_gradients() -> None:
    model = build_tiny_clip()
    adapters = add_adapters(model, 4)
    assert sorted(adapters) == ["vision_0", "vision_1"]
    for p in adapter_parameters(model):
        nn.init.normal_(p, std=0.1)  # so that gradients reach W_down too
    image_features(model, _pixels()).pow(2).sum().backward()
    names = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert names == {n for n, p in model.named_parameters() if "bottleneck_adapters.default" in n}
    assert len(names) == 2 * 4  # 2 blocks x (down.weight, down.bias, up.weight, up.bias)
    report = parameter_report(model)
    assert report.trainable == 2 * (32 * 4 + 4 + 4 * 32 + 32)


def test_default_bottleneck_is_under_two_percent_of_vit_b32() -> None:
    transformers = pytest.importorskip("transformers")
    with torch.device("meta"):
        model = transformers.CLIPModel(vit_b32_clip_config()).requires_grad_(False)
    add_adapters(model, DEFAULT_BOTTLENECK)
    report = parameter_report(model)
    assert report.trainable == 12 * (768 * 64 + 64 + 64 * 768 + 768)
    assert report.fraction < 0.02


def test_save_load_and_swap_task_adapters(tmp_path) -> None:
    pixels = _pixels()
    source = build_tiny_clip()
    bare = image_features(source, pixels)
    for name, seed in (("reach", 0), ("push", 1)):
        add_adapters(source, 4, adapter_name=name)
        torch.manual_seed(seed)
        for p in adapter_parameters(source, name):
            nn.init.normal_(p, std=0.2)
        save_adapters(source, tmp_path / f"{name}.safetensors", adapter_name=name)
    set_active_adapter(source, "reach")
    reach = image_features(source, pixels)
    set_active_adapter(source, "push")
    push = image_features(source, pixels)
    assert (reach - push).abs().max() > 1e-3 and (reach - bare).abs().max() > 1e-3

    target = build_tiny_clip()  # same seed: the same backbone
    load_adapters(target, tmp_path / "reach.safetensors", adapter_name="reach")
    load_adapters(target, tmp_path / "push.safetensors", adapter_name="push")
    set_active_adapter(target, "reach")
    torch.testing.assert_close(image_features(target, pixels), reach, rtol=0, atol=0)
    set_active_adapter(target, "push")
    torch.testing.assert_close(image_features(target, pixels), push, rtol=0, atol=0)
    set_active_adapter(target, None)
    torch.testing.assert_close(image_features(target, pixels), bare, rtol=0, atol=0)
    with pytest.raises(AdapterMismatchError, match="no adapter named 'grasp'"):
        set_active_adapter(target, "grasp")
    with pytest.raises(AdapterMismatchError, match="already has an adapter named 'push'"):
        add_adapters(target, 4, adapter_name="push")


def test_adapter_file_for_another_backbone_is_rejected(tmp_path) -> None:
    model = build_tiny_clip()
    add_adapters(model, 4)
    path = save_adapters(model, tmp_path / "a.safetensors")
    with pytest.raises(AdapterMismatchError, match=r"another backbone.*vision_layers: file '2' vs model '3'"):
        load_adapters(build_tiny_clip(num_layers=3), path)
    with pytest.raises(AdapterMismatchError, match=r"vision_hidden_size: file '32' vs model '48'"):
        load_adapters(build_tiny_clip(hidden_size=48), path)


def test_failed_save_keeps_previous_file(tmp_path, monkeypatch) -> None:
    import safetensors.torch

    model = build_tiny_clip()
    add_adapters(model, 4)
    path = save_adapters(model, tmp_path / "a.safetensors")
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        save_adapters(model, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.safetensors"]


def test_lora_starts_as_identity_and_trains_only_lora() -> None:
    from shieldgym.vlpm.lora import add_lora

    model = build_tiny_clip()
    pixels = _pixels()
    before = image_features(model, pixels)
    add_lora(model, r=2)
    torch.testing.assert_close(image_features(model, pixels), before, rtol=0, atol=0)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n and "vision_model" in n for n in trainable)
    assert parameter_report(model).trainable == 2 * 2 * (2 * 32 + 32 * 2)  # layers x (q, v) x (A + B)
    with pytest.raises(ValueError, match="rank r must be >= 1"):
        add_lora(build_tiny_clip(), r=0)


def test_siglip_backbone(tmp_path) -> None:
    transformers = pytest.importorskip("transformers")
    from shieldgym.vlpm.backbone import model_kind
    from shieldgym.vlpm.encoder import VLPMEncoder

    common = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    text = common | {
        "vocab_size": 300,
        "max_position_embeddings": 16,
        "pad_token_id": 0,
        "bos_token_id": 298,
        "eos_token_id": 299,
    }
    config = transformers.SiglipConfig(text_config=text, vision_config=common | {"image_size": 32, "patch_size": 8})
    torch.manual_seed(0)
    transformers.SiglipModel(config).save_pretrained(tmp_path / "siglip")
    model = load_backbone(tmp_path / "siglip")
    assert model_kind(model) == "siglip"
    with pytest.raises(BackboneError, match="is a 'siglip' model but kind='clip'"):
        load_backbone(tmp_path / "siglip", kind="clip")
    before = image_features(model, _pixels())
    add_adapters(model, 4, towers=("vision", "text"))
    torch.testing.assert_close(image_features(model, _pixels()), before, rtol=0, atol=0)
    encoder = VLPMEncoder(model, 8, seed=0)  # the attached set sits idle; the encoder lends its own
    out = encoder(np.zeros((2, 32, 32, 3), np.uint8), depth=np.ones((2, 32, 32)), text="open the door")
    assert out.shape == (2, 8)
