"""Pre-training of VLPM adapters: InfoNCE between image/depth and state-action embeddings, and
data collection into Minari datasets. Names are imported lazily."""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "ContrastiveData": "shieldgym.pretrain.infonce",
    "InfoNCELoss": "shieldgym.pretrain.infonce",
    "PretrainResult": "shieldgym.pretrain.infonce",
    "StateActionEncoder": "shieldgym.pretrain.infonce",
    "infonce_loss": "shieldgym.pretrain.infonce",
    "pretrain": "shieldgym.pretrain.infonce",
    "retrieval_accuracy": "shieldgym.pretrain.infonce",
    "collect_metaworld": "shieldgym.pretrain.collect",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'shieldgym.pretrain' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
