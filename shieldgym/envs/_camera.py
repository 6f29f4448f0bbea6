"""Camera observations shared by the MuJoCo-based suites (Meta-World, RoboSuite) and the PyBullet tasks.

* :func:`image_size` validates an ``image_size`` option;
* :func:`camera_observation_space` builds the ``Dict`` space ``{"state", "rgb", "depth"}``;
* :class:`MujocoCamera` renders RGB (uint8, ``H x W x 3``) and metric depth (float32 metres, ``H x W``)
  from one MuJoCo camera, headless (set ``MUJOCO_GL=egl`` or ``osmesa`` before MuJoCo is imported).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = ["CameraSimEnv", "MujocoCamera", "camera_observation_space", "image_size"]


def image_size(size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """``(height, width)`` from an int (square) or a pair.

    Raises:
        ValueError: not a positive int or a pair of positive ints.

    >>> image_size(64), image_size((48, 64))
    ((64, 64), (48, 64))
    """
    if isinstance(size, int | np.integer) and not isinstance(size, bool):
        h = w = int(size)
    elif isinstance(size, tuple | list) and len(size) == 2 and all(isinstance(v, int | np.integer) for v in size):
        h, w = int(size[0]), int(size[1])
    else:
        raise ValueError(f"image_size must be an int or a (height, width) pair of ints, got {size!r}.")
    if h < 1 or w < 1:
        raise ValueError(f"image_size must be positive, got {size!r}.")
    return h, w


def camera_observation_space(state_space: spaces.Space, height: int, width: int) -> spaces.Dict:
    """The observation space of a camera-enabled env.

    Keys: ``"state"`` (the env's state space), ``"rgb"`` (uint8 ``(H, W, 3)``), ``"depth"`` (float32
    ``(H, W)``, metres along the camera axis, ``>= 0``).
    """
    return spaces.Dict(
        {
            "state": state_space,
            "rgb": spaces.Box(0, 255, (height, width, 3), dtype=np.uint8),
            "depth": spaces.Box(0.0, np.inf, (height, width), dtype=np.float32),
        }
    )


class MujocoCamera:
    """Headless RGB + depth rendering from one camera of a MuJoCo model.

    One ``mujoco.Renderer`` is shared by both images: the scene is updated once per frame and
    rendered twice (colour, then depth). Call :meth:`close` to free the GL context.

    Args:
        model: ``mujoco.MjModel``.
        data: ``mujoco.MjData`` (read at every :meth:`render`).
        camera: a camera name of the model, or ``-1`` for the free camera.
        height, width: image size in pixels (at most the model's offscreen buffer,
            ``model.vis.global_.offheight/offwidth``).
        shadows: render shadows. Off by default: on a CPU (software OpenGL) the shadow map makes a
            frame 4-5x slower (Meta-World 64x64: ~200 ms with, ~50 ms without).

    Raises:
        ValueError: unknown camera (the message lists the model's cameras) or an image larger than
            the offscreen buffer.
    """

    def __init__(self, model: Any, data: Any, camera: str | int, height: int, width: int, *, shadows: bool = False) -> None:
        import mujoco

        cams = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(model.ncam)]
        if isinstance(camera, str) and camera not in cams:
            raise ValueError(f"Unknown camera {camera!r}. Cameras of this model: {cams}.")
        if not isinstance(camera, str) and not -1 <= int(camera) < model.ncam:
            raise ValueError(f"Camera id {camera!r} out of range [-1, {model.ncam}). Cameras of this model: {cams}.")
        off_h, off_w = int(model.vis.global_.offheight), int(model.vis.global_.offwidth)
        if height > off_h or width > off_w:
            raise ValueError(f"Image size {(height, width)} exceeds the model's offscreen buffer {(off_h, off_w)}.")
        self.camera = camera
        self.height, self.width = height, width
        self._data = data
        self._renderer = mujoco.Renderer(model, height, width)
        self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = bool(shadows)
        self._rgb = np.empty((height, width, 3), dtype=np.uint8)
        self._depth = np.empty((height, width), dtype=np.float32)

    def render(self) -> tuple[np.ndarray, np.ndarray]:
        """Render ``(rgb, depth)`` of the current state; both are new arrays the caller may keep."""
        r = self._renderer
        r.update_scene(self._data, camera=self.camera)
        r.render(out=self._rgb)
        r.enable_depth_rendering()
        try:
            r.render(out=self._depth)
        finally:
            r.disable_depth_rendering()
        return self._rgb.copy(), self._depth.copy()

    def render_rgb(self) -> np.ndarray:
        """Render the colour image only (a new array)."""
        self._renderer.update_scene(self._data, camera=self.camera)
        return self._renderer.render()

    def close(self) -> None:
        """Free the renderer (idempotent)."""
        renderer = self.__dict__.pop("_renderer", None)
        if renderer is not None:
            renderer.close()


class CameraSimEnv(gym.Env):
    """Base of the suite adapters that wrap a simulator env (``self.env``) and may own a
    :class:`MujocoCamera` (``self._camera``): rendering and closing are the same for each."""

    env: Any
    _camera: MujocoCamera | None

    def render(self) -> np.ndarray | None:  # type: ignore[override]
        """The camera image (``render_mode="rgb_array"``), else ``None``."""
        if self.render_mode != "rgb_array" or self._camera is None:
            return None
        return self._camera.render_rgb()

    def close(self) -> None:
        """Free the renderer and the simulator."""
        if self._camera is not None:
            self._camera.close()
            self._camera = None
        self.env.close()
