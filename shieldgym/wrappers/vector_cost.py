"""Vector versions of the cost wrappers for :class:`gymnasium.vector.VectorEnv`.

Per-step costs come from the sub-envs: wrap each one in :class:`~shieldgym.wrappers.cost.CostWrapper` inside the
vector env's env functions (``gym.vector.SyncVectorEnv([lambda: CostWrapper(make_env(), terms)] * n)`` or
:func:`shieldgym.make_vec`). The vector env then reports ``infos["cost"]`` as an array of shape ``(num_envs,)``
with the boolean mask ``infos["_cost"]`` (Gymnasium's convention for per-env info).

* :class:`VectorCostEpisodeStatistics` - ``infos["episode"]`` with arrays ``r, c, l, t, violations`` (and shield
  counts) for the sub-envs whose episode ended, masked by ``infos["_episode"]``;
* :class:`VectorCostBudget` - ``infos["cost_budget"]`` with per-env budget, episode cost and ``exceeded``.

Both honour the vector env's ``metadata["autoreset_mode"]``: under ``NEXT_STEP`` a sub-env that is being reset
in this call is skipped (no transition happened); under ``SAME_STEP`` the last step of a finished episode is read
from ``infos["final_info"]``; under ``DISABLED`` every sub-env steps and the caller resets with
``options={"reset_mask": mask}``. The numbers equal those of the single-env wrappers applied to every sub-env.
"""

from __future__ import annotations

import time
from collections import deque
from copy import deepcopy
from typing import Any

import numpy as np
from gymnasium.core import ActType, ObsType
from gymnasium.logger import warn
from gymnasium.vector.utils import iterate
from gymnasium.vector.vector_env import ArrayType, AutoresetMode, VectorEnv, VectorWrapper

from shieldgym.costs.base import COST_KEY
from shieldgym.errors import CostSignalError
from shieldgym.wrappers.cost import check_budget

__all__ = ["VectorCostBudget", "VectorCostEpisodeStatistics"]

VectorStep = tuple[ObsType, ArrayType, ArrayType, ArrayType, dict[str, Any]]


