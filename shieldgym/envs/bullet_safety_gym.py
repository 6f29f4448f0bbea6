"""Bullet-Safety-Gym 1.4.0 (PyBullet) tasks as Gymnasium 1.x envs with a validated ``info["cost"]``.

``bullet-safety-gym==1.4.0`` pins ``gymnasium~=0.28.1`` but its code runs unchanged on Gymnasium 1.x;
it already returns a 5-tuple ``step`` with ``info["cost"]``. What the bridge adds:

* **Seeding.** The package ignores ``reset(seed=...)`` and draws from NumPy's and Python's *global*
  random number generators (obstacle yaw and movement phase when the env is built, agent/goal placement
  at every reset, new goals during an episode). :class:`BulletSafetyGymEnv` gives every env its own
  ``numpy.random.RandomState`` and ``random.Random``: on first use, the package modules' ``np`` and
  ``random`` names are pointed at thin views (:class:`_NumpyView`, :class:`_RandomView`) whose
  ``random`` attribute resolves to the streams of the env that is currently stepping or resetting,
  and to NumPy's/Python's own global generators otherwise -- so envs made with ``gym.make`` directly
  behave exactly as before. ``reset(seed=s)`` therefore reproduces an episode exactly, and the user's
  global RNG state is never read or changed. The layout drawn at construction comes from
  ``layout_seed`` (default 0), so two envs of the same id share their static obstacle layout, as one
  env does across its resets.
* **Obstacle clock.** Moving obstacles (the circling box of the Reach tasks) follow ``time.time()``
  in the package, so their path depends on how fast the machine steps. The bridge gives them the
  simulated time since the reset (``steps * dt``) instead -- the same ``np``/``time`` view mechanism --
  so episodes are reproducible and machine-independent; ``obstacle_clock="wall"`` restores the
  package's behaviour.
* **Cost checks.** ``info["cost"]`` is validated (float, finite, >= 0) and the ``cost_*`` components
  are copied to ``info["costs"]``.
* **Actions** of the wrong shape (or NaN) raise a ``ValueError`` before they reach PyBullet.
* **Rendering**: ``render_mode="rgb_array"`` (CPU renderer, headless) returns ``uint8`` frames;
  ``"human"`` opens PyBullet's GUI (needs a display).
* Gymnasium's ``TimeLimit`` with the package's registered limit for each id.

Known limitation (of the package, reproduced by its own env): the first steps after a ``reset`` depend
slightly on the env's history -- PyBullet's ``restoreState``, which the package uses to reset, does not
restore every piece of solver state (e.g. ``SafetyBallCircle-v0`` alternates between two trajectories on
successive episodes with the same seed). The bridged env's spec says ``nondeterministic=True``. Fresh
envs with the same seeds produce identical episode sequences.

Not thread-safe across threads stepping Bullet envs concurrently (the active-stream pointer is
process-wide, like PyBullet's own client bookkeeping); use processes (``make_vec(..., "async")``).

>>> import shieldgym
>>> env = shieldgym.make("SafetyBallCircle-v0")  # doctest: +SKIP
>>> obs, info = env.reset(seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import importlib
import importlib.util
import os
import random
import sys
import time
import types
from collections.abc import Callable, Iterator
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from shieldgym._optional import INSTALL_HINTS
from shieldgym.costs.base import COST_KEY, COSTS_KEY, get_cost, validate_cost
from shieldgym.envs.registry import NAMESPACE, Suite, register_suite
from shieldgym.envs.safety_gymnasium import check_action
from shieldgym.errors import MissingDependencyError

__all__ = ["BULLET_SAFETY_GYM_TASKS", "SUITE", "BulletSafetyGymEnv", "make_bullet_safety_gym"]

_PKG = "bullet_safety_gym"
RENDER_MODES = ("human", "rgb_array")

# Every id bullet-safety-gym 1.4.0 registers, with its registered max_episode_steps (static; checked by
# tests/test_envs_bullet.py against the package).
BULLET_SAFETY_GYM_TASKS: dict[str, int] = {
    "SafetyBallReach-v0": 250,
    "SafetyCarReach-v0": 500,
    "SafetyAntReach-v0": 1000,
    "SafetyDroneReach-v0": 500,
    "SafetyBallPush-v0": 250,
    "SafetyCarPush-v0": 500,
    "SafetyBallCircle-v0": 200,
    "SafetyCarCircle-v0": 300,
    "SafetyAntCircle-v0": 500,
    "SafetyDroneCircle-v0": 300,
    "SafetyBallRun-v0": 100,
    "SafetyCarRun-v0": 200,
    "SafetyAntRun-v0": 200,
    "SafetyDroneRun-v0": 200,
    "SafetyBallGather-v0": 250,
    "SafetyCarGather-v0": 500,
    "SafetyAntGather-v0": 1000,
    "SafetyDroneGather-v0": 500,
}


# --------------------------------------------------------------------------------------------------
# Per-env random streams
# --------------------------------------------------------------------------------------------------


class _Streams:
    """The random streams and obstacle clock Bullet-Safety-Gym code uses while one env runs (``None``: the globals)."""

    np_rng: np.random.RandomState | None = None
    py_rng: random.Random | None = None
    clock: Callable[[], float] | None = None


_ACTIVE = _Streams()


class _NumpyView(types.ModuleType):
    """``numpy`` as the package's modules see it: every attribute is numpy's, except ``random``."""

    @property
    def random(self) -> Any:  # a data descriptor on the type wins over the copied module dict
        return _ACTIVE.np_rng if _ACTIVE.np_rng is not None else np.random


class _RandomView(types.ModuleType):
    """Python's ``random`` module as the package's modules see it."""

    def __getattr__(self, name: str) -> Any:
        return getattr(_ACTIVE.py_rng if _ACTIVE.py_rng is not None else random, name)


class _TimeView(types.ModuleType):
    """Python's ``time`` module as the package's modules see it: ``time()`` is the active env's obstacle clock."""

    def time(self) -> float:
        return _ACTIVE.clock() if _ACTIVE.clock is not None else time.time()

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def _make_views() -> dict[str, types.ModuleType]:
    np_view = _NumpyView("numpy")
    np_view.__dict__.update({k: v for k, v in np.__dict__.items() if k != "random"})
    return {"np": np_view, "random": _RandomView("random"), "time": _TimeView("time")}


