"""The min-risk backup: score K candidate actions (always including the brake action) with the critic.

Candidates for a ``Box`` space are the brake action, the proposed action shrunk towards the brake
action by each factor in ``shrink`` (``brake + s * (proposed - brake)``, which keeps most of the
task progress when only the magnitude was risky), and uniform samples from the action space (drawn
from a seeded ``np.random.Generator``). For a ``Discrete`` space with ``n <= n_candidates`` every
action is a candidate. All candidates are scored in one critic call.

Two selection rules:

- ``"min_risk"``: the candidate with the lowest risk (ties go to the earliest candidate, the brake
  action first);
- ``"closest_safe"``: among candidates whose risk is ``<= threshold`` (the shield's threshold unless
  given), the one closest to the proposed action; the lowest-risk candidate when none is below.

Non-finite risks count as ``+inf``; if every risk is non-finite the brake action is returned.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import gymnasium as gym
import numpy as np

from shieldgym.backup.base import BackupPolicy, action_error, check_action_space
from shieldgym.critics.protocol import Critic, as_critic

__all__ = ["MinRiskBackup"]


class MinRiskBackup(BackupPolicy):
    """Pick the least risky of ``n_candidates`` actions, scored by a critic.

    Args:
        n_candidates: number of candidates ``K`` (>= 1; the brake action is always one of them).
        critic: the critic scoring candidates; ``None`` uses the shield's critic.
        brake_action: the always-included safe fallback; ``None`` is the zero action clipped into
            the bounds (``Box``) or action ``start`` (``Discrete``).
        shrink: factors ``s`` of the shrunk proposed-action candidates (``Box`` only).
        select: ``"min_risk"`` or ``"closest_safe"`` (see the module docstring).
        threshold: threshold of ``"closest_safe"``; ``None`` uses the shield's threshold.
        seed: seed of the candidate sampler.

    Example:
        >>> import gymnasium as gym
        >>> space = gym.spaces.Box(-1.0, 1.0, (1,))
        >>> backup = MinRiskBackup(8, critic=lambda o, a: np.abs(a[:, 0] - 0.5), seed=0)
        >>> backup.bind(space, None)
        >>> float(backup(np.zeros(1), proposed=np.array([1.0], dtype=np.float32))[0])
        0.5
    """

    def __init__(
        self,
        n_candidates: int = 32,
        *,
        critic: Any = None,
        brake_action: Any = None,
        shrink: Sequence[float] = (0.5, 0.25),
        select: Literal["min_risk", "closest_safe"] = "min_risk",
        threshold: float | None = None,
        seed: int = 0,
    ) -> None:
        if not isinstance(n_candidates, int) or n_candidates < 1:
            raise ValueError(f"n_candidates must be a positive int, got {n_candidates!r}.")
        if select not in ("min_risk", "closest_safe"):
            raise ValueError(f"select must be 'min_risk' or 'closest_safe', got {select!r}.")
        if any(not 0.0 <= s <= 1.0 for s in shrink):
            raise ValueError(f"shrink factors must lie in [0, 1], got {list(shrink)}.")
        self.n_candidates = n_candidates
        self.critic: Critic | None = None if critic is None else as_critic(critic)
        self.brake_action = None if brake_action is None else np.asarray(brake_action)
        self.shrink = tuple(float(s) for s in shrink)
        self.select = select
        self.threshold = threshold
        self.rng = np.random.default_rng(seed)
        self.last_risk: np.ndarray | None = None  # risks of the last candidate set, for diagnostics

    def bind(self, action_space: gym.Space, critic: Critic | None, threshold: float | None = None) -> None:
        check_action_space(action_space)
        if self.critic is None:
            if critic is None:
                raise ValueError("MinRiskBackup needs a critic: pass critic=... or use it inside a ShieldWrapper.")
            self.critic = critic
        if self.threshold is None:
            self.threshold = threshold
        if self.select == "closest_safe" and self.threshold is None:
            raise ValueError("MinRiskBackup(select='closest_safe') needs a threshold.")
        if self.brake_action is None:
            if isinstance(action_space, gym.spaces.Box):
                self.brake_action = np.clip(
                    np.zeros(action_space.shape, action_space.dtype), action_space.low, action_space.high
                )
            elif isinstance(action_space, gym.spaces.Discrete):
                self.brake_action = np.asarray(action_space.start, dtype=action_space.dtype)
        why = action_error(action_space, self.brake_action)
        if why is not None:
            raise ValueError(f"MinRiskBackup brake_action is not a valid action of {action_space!r}: {why}.")
        self.brake_action = np.asarray(self.brake_action).astype(action_space.dtype)
        super().bind(action_space, critic, threshold)

    def candidates(self, proposed: Any = None) -> np.ndarray:
        """The ``(K, *action_shape)`` candidate actions (row 0 is the brake action)."""
        space = self.action_space
        if space is None or self.brake_action is None:
            raise RuntimeError("MinRiskBackup is not bound to an action space: call bind(action_space, critic) first.")
        k = self.n_candidates
        if isinstance(space, gym.spaces.Discrete):
            if space.n <= k:
                return np.arange(space.start, space.start + space.n, dtype=space.dtype)
            sampled = self.rng.integers(space.start, space.start + space.n, size=k - 1).astype(space.dtype)
            return np.concatenate([self.brake_action[None], sampled])
        if not isinstance(space, gym.spaces.Box):
            raise TypeError(f"MinRiskBackup supports Box and Discrete action spaces, got {space!r}.")
        cand = np.empty((k, *space.shape), dtype=space.dtype)
        cand[0] = self.brake_action
        row = 1
        if proposed is not None and np.isfinite(proposed).all():
            p = np.clip(np.asarray(proposed, dtype=space.dtype), space.low, space.high)
            for s in self.shrink[: k - 1]:
                cand[row] = self.brake_action + s * (p - self.brake_action)
                row += 1
        if row < k:
            low = np.where(np.isfinite(space.low), space.low, -1.0)
            high = np.where(np.isfinite(space.high), space.high, 1.0)
            cand[row:] = self.rng.uniform(low, high, size=(k - row, *space.shape))
        return cand

    def __call__(self, obs: Any, proposed: Any = None) -> np.ndarray:
        if self.critic is None:
            raise RuntimeError("MinRiskBackup has no critic: call bind(action_space, critic) first.")
        cand = self.candidates(proposed)
        k = len(cand)
        if isinstance(obs, Mapping):
            obs_batch: Any = {key: np.repeat(np.asarray(v)[None], k, axis=0) for key, v in obs.items()}
        else:
            obs_batch = np.repeat(np.asarray(obs)[None], k, axis=0)
        risk = np.asarray(self.critic(obs_batch, cand), dtype=np.float64)
        if risk.shape != (k,):
            raise ValueError(f"critic returned shape {risk.shape} for {k} candidates, expected ({k},).")
        risk = np.where(np.isfinite(risk), risk, np.inf)
        self.last_risk = risk
        if not np.isfinite(risk).any():
            return np.array(self.brake_action)
        best = int(np.argmin(risk))
        if self.select == "closest_safe" and proposed is not None and self.threshold is not None:
            safe = np.flatnonzero(risk <= self.threshold)
            if safe.size:
                diff: np.ndarray = (cand[safe] - np.asarray(proposed, dtype=np.float64)).reshape(safe.size, -1)
                best = int(safe[np.argmin(np.einsum("ij,ij->i", diff, diff))])
        return np.array(cand[best])

    def __repr__(self) -> str:
        return f"MinRiskBackup(n_candidates={self.n_candidates}, select={self.select!r})"
