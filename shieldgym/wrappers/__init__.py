"""Gymnasium wrappers: cost signals, the shield, VLPM observations (and their vector versions).

Names are imported lazily so that, e.g., the cost wrappers never pull in torch.
"""

from __future__ import annotations

from shieldgym._lazy import lazy_exports

# public name -> module that defines it
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
    "ShieldCostReplayBuffer": "shieldgym.wrappers.shield_sb3",
    "ShieldCostDictReplayBuffer": "shieldgym.wrappers.shield_sb3",
    "VLPMObservation": "shieldgym.wrappers.vlpm",
    "VectorVLPMObservation": "shieldgym.wrappers.vlpm",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
