"""Gymnasium wrappers: cost signals, the shield, VLPM observations (and their vector versions).

Names are imported lazily so that, e.g., the cost wrappers never pull in torch.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> module (each family's owner adds its names here)
_LAZY: dict[str, str] = {
    "CostWrapper": "shieldgym.wrappers.cost",
    "CostEpisodeStatistics": "shieldgym.wrappers.cost",
    "CostBudget": "shieldgym.wrappers.cost",
    "VectorCostEpisodeStatistics": "shieldgym.wrappers.vector_cost",
    "VectorCostBudget": "shieldgym.wrappers.vector_cost",
    "CostMonitor": "shieldgym.wrappers.sb3_cost",
    "CostLoggerCallback": "shieldgym.wrappers.sb3_cost",
    "ShieldWrapper": "shieldgym.wrappers.shield",
    "VectorShieldWrapper": "shieldgym.wrappers.vector_shield",
    "VecShieldWrapper": "shieldgym.wrappers.vector_shield",
    "ShieldReplayBuffer": "shieldgym.wrappers.shield_sb3",
    "ShieldDictReplayBuffer": "shieldgym.wrappers.shield_sb3",
    "VLPMObservation": "shieldgym.wrappers.vlpm",
    "VectorVLPMObservation": "shieldgym.wrappers.vlpm",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'shieldgym.wrappers' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
