"""shieldgym: safe reinforcement learning for robots on Gymnasium and Stable-Baselines3.

Public API (imported lazily, so ``import shieldgym`` stays fast)::

    import shieldgym
    env = shieldgym.make("SafetyPointGoal1-v0")            # info["cost"] on every step
    env = shieldgym.ShieldWrapper(env, critic, backup=...)  # vetoes risky actions
    model = shieldgym.CQLLag("MlpPolicy", env).learn(10_000)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from shieldgym._lazy import lazy_exports

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY: dict[str, str] = {
    "make": "shieldgym.envs.registry",
    "make_vec": "shieldgym.envs.registry",
    "list_envs": "shieldgym.envs.registry",
    "CostWrapper": "shieldgym.wrappers.cost",
    "CostEpisodeStatistics": "shieldgym.wrappers.cost",
    "CostBudget": "shieldgym.wrappers.cost",
    "ShieldWrapper": "shieldgym.wrappers.shield",
    "VectorShieldWrapper": "shieldgym.wrappers.vector_shield",
    "VecShieldWrapper": "shieldgym.wrappers.vector_shield",
    "VLPMObservation": "shieldgym.wrappers.vlpm",
    "CQLLag": "shieldgym.algos.cqllag",
    "calibrate_threshold": "shieldgym.critics.calibration",
    "fit_cost_critic": "shieldgym.critics.fit",
    "ShieldError": "shieldgym.errors",
    "MissingDependencyError": "shieldgym.errors",
    "UnknownEnvError": "shieldgym.errors",
    "CostSignalError": "shieldgym.errors",
}

__all__ = ["__version__", *sorted(_LAZY)]

# Register every suite's ids with Gymnasium ("shieldgym/<id>"). Cheap: static id lists, no simulator import.
importlib.import_module("shieldgym.envs")


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


if TYPE_CHECKING:  # for type checkers and IDEs only
    from shieldgym.algos.cqllag import CQLLag
    from shieldgym.critics.calibration import calibrate_threshold
    from shieldgym.critics.fit import fit_cost_critic
    from shieldgym.envs.registry import list_envs, make, make_vec
    from shieldgym.errors import CostSignalError, MissingDependencyError, ShieldError, UnknownEnvError
    from shieldgym.wrappers.cost import CostBudget, CostEpisodeStatistics, CostWrapper
    from shieldgym.wrappers.shield import ShieldWrapper
    from shieldgym.wrappers.vector_shield import VecShieldWrapper, VectorShieldWrapper
    from shieldgym.wrappers.vlpm import VLPMObservation
