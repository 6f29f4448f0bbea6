"""The critic-based shield: veto risky actions and execute a backup policy's action instead.

On every step the proposed action ``a*`` is scored by a safety critic; if ``risk = critic(s, a*) >
threshold`` it is vetoed and the backup policy's action is executed (an action exactly at the
threshold passes). The shield is fail-safe: whenever the check itself cannot be trusted the
proposed action is vetoed too, and the reason is reported.

=====================================================  ==================  ======================
fault on the checking path                             ``reason``          executed action
=====================================================  ==================  ======================
``risk > threshold``                                   ``"risk"``          backup
critic raises, or returns a wrong shape / non-number   ``"critic_error"``  backup
critic returns NaN/inf, obs or proposed action NaN/inf ``"nan"``           backup
the critic call took longer than ``max_latency_s``     ``"deadline"``      backup
the backup raises / returns NaN / leaves the space     (as above)          ``safe_action``
... and no ``safe_action`` is configured               raises ``ShieldError``
=====================================================  ==================  ======================

The decision logic lives in :class:`Shield`, shared by :class:`ShieldWrapper` (one env) and the
vector wrappers in :mod:`shieldgym.wrappers.vector_shield`, which check every sub-env in one critic
call.

Example:
    >>> import numpy as np, gymnasium as gym
    >>> from shieldgym.backup import BrakeBackup
    >>> env = gym.make("Pendulum-v1")
    >>> critic = lambda obs, act: np.abs(act[:, 0])          # risk = |torque|
    >>> env = ShieldWrapper(env, critic, BrakeBackup.from_env(env), threshold=1.0)
    >>> _ = env.reset(seed=0)
    >>> _, _, _, _, info = env.step(np.array([1.5], dtype=np.float32))
    >>> info["shield"]["intervened"], info["shield"]["reason"], info["shield"]["executed_action"].tolist()
    (True, 'risk', [0.0])
"""

from __future__ import annotations

import inspect
import json
import math
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple, SupportsFloat

import gymnasium as gym
import numpy as np

from shieldgym.backup.base import BackupPolicy, action_error, as_backup, check_action_space
from shieldgym.critics.protocol import Critic, as_critic
from shieldgym.errors import ShieldError

__all__ = ["REASONS", "InterventionLog", "Shield", "ShieldDecision", "ShieldWrapper", "default_backup", "obs_row"]

INFO_KEY = "shield"
#: every value ``info["shield"]["reason"]`` can take
REASONS = (None, "risk", "critic_error", "nan", "deadline")


class ShieldDecision(NamedTuple):
    """The shield's decision for a batch of ``n`` proposed actions.

    Attributes:
        executed: ``(n, *action_shape)`` actions to execute (the proposed array itself when nothing
            was vetoed).
        risk: ``(n,)`` critic risk (NaN where the critic gave none).
        intervened: ``(n,)`` bool, True where the proposed action was replaced.
        reasons: per row, one of :data:`REASONS`.
        sources: per row, ``"policy"``, ``"backup"``, ``"safe_action"`` or ``"reset"`` (a vector
            sub-env whose action is ignored because it is being reset).
        latency_s: wall time of the critic call.
    """

    executed: np.ndarray
    risk: np.ndarray
    intervened: np.ndarray
    reasons: list[str | None]
    sources: list[str]
    latency_s: float


def obs_row(obs: Any, i: int) -> Any:
    """Row ``i`` of a batched observation (an array or a dict of arrays)."""
    if isinstance(obs, Mapping):
        return {k: v[i] for k, v in obs.items()}
    return obs[i]


def _obs_rows(obs: Any, rows: np.ndarray) -> Any:
    if isinstance(obs, Mapping):
        return {k: v[rows] for k, v in obs.items()}
    return obs[rows]


_SMALL = 16  # arrays up to this size are checked for NaN/inf with Python floats


