"""The VLPM encoder: (RGB, depth, instruction, proprioception) -> one small embedding in R^k.

Architecture (``P`` = the backbone's joint embedding size, ``k = out_dim``)::

    e_img  = f_vision(normalise(resize(RGB)))           frozen tower + trainable adapters, (B, P)
    e_dep  = DepthStem(clip(depth, near, far))          small trainable conv net, (B, depth_dim)
    z_vis  = W_v [e_img ; e_dep]                        h_L(I, D) in R^k (what InfoNCE aligns)
    z      = z_vis + W_t e_txt + W_s s                  instruction and proprioception added

* **Depth** goes through a small conv stem, not through the vision tower. The CLIP/SigLIP
  towers were trained on natural RGB images; a depth map replicated to 3 channels is far from
  that distribution, so frozen features carry little of its geometry, while a second tower pass
  would double the cost of every step. Depth is clipped to ``depth_range`` (metres), scaled to
  [0, 1], resized to the image size and encoded by two strided convolutions pooled to a 4x4 grid (about 30k
  parameters).
* **Text** goes once through the frozen text tower: the instruction's embedding ``e_txt`` is
  cached per token sequence (up to ``text_cache_size`` entries) and fused by *adding* a learned
  projection ``W_t e_txt``, a task-dependent bias in R^k. With ``towers=("vision", "text")`` the
  text tower has adapters too and is recomputed (with gradients) on each call instead.
* **Images** are ``uint8`` in [0, 255] or floating point in [0, 1], ``(H, W, 3)``, ``(B, H, W, 3)``
  or ``(B, 3, H, W)``; any other shape or dtype raises ``ValueError``. Images of another
  resolution are resized (bilinear, antialiased) to the backbone's ``image_size``.

The backbone is *not* a sub-module of the encoder: it is shared (several encoders, e.g. an SB3
actor, critic and target critic, use one frozen copy in memory) and never appears in
``parameters()`` or ``state_dict()``; the encoder's adapters are lent to it during each forward
pass (:func:`~shieldgym.vlpm.adapters.lend_adapters`). ``encoder.to(device)`` moves the backbone too.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from shieldgym.vlpm.accounting import ParameterReport, parameter_report
from shieldgym.vlpm.adapters import DEFAULT_BOTTLENECK, lend_adapters, make_adapters
from shieldgym.vlpm.backbone import (
    embed_dim,
    image_features,
    image_mean_std,
    image_size,
    load_tokenizer,
    model_kind,
    text_features,
)

__all__ = ["DepthStem", "VLPMEncoder", "to_depth_tensor", "to_image_tensor"]

TextInput = str | Sequence[str] | tuple[torch.Tensor, torch.Tensor] | None


class _Shared:
    """Holds the shared backbone outside the module tree; copies of an encoder keep sharing it."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __deepcopy__(self, memo: dict[int, Any]) -> _Shared:
        return self


def to_image_tensor(images: Any, size: int) -> torch.Tensor:
    """Images to a float ``(B, 3, size, size)`` tensor in [0, 1].

    Args:
        images: ``uint8`` (0-255) or float (0-1) array/tensor, ``(H, W, 3)``, ``(B, H, W, 3)`` or ``(B, 3, H, W)``.
        size: output resolution (bilinear antialiased resize when different).

    Raises:
        ValueError: wrong number of dimensions, no 3-channel axis, or an unsupported dtype.
    """
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    elif x.is_floating_point():
        x = x.float()
    else:
        raise ValueError(f"images must be uint8 (0-255) or float (0-1), got dtype {x.dtype}")
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4:
        raise ValueError(f"images must have shape (H, W, 3), (B, H, W, 3) or (B, 3, H, W), got {tuple(x.shape)}")
    if x.shape[-1] == 3 and x.shape[1] != 3:
        x = x.permute(0, 3, 1, 2)
    elif x.shape[1] != 3:
        raise ValueError(f"images must have 3 colour channels first or last, got shape {tuple(x.shape)}")
    if x.shape[-2:] != (size, size):
        x = nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x


def to_depth_tensor(depth: Any, size: int, depth_range: tuple[float, float]) -> torch.Tensor:
    """Depth maps to a float ``(B, 1, size, size)`` tensor in [0, 1].

    Args:
        depth: ``(H, W)``, ``(B, H, W)``, ``(B, 1, H, W)`` or ``(B, H, W, 1)`` distances.
        size: output resolution.
        depth_range: ``(near, far)``; values are clipped to it and scaled to [0, 1]; NaN/inf count as far.

    Raises:
        ValueError: an unsupported shape.
    """
    x = torch.as_tensor(np.asarray(depth) if not isinstance(depth, torch.Tensor) else depth).float()
    if x.ndim == 2:
        x = x.unsqueeze(0)
    if x.ndim == 4 and x.shape[-1] == 1 and x.shape[1] != 1:
        x = x.permute(0, 3, 1, 2)
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"depth must have shape (H, W), (B, H, W), (B, 1, H, W) or (B, H, W, 1), got {tuple(x.shape)}")
    near, far = depth_range
    x = torch.nan_to_num(x, nan=far, posinf=far, neginf=near).clamp(near, far)
    x = (x - near) / (far - near)
    if x.shape[-2:] != (size, size):
        x = nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x


