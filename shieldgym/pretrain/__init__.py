"""Pre-training of VLPM adapters: InfoNCE between image/depth and state-action embeddings, and
data collection into Minari datasets. Names are imported lazily."""

from __future__ import annotations

from shieldgym._lazy import lazy_exports

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


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
