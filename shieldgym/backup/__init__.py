"""Backup policies: what the shield executes instead of a vetoed action.

- :class:`BrakeBackup`: a fixed brake/zero action (``BrakeBackup.from_env(env)`` uses the env's
  ``brake_action`` when it defines one);
- :class:`MinRiskBackup`: the least risky of K candidate actions, the brake action always among them;
- :class:`SB3Backup`: an SB3 model's deterministic action;
- :class:`CallableBackup`: any function ``fn(obs) -> action``;
- :class:`LidarRetreatBackup`, :class:`LidarNavigationBackup`: task-specific lidar-driven recovery for
  Safety-Gymnasium's point robot (back away from / steer around hazards, head for the goal);
  :class:`GuidedNavigationBackup` bends a vetoed proposal only as far as the critic requires, falling back
  on the navigation backup;
- :class:`LidarPlanningBackup`: the same robots, driven by rolling a point-mass model over candidate headings
  and scoring them on the cost-to-go to the goal around the hazards the lidar sees.
"""

from shieldgym.backup.base import BackupPolicy, CallableBackup, action_error, as_backup, check_action_space
from shieldgym.backup.brake import BrakeBackup
from shieldgym.backup.min_risk import MinRiskBackup
from shieldgym.backup.planning import LidarPlanningBackup
from shieldgym.backup.recovery import GuidedNavigationBackup, LidarNavigationBackup, LidarRetreatBackup
from shieldgym.backup.sb3 import SB3Backup

__all__ = [
    "BackupPolicy",
    "BrakeBackup",
    "CallableBackup",
    "GuidedNavigationBackup",
    "LidarNavigationBackup",
    "LidarPlanningBackup",
    "LidarRetreatBackup",
    "MinRiskBackup",
    "SB3Backup",
    "action_error",
    "as_backup",
    "check_action_space",
]
