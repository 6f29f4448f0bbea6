"""The suite registry behind :func:`shieldgym.make` and ``gym.make("shieldgym/<id>")``.

Each benchmark suite (Safety-Gymnasium, Bullet-Safety-Gym, Meta-World, RoboSuite, the PyBullet
robot tasks) registers one :class:`Suite`: a static list of its task ids (known without importing
the suite) and a factory. Importing shieldgym therefore costs no simulator import; the suite's
package is imported on the first ``make`` of one of its tasks, and a missing package gives an error
with the install command.
"""

from __future__ import annotations

import difflib
import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import gymnasium as gym

from shieldgym._optional import INSTALL_HINTS
from shieldgym.errors import UnknownEnvError

__all__ = [
    "NAMESPACE",
    "EnvInfo",
    "Suite",
    "get_suite",
    "list_envs",
    "make",
    "make_vec",
    "register_suite",
    "suite_of",
    "suites",
]

NAMESPACE = "shieldgym"


@dataclass(frozen=True)
class Suite:
    """A family of tasks that shieldgym can build.

    Attributes:
        name: short name shown to users, e.g. ``"safety-gymnasium"``.
        requires: top-level modules that must be importable for the suite to be installed.
        task_ids: every id the suite provides (a static list: no heavy import to get it).
        factory: ``factory(env_id, **kwargs) -> gym.Env`` returning a Gymnasium 1.x env that reports
            ``info["cost"]``.
        description: one line for ``shieldgym envs``.
        install: the command that installs the suite (defaults to the hint of its first module).
        max_episode_steps: default time limit per id (``None``: the factory handles it).
        nondeterministic: the simulator does not reproduce a trajectory exactly from a seed (set in the
            Gymnasium spec, so ``check_env`` skips its determinism check).
    """

    name: str
    requires: tuple[str, ...]
    task_ids: tuple[str, ...]
    factory: Callable[..., gym.Env]
    description: str = ""
    install: str = ""
    max_episode_steps: dict[str, int] | None = None
    nondeterministic: bool = False

    @property
    def installed(self) -> bool:
        """Whether every required module can be found (checked without importing it)."""
        return all(importlib.util.find_spec(m) is not None for m in self.requires)

    @property
    def install_command(self) -> str:
        if self.install:
            return self.install
        return INSTALL_HINTS.get(self.requires[0], f"pip install {self.requires[0]}") if self.requires else ""


class EnvInfo(NamedTuple):
    """One row of :func:`list_envs`."""

    env_id: str
    suite: str
    installed: bool


_SUITES: dict[str, Suite] = {}
_ID_TO_SUITE: dict[str, str] = {}


def register_suite(suite: Suite) -> None:
    """Add a suite and register each of its ids with Gymnasium as ``"shieldgym/<id>"``.

    Raises:
        ValueError: if the suite name or one of its ids is already taken by another suite.
    """
    if suite.name in _SUITES and _SUITES[suite.name] is not suite:
        raise ValueError(f"A suite named {suite.name!r} is already registered.")
    for env_id in suite.task_ids:
        owner = _ID_TO_SUITE.get(env_id)
        if owner is not None and owner != suite.name:
            raise ValueError(f"Env id {env_id!r} of suite {suite.name!r} is already provided by suite {owner!r}.")
    _SUITES[suite.name] = suite
    for env_id in suite.task_ids:
        _ID_TO_SUITE[env_id] = suite.name
        gym_id = f"{NAMESPACE}/{env_id}"
        if gym_id not in gym.registry:
            gym.register(
                id=gym_id,
                entry_point=_gym_entry_point,
                kwargs={"env_id": env_id},
                disable_env_checker=True,
                nondeterministic=suite.nondeterministic,
            )


def _gym_entry_point(**kwargs: Any) -> gym.Env:
    # gym.make("shieldgym/<id>") lands here with env_id (from the registration) and render_mode.
    env_id = kwargs.pop("env_id")
    return make(env_id, **kwargs)


def suites() -> list[Suite]:
    """All registered suites, in registration order."""
    return list(_SUITES.values())


def get_suite(name: str) -> Suite:
    """The suite called ``name`` (error lists the known names)."""
    try:
        return _SUITES[name]
    except KeyError:
        raise UnknownEnvError(f"Unknown suite {name!r}; known suites: {', '.join(_SUITES)}.") from None


def _strip_namespace(env_id: str) -> str:
    prefix = f"{NAMESPACE}/"
    return env_id[len(prefix) :] if env_id.startswith(prefix) else env_id


def suite_of(env_id: str) -> Suite:
    """The suite that provides ``env_id``.

    Raises:
        UnknownEnvError: with the closest known ids.
    """
    env_id = _strip_namespace(env_id)
    if not isinstance(env_id, str) or env_id not in _ID_TO_SUITE:
        close = difflib.get_close_matches(str(env_id), list(_ID_TO_SUITE), n=5, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else " Run `shieldgym envs` to list every task."
        raise UnknownEnvError(f"Unknown env id {env_id!r}.{hint}")
    return _SUITES[_ID_TO_SUITE[env_id]]


def make(env_id: str, **kwargs: Any) -> gym.Env:
    """Create any task of any registered suite as a Gymnasium 1.x env reporting ``info["cost"]``.

    Args:
        env_id: e.g. ``"SafetyPointGoal1-v0"`` (Safety-Gymnasium), ``"SafetyBallCircle-v0"``
            (Bullet-Safety-Gym); ``"shieldgym/"`` prefixes are accepted.
        **kwargs: passed to the suite's factory (``render_mode``, ``max_episode_steps``, task options).

    Raises:
        UnknownEnvError: unknown id (the message lists close matches).
        MissingDependencyError: the suite's package is not installed (the message gives the command).

    >>> import shieldgym
    >>> env = shieldgym.make("SafetyPointGoal1-v0")  # doctest: +SKIP
    """
    env_id = _strip_namespace(env_id)
    suite = suite_of(env_id)
    return suite.factory(env_id, **kwargs)


def make_vec(
    env_id: str,
    num_envs: int = 1,
    vectorization_mode: str = "sync",
    vector_kwargs: dict[str, Any] | None = None,
    **kwargs: Any,
) -> gym.vector.VectorEnv:
    """A Gymnasium vector env of ``num_envs`` copies of :func:`make` (``"sync"`` or ``"async"``).

    ``infos["cost"]`` is then an array of shape ``(num_envs,)``.
    """
    if not isinstance(num_envs, int) or num_envs < 1:
        raise ValueError(f"num_envs must be a positive int, got {num_envs!r}.")
    env_id = _strip_namespace(env_id)
    suite_of(env_id)  # fail early on an unknown id
    fns = [lambda: make(env_id, **kwargs) for _ in range(num_envs)]
    vk = dict(vector_kwargs or {})
    if vectorization_mode == "sync":
        return gym.vector.SyncVectorEnv(fns, **vk)
    if vectorization_mode == "async":
        return gym.vector.AsyncVectorEnv(fns, **vk)
    raise ValueError(f"vectorization_mode must be 'sync' or 'async', got {vectorization_mode!r}.")


def list_envs(suite: str | None = None) -> list[EnvInfo]:
    """Every known task id with its suite and whether that suite is installed."""
    chosen: Sequence[Suite] = [get_suite(suite)] if suite is not None else suites()
    rows: list[EnvInfo] = []
    for s in chosen:
        ok = s.installed
        rows.extend(EnvInfo(i, s.name, ok) for i in s.task_ids)
    return rows
