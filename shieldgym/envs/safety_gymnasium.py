"""Safety-Gymnasium 1.0.0 on Gymnasium 1.x, MuJoCo 3 and Python 3.11: the compatibility layer and the bridge.

Why a compatibility layer
-------------------------
``safety-gymnasium==1.0.0`` was written for Python <= 3.10, ``gymnasium==0.28.1`` and ``mujoco==2.3.3``.
On the stack shieldgym uses it fails at import. Its tasks themselves run fine on the modern stack once
a handful of import-level and signature-level incompatibilities are handled, so shieldgym does exactly
that, in memory, and nothing else.

How it works
------------
:func:`load_safety_gymnasium` (called on the first ``make`` of a Safety-Gymnasium task) puts a
:class:`importlib.abc.MetaPathFinder` at the front of ``sys.meta_path``. The finder answers only for
``safety_gymnasium`` and its submodules: it locates each module exactly as Python would, then loads
it with :class:`_PatchingLoader`, which reads the module's source, applies the :data:`PATCHES` that
name that module, compiles the result under the original file name (tracebacks point at the real
file and line) and executes it. Nothing is written to disk: the installed files are never modified
and no bytecode cache is read or written for these modules (a cached ``.pyc`` of the unpatched source
could otherwise be loaded instead). Every patch states how many times its text must occur; if the
installed source differs (another version), loading stops with an error naming the module and patch
instead of running half-patched code.

The patches (module: change -- why)
-----------------------------------
1. ``assets.{free_geoms,geoms,mocaps}.*`` (12 modules): ``color: np.array = COLOR[...]`` becomes a
   ``dataclasses.field(default_factory=...)`` returning a copy of that colour -- Python 3.11 rejects
   unhashable class-level defaults in dataclasses ("mutable default <class 'numpy.ndarray'> for
   field color is not allowed"). Each instance now gets its own copy instead of sharing one array.
2. ``utils.registration``: drop ``from gymnasium.wrappers.compatibility import EnvCompatibility`` --
   the old-step-API compatibility wrapper was removed in Gymnasium 1.0; no Safety-Gymnasium spec asks
   for it (the name is bound to ``None``).
3. ``utils.registration``: read ``EnvSpec.apply_api_compatibility`` and ``EnvSpec.autoreset`` with a
   ``False`` default -- both fields were removed from ``EnvSpec`` in Gymnasium 1.0.
4. ``utils.registration``: stop passing ``autoreset=`` and ``apply_api_compatibility=`` to ``EnvSpec``
   -- same removal; the constructor no longer accepts them.
5. ``wrappers.autoreset``: ``gymnasium.wrappers.autoreset.AutoResetWrapper`` -> ``gymnasium.wrappers.Autoreset``
   (module and class renamed in 1.0; the subclass overrides ``step`` itself).
6. ``wrappers.normalize``: ``gymnasium.wrappers.normalize`` -> ``gymnasium.wrappers`` and
   ``gymnasium.wrappers.utils.RunningMeanStd`` (module split in 1.0). Only the import is fixed: the
   ``SafeNormalize*`` wrappers rely on 0.28 internals and are not supported; normalise the bridged env
   with Gymnasium's own wrappers instead.
7. ``wrappers.time_limit``: ``gymnasium.wrappers.time_limit.TimeLimit`` -> ``gymnasium.wrappers.TimeLimit``.
8. ``wrappers.env_checker``: ``gymnasium.wrappers.env_checker.PassiveEnvChecker`` -> ``gymnasium.wrappers.PassiveEnvChecker``.
9. ``bases.underlying``: ``OffScreenViewer(model, data)`` -> ``OffScreenViewer(model, data, offwidth, offheight)``
   -- Gymnasium 1.x made the image size required; the values are the ones the old viewer read from
   ``model.vis.global_`` (set by ``render`` just before the viewer is created).

Nothing else is changed. MuJoCo 3.3 runs the package's models unmodified.

The bridge
----------
:class:`SafetyGymnasiumEnv` turns the suite's 6-tuple ``step`` ``(obs, reward, cost, terminated,
truncated, info)`` into Gymnasium's 5-tuple with ``info["cost"]`` (validated float) and
``info["costs"]`` (the ``cost_*`` components the task reports, e.g. ``cost_hazards``). The factory
adds Gymnasium's ``TimeLimit`` with the suite's limit (1000 steps; 500 for Circle, Run and Race).

>>> import shieldgym
>>> env = shieldgym.make("SafetyPointGoal1-v0")  # doctest: +SKIP
>>> obs, info = env.reset(seed=0)  # doctest: +SKIP
>>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())  # doctest: +SKIP
>>> info["cost"], info["costs"]  # doctest: +SKIP
(0.0, {'cost_hazards': 0.0})
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import importlib.abc
import importlib.machinery
import importlib.metadata
import importlib.util
import io
import re
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from shieldgym._optional import INSTALL_HINTS
from shieldgym.costs.base import COST_KEY, COSTS_KEY, validate_cost
from shieldgym.envs._sg_tasks import SAFETY_GYMNASIUM_TASK_IDS, SHORT_EPISODE_FAMILIES
from shieldgym.envs.registry import Suite, register_suite
from shieldgym.errors import CostSignalError, MissingDependencyError, ShieldgymError

__all__ = [
    "PATCHES",
    "SUITE",
    "SUPPORTED_VERSION",
    "SafetyGymnasiumEnv",
    "SourcePatch",
    "check_action",
    "load_safety_gymnasium",
    "make_safety_gymnasium",
    "max_episode_steps_of",
]

SUPPORTED_VERSION = "1.0.0"
_PKG = "safety_gymnasium"
# Modules the package imports besides gymnasium/numpy (the real dependencies, see the "safety-gymnasium" extra).
_DEPENDENCIES = ("mujoco", "gymnasium_robotics", "pettingzoo", "xmltodict", "yaml")
RENDER_MODES = ("human", "rgb_array", "depth_array")


# --------------------------------------------------------------------------------------------------
# The compatibility layer
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourcePatch:
    """One edit of a safety-gymnasium module's source, applied in memory before it is compiled.

    Attributes:
        modules: dotted names of the modules the edit applies to.
        old: the text to replace (a regular expression when ``regex`` is true).
        new: the replacement (may use ``\\1``-style groups when ``regex`` is true).
        why: the incompatibility it fixes (shown in errors and in ``docs/envs.md``).
        count: exact number of occurrences expected in each module.
        regex: treat ``old`` as a regular expression (multiline mode).
    """

    modules: tuple[str, ...]
    old: str
    new: str
    why: str
    count: int = 1
    regex: bool = False

    def apply(self, module: str, source: str) -> str:
        """Return ``source`` with the edit applied; raise if ``old`` does not occur exactly ``count`` times."""
        pattern = re.compile(self.old if self.regex else re.escape(self.old), re.MULTILINE)
        patched, n = pattern.subn(self.new if self.regex else (lambda _m: self.new), source)
        if n != self.count:
            raise ShieldgymError(
                f"shieldgym's Safety-Gymnasium compatibility layer expected {self.count} occurrence(s) of {self.old!r} in "
                f"module {module!r} but found {n}; it supports safety-gymnasium=={SUPPORTED_VERSION} only ({self.why})."
            )
        return patched


_ASSET_MODULES = tuple(
    f"{_PKG}.assets.{m}"
    for m in (
        "free_geoms.push_box",
        "free_geoms.vases",
        "geoms.apples",
        "geoms.buttons",
        "geoms.circle",
        "geoms.goal",
        "geoms.hazards",
        "geoms.oranges",
        "geoms.pillars",
        "geoms.sigwalls",
        "geoms.walls",
        "mocaps.gremlins",
    )
)
_REGISTRATION = f"{_PKG}.utils.registration"

# Name under which _PatchingLoader gives patched modules the helper that patch 1 calls.
_ARRAY_FIELD = "_shieldgym_array_field"
# Task attribute that patch 10 copies to the task's world: build it without the skybox texture.
_SKIP_SKYBOX = "_shieldgym_skip_skybox"

PATCHES: tuple[SourcePatch, ...] = (
    SourcePatch(
        _ASSET_MODULES,
        r"^(    color: np\.array = )(COLOR\['\w+'\])$",
        rf"\1{_ARRAY_FIELD}(\2)",
        "Python 3.11 dataclasses reject numpy arrays as field defaults",
        regex=True,
    ),
    SourcePatch(
        (_REGISTRATION,),
        "from gymnasium.wrappers.compatibility import EnvCompatibility",
        "EnvCompatibility = None",
        "gymnasium.wrappers.compatibility was removed in Gymnasium 1.0",
    ),
    SourcePatch(
        (_REGISTRATION,),
        "apply_api_compatibility is None and env_spec.apply_api_compatibility\n",
        "apply_api_compatibility is None and getattr(env_spec, 'apply_api_compatibility', False)\n",
        "EnvSpec.apply_api_compatibility was removed in Gymnasium 1.0",
    ),
    SourcePatch(
        (_REGISTRATION,),
        "apply_api_compatibility is None and env_spec.apply_api_compatibility is True",
        "apply_api_compatibility is None and getattr(env_spec, 'apply_api_compatibility', False) is True",
        "EnvSpec.apply_api_compatibility was removed in Gymnasium 1.0",
    ),
    SourcePatch(
        (_REGISTRATION,),
        "(autoreset is None and env_spec.autoreset is True)",
        "(autoreset is None and getattr(env_spec, 'autoreset', False) is True)",
        "EnvSpec.autoreset was removed in Gymnasium 1.0",
    ),
    SourcePatch(
        (_REGISTRATION,),
        "        autoreset=False,\n        disable_env_checker=True,\n        apply_api_compatibility=False,\n",
        "        disable_env_checker=True,\n",
        "EnvSpec() no longer accepts autoreset= or apply_api_compatibility= in Gymnasium 1.0",
    ),
    SourcePatch(
        (f"{_PKG}.wrappers.autoreset",),
        "from gymnasium.wrappers.autoreset import AutoResetWrapper",
        "from gymnasium.wrappers import Autoreset as AutoResetWrapper",
        "AutoResetWrapper became gymnasium.wrappers.Autoreset in Gymnasium 1.0",
    ),
    SourcePatch(
        (f"{_PKG}.wrappers.normalize",),
        "from gymnasium.wrappers.normalize import NormalizeObservation, NormalizeReward, RunningMeanStd",
        "from gymnasium.wrappers import NormalizeObservation, NormalizeReward\n"
        "from gymnasium.wrappers.utils import RunningMeanStd",
        "gymnasium.wrappers.normalize was split into gymnasium.wrappers and gymnasium.wrappers.utils in Gymnasium 1.0",
    ),
    SourcePatch(
        (f"{_PKG}.wrappers.time_limit",),
        "from gymnasium.wrappers.time_limit import TimeLimit",
        "from gymnasium.wrappers import TimeLimit",
        "gymnasium.wrappers.time_limit was removed in Gymnasium 1.0",
    ),
    SourcePatch(
        (f"{_PKG}.wrappers.env_checker",),
        "from gymnasium.wrappers.env_checker import PassiveEnvChecker",
        "from gymnasium.wrappers import PassiveEnvChecker",
        "gymnasium.wrappers.env_checker was removed in Gymnasium 1.0",
    ),
    SourcePatch(
        (f"{_PKG}.bases.underlying",),
        "OffScreenViewer(self.model, self.data)",
        "OffScreenViewer(self.model, self.data, self.model.vis.global_.offwidth, self.model.vis.global_.offheight)",
        "Gymnasium 1.x OffScreenViewer requires width and height",
    ),
    SourcePatch(
        (f"{_PKG}.bases.underlying",),
        "            self.world = World(self.agent, self._obstacles, self.world_info.world_config_dict)\n",
        "            self.world = World(self.agent, self._obstacles, self.world_info.world_config_dict)\n"
        f"            self.world.skip_skybox = getattr(self, {_SKIP_SKYBOX!r}, False)\n",
        "speed, not compatibility: lets an env that never renders build its world without the skybox (see patch 11)",
    ),
    SourcePatch(
        (f"{_PKG}.world",),
        "        texture.append(assets_config['textures']['skybox'])\n",
        "        if not getattr(self, 'skip_skybox', False):\n"
        "            texture.append(assets_config['textures']['skybox'])\n",
        "speed, not compatibility: the skybox's six PNG faces decode to 191 MB on every reset (~0.7 s); "
        "it is only seen in rendered frames",
    ),
)


def _array_field(value: np.ndarray) -> Any:
    """A dataclass field whose default is a fresh copy of ``value`` (what patch 1 substitutes)."""
    return dataclasses.field(default_factory=value.copy)


def _patches_for(module: str) -> list[SourcePatch]:
    return [p for p in PATCHES if module in p.modules]


class _PatchingLoader(importlib.machinery.SourceFileLoader):
    """Loads one safety-gymnasium module from its source with :data:`PATCHES` applied; writes nothing."""

    def get_code(self, fullname: str) -> Any:
        # Overrides SourceFileLoader.get_code, which would read/write the .pyc cache of the unpatched source.
        path = self.get_filename(fullname)
        source = importlib.util.decode_source(self.get_data(path))
        for patch in _patches_for(fullname):
            source = patch.apply(fullname, source)
        return compile(source, path, "exec", dont_inherit=True)

    def exec_module(self, module: ModuleType) -> None:
        module.__dict__[_ARRAY_FIELD] = _array_field
        super().exec_module(module)


class _CompatFinder(importlib.abc.MetaPathFinder):
    """Finds safety-gymnasium modules as Python would and hands them to :class:`_PatchingLoader`."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> Any:
        if fullname != _PKG and not fullname.startswith(_PKG + "."):
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or type(spec.loader) is not importlib.machinery.SourceFileLoader or spec.origin is None:
            return spec
        spec.loader = _PatchingLoader(fullname, spec.origin)
        return spec


