"""Cost-signal wrappers: compose cost terms, record episode cost statistics, enforce a cost budget.

* :class:`CostWrapper` - writes ``info["cost"]`` (float >= 0) and ``info["costs"]`` (named components) from
  the inner env's own cost and/or :class:`~shieldgym.costs.base.CostTerm` objects;
* :class:`CostEpisodeStatistics` - ``info["episode"]`` with return, cost, length, time, violations (and shield
  interventions) at the end of every episode;
* :class:`CostBudget` - tracks the episode cost against a budget ``d`` and can end the episode once it is spent.

Vector versions of the last two live in :mod:`shieldgym.wrappers.vector_cost`; a :class:`CostWrapper` goes
inside the env functions of a vector env.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium.core import ActType, ObsType
from gymnasium.error import ResetNeeded

from shieldgym.costs.base import COST_KEY, COSTS_KEY, CostTerm, FunctionCost, StepContext, get_cost, validate_cost
from shieldgym.errors import CostSignalError

__all__ = ["ENV_COST_NAME", "CostBudget", "CostEpisodeStatistics", "CostWrapper", "check_budget"]

#: Name of the component that holds the inner env's own cost in ``info["costs"]``.
ENV_COST_NAME = "env"

TermLike = CostTerm | Callable[[StepContext], float]


def _as_terms(terms: TermLike | Iterable[TermLike]) -> tuple[CostTerm, ...]:
    """Normalise ``terms`` to a tuple of uniquely named :class:`CostTerm` (plain callables become FunctionCost)."""
    items = [terms] if isinstance(terms, CostTerm) or callable(terms) else list(terms)
    out: list[CostTerm] = []
    for item in items:
        if isinstance(item, CostTerm):
            out.append(item)
        elif callable(item):
            name = getattr(item, "__name__", None)
            if not isinstance(name, str) or not name:
                raise ValueError(
                    f"Cost function {item!r} has no __name__ to use as the component name; wrap it as FunctionCost(name, fn)."
                )
            out.append(FunctionCost(name, item))
        else:
            raise TypeError(f"Cost terms must be CostTerm instances or callables fn(ctx) -> float, got {type(item).__name__}.")
    names = [t.name for t in out]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(
            f"Duplicate cost term names {duplicates}; every term needs its own name "
            f"(give lambdas a name with FunctionCost(name, fn))."
        )
    return tuple(out)


def _action_checker(space: gym.Space) -> Callable[[Any], Any] | None:
    """A cheap function that returns the action (reshaped if needed) or raises ``ValueError``; ``None`` = no check."""
    if isinstance(space, gym.spaces.Discrete):
        low, high = int(space.start), int(space.start + space.n)

        def check_discrete(action: Any) -> Any:
            if isinstance(action, np.ndarray) and action.size == 1 and action.dtype.kind in "iu":
                value = int(action.reshape(()))
            elif isinstance(action, int | np.integer) and not isinstance(action, bool | np.bool_):
                value = int(action)
            else:
                raise ValueError(f"Action {action!r} is not an integer; expected an int in [{low}, {high}) for {space}.")
            if not low <= value < high:
                raise ValueError(f"Action {value} is out of range; expected an int in [{low}, {high}) for {space}.")
            return action

        return check_discrete

    if isinstance(space, gym.spaces.Box | gym.spaces.MultiDiscrete | gym.spaces.MultiBinary):
        shape = tuple(space.shape)
        size = math.prod(shape)
        squeezed = tuple(d for d in shape if d != 1)

        def check_shape(action: Any) -> Any:
            if isinstance(action, np.ndarray):
                if action.shape == shape and action.dtype.kind in "biuf":
                    return action  # the fast path: no allocation
                arr = action
            else:
                arr = np.asarray(action)
            if arr.dtype.kind not in "biuf":
                raise ValueError(f"Action {action!r} is not numeric (dtype {arr.dtype}); expected shape {shape} for {space}.")
            if arr.shape == shape:
                return arr
            if arr.size == size and tuple(d for d in arr.shape if d != 1) == squeezed:
                return arr.reshape(shape)
            raise ValueError(f"Action has shape {arr.shape}; expected shape {shape} (or one that reshapes to it) for {space}.")

        return check_shape

    return None


class CostWrapper(gym.Wrapper[ObsType, ActType, ObsType, ActType], gym.utils.RecordConstructorArgs):
    """Write the per-step cost ``info["cost"]`` and its named components ``info["costs"]``.

    The cost is ``sum(term.weight * term.compute(ctx))`` over ``terms``, plus the inner env's own cost
    ``info[cost_key]`` when it reports one and ``include_env_cost`` is true. Components are unweighted: every
    term appears under its name, the inner env's cost under ``"env"``, and any components the inner env already
    reported in ``info["costs"]`` are kept.

    Terms are bound once (``term.bind(env)``) at construction, reset on every ``reset`` and evaluated on every
    ``step``; each value is validated, so a NaN, negative or non-scalar value raises
    :class:`~shieldgym.errors.CostSignalError` naming the term. The action is checked against the action space
    (shape for ``Box``/``MultiDiscrete``/``MultiBinary``, an int in range for ``Discrete``) before the inner env
    is stepped.

    ``StepContext.obs`` is the observation the action was taken in; it is the object the inner env returned
    (not a copy).

    Args:
        env: the env to wrap.
        terms: :class:`CostTerm` objects and/or plain functions ``fn(ctx) -> float`` (named by ``fn.__name__``).
        cost_key: the key under which the inner env reports its own cost (if it does).
        include_env_cost: add the inner env's own cost to ``info["cost"]`` (it is reported in
            ``info["costs"]["env"]`` either way).

    Raises:
        ValueError: duplicate term names, a term that is neither a CostTerm nor callable, no terms with
            ``include_env_cost=False``, or (at ``step``) an action of the wrong shape / out of range.
        CostSignalError: (at ``step``) no terms and the inner env reports no ``info[cost_key]``; an invalid
            term value; a term name that clashes with an inner component.

    Example:
        >>> import gymnasium as gym
        >>> from shieldgym.wrappers import CostWrapper
        >>> def fast(ctx):
        ...     return float(abs(ctx.next_obs[1]) > 1.0)
        >>> env = CostWrapper(gym.make("CartPole-v1"), [fast])
        >>> _ = env.reset(seed=0)
        >>> _, _, _, _, info = env.step(0)
        >>> info["cost"], info["costs"]
        (0.0, {'fast': 0.0})
    """

    def __init__(
        self,
        env: gym.Env[ObsType, ActType],
        terms: TermLike | Iterable[TermLike] = (),
        *,
        cost_key: str = COST_KEY,
        include_env_cost: bool = True,
    ) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, terms=terms, cost_key=cost_key, include_env_cost=include_env_cost)
        gym.Wrapper.__init__(self, env)
        if not isinstance(cost_key, str) or not cost_key:
            raise ValueError(f"cost_key must be a non-empty string, got {cost_key!r}.")
        self.terms: tuple[CostTerm, ...] = _as_terms(terms)
        if not self.terms and not include_env_cost:
            raise ValueError("CostWrapper has no cost terms and include_env_cost=False, so the cost would always be 0.")
        self.cost_key = cost_key
        self.include_env_cost = bool(include_env_cost)
        self._check_action = _action_checker(env.action_space)
        self._env_reports_cost: bool | None = None  # decided on the first step
        self._obs: Any = None
        self._needs_reset = True
        for term in self.terms:
            term.bind(env)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[ObsType, dict[str, Any]]:
        """Reset the inner env and every cost term."""
        obs, info = self.env.reset(seed=seed, options=options)
        for term in self.terms:
            term.reset(self.env, obs, info)
        self._obs = obs
        self._needs_reset = False
        return obs, info

    def step(self, action: ActType) -> tuple[ObsType, SupportsFloat, bool, bool, dict[str, Any]]:
        """Check the action, step the inner env, and add ``info["cost"]`` / ``info["costs"]``."""
        if self._needs_reset:
            raise ResetNeeded("CostWrapper: call reset() before step().")
        if self._check_action is not None:
            action = self._check_action(action)
        obs, reward, terminated, truncated, info = self.env.step(action)

        key = self.cost_key
        if self._env_reports_cost is None:
            self._first_step_checks(info)
        inner = info.get(COSTS_KEY)
        costs: dict[str, float] = dict(inner) if inner else {}
        total = 0.0
        if self._env_reports_cost:
            env_cost = get_cost(info, key)
            costs[ENV_COST_NAME] = env_cost
            if self.include_env_cost:
                total = env_cost
        elif key in info:
            raise CostSignalError(f"CostWrapper: the inner env started reporting info[{key!r}] after its first step.")

        if self.terms:
            ctx = StepContext(self.env, self._obs, action, obs, float(reward), terminated, truncated, info)
            for term in self.terms:
                value = validate_cost(term.compute(ctx), term.name)
                costs[term.name] = value
                total += term.weight * value

        self._obs = obs
        info[COST_KEY] = total
        info[COSTS_KEY] = costs
        return obs, reward, terminated, truncated, info

    def _first_step_checks(self, info: dict[str, Any]) -> None:
        key = self.cost_key
        reports = key in info
        if not reports and not self.terms:
            raise CostSignalError(
                f"CostWrapper: the inner env reports no info[{key!r}] and no cost terms were given; pass terms, or "
                f"cost_key=<the key your env uses> (info keys: {sorted(info)})."
            )
        if key != COST_KEY and COST_KEY in info:
            raise CostSignalError(
                f"CostWrapper: the inner env already writes info[{COST_KEY!r}] next to info[{key!r}]; "
                f"pass cost_key={COST_KEY!r} so it is not overwritten."
            )
        inner = info.get(COSTS_KEY)
        if inner is not None and not isinstance(inner, dict):
            raise CostSignalError(
                f"CostWrapper: info[{COSTS_KEY!r}] from the inner env must be a dict, got {type(inner).__name__}."
            )
        taken = set(inner or ()) | ({ENV_COST_NAME} if reports else set())
        clashes = sorted(taken & {t.name for t in self.terms})
        if clashes:
            raise CostSignalError(
                f"CostWrapper: cost term names {clashes} clash with components the inner env already reports."
            )
        self._env_reports_cost = reports


class CostEpisodeStatistics(gym.Wrapper[ObsType, ActType, ObsType, ActType], gym.utils.RecordConstructorArgs):
    """Record return, cost, length, time and violations of each episode (``RecordEpisodeStatistics`` with cost).

    At the end of an episode (terminated or truncated) ``info["episode"]`` is::

        {"r": return, "c": cost sum, "l": length, "t": seconds, "violations": steps with cost > 0}

    plus ``"shield_interventions"`` (count) and ``"shield_rate"`` (count / length) when the steps carry
    ``info["shield"]`` (a dict with the bool ``"intervened"``). The last ``buffer_length`` episodes are kept in
    :attr:`return_queue`, :attr:`cost_queue`, :attr:`length_queue`, :attr:`violation_queue` and
    :attr:`time_queue`.

    Args:
        env: an env reporting ``info[cost_key]`` (e.g. wrapped in :class:`CostWrapper`).
        buffer_length: size of the queues.
        cost_key: the info key holding the step cost.
        stats_key: the info key the episode dict is written to.

    Raises:
        CostSignalError: (at ``step``) ``info[cost_key]`` is missing or invalid.
        ValueError: (at ``step``) ``info[stats_key]`` is already set by an inner wrapper, or ``info["shield"]``
            has no ``"intervened"``.

    Example:
        >>> env = CostEpisodeStatistics(CostWrapper(env, [fast]))  # doctest: +SKIP
        >>> # ... at the last step of an episode:
        >>> info["episode"]  # doctest: +SKIP
        {'r': 9.0, 'c': 2.0, 'l': 9, 't': 0.000412, 'violations': 2}
    """

    def __init__(
        self,
        env: gym.Env[ObsType, ActType],
        buffer_length: int = 100,
        cost_key: str = COST_KEY,
        *,
        stats_key: str = "episode",
    ) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, buffer_length=buffer_length, cost_key=cost_key, stats_key=stats_key)
        gym.Wrapper.__init__(self, env)
        if not isinstance(buffer_length, int) or buffer_length < 1:
            raise ValueError(f"buffer_length must be a positive int, got {buffer_length!r}.")
        self.cost_key = cost_key
        self.stats_key = stats_key
        self.episode_count = 0
        self.return_queue: deque[float] = deque(maxlen=buffer_length)
        self.cost_queue: deque[float] = deque(maxlen=buffer_length)
        self.length_queue: deque[int] = deque(maxlen=buffer_length)
        self.violation_queue: deque[int] = deque(maxlen=buffer_length)
        self.time_queue: deque[float] = deque(maxlen=buffer_length)
        self._clear()

    def _clear(self) -> None:
        self.episode_start_time = time.perf_counter()
        self.episode_return = 0.0
        self.episode_cost = 0.0
        self.episode_length = 0
        self.episode_violations = 0
        self.episode_interventions = 0
        self._saw_shield = False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[ObsType, dict[str, Any]]:
        """Reset the inner env and the running episode statistics."""
        obs, info = self.env.reset(seed=seed, options=options)
        self._clear()
        return obs, info

    def step(self, action: ActType) -> tuple[ObsType, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the inner env and accumulate the statistics; write ``info["episode"]`` when the episode ends."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        cost = get_cost(info, self.cost_key)
        self.episode_return += float(reward)
        self.episode_cost += cost
        self.episode_length += 1
        if cost > 0.0:
            self.episode_violations += 1
        shield = info.get("shield")
        if shield is not None:
            self._saw_shield = True
            try:
                intervened = shield["intervened"]
            except (KeyError, TypeError):
                raise ValueError(f"info['shield'] must be a dict with a bool 'intervened', got {shield!r}.") from None
            if intervened:
                self.episode_interventions += 1

        if terminated or truncated:
            if self.stats_key in info:
                raise ValueError(f"CostEpisodeStatistics: info already has key {self.stats_key!r}; pass another stats_key.")
            elapsed = round(time.perf_counter() - self.episode_start_time, 6)
            episode: dict[str, Any] = {
                "r": self.episode_return,
                "c": self.episode_cost,
                "l": self.episode_length,
                "t": elapsed,
                "violations": self.episode_violations,
            }
            if self._saw_shield:
                episode["shield_interventions"] = self.episode_interventions
                episode["shield_rate"] = self.episode_interventions / self.episode_length
            info[self.stats_key] = episode
            self.return_queue.append(self.episode_return)
            self.cost_queue.append(self.episode_cost)
            self.length_queue.append(self.episode_length)
            self.violation_queue.append(self.episode_violations)
            self.time_queue.append(elapsed)
            self.episode_count += 1
            self._clear()
        return obs, reward, terminated, truncated, info


def check_budget(budget: Any) -> float:
    """Return ``budget`` as a float, or raise ``ValueError`` unless it is a finite number >= 0."""
    if isinstance(budget, bool) or not isinstance(budget, int | float | np.integer | np.floating):
        raise ValueError(f"Cost budget must be a finite number >= 0, got {budget!r} ({type(budget).__name__}).")
    value = float(budget)
    if not math.isfinite(value) or value < 0.0:
        raise ValueError(f"Cost budget must be a finite number >= 0, got {budget!r}.")
    return value


class CostBudget(gym.Wrapper[ObsType, ActType, ObsType, ActType], gym.utils.RecordConstructorArgs):
    """Track the episode cost against a budget ``d`` (the constraint of a CMDP) and optionally end the episode.

    Every step writes ``info["cost_budget"] = {"budget": d, "episode_cost": cost so far, "exceeded": cost so far
    > d}``. With ``terminate=True`` the episode terminates (``terminated=True``) on the step at which the
    cumulative cost first exceeds ``d``.

    Args:
        env: an env reporting ``info[cost_key]``.
        budget: the budget ``d`` (finite, >= 0).
        terminate: end the episode once the budget is exceeded.
        cost_key: the info key holding the step cost.

    Raises:
        ValueError: ``budget`` is not a finite number >= 0; (at ``step``) ``info["cost_budget"]`` already set.
        CostSignalError: (at ``step``) ``info[cost_key]`` is missing or invalid.

    Example:
        >>> env = CostBudget(CostWrapper(env, [fast]), budget=5.0, terminate=True)  # doctest: +SKIP
    """

    info_key = "cost_budget"

    def __init__(
        self,
        env: gym.Env[ObsType, ActType],
        budget: float,
        *,
        terminate: bool = False,
        cost_key: str = COST_KEY,
    ) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, budget=budget, terminate=terminate, cost_key=cost_key)
        gym.Wrapper.__init__(self, env)
        self.budget = check_budget(budget)
        self.terminate = bool(terminate)
        self.cost_key = cost_key
        self.episode_cost = 0.0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[ObsType, dict[str, Any]]:
        """Reset the inner env and the episode cost."""
        obs, info = self.env.reset(seed=seed, options=options)
        self.episode_cost = 0.0
        return obs, info

    def step(self, action: ActType) -> tuple[ObsType, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the inner env, add the step cost to the episode cost and report it against the budget."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.episode_cost += get_cost(info, self.cost_key)
        exceeded = self.episode_cost > self.budget
        if self.info_key in info:
            raise ValueError(f"CostBudget: info already has key {self.info_key!r} (is the env wrapped twice?).")
        info[self.info_key] = {"budget": self.budget, "episode_cost": self.episode_cost, "exceeded": exceeded}
        if exceeded and self.terminate:
            terminated = True
        return obs, reward, terminated, truncated, info
