"""Offline datasets with costs for CQLLag: DSRL-style dicts of arrays and Minari datasets.

:func:`load_offline_dataset` turns either source into an :class:`OfflineDataset` of aligned
transition arrays; :meth:`CQLLag.learn_offline <shieldgym.algos.cqllag.CQLLag.learn_offline>` puts
it in the replay buffer.

DSRL layout (one row per transition; ``timeouts`` optional)::

    {"observations": (n, *obs), "actions": (n, act), "rewards": (n,), "costs": (n,),
     "next_observations": (n, *obs), "terminals": (n,), "timeouts": (n,)}

Minari: each episode's per-step costs are read from ``episode.infos[cost_key]`` (``T`` or ``T + 1``
values; with ``T + 1`` the first is the reset info and is dropped).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from shieldgym._optional import require
from shieldgym.costs.base import COST_KEY
from shieldgym.errors import CostSignalError

__all__ = ["OfflineDataset", "load_offline_dataset"]

Obs = np.ndarray | dict[str, np.ndarray]
_REQUIRED = ("observations", "actions", "rewards", "costs", "next_observations", "terminals")


def _length(x: Obs) -> int:
    return len(next(iter(x.values()))) if isinstance(x, dict) else len(x)


@dataclass(frozen=True)
class OfflineDataset:
    """Aligned transition arrays (first axis = transition).

    Attributes:
        observations: ``(n, *obs_shape)`` or a dict of such arrays.
        actions: ``(n, action_dim)`` in the env's action units.
        rewards: ``(n,)``.
        costs: ``(n,)``, finite and >= 0.
        next_observations: like ``observations``.
        terminals: ``(n,)`` bool, true terminations (no bootstrap).
        timeouts: ``(n,)`` bool, time-limit truncations (bootstrap continues).
    """

    observations: Obs
    actions: np.ndarray
    rewards: np.ndarray
    costs: np.ndarray
    next_observations: Obs
    terminals: np.ndarray
    timeouts: np.ndarray

    def __post_init__(self) -> None:
        lengths = {
            "observations": _length(self.observations),
            "actions": len(self.actions),
            "rewards": len(self.rewards),
            "costs": len(self.costs),
            "next_observations": _length(self.next_observations),
            "terminals": len(self.terminals),
            "timeouts": len(self.timeouts),
        }
        if isinstance(self.observations, dict):
            lengths.update({f"observations[{k!r}]": len(v) for k, v in self.observations.items()})
        if len(set(lengths.values())) != 1:
            raise ValueError(f"Offline dataset arrays must all have the same length; got {lengths}.")
        if lengths["rewards"] == 0:
            raise ValueError("The offline dataset is empty.")
        costs = np.asarray(self.costs, dtype=np.float64)
        if not np.all(np.isfinite(costs)) or np.any(costs < 0):
            bad = int(np.flatnonzero(~np.isfinite(costs) | (costs < 0))[0])
            raise CostSignalError(f"Offline dataset cost at index {bad} is {costs[bad]}; costs must be finite and >= 0.")

    def __len__(self) -> int:
        return len(self.rewards)

    def check_spaces(self, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        """Raise ``ValueError`` if the arrays do not fit the model's spaces."""
        if isinstance(observation_space, spaces.Dict):
            if not isinstance(self.observations, dict) or set(self.observations) != set(observation_space.spaces):
                got = sorted(self.observations) if isinstance(self.observations, dict) else type(self.observations).__name__
                raise ValueError(
                    f"Dataset observations must be a dict with keys {sorted(observation_space.spaces)}, got {got}."
                )
            for key, space in observation_space.spaces.items():
                if self.observations[key].shape[1:] != space.shape:
                    raise ValueError(
                        f"Dataset observations[{key!r}] rows have shape {self.observations[key].shape[1:]}, "
                        f"expected {space.shape}."
                    )
        elif isinstance(self.observations, dict) or self.observations.shape[1:] != observation_space.shape:
            got = "a dict" if isinstance(self.observations, dict) else str(self.observations.shape[1:])
            raise ValueError(f"Dataset observation rows have shape {got}, expected {observation_space.shape}.")
        if self.actions.shape[1:] != action_space.shape:
            raise ValueError(f"Dataset action rows have shape {self.actions.shape[1:]}, expected {action_space.shape}.")


