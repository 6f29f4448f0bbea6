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

    def _value(self) -> float:
        p = self._reader.position()  # type: ignore[union-attr]
        sq = 0.0
        for k in range(3):  # three scalars: cheaper than array temporaries
            x = float(p[k])
            lo, hi = self.low[k], self.high[k]
            e = lo - x if x < lo else (x - hi if x > hi else 0.0)
            sq += e * e
        if sq == 0.0:
            return 0.0
        return 1.0 if self.mode == "indicator" else math.sqrt(sq)
