"""Workspace-box cost."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from shieldgym.costs.sim import PointReader, SimCostTerm, SimInterface

__all__ = ["WorkspaceCost"]


class WorkspaceCost(SimCostTerm):
    """Cost when a point (the end effector) leaves an axis-aligned box ``[low, high]`` (m, world frame).

    With ``e = max(low - p, 0) + max(p - high, 0)`` per axis, the Euclidean distance from ``p`` to
    the box is ``||e||``:

    * ``"indicator"``: 1.0 if ``p`` is outside the box, else 0.0;
    * ``"magnitude"``: ``||e||`` (m).

    Args:
        name: key in ``info["costs"]``.
        point: a body, link or site name.
        low, high: box corners, 3 values each (m), ``low < high``.
        mode: ``"indicator"`` or ``"magnitude"``.
        weight: multiplier in ``info["cost"]``.
        sim: use this simulator instead of looking it up on the env.

    Raises:
        ValueError: bad box at construction; an unknown point at bind (the message lists valid names).
    """

    def __init__(
        self,
        name: str = "workspace",
        *,
        point: str,
        low: ArrayLike,
        high: ArrayLike,
        mode: str = "indicator",
        weight: float = 1.0,
        sim: SimInterface | None = None,
    ) -> None:
        super().__init__(name, weight, mode=mode, sim=sim)
        lo, hi = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
        if lo.shape != (3,) or hi.shape != (3,) or not np.all(np.isfinite(lo)) or not np.all(np.isfinite(hi)):
            raise ValueError(f"WorkspaceCost {name!r}: low and high must be 3 finite numbers (m), got {low!r} and {high!r}.")
        if not np.all(lo < hi):
            raise ValueError(f"WorkspaceCost {name!r}: need low < high on every axis, got {lo.tolist()} and {hi.tolist()}.")
        self.point = point
        self.low, self.high = lo, hi
        self._reader: PointReader | None = None

    def _resolve(self, sim: SimInterface) -> None:
        self._reader = sim.point(self.point)
        self._position = self._reader.position_xyz
        self._box = (*self.low.tolist(), *self.high.tolist())  # Python floats for the scalar hot path
        self._indicator = self.mode == "indicator"

    def _value(self) -> float:
        x, y, z = self._position()
        lx, ly, lz, hx, hy, hz = self._box
        if not (x < lx or x > hx or y < ly or y > hy or z < lz or z > hz):
            return 0.0  # inside (a NaN coordinate compares false everywhere and counts as inside)
        sq = 0.0
        for v, lo, hi in ((x, lx, hx), (y, ly, hy), (z, lz, hz)):
            e = lo - v if v < lo else (v - hi if v > hi else 0.0)
            sq += e * e
        if sq == 0.0:
            return 0.0
        return 1.0 if self._indicator else math.sqrt(sq)
