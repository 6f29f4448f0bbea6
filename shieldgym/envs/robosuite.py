"""RoboSuite 1.5 tasks as Gymnasium 1.x envs with cost signals and camera observations.

Ids are ``RoboSuite-<Task>-<Robot>-v0`` (``RoboSuite-Lift-Panda-v0``, ``RoboSuite-PickPlace-Panda-v0``,
``RoboSuite-Door-Panda-v0``, ``RoboSuite-Stack-Panda-v0``). RoboSuite's own ``GymWrapper`` follows
the old Gym API; :class:`RoboSuiteTask` is a native ``gymnasium.Env``:

* state observation: the robot's proprioception (``robot0_proprio-state``) and the object state,
  flattened to float32; ``camera=True`` adds ``"rgb"``/``"depth"`` images (same helper as
  Meta-World, rendered headless with ``mujoco.Renderer``);
* action: the default OSC pose controller plus gripper, in ``[-1, 1]^7``;
* ``info["success"]``, ``info["instruction"]``; seeded object placement and robot noise;
* costs through :class:`~shieldgym.wrappers.cost.CostWrapper`: ``"contact"`` (arm links touching
  anything that is not the robot: table, objects, door), ``"joint_limit"`` (within ``joint_margin`` rad of
  a limit), ``"torque"`` (above ``torque_fraction`` of the actuator limit, N*m), ``"ee_speed"``
  (grip site faster than ``max_speed`` m/s) and ``"workspace"`` (grip site outside a box around the
  robot base, m).

Example:
    >>> import shieldgym
    >>> env = shieldgym.make("RoboSuite-Lift-Panda-v0", max_episode_steps=200)  # doctest: +SKIP
    >>> obs, info = env.reset(seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from shieldgym._optional import require
from shieldgym.costs.base import CostTerm
from shieldgym.envs._camera import CameraSimEnv, MujocoCamera, camera_observation_space
from shieldgym.envs._camera import image_size as _image_size
from shieldgym.envs.registry import Suite, register_suite

__all__ = ["INSTRUCTIONS", "ROBOTS", "TASKS", "RoboSuiteTask", "default_cost_terms", "make_robosuite"]

#: Supported tasks and their instructions.
INSTRUCTIONS: dict[str, str] = {
    "Lift": "lift the cube off the table",
    "PickPlace": "pick up each object and place it into its bin",
    "Door": "open the door",
    "Stack": "stack the red cube on top of the green cube",
}
TASKS: tuple[str, ...] = tuple(INSTRUCTIONS)
#: Robots with default cost-term names.
ROBOTS: tuple[str, ...] = ("Panda",)
TASK_IDS: tuple[str, ...] = tuple(f"RoboSuite-{t}-{r}-v0" for t in TASKS for r in ROBOTS)

#: Arm links whose contacts cost, and every body of the robot (never counted as an obstacle).
ARM_LINKS: tuple[str, ...] = ("robot0_link[1-7]", "robot0_right_hand")
ROBOT_BODIES: tuple[str, ...] = ("robot0_*", "gripper0_*", "*mount0_*")
GRIP_SITE = "gripper0_right_grip_site"
#: Workspace box relative to the robot base (m): x forward, y left, z up.
WORKSPACE_OFFSET = (np.array([0.2, -0.5, -0.15]), np.array([1.0, 0.5, 0.6]))


def _parse_id(env_id: str) -> tuple[str, str]:
    parts = env_id.split("-")
    if len(parts) != 4 or parts[0] != "RoboSuite" or parts[3] != "v0" or parts[1] not in TASKS or parts[2] not in ROBOTS:
        raise ValueError(f"Unknown RoboSuite env id {env_id!r}. RoboSuite tasks: {', '.join(TASK_IDS)}.")
    return parts[1], parts[2]


class _QuietLogger:
    """Raise RoboSuite's logger to WARNING while an env is built (it logs each controller file it loads)."""

    def __enter__(self) -> None:
        self._logger = logging.getLogger("robosuite_logs")
        self._level = self._logger.level
        self._logger.setLevel(max(self._level, logging.WARNING))

    def __exit__(self, *exc: object) -> None:
        self._logger.setLevel(self._level)


