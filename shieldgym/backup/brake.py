"""The brake backup: always the same action (zero velocity/torque, or the env's own brake action)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from shieldgym.backup.base import BackupPolicy, action_error, check_action_space
from shieldgym.critics.protocol import Critic

__all__ = ["BrakeBackup"]


class BrakeBackup(BackupPolicy):
    """Execute a fixed "brake" action whenever the shield vetoes.

    Args:
        action: the brake action (e.g. zeros for velocity or torque control).

    Example:
        >>> import gymnasium as gym
        >>> backup = BrakeBackup.from_space(gym.spaces.Box(-1, 1, (2,)))
        >>> backup(obs=None)
        array([0., 0.], dtype=float32)
    """

    def __init__(self, action: Any) -> None:
        self.action = np.array(action)
        self.action.setflags(write=False)

    @classmethod
    def from_space(cls, space: gym.Space) -> BrakeBackup:
        """The zero action of a ``Box`` space, clipped into its bounds (so ``[1, 2]`` bounds give ``1``).

        Raises:
            TypeError: ``space`` is not a ``Box`` (a ``Discrete`` space has no natural brake action:
                pass it explicitly or define ``brake_action`` on the env).
        """
        if not isinstance(space, gym.spaces.Box):
            raise TypeError(
                f"BrakeBackup.from_space needs a Box action space, got {space!r}; pass the brake action explicitly "
                "(BrakeBackup(action)) or define `brake_action` on the env."
            )
        return cls(np.clip(np.zeros(space.shape, dtype=space.dtype), space.low, space.high))

    @classmethod
    def from_env(cls, env: gym.Env) -> BrakeBackup:
        """``env.unwrapped.brake_action`` when the env defines it, else :meth:`from_space` of its action space."""
        brake = getattr(env.unwrapped, "brake_action", None)
        backup = cls.from_space(env.action_space) if brake is None else cls(brake() if callable(brake) else brake)
        backup.bind(env.action_space, None)
        return backup

    def bind(self, action_space: gym.Space, critic: Critic | None, threshold: float | None = None) -> None:
        check_action_space(action_space)
        why = action_error(action_space, self.action)
        if why is not None:
            raise ValueError(f"BrakeBackup action is not a valid action of {action_space!r}: {why}.")
        if isinstance(action_space, gym.spaces.Box) and self.action.dtype != action_space.dtype:
            self.action = self.action.astype(action_space.dtype)
            self.action.setflags(write=False)
        super().bind(action_space, critic, threshold)

    def __call__(self, obs: Any, proposed: Any = None) -> np.ndarray:
        return self.action

    def __repr__(self) -> str:
        return f"BrakeBackup({self.action.tolist()})"
