"""A lidar-aware recovery backup for differential-drive robots: steer around or back away from hazards.

:class:`LidarRetreatBackup` is a task-specific backup for robots whose action is ``(forward force,
rotation)`` and whose observation holds an egocentric hazard lidar (Safety-Gymnasium's point and car
robots: bin ``i`` covers the robot-relative angles ``[i, i + 1) * 2 pi / n``, counter-clockwise from the
heading, and reads ``max(0, 1 - d / max_dist)`` for a hazard at distance ``d``).

From the lidar it estimates the direction ``phi`` of the nearest hazards (a mean of the bin directions
weighted by ``reading ** sharpness``) and the distance ``d`` of the nearest one, then picks an escape
heading ``psi``:

    psi = phi + pi + s * alpha * pi / 2,        alpha = clip((d - near) / (far - near), 0, 1)

directly away from the hazard when it is closer than ``near`` (``alpha = 0``), along its tangent when
it is ``far`` or further (``alpha = 1``; the tangent side ``s`` is the one closer to the current
heading, so the robot slides around the hazard and keeps going). The action drives along ``psi``:
``forward = speed * cos(psi)`` (reversing when ``psi`` points backwards) and turns the front (or, when
reversing, the rear) towards ``psi``: ``rotation = clip(turn_gain * angle, -1, 1)``. With no hazard in
sight it returns the brake action (zero force, no rotation).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from shieldgym.backup.base import BackupPolicy
from shieldgym.critics.protocol import Critic

__all__ = ["GuidedNavigationBackup", "LidarNavigationBackup", "LidarRetreatBackup"]


def check_drive_axes(backup: Any, action_space: gym.Space) -> None:
    """Refuse an action space that is not a 1-D ``Box`` holding ``backup.forward_axis`` and ``backup.turn_axis``."""
    owner = type(backup).__name__
    if not isinstance(action_space, gym.spaces.Box) or action_space.shape is None or len(action_space.shape) != 1:
        raise TypeError(f"{owner} needs a 1-D Box action space, got {action_space!r}.")
    size = action_space.shape[0]
    for name, axis in (("forward_axis", backup.forward_axis), ("turn_axis", backup.turn_axis)):
        if not 0 <= axis < size:
            raise ValueError(f"{name}={axis} is outside an action of {size} entries.")


def _wrap(angle: float) -> float:
    """``angle`` wrapped into ``(-pi, pi]``."""
    return float(np.pi - (np.pi - angle) % (2.0 * np.pi))


class LidarRetreatBackup(BackupPolicy):
    """Steer around (or back away from) the nearest hazards seen by an egocentric lidar.

    Args:
        lidar_index: the observation entries of the hazard lidar, bin 0 first (e.g. ``range(28, 44)``
            for SafetyPointGoal1's flat observation).
        max_dist: the lidar's range (a reading ``r`` is a distance ``(1 - r) * max_dist``).
        near: closer than this (metres, centre to centre) the robot backs straight away.
        far: from this distance on it moves along the hazard's tangent (between: a blend).
        speed: magnitude of the forward/reverse force.
        turn_gain: rotation per radian of heading error (clipped to ``[-1, 1]``).
        sharpness: exponent of the readings when averaging the bin directions (large: the nearest bin).
        forward_axis, turn_axis: entries of the action vector holding the force and the rotation.

    Example:
        >>> backup = LidarRetreatBackup(range(4), max_dist=3.0, near=0.5, far=1.0)
        >>> backup.bind(gym.spaces.Box(-1.0, 1.0, (2,)), None)
        >>> # a hazard 0.3 m away at the front right (bin 3 of 4): reverse and swing the rear to the back left
        >>> [round(float(x), 3) for x in backup(np.array([0.0, 0.0, 0.0, 0.9]))]
        [-0.707, -1.0]
    """

    def __init__(
        self,
        lidar_index: Sequence[int] | range,
        *,
        max_dist: float = 3.0,
        near: float = 0.3,
        far: float = 0.6,
        speed: float = 1.0,
        turn_gain: float = 2.0,
        sharpness: float = 8.0,
        forward_axis: int = 0,
        turn_axis: int = 1,
    ) -> None:
        index = np.asarray(list(lidar_index), dtype=np.int64)
        if index.ndim != 1 or index.size < 2:
            raise ValueError(f"lidar_index must list at least 2 observation entries, got {list(lidar_index)!r}.")
        if not max_dist > 0:
            raise ValueError(f"max_dist must be > 0, got {max_dist!r}.")
        if not 0 <= near < far:
            raise ValueError(f"need 0 <= near < far, got near={near!r}, far={far!r}.")
        if not 0 < speed <= 1:
            raise ValueError(f"speed must be in (0, 1], got {speed!r}.")
        if forward_axis == turn_axis:
            raise ValueError(f"forward_axis and turn_axis must differ, got {forward_axis} for both.")
        self.lidar_index = index
        self.max_dist = float(max_dist)
        self.near = float(near)
        self.far = float(far)
        self.speed = float(speed)
        self.turn_gain = float(turn_gain)
        self.sharpness = float(sharpness)
        self.forward_axis = forward_axis
        self.turn_axis = turn_axis
        n = index.size
        self.bin_angles = (np.arange(n) + 0.5) * 2.0 * np.pi / n

    def bind(self, action_space: gym.Space, critic: Critic | None, threshold: float | None = None) -> None:
        check_drive_axes(self, action_space)
        super().bind(action_space, critic, threshold)

    def heading(self, obs: Any, proposed: Any = None) -> tuple[float, float] | None:
        """The escape heading ``psi`` (robot-relative, radians) and the nearest hazard's distance; ``None``
        when the lidar sees no hazard."""
        flat = np.asarray(obs, dtype=np.float64).reshape(-1)
        reading = np.clip(flat[self.lidar_index], 0.0, 1.0)
        top = float(reading.max())
        if top <= 0.0:
            return None
        weight = (reading / top) ** self.sharpness
        phi = float(np.arctan2((weight * np.sin(self.bin_angles)).sum(), (weight * np.cos(self.bin_angles)).sum()))
        dist = (1.0 - top) * self.max_dist
        alpha = float(np.clip((dist - self.near) / (self.far - self.near), 0.0, 1.0))
        away = phi + np.pi
        # the tangent closer to the current heading (ties: the left one)
        side = -1.0 if np.cos(away - np.pi / 2) >= np.cos(away + np.pi / 2) else 1.0
        return _wrap(away + side * alpha * np.pi / 2), dist

    def __call__(self, obs: Any, proposed: Any = None) -> np.ndarray:
        space = self.action_space
        if not isinstance(space, gym.spaces.Box):
            raise RuntimeError("LidarRetreatBackup is not bound to an action space: call bind(action_space, critic) first.")
        action = np.clip(np.zeros(space.shape, dtype=np.float64), space.low, space.high)
        found = self.heading(obs, proposed)
        if found is not None:
            psi, _ = found
            forward = self.speed * float(np.cos(psi))
            error = psi if forward >= 0 else _wrap(psi - np.pi)  # reversing: turn the rear towards psi
            action[self.forward_axis] = forward
            action[self.turn_axis] = float(np.clip(self.turn_gain * error, -1.0, 1.0))
        return np.clip(action, space.low, space.high).astype(space.dtype)

    def __repr__(self) -> str:
        return f"LidarRetreatBackup(bins={self.lidar_index.size}, near={self.near}, far={self.far}, speed={self.speed})"


class LidarNavigationBackup(BackupPolicy):
    """Head for the goal through a repulsive field around hazards, braking when a hazard is too close.

    Task-specific backup for Safety-Gymnasium's goal tasks (point robot): with egocentric goal and
    hazard lidars (readings ``max(0, 1 - d / max_dist)``, bin ``i`` at angle ``(i + 1/2) 2 pi / n``)
    and the egocentric velocimeter it drives along

        D = g + k sum_i w_i (-u_i),    w_i = clip((influence - d_i) / (influence - radius), 0, 1) ** 2

    (``g`` the unit goal direction, ``u_i`` the unit direction of hazard bin ``i`` at distance ``d_i``):
    ``psi`` the angle of ``D``: ``forward = speed * cos(psi)``, ``rotation = clip(turn_gain * psi)``; when
    ``cos(psi) < reverse_below`` it reverses instead, with the rear turned towards ``psi`` (between
    ``reverse_below`` and 0 it turns in place).
    If the robot closes on the nearest hazard (distance ``d``, closing speed ``v_c``) faster than it can
    stop, ``v_c ** 2 / (2 decel) >= d - radius - margin``, the force pushes straight away from it instead
    (with magnitude ``brake_force``, and only when that hazard lies within ``arccos(brake_cone)`` of the
    front or the back, where the force axis can slow the approach).

    Three options (off by default) keep a momentum-driven robot moving without getting trapped:

    - ``edge_fade``: the swirl of a hazard fades out linearly within ``edge_fade`` of its edge, so next to
      it the radial push wins instead of an orbit along the edge;
    - ``wall_gap``: two hazards on opposite sides of the robot whose centres are closer than
      ``2 radius + wall_gap`` form a wall that cannot be passed between them: the robot is pushed away
      from their midpoint (twice the weight of one hazard at that distance) and along the wall on the
      goal's side (weight ``wall_swirl``);
    - ``escape``: inside a hazard (``d < radius``) the robot drives straight out, away from the hazards
      within 0.15 m of their edge (weighted by closeness), or, where their pushes cancel (between two
      touching hazards), across the line joining them on the goal's side.

    Args:
        hazard_index: observation entries of the hazard lidar (bin 0 first).
        goal_index: observation entries of the goal lidar.
        velocity_index: observation entries ``(v_forward, v_left)`` of the velocimeter.
        max_dist: lidar range.
        radius: hazard radius.
        influence: hazards further than this do not repel.
        repulsion: ``k``.
        swirl: weight of the tangential push (on the goal's side) relative to the radial one, so the robot
            slides around a hazard between it and the goal instead of stalling in front of it.
        reverse_below: reverse when ``cos(psi)`` is below this (in ``[-1, 0]``).
        margin: extra clearance kept by the brake rule.
        decel: deceleration of a full reverse force (m/s^2).
        speed, turn_gain: force magnitude and rotation per radian of heading error.
        brake_force: magnitude of the brake rule's force (in ``(0, 1]``).
        brake_cone: the brake rule acts when ``|cos(bearing)|`` of the nearest hazard exceeds this (in ``[0, 1)``).
        edge_fade: distance from a hazard's edge within which its swirl fades out (0: off).
        wall_gap: hazards on opposite sides closer than ``2 radius + wall_gap`` form a wall (0: off).
        wall_swirl: weight of the slide along a wall.
        escape: drive straight out of a hazard the robot is in.

    Example:
        >>> backup = LidarNavigationBackup(range(0, 4), range(4, 8), (8, 9))
        >>> backup.bind(gym.spaces.Box(-1.0, 1.0, (2,)), None)
        >>> obs = np.zeros(10); obs[4] = 0.5  # goal ahead-left (bin 0 of 4), no hazard, standing still
        >>> [round(float(x), 3) for x in backup(obs)]
        [0.707, 1.0]
    """

    def __init__(
        self,
        hazard_index: Sequence[int] | range,
        goal_index: Sequence[int] | range,
        velocity_index: Sequence[int] | range,
        *,
        max_dist: float = 3.0,
        radius: float = 0.2,
        influence: float = 0.7,
        repulsion: float = 3.0,
        margin: float = 0.08,
        decel: float = 3.0,
        swirl: float = 1.0,
        reverse_below: float = 0.0,
        speed: float = 1.0,
        turn_gain: float = 2.0,
        brake_force: float = 1.0,
        brake_cone: float = 0.0,
        edge_fade: float = 0.0,
        wall_gap: float = 0.0,
        wall_swirl: float = 0.0,
        escape: bool = False,
    ) -> None:
        if not -1.0 <= reverse_below <= 0.0:
            raise ValueError(f"reverse_below must be in [-1, 0], got {reverse_below!r}.")
        if not 0.0 < brake_force <= 1.0:
            raise ValueError(f"brake_force must be in (0, 1], got {brake_force!r}.")
        if not 0.0 <= brake_cone < 1.0:
            raise ValueError(f"brake_cone must be in [0, 1), got {brake_cone!r}.")
        for name, value in (("edge_fade", edge_fade), ("wall_gap", wall_gap), ("wall_swirl", wall_swirl)):
            if not value >= 0.0:
                raise ValueError(f"{name} must be >= 0, got {value!r}.")
        self.brake_force, self.brake_cone = float(brake_force), float(brake_cone)
        self.edge_fade, self.wall_gap, self.wall_swirl = float(edge_fade), float(wall_gap), float(wall_swirl)
        self.escape = bool(escape)
        self.swirl = float(swirl)
        self.reverse_below = float(reverse_below)
        self.hazard_index = np.asarray(list(hazard_index), dtype=np.int64)
        self.goal_index = np.asarray(list(goal_index), dtype=np.int64)
        self.velocity_index = np.asarray(list(velocity_index), dtype=np.int64)
        if self.hazard_index.size < 2 or self.goal_index.size < 2:
            raise ValueError(
                f"the lidars need >= 2 bins each, got {self.hazard_index.size} hazard and {self.goal_index.size} goal bins."
            )
        if self.velocity_index.size != 2:
            raise ValueError(f"velocity_index must name 2 entries (v_forward, v_left), got {list(velocity_index)!r}.")
        if not 0 <= radius < influence <= max_dist:
            raise ValueError(f"need 0 <= radius < influence <= max_dist, got {radius!r}, {influence!r}, {max_dist!r}.")
        if decel <= 0 or not 0 < speed <= 1:
            raise ValueError(f"need decel > 0 and 0 < speed <= 1, got decel={decel!r}, speed={speed!r}.")
        self.max_dist, self.radius, self.influence = float(max_dist), float(radius), float(influence)
        self.repulsion, self.margin, self.decel = float(repulsion), float(margin), float(decel)
        self.speed, self.turn_gain = float(speed), float(turn_gain)

    @staticmethod
    def _units(n: int) -> np.ndarray:
        angles = (np.arange(n) + 0.5) * 2.0 * np.pi / n
        return np.stack([np.cos(angles), np.sin(angles)], axis=1)

    def bind(self, action_space: gym.Space, critic: Critic | None, threshold: float | None = None) -> None:
        if not isinstance(action_space, gym.spaces.Box) or action_space.shape != (2,):
            raise TypeError(f"LidarNavigationBackup needs a Box action space of shape (2,), got {action_space!r}.")
        super().bind(action_space, critic, threshold)

    def _walls(self, dist: np.ndarray, units: np.ndarray, pull: np.ndarray) -> np.ndarray:
        """The push of the walls (pairs of hazards on opposite sides too close to pass between): away from
        each wall's midpoint and along the wall on the goal's side."""
        push = np.zeros(2)
        idx = np.flatnonzero(dist < self.influence)
        points = dist[idx, None] * units[idx]
        for a in range(idx.size):
            for b in range(a + 1, idx.size):
                if (
                    units[idx[a]] @ units[idx[b]] >= 0.0
                    or np.linalg.norm(points[a] - points[b]) >= 2 * self.radius + self.wall_gap
                ):
                    continue
                mid = 0.5 * (points[a] + points[b])
                d_mid = max(float(np.linalg.norm(mid)), 1e-9)
                w = float(np.clip((self.influence - d_mid) / (self.influence - self.radius), 0.0, 1.0)) ** 2
                along = points[b] - points[a]
                along /= max(float(np.linalg.norm(along)), 1e-9)
                if along @ pull < 0 or (along @ pull == 0 and along[1] < 0):
                    along = -along
                push += self.repulsion * w * (self.wall_swirl * along - 2.0 * mid / d_mid)
        return push

    def _drive(self, psi: float, reverse: bool) -> tuple[float, float]:
        """Force and rotation that drive along the robot-relative heading ``psi``: forward (``cos psi`` of the
        force, turning in place when it points backwards) or, when ``reverse``, backwards with the rear turned
        towards ``psi``."""
        if reverse:
            return self.speed * float(np.cos(psi)), float(np.clip(self.turn_gain * _wrap(psi - np.pi), -1.0, 1.0))
        return self.speed * max(float(np.cos(psi)), 0.0), float(np.clip(self.turn_gain * psi, -1.0, 1.0))

    def __call__(self, obs: Any, proposed: Any = None) -> np.ndarray:
        space = self.action_space
        if not isinstance(space, gym.spaces.Box):
            raise RuntimeError("LidarNavigationBackup is not bound to an action space: call bind(action_space, critic) first.")
        flat = np.asarray(obs, dtype=np.float64).reshape(-1)
        hazard = np.clip(flat[self.hazard_index], 0.0, 1.0)
        goal = np.clip(flat[self.goal_index], 0.0, 1.0)
        h_units, g_units = self._units(hazard.size), self._units(goal.size)
        velocity = flat[self.velocity_index]
        pull = goal @ g_units
        pull = pull / max(float(np.linalg.norm(pull)), 1e-9)
        dist = np.where(hazard > 0, (1.0 - hazard) * self.max_dist, np.inf)
        near = int(np.argmin(dist))
        if self.escape and dist[near] < self.radius:
            # inside a hazard: straight out, away from the hazards close by (weighted by closeness); where their
            # pushes cancel (between two of them) across the line joining them, on the goal's side (a direction
            # that does not flip from step to step, unlike the velocity or the nearest hazard)
            close = dist < self.radius + 0.15
            inv = 1.0 / np.maximum(dist[close] - 0.5 * self.radius, 0.02)
            out = -(inv[:, None] * h_units[close]).sum(axis=0)
            if np.linalg.norm(out) < 0.5 * inv.max():
                out = np.array([-h_units[near, 1], h_units[near, 0]])
                if out @ pull < 0 or (out @ pull == 0 and out[1] < 0):
                    out = -out
            psi = float(np.arctan2(out[1], out[0]))
            forward, turn = self._drive(psi, bool(np.cos(psi) < 0))
            forward = float(np.sign(forward)) * self.speed
            return np.clip(np.array([forward, turn]), space.low, space.high).astype(space.dtype)
        w = np.clip((self.influence - dist) / (self.influence - self.radius), 0.0, 1.0) ** 2
        # swirl: each repelling bin also pushes along its tangent on the goal's side, so the robot slides
        # around a hazard that lies between it and the goal instead of stalling in front of it
        tangents = np.stack([-h_units[:, 1], h_units[:, 0]], axis=1)
        tangents *= np.where(tangents @ pull >= 0, 1.0, -1.0)[:, None]
        w_swirl = w * np.clip((dist - self.radius) / self.edge_fade, 0.0, 1.0) if self.edge_fade > 0 else w
        direction = pull + self.repulsion * (self.swirl * (w_swirl @ tangents) - w @ h_units)
        if self.wall_gap > 0:
            direction = direction + self._walls(dist, h_units, pull)
        psi = float(np.arctan2(direction[1], direction[0]))
        # reverse only towards a clearly rearward heading; otherwise drive forward (or turn in place), so
        # that a heading near +-90 degrees does not flip the rotation from step to step
        forward, turn = self._drive(psi, bool(np.cos(psi) < self.reverse_below))
        if np.isfinite(dist[near]) and (self.brake_cone == 0.0 or abs(h_units[near, 0]) > self.brake_cone):
            closing = float(velocity @ h_units[near])
            if closing > 0 and closing**2 / (2.0 * self.decel) >= dist[near] - self.radius - self.margin:
                forward = -self.brake_force * (float(np.sign(h_units[near, 0])) or 1.0)
        return np.clip(np.array([forward, turn]), space.low, space.high).astype(space.dtype)

    def __repr__(self) -> str:
        return f"LidarNavigationBackup(influence={self.influence}, repulsion={self.repulsion}, margin={self.margin})"


class GuidedNavigationBackup(BackupPolicy):
    """Among actions between the vetoed proposal and a navigation backup's action, take the one closest to the
    proposal that the critic passes; the navigation action when none does.

    With a critic that ranks actions (e.g. fitted on branched rollouts, :mod:`shieldgym.branching`), a veto then
    bends the proposal only as far as needed instead of handing the robot over to the navigation backup. The
    candidates are the blends ``p + f (b - p)`` for each ``f`` in ``blends`` (``p`` the proposal, ``b`` the
    navigation action), the proposal with its force scaled by each ``s`` in ``throttle`` (same rotation),
    and the proposal with its rotation replaced by each of ``steer`` (same force), checked in one critic call
    against the shield's threshold.

    Args:
        navigation: the backup giving ``b`` (bound with the same action space).
        blends: blend factors in ``(0, 1)``.
        throttle: force scales in ``[0, 1)`` of the proposal's force.
        steer: rotations that replace the proposal's (same force): turning away at speed.
        forward_axis, turn_axis: entries of the action holding the force and the rotation.

    Example:
        >>> nav = LidarNavigationBackup(range(0, 4), range(4, 8), (8, 9))
        >>> risk = lambda obs, actions: np.abs(actions[:, 0])  # any force is risky
        >>> backup = GuidedNavigationBackup(nav, blends=(0.5,), throttle=(0.0,))
        >>> backup.bind(gym.spaces.Box(-1.0, 1.0, (2,)), risk, threshold=0.3)
        >>> [round(float(x), 3) for x in backup(np.zeros(10), proposed=np.array([1.0, 0.4]))]
        [0.0, 0.4]
    """

    def __init__(
        self,
        navigation: BackupPolicy,
        *,
        blends: Sequence[float] = (0.25, 0.5, 0.75),
        throttle: Sequence[float] = (0.5, 0.0),
        steer: Sequence[float] = (),
        forward_axis: int = 0,
        turn_axis: int = 1,
    ) -> None:
        if any(not 0.0 < f < 1.0 for f in blends):
            raise ValueError(f"blends must lie in (0, 1), got {list(blends)}.")
        if any(not 0.0 <= s < 1.0 for s in throttle):
            raise ValueError(f"throttle factors must lie in [0, 1), got {list(throttle)}.")
        self.navigation = navigation
        self.blends = np.asarray(sorted(blends), dtype=np.float64)
        self.throttle = np.asarray(sorted(throttle, reverse=True), dtype=np.float64)
        self.steer = np.asarray(steer, dtype=np.float64)
        self.forward_axis, self.turn_axis = forward_axis, turn_axis
        self.critic: Critic | None = None
        self.threshold: float | None = None

    def bind(self, action_space: gym.Space, critic: Critic | None, threshold: float | None = None) -> None:
        if critic is None or threshold is None:
            raise ValueError("GuidedNavigationBackup needs the shield's critic and threshold: use it inside a ShieldWrapper.")
        self.navigation.bind(action_space, None, threshold)
        self.critic, self.threshold = critic, float(threshold)
        super().bind(action_space, critic, threshold)

    def __call__(self, obs: Any, proposed: Any = None) -> np.ndarray:
        space = self.action_space
        if not isinstance(space, gym.spaces.Box) or self.critic is None or self.threshold is None:
            raise RuntimeError("GuidedNavigationBackup is not bound: call bind(action_space, critic, threshold) first.")
        fallback = np.asarray(self.navigation(obs), dtype=np.float64)
        if proposed is None or not np.isfinite(proposed).all():
            return fallback.astype(space.dtype)
        p = np.clip(np.asarray(proposed, dtype=np.float64), space.low, space.high)
        shrunk = np.repeat(p[None], self.throttle.size, axis=0)
        shrunk[:, self.forward_axis] *= self.throttle
        steered = np.repeat(p[None], self.steer.size, axis=0)
        steered[:, self.turn_axis] = self.steer
        cand = np.concatenate([shrunk, steered, p + self.blends[:, None] * (fallback - p)])
        risk = np.asarray(self.critic(np.repeat(np.asarray(obs)[None], len(cand), axis=0), cand.astype(space.dtype)))
        safe = np.flatnonzero(np.isfinite(risk) & (risk <= self.threshold))
        if safe.size == 0:
            return fallback.astype(space.dtype)
        best = safe[np.argmin(np.linalg.norm(cand[safe] - p, axis=1))]
        return np.clip(cand[best], space.low, space.high).astype(space.dtype)

    def __repr__(self) -> str:
        return f"GuidedNavigationBackup({self.navigation!r}, blends={self.blends.tolist()}, throttle={self.throttle.tolist()})"
