"""The backup-policy protocol, the action-space check every backup action passes, and callables as backups.

A backup policy maps one observation to one action of the env's action space. The shield calls it
when it vetoes the proposed action (and passes the proposed action along, which candidate-based
backups use). Any callable ``backup(obs) -> action`` works; subclasses of :class:`BackupPolicy`
also receive the proposed action and are bound to the shield's action space and critic.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from shieldgym.critics.protocol import Critic

__all__ = ["BackupPolicy", "CallableBackup", "action_error", "as_backup", "check_action_space"]


def check_action_space(space: gym.Space) -> None:
    """Raise ``TypeError`` unless ``space`` is a ``Box`` or ``Discrete`` action space (the ones a shield supports)."""
    if not isinstance(space, gym.spaces.Box | gym.spaces.Discrete):
        raise TypeError(f"the shield supports Box and Discrete action spaces, got {space!r}.")


def action_error(space: gym.Space, action: Any) -> str | None:
    """Why ``action`` is not a valid action of ``space`` (``None`` when it is).

    Stricter than ``space.contains`` on values (must be finite, inside the bounds, right shape) and
    lenient on container type (lists and scalars are accepted).
    """
    if isinstance(space, gym.spaces.Discrete):
        try:
            arr = np.asarray(action)
        except Exception as exc:
            return f"cannot convert {action!r} to an integer action ({exc})"
        if arr.shape != () or arr.dtype.kind not in "iu":
            return f"expected an integer scalar, got {action!r}"
        if not space.start <= int(arr) < space.start + space.n:
            return f"{int(arr)} is outside Discrete({space.n}, start={space.start})"
        return None
    if not isinstance(space, gym.spaces.Box):
        return f"{space!r} is not a Box or Discrete space"
    try:
        arr = np.asarray(action, dtype=np.float64)
    except Exception as exc:
        return f"cannot convert {action!r} to a float array ({exc})"
    if arr.shape != space.shape:
        return f"expected shape {space.shape}, got {arr.shape}"
    if not np.isfinite(arr).all():
        return f"contains NaN or inf: {arr.tolist()}"
    if np.any(arr < space.low) or np.any(arr > space.high):
        return f"{arr.tolist()} is outside the bounds [{space.low.tolist()}, {space.high.tolist()}]"
    return None


class BackupPolicy(abc.ABC):
    """Base class of backup policies that want the proposed action, the action space or the critic.

    The shield calls :meth:`bind` once with its action space and critic, then ``backup(obs, proposed)``
    with a single observation (no batch dimension) each time it vetoes an action.
    """

    action_space: gym.Space | None = None

    def bind(self, action_space: gym.Space, critic: Critic | None, threshold: float | None = None) -> None:
        """Attach the shield's action space, critic and threshold (called once by the shield)."""
        self.action_space = action_space

    @abc.abstractmethod
    def __call__(self, obs: Any, proposed: Any = None) -> Any:
        """Return the action to execute for ``obs`` (``proposed`` is the vetoed action)."""


class CallableBackup(BackupPolicy):
    """A plain function ``fn(obs) -> action`` as a backup policy.

    >>> backup = CallableBackup(lambda obs: -obs)
    >>> backup(np.array([0.5]))
    array([-0.5])
    """

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        if not callable(fn):
            raise TypeError(f"CallableBackup needs a callable fn(obs) -> action, got {type(fn).__name__}.")
        self.fn = fn

    def __call__(self, obs: Any, proposed: Any = None) -> Any:
        return self.fn(obs)

    def __repr__(self) -> str:
        return f"CallableBackup({getattr(self.fn, '__name__', type(self.fn).__name__)})"


def as_backup(obj: Any) -> BackupPolicy:
    """Adapt ``obj`` to a :class:`BackupPolicy`: a backup policy as is, an SB3 model (has ``predict``)
    as :class:`~shieldgym.backup.sb3.SB3Backup`, a callable ``fn(obs) -> action`` as :class:`CallableBackup`,
    a fixed action (array or number) as :class:`~shieldgym.backup.brake.BrakeBackup`."""
    if isinstance(obj, BackupPolicy):
        return obj
    if hasattr(obj, "predict") and hasattr(obj, "policy"):
        from shieldgym.backup.sb3 import SB3Backup

        return SB3Backup(obj)
    if callable(obj):
        return CallableBackup(obj)
    if isinstance(obj, np.ndarray | list | tuple | int | float | np.number):
        from shieldgym.backup.brake import BrakeBackup

        return BrakeBackup(obj)
    raise TypeError(
        f"backup must be a BackupPolicy, an SB3 model or a callable backup(obs) -> action, got {type(obj).__name__}."
    )
