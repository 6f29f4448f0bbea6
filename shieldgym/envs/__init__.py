"""Environments: :func:`make`, :func:`make_vec` and the bridges to the benchmark suites.

Each suite module registers itself here on import; none of them imports its simulator at import time.
"""

from shieldgym.envs.registry import EnvInfo, Suite, list_envs, make, make_vec, register_suite, suite_of, suites

# Suite modules register their tasks when imported (cheap: static id lists, simulators load lazily).
# Each module appends itself to this tuple; see register_builtin_suites().
_BUILTIN_SUITE_MODULES: tuple[str, ...] = (
    "shieldgym.envs.safety_gymnasium",
    "shieldgym.envs.bullet_safety_gym",
    "shieldgym.envs.metaworld",
    "shieldgym.envs.robosuite",
    "shieldgym.envs.pybullet_tasks",
)


def register_builtin_suites() -> None:
    """Import every built-in suite module that exists so it registers its ids (idempotent)."""
    import importlib

    for mod in _BUILTIN_SUITE_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise


register_builtin_suites()

__all__ = [
    "EnvInfo",
    "Suite",
    "list_envs",
    "make",
    "make_vec",
    "register_builtin_suites",
    "register_suite",
    "suite_of",
    "suites",
]