def _from_arrays(data: Mapping[str, Any]) -> OfflineDataset:
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        if "costs" in missing:
            raise CostSignalError(
                f"The offline dataset has no 'costs' array (keys: {sorted(data)}); CQLLag needs per-step costs."
            )
        raise ValueError(f"The offline dataset is missing {missing} (keys: {sorted(data)}); expected {list(_REQUIRED)}.")

    def obs(x: Any) -> Obs:
        return {k: np.asarray(v) for k, v in x.items()} if isinstance(x, Mapping) else np.asarray(x)

    n = len(np.asarray(data["rewards"]))
    return OfflineDataset(
        observations=obs(data["observations"]),
        actions=np.asarray(data["actions"], dtype=np.float32).reshape(n, -1)
        if np.ndim(data["actions"]) == 1
        else np.asarray(data["actions"], dtype=np.float32),
        rewards=np.asarray(data["rewards"], dtype=np.float32).reshape(-1),
        costs=np.asarray(data["costs"], dtype=np.float32).reshape(-1),
        next_observations=obs(data["next_observations"]),
        terminals=np.asarray(data["terminals"], dtype=bool).reshape(-1),
        timeouts=np.asarray(data.get("timeouts", np.zeros(n, dtype=bool)), dtype=bool).reshape(-1),
    )


def _slice(x: Any, sl: slice) -> Obs:
    return {k: np.asarray(v)[sl] for k, v in x.items()} if isinstance(x, Mapping) else np.asarray(x)[sl]


def _concat(parts: list[Obs]) -> Obs:
    if isinstance(parts[0], dict):
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}  # type: ignore[index]
    return np.concatenate(parts)  # type: ignore[arg-type]


def _from_minari(dataset: Any, cost_key: str) -> OfflineDataset:
    columns: dict[str, list[Any]] = {k: [] for k in (*_REQUIRED, "timeouts")}
    for episode in dataset.iterate_episodes():
        steps = len(episode.rewards)
        infos = episode.infos or {}
        if cost_key not in infos:
            raise CostSignalError(
                f"Minari episode {episode.id} has no per-step cost infos[{cost_key!r}] (info keys: {sorted(infos)}); "
                f"record the dataset from an env that reports info[{cost_key!r}] (e.g. wrapped in shieldgym.CostWrapper)."
            )
        costs = np.asarray(infos[cost_key], dtype=np.float32).reshape(-1)
        if len(costs) == steps + 1:
            costs = costs[1:]  # the first entry is the reset info
        if len(costs) != steps:
            raise ValueError(f"Minari episode {episode.id}: {len(costs)} cost values for {steps} steps.")
        columns["observations"].append(_slice(episode.observations, slice(0, steps)))
        columns["next_observations"].append(_slice(episode.observations, slice(1, steps + 1)))
        columns["actions"].append(np.asarray(episode.actions, dtype=np.float32).reshape(steps, -1))
        columns["rewards"].append(np.asarray(episode.rewards, dtype=np.float32))
        columns["costs"].append(costs)
        columns["terminals"].append(np.asarray(episode.terminations, dtype=bool))
        columns["timeouts"].append(np.asarray(episode.truncations, dtype=bool))
    if not columns["rewards"]:
        raise ValueError("The Minari dataset has no episodes.")
    return OfflineDataset(
        observations=_concat(columns["observations"]),
        actions=np.concatenate(columns["actions"]),
        rewards=np.concatenate(columns["rewards"]),
        costs=np.concatenate(columns["costs"]),
        next_observations=_concat(columns["next_observations"]),
        terminals=np.concatenate(columns["terminals"]),
        timeouts=np.concatenate(columns["timeouts"]),
    )


def load_offline_dataset(source: Mapping[str, Any] | str | Any, *, cost_key: str = COST_KEY) -> OfflineDataset:
    """Load transitions with costs from a DSRL-style dict, a Minari dataset, or a Minari dataset id.

    Args:
        source: a mapping of arrays (see the module docstring), a ``minari.MinariDataset`` or the id
            of a local Minari dataset (``minari`` is imported only here; datasets are looked up in
            ``MINARI_DATASETS_PATH``).
        cost_key: the info key holding the per-step cost in Minari episodes.

    Returns:
        An :class:`OfflineDataset`.

    Raises:
        CostSignalError: the data carries no costs, or a cost is negative/NaN.
        ValueError: arrays of different lengths, or a missing array.

    Example:
        >>> n = 4
        >>> data = load_offline_dataset(dict(observations=np.zeros((n, 3)), actions=np.zeros((n, 1)),
        ...     rewards=np.ones(n), costs=np.zeros(n), next_observations=np.zeros((n, 3)), terminals=np.zeros(n)))
        >>> len(data)
        4
    """
    if isinstance(source, OfflineDataset):
        return source
    if isinstance(source, Mapping):
        return _from_arrays(source)
    if isinstance(source, str):
        minari = require("minari", "offline datasets")
        return _from_minari(minari.load_dataset(source), cost_key)
    if hasattr(source, "iterate_episodes"):
        return _from_minari(source, cost_key)
    raise TypeError(f"load_offline_dataset expects a dict of arrays, a Minari dataset or its id, got {type(source).__name__}.")
