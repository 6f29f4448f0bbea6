"""Choose the shield threshold from labelled transitions so that few unsafe actions pass.

The shield passes an action when ``risk(s, a) <= epsilon``. Given transitions labelled unsafe or
safe, we want the *miss rate* ``P(risk(S, A) <= epsilon | unsafe)`` to be at most ``alpha``
(``target_rate``).

Split conformal (Vovk et al., 2005; Angelopoulos & Bates, 2021, "A Gentle Introduction to Conformal
Prediction", sec. 1): split the data into a calibration part and a held-out part. Let
``s_(1) <= ... <= s_(n)`` be the sorted risks of the ``n`` unsafe calibration examples and

    k = floor(alpha * (n + 1)),    epsilon = s_(k).

For a new unsafe example exchangeable with them, its score's rank among the ``n + 1`` scores is
uniform, so ``P(S_new <= s_(k)) = k / (n + 1) <= alpha`` (exactly, without ties; ties are broken
towards a lower threshold). ``k = 0`` (``n < 1/alpha - 1``) admits no threshold with that guarantee,
so that case is an error. The guarantee is marginal: the miss rate of one calibration draw is
``Beta(k, n + 1 - k)`` distributed, standard deviation about ``sqrt(alpha (1 - alpha) / n)``.

``method="empirical"`` uses ``k = floor(alpha * n)`` (the plain empirical quantile, no correction).

The held-out part reports the achieved miss rate and the fraction of safe actions that pass (the
shield's cost in task performance).

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> obs = rng.uniform(-1, 1, (4000, 1)); act = rng.uniform(-1, 1, (4000, 1))
    >>> unsafe = np.abs(obs[:, 0] + act[:, 0]) > 1.0
    >>> cal = calibrate_threshold(lambda o, a: np.abs(o[:, 0] + a[:, 0]), (obs, act, unsafe), 0.05, seed=0)
    >>> cal.achieved_rate_heldout <= 0.08
    True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from shieldgym.critics.protocol import as_critic

__all__ = ["Calibration", "calibrate_threshold", "critic_scores"]


@dataclass(frozen=True)
class Calibration:
    """Result of :func:`calibrate_threshold` (usable directly as ``ShieldWrapper(..., threshold=record)``).

    Attributes:
        threshold: the chosen ``epsilon`` (veto when ``risk > epsilon``).
        target_rate: the requested bound ``alpha`` on the fraction of unsafe actions passed.
        method: ``"conformal"`` or ``"empirical"``.
        expected_rate: ``k / (n + 1)``, the conformal bound on the expected miss rate.
        achieved_rate_calibration: fraction of unsafe calibration examples with ``risk <= threshold``.
        achieved_rate_heldout: the same on the held-out part (NaN when it has no unsafe example).
        safe_pass_rate_heldout: fraction of safe held-out examples that pass (NaN when none).
        n: total number of transitions.
        n_unsafe_calibration: unsafe examples used to choose the threshold.
        n_heldout: transitions in the held-out part.
        n_unsafe_heldout: unsafe examples in the held-out part.
    """

    threshold: float
    target_rate: float
    method: str
    expected_rate: float
    achieved_rate_calibration: float
    achieved_rate_heldout: float
    safe_pass_rate_heldout: float
    n: int
    n_unsafe_calibration: int
    n_heldout: int
    n_unsafe_heldout: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _parts(transitions: Any) -> tuple[Any, np.ndarray, np.ndarray]:
    if isinstance(transitions, Mapping):
        missing = [k for k in ("obs", "actions", "unsafe") if k not in transitions]
        if missing:
            raise ValueError(f"transitions needs keys 'obs', 'actions', 'unsafe'; missing {missing}.")
        obs, actions, unsafe = transitions["obs"], transitions["actions"], transitions["unsafe"]
    else:
        try:
            obs, actions, unsafe = transitions
        except (TypeError, ValueError):
            raise ValueError(
                "transitions must be a dict with 'obs', 'actions', 'unsafe' or a tuple (obs, actions, unsafe)."
            ) from None
    return obs, np.asarray(actions), np.asarray(unsafe).astype(bool).reshape(-1)


def _take(obs: Any, idx: np.ndarray) -> Any:
    if isinstance(obs, Mapping):
        return {k: np.asarray(v)[idx] for k, v in obs.items()}
    return np.asarray(obs)[idx]


def critic_scores(critic: Any, obs: Any, actions: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """The critic's risk for every (obs, action) pair, in batches, as float64 ``(N,)``.

    Raises:
        ValueError: the critic returns a wrong shape or non-finite values.
    """
    fn = as_critic(critic)
    n = len(actions)
    out = np.empty(n)
    for start in range(0, n, batch_size):
        idx = np.arange(start, min(start + batch_size, n))
        r = np.asarray(fn(_take(obs, idx), actions[idx]), dtype=np.float64)
        if r.shape != (idx.size,):
            raise ValueError(f"critic returned shape {r.shape} for a batch of {idx.size}, expected ({idx.size},).")
        out[idx] = r
    if not np.isfinite(out).all():
        raise ValueError(f"critic returned {int((~np.isfinite(out)).sum())} non-finite risks on the calibration data.")
    return out


def calibrate_threshold(
    critic: Any,
    transitions: Any,
    target_rate: float,
    *,
    method: Literal["conformal", "empirical"] = "conformal",
    heldout_fraction: float = 0.5,
    seed: int = 0,
) -> Calibration:
    """Choose ``epsilon`` so that at most ``target_rate`` of unsafe actions pass the shield.

    Args:
        critic: anything :func:`~shieldgym.critics.protocol.as_critic` accepts.
        transitions: ``{"obs", "actions", "unsafe"}`` (or a tuple in that order): observations
            ``(N, ...)`` (or a dict of arrays), actions ``(N, ...)``, and bool labels ``(N,)``, True
            where the action is unsafe (e.g. a cost followed within a short horizon).
        target_rate: ``alpha`` in ``(0, 1)``.
        method: ``"conformal"`` (finite-sample corrected) or ``"empirical"``.
        heldout_fraction: fraction of transitions kept out of calibration to report the achieved rate
            (0 keeps none; the held-out rates are then NaN).
        seed: seed of the random split.

    Returns:
        A :class:`Calibration` record.

    Raises:
        ValueError: bad ``target_rate``/``method``/``heldout_fraction``, too few unsafe calibration
            examples for ``target_rate``, or a negative threshold (the critic scores unsafe examples
            below zero; shift the critic's output).
    """
    if not 0.0 < target_rate < 1.0:
        raise ValueError(f"target_rate must be in (0, 1), got {target_rate!r}.")
    if method not in ("conformal", "empirical"):
        raise ValueError(f"method must be 'conformal' or 'empirical', got {method!r}.")
    if not 0.0 <= heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must be in [0, 1), got {heldout_fraction!r}.")
    obs, actions, unsafe = _parts(transitions)
    n_total = len(unsafe)
    if len(actions) != n_total:
        raise ValueError(f"actions ({len(actions)}) and unsafe labels ({n_total}) differ in length.")
    scores = critic_scores(critic, obs, actions)
    perm = np.random.default_rng(seed).permutation(n_total)
    n_held = round(heldout_fraction * n_total)
    held, cal = perm[:n_held], perm[n_held:]

    s = np.sort(scores[cal][unsafe[cal]])
    n = s.size
    k = math.floor(target_rate * (n + 1)) if method == "conformal" else math.floor(target_rate * n)
    if k < 1:
        need = math.ceil(1.0 / target_rate) - 1 if method == "conformal" else math.ceil(1.0 / target_rate)
        raise ValueError(
            f"{n} unsafe calibration examples are too few for target_rate={target_rate}: the {method} threshold needs at "
            f"least {need}. Collect more unsafe transitions or raise target_rate."
        )
    threshold = float(s[k - 1])
    if k < n and s[k] == s[k - 1]:  # ties: step below so that at most k calibration scores pass
        threshold = float(np.nextafter(s[k - 1], -np.inf))
    if threshold < 0.0:
        raise ValueError(
            f"the calibrated threshold is {threshold:.4g} < 0: the critic scores unsafe examples below zero. The shield "
            "needs a non-negative threshold; use a critic whose risk is >= 0 (e.g. a cost critic) or shift its output."
        )

    def rate(mask: np.ndarray) -> float:
        return float(np.mean(scores[mask] <= threshold)) if mask.any() else float("nan")

    held_unsafe = np.zeros(n_total, dtype=bool)
    held_safe = np.zeros(n_total, dtype=bool)
    held_unsafe[held] = unsafe[held]
    held_safe[held] = ~unsafe[held]
    return Calibration(
        threshold=threshold,
        target_rate=float(target_rate),
        method=method,
        expected_rate=k / (n + 1) if method == "conformal" else k / n,
        achieved_rate_calibration=float(np.mean(s <= threshold)),
        achieved_rate_heldout=rate(held_unsafe),
        safe_pass_rate_heldout=rate(held_safe),
        n=n_total,
        n_unsafe_calibration=n,
        n_heldout=n_held,
        n_unsafe_heldout=int(held_unsafe.sum()),
    )
