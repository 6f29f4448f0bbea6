"""An SB3 model as a backup policy (e.g. a conservative policy trained for safety only)."""

from __future__ import annotations

from typing import Any

from shieldgym.backup.base import BackupPolicy

__all__ = ["SB3Backup"]


class SB3Backup(BackupPolicy):
    """Execute ``model.predict(obs, deterministic=True)`` when the shield vetoes.

    Args:
        model: any Stable-Baselines3 / sb3-contrib model (anything with ``predict``).
        deterministic: use the deterministic action (default ``True``).
    """

    def __init__(self, model: Any, deterministic: bool = True) -> None:
        if not callable(getattr(model, "predict", None)):
            raise TypeError(f"SB3Backup needs a model with predict(obs, deterministic=...), got {type(model).__name__}.")
        self.model = model
        self.deterministic = deterministic

    def __call__(self, obs: Any, proposed: Any = None) -> Any:
        action, _ = self.model.predict(obs, deterministic=self.deterministic)
        return action

    def __repr__(self) -> str:
        return f"SB3Backup({type(self.model).__name__})"
