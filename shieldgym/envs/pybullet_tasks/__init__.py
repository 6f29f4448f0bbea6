"""Robot tasks written for shieldgym on PyBullet: ``PandaRearrange-v0`` and ``HuskyNav-v0``.

Both are :class:`~shieldgym.envs.pybullet_tasks.hardware.HardwareEnv` subclasses (fixed control
period, action clipping, sensor latency/noise, emergency stop, ``brake_action``) and report their
costs through :class:`~shieldgym.wrappers.cost.CostWrapper`. PyBullet is imported when an env is
made, never at import.

Example:
    >>> import shieldgym
    >>> env = shieldgym.make("HuskyNav-v0", sensor_latency=1, sensor_noise_std=0.01)  # doctest: +SKIP
    >>> obs, info = env.reset(seed=0)  # doctest: +SKIP
    >>> info["instruction"]  # doctest: +SKIP
    'go to the blue object'
    >>> env.emergency_stop()  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from shieldgym.costs.base import CostTerm
from shieldgym.envs.registry import Suite, register_suite
from shieldgym.wrappers.cost import CostWrapper

__all__ = ["TASK_IDS", "RobotCostWrapper", "make_pybullet_task"]

TASK_IDS: tuple[str, ...] = ("PandaRearrange-v0", "HuskyNav-v0")


class RobotCostWrapper(CostWrapper):
    """:class:`~shieldgym.wrappers.cost.CostWrapper` that also exposes the robot interface of the task.

    ``instruction``, ``brake_action`` and ``emergency_stop()`` are read from / forwarded to the
    unwrapped :class:`~shieldgym.envs.pybullet_tasks.hardware.HardwareEnv`.
    """

    @property
    def instruction(self) -> str:
        """The current task instruction."""
        return str(self.unwrapped.instruction)  # type: ignore[attr-defined]

    @property
    def brake_action(self) -> np.ndarray:
        """The action that stops the robot."""
        return self.unwrapped.brake_action  # type: ignore[attr-defined,no-any-return]

    def emergency_stop(self) -> None:
        """Latch the robot's emergency stop (until ``reset``)."""
        self.unwrapped.emergency_stop()  # type: ignore[attr-defined]


def make_pybullet_task(env_id: str, *, cost_terms: Sequence[CostTerm] | None = None, **kwargs: Any) -> gym.Env:
    """Factory of the PyBullet robot tasks: the task inside a cost wrapper with its default terms.

    Args:
        env_id: ``"PandaRearrange-v0"`` or ``"HuskyNav-v0"``.
        cost_terms: replace the default terms.
        **kwargs: the task's options (``camera``, ``image_size``, ``sensor_latency``, ``sensor_noise_std``,
            ``control_dt``, ``max_episode_steps``, ...).

    Raises:
        ValueError: unknown id (the message lists the suite's ids).
    """
    if env_id == "PandaRearrange-v0":
        from shieldgym.envs.pybullet_tasks import panda_rearrange as module
        from shieldgym.envs.pybullet_tasks.panda_rearrange import PandaRearrangeEnv as task_cls
    elif env_id == "HuskyNav-v0":
        from shieldgym.envs.pybullet_tasks import husky_nav as module  # type: ignore[no-redef]
        from shieldgym.envs.pybullet_tasks.husky_nav import HuskyNavEnv as task_cls  # type: ignore[assignment]
    else:
        raise ValueError(f"Unknown PyBullet task {env_id!r}. PyBullet tasks: {', '.join(TASK_IDS)}.")
    task = task_cls(**kwargs)
    terms = module.default_cost_terms(task) if cost_terms is None else list(cost_terms)  # type: ignore[arg-type]
    return RobotCostWrapper(task, terms)


register_suite(
    Suite(
        name="pybullet-tasks",
        requires=("pybullet", "pybullet_data"),
        task_ids=TASK_IDS,
        factory=make_pybullet_task,
        description="PyBullet robot tasks: Panda rearrangement and Husky semantic navigation, hardware-style interface",
        install='pip install "shieldgym[pybullet]"',
    )
)
