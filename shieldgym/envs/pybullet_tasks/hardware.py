"""The hardware-style env interface shared by the PyBullet tasks, and the pattern for a real robot.

:class:`HardwareEnv` is a ``gymnasium.Env`` with the control loop of a real robot:

* a fixed control period ``control_dt`` (s): every ``step`` applies one action and then waits one
  period (:meth:`HardwareEnv._advance`: a simulator steps its physics; a real robot sleeps until
  the next tick when ``realtime=True``);
* actions are clipped to ``[action_low, action_high]`` before they reach the robot;
* sensor latency (``sensor_latency`` control steps of delay) and Gaussian sensor noise
  (``sensor_noise_std``, drawn from the env's seeded ``np_random``) on the state observation;
* :meth:`HardwareEnv.emergency_stop` latches a stop: the robot is braked at once and every later
  ``step`` applies :attr:`HardwareEnv.brake_action` until ``reset``;
* :attr:`HardwareEnv.brake_action` is the action that stops the robot (a shield's brake backup
  reads ``env.unwrapped.brake_action``).

A subclass implements five hooks: :meth:`_reset_robot`, :meth:`_apply_action`, :meth:`_advance`,
:meth:`_read_state` and :meth:`_task` (plus :meth:`_brake_now` for a physical stop). The same
subclass shape drives a real robot: ``_apply_action`` sends the command, ``_advance`` waits, and
``_read_state`` reads the sensors; cost terms and the shield then wrap it unchanged.

:class:`BulletRobotEnv` implements the simulator side for PyBullet (DIRECT mode, no GUI; camera
images from the CPU TinyRenderer) and exposes ``bullet_client_id``/``bullet_bodies`` for the cost
terms (:func:`shieldgym.costs.sim.sim_of`).
"""

from __future__ import annotations

import contextlib
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from shieldgym._optional import require
from shieldgym.envs._camera import camera_observation_space
from shieldgym.envs._camera import image_size as _image_size

__all__ = ["BulletRobotEnv", "HardwareEnv"]


