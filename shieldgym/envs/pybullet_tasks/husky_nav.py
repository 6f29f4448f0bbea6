"""``HuskyNav-v0``: semantic navigation of a Clearpath Husky ("go to the red object") among obstacles.

Scene (PyBullet, DIRECT mode): a floor, the Husky (``husky/husky.urdf`` from ``pybullet_data``)
starting at the origin facing +x, three coloured cylinders (red, green, blue) and ``n_obstacles``
grey boxes, all placed from the env's seeded ``np_random``. Each episode names one colour.

* action ``(v, w)`` in ``[-1, 1]^2``: forward speed (m/s) and yaw rate (rad/s), turned into wheel
  speeds of the skid-steer base; :attr:`brake_action` is ``(0, 0)``;
* state (``7 + 2*3 + 3 + 2*n_obstacles``, float32): base ``x, y, cos yaw, sin yaw`` and planar
  velocity ``vx, vy, wz``; each object's position in the robot frame; the one-hot target colour;
  each obstacle's position in the robot frame;
* reward: decrease of the distance to the named object (m) per step, plus 1 on success;
  success (``terminated``): within ``success_radius`` m of it;
* instruction: ``"go to the <colour> object"`` in ``info["instruction"]`` and ``env.unwrapped.instruction``;
* cost (:func:`default_cost_terms`): ``"collision"``, the Husky touching an obstacle or an object.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from shieldgym.costs.base import CostTerm
from shieldgym.envs.pybullet_tasks.hardware import BulletRobotEnv

__all__ = ["COLORS", "HuskyNavEnv", "default_cost_terms"]

COLORS: dict[str, tuple[float, float, float, float]] = {
    "red": (0.9, 0.1, 0.1, 1.0),
    "green": (0.1, 0.8, 0.2, 1.0),
    "blue": (0.1, 0.2, 0.9, 1.0),
}
WHEELS_LEFT, WHEELS_RIGHT = (2, 4), (3, 5)
WHEEL_RADIUS = 0.165
TRACK = 0.555
OBJECT_RADIUS = 0.15
OBSTACLE_HALF = (0.2, 0.2, 0.3)


class HuskyNavEnv(BulletRobotEnv):
    """Husky semantic navigation (see the module docstring).

    Args:
        n_obstacles: number of box obstacles (>= 0).
        arena: objects and obstacles are placed in ``[-arena, arena]^2`` (m), away from the start.
        success_radius: distance to the named object's centre that counts as arrived (m).
        control_dt: control period (s).
        max_episode_steps: truncation horizon.
        **kwargs: :class:`~shieldgym.envs.pybullet_tasks.hardware.BulletRobotEnv` options.
    """

    def __init__(
        self,
        *,
        n_obstacles: int = 3,
        arena: float = 3.0,
        success_radius: float = 0.6,
        control_dt: float = 0.1,
        max_episode_steps: int = 300,
        **kwargs: Any,
    ) -> None:
        if not isinstance(n_obstacles, int) or n_obstacles < 0:
            raise ValueError(f"n_obstacles must be an int >= 0, got {n_obstacles!r}.")
        if not (np.isfinite(arena) and arena >= 1.5):
            raise ValueError(f"arena must be a finite number >= 1.5 (m), got {arena!r}.")
        self.n_obstacles = n_obstacles
        self.arena = float(arena)
        self.success_radius = float(success_radius)
        self.target = "red"
        self.instruction = "go to the red object"
        dim = 7 + 2 * len(COLORS) + len(COLORS) + 2 * n_obstacles
        super().__init__(
            state_space=spaces.Box(-np.inf, np.inf, (dim,), dtype=np.float32),
            action_low=(-1.0, -1.0),
            action_high=(1.0, 1.0),
            brake_action=(0.0, 0.0),
            control_dt=control_dt,
            max_episode_steps=max_episode_steps,
            **kwargs,
        )
        self._prev_dist = 0.0

    # ----------------------------------------------------------------------------------------- scene
    def _build(self) -> dict[str, int]:
        p, cid = self.p, self.bullet_client_id
        bodies = {"floor": p.loadURDF("plane.urdf", physicsClientId=cid)}
        bodies["husky"] = p.loadURDF("husky/husky.urdf", (0, 0, 0.1), physicsClientId=cid)
        for name, rgba in COLORS.items():
            col = p.createCollisionShape(p.GEOM_CYLINDER, radius=OBJECT_RADIUS, height=0.5, physicsClientId=cid)
            vis = p.createVisualShape(p.GEOM_CYLINDER, radius=OBJECT_RADIUS, length=0.5, rgbaColor=rgba, physicsClientId=cid)
            bodies[f"object_{name}"] = p.createMultiBody(0.0, col, vis, (0, 0, -5), physicsClientId=cid)
        for k in range(self.n_obstacles):
            col = p.createCollisionShape(p.GEOM_BOX, halfExtents=OBSTACLE_HALF, physicsClientId=cid)
            vis = p.createVisualShape(p.GEOM_BOX, halfExtents=OBSTACLE_HALF, rgbaColor=(0.5, 0.5, 0.5, 1), physicsClientId=cid)
            bodies[f"obstacle{k}"] = p.createMultiBody(0.0, col, vis, (0, 0, -5), physicsClientId=cid)
        return bodies

    def _base(self) -> tuple[np.ndarray, float]:
        pos, orn = self.p.getBasePositionAndOrientation(self.bullet_bodies["husky"], physicsClientId=self.bullet_client_id)
        yaw = self.p.getEulerFromQuaternion(orn)[2]
        return np.asarray(pos, dtype=np.float64), float(yaw)

    def _camera_pose(self) -> tuple[Sequence[float], Sequence[float], Sequence[float]]:
        pos, yaw = self._base()
        heading = np.array([math.cos(yaw), math.sin(yaw), 0.0])
        eye = pos + 0.35 * heading + np.array([0.0, 0.0, 0.45])
        return eye.tolist(), (eye + heading - np.array([0.0, 0.0, 0.15])).tolist(), (0.0, 0.0, 1.0)

    def _reset_robot(self, options: dict[str, Any] | None) -> dict[str, Any]:
        p, cid, husky = self.p, self.bullet_client_id, self.bullet_bodies["husky"]
        p.resetBasePositionAndOrientation(husky, (0, 0, 0.15), (0, 0, 0, 1), physicsClientId=cid)
        p.resetBaseVelocity(husky, (0, 0, 0), (0, 0, 0), physicsClientId=cid)
        for j in WHEELS_LEFT + WHEELS_RIGHT:
            p.resetJointState(husky, j, 0.0, 0.0, physicsClientId=cid)
        names = [f"object_{c}" for c in COLORS] + [f"obstacle{k}" for k in range(self.n_obstacles)]
        points: list[np.ndarray] = []
        while len(points) < len(names):  # 1.2 m from the start and 0.9 m from each other
            xy = self.np_random.uniform(-self.arena, self.arena, size=2)
            if np.linalg.norm(xy) >= 1.2 and all(np.linalg.norm(xy - q) >= 0.9 for q in points):
                points.append(xy)
        for name, xy in zip(names, points):
            z = 0.25 if name.startswith("object") else OBSTACLE_HALF[2]
            p.resetBasePositionAndOrientation(self.bullet_bodies[name], (xy[0], xy[1], z), (0, 0, 0, 1), physicsClientId=cid)
        self.target = list(COLORS)[int(self.np_random.integers(len(COLORS)))]
        self.instruction = f"go to the {self.target} object"
        for _ in range(10):  # let the base settle on its wheels
            p.stepSimulation(physicsClientId=cid)
        self._prev_dist = self._target_distance()
        return {"instruction": self.instruction, "target": self.target, "success": False}

    # ------------------------------------------------------------------------------------ control
    def _apply_action(self, action: np.ndarray) -> None:
        v, w = float(action[0]), float(action[1])
        left = (v - 0.5 * w * TRACK) / WHEEL_RADIUS
        right = (v + 0.5 * w * TRACK) / WHEEL_RADIUS
        p, cid = self.p, self.bullet_client_id
        p.setJointMotorControlArray(
            self.bullet_bodies["husky"],
            WHEELS_LEFT + WHEELS_RIGHT,
            p.VELOCITY_CONTROL,
            targetVelocities=(left, left, right, right),
            forces=(50.0,) * 4,
            physicsClientId=cid,
        )

    def _brake_now(self) -> None:
        p, cid, husky = self.p, self.bullet_client_id, self.bullet_bodies["husky"]
        lin, _ = p.getBaseVelocity(husky, physicsClientId=cid)
        p.resetBaseVelocity(husky, (0.0, 0.0, lin[2]), (0.0, 0.0, 0.0), physicsClientId=cid)

    # -------------------------------------------------------------------------------------- sensing
    def _relative(self, name: str, pos: np.ndarray, yaw: float) -> tuple[float, float]:
        obj = self.p.getBasePositionAndOrientation(self.bullet_bodies[name], physicsClientId=self.bullet_client_id)[0]
        dx, dy = obj[0] - pos[0], obj[1] - pos[1]
        c, s = math.cos(yaw), math.sin(yaw)
        return c * dx + s * dy, -s * dx + c * dy

    def _read_state(self) -> np.ndarray:
        pos, yaw = self._base()
        lin, ang = self.p.getBaseVelocity(self.bullet_bodies["husky"], physicsClientId=self.bullet_client_id)
        state = [pos[0], pos[1], math.cos(yaw), math.sin(yaw), lin[0], lin[1], ang[2]]
        for color in COLORS:
            state.extend(self._relative(f"object_{color}", pos, yaw))
        state.extend(float(c == self.target) for c in COLORS)
        for k in range(self.n_obstacles):
            state.extend(self._relative(f"obstacle{k}", pos, yaw))
        return np.asarray(state, dtype=np.float32)

    def _target_distance(self) -> float:
        pos, yaw = self._base()
        return float(np.hypot(*self._relative(f"object_{self.target}", pos, yaw)))

    def _task(self, state: np.ndarray, action: np.ndarray) -> tuple[float, bool, dict[str, Any]]:
        dist = self._target_distance()
        reward = self._prev_dist - dist
        self._prev_dist = dist
        success = dist <= self.success_radius
        if success:
            reward += 1.0
        return reward, success, {"success": success, "distance": dist, "target": self.target, "instruction": self.instruction}


def default_cost_terms(env: HuskyNavEnv) -> list[CostTerm]:
    """One ``"collision"`` term: the Husky touching any obstacle or object (1.0 per step with contact)."""
    from shieldgym.costs.contact import ContactCost

    others = [n for n in env.bullet_bodies if n.startswith(("obstacle", "object_"))]
    return [ContactCost("collision", bodies="husky", others=others)]
