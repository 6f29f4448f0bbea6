"""Joint-limit proximity cost."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from shieldgym.costs.sim import JointSet, SimCostTerm, SimInterface

__all__ = ["JointLimitCost"]


class JointLimitCost(SimCostTerm):
    """Cost when a joint comes within ``margin`` of its position limit.

    With ``d_j = min(q_j - lower_j, upper_j - q_j)`` the distance of joint ``j`` to its nearest limit
    (rad for hinge/revolute joints, m for slide/prismatic ones; negative beyond the limit):

    * ``"indicator"``: 1.0 if any ``d_j < margin``, else 0.0;
    * ``"count"``: the number of joints with ``d_j < margin``;
    * ``"magnitude"``: ``sum_j max(0, margin - d_j)`` (rad or m).

    Limits come from the model (MuJoCo ``jnt_range`` of limited joints, URDF limits in PyBullet);
    joints the model leaves unlimited never cost. ``limits`` overrides them per joint.

    Args:
        name: key in ``info["costs"]``.
        joints: joint names or wildcard patterns (default: every 1-dof joint).
        margin: the band inside each limit that costs (rad or m, >= 0).
        mode: ``"indicator"``, ``"count"`` or ``"magnitude"``.
        limits: ``{joint: (lower, upper)}`` overrides.
        weight: multiplier in ``info["cost"]``.
        sim: use this simulator instead of looking it up on the env.

    Raises:
        ValueError: at bind, a name matching no joint (the message lists the valid joint names), or
            no selected joint has limits.
    """

    modes = ("indicator", "count", "magnitude")

    def __init__(
        self,
        name: str = "joint_limit",
        *,
        joints: Sequence[str] | str = ("*",),
        margin: float = 0.05,
        mode: str = "indicator",
        limits: dict[str, tuple[float, float]] | None = None,
        weight: float = 1.0,
        sim: SimInterface | None = None,
    ) -> None:
        super().__init__(name, weight, mode=mode, sim=sim)
        if not (np.isfinite(margin) and margin >= 0):
            raise ValueError(f"JointLimitCost {name!r}: margin must be a finite number >= 0 (rad or m), got {margin!r}.")
        self.joints = (joints,) if isinstance(joints, str) else tuple(joints)
        self.margin = float(margin)
        self.limits = dict(limits or {})
        self._set: JointSet | None = None

    def _resolve(self, sim: SimInterface) -> None:
        js = sim.joint_set(self.joints)
        lower, upper = js.lower.copy(), js.upper.copy()
        for joint, (lo, hi) in self.limits.items():
            if joint not in js.names:
                raise ValueError(f"JointLimitCost {self.name!r}: limits given for {joint!r}, not a selected joint {js.names}.")
            if not lo < hi:
                raise ValueError(f"JointLimitCost {self.name!r}: limits of {joint!r} need lower < upper, got {(lo, hi)}.")
            k = js.names.index(joint)
            lower[k], upper[k] = lo, hi
        keep = np.isfinite(lower) | np.isfinite(upper)
        if not keep.any():
            raise ValueError(f"JointLimitCost {self.name!r}: none of the joints {js.names} has position limits.")
        self._set = js
        self._keep = np.flatnonzero(keep)
        self._lower, self._upper = lower[keep], upper[keep]
        self._low_gap = np.empty(len(self._keep))
        self._high_gap = np.empty(len(self._keep))
        # (index in the joint set, lower, upper) of each limited joint, as Python scalars for the scalar hot path.
        self._limits = list(zip(self._keep.tolist(), self._lower.tolist(), self._upper.tolist()))
        self._values = js.position_values

    def _value(self) -> float:
        if self.mode == "magnitude":  # NumPy: its summation order is the documented result
            q = self._set.positions()[self._keep]  # type: ignore[union-attr]
            np.subtract(q, self._lower, out=self._low_gap)
            np.subtract(self._upper, q, out=self._high_gap)
            gap = np.minimum(self._low_gap, self._high_gap, out=self._low_gap)  # distance to the nearest limit
            np.subtract(self.margin, gap, out=gap)
            return float(np.maximum(gap, 0.0, out=gap).sum())
        # min(low, high) < margin, with NumPy's NaN semantics (a NaN gap is never inside the band).
        q, margin, count = self._values(), self.margin, self.mode == "count"
        inside = 0
        for k, lo, hi in self._limits:
            low, high = q[k] - lo, hi - q[k]
            if (low < margin or high < margin) and not (math.isnan(low) or math.isnan(high)):
                if not count:
                    return 1.0
                inside += 1
        return float(inside)