def _all_finite(x: Any) -> bool:
    """Whether every float in ``x`` (an array or a dict of arrays) is finite: one reduction per array.

    The sum is NaN or inf when any entry is (it can also overflow for entries near 1e308, which
    only makes the shield veto, the safe direction). A small float array is summed as Python floats
    (float64, so a float32 sum never overflows).
    """
    if type(x) is not np.ndarray:  # the common case first: isinstance on an ABC costs more than this whole test
        if isinstance(x, Mapping):
            return all(_all_finite(v) for v in x.values())
        x = np.asarray(x)
    kind = x.dtype.kind
    if kind == "f" and x.size <= _SMALL:  # a few Python floats add up faster than a NumPy reduction starts
        return math.isfinite(sum(x.ravel().tolist()))
    return kind not in "fc" or math.isfinite(np.add.reduce(x, axis=None))


def _finite_rows(x: Any, n: int) -> np.ndarray | None:
    """``(n,)`` bool mask of rows with only finite floats; ``None`` when all are (the common case, one call)."""
    if isinstance(x, Mapping):
        mask: np.ndarray | None = None
        for v in x.values():
            m = _finite_rows(v, n)
            if m is not None:
                mask = m if mask is None else mask & m
        return mask
    arr = np.asarray(x)
    if arr.dtype.kind not in "fc" or np.isfinite(arr).all():
        return None
    return np.isfinite(arr.reshape(n, -1)).all(axis=1)


def _json_value(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return [_json_value(v) for v in x.tolist()] if x.ndim else _json_value(x.item())
    if isinstance(x, list):
        return [_json_value(v) for v in x]
    if isinstance(x, float | np.floating):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer | np.bool_):
        return x.item()
    return x


