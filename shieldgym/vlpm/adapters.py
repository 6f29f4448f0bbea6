"""Bottleneck adapters in every transformer block of a frozen backbone.

An adapter is a two-layer bottleneck added to the output ``h`` of a transformer block::

    h <- h + W_up GELU(W_down h + b_down) + b_up

with ``W_up`` and ``b_up`` initialised to zero, so a freshly adapted backbone computes exactly
what the frozen backbone computes. Adapters are kept peft-style in an ``nn.ModuleDict`` keyed by
adapter name on each block (``block.bottleneck_adapters[name]``); ``set_active_adapter`` selects
which one runs, so several task adapters can share one loaded backbone.

A block's adapter is applied by a forward hook. An owner that keeps its adapters outside the
backbone (:class:`~shieldgym.vlpm.encoder.VLPMEncoder`, so that SB3's online and target networks
can share one frozen backbone) *lends* them for the duration of a forward pass with
:func:`lend_adapters`; lent adapters take precedence over the block's own.

Example:
    >>> from shieldgym.vlpm.backbone import build_tiny_clip
    >>> model = build_tiny_clip()
    >>> adapters = add_adapters(model, bottleneck=4)
    >>> sorted(adapters)
    ['vision_0', 'vision_1']
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from shieldgym._optional import require
from shieldgym.errors import ShieldgymError
from shieldgym.vlpm.backbone import model_kind, text_blocks, vision_blocks

__all__ = [
    "DEFAULT_BOTTLENECK",
    "AdapterMismatchError",
    "BottleneckAdapter",
    "adapter_parameters",
    "add_adapters",
    "backbone_signature",
    "blocks_of",
    "install_hooks",
    "lend_adapters",
    "load_adapters",
    "save_adapters",
    "set_active_adapter",
]

DEFAULT_BOTTLENECK = 64
"""Default bottleneck width: 0.79% of a ViT-B/32-sized CLIP trainable (vision tower), 1.3% with both towers."""

_TOWERS = ("vision", "text")
_ATTR = "bottleneck_adapters"
_ACTIVE = "active_bottleneck_adapter"
_FORMAT = "shieldgym-bottleneck-adapters"

# id(block) -> adapter, set by lend_adapters for the duration of one forward pass.
_LENT: contextvars.ContextVar[Mapping[int, nn.Module] | None] = contextvars.ContextVar("shieldgym_lent_adapters", default=None)


class AdapterMismatchError(ShieldgymError, ValueError):
    """An adapter file or set that was made for a different backbone, or an unknown adapter name."""


class BottleneckAdapter(nn.Module):
    """``h + W_up GELU(W_down h)`` with ``W_up`` zero-initialised (identity at initialisation).

    Args:
        dim: width of the hidden states.
        bottleneck: width of the bottleneck.
    """

    def __init__(self, dim: int, bottleneck: int, *, dtype: torch.dtype | None = None, device: Any = None) -> None:
        super().__init__()
        if dim < 1 or bottleneck < 1:
            raise ValueError(f"BottleneckAdapter needs dim >= 1 and bottleneck >= 1, got dim={dim}, bottleneck={bottleneck}")
        self.down = nn.Linear(dim, bottleneck, dtype=dtype, device=device)
        self.up = nn.Linear(bottleneck, dim, dtype=dtype, device=device)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Apply the residual bottleneck to ``hidden`` of shape ``(..., dim)``."""
        return hidden + self.up(nn.functional.gelu(self.down(hidden)))


def _adapter_hook(block: nn.Module, args: Any, output: Any) -> Any:
    lent = _LENT.get()
    if lent is not None:
        adapter = lent.get(id(block))
    else:
        owned = getattr(block, _ATTR, None)
        name = getattr(block, _ACTIVE, None)
        adapter = owned[name] if owned is not None and name is not None and name in owned else None
    if adapter is None:
        return None  # leave the block's output unchanged
    if isinstance(output, tuple):
        return (adapter(output[0]), *output[1:])
    return adapter(output)


def blocks_of(model: nn.Module, towers: Sequence[str]) -> dict[str, nn.Module]:
    """Transformer blocks of the given towers, keyed ``"<tower>_<index>"``.

    Raises:
        ValueError: for an unknown tower name.
    """
    bad = [t for t in towers if t not in _TOWERS]
    if bad or not towers:
        raise ValueError(f"towers must be a non-empty subset of {_TOWERS}, got {tuple(towers)!r}")
    found: dict[str, nn.Module] = {}
    for tower in towers:
        blocks = vision_blocks(model) if tower == "vision" else text_blocks(model)
        found |= {f"{tower}_{i}": block for i, block in enumerate(blocks)}
    return found


def install_hooks(model: nn.Module) -> None:
    """Register the adapter hook on every transformer block of ``model`` (idempotent)."""
    for block in blocks_of(model, _TOWERS).values():
        if not getattr(block, "_shieldgym_adapter_hook", False):
            block.register_forward_hook(_adapter_hook)
            block._shieldgym_adapter_hook = True  # type: ignore[assignment]


