"""benchmarks/plot_circle_paths.py: the path-shape numbers of its table, and a clear error for a bad checkpoint."""

from __future__ import annotations

import importlib.util
import math
import zipfile
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "plot_circle_paths.py"


@pytest.fixture(scope="module")
def paths() -> ModuleType:
    spec = importlib.util.spec_from_file_location("plot_circle_paths", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_circle_has_the_same_distance_at_the_sides_and_the_poles(paths: ModuleType) -> None:
    angle = np.linspace(0, 2 * np.pi, 400, endpoint=False)
    xy = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    sides, poles, max_x = paths.path_shape(xy)
    assert sides == pytest.approx(1.0) and poles == pytest.approx(1.0) and max_x == pytest.approx(1.0)


def test_a_path_along_the_boundaries_is_nearer_the_centre_at_the_sides(paths: ModuleType) -> None:
    # two points at the sides (|x| / r > 0.9), two at the top and bottom (|x| / r < 0.5)
    xy = np.array([[1.125, 0.0], [0.0, 1.5], [-1.125, 0.2], [0.3, -1.5]])
    sides, poles, max_x = paths.path_shape(xy)
    assert sides == pytest.approx((1.125 + math.hypot(1.125, 0.2)) / 2)
    assert poles == pytest.approx((1.5 + math.hypot(0.3, 1.5)) / 2)
    assert max_x == 1.125


def test_a_part_never_reached_is_nan(paths: ModuleType) -> None:
    sides, poles, max_x = paths.path_shape(np.array([[0.0, 1.0], [0.1, -1.2]]))
    assert math.isnan(sides) and poles == pytest.approx((1.0 + math.hypot(0.1, 1.2)) / 2) and max_x == 0.1


def test_a_file_that_is_not_a_checkpoint_is_a_clear_error(paths: ModuleType, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.zip"
    corrupt.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"corrupt\.zip is not an SB3 checkpoint"):
        paths._load(str(corrupt))
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as z:
        z.writestr("other", "x")
    with pytest.raises(ValueError, match=r"empty\.zip is not an SB3 checkpoint"):
        paths._load(str(empty))