_VIEWS: dict[str, types.ModuleType] | None = None
# Package modules whose use of the global RNGs / wall clock is redirected (module -> names pointed at views).
_REDIRECTED = {
    "agents": ("np",),
    "bases": ("np", "time"),
    "tasks": ("np",),
    "worlds": ("np",),
    "env_utils": ("np",),
    "obstacles": ("np", "random"),
}


def _redirect_globals() -> None:
    """Point the package modules' ``np``/``random``/``time`` names at the views (idempotent; in memory only)."""
    global _VIEWS
    if _VIEWS is None:
        _VIEWS = _make_views()
    for mod_name, names in _REDIRECTED.items():
        mod = importlib.import_module(f"{_PKG}.envs.{mod_name}")
        for name in names:
            if getattr(mod, name) is not _VIEWS[name]:
                setattr(mod, name, _VIEWS[name])


def _stream_pair(seed: int) -> tuple[np.random.RandomState, random.Random]:
    """The private streams for ``seed``: NumPy's legacy seeding of ``seed`` and ``random.Random(seed)``.

    They equal ``np.random.seed(seed); random.seed(seed)`` on the globals (for ``seed < 2**32``).
    """
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}.")
    np_seed: Any = int(seed) if seed < 2**32 else np.random.SeedSequence(int(seed)).generate_state(8)
    return np.random.RandomState(np_seed), random.Random(int(seed))


# --------------------------------------------------------------------------------------------------
# The bridge
# --------------------------------------------------------------------------------------------------