class InterventionLog:
    """Append-only JSON-lines log of interventions, flushed on every write so a crash loses nothing.

    Each line is one JSON object: ``time`` (Unix seconds), ``step`` (the shield's check counter),
    ``env`` (sub-env index), ``reason``, ``risk`` (``null`` when unavailable), ``threshold``,
    ``proposed_action``, ``executed_action``, ``source`` and, when the backup failed, ``backup_error``.

    Args:
        path: file to append to (created with its parent folders).
        fsync: also ``os.fsync`` after each line (survives a power cut, costs ~ms per write).
    """

    def __init__(self, path: str | os.PathLike[str], fsync: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write(self, record: dict[str, Any]) -> None:
        """Append one record as a single line, then flush (and fsync if configured)."""
        line = json.dumps({k: _json_value(v) for k, v in record.items()}, allow_nan=False)
        self._file.write(line + "\n")
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    @staticmethod
    def read(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
        """All records of a log file."""
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]


def _takes_threshold(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` accepts a third positional argument named ``threshold``."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    return (
        len(params) >= 3
        and params[2].name == "threshold"
        and params[2].kind
        in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        )
    )


def _check_threshold(threshold: Any) -> float:
    value = getattr(threshold, "threshold", threshold)  # a Calibration record works too
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"threshold must be a non-negative finite number, got {threshold!r}.") from None
    if not math.isfinite(value) or value < 0.0:
        raise ValueError(f"threshold must be a non-negative finite number, got {value!r}.")
    return value


def default_backup(env: gym.Env) -> BackupPolicy:
    """The backup used when none is given: the env's brake action (``env.unwrapped.brake_action``) or the
    zero action of a ``Box`` space; for a ``Discrete`` space without a brake action, the least risky action
    by the critic (:class:`~shieldgym.backup.MinRiskBackup`)."""
    from shieldgym.backup.brake import BrakeBackup
    from shieldgym.backup.min_risk import MinRiskBackup

    space = env.action_space
    if getattr(env.unwrapped, "brake_action", None) is not None or isinstance(space, gym.spaces.Box):
        return BrakeBackup.from_env(env)
    return MinRiskBackup(n_candidates=max(int(getattr(space, "n", 1)), 1))


class Shield:
    """The shield's decision rule, shared by the single-env and the vector wrappers.

    Args:
        critic: anything :func:`~shieldgym.critics.protocol.as_critic` accepts.
        backup: a :class:`~shieldgym.backup.BackupPolicy`, an SB3 model or a callable ``fn(obs) -> action``.
        threshold: veto when ``risk > threshold`` (a float >= 0, or a calibration record with ``.threshold``).
        action_space: the env's (single) action space, ``Box`` or ``Discrete``.
        safe_action: executed when the backup fails; ``None`` makes a backup failure raise ``ShieldError``.
        max_latency_s: veto (reason ``"deadline"``) when the critic call takes longer than this.
        log_path: optional JSON-lines intervention log (see :class:`InterventionLog`).
        fsync: fsync the log after every line.
        clock: time source for the deadline (``time.perf_counter``).
    """

    def __init__(
        self,
        critic: Any,
        backup: Any,
        threshold: Any,
        action_space: gym.Space,
        *,
        safe_action: Any = None,
        max_latency_s: float | None = None,
        log_path: str | os.PathLike[str] | None = None,
        fsync: bool = False,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        check_action_space(action_space)
        self.action_space = action_space
        self.critic: Critic = as_critic(critic)
        self.threshold = _check_threshold(threshold)
        if max_latency_s is not None and not (isinstance(max_latency_s, int | float) and max_latency_s > 0):
            raise ValueError(f"max_latency_s must be a positive number of seconds or None, got {max_latency_s!r}.")
        self.max_latency_s = max_latency_s
        self.backup = as_backup(backup)
        self.backup.bind(action_space, self.critic, self.threshold)
        self.safe_action: np.ndarray | None = None
        if safe_action is not None:
            why = action_error(action_space, safe_action)
            if why is not None:
                raise ValueError(f"safe_action is not a valid action of {action_space!r}: {why}.")
            self.safe_action = np.asarray(safe_action, dtype=action_space.dtype)
            self.safe_action.setflags(write=False)
        self.log = InterventionLog(log_path, fsync=fsync) if log_path is not None else None
        self.clock = clock
        self._box = isinstance(action_space, gym.spaces.Box)
        self._action_shape: tuple[int, ...] = tuple(action_space.shape or ())
        self._dtype = np.dtype(action_space.dtype)
        self.n_checks = 0
        self.n_interventions = 0
        self.last_latency_s = float("nan")
        # optional single-row entry point of the critic (NumpyCostCritic.risk_one): finiteness test and
        # forward pass in one call, used by filter() for a Box action and an array observation
        risk_one = getattr(self.critic, "risk_one", None)
        self._risk_one: Callable[..., float] | None = risk_one if callable(risk_one) and self._box else None
        # a risk_one(obs, action, threshold) is told the threshold, near which it must be exact
        self._risk_one_threshold = self._risk_one is not None and _takes_threshold(self._risk_one)
        self._critic_threshold = _takes_threshold(self.critic)

    # -- validation done once -------------------------------------------------------------------
    @classmethod
    def for_env(
        cls,
        critic: Any,
        backup: Any,
        threshold: Any,
        action_space: gym.Space,
        observation_space: gym.Space,
        *,
        safe_action: Any = None,
        max_latency_s: float | None = None,
        log_path: str | os.PathLike[str] | None = None,
        fsync: bool = False,
        validate_critic: bool = True,
    ) -> Shield:
        """The shield of a wrapper: constructed as :class:`Shield`, then (``validate_critic``) the critic is
        called once on inputs sampled from ``observation_space`` / ``action_space`` to catch a wrong output early."""
        shield = cls(
            critic,
            backup,
            threshold,
            action_space,
            safe_action=safe_action,
            max_latency_s=max_latency_s,
            log_path=log_path,
            fsync=fsync,
        )
        if validate_critic:
            shield.validate_critic(observation_space)
        return shield

    def validate_critic(self, observation_space: gym.Space) -> None:
        """Call the critic once on two sampled (obs, action) pairs and check it returns ``(2,)`` numbers.

        Raises:
            ValueError: the critic raises on valid input or returns a wrong shape / dtype.
        """
        space = observation_space
        obs = [space.sample() for _ in range(2)]
        if isinstance(space, gym.spaces.Dict):
            batch: Any = {k: np.stack([o[k] for o in obs]) for k in space.spaces}
        else:
            batch = np.stack(obs)
        actions = np.stack([np.asarray(self.action_space.sample()) for _ in range(2)])
        try:
            risk = np.asarray(self.critic(batch, actions))
        except Exception as exc:
            raise ValueError(
                f"the critic raised {exc!r} on a valid batch (obs {_shape(batch)}, actions {actions.shape}); a critic "
                "must accept critic(obs_batch, action_batch) with a leading batch dimension."
            ) from exc
        if risk.shape != (2,) or risk.dtype.kind not in "fiu":
            raise ValueError(
                f"the critic returned an array of shape {risk.shape} and dtype {risk.dtype} for a batch of 2; expected "
                "shape (2,) of floats (one risk per row). Reduce ensembles/extra dims inside the critic or use as_critic()."
            )

    def as_actions(self, actions: Any, n: int) -> np.ndarray:
        """``actions`` as an ``(n, *action_shape)`` array of the action space's dtype.

        Raises:
            ValueError: wrong shape, or a ``Discrete`` action out of range.
        """
        space = self.action_space
        arr = np.asarray(actions, dtype=space.dtype)
        if arr.ndim == 0 or arr.shape[0] != n or arr.shape[1:] != self._action_shape:
            raise ValueError(f"proposed actions must have shape {(n, *self._action_shape)} for {space!r}, got {arr.shape}.")
        if not self._box:
            start = space.start  # type: ignore[attr-defined]
            if arr.size and (arr.min() < start or arr.max() >= start + space.n):  # type: ignore[attr-defined]
                raise ValueError(f"proposed action {arr.tolist()} is outside {space!r}.")
        return arr

    # -- the decision -----------------------------------------------------------------------------
    def check(self, obs: Any, actions: np.ndarray, active: np.ndarray | None = None, env_offset: int = 0) -> ShieldDecision:
        """Decide the executed action of each row of a batch.

        Args:
            obs: ``(n, *obs_shape)`` observations (or a dict of such arrays).
            actions: ``(n, *action_shape)`` proposed actions (see :meth:`as_actions`).
            active: optional ``(n,)`` bool mask; inactive rows (sub-envs being reset, whose action is
                ignored) are not checked and report source ``"reset"``.
            env_offset: added to the row index in log records.

        Returns:
            A :class:`ShieldDecision`.

        Raises:
            ShieldError: a vetoed row's backup failed and no ``safe_action`` is configured.
        """
        n = actions.shape[0]
        self.n_checks += 1
        if active is None:
            risk = self._check_all(obs, actions, n, env_offset)
            if isinstance(risk, ShieldDecision):
                return risk
            return ShieldDecision(actions, risk, np.zeros(n, dtype=bool), [None] * n, ["policy"] * n, self.last_latency_s)
        return self._decide(obs, actions, active, self._nan_rows(obs, actions, active), None, None, None, env_offset)

    def _check_all(self, obs: Any, actions: np.ndarray, n: int, env_offset: int) -> np.ndarray | ShieldDecision:
        """Check every row: the ``(n,)`` risk when every row passes (the fast path: every input finite, one
        critic call, no further work), else the general path's :class:`ShieldDecision`."""
        if _all_finite(obs) and (not self._box or _all_finite(actions)):
            t0 = self.clock()
            try:
                critic: Callable[..., Any] = self.critic
                out = critic(obs, actions, self.threshold) if self._critic_threshold else critic(obs, actions)
            except Exception as exc:  # any critic failure vetoes; the reason is recorded
                return self._decide(obs, actions, None, None, None, f"critic raised {exc!r}", self.clock() - t0, env_offset)
            latency = self.clock() - t0
            self.last_latency_s = latency
            r = out if type(out) is np.ndarray else np.asarray(out)
            if (
                r.shape == (n,)
                and r.dtype.kind in "fiu"
                and (self.max_latency_s is None or latency <= self.max_latency_s)
                and self._all_pass(r, n)
            ):
                return r
            return self._decide(obs, actions, None, None, out, None, latency, env_offset)
        return self._decide(obs, actions, None, self._nan_rows(obs, actions, None), None, None, None, env_offset)

    def _all_pass(self, risk: np.ndarray, n: int) -> bool:
        """Whether every risk is ``<= threshold`` (NaN is not). Python floats for a few rows: comparing a
        NumPy scalar with a float, or starting a NumPy reduction, costs more than the whole test."""
        threshold = self.threshold
        if n == 1:
            return float(risk[0]) <= threshold
        if n <= _SMALL:
            return all(v <= threshold for v in risk.tolist())
        return bool((risk <= threshold).all())

    def _nan_rows(self, obs: Any, actions: np.ndarray, active: np.ndarray | None) -> tuple[np.ndarray, list[str | None]]:
        """Rows the critic scores (active, finite) and the reasons of the rows excluded for non-finite input."""
        n = actions.shape[0]
        reasons: list[str | None] = [None] * n
        ok = np.ones(n, dtype=bool) if active is None else np.asarray(active, dtype=bool).copy()
        for mask in (_finite_rows(obs, n), _finite_rows(actions, n) if self._box else None):
            if mask is not None:
                for i in np.flatnonzero(ok & ~mask):
                    reasons[i] = "nan"
                ok &= mask
        return np.flatnonzero(ok), reasons

    def _decide(
        self,
        obs: Any,
        actions: np.ndarray,
        active: np.ndarray | None,
        selection: tuple[np.ndarray, list[str | None]] | None,
        out: Any,
        error: str | None,
        latency: float | None,
        env_offset: int,
    ) -> ShieldDecision:
        """The general path: score ``selection`` rows (all rows when None, with ``out`` already computed
        unless ``error``), veto, and fill in backup actions."""
        n = actions.shape[0]
        risk = np.full(n, np.nan)
        if selection is None:
            rows: np.ndarray | None = None
            reasons: list[str | None] = [None] * n
        else:
            rows, reasons = selection
        m = n if rows is None else rows.size
        if latency is None:  # score the selected rows now
            t0 = self.clock()
            try:
                out = self.critic(_obs_rows(obs, rows), actions[rows]) if m and rows is not None else np.empty(0)
            except Exception as exc:  # any critic failure vetoes; the reason is recorded
                error = f"critic raised {exc!r}"
            latency = self.clock() - t0
        assert latency is not None
        self.last_latency_s = latency
        checked = slice(None) if rows is None else rows
        if error is None:
            r = out if type(out) is np.ndarray else np.asarray(out)
            if r.shape != (m,) or r.dtype.kind not in "fiu":
                error = f"critic returned shape {r.shape} dtype {r.dtype}, expected ({m},) floats"
            else:
                risk[checked] = r
        # rows to veto: checked rows whose risk is not <= threshold (NaN included), or all checked
        # rows on a critic error or a missed deadline
        if error is not None:
            veto_rows = np.arange(n) if rows is None else rows
            why = "critic_error"
        elif self.max_latency_s is not None and latency > self.max_latency_s:
            veto_rows = np.arange(n) if rows is None else rows
            why = "deadline"
        else:
            passed = risk <= self.threshold  # NaN compares False
            veto_rows = np.flatnonzero(~passed) if rows is None else rows[~passed[rows]]
            why = "risk"
        for i in veto_rows:
            reasons[i] = why if (error is not None or np.isfinite(risk[i])) else "nan"
        if active is not None:
            inactive = ~np.asarray(active, dtype=bool)
        intervened = np.fromiter((r is not None for r in reasons), dtype=bool, count=n)
        sources = ["policy"] * n
        if active is not None:
            for i in np.flatnonzero(inactive):
                sources[i] = "reset"
        if not intervened.any():
            return ShieldDecision(actions, risk, intervened, reasons, sources, latency)
        executed = actions.copy()
        for i in np.flatnonzero(intervened):
            executed[i], sources[i], backup_error = self._fallback(obs_row(obs, i), actions[i], reasons[i])
            self.n_interventions += 1
            if self.log is not None:
                record = {
                    "time": time.time(),
                    "step": self.n_checks,
                    "env": env_offset + int(i),
                    "reason": reasons[i],
                    "risk": float(risk[i]),
                    "threshold": self.threshold,
                    "proposed_action": actions[i],
                    "executed_action": executed[i],
                    "source": sources[i],
                }
                if error is not None:
                    record["critic_error"] = error
                if backup_error is not None:
                    record["backup_error"] = backup_error
                self.log.write(record)
        return ShieldDecision(executed, risk, intervened, reasons, sources, latency)

    def _fallback(self, obs: Any, proposed: np.ndarray, reason: str | None) -> tuple[Any, str, str | None]:
        """The backup's action if it is valid, else ``safe_action``, else raise ``ShieldError``."""
        try:
            action = self.backup(obs, proposed)
            why = action_error(self.action_space, action)
        except Exception as exc:  # a failing backup falls through to safe_action
            why = f"the backup raised {exc!r}"
        if why is None:
            return action, "backup", None
        if self.safe_action is not None:
            return self.safe_action, "safe_action", why
        raise ShieldError(
            f"the shield vetoed the proposed action {np.asarray(proposed).tolist()} (reason {reason!r}) and the backup "
            f"policy {self.backup!r} gave no valid action: {why}. Pass safe_action=... to the shield wrapper to "
            "execute a fixed safe action in this case."
        )

    def filter(self, obs: Any, action: Any) -> tuple[Any, dict[str, Any]]:
        """Check one proposed action for one observation (no batch dimension): the hardware-loop entry point.

        Returns:
            ``(executed_action, info)`` where ``info`` is the ``info["shield"]`` dict; the executed
            action is a NumPy array (``Box``) or a Python int (``Discrete``).

        Example:
            >>> import gymnasium as gym
            >>> shield = Shield(lambda o, a: np.abs(o[:, 0] + a[:, 0]), [0.0], 1.0, gym.spaces.Box(-1, 1, (1,)))
            >>> action, info = shield.filter(np.array([0.5]), np.array([0.75]))
            >>> action.tolist(), info["reason"]
            ([0.0], 'risk')
        """
        one = self._risk_one is not None and type(obs) is np.ndarray and type(action) is np.ndarray
        if one and action.shape == self._action_shape:
            return self._filter_one(obs, action.astype(self._dtype))
        if type(obs) is np.ndarray:
            obs_batch: Any = obs[None]
        elif isinstance(obs, Mapping):
            obs_batch = {k: np.asarray(v)[None] for k, v in obs.items()}
        else:
            obs_batch = np.asarray(obs)[None]
        if self._box and type(action) is np.ndarray and action.shape == self._action_shape:
            proposed = action.astype(self._dtype)[None]  # what as_actions() checks, for a third of its cost
        else:
            proposed = self.as_actions((action if type(action) is np.ndarray else np.asarray(action))[None], 1)
        self.n_checks += 1
        risk = self._check_all(obs_batch, proposed, 1, 0)
        if isinstance(risk, ShieldDecision):
            executed = risk.executed[0]
            return (executed if self._box else executed.item()), self.info(risk, proposed, 0)
        action_row = proposed[0]  # passed: the executed action is the proposed one (as in check())
        return (action_row if self._box else action_row.item()), self._passed_info(action_row, float(risk[0]))

    def _filter_one(self, obs: np.ndarray, proposed: np.ndarray) -> tuple[Any, dict[str, Any]]:
        """:meth:`filter` through the critic's ``risk_one``: one compiled call checks the inputs are finite
        (NaN otherwise) and scores the action; anything but a pass takes the general path with that result."""
        self.n_checks += 1
        t0 = self.clock()
        try:
            one = self._risk_one
            risk = one(obs, proposed, self.threshold) if self._risk_one_threshold else one(obs, proposed)  # type: ignore[misc]
        except Exception as exc:  # any critic failure vetoes; the reason is recorded
            decision = self._decide(
                obs[None], proposed[None], None, None, None, f"critic raised {exc!r}", self.clock() - t0, 0
            )
            return decision.executed[0], self.info(decision, proposed[None], 0)
        latency = self.clock() - t0
        self.last_latency_s = latency
        if risk <= self.threshold and (self.max_latency_s is None or latency <= self.max_latency_s):
            return proposed, self._passed_info(proposed, float(risk))
        # vetoed: risk above the threshold, NaN (non-finite input or output) or a missed deadline
        decision = self._decide(obs[None], proposed[None], None, None, np.array([risk]), None, latency, 0)
        return decision.executed[0], self.info(decision, proposed[None], 0)

    def _passed_info(self, action: np.ndarray, risk: float) -> dict[str, Any]:
        """``info["shield"]`` of a proposed action that passed (it is also the executed one)."""
        return {
            "proposed_action": action,
            "executed_action": action,
            "risk": risk,
            "threshold": self.threshold,
            "intervened": False,
            "reason": None,
            "source": "policy",
        }

    def info(self, decision: ShieldDecision, proposed: np.ndarray, i: int) -> dict[str, Any]:
        """``info["shield"]`` of row ``i`` of a decision."""
        return {
            "proposed_action": proposed[i],
            "executed_action": decision.executed[i],
            "risk": float(decision.risk[i]),
            "threshold": self.threshold,
            "intervened": bool(decision.intervened[i]),
            "reason": decision.reasons[i],
            "source": decision.sources[i],
        }

    def close(self) -> None:
        if self.log is not None:
            self.log.close()


def _shape(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {k: _shape(v) for k, v in x.items()}
    return np.shape(x)


class ShieldWrapper(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Veto risky actions of any policy and execute a backup policy's action instead.

    Each step the proposed action ``a*`` is vetoed iff ``critic(obs[None], a*[None])[0] > threshold``
    (or the check fails, see the module docstring); ``info["shield"]`` reports ``proposed_action``,
    ``executed_action``, ``risk``, ``threshold``, ``intervened``, ``reason`` (one of :data:`REASONS`),
    and ``source`` (``"policy"``, ``"backup"`` or ``"safe_action"``). The critic's latency of the last
    step is ``wrapper.shield.last_latency_s`` (kept out of ``info`` so that steps stay deterministic).

    Args:
        env: env with a ``Box`` or ``Discrete`` action space.
        critic: ``critic(obs_batch, action_batch) -> risk (B,)``, a torch module, or a model with
            ``cost_critic()`` (see :func:`~shieldgym.critics.protocol.as_critic`).
        backup: backup policy; ``None`` uses :func:`default_backup` (the brake action).
        threshold: veto when risk exceeds it (float >= 0, or the record returned by
            :func:`~shieldgym.critics.calibration.calibrate_threshold`).
        safe_action: executed when the backup fails; ``None`` makes a backup failure raise ``ShieldError``.
        max_latency_s: veto (reason ``"deadline"``) when the critic call exceeds this many seconds.
            The check is measured, not pre-empted: a critic that hangs blocks the step.
        log_path: append interventions to this JSON-lines file (flushed per line).
        fsync: fsync the log per line.
        validate_critic: call the critic once at construction on sampled inputs to catch a wrong
            output shape early.
    """

    def __init__(
        self,
        env: gym.Env,
        critic: Any,
        backup: Any = None,
        threshold: Any = 0.5,
        *,
        safe_action: Any = None,
        max_latency_s: float | None = None,
        log_path: str | os.PathLike[str] | None = None,
        fsync: bool = False,
        validate_critic: bool = True,
    ) -> None:
        # only plain settings are recorded: critics and backups hold models that are neither copied nor serialised
        gym.utils.RecordConstructorArgs.__init__(
            self, threshold=getattr(threshold, "threshold", threshold), safe_action=safe_action, max_latency_s=max_latency_s
        )
        gym.Wrapper.__init__(self, env)
        check_action_space(env.action_space)
        self.shield = Shield.for_env(
            critic,
            default_backup(env) if backup is None else backup,
            threshold,
            env.action_space,
            env.observation_space,
            safe_action=safe_action,
            max_latency_s=max_latency_s,
            log_path=log_path,
            fsync=fsync,
            validate_critic=validate_critic,
        )
        self._obs: Any = None

    @property
    def threshold(self) -> float:
        return self.shield.threshold

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._obs = obs
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        if self._obs is None:
            raise gym.error.ResetNeeded("ShieldWrapper: call reset() before step().")
        executed, shield_info = self.shield.filter(self._obs, action)
        next_obs, reward, terminated, truncated, info = self.env.step(executed)
        if INFO_KEY in info:
            raise ValueError(f"the wrapped env already reports info[{INFO_KEY!r}]; shields cannot be nested.")
        info[INFO_KEY] = shield_info
        self._obs = next_obs
        return next_obs, reward, terminated, truncated, info

    def close(self) -> None:
        self.shield.close()
        super().close()
