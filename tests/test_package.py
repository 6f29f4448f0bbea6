"""Package-level promises: the lazy public API, fast import, optional-package errors."""

import subprocess
import sys

import pytest

import shieldgym
from shieldgym._optional import require
from shieldgym.errors import MissingDependencyError


def test_import_is_light():
    """Importing shieldgym loads no simulator, torch or transformers."""
    code = (
        "import sys, shieldgym; heavy = [m for m in ('torch', 'transformers', 'mujoco', 'pybullet', 'safety_gymnasium',"
        " 'metaworld', 'robosuite', 'stable_baselines3') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_public_names_resolve_lazily():
    assert callable(shieldgym.make)
    assert shieldgym.ShieldError.__name__ == "ShieldError"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        shieldgym.nope  # noqa: B018


def test_require_names_the_install_command(monkeypatch):
    with pytest.raises(MissingDependencyError, match="pip install no_such_pkg_xyz"):
        require("no_such_pkg_xyz")
    # a None entry in sys.modules makes the import fail as if the package were absent
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(MissingDependencyError, match=r"pip install \"shieldgym\[vlpm\]\"") as err:
        require("transformers", "VLPM backbones")
    assert "needed for VLPM backbones" in str(err.value)
    monkeypatch.setitem(sys.modules, "safety_gymnasium", None)
    with pytest.raises(MissingDependencyError, match=r"--no-deps safety-gymnasium==1\.0\.0"):
        require("safety_gymnasium")


def test_import_shieldgym_registers_the_gym_namespace():
    code = "import gymnasium as gym, shieldgym; print(gym.spec('shieldgym/SafetyPointGoal1-v0').id)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "shieldgym/SafetyPointGoal1-v0"