_FINDER = _CompatFinder()
_LOCK = threading.Lock()


def _check_installed() -> None:
    """Raise :class:`MissingDependencyError` (with the install command) if the suite cannot be imported."""
    hint = INSTALL_HINTS[_PKG]
    if importlib.util.find_spec(_PKG) is None:
        raise MissingDependencyError(f"Safety-Gymnasium tasks need the package 'safety-gymnasium'. Install it with: {hint}")
    missing = [m for m in _DEPENDENCIES if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependencyError(
            f"safety-gymnasium is installed but its dependencies {missing} are not (it is installed with --no-deps). "
            f"Install them with: {hint}"
        )


def _loaded_by_us(module: ModuleType | None) -> bool:
    spec = getattr(module, "__spec__", None)
    return spec is not None and isinstance(spec.loader, _PatchingLoader)


def _import_gymnasium_robotics() -> None:
    """Import gymnasium-robotics (imported by safety-gymnasium) without its import-time notice.

    gymnasium-robotics 1.2.1-1.4.2 print a notice about the reward functions of three Adroit hand
    tasks on every import; those tasks are not part of any shieldgym suite, so that one line is
    dropped. Anything else written to stderr during the import is passed on.
    """
    if "gymnasium_robotics" in sys.modules:
        return
    captured = io.StringIO()
    with contextlib.redirect_stderr(captured):
        importlib.import_module("gymnasium_robotics")
    kept = [line for line in captured.getvalue().splitlines(keepends=True) if not line.startswith("AdroitHand")]
    if kept:
        sys.stderr.write("".join(kept))


def load_safety_gymnasium() -> ModuleType:
    """Import ``safety_gymnasium`` through the compatibility layer (idempotent, thread-safe).

    Returns:
        The ``safety_gymnasium`` module, with every id registered.

    Raises:
        MissingDependencyError: the package or one of its real dependencies is missing (the message
            gives the install command).
        ShieldgymError: the installed version is not ``1.0.0`` or it failed to import.
    """
    _check_installed()
    with _LOCK:
        current = sys.modules.get(_PKG)
        if _loaded_by_us(current):
            assert current is not None
            return current
        try:
            version = importlib.metadata.version("safety-gymnasium")
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        if version != SUPPORTED_VERSION:
            raise ShieldgymError(
                f"shieldgym supports safety-gymnasium=={SUPPORTED_VERSION}, found {version}. "
                f"Install it with: {INSTALL_HINTS[_PKG]}"
            )
        if _FINDER not in sys.meta_path:
            sys.meta_path.insert(0, _FINDER)
        # Leftovers of an earlier plain (failed) import would be reused unpatched: drop them.
        for name in [n for n in sys.modules if n == _PKG or n.startswith(_PKG + ".")]:
            del sys.modules[name]
        try:
            _import_gymnasium_robotics()
            return importlib.import_module(_PKG)
        except ShieldgymError:
            raise
        except Exception as exc:
            raise ShieldgymError(
                f"safety-gymnasium {version} failed to import through shieldgym's compatibility layer: {exc!r}"
            ) from exc


# --------------------------------------------------------------------------------------------------
# The bridge
# --------------------------------------------------------------------------------------------------


def check_action(space: gym.spaces.Space, action: Any, env_id: str) -> np.ndarray:
    """Return ``action`` as an array of ``space``'s dtype, or raise a ``ValueError`` that names the problem.

    Used by the suite bridges so a wrong action fails here, not inside the simulator.

    Raises:
        ValueError: the action is not numeric, has the wrong shape or contains NaN/inf.
    """
    if not isinstance(space, gym.spaces.Box):
        return action
    try:
        arr = np.asarray(action, dtype=space.dtype)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{env_id}: action must be numeric with shape {space.shape}, got {action!r}.") from exc
    if arr.shape != space.shape:
        raise ValueError(f"{env_id}: action must have shape {space.shape} (action_space {space}), got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{env_id}: action contains NaN or inf: {arr}.")
    return arr


def max_episode_steps_of(env_id: str) -> int:
    """The time limit safety-gymnasium registers for ``env_id`` (500 for Circle, Run, Race; else 1000)."""
    family = _family(env_id)
    return 500 if family in SHORT_EPISODE_FAMILIES else 1000


_ID_RE = re.compile(r"^Safety(?:Point|Car|Doggo|Racecar|Ant)(?P<family>[A-Za-z]+?)\d(?P<variant>Vision|Debug)?-v0$")


def _family(env_id: str) -> str:
    m = _ID_RE.match(env_id)
    return m.group("family") if m else "Velocity"


def _is_vision(env_id: str) -> bool:
    m = _ID_RE.match(env_id)
    return bool(m and m.group("variant") == "Vision")


class SafetyGymnasiumEnv(gym.Env):
    """Gymnasium 1.x view of one Safety-Gymnasium env.

    ``step`` returns ``(obs, reward, terminated, truncated, info)`` with ``info["cost"]`` (float >= 0,
    the suite's cost) and ``info["costs"]`` (its ``cost_*`` components); the suite's own info keys are
    kept. Actions are checked before they reach MuJoCo. ``reset(seed=s)`` seeds the suite's layout and
    noise generator with ``s``. Create it with :func:`shieldgym.make`.

    The suite's env is an implementation detail held as :attr:`suite_env` (its MuJoCo model is at
    ``suite_env.task.model`` for navigation tasks, ``suite_env.model`` for velocity tasks); this class
    is the unwrapped env, so seeding follows Gymnasium's rules.

    Args:
        suite_env: the suite's env (a ``safety_gymnasium.builder.Builder`` or a velocity task).
        env_id: its id, used in error messages.
    """

    def __init__(self, suite_env: Any, env_id: str) -> None:
        self.suite_env: Any = suite_env
        self.env_id = env_id
        self.observation_space = suite_env.observation_space
        self.action_space = suite_env.action_space
        self.metadata = dict(suite_env.metadata)
        self.render_mode = suite_env.render_mode
        self._vision = _is_vision(env_id)
        self._needs_reset = True
        self._last_obs: Any = None
        task = getattr(suite_env, "task", None)
        if task is not None and self.render_mode is None and not getattr(task, "observe_vision", False):
            # Nothing will ever draw the skybox: build the world without it (a reset then takes ~15 ms
            # instead of ~0.7 s, with the same observations, rewards and costs).
            setattr(task, _SKIP_SKYBOX, True)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        task = getattr(self.suite_env, "task", None)
        if task is not None and not task.mechanism_conf.randomize_layout:
            seed = None  # fixed-layout configs always use the suite's seed 0 and refuse any other
        obs, info = self.suite_env.reset(seed=seed, options=options)
        self._needs_reset = False
        self._last_obs = obs
        return obs, dict(info)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        if self._needs_reset:
            raise gym.error.ResetNeeded(f"{self.env_id}: call reset() before step() (and after an episode ends).")
        action = check_action(self.action_space, action, self.env_id)
        obs, reward, cost, terminated, truncated, info = self.suite_env.step(action)
        info = dict(info)
        for key in (COST_KEY, COSTS_KEY):
            if key in info:
                raise CostSignalError(f"{self.env_id}: the suite's info already has a {key!r} key; refusing to overwrite it.")
        info[COSTS_KEY] = {k: validate_cost(v, k) for k, v in info.items() if k.startswith("cost_") and k != "cost_sum"}
        info[COST_KEY] = validate_cost(cost, f"{self.env_id} cost")
        terminated, truncated = bool(terminated), bool(truncated)
        self._needs_reset = terminated or truncated
        self._last_obs = obs
        return obs, float(reward), terminated, truncated, info

    def render(self) -> Any:
        if self._vision and self.render_mode == "rgb_array":
            # The suite refuses render() on vision tasks; the frame is the agent camera's observation.
            return None if self._last_obs is None else np.array(self._last_obs["vision"], copy=True)
        return self.suite_env.render()

    def close(self) -> None:
        task = getattr(self.suite_env, "task", None)
        viewers = getattr(task, "_viewers", None)
        if task is not None and viewers:
            for viewer in viewers.values():
                viewer.close()
            viewers.clear()
            task.viewer = None
        self.suite_env.close()
        super().close()


def _missing_race_assets(sg: ModuleType) -> list[str]:
    """Texture files the Race layouts load that are absent from the installed package."""
    import yaml

    base = Path(str(sg.__file__)).parent
    with open(base / "configs" / "assets.yaml", encoding="utf-8") as f:
        textures = yaml.safe_load(f)["textures"]
    files = [t["@file"] for t in textures.values() if "@file" in t]
    return [name for name in files if not (base / "assets" / "textures" / name).exists()]


def make_safety_gymnasium(
    env_id: str,
    *,
    render_mode: str | None = None,
    max_episode_steps: int | None = None,
    width: int | None = None,
    height: int | None = None,
    camera_name: str | None = None,
    camera_id: int | None = None,
    config: Mapping[str, Any] | None = None,
) -> gym.Env:
    """Build one Safety-Gymnasium task as a Gymnasium 1.x env reporting ``info["cost"]``.

    Args:
        env_id: a Safety-Gymnasium id, e.g. ``"SafetyPointGoal1-v0"``.
        render_mode: ``None``, ``"rgb_array"``, ``"depth_array"`` (headless with ``MUJOCO_GL=egl``) or
            ``"human"`` (needs a display).
        max_episode_steps: time limit; defaults to the suite's (see :func:`max_episode_steps_of`). The
            navigation tasks also end themselves at their own ``num_steps``.
        width, height, camera_name, camera_id: render options passed to the suite.
        config: navigation tasks only: overrides merged into the task's config (e.g. ``{"lidar_num_bins": 32}``).

    Raises:
        MissingDependencyError: safety-gymnasium (or a dependency, or an asset a Race task needs) is missing.
        ValueError: bad ``render_mode`` / ``max_episode_steps`` / ``config``.
    """
    if env_id not in SUITE.task_ids:
        raise ValueError(f"{env_id!r} is not a Safety-Gymnasium task id; see `shieldgym envs --suite safety-gymnasium`.")
    if render_mode is not None and render_mode not in RENDER_MODES:
        raise ValueError(f"render_mode must be None or one of {RENDER_MODES}, got {render_mode!r}.")
    if _is_vision(env_id) and render_mode == "depth_array":
        raise ValueError(f"{env_id} is a vision task: render_mode 'depth_array' is not available (use 'rgb_array').")
    if max_episode_steps is not None and (not isinstance(max_episode_steps, int) or max_episode_steps < 1):
        raise ValueError(f"max_episode_steps must be a positive int, got {max_episode_steps!r}.")
    sg = load_safety_gymnasium()
    if _family(env_id) == "Race":
        missing = _missing_race_assets(sg)
        if missing:
            raise MissingDependencyError(
                f"{env_id} loads texture files that the installed safety-gymnasium does not contain: {missing} "
                f"(expected in {Path(str(sg.__file__)).parent / 'assets' / 'textures'}). Copy them there from a source "
                "checkout of safety-gymnasium 1.0.0; every other Safety-Gymnasium task works without them."
            )
    spec = gym.spec(env_id)  # safety-gymnasium registers each id with Gymnasium too
    kwargs = dict(spec.kwargs)
    if config is not None:
        if "config" not in kwargs:
            raise ValueError(f"{env_id}: config overrides apply to navigation tasks only.")
        kwargs["config"] = {**kwargs["config"], **dict(config)}
    render = {"width": width, "height": height, "camera_name": camera_name, "camera_id": camera_id}
    kwargs.update({k: v for k, v in render.items() if v is not None})
    entry = spec.entry_point
    creator: Any = gym.envs.registration.load_env_creator(entry) if isinstance(entry, str) else entry
    inner = creator(render_mode=render_mode, **kwargs)
    env: gym.Env = SafetyGymnasiumEnv(inner, env_id)
    return gym.wrappers.TimeLimit(env, max_episode_steps or max_episode_steps_of(env_id))


SUITE = Suite(
    name="safety-gymnasium",
    requires=(_PKG, *_DEPENDENCIES),
    task_ids=SAFETY_GYMNASIUM_TASK_IDS,
    factory=make_safety_gymnasium,
    description="Safety-Gymnasium 1.0.0 (MuJoCo): navigation, vision and velocity tasks",
    install=INSTALL_HINTS[_PKG],
    max_episode_steps={i: max_episode_steps_of(i) for i in SAFETY_GYMNASIUM_TASK_IDS},
)
register_suite(SUITE)
