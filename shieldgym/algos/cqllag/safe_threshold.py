"""Choose ``safe_predict``'s cost threshold from rollouts, against the per-episode cost limit.

``safe_predict`` keeps the candidate actions whose cost-critic value ``Q_c(s, a)`` is at most a threshold
``epsilon``. Its default, ``cost_limit_discounted``, is the limit on the critic's discounted scale, which is only
right if the critic is calibrated. A cost critic trained on the replay of a noisy training policy usually over-reads
the cost of the deterministic policy's states, so that default is often more cautious than the limit requires
(and a critic that under-reads would make it too lax).

:func:`tune_safe_threshold` measures instead: it plays ``n_episodes`` episodes with ``safe_predict`` at each candidate
threshold and keeps the one with the highest mean return whose mean episode cost is within the limit. Use tuning
episodes (reset seeds) other than the ones the policy is evaluated on, so the evaluation stays honest.

Example:
    >>> record = model.tune_safe_threshold(env, thresholds=[5, 7.5, 10, 15], n_episodes=10, seed=20_000)
    >>> record.threshold          # now the default of model.safe_predict (saved with the model)
    >>> print(record.table())
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.utils import check_for_correct_spaces
from stable_baselines3.common.vec_env import VecEnv

from shieldgym.costs.base import COST_KEY
from shieldgym.evaluation import rollout, summarize

__all__ = ["SafeThresholdTuning", "ThresholdResult", "tune_safe_threshold"]


@dataclass(frozen=True)
class ThresholdResult:
    """The tuning episodes of one candidate threshold.

    Attributes:
        threshold: the candidate ``epsilon``.
        ret_mean, ret_std: mean and standard deviation of the episode return.
        cost_mean, cost_std: mean and standard deviation of the episode cost.
        within_limit: ``cost_mean <= cost_limit``.
    """

    threshold: float
    ret_mean: float
    ret_std: float
    cost_mean: float
    cost_std: float
    within_limit: bool


@dataclass(frozen=True)
class SafeThresholdTuning:
    """Result of :func:`tune_safe_threshold`.

    Attributes:
        threshold: the chosen ``epsilon``: the best mean return within the limit (ties: the lower threshold); if no
            candidate is within the limit, the one with the lowest mean cost (and ``feasible`` is False).
        feasible: whether the chosen threshold's tuning episodes met the limit.
        cost_limit: the per-episode cost limit the episodes were held to.
        n_episodes: tuning episodes per candidate (reset seeds ``seed .. seed + n_episodes - 1``).
        n_samples: ``safe_predict``'s candidate actions per step.
        seed: the first reset seed (also seeds the candidate sampling).
        results: one :class:`ThresholdResult` per candidate, in ascending threshold order.
    """

    threshold: float
    feasible: bool
    cost_limit: float
    n_episodes: int
    n_samples: int
    seed: int
    results: tuple[ThresholdResult, ...]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        """The per-threshold results as a Markdown table (the chosen row marked)."""
        rows = [
            "| threshold | return | cost | within limit |",
            "|---|---|---|---|",
        ]
        for r in self.results:
            mark = " (chosen)" if r.threshold == self.threshold else ""
            rows.append(
                f"| {r.threshold:g}{mark} | {r.ret_mean:.2f} ± {r.ret_std:.2f} | {r.cost_mean:.2f} ± {r.cost_std:.2f} "
                f"| {'yes' if r.within_limit else 'no'} |"
            )
        return "\n".join(rows)


def _check_thresholds(thresholds: Sequence[float]) -> list[float]:
    try:
        values = [float(t) for t in thresholds]
    except (TypeError, ValueError):
        raise ValueError(f"thresholds must be a sequence of numbers, got {thresholds!r}.") from None
    if not values:
        raise ValueError("thresholds is empty: give at least one candidate threshold.")
    bad = [t for t in values if not math.isfinite(t)]
    if bad:
        raise ValueError(f"thresholds must be finite, got {bad}.")
    if len(set(values)) != len(values):
        raise ValueError(f"thresholds has repeated values: {values}.")
    return sorted(values)


def tune_safe_threshold(
    model: Any,
    env: gym.Env,
    thresholds: Sequence[float],
    *,
    n_episodes: int = 10,
    cost_limit: float | None = None,
    n_samples: int = 16,
    seed: int = 0,
    cost_key: str | None = None,
    progress_bar: bool = False,
) -> SafeThresholdTuning:
    """Play ``safe_predict`` at each candidate threshold and keep the best one within the cost limit.

    Every candidate plays the same episodes (reset seeds ``seed + i``) with the same per-step candidate draws, so
    the comparison between thresholds is paired.

    Args:
        model: a :class:`~shieldgym.CQLLag` (anything with ``safe_predict(obs, n_samples, threshold, seed)``).
        env: one Gymnasium env (not a VecEnv) with the model's spaces, reporting ``info[cost_key]``; its episodes
            must end (a time limit).
        thresholds: candidate ``epsilon`` values on the critic's discounted-cost scale.
        n_episodes: tuning episodes per candidate (>= 1).
        cost_limit: the per-episode cost limit; default ``model.cost_limit``.
        n_samples: ``safe_predict``'s candidate actions per step (>= 1).
        seed: the first reset seed; use other seeds than the evaluation's.
        cost_key: info key of the step cost; default ``model.cost_key`` (or ``"cost"``).
        progress_bar: show a progress bar over each candidate's episodes.

    Returns:
        A :class:`SafeThresholdTuning` record.

    Raises:
        TypeError: ``env`` is a VecEnv.
        ValueError: bad ``thresholds``, ``n_episodes``, ``n_samples`` or ``cost_limit``, or spaces that differ from
            the model's (SB3's ``check_for_correct_spaces``).
        CostSignalError: the env does not report ``info[cost_key]`` (raised at the first step).
    """
    if isinstance(env, VecEnv):
        raise TypeError("tune_safe_threshold plays one env: pass a gymnasium.Env, not a VecEnv.")
    values = _check_thresholds(thresholds)
    if isinstance(n_episodes, bool) or not isinstance(n_episodes, (int, np.integer)) or n_episodes < 1:
        raise ValueError(f"n_episodes must be an integer >= 1, got {n_episodes!r}.")
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
        raise ValueError(f"n_samples must be an integer >= 1, got {n_samples!r}.")
    limit = float(getattr(model, "cost_limit", math.nan) if cost_limit is None else cost_limit)
    if not math.isfinite(limit) or limit < 0.0:
        raise ValueError(f"cost_limit must be a finite number >= 0, got {cost_limit!r} (model: {limit!r}).")
    if getattr(model, "observation_space", None) is not None and getattr(model, "action_space", None) is not None:
        check_for_correct_spaces(env, model.observation_space, model.action_space)
    key = str(cost_key or getattr(model, "cost_key", None) or COST_KEY)

    results = []
    for threshold in values:
        rng = np.random.default_rng(seed)  # the same candidate draws for every threshold

        def policy(obs: Any, threshold: float = threshold, rng: np.random.Generator = rng) -> np.ndarray:
            draw = int(rng.integers(2**31 - 1))
            return model.safe_predict(obs, n_samples=int(n_samples), threshold=threshold, seed=draw)

        records = rollout(
            env, policy, int(n_episodes), seed, cost_key=key, progress=progress_bar, desc=f"threshold {threshold:g}"
        )
        s = summarize(records)
        results.append(ThresholdResult(threshold, s.ret_mean, s.ret_std, s.cost_mean, s.cost_std, s.cost_mean <= limit))

    within = [r for r in results if r.within_limit]
    if within:
        best = max(within, key=lambda r: (r.ret_mean, -r.threshold))
    else:
        best = min(results, key=lambda r: (r.cost_mean, r.threshold))
        warnings.warn(
            f"tune_safe_threshold: no candidate threshold kept the mean episode cost within {limit:g} (lowest: "
            f"{best.cost_mean:.3g} at {best.threshold:g}); keeping that one. Try lower thresholds.",
            stacklevel=2,
        )
    return SafeThresholdTuning(
        threshold=best.threshold,
        feasible=bool(within),
        cost_limit=limit,
        n_episodes=int(n_episodes),
        n_samples=int(n_samples),
        seed=int(seed),
        results=tuple(results),
    )