def make_adapters(model: nn.Module, bottleneck: int, towers: Sequence[str]) -> dict[str, BottleneckAdapter]:
    """New adapters (not attached to anything) for the blocks of ``towers``, keyed like :func:`blocks_of`."""
    adapters = {}
    for key, block in blocks_of(model, towers).items():
        ref = next(block.parameters())
        dim = int(block.layer_norm1.normalized_shape[0])  # type: ignore[index, union-attr]
        adapters[key] = BottleneckAdapter(dim, bottleneck, dtype=ref.dtype, device=ref.device)
    return adapters


def add_adapters(
    model: nn.Module,
    bottleneck: int = DEFAULT_BOTTLENECK,
    *,
    towers: Sequence[str] = ("vision",),
    adapter_name: str = "default",
    activate: bool = True,
) -> dict[str, BottleneckAdapter]:
    """Add a bottleneck adapter after every transformer block of the chosen towers.

    The backbone's own parameters are left untouched (and frozen); the new adapter parameters are
    trainable.

    Args:
        model: a CLIP or SigLIP backbone (:func:`~shieldgym.vlpm.backbone.load_backbone`).
        bottleneck: bottleneck width.
        towers: ``("vision",)`` or ``("vision", "text")``.
        adapter_name: key of the adapter set; several sets can live side by side.
        activate: make this set the active one.

    Returns:
        The new adapters keyed ``"<tower>_<index>"``.

    Raises:
        AdapterMismatchError: ``adapter_name`` already exists on the model.
    """
    if not adapter_name.isidentifier():
        raise ValueError(f"adapter_name must be a Python identifier, got {adapter_name!r}")
    model_kind(model)
    install_hooks(model)
    new = make_adapters(model, bottleneck, towers)
    blocks = blocks_of(model, towers)
    if any(adapter_name in getattr(block, _ATTR, {}) for block in blocks.values()):
        raise AdapterMismatchError(f"the model already has an adapter named {adapter_name!r}; pick another adapter_name")
    for key, block in blocks.items():
        if not hasattr(block, _ATTR):
            block.add_module(_ATTR, nn.ModuleDict())
        getattr(block, _ATTR)[adapter_name] = new[key]
    if activate:
        set_active_adapter(model, adapter_name)
    return new


def adapter_names(model: nn.Module) -> list[str]:
    """Names of the adapter sets attached to ``model``."""
    names: set[str] = set()
    for block in blocks_of(model, _TOWERS).values():
        names |= set(getattr(block, _ATTR, {}).keys())
    return sorted(names)


def set_active_adapter(model: nn.Module, adapter_name: str | None) -> None:
    """Select the adapter set that runs in ``model``'s forward pass (``None``: run the bare backbone).

    Raises:
        AdapterMismatchError: no adapter set of that name.
    """
    if adapter_name is not None and adapter_name not in adapter_names(model):
        raise AdapterMismatchError(f"no adapter named {adapter_name!r} on this model; it has {adapter_names(model)}")
    for block in blocks_of(model, _TOWERS).values():
        setattr(block, _ACTIVE, adapter_name)


def attached_adapters(model: nn.Module, adapter_name: str) -> dict[str, nn.Module]:
    """The adapters of set ``adapter_name`` attached to ``model``, keyed ``"<tower>_<index>"``."""
    found = {
        key: getattr(b, _ATTR)[adapter_name]
        for key, b in blocks_of(model, _TOWERS).items()
        if adapter_name in getattr(b, _ATTR, {})
    }
    if not found:
        raise AdapterMismatchError(f"no adapter named {adapter_name!r} on this model; it has {adapter_names(model)}")
    return found


def adapter_parameters(model: nn.Module, adapter_name: str = "default") -> list[nn.Parameter]:
    """Parameters of adapter set ``adapter_name`` (what an optimizer should train)."""
    return [p for adapter in attached_adapters(model, adapter_name).values() for p in adapter.parameters()]


@contextlib.contextmanager
def lend_adapters(model: nn.Module, adapters: Mapping[str, nn.Module]) -> Iterator[None]:
    """Run ``model`` with ``adapters`` (keyed ``"<tower>_<index>"``) in place of its own, inside the block.

    Blocks without a lent adapter run bare.
    """
    install_hooks(model)
    blocks = blocks_of(model, _TOWERS)
    token = _LENT.set({id(blocks[key]): adapter for key, adapter in adapters.items()})
    try:
        yield
    finally:
        _LENT.reset(token)


@runtime_checkable
class AdapterOwner(Protocol):
    """Anything that keeps its own adapters for a backbone (e.g. :class:`~shieldgym.vlpm.encoder.VLPMEncoder`)."""

    @property
    def backbone(self) -> nn.Module: ...

    def adapter_modules(self) -> dict[str, nn.Module]: ...