class _VectorCostTracker(VectorWrapper):
    """Shared bookkeeping: which sub-envs stepped this call, and the cost (and shield flag) of each transition."""

    def __init__(self, env: VectorEnv, cost_key: str) -> None:
        super().__init__(env)
        if not isinstance(cost_key, str) or not cost_key:
            raise ValueError(f"cost_key must be a non-empty string, got {cost_key!r}.")
        self.cost_key = cost_key
        mode = self.env.metadata.get("autoreset_mode")
        if mode is None:
            warn(f"{self.env} has no 'autoreset_mode' in its metadata; {type(self).__name__} assumes AutoresetMode.NEXT_STEP.")
            mode = AutoresetMode.NEXT_STEP
        if not isinstance(mode, AutoresetMode):
            raise ValueError(f"metadata['autoreset_mode'] must be a gymnasium AutoresetMode, got {mode!r}.")
        self.autoreset_mode: AutoresetMode = mode
        self._all = np.ones(self.num_envs, dtype=np.bool_)
        self._prev_dones = np.zeros(self.num_envs, dtype=np.bool_)

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None) -> tuple[ObsType, dict]:
        """Reset the vector env (all sub-envs, or those in ``options["reset_mask"]``) and their statistics."""
        mask = self._all
        if options is not None and "reset_mask" in options:
            mask = np.asarray(options["reset_mask"], dtype=np.bool_)
            if mask.shape != (self.num_envs,):
                raise ValueError(f"options['reset_mask'] must have shape ({self.num_envs},), got {mask.shape}.")
            options = dict(options)  # the vector env pops the mask; leave the caller's dict alone
        obs, infos = super().reset(seed=seed, options=options)  # type: ignore[var-annotated]
        self._prev_dones[mask] = False
        self._on_reset(mask)
        return obs, infos

    def _on_reset(self, mask: np.ndarray) -> None:
        raise NotImplementedError

    def _stepped(self) -> np.ndarray:
        """Sub-envs that take a real transition in this call (not an autoreset step)."""
        return ~self._prev_dones if self.autoreset_mode == AutoresetMode.NEXT_STEP else self._all

    def _sources(self, infos: dict[str, Any], stepped: np.ndarray, dones: np.ndarray) -> list[tuple[np.ndarray, dict]]:
        """Pairs (sub-envs, info dict holding their step info)."""
        if self.autoreset_mode == AutoresetMode.SAME_STEP and dones.any():
            return [(stepped & ~dones, infos), (dones, infos.get("final_info", {}))]
        return [(stepped, infos)]

    def _costs(self, sources: list[tuple[np.ndarray, dict]]) -> np.ndarray:
        """The validated cost of every transition (0 for sub-envs that did not step)."""
        key = self.cost_key
        costs = np.zeros(self.num_envs)
        for need, src in sources:
            if not need.any():
                continue
            values, present = src.get(key), src.get(f"_{key}")
            if values is None or present is None or not np.all(present[need]):
                missing = np.flatnonzero(need) if present is None else np.flatnonzero(need & ~np.asarray(present))
                raise CostSignalError(
                    f"Sub-envs {missing.tolist()} report no info[{key!r}] (info keys: {sorted(src)}). Wrap each sub-env "
                    f"with shieldgym.CostWrapper in the vector env's env functions, or pass the key your envs use."
                )
            values = np.asarray(values)
            if values.dtype.kind not in "biuf":
                raise CostSignalError(f"infos[{key!r}] must be a numeric array, got dtype {values.dtype}.")
            costs[need] = values[need]
        bad = ~np.isfinite(costs) | (costs < 0.0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise CostSignalError(f"Cost {key!r} of sub-env {i} is {costs[i]}; costs must be finite and >= 0.")
        return costs

    def _step(self, actions: ActType) -> tuple[VectorStep, np.ndarray, np.ndarray, list[tuple[np.ndarray, dict]]]:
        step = self.env.step(actions)
        stepped = self._stepped()
        dones = np.logical_or(step[2], step[3])
        return step, stepped, dones, self._sources(step[4], stepped, dones)


def _shield_flags(
    infos: dict[str, Any], sources: list[tuple[np.ndarray, dict]], num_envs: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(present, intervened)``: which transitions carry ``info["shield"]`` and whether the shield intervened.

    The top-level ``infos`` is read for every sub-env first, then each source overrides it where it has a value:
    a shield inside the sub-envs reports a finished ``SAME_STEP`` episode's last step in ``final_info``, while a
    vector shield around the vector env reports it at the top level.
    """
    present = np.zeros(num_envs, dtype=np.bool_)
    intervened = np.zeros(num_envs, dtype=np.bool_)
    stepped = np.logical_or.reduce([need for need, _ in sources])
    for need, src in [(stepped, infos), *sources]:
        shield = src.get("shield")
        if not isinstance(shield, dict) or "intervened" not in shield:
            continue
        mask = need & np.asarray(src.get("_shield", need), dtype=np.bool_)
        mask &= np.asarray(shield.get("_intervened", mask), dtype=np.bool_)
        present |= mask
        intervened[mask] = np.asarray(shield["intervened"], dtype=np.bool_)[mask]
    return present, intervened


class VectorCostEpisodeStatistics(_VectorCostTracker):
    """Episode return, cost, length, time and violations for every sub-env of a vector env.

    When one or more sub-episodes end, ``infos["episode"]`` holds arrays of shape ``(num_envs,)``::

        {"r": returns, "c": cost sums, "l": lengths, "t": seconds, "violations": steps with cost > 0}

    (zero for sub-envs that did not finish) and ``infos["_episode"]`` marks the finished ones. When the finished
    episodes carried ``info["shield"]``, ``"shield_interventions"`` and ``"shield_rate"`` are added. Finished
    episodes are appended, in sub-env order, to :attr:`return_queue`, :attr:`cost_queue`, :attr:`length_queue`,
    :attr:`violation_queue` and :attr:`time_queue`.

    Args:
        env: a vector env whose sub-envs report ``info[cost_key]``.
        buffer_length: size of the queues.
        cost_key: the info key holding the step cost.
        stats_key: the info key the episode dict is written to.

    Raises:
        CostSignalError: (at ``step``) a sub-env that stepped reports no valid ``info[cost_key]``.
        ValueError: (at ``step``) ``infos[stats_key]`` is already set by an inner wrapper.

    Example:
        >>> envs = gym.vector.SyncVectorEnv([lambda: CostWrapper(make_env(), [fast])] * 4)  # doctest: +SKIP
        >>> envs = VectorCostEpisodeStatistics(envs)  # doctest: +SKIP
        >>> ...  # doctest: +SKIP
        >>> infos["episode"]["c"][infos["_episode"]]  # cost of each finished episode  # doctest: +SKIP
    """

    def __init__(
        self, env: VectorEnv, buffer_length: int = 100, cost_key: str = COST_KEY, *, stats_key: str = "episode"
    ) -> None:
        super().__init__(env, cost_key)
        if not isinstance(buffer_length, int) or buffer_length < 1:
            raise ValueError(f"buffer_length must be a positive int, got {buffer_length!r}.")
        self.stats_key = stats_key
        n = self.num_envs
        self.episode_count = 0
        self.episode_start_times = np.full(n, time.perf_counter())
        self.episode_returns = np.zeros(n)
        self.episode_costs = np.zeros(n)
        self.episode_lengths = np.zeros(n, dtype=np.int64)
        self.episode_violations = np.zeros(n, dtype=np.int64)
        self.episode_interventions = np.zeros(n, dtype=np.int64)
        self._saw_shield = np.zeros(n, dtype=np.bool_)
        self.return_queue: deque[float] = deque(maxlen=buffer_length)
        self.cost_queue: deque[float] = deque(maxlen=buffer_length)
        self.length_queue: deque[int] = deque(maxlen=buffer_length)
        self.violation_queue: deque[int] = deque(maxlen=buffer_length)
        self.time_queue: deque[float] = deque(maxlen=buffer_length)

    def _on_reset(self, mask: np.ndarray) -> None:
        self.episode_start_times[mask] = time.perf_counter()
        for stat in (self.episode_returns, self.episode_costs, self.episode_lengths, self.episode_violations):
            stat[mask] = 0
        self.episode_interventions[mask] = 0
        self._saw_shield[mask] = False

    def step(self, actions: ActType) -> VectorStep:
        """Step the vector env and accumulate; report finished episodes in ``infos["episode"]``."""
        (obs, rewards, terminations, truncations, infos), stepped, dones, sources = self._step(actions)
        if self.autoreset_mode == AutoresetMode.NEXT_STEP and self._prev_dones.any():
            self._on_reset(self._prev_dones)  # these sub-envs were reset in this call
        costs = self._costs(sources)
        present, intervened = _shield_flags(infos, sources, self.num_envs)

        self.episode_returns[stepped] += np.asarray(rewards, dtype=np.float64)[stepped]
        self.episode_costs[stepped] += costs[stepped]
        self.episode_lengths[stepped] += 1
        self.episode_violations[stepped & (costs > 0.0)] += 1
        self._saw_shield |= present
        self.episode_interventions[present & intervened] += 1

        if dones.any():
            key = self.stats_key
            if key in infos or f"_{key}" in infos:
                raise ValueError(f"VectorCostEpisodeStatistics: infos already has key {key!r}; pass another stats_key.")
            elapsed = np.round(time.perf_counter() - self.episode_start_times, 6)
            lengths = np.maximum(self.episode_lengths, 1)
            episode: dict[str, np.ndarray] = {
                "r": np.where(dones, self.episode_returns, 0.0),
                "c": np.where(dones, self.episode_costs, 0.0),
                "l": np.where(dones, self.episode_lengths, 0),
                "t": np.where(dones, elapsed, 0.0),
                "violations": np.where(dones, self.episode_violations, 0),
            }
            shielded = dones & self._saw_shield
            if shielded.any():
                episode["shield_interventions"] = np.where(shielded, self.episode_interventions, 0)
                episode["shield_rate"] = np.where(shielded, self.episode_interventions / lengths, 0.0)
            infos[key] = episode
            infos[f"_{key}"] = dones.copy()
            for i in np.flatnonzero(dones):
                self.return_queue.append(float(self.episode_returns[i]))
                self.cost_queue.append(float(self.episode_costs[i]))
                self.length_queue.append(int(self.episode_lengths[i]))
                self.violation_queue.append(int(self.episode_violations[i]))
                self.time_queue.append(float(elapsed[i]))
            self.episode_count += int(dones.sum())
            self._on_reset(dones)
        self._prev_dones = dones
        return obs, rewards, terminations, truncations, infos


def _select(infos: dict[str, Any], mask: np.ndarray) -> dict[str, Any]:
    """The entries of the sub-envs in ``mask`` from a vector info dict (copied, Gymnasium's ``_key`` layout)."""
    out: dict[str, Any] = {}
    for key, value in infos.items():
        present = infos.get(f"_{key}")
        if key.startswith("_") or key in _FINAL_KEYS or present is None:
            continue
        chosen = np.asarray(present, dtype=np.bool_) & mask
        if chosen.any():
            out[key] = _select(value, chosen) if isinstance(value, dict) else np.array(value, copy=True)
            out[f"_{key}"] = chosen
    return out


def _merge(dst: dict[str, Any], src: dict[str, Any]) -> dict[str, Any]:
    """Write the masked entries of ``src`` into ``dst`` (both Gymnasium vector info dicts); returns ``dst``."""
    for key, value in src.items():
        if key.startswith("_"):
            continue
        mask = src[f"_{key}"]
        if isinstance(value, dict):
            dst[key] = _merge(dst.get(key, {}), value)
        elif key not in dst:
            dst[key] = value
        else:
            target = np.asarray(dst[key])
            if target.shape[1:] != value.shape[1:]:
                target = target.astype(object)
            elif np.result_type(target, value) != target.dtype:
                target = target.astype(np.result_type(target, value))
            target[mask] = value[mask]
            dst[key] = target
        dst[f"_{key}"] = np.logical_or(dst.get(f"_{key}", False), mask)
    return dst


def _drop(infos: dict[str, Any], mask: np.ndarray) -> None:
    """Mark the sub-envs in ``mask`` as absent from every entry of a vector info dict (except final_obs/final_info)."""
    for key, value in infos.items():
        if key.startswith("_") or key in _FINAL_KEYS or f"_{key}" not in infos:
            continue
        infos[f"_{key}"] = infos[f"_{key}"] & ~mask
        if isinstance(value, dict):
            _drop(value, mask)


_FINAL_KEYS = ("final_obs", "final_info")


class VectorCostBudget(_VectorCostTracker):
    """Track each sub-env's episode cost against a budget ``d``.

    Every step writes ``infos["cost_budget"] = {"budget": (n,), "episode_cost": (n,), "exceeded": (n,) bool}``
    with ``infos["_cost_budget"]`` marking the sub-envs that took a transition in this call.

    ``terminate=True`` ends a sub-episode (``terminations[i] = True``) on the step its cumulative cost first
    exceeds ``d``. Under ``SAME_STEP`` the wrapper then resets that sub-env itself (``options={"reset_mask": ...}``)
    and moves its last observation and step info into ``infos["final_obs"]`` / ``infos["final_info"]``, exactly as
    the vector env does for episodes that end on their own. Under ``DISABLED`` the caller resets it, as usual.
    Under ``NEXT_STEP`` the vector env would step such a sub-env once more before resetting it, so the wrapper
    refuses ``terminate=True``: put :class:`~shieldgym.wrappers.cost.CostBudget` with ``terminate=True`` inside
    the env functions instead (that works under every mode).

    Args:
        env: a vector env whose sub-envs report ``info[cost_key]``.
        budget: the budget ``d`` (finite, >= 0).
        terminate: terminate a sub-episode on the step its cumulative cost first exceeds ``d``.
        cost_key: the info key holding the step cost.

    Raises:
        ValueError: bad ``budget``; ``terminate=True`` with ``AutoresetMode.NEXT_STEP``.
        CostSignalError: (at ``step``) a sub-env that stepped reports no valid ``info[cost_key]``.
    """

    info_key = "cost_budget"

    def __init__(self, env: VectorEnv, budget: float, *, terminate: bool = False, cost_key: str = COST_KEY) -> None:
        super().__init__(env, cost_key)
        self.budget = check_budget(budget)
        self.terminate = bool(terminate)
        if self.terminate and self.autoreset_mode == AutoresetMode.NEXT_STEP:
            raise ValueError(
                f"VectorCostBudget(terminate=True) needs autoreset_mode SAME_STEP or DISABLED, but the vector env uses "
                f"{self.autoreset_mode}, which would step a sub-env once more before resetting it. Put "
                f"CostBudget(env, {self.budget}, terminate=True) inside the env functions instead."
            )
        self.episode_costs = np.zeros(self.num_envs)
        self._budgets = np.full(self.num_envs, self.budget)

    def _on_reset(self, mask: np.ndarray) -> None:
        self.episode_costs[mask] = 0.0

    def step(self, actions: ActType) -> VectorStep:
        """Step the vector env and report every sub-env's episode cost against the budget."""
        (obs, rewards, terminations, truncations, infos), stepped, dones, sources = self._step(actions)
        if self.autoreset_mode == AutoresetMode.NEXT_STEP and self._prev_dones.any():
            self._on_reset(self._prev_dones)
        costs = self._costs(sources)
        self.episode_costs[stepped] += costs[stepped]
        exceeded = stepped & (self.episode_costs > self.budget)
        if self.info_key in infos or f"_{self.info_key}" in infos:
            raise ValueError(f"VectorCostBudget: infos already has key {self.info_key!r} (is the env wrapped twice?).")
        budget_info = {"budget": self._budgets.copy(), "episode_cost": self.episode_costs.copy(), "exceeded": exceeded}
        if self.terminate and exceeded.any():
            ended = exceeded & ~dones  # episodes the vector env does not already end itself
            terminations = np.logical_or(terminations, exceeded)
            dones = dones | exceeded
            if self.autoreset_mode == AutoresetMode.SAME_STEP and ended.any():
                obs = self._reset_now(obs, infos, ended)
        infos[self.info_key] = budget_info
        infos[f"_{self.info_key}"] = stepped.copy()
        self._on_reset(dones)
        self._prev_dones = dones
        return obs, rewards, terminations, truncations, infos

    def _reset_now(self, obs: Any, infos: dict[str, Any], ended: np.ndarray) -> Any:
        """SAME_STEP: reset the sub-envs in ``ended``; their last obs and info go to final_obs / final_info."""
        last_obs = [deepcopy(o) if e else None for o, e in zip(iterate(self.single_observation_space, obs), ended)]
        last_info = _select(infos, ended)
        new_obs, reset_infos = self.env.reset(options={"reset_mask": ended.copy()})
        final_obs = infos.get("final_obs")
        if final_obs is None:
            final_obs = np.full(self.num_envs, None, dtype=object)
        for i in np.flatnonzero(ended):
            final_obs[i] = last_obs[i]
        infos["final_obs"] = final_obs
        infos["_final_obs"] = np.logical_or(infos.get("_final_obs", False), ended)
        infos["final_info"] = _merge(infos.get("final_info", {}), last_info)
        infos["_final_info"] = np.logical_or(infos.get("_final_info", False), ended)
        _drop(infos, ended)
        _merge(infos, reset_infos)
        return new_obs
