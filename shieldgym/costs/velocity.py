"""End-effector speed-limit cost."""

from __future__ import annotations

import math

from shieldgym.costs.sim import PointReader, SimCostTerm, SimInterface

__all__ = ["EndEffectorSpeedCost"]


class EndEffectorSpeedCost(SimCostTerm):
    """Cost when the linear speed of a point (end effector, base) exceeds ``max_speed`` (m/s).

    The speed ``v = ||p_dot||`` is the simulator's world-frame linear velocity of the body, link or
    site (MuJoCo ``mj_objectVelocity``; PyBullet ``getLinkState(computeLinkVelocity=1)``).

    * ``"indicator"``: 1.0 if ``v > max_speed``, else 0.0;
    * ``"magnitude"``: ``max(0, v - max_speed)`` (m/s).

    Args:
        name: key in ``info["costs"]``.
        point: a body, link or site name (e.g. ``"hand"``, ``"gripper0_right_grip_site"``, ``"panda/panda_hand"``).
        max_speed: the speed limit (m/s, > 0).
        mode: ``"indicator"`` or ``"magnitude"``.
        weight: multiplier in ``info["cost"]``.
        sim: use this simulator instead of looking it up on the env.

    Raises:
        ValueError: at bind, an unknown point (the message lists valid names).
    """

    def __init__(
        self,
        name: str = "ee_speed",
        *,
        point: str,
        max_speed: float,
        mode: str = "indicator",
        weight: float = 1.0,
        sim: SimInterface | None = None,
    ) -> None:
        super().__init__(name, weight, mode=mode, sim=sim)
        if not (math.isfinite(max_speed) and max_speed > 0):
            raise ValueError(f"EndEffectorSpeedCost {name!r}: max_speed must be a finite number > 0 (m/s), got {max_speed!r}.")
        self.point = point
        self.max_speed = float(max_speed)
        self._reader: PointReader | None = None

    def _resolve(self, sim: SimInterface) -> None:
        self._reader = sim.point(self.point)
        self._velocity = self._reader.velocity_xyz
        self._indicator = self.mode == "indicator"

    def speed(self) -> float:
        """The current speed of the point (m/s)."""
        vx, vy, vz = self._velocity()
        return math.hypot(vx, vy, vz)

    def _value(self) -> float:
        vx, vy, vz = self._velocity()
        excess = math.hypot(vx, vy, vz) - self.max_speed
        if excess <= 0.0:
            return 0.0
        return 1.0 if self._indicator else excess
