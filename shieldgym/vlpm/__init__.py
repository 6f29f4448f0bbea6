"""Vision-language (VLPM) backbones with small trainable adapters.

A frozen CLIP-like backbone (:func:`load_backbone`) gets bottleneck adapters in every transformer
block (:func:`add_adapters`) or LoRA (:func:`add_lora`); :class:`VLPMEncoder` maps RGB, depth,
an instruction and proprioception to one small embedding, and :class:`VLPMExtractor` plugs it into
Stable-Baselines3. :func:`parameter_report` is the project's parameter accounting.

Names are imported lazily: ``import shieldgym.vlpm`` does not import transformers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shieldgym._lazy import lazy_exports

# public name -> module that defines it
_LAZY: dict[str, str] = {
    "ParameterReport": "shieldgym.vlpm.accounting",
    "parameter_report": "shieldgym.vlpm.accounting",
    "load_backbone": "shieldgym.vlpm.backbone",
    "build_tiny_clip": "shieldgym.vlpm.backbone",
    "BottleneckAdapter": "shieldgym.vlpm.adapters",
    "add_adapters": "shieldgym.vlpm.adapters",
    "set_active_adapter": "shieldgym.vlpm.adapters",
    "save_adapters": "shieldgym.vlpm.adapters",
    "load_adapters": "shieldgym.vlpm.adapters",
    "adapter_parameters": "shieldgym.vlpm.adapters",
    "add_lora": "shieldgym.vlpm.lora",
    "VLPMEncoder": "shieldgym.vlpm.encoder",
    "VLPMExtractor": "shieldgym.vlpm.extractor",
}

__all__ = [
    "BottleneckAdapter",
    "ParameterReport",
    "VLPMEncoder",
    "VLPMExtractor",
    "adapter_parameters",
    "add_adapters",
    "add_lora",
    "build_tiny_clip",
    "load_adapters",
    "load_backbone",
    "parameter_report",
    "save_adapters",
    "set_active_adapter",
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


if TYPE_CHECKING:  # for type checkers and IDEs only
    from shieldgym.vlpm.accounting import ParameterReport, parameter_report
    from shieldgym.vlpm.adapters import (
        BottleneckAdapter,
        adapter_parameters,
        add_adapters,
        load_adapters,
        save_adapters,
        set_active_adapter,
    )
    from shieldgym.vlpm.backbone import build_tiny_clip, load_backbone
    from shieldgym.vlpm.encoder import VLPMEncoder
    from shieldgym.vlpm.extractor import VLPMExtractor
    from shieldgym.vlpm.lora import add_lora