class HardwareEnv(gym.Env, ABC):
    """A fixed-rate robot control loop with clipping, sensor latency/noise and an emergency stop.

    Args:
        state_space: the space of the state vector :meth:`_read_state` returns (float32 ``Box``).
        action_low, action_high: action limits (the action space; actions are clipped to them).
        brake_action: the action that stops the robot (inside the limits).
        control_dt: control period (s, > 0).
        sensor_latency: observations lag the true state by this many control steps (>= 0).
        sensor_noise_std: standard deviation of Gaussian noise added to the state observation (>= 0).
        max_episode_steps: truncation horizon.
        realtime: pace ``step`` to wall-clock ``control_dt`` (for hardware; off in simulation).
        terminate_on_estop: end the episode (``terminated=True``) on the step after an emergency stop.

    Every ``step`` reports ``info["action_applied"]`` (the clipped or braking action) and
    ``info["emergency_stop"]`` (bool).

    Raises:
        ValueError: bad limits, period, latency or noise (the message names the value).
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"]}

    def __init__(
        self,
        *,
        state_space: spaces.Box,
        action_low: Sequence[float],
        action_high: Sequence[float],
        brake_action: Sequence[float],
        control_dt: float,
        sensor_latency: int = 0,
        sensor_noise_std: float = 0.0,
        max_episode_steps: int = 200,
        realtime: bool = False,
        terminate_on_estop: bool = True,
    ) -> None:
        low = np.asarray(action_low, dtype=np.float32)
        high = np.asarray(action_high, dtype=np.float32)
        brake = np.asarray(brake_action, dtype=np.float32)
        if low.shape != high.shape or low.ndim != 1 or not np.all(low < high):
            raise ValueError(f"action_low/action_high must be 1-d with low < high, got {low.tolist()} and {high.tolist()}.")
        if brake.shape != low.shape or not np.all((brake >= low) & (brake <= high)):
            raise ValueError(f"brake_action {brake.tolist()} must lie within the limits {low.tolist()}, {high.tolist()}.")
        if not (np.isfinite(control_dt) and control_dt > 0):
            raise ValueError(f"control_dt must be a finite number of seconds > 0, got {control_dt!r}.")
        if not isinstance(sensor_latency, int) or sensor_latency < 0:
            raise ValueError(f"sensor_latency must be an int >= 0 (control steps), got {sensor_latency!r}.")
        if not (np.isfinite(sensor_noise_std) and sensor_noise_std >= 0):
            raise ValueError(f"sensor_noise_std must be a finite number >= 0, got {sensor_noise_std!r}.")
        if not isinstance(max_episode_steps, int) or max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be a positive int, got {max_episode_steps!r}.")
        self.state_space = state_space
        self.action_space = spaces.Box(low, high, dtype=np.float32)
        self._low, self._high = low, high
        self._brake = brake
        self.control_dt = float(control_dt)
        self.sensor_latency = sensor_latency
        self.sensor_noise_std = float(sensor_noise_std)
        self.max_episode_steps = max_episode_steps
        self.realtime = bool(realtime)
        self.terminate_on_estop = bool(terminate_on_estop)
        self._history: deque[np.ndarray] = deque(maxlen=sensor_latency + 1)
        self._estopped = False
        self._steps = 0
        self._tick = 0.0

    # ------------------------------------------------------------------ hooks for a robot / simulator
    @abstractmethod
    def _reset_robot(self, options: dict[str, Any] | None) -> dict[str, Any]:
        """Put the robot and the scene in a start state (use ``self.np_random``); return reset info."""

    @abstractmethod
    def _apply_action(self, action: np.ndarray) -> None:
        """Send one (already clipped) command to the robot."""

    @abstractmethod
    def _advance(self) -> None:
        """Let one control period pass (a simulator steps its physics)."""

    @abstractmethod
    def _read_state(self) -> np.ndarray:
        """The true state vector (float32, in :attr:`state_space`)."""

    @abstractmethod
    def _task(self, state: np.ndarray, action: np.ndarray) -> tuple[float, bool, dict[str, Any]]:
        """``(reward, terminated, info)`` of the transition that ended in the true ``state``."""

    def _brake_now(self) -> None:
        """Stop the robot physically at once (default: rely on :attr:`brake_action` at the next step)."""

    def _observe(self, state: np.ndarray) -> Any:
        """Turn the (delayed, noisy) state into the observation (camera envs add images)."""
        return state

    # ------------------------------------------------------------------------------------- interface
    @property
    def brake_action(self) -> np.ndarray:
        """The action that stops the robot (a copy)."""
        return self._brake.copy()

    @property
    def emergency_stopped(self) -> bool:
        """Whether an emergency stop is latched (until ``reset``)."""
        return self._estopped

    def emergency_stop(self) -> None:
        """Latch an emergency stop: brake now; every later ``step`` applies :attr:`brake_action`."""
        self._estopped = True
        self._apply_action(self._brake)
        self._brake_now()

    def _sense(self, state: np.ndarray) -> np.ndarray:
        self._history.append(state)
        delayed = self._history[0]
        if self.sensor_noise_std > 0.0:
            noise = self.np_random.normal(0.0, self.sensor_noise_std, size=delayed.shape)
            return (delayed + noise).astype(np.float32)
        return delayed.copy()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Release an emergency stop, reset the robot and fill the latency buffer with the start state."""
        super().reset(seed=seed)
        self._estopped = False
        self._steps = 0
        info = self._reset_robot(options)
        state = self._read_state()
        self._history.clear()
        for _ in range(self.sensor_latency):
            self._history.append(state)
        self._tick = time.perf_counter()
        info["emergency_stop"] = False
        return self._observe(self._sense(state)), info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Clip (or brake), apply, wait one control period, read the sensors."""
        a = np.asarray(action, dtype=np.float32).reshape(self._low.shape)
        if not np.all(np.isfinite(a)):
            raise ValueError(f"Action {a.tolist()} has NaN or infinite entries.")
        a = self.brake_action if self._estopped else np.clip(a, self._low, self._high)
        self._apply_action(a)
        self._advance()
        if self.realtime:
            self._tick += self.control_dt
            delay = self._tick - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            else:
                self._tick = time.perf_counter()  # overran the period: restart the clock
        self._steps += 1
        state = self._read_state()
        reward, terminated, info = self._task(state, a)
        info["action_applied"] = a
        info["emergency_stop"] = self._estopped
        if self._estopped and self.terminate_on_estop:
            terminated = True
        truncated = self._steps >= self.max_episode_steps
        return self._observe(self._sense(state)), float(reward), bool(terminated), truncated, info


class BulletRobotEnv(HardwareEnv):
    """The PyBullet side of :class:`HardwareEnv`: DIRECT client, fixed physics rate, TinyRenderer camera.

    Subclasses build their scene in :meth:`_build` (returning ``{name: body id}``), then implement the
    remaining hooks. ``reset`` rebuilds the scene (same body ids, so bound cost terms stay valid) or
    restores a snapshot, then :meth:`_reset_robot` places the bodies.

    Args:
        physics_dt: physics time step (s); ``control_dt`` must be a multiple of it.
        camera: observe ``{"state", "rgb", "depth"}``; images from :meth:`_camera_pose`.
        image_size: camera image size, an int or ``(height, width)``.
        render_mode: ``None`` or ``"rgb_array"``.
        deterministic_reset: rebuild the scene at every reset (~0.1 s) so that a seed reproduces an episode
            bit for bit; ``False`` restores a saved state instead (fast; later episodes may differ from a fresh
            env by ~1e-6 because Bullet's solver state is not part of the snapshot).
        **kwargs: :class:`HardwareEnv` options.
    """

    near, far, fov = 0.05, 8.0, 60.0

    def __init__(
        self,
        *,
        physics_dt: float = 1.0 / 240.0,
        camera: bool = False,
        image_size: int | tuple[int, int] = 64,
        render_mode: str | None = None,
        deterministic_reset: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}.")
        substeps = self.control_dt / physics_dt
        if not (physics_dt > 0 and abs(substeps - round(substeps)) < 1e-6 and round(substeps) >= 1):
            raise ValueError(f"control_dt={self.control_dt} must be a positive multiple of physics_dt={physics_dt}.")
        self.render_mode = render_mode
        self.physics_dt = float(physics_dt)
        self._substeps = round(substeps)
        self.p = require("pybullet", "the PyBullet robot tasks")
        self.pybullet_data = require("pybullet_data", "the PyBullet robot tasks")
        self.deterministic_reset = bool(deterministic_reset)
        self.bullet_client_id: int = self.p.connect(self.p.DIRECT)
        self.bullet_bodies: dict[str, int] = self._setup_world()
        self._snapshot = -1 if self.deterministic_reset else self.p.saveState(physicsClientId=self.bullet_client_id)
        self.camera = bool(camera)
        self.image_size = _image_size(image_size)
        self.observation_space = (
            camera_observation_space(self.state_space, *self.image_size) if self.camera else self.state_space
        )

    @abstractmethod
    def _build(self) -> dict[str, int]:
        """Load the robot and the scene once; return ``{name: body id}``."""

    @abstractmethod
    def _camera_pose(self) -> tuple[Sequence[float], Sequence[float], Sequence[float]]:
        """``(eye, target, up)`` of the camera in the world frame (m)."""

    def _setup_world(self) -> dict[str, int]:
        p, cid = self.p, self.bullet_client_id
        p.setAdditionalSearchPath(self.pybullet_data.getDataPath(), physicsClientId=cid)
        p.setGravity(0, 0, -9.81, physicsClientId=cid)
        p.setTimeStep(self.physics_dt, physicsClientId=cid)
        return self._build()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Rebuild the world (or restore the post-build snapshot), then reset as :meth:`HardwareEnv.reset`."""
        p, cid = self.p, self.bullet_client_id
        if self.deterministic_reset:
            # Bullet keeps solver and broadphase state that restoreState does not cover; a rebuilt world
            # makes a seeded episode bit-identical whatever ran before. Ids come back in the same order.
            p.resetSimulation(physicsClientId=cid)
            bodies = self._setup_world()
            if bodies != self.bullet_bodies:
                raise RuntimeError(f"Rebuilding the scene changed body ids: {bodies} != {self.bullet_bodies}.")
        else:
            p.restoreState(self._snapshot, physicsClientId=cid)
        return super().reset(seed=seed, options=options)

    def _advance(self) -> None:
        for _ in range(self._substeps):
            self.p.stepSimulation(physicsClientId=self.bullet_client_id)

    def render_camera(self, height: int | None = None, width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(rgb uint8 (H, W, 3), depth float32 (H, W) metres)`` from the TinyRenderer (CPU)."""
        h, w = (height, width) if height and width else self.image_size
        eye, target, up = self._camera_pose()
        p, cid = self.p, self.bullet_client_id
        view = p.computeViewMatrix(eye, target, up, physicsClientId=cid)
        proj = p.computeProjectionMatrixFOV(self.fov, w / h, self.near, self.far, physicsClientId=cid)
        _, _, rgba, zbuf, _ = p.getCameraImage(
            w, h, view, proj, renderer=p.ER_TINY_RENDERER, flags=p.ER_NO_SEGMENTATION_MASK, physicsClientId=cid
        )
        rgb = np.asarray(rgba, dtype=np.uint8).reshape(h, w, 4)[:, :, :3].copy()
        z = np.asarray(zbuf, dtype=np.float32).reshape(h, w)
        # OpenGL depth buffer -> metric depth along the camera axis.
        depth = (self.far * self.near / (self.far - (self.far - self.near) * z)).astype(np.float32)
        return rgb, depth

    def _observe(self, state: np.ndarray) -> Any:
        if not self.camera:
            return state
        rgb, depth = self.render_camera()
        return {"state": state, "rgb": rgb, "depth": depth}

    def render(self) -> np.ndarray | None:  # type: ignore[override]
        """The camera image (``render_mode="rgb_array"``), else ``None``."""
        if self.render_mode != "rgb_array":
            return None
        return self.render_camera()[0]

    def close(self) -> None:
        """Disconnect the PyBullet client (idempotent)."""
        if getattr(self, "bullet_client_id", -1) >= 0:
            with contextlib.suppress(Exception):  # already disconnected
                self.p.disconnect(physicsClientId=self.bullet_client_id)
            self.bullet_client_id = -1