class BulletSafetyGymEnv(gym.Env):
    """Gymnasium 1.x env around one Bullet-Safety-Gym ``EnvironmentBuilder``, with private random streams.

    Args:
        env_id: a Bullet-Safety-Gym id (see :data:`BULLET_SAFETY_GYM_TASKS`).
        render_mode: ``None``, ``"rgb_array"`` or ``"human"``.
        layout_seed: seed of the draws made while the world is built (obstacle yaw and motion phase);
            ``None`` draws it from fresh entropy.
        obstacle_clock: what moving obstacles follow: ``"sim"`` (simulated time since the reset, the
            default: reproducible) or ``"wall"`` (the wall clock, as the package does).

    Attributes:
        suite_env: the package's ``EnvironmentBuilder``.
    """

    def __init__(
        self, env_id: str, render_mode: str | None = None, layout_seed: int | None = 0, obstacle_clock: str = "sim"
    ) -> None:
        if render_mode is not None and render_mode not in RENDER_MODES:
            raise ValueError(f"render_mode must be None or one of {RENDER_MODES}, got {render_mode!r}.")
        if render_mode == "human" and sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
            # PyBullet's GUI would abort the whole process without a display.
            raise ValueError(f"{env_id}: render_mode='human' needs a display (DISPLAY is not set); use 'rgb_array'.")
        spec = gym.spec(env_id)
        entry = spec.entry_point
        creator: Any = gym.envs.registration.load_env_creator(entry) if isinstance(entry, str) else entry
        kwargs = copy.deepcopy(spec.kwargs)
        if render_mode == "human":
            kwargs["graphics"] = True
        if obstacle_clock not in ("sim", "wall"):
            raise ValueError(f"obstacle_clock must be 'sim' or 'wall', got {obstacle_clock!r}.")
        self._clock: Callable[[], float] | None = None  # during construction: no moving obstacle is stepped
        if layout_seed is None:
            layout_seed = int(np.random.SeedSequence().generate_state(1)[0])
        self._np_rng, self._py_rng = _stream_pair(layout_seed)
        with self._active_streams():
            self.suite_env: Any = creator(**kwargs)
        self._clock = self._sim_time if obstacle_clock == "sim" else time.time
        self.env_id = env_id
        self.render_mode = render_mode
        self.observation_space = self.suite_env.observation_space
        self.action_space = self.suite_env.action_space
        self.metadata = {"render_modes": list(RENDER_MODES), "render_fps": max(1, round(1.0 / self.suite_env.dt))}
        # PyBullet does not restore every solver state on restoreState, so the first steps after a reset can
        # differ slightly with the env's history (the package's own env does the same): declare it.
        self.spec = dataclasses.replace(gym.spec(f"{NAMESPACE}/{env_id}"), nondeterministic=True)
        self._streams_seeded = False
        self._needs_reset = True

    def _active_streams(self) -> _StreamScope:
        return _StreamScope(self._np_rng, self._py_rng, self._clock)

    def _sim_time(self) -> float:
        return float(self.suite_env.iteration * self.suite_env.dt)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            self._np_rng, self._py_rng = _stream_pair(seed)
            self._streams_seeded = True
        elif not self._streams_seeded:
            self._np_rng, self._py_rng = _stream_pair(int(self.np_random.integers(2**32)))
            self._streams_seeded = True
        with self._active_streams():
            obs, info = self.suite_env.reset()
        self._needs_reset = False
        return obs, dict(info)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        if self._needs_reset:
            raise gym.error.ResetNeeded(f"{self.env_id}: call reset() before step() (and after an episode ends).")
        action = check_action(self.action_space, action, self.env_id)
        with self._active_streams():
            obs, reward, terminated, truncated, info = self.suite_env.step(action)
        info = dict(info)
        if COSTS_KEY in info:
            raise ValueError(f"{self.env_id}: the suite's info already has a {COSTS_KEY!r} key; refusing to overwrite it.")
        info[COST_KEY] = get_cost(info, COST_KEY)
        info[COSTS_KEY] = {k: validate_cost(v, k) for k, v in info.items() if k.startswith("cost_")}
        terminated, truncated = bool(terminated), bool(truncated)
        self._needs_reset = terminated or truncated
        return obs, float(reward), terminated, truncated, info

    def render(self) -> Any:
        if self.render_mode != "rgb_array":
            return None
        with self._active_streams():
            frame = self.suite_env.render(mode="rgb_array")
        return np.asarray(frame, dtype=np.uint8)

    def close(self) -> None:
        self.suite_env.close()
        super().close()


