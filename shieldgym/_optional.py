"""Lazy imports of heavy optional packages with install instructions in the error."""

from __future__ import annotations

import importlib
from types import ModuleType

from shieldgym.errors import MissingDependencyError

__all__ = ["INSTALL_HINTS", "require"]

# What to run when a module is missing. The benchmark packages pin old stacks and go in with --no-deps.
INSTALL_HINTS: dict[str, str] = {
    "safety_gymnasium": ('pip install "shieldgym[safety-gymnasium]" && pip install --no-deps safety-gymnasium==1.0.0'),
    "bullet_safety_gym": 'pip install "shieldgym[bullet]" && pip install --no-deps bullet-safety-gym==1.4.0',
    "pybullet": 'pip install "shieldgym[pybullet]"',
    "pybullet_data": 'pip install "shieldgym[pybullet]"',
    "metaworld": 'pip install "shieldgym[metaworld]"',
    "robosuite": 'pip install "shieldgym[robosuite]"',
    "mujoco": 'pip install "mujoco==3.3.0"',
    "transformers": 'pip install "shieldgym[vlpm]"',
    "peft": 'pip install "shieldgym[vlpm]"',
    "safetensors": 'pip install "shieldgym[vlpm]"',
    "minari": 'pip install "shieldgym[pretrain]"',
    "h5py": 'pip install "shieldgym[pretrain]"',
    "gymnasium_robotics": 'pip install "shieldgym[safety-gymnasium]"',
}


def require(module: str, purpose: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` saying how to install it.

    Args:
        module: dotted module name, e.g. ``"safety_gymnasium"``.
        purpose: what needs it, shown in the message (e.g. ``"Safety-Gymnasium tasks"``).

    Returns:
        The imported module.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        if exc.name is not None and exc.name.split(".")[0] != top:
            raise  # the package is installed but one of its own imports failed: show that error
        hint = INSTALL_HINTS.get(top, f"pip install {top}")
        what = f" (needed for {purpose})" if purpose else ""
        raise MissingDependencyError(f"The optional package {top!r} is not installed{what}. Install it with: {hint}") from exc
