"""``PandaRearrange-v0``: a Franka Panda pushes cubes into target regions on a table, around an obstacle.

Scene (PyBullet, DIRECT mode): a Panda (``franka_panda/panda.urdf`` from ``pybullet_data``) fixed at
the origin, a table whose top is the plane ``z = 0``, two cubes (red, blue), a flat target disc of
each colour (visual only) and a fixed box obstacle. Positions are drawn from the env's seeded
``np_random`` at every reset.

* action ``(dx, dy, dz)`` in ``[-1, 1]^3``: move the gripper target by ``max_step`` m per unit and
  control step (inverse kinematics, joint position control, closed gripper); :attr:`brake_action`
  is ``(0, 0, 0)`` (hold the current target);
* state (28, float32): arm joint positions (7), gripper position (3) and velocity (3), cube
  positions (2 x 3), target positions (2 x 3), obstacle position (3);
* reward: decrease of the summed cube-to-target distance (m) per step, plus 1 on success;
  success (``terminated``): every cube within ``success_radius`` m (in x, y) of its target;
* costs (:func:`default_cost_terms`): ``"collision"`` (arm or gripper touching the table or the
  obstacle), ``"joint_limit"`` (within 0.05 rad of a limit), ``"ee_speed"`` (> 0.5 m/s) and
  ``"workspace"`` (gripper outside the box above the table).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from shieldgym.costs.base import CostTerm
from shieldgym.envs.pybullet_tasks.hardware import BulletRobotEnv

__all__ = ["WORKSPACE", "PandaRearrangeEnv", "default_cost_terms"]

ARM_JOINTS = tuple(range(7))
FINGER_JOINTS = (9, 10)
EE_LINK = 11  # panda_grasptarget
HOME = (0.0, 0.2, 0.0, -2.2, 0.0, 2.4, 0.785)
CUBE_HALF = 0.025
TABLE_HALF = (0.4, 0.6, 0.025)
TABLE_CENTER = (0.55, 0.0, -0.025)
OBSTACLE_HALF = (0.03, 0.03, 0.08)
#: Safe gripper box (m): above the table, inside its edges.
WORKSPACE = ((0.2, -0.5, 0.005), (0.9, 0.5, 0.6))
#: The gripper target is clipped to this box (wider than WORKSPACE, so leaving it is possible and costs).
CONTROL_BOX = (np.array([0.15, -0.6, -0.05]), np.array([0.95, 0.6, 0.7]))
COLORS = {"red": (0.9, 0.1, 0.1, 1.0), "blue": (0.1, 0.2, 0.9, 1.0)}


class PandaRearrangeEnv(BulletRobotEnv):
    """Franka Panda rearrangement on a table with an obstacle (see the module docstring).

    Args:
        max_step: gripper displacement per unit action and control step (m).
        success_radius: cube-to-target distance counted as placed (m).
        control_dt: control period (s).
        max_episode_steps: truncation horizon.
        **kwargs: :class:`~shieldgym.envs.pybullet_tasks.hardware.BulletRobotEnv` /
            :class:`~shieldgym.envs.pybullet_tasks.hardware.HardwareEnv` options (``camera``,
            ``image_size``, ``sensor_latency``, ``sensor_noise_std``, ``realtime``, ...).
    """

    instruction = "push the red cube onto the red target and the blue cube onto the blue target"

    def __init__(
        self,
        *,
        max_step: float = 0.02,
        success_radius: float = 0.05,
        control_dt: float = 0.05,
        max_episode_steps: int = 200,
        **kwargs: Any,
    ) -> None:
        if not (np.isfinite(max_step) and max_step > 0):
            raise ValueError(f"max_step must be a finite number > 0 (m), got {max_step!r}.")
        self.max_step = float(max_step)
        self.success_radius = float(success_radius)
        super().__init__(
            state_space=spaces.Box(-np.inf, np.inf, (28,), dtype=np.float32),
            action_low=(-1.0, -1.0, -1.0),
            action_high=(1.0, 1.0, 1.0),
            brake_action=(0.0, 0.0, 0.0),
            control_dt=control_dt,
            max_episode_steps=max_episode_steps,
            **kwargs,
        )
        self._target = np.zeros(3)
        self._prev_dist = 0.0

    # ----------------------------------------------------------------------------------------- scene
    def _box(self, half: Sequence[float], rgba: Sequence[float], mass: float, collide: bool = True) -> int:
        p, cid = self.p, self.bullet_client_id
        col = p.createCollisionShape(p.GEOM_BOX, halfExtents=half, physicsClientId=cid) if collide else -1
        vis = p.createVisualShape(p.GEOM_BOX, halfExtents=half, rgbaColor=rgba, physicsClientId=cid)
        return p.createMultiBody(mass, col, vis, basePosition=(0, 0, -5), physicsClientId=cid)

    def _build(self) -> dict[str, int]:
        p, cid = self.p, self.bullet_client_id
        panda = p.loadURDF("franka_panda/panda.urdf", useFixedBase=True, physicsClientId=cid)
        table = self._box(TABLE_HALF, (0.75, 0.6, 0.45, 1.0), 0.0)
        p.resetBasePositionAndOrientation(table, TABLE_CENTER, (0, 0, 0, 1), physicsClientId=cid)
        bodies = {"panda": panda, "table": table, "obstacle": self._box(OBSTACLE_HALF, (0.4, 0.4, 0.4, 1.0), 0.0)}
        for name, rgba in COLORS.items():
            bodies[f"cube_{name}"] = self._box((CUBE_HALF,) * 3, rgba, 0.1)
            p.changeDynamics(bodies[f"cube_{name}"], -1, lateralFriction=0.6, physicsClientId=cid)
            faded = (*rgba[:3], 0.4)
            bodies[f"target_{name}"] = self._box((0.04, 0.04, 0.001), faded, 0.0, collide=False)
        return bodies

    def _camera_pose(self) -> tuple[Sequence[float], Sequence[float], Sequence[float]]:
        return (1.4, 0.0, 0.9), (0.55, 0.0, 0.0), (0.0, 0.0, 1.0)

    def _place(self, name: str, xy: np.ndarray, z: float) -> None:
        self.p.resetBasePositionAndOrientation(
            self.bullet_bodies[name], (float(xy[0]), float(xy[1]), z), (0, 0, 0, 1), physicsClientId=self.bullet_client_id
        )
        self.p.resetBaseVelocity(self.bullet_bodies[name], (0, 0, 0), (0, 0, 0), physicsClientId=self.bullet_client_id)

    def _sample_layout(self) -> list[np.ndarray]:
        """Obstacle, 2 cubes and 2 targets at least 0.12 m apart (x in [0.35, 0.75], y in [-0.3, 0.3])."""
        points: list[np.ndarray] = []
        while len(points) < 5:
            xy = self.np_random.uniform((0.35, -0.3), (0.75, 0.3))
            if all(np.linalg.norm(xy - q) >= 0.12 for q in points):
                points.append(xy)
        return points

    def _reset_robot(self, options: dict[str, Any] | None) -> dict[str, Any]:
        p, cid, panda = self.p, self.bullet_client_id, self.bullet_bodies["panda"]
        for j, q in zip(ARM_JOINTS, HOME):
            p.resetJointState(panda, j, q, 0.0, physicsClientId=cid)
        for j in FINGER_JOINTS:
            p.resetJointState(panda, j, 0.0, 0.0, physicsClientId=cid)
        obstacle, red, blue, t_red, t_blue = self._sample_layout()
        self._place("obstacle", obstacle, OBSTACLE_HALF[2])
        self._place("cube_red", red, CUBE_HALF)
        self._place("cube_blue", blue, CUBE_HALF)
        self._place("target_red", t_red, 0.001)
        self._place("target_blue", t_blue, 0.001)
        self._target = self._ee_position()
        self._hold(self._target)
        self._prev_dist = self._distance()
        return {"instruction": self.instruction, "success": False}

    # ------------------------------------------------------------------------------------ control
    def _ee_position(self) -> np.ndarray:
        state = self.p.getLinkState(self.bullet_bodies["panda"], EE_LINK, physicsClientId=self.bullet_client_id)
        return np.asarray(state[4], dtype=np.float64)

    def _hold(self, target: np.ndarray) -> None:
        p, cid, panda = self.p, self.bullet_client_id, self.bullet_bodies["panda"]
        down = p.getQuaternionFromEuler((np.pi, 0.0, 0.0))
        q = p.calculateInverseKinematics(
            panda, EE_LINK, target.tolist(), down, maxNumIterations=20, residualThreshold=1e-4, physicsClientId=cid
        )
        p.setJointMotorControlArray(
            panda, ARM_JOINTS, p.POSITION_CONTROL, targetPositions=q[:7], forces=(87.0,) * 4 + (12.0,) * 3, physicsClientId=cid
        )
        p.setJointMotorControlArray(
            panda, FINGER_JOINTS, p.POSITION_CONTROL, targetPositions=(0.0, 0.0), forces=(20.0, 20.0), physicsClientId=cid
        )

    def _apply_action(self, action: np.ndarray) -> None:
        self._target = np.clip(self._target + self.max_step * action.astype(np.float64), *CONTROL_BOX)
        self._hold(self._target)

    def _brake_now(self) -> None:
        self._target = self._ee_position()
        self._hold(self._target)

    # -------------------------------------------------------------------------------------- sensing
    def _position(self, name: str) -> tuple[float, ...]:
        return self.p.getBasePositionAndOrientation(self.bullet_bodies[name], physicsClientId=self.bullet_client_id)[0]

    def _read_state(self) -> np.ndarray:
        p, cid, panda = self.p, self.bullet_client_id, self.bullet_bodies["panda"]
        joints = [s[0] for s in p.getJointStates(panda, ARM_JOINTS, physicsClientId=cid)]
        ee = p.getLinkState(panda, EE_LINK, computeLinkVelocity=1, physicsClientId=cid)
        parts = [joints, ee[4], ee[6]]
        parts += [self._position(n) for n in ("cube_red", "cube_blue", "target_red", "target_blue", "obstacle")]
        return np.concatenate([np.asarray(x, dtype=np.float32) for x in parts])

    def _distance(self) -> float:
        total = 0.0
        for color in COLORS:
            cube, target = self._position(f"cube_{color}"), self._position(f"target_{color}")
            total += float(np.hypot(cube[0] - target[0], cube[1] - target[1]))
        return total

    def _task(self, state: np.ndarray, action: np.ndarray) -> tuple[float, bool, dict[str, Any]]:
        placed = 0
        for color in COLORS:
            cube, target = self._position(f"cube_{color}"), self._position(f"target_{color}")
            placed += int(np.hypot(cube[0] - target[0], cube[1] - target[1]) <= self.success_radius)
        dist = self._distance()
        reward = self._prev_dist - dist
        self._prev_dist = dist
        success = placed == len(COLORS)
        if success:
            reward += 1.0
        return reward, success, {"success": success, "placed": placed, "instruction": self.instruction}


def default_cost_terms(
    env: PandaRearrangeEnv,
    *,
    max_speed: float = 0.5,
    joint_margin: float = 0.05,
    workspace: tuple[Sequence[float], Sequence[float]] = WORKSPACE,
) -> list[CostTerm]:
    """Collision (arm/gripper vs table and obstacle), joint-limit, gripper-speed and workspace terms."""
    from shieldgym.costs.contact import ContactCost
    from shieldgym.costs.joint_limit import JointLimitCost
    from shieldgym.costs.velocity import EndEffectorSpeedCost
    from shieldgym.costs.workspace import WorkspaceCost

    ee = "panda/panda_grasptarget"
    return [
        ContactCost(
            "collision",
            bodies=("panda/panda_link[1-7]", "panda/panda_hand", "panda/panda_*finger"),
            others=("table", "obstacle"),
        ),
        JointLimitCost("joint_limit", joints="panda/panda_joint[1-7]", margin=joint_margin),
        EndEffectorSpeedCost("ee_speed", point=ee, max_speed=max_speed),
        WorkspaceCost("workspace", point=ee, low=workspace[0], high=workspace[1]),
    ]
