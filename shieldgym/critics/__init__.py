"""Safety critics: the critic protocol and adapters, networks, the one conservative TD loss,
threshold calibration, and fitting a cost critic from offline transitions."""

from shieldgym.critics.losses import ConservativeTDLoss, bellman_target, conservative_td_loss
from shieldgym.critics.networks import EnsembleLinear, EnsembleMLP, QEnsemble

__all__ = ["ConservativeTDLoss", "EnsembleLinear", "EnsembleMLP", "QEnsemble", "bellman_target", "conservative_td_loss"]
