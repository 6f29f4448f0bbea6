"""Loading a frozen vision-language backbone (CLIP or SigLIP) and reading its geometry.

The backbone is a ``transformers`` ``CLIPModel`` or ``SiglipModel``, loaded from a hub id
(``"openai/clip-vit-base-patch32"``) or a local directory written by ``save_pretrained``, put in
``eval()`` mode with every parameter frozen. The small helpers here (:func:`vision_blocks`,
:func:`image_features`, ...) hide the few differences between the two model families, so the
adapters and the encoder never branch on the model type.

Example:
    >>> from shieldgym.vlpm.backbone import build_tiny_clip
    >>> model = build_tiny_clip(seed=0)           # random weights, nothing downloaded
    >>> model.training, any(p.requires_grad for p in model.parameters())
    (False, False)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from shieldgym._optional import require
from shieldgym.errors import ShieldgymError

__all__ = [
    "BackboneError",
    "ByteTokenizer",
    "build_tiny_clip",
    "embed_dim",
    "freeze",
    "image_features",
    "image_mean_std",
    "image_size",
    "load_backbone",
    "load_tokenizer",
    "model_kind",
    "text_blocks",
    "text_features",
    "vision_blocks",
    "vit_b32_clip_config",
]

Kind = Literal["auto", "clip", "siglip"]

# Pixel statistics the two model families were trained with.
_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_SIGLIP_MEAN = (0.5, 0.5, 0.5)
_SIGLIP_STD = (0.5, 0.5, 0.5)

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "spiece.model")
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


class BackboneError(ShieldgymError, ValueError):
    """A backbone name or path that cannot be loaded, or a model that is not CLIP/SigLIP."""


def freeze(model: nn.Module) -> nn.Module:
    """Freeze every parameter of ``model`` and put it in ``eval()`` mode (in place).

    Args:
        model: any module.

    Returns:
        ``model`` itself.
    """
    model.requires_grad_(False)
    model.eval()
    return model


def _offline(name_or_path: str) -> bool:
    """No hub access when the user says so or when the name is a filesystem path."""
    flag = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
    looks_like_path = name_or_path.startswith((".", "/", "~")) or Path(name_or_path).expanduser().exists()
    return flag or looks_like_path


def load_backbone(
    name_or_path: str | os.PathLike[str],
    *,
    kind: Kind = "auto",
    device: str | torch.device = "cpu",
    dtype: Literal["float32", "bfloat16"] = "float32",
    local_files_only: bool | None = None,
) -> nn.Module:
    """Load a CLIP or SigLIP model, frozen, from a hub id or a local directory.

    Args:
        name_or_path: hub id (``"openai/clip-vit-base-patch32"``, ``"google/siglip-base-patch16-224"``)
            or a directory written by ``save_pretrained``.
        kind: ``"clip"``, ``"siglip"`` or ``"auto"`` (read ``model_type`` from the config).
        device: where to put the model.
        dtype: ``"float32"`` or ``"bfloat16"``.
        local_files_only: never contact the hub. Defaults to True when ``HF_HUB_OFFLINE`` is set or the
            name is a path, False otherwise.

    Returns:
        The model (a ``CLIPModel`` or ``SiglipModel``) with ``requires_grad=False`` and in ``eval()`` mode.

    Raises:
        BackboneError: the path does not exist, the hub id cannot be reached offline, or the model is
            neither CLIP nor SigLIP.
        MissingDependencyError: transformers is not installed.
    """
    if kind not in ("auto", "clip", "siglip"):
        raise BackboneError(f"kind must be 'auto', 'clip' or 'siglip', got {kind!r}")
    if dtype not in _DTYPES:
        raise BackboneError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    transformers = require("transformers", "VLPM backbones")
    name = os.fspath(name_or_path)
    is_path = Path(name).expanduser().exists()
    if local_files_only is None:
        local_files_only = _offline(name)
    if not is_path and (name.startswith((".", "/", "~")) or name.count("/") > 1):
        raise BackboneError(
            f"backbone path {name!r} does not exist; expected a directory written by save_pretrained "
            "or a hub id such as 'openai/clip-vit-base-patch32'"
        )
    source = str(Path(name).expanduser()) if is_path else name
    try:
        config = transformers.AutoConfig.from_pretrained(source, local_files_only=local_files_only)
    except (OSError, ValueError) as exc:
        offline = " (offline: no download is possible, HF_HUB_OFFLINE or local_files_only is set)" if local_files_only else ""
        raise BackboneError(
            f"cannot load backbone {name!r}{offline}: {exc.__class__.__name__}: {str(exc).splitlines()[0]}. "
            "Expected a hub id such as 'openai/clip-vit-base-patch32' or a local directory with config.json "
            "and model weights (save_pretrained)."
        ) from exc
    model_type = getattr(config, "model_type", "")
    resolved = kind if kind != "auto" else model_type
    classes = {"clip": "CLIPModel", "siglip": "SiglipModel"}
    if resolved not in classes or model_type not in classes:
        raise BackboneError(
            f"backbone {name!r} has model_type {model_type!r}; expected a CLIP or SigLIP model (model_type 'clip' or 'siglip')"
        )
    if resolved != model_type:
        raise BackboneError(f"backbone {name!r} is a {model_type!r} model but kind={kind!r} was requested")
    model_class = getattr(transformers, classes[resolved])
    try:
        model = model_class.from_pretrained(source, local_files_only=local_files_only, dtype=_DTYPES[dtype])
    except OSError as exc:
        raise BackboneError(
            f"cannot load the weights of backbone {name!r}: {str(exc).splitlines()[0]}"
            + (" (offline: no download is possible)" if local_files_only else "")
        ) from exc
    return freeze(model.to(device))


def vit_b32_clip_config(**overrides: Any) -> Any:
    """A ``CLIPConfig`` with the sizes of ``openai/clip-vit-base-patch32`` (for benchmarks with random weights).

    Args:
        **overrides: extra ``CLIPConfig`` keyword arguments.

    Returns:
        The ``transformers.CLIPConfig``.
    """
    transformers = require("transformers", "VLPM backbones")
    vision = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12}
    vision |= {"image_size": 224, "patch_size": 32, "projection_dim": 512}
    text = {"hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 12, "num_attention_heads": 8}
    text |= {"max_position_embeddings": 77, "vocab_size": 49408, "projection_dim": 512}
    return transformers.CLIPConfig(text_config=text, vision_config=vision, projection_dim=512, **overrides)


def build_tiny_clip(
    *,
    hidden_size: int = 32,
    num_layers: int = 2,
    image_size: int = 32,
    patch_size: int = 8,
    projection_dim: int = 16,
    vocab_size: int = 300,
    max_text_length: int = 16,
    seed: int = 0,
) -> nn.Module:
    """A tiny randomly initialised ``CLIPModel``, frozen (for tests, examples and smoke runs).

    The text config uses ``pad=0``, ``bos=vocab_size-2``, ``eos=vocab_size-1`` so that
    :class:`ByteTokenizer` works with it.

    Args:
        hidden_size: width of both towers.
        num_layers: transformer blocks per tower.
        image_size: input resolution.
        patch_size: ViT patch size.
        projection_dim: size of the joint image-text embedding.
        vocab_size: text vocabulary size.
        max_text_length: text positions.
        seed: seed of the random weights.

    Returns:
        The frozen model in ``eval()`` mode.
    """
    transformers = require("transformers", "VLPM backbones")
    common = {"hidden_size": hidden_size, "intermediate_size": 2 * hidden_size, "num_hidden_layers": num_layers}
    common |= {"num_attention_heads": 2, "projection_dim": projection_dim}
    text = common | {"vocab_size": vocab_size, "max_position_embeddings": max_text_length}
    text |= {"pad_token_id": 0, "bos_token_id": vocab_size - 2, "eos_token_id": vocab_size - 1}
    vision = common | {"image_size": image_size, "patch_size": patch_size}
    config = transformers.CLIPConfig(text_config=text, vision_config=vision, projection_dim=projection_dim)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = transformers.CLIPModel(config)
    return freeze(model)


def _config(model: nn.Module) -> Any:
    return model.config


def model_kind(model: nn.Module) -> str:
    """``"clip"`` or ``"siglip"``.

    Raises:
        BackboneError: for any other model.
    """
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in ("clip", "siglip"):
        raise BackboneError(f"expected a CLIPModel or SiglipModel backbone, got {type(model).__name__} ({model_type!r})")
    return str(model_type)


def vision_blocks(model: nn.Module) -> Sequence[nn.Module]:
    """The transformer blocks of the vision tower, in order."""
    model_kind(model)
    return list(model.vision_model.encoder.layers)  # type: ignore[union-attr, arg-type]


def text_blocks(model: nn.Module) -> Sequence[nn.Module]:
    """The transformer blocks of the text tower, in order."""
    model_kind(model)
    return list(model.text_model.encoder.layers)  # type: ignore[union-attr, arg-type]


def image_size(model: nn.Module) -> int:
    """Input resolution (pixels per side) of the vision tower."""
    model_kind(model)
    return int(_config(model).vision_config.image_size)


def image_mean_std(model: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel pixel mean and std the backbone expects after scaling to [0, 1]."""
    return (_CLIP_MEAN, _CLIP_STD) if model_kind(model) == "clip" else (_SIGLIP_MEAN, _SIGLIP_STD)