class DepthStem(nn.Module):
    """Two strided convolutions, 4x4 average pooling and a linear layer: ``(B, 1, S, S) -> (B, out_dim)``."""

    def __init__(self, out_dim: int = 32, channels: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, channels, kernel_size=5, stride=2, padding=2),
            nn.GELU(),
            nn.Conv2d(channels, 2 * channels, kernel_size=3, stride=2, padding=1),
            nn.GELU(),
            nn.AdaptiveAvgPool2d(4),  # keep a coarse 4x4 layout: where things are matters for control
            nn.Flatten(),
            nn.Linear(2 * channels * 16, out_dim),
        )

    def forward(self, depth: torch.Tensor) -> torch.Tensor:
        """Encode normalised depth ``(B, 1, S, S)``."""
        return self.net(depth)


class VLPMEncoder(nn.Module):
    """Frozen VLPM backbone + bottleneck adapters + small heads -> ``(B, out_dim)``.

    Args:
        backbone: a frozen CLIP/SigLIP model (:func:`~shieldgym.vlpm.backbone.load_backbone`).
        out_dim: embedding size ``k``.
        bottleneck: adapter bottleneck width (0: no adapters, the bare frozen tower).
        towers: towers that get adapters, ``("vision",)`` or ``("vision", "text")``.
        use_depth: build the depth stem (depth inputs are then required).
        depth_dim: output size of the depth stem.
        depth_range: ``(near, far)`` clip range of depth values.
        proprio_dim: size of the proprioceptive state (0: none).
        tokenizer: ``text -> (ids, mask)`` callable; default :func:`~shieldgym.vlpm.backbone.load_tokenizer`.
        text_cache_size: cached instruction embeddings.
        seed: seed of the heads' and adapters' initialisation (None: torch's global generator).

    Example:
        >>> import numpy as np
        >>> from shieldgym.vlpm.backbone import build_tiny_clip
        >>> enc = VLPMEncoder(build_tiny_clip(), out_dim=8, proprio_dim=3, seed=0)
        >>> rgb = np.zeros((2, 32, 32, 3), np.uint8)
        >>> enc(rgb, depth=np.ones((2, 32, 32)), text="open the drawer", proprio=np.zeros((2, 3))).shape
        torch.Size([2, 8])
    """

    def __init__(
        self,
        backbone: nn.Module,
        out_dim: int = 64,
        *,
        bottleneck: int = DEFAULT_BOTTLENECK,
        towers: Sequence[str] = ("vision",),
        use_depth: bool = True,
        depth_dim: int = 32,
        depth_range: tuple[float, float] = (0.0, 3.0),
        proprio_dim: int = 0,
        tokenizer: Callable[[str], tuple[list[int], list[int]]] | None = None,
        text_cache_size: int = 1024,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        model_kind(backbone)
        if out_dim < 1:
            raise ValueError(f"out_dim must be >= 1, got {out_dim}")
        if not depth_range[1] > depth_range[0]:
            raise ValueError(f"depth_range must be (near, far) with far > near, got {depth_range}")
        own = (p for name, p in backbone.named_parameters() if "bottleneck_adapters" not in name)  # attached sets sit idle
        if any(p.requires_grad for p in own):
            raise ValueError("the backbone must be frozen (load it with load_backbone or call shieldgym.vlpm.backbone.freeze)")
        self._shared = _Shared(backbone)
        self.out_dim, self.proprio_dim, self.use_depth = out_dim, proprio_dim, use_depth
        self.depth_range = (float(depth_range[0]), float(depth_range[1]))
        self.towers = tuple(towers)
        self.image_size = image_size(backbone)
        mean, std = image_mean_std(backbone)
        self.register_buffer("pixel_mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(backbone)
        self.text_cache_size = text_cache_size
        self._text_cache: OrderedDict[tuple[int, ...], torch.Tensor] = OrderedDict()
        p = embed_dim(backbone)
        with torch.random.fork_rng(devices=[], enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            self.adapters = nn.ModuleDict(make_adapters(backbone, bottleneck, self.towers) if bottleneck > 0 else {})
            self.depth_stem = DepthStem(depth_dim) if use_depth else None
            self.visual_head = nn.Linear(p + (depth_dim if use_depth else 0), out_dim)
            self.text_proj = nn.Linear(p, out_dim)
            self.proprio_proj = nn.Linear(proprio_dim, out_dim) if proprio_dim > 0 else None
        self.adapters.to(next(backbone.parameters()).device)

    @property
    def backbone(self) -> nn.Module:
        """The shared frozen backbone (not a sub-module: absent from ``parameters()`` and ``state_dict()``)."""
        return self._shared.model

    def parameter_report(self) -> ParameterReport:
        """Trainable parameters of the encoder against everything it runs (encoder + frozen backbone)."""
        return parameter_report(nn.ModuleList([self, self.backbone]))

    def adapter_modules(self) -> dict[str, nn.Module]:
        """This encoder's adapters keyed ``"<tower>_<index>"`` (for save/load_adapters)."""
        return dict(self.adapters.items())

    def _apply(self, fn: Any, recurse: bool = True) -> VLPMEncoder:
        super()._apply(fn, recurse)
        self.backbone._apply(fn, recurse)  # keep the shared backbone on the same device
        self._text_cache.clear()
        return self

    @property
    def _device(self) -> torch.device:
        return self.visual_head.weight.device

    def encode_image(self, rgb: Any) -> torch.Tensor:
        """Adapted image embedding ``e_img``, ``(B, P)``."""
        x = to_image_tensor(rgb, self.image_size).to(self._device)
        mean: torch.Tensor = self.pixel_mean  # type: ignore[assignment]
        std: torch.Tensor = self.pixel_std  # type: ignore[assignment]
        x = (x - mean) / std
        dtype = next(self.backbone.parameters()).dtype
        with lend_adapters(self.backbone, self.adapter_modules()):
            return image_features(self.backbone, x.to(dtype)).float()

    def encode_visual(self, rgb: Any, depth: Any = None) -> torch.Tensor:
        """``z_vis = h_L(I, D)``, ``(B, out_dim)``: the image (and depth) part of the embedding."""
        parts = [self.encode_image(rgb)]
        if self.depth_stem is not None:
            if depth is None:
                raise ValueError("this encoder was built with use_depth=True: pass depth maps")
            parts.append(self.depth_stem(to_depth_tensor(depth, self.image_size, self.depth_range).to(self._device)))
        elif depth is not None:
            raise ValueError("this encoder was built with use_depth=False but depth maps were passed")
        return self.visual_head(torch.cat(parts, dim=-1))

    def tokenize(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and attention masks ``(B, L)`` of ``texts``."""
        pairs = [self.tokenizer(t) for t in texts]
        ids = torch.tensor([p[0] for p in pairs], dtype=torch.long)
        mask = torch.tensor([p[1] for p in pairs], dtype=torch.long)
        return ids, mask

    def encode_text(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Text embedding ``e_txt`` ``(B, P)`` of token ids; cached per distinct sequence when the text tower is frozen."""
        ids, mask = ids.long().to(self._device), mask.long().to(self._device)
        if "text" in self.towers:
            with lend_adapters(self.backbone, self.adapter_modules()):
                return text_features(self.backbone, ids, mask).float()
        unique, inverse = torch.unique(torch.cat([ids, mask], dim=1), dim=0, return_inverse=True)
        rows = []
        for row in unique:
            key = tuple(row.tolist())
            cached = self._text_cache.get(key)
            if cached is None:
                width = ids.shape[1]
                with torch.no_grad(), lend_adapters(self.backbone, {}):
                    cached = text_features(self.backbone, row[None, :width], row[None, width:]).float()[0]
                self._text_cache[key] = cached
                if len(self._text_cache) > self.text_cache_size:
                    self._text_cache.popitem(last=False)
            else:
                self._text_cache.move_to_end(key)
            rows.append(cached)
        return torch.stack(rows)[inverse]

    def forward(self, rgb: Any, depth: Any = None, text: TextInput = None, proprio: Any = None) -> torch.Tensor:
        """Embed a batch of observations.

        Args:
            rgb: images (see :func:`to_image_tensor`).
            depth: depth maps (see :func:`to_depth_tensor`); required iff ``use_depth``.
            text: one instruction for the whole batch, one per sample, or ``(ids, mask)`` tensors; None: no text term.
            proprio: ``(B, proprio_dim)`` state; required iff ``proprio_dim > 0``.

        Returns:
            ``(B, out_dim)`` embeddings.
        """
        z = self.encode_visual(rgb, depth)
        batch = z.shape[0]
        if text is not None:
            if isinstance(text, str):
                ids, mask = self.tokenize([text] * batch)
            elif isinstance(text, tuple) and len(text) == 2 and isinstance(text[0], torch.Tensor):
                ids, mask = text
            else:
                ids, mask = self.tokenize(list(text))  # type: ignore[arg-type]
            if ids.shape[0] != batch:
                raise ValueError(f"got {ids.shape[0]} instructions for a batch of {batch} images")
            z = z + self.text_proj(self.encode_text(ids, mask))
        if self.proprio_proj is not None:
            if proprio is None:
                raise ValueError(f"this encoder was built with proprio_dim={self.proprio_dim}: pass proprio")
            s = torch.as_tensor(np.asarray(proprio) if not isinstance(proprio, torch.Tensor) else proprio)
            s = s.float().reshape(batch, -1).to(self._device)
            if s.shape[1] != self.proprio_dim:
                raise ValueError(f"proprio must have {self.proprio_dim} features per sample, got shape {tuple(s.shape)}")
            z = z + self.proprio_proj(s)
        return z
