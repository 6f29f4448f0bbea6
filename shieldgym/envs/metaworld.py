"""Meta-World v3 (metaworld 3.1.1) with cost signals, camera observations and instructions.

Ids are ``MetaWorld-<task>-v3`` for all 50 v3 tasks (the MT10/MT50/ML45 train and test tasks;
e.g. ``MetaWorld-reach-v3``, ``MetaWorld-bin-picking-v3``). Each env:

* observes the 39-d Meta-World state with the goal visible (``camera=True``: a ``Dict`` with
  ``"state"``, ``"rgb"`` uint8 ``(H, W, 3)`` and ``"depth"`` float32 ``(H, W)`` metres);
* reports ``info["cost"]``/``info["costs"]`` through :class:`~shieldgym.wrappers.cost.CostWrapper`
  with three terms: ``"contact"`` (arm links touching anything but the robot: table, walls,
  task objects), ``"workspace"`` (hand outside a box, m) and ``"ee_speed"`` (hand faster than a
  limit, m/s);
* reports ``info["success"]`` (bool) and ``info["instruction"]`` (a templated sentence, also
  ``env.instruction`` and ``env.unwrapped.instruction``);
* draws a new object/goal placement from its seeded generator on every ``reset``: the same seed
  reproduces observations, rewards and costs.

:func:`scripted_policy` returns Meta-World's hand-written expert for a task.

Example:
    >>> import shieldgym
    >>> env = shieldgym.make("MetaWorld-reach-v3")  # doctest: +SKIP
    >>> obs, info = env.reset(seed=0)  # doctest: +SKIP
    >>> policy = shieldgym.envs.metaworld.scripted_policy("reach-v3")  # doctest: +SKIP
    >>> obs, r, term, trunc, info = env.step(policy(obs))  # doctest: +SKIP
    >>> info["cost"], info["costs"], info["success"]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from shieldgym._optional import require
from shieldgym.costs.base import CostTerm
from shieldgym.envs._camera import CameraSimEnv, MujocoCamera, camera_observation_space
from shieldgym.envs._camera import image_size as _image_size
from shieldgym.envs.registry import Suite, register_suite

__all__ = [
    "ARM_LINKS",
    "INSTRUCTIONS",
    "ML45_TEST_TASKS",
    "ROBOT_BODIES",
    "TASKS",
    "MetaWorldTask",
    "default_cost_terms",
    "make_metaworld",
    "scripted_policy",
]

#: One templated instruction per v3 task (the task names are the keys, in Meta-World's order).
INSTRUCTIONS: dict[str, str] = {
    "assembly-v3": "pick up the ring and place it onto the peg",
    "basketball-v3": "pick up the ball and dunk it into the basket",
    "bin-picking-v3": "pick up the cube from one bin and place it into the other bin",
    "box-close-v3": "pick up the lid and place it on the box to close it",
    "button-press-topdown-v3": "press the button from the top",
    "button-press-topdown-wall-v3": "press the button from the top, reaching over the wall",
    "button-press-v3": "press the button",
    "button-press-wall-v3": "press the button behind the wall",
    "coffee-button-v3": "push the button on the coffee machine",
    "coffee-pull-v3": "pull the mug from the coffee machine",
    "coffee-push-v3": "push the mug under the coffee machine",
    "dial-turn-v3": "rotate the dial 180 degrees",
    "disassemble-v3": "pick the ring off the peg",
    "door-close-v3": "close the door",
    "door-lock-v3": "lock the door by rotating the lock clockwise",
    "door-open-v3": "open the door",
    "door-unlock-v3": "unlock the door by rotating the lock counter-clockwise",
    "hand-insert-v3": "insert the gripper into the hole",
    "drawer-close-v3": "push the drawer closed",
    "drawer-open-v3": "open the drawer",
    "faucet-open-v3": "rotate the faucet counter-clockwise",
    "faucet-close-v3": "rotate the faucet clockwise",
    "hammer-v3": "hammer the nail into the wall",
    "handle-press-side-v3": "press the handle down sideways",
    "handle-press-v3": "press the handle down",
    "handle-pull-side-v3": "pull the handle up sideways",
    "handle-pull-v3": "pull the handle up",
    "lever-pull-v3": "pull the lever up",
    "pick-place-wall-v3": "pick up the puck and place it at the goal, going around the wall",
    "pick-out-of-hole-v3": "pick up the puck out of the hole",
    "pick-place-v3": "pick up the puck and place it at the goal",
    "plate-slide-v3": "slide the plate into the cabinet",
    "plate-slide-side-v3": "slide the plate sideways into the cabinet",
    "plate-slide-back-v3": "slide the plate back out of the cabinet",
    "plate-slide-back-side-v3": "slide the plate sideways out of the cabinet",
    "peg-insert-side-v3": "insert the peg sideways into the hole",
    "peg-unplug-side-v3": "unplug the peg sideways",
    "soccer-v3": "kick the ball into the goal",
    "stick-push-v3": "grasp the stick and push the box with it",
    "stick-pull-v3": "grasp the stick and pull the box with it",
    "push-v3": "push the puck to the goal",
    "push-wall-v3": "push the puck to the goal around the wall",
    "push-back-v3": "pull the puck back to the goal",
    "reach-v3": "reach the goal position",
    "reach-wall-v3": "reach the goal position over the wall",
    "shelf-place-v3": "pick up the puck and place it on the shelf",
    "sweep-into-v3": "sweep the puck into the hole",
    "sweep-v3": "sweep the puck off the table",
    "window-open-v3": "push the window open",
    "window-close-v3": "push the window closed",
}

#: Every v3 task name.
TASKS: tuple[str, ...] = tuple(INSTRUCTIONS)
#: The five held-out test tasks of ML45.
ML45_TEST_TASKS: tuple[str, ...] = ("bin-picking-v3", "box-close-v3", "hand-insert-v3", "door-lock-v3", "door-unlock-v3")

_PREFIX = "MetaWorld-"
TASK_IDS: tuple[str, ...] = tuple(f"{_PREFIX}{t}" for t in TASKS)

#: Sawyer arm links whose contacts cost (the gripper is meant to touch things).
ARM_LINKS: tuple[str, ...] = ("right_l[0-6]*", "right_wrist", "right_arm_itb", "right_torso_itb", "right_hand*")
#: Every body of the Sawyer robot (never counted as an obstacle).
ROBOT_BODIES: tuple[str, ...] = (
    "base",
    "controller_box",
    "pedestal*",
    "torso",
    "head*",
    "screen",
    "right_*",
    "hand",
    "*claw",
    "*pad",
    "mocap",
)
#: The default workspace is the task's hand bounds grown by this much (m): the mocap target is clipped to
#: the bounds and the hand trails it by a few millimetres.
WORKSPACE_MARGIN = 0.01
#: Hand speed limit (m/s) of the default ``"ee_speed"`` term.
DEFAULT_MAX_SPEED = 1.0


def _task_name(task: str) -> str:
    name = task[len(_PREFIX) :] if task.startswith(_PREFIX) else task
    if not name.endswith("-v3") and f"{name}-v3" in INSTRUCTIONS:
        name = f"{name}-v3"
    if name not in INSTRUCTIONS:
        raise ValueError(f"Unknown Meta-World task {task!r}. Meta-World v3 tasks: {', '.join(TASKS)}.")
    return name


class MetaWorldTask(CameraSimEnv):
    """One Meta-World v3 task as a Gymnasium 1.x env (goal observable, seeded placements).

    Costs are not computed here: :func:`make_metaworld` wraps this env in a
    :class:`~shieldgym.wrappers.cost.CostWrapper`.

    Args:
        task: ``"reach-v3"`` (or ``"reach"``, ``"MetaWorld-reach-v3"``).
        camera: observe ``{"state", "rgb", "depth"}`` instead of the state vector.
        camera_name: a Meta-World camera (``"corner"``, ``"corner2"``, ``"corner3"``, ``"corner4"``,
            ``"topview"``, ``"behindGripper"``, ``"gripperPOV"``).
        image_size: camera image size, an int or ``(height, width)``.
        render_mode: ``None`` or ``"rgb_array"`` (:meth:`render` returns the camera image).
        max_episode_steps: truncation horizon (Meta-World's is 500).
        terminate_on_success: end the episode (``terminated=True``) on success.

    Raises:
        ValueError: unknown task (the message lists all tasks), bad image size or camera.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 80}

    def __init__(
        self,
        task: str,
        *,
        camera: bool = False,
        camera_name: str = "corner",
        image_size: int | tuple[int, int] = 64,
        render_mode: str | None = None,
        max_episode_steps: int = 500,
        terminate_on_success: bool = False,
    ) -> None:
        self.task = _task_name(task)
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}.")
        if not isinstance(max_episode_steps, int) or max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be a positive int, got {max_episode_steps!r}.")
        self.render_mode = render_mode
        self.max_episode_steps = max_episode_steps
        self.terminate_on_success = bool(terminate_on_success)
        self.instruction = INSTRUCTIONS[self.task]

        env_dict = require("metaworld.env_dict", "Meta-World tasks")
        inner = env_dict.ALL_V3_ENVIRONMENTS[self.task]()
        # Goal observable, a fresh placement per reset drawn from the env's own seeded generator.
        inner._partially_observable = False
        inner.__dict__.pop("sawyer_observation_space", None)  # a cached_property computed for the hidden goal
        inner._freeze_rand_vec = False
        inner.seeded_rand_vec = True
        inner._set_task_called = True
        inner.max_path_length = max_episode_steps
        self.env = inner
        self.model, self.data = inner.model, inner.data

        space = inner.sawyer_observation_space
        self.state_space = spaces.Box(space.low, space.high, dtype=np.float64)
        self.action_space = spaces.Box(-1.0, 1.0, (4,), dtype=np.float32)
        self.camera = bool(camera)
        self.image_size = image_size_hw = _image_size(image_size)
        self._camera: MujocoCamera | None = None
        if self.camera or render_mode == "rgb_array":
            self._camera = MujocoCamera(self.model, self.data, camera_name, *image_size_hw)
        self.observation_space = (
            camera_observation_space(self.state_space, *image_size_hw) if self.camera else self.state_space
        )
        self._steps = 0
        self._inner_seeded = False

    @property
    def hand_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """The hand's reachable box ``(low, high)`` in metres (Meta-World's ``hand_low``/``hand_high``)."""
        return np.asarray(self.env.hand_low, dtype=np.float64), np.asarray(self.env.hand_high, dtype=np.float64)

    def _observe(self, state: np.ndarray) -> Any:
        state = np.clip(state, self.state_space.low, self.state_space.high).astype(np.float64)
        if not self.camera:
            return state
        rgb, depth = self._camera.render()  # type: ignore[union-attr]
        return {"state": state, "rgb": rgb, "depth": depth}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Draw a new placement (from ``seed`` if given) and return the first observation."""
        super().reset(seed=seed)
        if seed is not None:
            self.env.seed(seed)
            self._inner_seeded = True
        elif not self._inner_seeded:
            self.env.seed(int(self.np_random.integers(2**31 - 1)))
            self._inner_seeded = True
        state, _ = self.env.reset()
        self._steps = 0
        return self._observe(state), {"success": False, "instruction": self.instruction}

    def step(self, action: np.ndarray) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Apply ``action`` (dx, dy, dz, gripper) in [-1, 1]^4."""
        action = np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)
        state, reward, _, _, info = self.env.step(action)
        self._steps += 1
        info = dict(info)
        info["success"] = bool(info.get("success", 0.0))
        info["instruction"] = self.instruction
        terminated = self.terminate_on_success and info["success"]
        truncated = self._steps >= self.max_episode_steps
        return self._observe(state), float(reward), terminated, truncated, info