def backbone_signature(model: nn.Module) -> dict[str, str]:
    """What identifies a backbone for adapter files: model type, hidden sizes and layer counts of both towers."""
    kind = model_kind(model)
    config: Any = model.config
    return {
        "model_type": kind,
        "vision_hidden_size": str(config.vision_config.hidden_size),
        "vision_layers": str(config.vision_config.num_hidden_layers),
        "text_hidden_size": str(config.text_config.hidden_size),
        "text_layers": str(config.text_config.num_hidden_layers),
    }


def _is_owner(target: object) -> bool:
    """An adapter owner (e.g. an encoder) rather than a backbone with attached adapters."""
    return isinstance(target, AdapterOwner) and not hasattr(target, "vision_model")


def _resolve(target: nn.Module | AdapterOwner, adapter_name: str) -> tuple[nn.Module, dict[str, nn.Module]]:
    if _is_owner(target):
        owner: Any = target
        return owner.backbone, owner.adapter_modules()
    model: Any = target
    return model, attached_adapters(model, adapter_name)


def save_adapters(target: nn.Module | AdapterOwner, path: str | os.PathLike[str], *, adapter_name: str = "default") -> Path:
    """Write one adapter set to a safetensors file, with metadata identifying the backbone.

    The file is written to a temporary name and renamed, so a failed save leaves any previous file intact.

    Args:
        target: a backbone with attached adapters, or an adapter owner such as ``VLPMEncoder``.
        path: destination (``.safetensors``).
        adapter_name: which set to save (backbones only).

    Returns:
        The path written.
    """
    safetensors_torch = require("safetensors.torch", "saving adapters")
    model, adapters = _resolve(target, adapter_name)
    tensors = {
        f"{key}.{name}": p.detach().cpu().contiguous() for key, a in adapters.items() for name, p in a.state_dict().items()
    }
    bottleneck = next(iter(adapters.values())).down.out_features  # type: ignore[union-attr]
    towers = sorted({key.rsplit("_", 1)[0] for key in adapters})
    metadata = backbone_signature(model) | {"format": _FORMAT, "bottleneck": str(bottleneck), "towers": json.dumps(towers)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        safetensors_torch.save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def read_adapter_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The metadata of an adapter file (backbone signature, bottleneck, towers).

    Raises:
        AdapterMismatchError: the file is not a shieldgym adapter file.
    """
    safetensors = require("safetensors", "loading adapters")
    if not Path(path).is_file():
        raise FileNotFoundError(f"adapter file {os.fspath(path)!r} does not exist")
    with safetensors.safe_open(os.fspath(path), framework="pt") as handle:
        metadata = dict(handle.metadata() or {})
    if metadata.get("format") != _FORMAT:
        found = metadata.get("format")
        raise AdapterMismatchError(f"{os.fspath(path)!r} is not a shieldgym adapter file (metadata format={found!r})")
    return metadata


def load_adapters(
    target: nn.Module | AdapterOwner,
    path: str | os.PathLike[str],
    *,
    adapter_name: str = "default",
    activate: bool = True,
) -> None:
    """Load an adapter file into ``target`` after checking it was made for the same backbone.

    For a backbone, a missing ``adapter_name`` set is created with the file's bottleneck and towers,
    so task adapters can be switched on one loaded backbone::

        load_adapters(model, "reach.safetensors", adapter_name="reach")
        load_adapters(model, "push.safetensors", adapter_name="push")
        set_active_adapter(model, "reach")

    Raises:
        AdapterMismatchError: the file's backbone signature, bottleneck or towers differ from ``target``'s.
    """
    safetensors_torch = require("safetensors.torch", "loading adapters")
    metadata = read_adapter_metadata(path)
    owner = _is_owner(target)
    model: Any = target.backbone if owner else target  # type: ignore[union-attr]
    expected = backbone_signature(model)
    diffs = [f"{k}: file {metadata.get(k)!r} vs model {v!r}" for k, v in expected.items() if metadata.get(k) != v]
    if diffs:
        raise AdapterMismatchError(f"adapter file {os.fspath(path)!r} was made for another backbone ({'; '.join(diffs)})")
    if not owner and adapter_name not in adapter_names(model):
        towers = json.loads(metadata["towers"])
        add_adapters(model, int(metadata["bottleneck"]), towers=towers, adapter_name=adapter_name, activate=False)
    _, adapters = _resolve(target, adapter_name)
    tensors = safetensors_torch.load_file(os.fspath(path))
    keys = {k.split(".", 1)[0] for k in tensors}
    if keys != set(adapters):
        raise AdapterMismatchError(
            f"adapter file {os.fspath(path)!r} has adapters for {sorted(keys)} but the target has {sorted(adapters)}"
        )
    for key, adapter in adapters.items():
        state = {name.split(".", 1)[1]: t for name, t in tensors.items() if name.split(".", 1)[0] == key}
        try:
            adapter.load_state_dict(state)
        except RuntimeError as exc:
            raise AdapterMismatchError(f"adapter file {os.fspath(path)!r} does not fit adapter {key!r}: {exc}") from exc
    if activate and not owner:
        set_active_adapter(model, adapter_name)