def embed_dim(model: nn.Module) -> int:
    """Size of the joint image/text embedding returned by :func:`image_features` and :func:`text_features`."""
    if model_kind(model) == "clip":
        return int(_config(model).projection_dim)
    return int(_config(model).vision_config.hidden_size)


def image_features(model: nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
    """Pooled (and, for CLIP, projected) image embedding.

    Args:
        model: the backbone.
        pixel_values: ``(B, 3, S, S)`` normalised pixels, ``S = image_size(model)``.

    Returns:
        ``(B, embed_dim(model))``.
    """
    pooled = model.vision_model(pixel_values=pixel_values).pooler_output  # type: ignore[operator]
    return model.visual_projection(pooled) if model_kind(model) == "clip" else pooled  # type: ignore[operator]


def text_features(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Pooled (and, for CLIP, projected) text embedding.

    Args:
        model: the backbone.
        input_ids: ``(B, L)`` token ids.
        attention_mask: ``(B, L)`` 1 for tokens, 0 for padding (CLIP only; SigLIP ignores padding masks).

    Returns:
        ``(B, embed_dim(model))``.
    """
    if model_kind(model) == "clip":
        pooled = model.text_model(input_ids=input_ids, attention_mask=attention_mask).pooler_output  # type: ignore[operator]
        return model.text_projection(pooled)  # type: ignore[operator]
    return model.text_model(input_ids=input_ids).pooler_output  # type: ignore[operator]


class ByteTokenizer:
    """A dependency-free tokenizer for backbones shipped without tokenizer files (tiny test models).

    Each UTF-8 byte maps to one id, skipping the backbone's special ids; the sequence is
    ``[bos] bytes [eos] [pad ...]`` truncated/padded to ``max_length``.

    Args:
        vocab_size: the text tower's vocabulary size.
        max_length: fixed sequence length.
        pad_id: padding id.
        bos_id: begin-of-sequence id.
        eos_id: end-of-sequence id (the CLIP text tower pools at the first ``eos_id``).
    """

    def __init__(self, vocab_size: int, max_length: int, pad_id: int, bos_id: int, eos_id: int) -> None:
        specials = {pad_id, bos_id, eos_id}
        self._ids = [i for i in range(vocab_size) if i not in specials]
        if not self._ids or max_length < 2:
            raise ValueError(f"ByteTokenizer needs vocab_size > 3 and max_length >= 2, got {vocab_size}, {max_length}")
        self.max_length, self.pad_id, self.bos_id, self.eos_id = max_length, pad_id, bos_id, eos_id
        self.vocab_size = vocab_size

    def __call__(self, text: str) -> tuple[list[int], list[int]]:
        """Token ids and attention mask of ``text``, both of length ``max_length``."""
        body = [self._ids[b % len(self._ids)] for b in text.encode("utf-8")][: self.max_length - 2]
        ids = [self.bos_id, *body, self.eos_id]
        mask = [1] * len(ids) + [0] * (self.max_length - len(ids))
        return ids + [self.pad_id] * (self.max_length - len(ids)), mask


class _HFTokenizer:
    """Adapts a ``transformers`` tokenizer to the ``text -> (ids, mask)`` interface at a fixed length."""

    def __init__(self, tokenizer: Any, max_length: int) -> None:
        self.tokenizer, self.max_length = tokenizer, max_length
        self.vocab_size = len(tokenizer)

    def __call__(self, text: str) -> tuple[list[int], list[int]]:
        out = self.tokenizer(text, padding="max_length", truncation=True, max_length=self.max_length)
        return list(out["input_ids"]), list(out.get("attention_mask", [1] * self.max_length))


def load_tokenizer(model: nn.Module, name_or_path: str | None = None, *, max_length: int | None = None) -> Any:
    """A callable ``text -> (ids, mask)`` of fixed length for ``model``'s text tower.

    Uses the ``transformers`` tokenizer saved with the model (``name_or_path``, default the path the
    model was loaded from); a model without tokenizer files (e.g. :func:`build_tiny_clip`) gets a
    :class:`ByteTokenizer` built from its text config.

    Args:
        model: the backbone.
        name_or_path: where the tokenizer files live.
        max_length: sequence length (default: the text tower's ``max_position_embeddings``, at most 77).

    Returns:
        The tokenizer callable; ``tokenizer.max_length`` is its sequence length.
    """
    model_kind(model)
    text_config = _config(model).text_config
    length = max_length or min(int(text_config.max_position_embeddings), 77)
    source = name_or_path or getattr(_config(model), "_name_or_path", "") or ""
    local = Path(str(source)).expanduser()
    has_files = any((local / f).exists() for f in _TOKENIZER_FILES) if local.is_dir() else bool(source)
    if has_files:
        transformers = require("transformers", "VLPM tokenizers")
        try:
            hf = transformers.AutoTokenizer.from_pretrained(source, local_files_only=_offline(str(source)))
            return _HFTokenizer(hf, length)
        except (OSError, ValueError, TypeError):
            pass  # no tokenizer files next to the weights: fall back to bytes below
    pad = text_config.pad_token_id if text_config.pad_token_id is not None else 0
    return ByteTokenizer(
        int(text_config.vocab_size), length, int(pad), int(text_config.bos_token_id), int(text_config.eos_token_id)
    )
