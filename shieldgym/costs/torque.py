"""Joint torque-limit cost."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shieldgym.costs.sim import JointSet, SimCostTerm, SimInterface

__all__ = ["TorqueLimitCost"]


class TorqueLimitCost(SimCostTerm):
    """Cost when an actuator torque exceeds a fraction of its limit (N*m; N for prismatic joints).

    With ``tau_j`` the actuator torque at joint ``j`` (MuJoCo ``qfrc_actuator``; PyBullet's applied
    motor torque) and ``L_j = fraction * limit_j``:

    * ``"indicator"``: 1.0 if any ``|tau_j| > L_j``, else 0.0;
    * ``"magnitude"``: ``sum_j max(0, |tau_j| - L_j)`` (N*m).

    Args:
        name: key in ``info["costs"]``.
        joints: joint names or wildcard patterns.
        limits: one limit for all joints, one per joint, or ``None`` for the model's (MuJoCo
            actuator ``forcerange`` or ``ctrlrange * gear``; URDF ``effort`` in PyBullet).
        fraction: cost starts at this fraction of the limit (0 < fraction <= 1 is typical).
        mode: ``"indicator"`` or ``"magnitude"``.
        weight: multiplier in ``info["cost"]``.
        sim: use this simulator instead of looking it up on the env.

    Raises:
        ValueError: at bind, an unknown joint (the message lists valid joint names), a wrong number of
            limits, or a joint with no modelled limit when ``limits`` is ``None``.
    """

    def __init__(
        self,
        name: str = "torque",
        *,
        joints: Sequence[str] | str,
        limits: float | Sequence[float] | None = None,
        fraction: float = 1.0,
        mode: str = "indicator",
        weight: float = 1.0,
        sim: SimInterface | None = None,
    ) -> None:
        super().__init__(name, weight, mode=mode, sim=sim)
        if not (np.isfinite(fraction) and fraction > 0):
            raise ValueError(f"TorqueLimitCost {name!r}: fraction must be a finite number > 0, got {fraction!r}.")
        self.joints = (joints,) if isinstance(joints, str) else tuple(joints)
        self.limits = limits
        self.fraction = float(fraction)
        self._set: JointSet | None = None

    def _resolve(self, sim: SimInterface) -> None:
        js = sim.joint_set(self.joints)
        if self.limits is None:
            limit = js.torque_limit.copy()
            missing = [n for n, v in zip(js.names, limit) if not np.isfinite(v)]
            if missing:
                raise ValueError(f"TorqueLimitCost {self.name!r}: the model has no torque limit for {missing}; pass limits=.")
        else:
            given = np.asarray(self.limits, dtype=np.float64)
            limit = np.full(len(js.names), float(given)) if given.ndim == 0 else given.copy()
            if limit.shape != (len(js.names),):
                raise ValueError(
                    f"TorqueLimitCost {self.name!r}: got {limit.size} limits for {len(js.names)} joints {js.names}."
                )
            if not np.all(limit > 0):
                raise ValueError(f"TorqueLimitCost {self.name!r}: limits must be > 0 (N*m), got {limit.tolist()}.")
        self._set = js
        self._limit = limit * self.fraction
        self._buf = np.empty(len(js.names))
        self._limits: list[float] = self._limit.tolist()
        self._values = js.torque_values

    @property
    def limit(self) -> np.ndarray:
        """The resolved per-joint thresholds ``fraction * limit`` (N*m)."""
        return self._limit

    def _value(self) -> float:
        if self.mode == "indicator":  # scalar maths on a few joints: cheaper than NumPy temporaries
            for value, limit in zip(self._values(), self._limits):
                if abs(value) - limit > 0.0:
                    return 1.0
            return 0.0
        tau = self._set.torques()  # type: ignore[union-attr]
        excess = np.subtract(np.abs(tau, out=self._buf), self._limit, out=self._buf)
        return float(np.maximum(excess, 0.0, out=excess).sum())
