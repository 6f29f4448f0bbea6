"""The cost convention and the cost-term interface.

Convention (used by every env, wrapper and algorithm in shieldgym):

* ``info["cost"]`` is the per-step cost, a Python ``float`` >= 0;
* ``info["costs"]`` maps each named component to its float value (may be empty);
* vector envs report ``infos["cost"]`` as an array of shape ``(num_envs,)``.

A :class:`CostTerm` computes one named component from a step. :class:`~shieldgym.wrappers.CostWrapper`
composes terms into the two keys above.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np

from shieldgym.errors import CostSignalError

__all__ = ["COSTS_KEY", "COST_KEY", "CostTerm", "FunctionCost", "StepContext", "get_cost", "validate_cost"]

COST_KEY = "cost"
COSTS_KEY = "costs"


def validate_cost(value: Any, name: str = COST_KEY) -> float:
    """Return ``value`` as a float cost, or raise :class:`CostSignalError` naming ``name``.

    Accepts Python and NumPy scalars and size-1 arrays. Rejects NaN, infinities, negative values and
    anything that is not a scalar.

    >>> validate_cost(np.float32(0.5), "contact")
    0.5
    """
    if isinstance(value, float) and 0.0 <= value < math.inf:  # fast path (NaN fails the comparison)
        return float(value)
    arr = np.asarray(value)
    if arr.size != 1 or arr.dtype.kind not in "biuf":
        raise CostSignalError(f"Cost {name!r} must be a real scalar, got {value!r} (shape {arr.shape}, dtype {arr.dtype}).")
    cost = float(arr.reshape(()))
    if math.isnan(cost) or math.isinf(cost):
        raise CostSignalError(f"Cost {name!r} is {cost}; costs must be finite.")
    if cost < 0.0:
        raise CostSignalError(f"Cost {name!r} is {cost}; costs must be >= 0.")
    return cost


def get_cost(info: Mapping[str, Any], key: str = COST_KEY) -> float:
    """Read and validate the step cost from an ``info`` dict.

    Raises:
        CostSignalError: if ``key`` is missing (the message lists the keys present) or its value is invalid.
    """
    if key not in info:
        raise CostSignalError(
            f"info has no cost key {key!r} (keys: {sorted(info)}). Wrap the env with shieldgym.CostWrapper or create "
            f"it with shieldgym.make, or pass the key your env uses."
        )
    return validate_cost(info[key], key)


class StepContext(NamedTuple):
    """Everything a cost term may look at for one transition ``(obs, action) -> next_obs``."""

    env: gym.Env
    obs: Any
    action: Any
    next_obs: Any
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any]


class CostTerm(ABC):
    """One named, non-negative cost component.

    Subclasses implement :meth:`compute`; :meth:`reset` is called at every episode start and
    :meth:`bind` once with the env the term will read (to resolve body/joint names early, so a bad
    name fails at construction, not mid-episode).

    Args:
        name: the key the value gets in ``info["costs"]``.
        weight: multiplies the term before it is added to ``info["cost"]``.
    """

    def __init__(self, name: str, weight: float = 1.0) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"A cost term needs a non-empty string name, got {name!r}.")
        if not (isinstance(weight, int | float) and math.isfinite(weight) and weight >= 0):
            raise ValueError(f"Cost term {name!r}: weight must be a finite number >= 0, got {weight!r}.")
        self.name = name
        self.weight = float(weight)

    def bind(self, env: gym.Env) -> None:  # noqa: B027 - optional hook
        """Resolve anything that depends on the env (called once by the wrapper)."""

    def reset(self, env: gym.Env, obs: Any, info: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """Clear per-episode state."""

    @abstractmethod
    def compute(self, ctx: StepContext) -> float:
        """Return the unweighted cost of one transition (>= 0)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, weight={self.weight})"


class FunctionCost(CostTerm):
    """A cost term from a plain function ``fn(ctx: StepContext) -> float``.

    >>> speed = FunctionCost("speed", lambda ctx: max(0.0, abs(float(ctx.action[0])) - 0.5))
    """

    def __init__(self, name: str, fn: Callable[[StepContext], float], weight: float = 1.0) -> None:
        super().__init__(name, weight)
        if not callable(fn):
            raise TypeError(f"FunctionCost {name!r}: fn must be callable, got {type(fn).__name__}.")
        self.fn = fn

    def compute(self, ctx: StepContext) -> float:
        return self.fn(ctx)
