"""Safety critics: the critic protocol and adapters, networks, the one conservative TD loss,
threshold calibration, and fitting a cost critic from offline transitions.

The protocol, calibration and fitting names are imported lazily (they pull in torch only when used).
"""

from __future__ import annotations

from shieldgym._lazy import lazy_exports
from shieldgym.critics.losses import ConservativeTDLoss, bellman_target, conservative_td_loss
from shieldgym.critics.networks import EnsembleLinear, EnsembleMLP, QEnsemble

_LAZY: dict[str, str] = {
    "Critic": "shieldgym.critics.protocol",
    "TorchCritic": "shieldgym.critics.protocol",
    "as_critic": "shieldgym.critics.protocol",
    "Calibration": "shieldgym.critics.calibration",
    "calibrate_threshold": "shieldgym.critics.calibration",
    "CostCritic": "shieldgym.critics.fit",
    "NumpyCostCritic": "shieldgym.critics.fit",
    "fit_cost_critic": "shieldgym.critics.fit",
}

__all__ = [
    "ConservativeTDLoss",
    "EnsembleLinear",
    "EnsembleMLP",
    "QEnsemble",
    "bellman_target",
    "conservative_td_loss",
    *sorted(_LAZY),
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