def default_cost_terms(env: MetaWorldTask, *, max_speed: float = DEFAULT_MAX_SPEED, workspace: Any = None) -> list[CostTerm]:
    """The default terms of a Meta-World env: arm contact, workspace box and hand speed.

    Args:
        env: the unwrapped task.
        max_speed: hand speed limit (m/s).
        workspace: ``(low, high)`` box (m); default: the task's hand bounds grown by :data:`WORKSPACE_MARGIN`.
    """
    from shieldgym.costs.contact import ContactCost
    from shieldgym.costs.sim import sim_of
    from shieldgym.costs.velocity import EndEffectorSpeedCost
    from shieldgym.costs.workspace import WorkspaceCost

    sim = sim_of(env)  # one simulator lookup shared by the three terms
    if workspace is None:
        low, high = env.hand_bounds
        low, high = low - WORKSPACE_MARGIN, high + WORKSPACE_MARGIN
    else:
        low, high = workspace
    return [
        ContactCost("contact", bodies=ARM_LINKS, others=None, exclude=ROBOT_BODIES, sim=sim),
        WorkspaceCost("workspace", point="hand", low=low, high=high, sim=sim),
        EndEffectorSpeedCost("ee_speed", point="hand", max_speed=max_speed, sim=sim),
    ]


def make_metaworld(
    env_id: str,
    *,
    cost_terms: Sequence[CostTerm] | None = None,
    max_speed: float = DEFAULT_MAX_SPEED,
    workspace: tuple[Sequence[float], Sequence[float]] | None = None,
    **kwargs: Any,
) -> gym.Env:
    """Factory of the Meta-World suite: a :class:`MetaWorldTask` inside a ``CostWrapper``.

    Args:
        env_id: ``"MetaWorld-<task>-v3"``.
        cost_terms: replace the default terms (see :func:`default_cost_terms`).
        max_speed, workspace: options of the default terms.
        **kwargs: :class:`MetaWorldTask` options (``camera``, ``camera_name``, ``image_size``,
            ``render_mode``, ``max_episode_steps``, ``terminate_on_success``).
    """
    from shieldgym.wrappers.cost import CostWrapper

    task = MetaWorldTask(env_id, **kwargs)
    terms = default_cost_terms(task, max_speed=max_speed, workspace=workspace) if cost_terms is None else list(cost_terms)
    env = CostWrapper(task, terms)
    env.instruction = task.instruction  # type: ignore[attr-defined]
    return env


def scripted_policy(task: str) -> Callable[[np.ndarray], np.ndarray]:
    """Meta-World's scripted expert for ``task`` as ``policy(state_obs) -> action`` (float32, in [-1, 1]).

    Raises:
        ValueError: unknown task (the message lists all tasks).

    >>> policy = scripted_policy("reach-v3")  # doctest: +SKIP
    """
    name = _task_name(task)
    policies = require("metaworld.policies", "Meta-World scripted policies")
    expert = policies.ENV_POLICY_MAP[name]()

    def policy(obs: np.ndarray) -> np.ndarray:
        state = obs["state"] if isinstance(obs, dict) else obs
        return np.clip(expert.get_action(np.asarray(state, dtype=np.float64)), -1.0, 1.0).astype(np.float32)

    return policy


register_suite(
    Suite(
        name="metaworld",
        requires=("metaworld", "mujoco"),
        task_ids=TASK_IDS,
        factory=make_metaworld,
        description="Meta-World v3 (50 Sawyer manipulation tasks) with contact, workspace and speed costs",
    )
)