class _StreamScope:
    """Context manager making one env's streams the active ones (restores the previous on exit)."""

    __slots__ = ("_clock", "_np", "_prev", "_py")

    def __init__(self, np_rng: np.random.RandomState, py_rng: random.Random, clock: Callable[[], float] | None) -> None:
        self._np, self._py, self._clock = np_rng, py_rng, clock

    def __enter__(self) -> None:
        self._prev = _ACTIVE.np_rng, _ACTIVE.py_rng, _ACTIVE.clock
        _ACTIVE.np_rng, _ACTIVE.py_rng, _ACTIVE.clock = self._np, self._py, self._clock

    def __exit__(self, *exc: object) -> None:
        _ACTIVE.np_rng, _ACTIVE.py_rng, _ACTIVE.clock = self._prev


@contextlib.contextmanager
def _named_std_streams() -> Iterator[None]:
    """Give the package the interpreter's own ``sys.stdout``/``sys.stderr`` while it builds a world.

    It silences PyBullet by flushing the C stream whose libc symbol is the Python stream's name
    (``"<stdout>"`` -> ``stdout``); streams replaced by pytest, notebooks or loggers have other names and
    make that lookup fail. Output written meanwhile goes to the process's real stdout/stderr.
    """
    saved = sys.stdout, sys.stderr
    if sys.__stdout__ is not None and getattr(sys.stdout, "name", None) != "<stdout>":
        sys.stdout = sys.__stdout__
    if sys.__stderr__ is not None and getattr(sys.stderr, "name", None) != "<stderr>":
        sys.stderr = sys.__stderr__
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


def _check_installed() -> None:
    for module in (_PKG, "pybullet"):
        if importlib.util.find_spec(module) is None:
            raise MissingDependencyError(
                f"Bullet-Safety-Gym tasks need the package {module!r}. Install it with: {INSTALL_HINTS[_PKG]}"
            )


def make_bullet_safety_gym(
    env_id: str,
    *,
    render_mode: str | None = None,
    max_episode_steps: int | None = None,
    layout_seed: int | None = 0,
    obstacle_clock: str = "sim",
) -> gym.Env:
    """Build one Bullet-Safety-Gym task as a Gymnasium 1.x env reporting a validated ``info["cost"]``.

    Args:
        env_id: e.g. ``"SafetyBallCircle-v0"``.
        render_mode: ``None``, ``"rgb_array"`` (headless) or ``"human"`` (PyBullet GUI).
        max_episode_steps: time limit; defaults to the package's registered one.
        layout_seed: seed of the static layout drawn at construction (``None``: random).
        obstacle_clock: ``"sim"`` (moving obstacles follow simulated time; reproducible) or ``"wall"``
            (they follow the wall clock, as in the package).

    Raises:
        MissingDependencyError: bullet-safety-gym or pybullet is not installed (the message gives the command).
        ValueError: bad ``render_mode`` or ``max_episode_steps``.
    """
    if env_id not in BULLET_SAFETY_GYM_TASKS:
        raise ValueError(f"{env_id!r} is not a Bullet-Safety-Gym task id; see `shieldgym envs --suite bullet-safety-gym`.")
    if max_episode_steps is not None and (not isinstance(max_episode_steps, int) or max_episode_steps < 1):
        raise ValueError(f"max_episode_steps must be a positive int, got {max_episode_steps!r}.")
    _check_installed()
    with _named_std_streams():
        importlib.import_module(_PKG)  # registers its ids with Gymnasium
        _redirect_globals()
        env = BulletSafetyGymEnv(env_id, render_mode=render_mode, layout_seed=layout_seed, obstacle_clock=obstacle_clock)
    return gym.wrappers.TimeLimit(env, max_episode_steps or BULLET_SAFETY_GYM_TASKS[env_id])


SUITE = Suite(
    name="bullet-safety-gym",
    requires=(_PKG, "pybullet"),
    task_ids=tuple(BULLET_SAFETY_GYM_TASKS),
    factory=make_bullet_safety_gym,
    description="Bullet-Safety-Gym 1.4.0 (PyBullet): Reach, Push, Circle, Run, Gather with Ball/Car/Ant/Drone",
    install=INSTALL_HINTS[_PKG],
    max_episode_steps=dict(BULLET_SAFETY_GYM_TASKS),
    nondeterministic=True,
)
register_suite(SUITE)
