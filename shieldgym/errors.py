"""Exceptions raised by shieldgym.

Every error names the bad value and what was expected, so a user can fix the call without reading
the source.
"""

from __future__ import annotations

__all__ = ["CostSignalError", "MissingDependencyError", "ShieldError", "ShieldgymError", "UnknownEnvError"]


class ShieldgymError(Exception):
    """Base class of every error shieldgym raises on purpose."""


class MissingDependencyError(ShieldgymError, ImportError):
    """An optional package (a benchmark suite, transformers, ...) is not installed.

    The message says exactly which command installs it.
    """


class UnknownEnvError(ShieldgymError, KeyError):
    """An environment id that no installed or known suite registers.

    The message lists the closest known ids.
    """

    def __str__(self) -> str:  # KeyError quotes its argument; show the message as written.
        return str(self.args[0]) if self.args else ""


class CostSignalError(ShieldgymError, ValueError):
    """A cost signal is missing, NaN, negative or not a scalar."""


class ShieldError(ShieldgymError, RuntimeError):
    """The shield could not produce a checked action: the critic and the backup both failed and no
    safe action is configured."""
