"""Cost statistics for Stable-Baselines3: a cost-aware ``Monitor`` and a callback that logs episode cost.

* :class:`CostMonitor` - SB3's :class:`~stable_baselines3.common.monitor.Monitor` that also records the episode
  cost ``"c"`` and ``"violations"`` (and shield interventions) in ``info["episode"]`` and the monitor CSV;
* :class:`CostLoggerCallback` - logs ``rollout/ep_cost_mean``, ``rollout/ep_violations_mean`` (and
  ``rollout/shield_rate_mean``) next to SB3's ``rollout/ep_rew_mean``.

Example:
    >>> from stable_baselines3 import PPO
    >>> from stable_baselines3.common.vec_env import DummyVecEnv
    >>> venv = DummyVecEnv([lambda: CostMonitor(CostWrapper(make_env(), [fast]))] * 4)  # doctest: +SKIP
    >>> PPO("MlpPolicy", venv).learn(10_000, callback=CostLoggerCallback())  # doctest: +SKIP
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium.core import ActType, ObsType
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import Monitor, ResultsWriter

from shieldgym.costs.base import COST_KEY, get_cost

__all__ = ["CostLoggerCallback", "CostMonitor"]

#: Columns :class:`CostMonitor` adds to the monitor CSV (shield columns stay empty for envs without a shield).
COST_COLUMNS = ("c", "violations", "shield_interventions", "shield_rate")


class CostMonitor(Monitor[ObsType, ActType]):
    """SB3 ``Monitor`` that also records episode cost, violations and shield interventions.

    At the end of an episode ``info["episode"]`` holds SB3's ``r``, ``l``, ``t`` plus ``"c"`` (cost sum, rounded
    to 6 decimals like ``r``) and ``"violations"`` (steps with cost > 0), and ``"shield_interventions"`` /
    ``"shield_rate"`` when the steps carry ``info["shield"]``. The same values are written to the monitor CSV
    (``filename``), whose columns are ``r, l, t, c, violations, shield_interventions, shield_rate`` followed by
    the reset and info keywords; :func:`stable_baselines3.common.monitor.load_results` reads it.

    Args:
        env: an env reporting ``info[cost_key]``.
        filename: the monitor CSV (``None``: no file).
        allow_early_resets: as in SB3's ``Monitor``.
        reset_keywords: as in SB3's ``Monitor``.
        info_keywords: as in SB3's ``Monitor``.
        override_existing: as in SB3's ``Monitor``.
        cost_key: the info key holding the step cost.

    Raises:
        CostSignalError: (at ``step``) ``info[cost_key]`` is missing or invalid.
    """

    def __init__(
        self,
        env: gym.Env,
        filename: str | None = None,
        allow_early_resets: bool = True,
        reset_keywords: tuple[str, ...] = (),
        info_keywords: tuple[str, ...] = (),
        override_existing: bool = True,
        *,
        cost_key: str = COST_KEY,
    ) -> None:
        # The parent writes no file: its CSV would lack the cost columns; this class owns the writer.
        super().__init__(env, None, allow_early_resets, reset_keywords, info_keywords, override_existing)
        self.cost_key = cost_key
        self.cost_results_writer: ResultsWriter | None = None
        if filename is not None:
            env_id = env.spec.id if env.spec is not None else None
            self.cost_results_writer = ResultsWriter(
                filename,
                header={"t_start": self.t_start, "env_id": str(env_id)},
                extra_keys=(*COST_COLUMNS, *reset_keywords, *info_keywords),
                override_existing=override_existing,
            )
        self.episode_costs: list[float] = []
        self.episode_violations: list[int] = []
        self._clear()

    def _clear(self) -> None:
        self._cost = 0.0
        self._violations = 0
        self._interventions = 0
        self._saw_shield = False

    def reset(self, **kwargs: Any) -> tuple[ObsType, dict[str, Any]]:
        """Reset the env (see SB3's ``Monitor.reset``) and the episode cost."""
        obs, info = super().reset(**kwargs)
        self._clear()
        return obs, info

    def step(self, action: ActType) -> tuple[ObsType, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step through SB3's ``Monitor`` and add the cost statistics to ``info["episode"]`` and the CSV."""
        obs, reward, terminated, truncated, info = super().step(action)
        cost = get_cost(info, self.cost_key)
        self._cost += cost
        if cost > 0.0:
            self._violations += 1
        shield = info.get("shield")
        if shield is not None:
            self._saw_shield = True
            if shield.get("intervened"):
                self._interventions += 1
        if terminated or truncated:
            episode = info["episode"]  # written by Monitor.step
            episode["c"] = round(self._cost, 6)
            episode["violations"] = self._violations
            if self._saw_shield:
                episode["shield_interventions"] = self._interventions
                episode["shield_rate"] = self._interventions / episode["l"]
            self.episode_costs.append(self._cost)
            self.episode_violations.append(self._violations)
            if self.cost_results_writer is not None:
                self.cost_results_writer.write_row(episode)
            self._clear()
        return obs, reward, terminated, truncated, info

    def get_episode_costs(self) -> list[float]:
        """The cost sum of every finished episode."""
        return self.episode_costs

    def get_episode_violations(self) -> list[int]:
        """The number of steps with cost > 0 of every finished episode."""
        return self.episode_violations

    def close(self) -> None:
        """Close the env and the monitor file."""
        super().close()
        if self.cost_results_writer is not None:
            self.cost_results_writer.close()
            self.cost_results_writer = None


class CostLoggerCallback(BaseCallback):
    """Log the mean episode cost, violations and shield rate of the last ``stats_window_size`` episodes.

    Reads the ``"episode"`` dicts that :class:`CostMonitor` (or
    :class:`~shieldgym.wrappers.cost.CostEpisodeStatistics`) puts into the infos of an SB3 VecEnv and records

    * ``rollout/ep_cost_mean`` - mean of ``"c"``;
    * ``rollout/ep_violations_mean`` - mean of ``"violations"``;
    * ``rollout/shield_rate_mean`` - mean of ``"shield_rate"`` (only once an episode carried it); when the
      shield wraps the VecEnv itself (so the monitors inside never see ``info["shield"]``), the callback counts
      the interventions in the VecEnv's infos and uses interventions / episode length.

    The values are recorded when an episode ends and at the end of every rollout, so they appear in every log
    dump next to SB3's ``rollout/ep_rew_mean``.

    Args:
        stats_window_size: number of recent episodes averaged (SB3's default is 100).
        verbose: SB3 verbosity level.

    Example:
        >>> model = PPO("MlpPolicy", venv)  # doctest: +SKIP
        >>> model.learn(10_000, callback=CostLoggerCallback())  # doctest: +SKIP
    """

    def __init__(self, stats_window_size: int = 100, verbose: int = 0) -> None:
        super().__init__(verbose)
        if not isinstance(stats_window_size, int) or stats_window_size < 1:
            raise ValueError(f"stats_window_size must be a positive int, got {stats_window_size!r}.")
        self.cost_buffer: deque[float] = deque(maxlen=stats_window_size)
        self.violation_buffer: deque[float] = deque(maxlen=stats_window_size)
        self.shield_rate_buffer: deque[float] = deque(maxlen=stats_window_size)
        self._steps = np.zeros(0, dtype=np.int64)
        self._interventions = np.zeros(0, dtype=np.int64)

    def _on_step(self) -> bool:
        infos = self.locals.get("infos", ())
        dones = self.locals.get("dones")
        if len(self._steps) != len(infos):
            self._steps = np.zeros(len(infos), dtype=np.int64)
            self._interventions = np.zeros(len(infos), dtype=np.int64)
        new = False
        for i, info in enumerate(infos):
            # a shield around the VecEnv (VecShieldWrapper) is invisible to the monitors inside it: count here
            self._steps[i] += 1
            shield = info.get("shield")
            if isinstance(shield, Mapping) and shield.get("intervened"):
                self._interventions[i] += 1
            episode = info.get("episode")
            if isinstance(episode, Mapping) and "c" in episode:
                new = True
                self.cost_buffer.append(float(episode["c"]))
                self.violation_buffer.append(float(episode["violations"]))
                if "shield_rate" in episode:
                    self.shield_rate_buffer.append(float(episode["shield_rate"]))
                elif isinstance(shield, Mapping):
                    self.shield_rate_buffer.append(float(self._interventions[i] / self._steps[i]))
            if dones is not None and dones[i]:
                self._steps[i] = self._interventions[i] = 0
        if new:
            self._record()
        return True

    def _on_rollout_end(self) -> None:
        self._record()

    def _record(self) -> None:
        if self.cost_buffer:
            self.logger.record("rollout/ep_cost_mean", float(np.mean(self.cost_buffer)))
            self.logger.record("rollout/ep_violations_mean", float(np.mean(self.violation_buffer)))
        if self.shield_rate_buffer:
            self.logger.record("rollout/shield_rate_mean", float(np.mean(self.shield_rate_buffer)))
