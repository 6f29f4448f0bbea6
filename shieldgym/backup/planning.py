"""A planning backup for lidar-equipped point robots: roll a point-mass model over candidate headings.

:class:`LidarPlanningBackup` is a task-specific backup for robots that push along their heading and turn
in place (Safety-Gymnasium's point robot: action ``(force, rotation)``) and that see the hazards and the goal
through egocentric "pseudo" lidars with aliasing (bin ``i`` covers the robot-relative angles
``[i, i + 1) * 2 pi / n``; an object at distance ``d`` and angle ``theta`` in bin ``i`` reads
``s = max(0, 1 - d / max_dist)`` there, ``alias * s`` in bin ``i + 1`` and ``(1 - alias) * s`` in bin
``i - 1``, ``alias`` the position of ``theta`` within the bin).

Each call

1. decodes the objects from the lidars: every bin that is a local maximum is one object, at distance
   ``(1 - s) max_dist`` and at the angle given by its neighbours' aliasing (:func:`decode_lidar`);
2. rolls a point-mass model of the robot (the thrust acts along the heading, the velocity decays by a
   constant factor per step, the rotation follows the command with a first-order lag) forward from the
   measured velocity and yaw rate, once per candidate: drive towards heading ``psi`` with thrust ``f`` for
   ``horizon`` steps, then brake for ``brake_steps`` (so a candidate only passes if the robot can still stop
   clear of the hazards at its end), for every ``psi`` of ``n_headings`` and ``f`` of ``thrusts``;
3. scores each rollout: any step within ``radius + clearance`` of a hazard costs ``collision_weight`` per
   step and per metre of intrusion; the rest is the progress, at the end of the drive, along a cost-to-go to
   the goal computed around the hazards (Dijkstra on a grid of ``grid_cell`` metres; a goal reached on the
   way counts as reached, earlier is better);
4. returns the first action of the best candidate: ``force = f`` while the heading is within
   ``arccos(align)`` of ``psi`` (0 before), ``rotation = clip(turn_gain * (psi - heading), -1, 1)``.

The defaults are the point robot's, fitted by least squares on random-action rollouts of SafetyPointGoal1:
per 0.02 s step the velocity decays by 0.964 and a saturated force adds 0.0567 m/s along the heading (the
motor saturates at ``|force| >= 1/6``); the yaw rate follows ``w' = 0.134 w + 2.566 rotation``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from shieldgym.backup._planner import heading_control, plan_scores
from shieldgym.backup.base import BackupPolicy
from shieldgym.backup.recovery import check_drive_axes
from shieldgym.critics.protocol import Critic

__all__ = ["LidarPlanningBackup", "decode_lidar"]


def decode_lidar(reading: np.ndarray, max_dist: float) -> np.ndarray:
    """Object positions ``(k, 2)`` (robot frame, metres) from one aliased pseudo-lidar reading.

    Every bin that reads more than both neighbours (or ties one of them and exceeds the other, for an
    object on a bin edge) is one object. Its angle within the bin comes from a neighbour's aliasing
    (``alias * s`` in the next bin, ``(1 - alias) * s`` in the previous one), read from the neighbour that no
    other object can have raised: the one not shared with another object's bin; where both or neither are
    shared, the lower of the two readings (another object can only raise a bin).

    >>> r = np.zeros(8); r[2], r[3], r[1] = 0.5, 0.125, 0.375  # an object 1.5 m away, 1/4 into bin 2
    >>> [round(float(x), 3) for x in decode_lidar(r, 3.0)[0]]
    [-0.293, 1.471]
    """
    s = np.clip(np.asarray(reading, dtype=np.float64).reshape(-1), 0.0, 1.0)
    n = s.size
    nxt, prv = np.roll(s, -1), np.roll(s, 1)
    peak = (s > 0) & (s >= nxt) & (s >= prv) & ((s > nxt) | (s > prv))
    idx = np.flatnonzero(peak)
    if idx.size == 0:
        return np.zeros((0, 2))
    top = s[idx]
    up, down = nxt[idx] / top, prv[idx] / top  # alias and 1 - alias, unless raised by another object
    up_shared, down_shared = peak[(idx + 2) % n], peak[(idx - 2) % n]
    use_up = np.where(up_shared == down_shared, up <= down, down_shared)
    alias = np.where(use_up, up, 1.0 - down)
    angle = (idx + np.clip(alias, 0.0, 1.0)) * 2.0 * np.pi / n
    dist = (1.0 - top) * max_dist
    return np.stack([dist * np.cos(angle), dist * np.sin(angle)], axis=1)


class LidarPlanningBackup(BackupPolicy):
    """Drive to the goal along the best of ``n_headings x len(thrusts)`` rolled-out candidates that stay clear of
    the hazards (module docstring).

    Args:
        hazard_index: observation entries of the hazard lidar (bin 0 first).
        goal_index: observation entries of the goal lidar; ``None``: no goal, the candidates are scored on
            clearance and on keeping the current heading.
        velocity_index: entries ``(v_forward, v_left)`` of the velocimeter (m/s, robot frame).
        yaw_rate_index: entry of the gyro's yaw rate (rad/s); ``None``: assumed 0.
        max_dist: the lidars' range.
        radius: hazard radius (a step within it is a violation).
        clearance: extra distance the plan keeps from a hazard's edge.
        horizon: steps of each candidate's drive.
        brake_steps: steps of braking appended to each drive (checked for clearance, not scored).
        n_headings: candidate headings, evenly spread over the circle (robot frame).
        thrusts: candidate forces of the drive (action units).
        collision_weight: penalty per step and per metre of intrusion into the ``radius + clearance`` disc.
        goal_radius: a rollout point this close to the goal counts as reaching it.
        dt: seconds per env step.
        decay: per-step factor of the velocity.
        thrust_gain: velocity added per step by a saturated force (m/s).
        force_saturation: ``|force|`` from which the motor saturates.
        yaw_decay, yaw_gain: ``w' = yaw_decay * w + yaw_gain * rotation``.
        turn_gain: rotation per radian of heading error.
        align: the drive's force is applied once ``cos(psi - heading) >= align``.
        grid_cell: cell size (metres) of the cost-to-go grid.
        forward_axis, turn_axis: entries of the action holding the force and the rotation.

    Example:
        >>> backup = LidarPlanningBackup(range(0, 8), range(8, 16), (16, 17), n_headings=8)
        >>> backup.bind(gym.spaces.Box(-1.0, 1.0, (2,)), None)
        >>> obs = np.zeros(18); obs[8] = obs[15] = 0.5  # goal 1.5 m straight ahead (edge of bins 0 and 7), no hazard
        >>> [round(float(x), 3) for x in backup(obs)]
        [1.0, 0.0]
    """

    def __init__(
        self,
        hazard_index: Sequence[int] | range,
        goal_index: Sequence[int] | range | None,
        velocity_index: Sequence[int] | range,
        yaw_rate_index: int | None = None,
        *,
        max_dist: float = 3.0,
        radius: float = 0.2,
        clearance: float = 0.1,
        horizon: int = 40,
        brake_steps: int = 40,
        n_headings: int = 24,
        thrusts: Sequence[float] = (1.0, 0.0),
        collision_weight: float = 100.0,
        goal_radius: float = 0.3,
        dt: float = 0.02,
        decay: float = 0.964,
        thrust_gain: float = 0.0567,
        force_saturation: float = 1.0 / 6.0,
        yaw_decay: float = 0.134,
        yaw_gain: float = 2.566,
        turn_gain: float = 2.0,
        align: float = 0.5,
        grid_cell: float = 0.1,
        forward_axis: int = 0,
        turn_axis: int = 1,
    ) -> None:
        self.hazard_index = np.asarray(list(hazard_index), dtype=np.int64)
        self.goal_index = None if goal_index is None else np.asarray(list(goal_index), dtype=np.int64)
        self.velocity_index = np.asarray(list(velocity_index), dtype=np.int64)
        if self.hazard_index.size < 3 or (self.goal_index is not None and self.goal_index.size < 3):
            raise ValueError("the lidars need >= 3 bins each to decode an object's angle.")
        if self.velocity_index.size != 2:
            raise ValueError(f"velocity_index must name 2 entries (v_forward, v_left), got {list(velocity_index)!r}.")
        for name, count in (("horizon", horizon), ("n_headings", n_headings)):
            if int(count) < 1 or int(count) != count:
                raise ValueError(f"{name} must be an integer >= 1, got {count!r}.")
        if int(brake_steps) < 0 or int(brake_steps) != brake_steps:
            raise ValueError(f"brake_steps must be an integer >= 0, got {brake_steps!r}.")
        if not thrusts or any(not -1.0 <= f <= 1.0 for f in thrusts):
            raise ValueError(f"thrusts must be a non-empty list of forces in [-1, 1], got {list(thrusts)!r}.")
        positive = (("max_dist", max_dist), ("dt", dt), ("thrust_gain", thrust_gain), ("force_saturation", force_saturation))
        for name, value in positive:
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}.")
        for name, value in (("radius", radius), ("clearance", clearance), ("collision_weight", collision_weight)):
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.")
        if not 0.0 < decay <= 1.0 or not 0.0 <= yaw_decay < 1.0:
            raise ValueError(f"need 0 < decay <= 1 and 0 <= yaw_decay < 1, got {decay!r}, {yaw_decay!r}.")
        if not -1.0 <= align < 1.0:
            raise ValueError(f"align must be in [-1, 1), got {align!r}.")
        if forward_axis == turn_axis:
            raise ValueError(f"forward_axis and turn_axis must differ, got {forward_axis} for both.")
        self.yaw_rate_index = yaw_rate_index
        self.max_dist, self.radius, self.clearance = float(max_dist), float(radius), float(clearance)
        self.horizon, self.brake_steps = int(horizon), int(brake_steps)
        self.collision_weight, self.goal_radius = float(collision_weight), float(goal_radius)
        self.dt, self.decay, self.thrust_gain = float(dt), float(decay), float(thrust_gain)
        self.force_saturation = float(force_saturation)
        self.yaw_decay, self.yaw_gain = float(yaw_decay), float(yaw_gain)
        self.turn_gain, self.align = float(turn_gain), float(align)
        self.forward_axis, self.turn_axis = forward_axis, turn_axis
        headings = np.arange(int(n_headings)) * 2.0 * np.pi / int(n_headings)
        psi, thrust = np.meshgrid(headings, np.asarray(thrusts, dtype=np.float64), indexing="ij")
        self.psi, self.thrust = psi.reshape(-1), thrust.reshape(-1)  # (K,) candidates
        if not (np.isfinite(grid_cell) and 0 < grid_cell <= self.max_dist):
            raise ValueError(f"grid_cell must be in (0, max_dist], got {grid_cell!r}.")
        self.grid_cell = float(grid_cell)
        self._model = np.array(
            [
                *(self.dt, self.decay, self.thrust_gain, self.force_saturation, self.yaw_decay, self.yaw_gain),
                *(self.turn_gain, self.align, self.horizon, self.brake_steps),
            ]
        )
        # the grid reaches past the lidars' range, so a goal at the edge of sight still has cells around it
        self._limits = np.array(
            [self.radius, self.clearance, self.collision_weight, self.goal_radius, self.max_dist + 0.5, self.grid_cell]
        )

    def bind(self, action_space: gym.Space, critic: Critic | None, threshold: float | None = None) -> None:
        check_drive_axes(self, action_space)
        super().bind(action_space, critic, threshold)

    def decode(self, obs: Any) -> tuple[np.ndarray, np.ndarray]:
        """The hazards ``(h, 2)`` and the goal ``(2,)`` (NaN when none is seen) in the robot frame, from ``obs``."""
        flat = np.asarray(obs, dtype=np.float64).reshape(-1)
        hazards = decode_lidar(flat[self.hazard_index], self.max_dist)
        goal = np.full(2, np.nan)
        if self.goal_index is not None:
            seen = decode_lidar(flat[self.goal_index], self.max_dist)
            if len(seen):
                goal = seen[np.argmin(np.linalg.norm(seen, axis=1))]
        return hazards, goal

    def scores(self, obs: Any) -> np.ndarray:
        """Each candidate's score (higher is better): progress along the cost-to-go to the goal around the
        hazards (a goal reached on the way: the whole distance plus a bonus for arriving early) minus the
        collision penalty."""
        flat = np.asarray(obs, dtype=np.float64).reshape(-1)
        if not np.isfinite(flat).all():
            raise ValueError("LidarPlanningBackup got a non-finite observation.")
        hazards, goal = self.decode(flat)
        yaw = 0.0 if self.yaw_rate_index is None else float(flat[self.yaw_rate_index])
        return plan_scores(
            np.ascontiguousarray(hazards, dtype=np.float64),
            goal,
            np.ascontiguousarray(flat[self.velocity_index]),
            yaw,
            self.psi,
            self.thrust,
            self._model,
            self._limits,
        )

    def __call__(self, obs: Any, proposed: Any = None) -> np.ndarray:
        space = self.action_space
        if not isinstance(space, gym.spaces.Box):
            raise RuntimeError("LidarPlanningBackup is not bound to an action space: call bind(action_space, critic) first.")
        best = int(np.argmax(self.scores(obs)))
        action = np.zeros(space.shape, dtype=np.float64)
        force, rotation = heading_control(float(self.psi[best]), 0.0, float(self.thrust[best]), self.turn_gain, self.align)
        action[self.forward_axis], action[self.turn_axis] = force, rotation
        return np.clip(action, space.low, space.high).astype(space.dtype)

    def __repr__(self) -> str:
        return (
            f"LidarPlanningBackup(candidates={self.psi.size}, horizon={self.horizon}, brake_steps={self.brake_steps}, "
            f"clearance={self.clearance})"
        )