class RoboSuiteTask(CameraSimEnv):
    """A RoboSuite manipulation task as a Gymnasium 1.x env (no costs: see :func:`make_robosuite`).

    Args:
        task: ``"Lift"``, ``"PickPlace"``, ``"Door"`` or ``"Stack"``.
        robot: ``"Panda"``.
        camera: observe ``{"state", "rgb", "depth"}``.
        camera_name: a RoboSuite camera (``"agentview"``, ``"frontview"``, ``"birdview"``,
            ``"sideview"``, ``"robot0_eye_in_hand"``, ...).
        image_size: camera image size, an int or ``(height, width)``.
        render_mode: ``None`` or ``"rgb_array"``.
        max_episode_steps: truncation horizon (control steps).
        control_freq: control frequency (Hz).
        terminate_on_success: end the episode on success.
        **suite_kwargs: more ``robosuite.make`` options (``reward_shaping`` defaults to True).

    Raises:
        ValueError: unknown task or robot (the message lists the suite's ids), bad image size or camera.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(
        self,
        task: str,
        robot: str = "Panda",
        *,
        camera: bool = False,
        camera_name: str = "agentview",
        image_size: int | tuple[int, int] = 64,
        render_mode: str | None = None,
        max_episode_steps: int = 200,
        control_freq: int = 20,
        terminate_on_success: bool = False,
        **suite_kwargs: Any,
    ) -> None:
        if task not in TASKS or robot not in ROBOTS:
            raise ValueError(f"Unknown RoboSuite task/robot {task!r}/{robot!r}. RoboSuite tasks: {', '.join(TASK_IDS)}.")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}.")
        if not isinstance(max_episode_steps, int) or max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be a positive int, got {max_episode_steps!r}.")
        self.task, self.robot = task, robot
        self.render_mode = render_mode
        self.max_episode_steps = max_episode_steps
        self.terminate_on_success = bool(terminate_on_success)
        self.instruction = INSTRUCTIONS[task]

        suite = require("robosuite", "RoboSuite tasks")
        options: dict[str, Any] = dict(reward_shaping=True)
        options.update(suite_kwargs)
        with _QuietLogger():
            self.env = suite.make(
                task,
                robots=robot,
                has_renderer=False,
                has_offscreen_renderer=False,
                use_camera_obs=False,
                use_object_obs=True,
                control_freq=control_freq,
                horizon=max_episode_steps,
                ignore_done=True,
                hard_reset=False,  # keep one MjModel/MjData: cost terms and the camera hold references
                **options,
            )
        self.sim = self.env.sim
        self.model, self.data = self.sim.model._model, self.sim.data._data
        self._keys = ("robot0_proprio-state", "object-state")
        first = self.env.reset()
        dim = sum(int(np.asarray(first[k]).size) for k in self._keys)
        self.state_space = spaces.Box(-np.inf, np.inf, (dim,), dtype=np.float32)
        low, high = self.env.action_spec
        self._low, self._high = low.astype(np.float64), high.astype(np.float64)
        self.action_space = spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32)
        self.camera = bool(camera)
        hw = _image_size(image_size)
        self.image_size = hw
        self._camera: MujocoCamera | None = None
        if self.camera or render_mode == "rgb_array":
            self._camera = MujocoCamera(self.model, self.data, camera_name, *hw)
        self.observation_space = camera_observation_space(self.state_space, *hw) if self.camera else self.state_space
        self._steps = 0
        self._seeded = False

    @property
    def robot_base(self) -> np.ndarray:
        """World position of the robot base (m)."""
        return np.array(self.data.body("robot0_base").xpos)

    def _observe(self, obs: dict[str, Any]) -> Any:
        state = np.concatenate([np.asarray(obs[k], dtype=np.float32).ravel() for k in self._keys])
        if not self.camera:
            return state
        rgb, depth = self._camera.render()  # type: ignore[union-attr]
        return {"state": state, "rgb": rgb, "depth": depth}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Reset placements and robot (from ``seed`` if given)."""
        super().reset(seed=seed)
        if seed is not None or not self._seeded:
            inner_seed = seed if seed is not None else int(self.np_random.integers(2**31 - 1))
            # Reseed RoboSuite's generator in place: its placement samplers and robots hold the same object.
            self.env.rng.bit_generator.state = np.random.default_rng(inner_seed).bit_generator.state
            self._seeded = True
        obs = self.env.reset()
        self._steps = 0
        return self._observe(obs), {"success": False, "instruction": self.instruction}

    def step(self, action: np.ndarray) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Apply an OSC pose + gripper action in ``[-1, 1]^7``."""
        action = np.clip(np.asarray(action, dtype=np.float64), self._low, self._high)
        obs, reward, _, info = self.env.step(action)
        self._steps += 1
        info = dict(info)
        info["success"] = bool(self.env._check_success())
        info["instruction"] = self.instruction
        terminated = self.terminate_on_success and info["success"]
        truncated = self._steps >= self.max_episode_steps
        return self._observe(obs), float(reward), terminated, truncated, info


def default_cost_terms(
    env: RoboSuiteTask,
    *,
    max_speed: float = 1.0,
    joint_margin: float = 0.05,
    torque_fraction: float = 0.9,
    workspace: tuple[Sequence[float], Sequence[float]] | None = None,
) -> list[CostTerm]:
    """The default terms of a RoboSuite env (see the module docstring).

    Args:
        env: the unwrapped task.
        max_speed: grip-site speed limit (m/s).
        joint_margin: joint-limit band (rad).
        torque_fraction: torque cost starts at this fraction of the actuator limit.
        workspace: ``(low, high)`` box (m); default: :data:`WORKSPACE_OFFSET` around the robot base.
    """
    from shieldgym.costs.contact import ContactCost
    from shieldgym.costs.joint_limit import JointLimitCost
    from shieldgym.costs.torque import TorqueLimitCost
    from shieldgym.costs.velocity import EndEffectorSpeedCost
    from shieldgym.costs.workspace import WorkspaceCost

    if workspace is None:
        base = env.robot_base
        low, high = base + WORKSPACE_OFFSET[0], base + WORKSPACE_OFFSET[1]
    else:
        low, high = workspace  # type: ignore[assignment]
    return [
        ContactCost("contact", bodies=ARM_LINKS, others=None, exclude=ROBOT_BODIES),
        JointLimitCost("joint_limit", joints="robot0_joint*", margin=joint_margin),
        TorqueLimitCost("torque", joints="robot0_joint*", fraction=torque_fraction),
        EndEffectorSpeedCost("ee_speed", point=GRIP_SITE, max_speed=max_speed),
        WorkspaceCost("workspace", point=GRIP_SITE, low=low, high=high),
    ]


def make_robosuite(
    env_id: str,
    *,
    cost_terms: Sequence[CostTerm] | None = None,
    max_speed: float = 1.0,
    joint_margin: float = 0.05,
    torque_fraction: float = 0.9,
    workspace: tuple[Sequence[float], Sequence[float]] | None = None,
    **kwargs: Any,
) -> gym.Env:
    """Factory of the RoboSuite suite: a :class:`RoboSuiteTask` inside a ``CostWrapper``.

    Args:
        env_id: ``"RoboSuite-<Task>-<Robot>-v0"``.
        cost_terms: replace the default terms.
        max_speed, joint_margin, torque_fraction, workspace: options of the default terms.
        **kwargs: :class:`RoboSuiteTask` options.

    Raises:
        ValueError: unknown id (the message lists the suite's ids).
    """
    from shieldgym.wrappers.cost import CostWrapper

    task, robot = _parse_id(env_id)
    inner = RoboSuiteTask(task, robot, **kwargs)
    if cost_terms is None:
        terms = default_cost_terms(
            inner, max_speed=max_speed, joint_margin=joint_margin, torque_fraction=torque_fraction, workspace=workspace
        )
    else:
        terms = list(cost_terms)
    env = CostWrapper(inner, terms)
    env.instruction = inner.instruction  # type: ignore[attr-defined]
    return env


register_suite(
    Suite(
        name="robosuite",
        requires=("robosuite", "mujoco"),
        task_ids=TASK_IDS,
        factory=make_robosuite,
        description="RoboSuite 1.5 manipulation (Lift, PickPlace, Door, Stack) with contact, limit, torque and speed costs",
    )
)
