"""Vector versions of the shield: every sub-env is checked in ONE critic call per step.

- :class:`VectorShieldWrapper` wraps a ``gymnasium.vector.VectorEnv`` and honours its
  ``autoreset_mode``: in ``NextStep`` mode the step after an episode ends resets that sub-env and
  ignores its action, so that row is not checked (``info["shield"]`` is masked out for it).
- :class:`VecShieldWrapper` wraps a Stable-Baselines3 ``VecEnv`` (which resets sub-envs on the
  same step) and adds ``infos[i]["shield"]`` to each sub-env's info dict.

Both use :class:`~shieldgym.wrappers.shield.Shield`, the same decision rule as
:class:`~shieldgym.wrappers.shield.ShieldWrapper`, so a vector env of ``n`` shielded copies and one
shielded vector env execute exactly the same actions.

Example:
    >>> import numpy as np, gymnasium as gym
    >>> envs = gym.make_vec("Pendulum-v1", num_envs=2, vectorization_mode="sync")
    >>> envs = VectorShieldWrapper(envs, lambda o, a: np.abs(a[:, 0]), threshold=1.0)
    >>> _ = envs.reset(seed=0)
    >>> _, _, _, _, infos = envs.step(np.array([[0.5], [1.5]], dtype=np.float32))
    >>> infos["shield"]["intervened"].tolist(), infos["shield"]["executed_action"][:, 0].tolist()
    ([False, True], [0.5, 0.0])
"""

from __future__ import annotations

import os
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv, VectorWrapper

from shieldgym.backup.base import BackupPolicy
from shieldgym.backup.brake import BrakeBackup
from shieldgym.backup.min_risk import MinRiskBackup
from shieldgym.wrappers.shield import INFO_KEY, Shield, ShieldDecision

__all__ = ["VecShieldWrapper", "VectorShieldWrapper"]


def _default_backup(action_space: gym.Space, brake_action: Any) -> BackupPolicy:
    if brake_action is not None:
        return BrakeBackup(brake_action)
    if isinstance(action_space, gym.spaces.Box):
        return BrakeBackup.from_space(action_space)
    return MinRiskBackup(n_candidates=int(action_space.n))  # type: ignore[attr-defined]


def _vector_info(shield: Shield, decision: ShieldDecision, proposed: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
    """``infos["shield"]`` in Gymnasium's vector layout: one array per key plus ``_key`` masks."""
    return {
        "proposed_action": proposed,
        "_proposed_action": mask,
        "executed_action": decision.executed,
        "_executed_action": mask,
        "risk": decision.risk,
        "_risk": mask,
        "threshold": np.full(len(mask), shield.threshold),
        "_threshold": mask,
        "intervened": decision.intervened,
        "_intervened": mask,
        "reason": np.array(decision.reasons, dtype=object),  # (n,) of str | None
        "_reason": mask,
        "source": np.array(decision.sources, dtype=object),
        "_source": mask,
    }


class VectorShieldWrapper(VectorWrapper, gym.utils.RecordConstructorArgs):
    """Shield every sub-env of a Gymnasium vector env with one critic call per step.

    Args:
        env: vector env with a ``Box`` or ``Discrete`` single action space.
        critic: see :class:`~shieldgym.wrappers.shield.ShieldWrapper`.
        backup: backup policy shared by the sub-envs (called once per vetoed sub-env); ``None`` uses the
            brake action (``brake_action`` of the first sub-env when it defines one, else zeros) for ``Box``
            spaces and the least risky action for ``Discrete`` spaces.
        threshold: veto when ``risk > threshold``.
        safe_action, max_latency_s, log_path, fsync, validate_critic: as for ``ShieldWrapper``.
        brake_action: the default backup's brake action (overrides the env's).

    ``infos["shield"]`` holds arrays over sub-envs (``proposed_action``, ``executed_action``, ``risk``,
    ``threshold``, ``intervened``, ``reason``, ``source``), each with a ``_key`` mask, and
    ``infos["_shield"]`` marks the sub-envs that were checked.
    """

    def __init__(
        self,
        env: VectorEnv,
        critic: Any,
        backup: Any = None,
        threshold: Any = 0.5,
        *,
        safe_action: Any = None,
        max_latency_s: float | None = None,
        log_path: str | os.PathLike[str] | None = None,
        fsync: bool = False,
        validate_critic: bool = True,
        brake_action: Any = None,
    ) -> None:
        # only plain settings are recorded: critics and backups hold models that are neither copied nor serialised
        gym.utils.RecordConstructorArgs.__init__(
            self, threshold=getattr(threshold, "threshold", threshold), safe_action=safe_action, max_latency_s=max_latency_s
        )
        VectorWrapper.__init__(self, env)
        if brake_action is None:
            brake_action = _env_brake_action(env)
        self.shield = Shield.for_env(
            critic,
            _default_backup(env.single_action_space, brake_action) if backup is None else backup,
            threshold,
            env.single_action_space,
            env.single_observation_space,
            safe_action=safe_action,
            max_latency_s=max_latency_s,
            log_path=log_path,
            fsync=fsync,
            validate_critic=validate_critic,
        )
        mode = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        self._next_step = AutoresetMode(mode) == AutoresetMode.NEXT_STEP
        self._obs: Any = None
        self._autoreset = np.zeros(self.num_envs, dtype=bool)

    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        obs, infos = self.env.reset(seed=seed, options=options)  # type: ignore[arg-type]
        self._obs = obs
        if options is not None and "reset_mask" in options:
            self._autoreset &= ~np.asarray(options["reset_mask"], dtype=bool)
        else:
            self._autoreset[:] = False
        return obs, infos

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        if self._obs is None:
            raise gym.error.ResetNeeded("VectorShieldWrapper: call reset() before step().")
        proposed = self.shield.as_actions(actions, self.num_envs)
        active = ~self._autoreset if self._next_step and self._autoreset.any() else None
        decision = self.shield.check(self._obs, proposed, active)
        obs, rewards, terminations, truncations, infos = self.env.step(decision.executed)
        if INFO_KEY in infos:
            raise ValueError(f"the wrapped vector env already reports infos[{INFO_KEY!r}]; shields cannot be nested.")
        mask = np.ones(self.num_envs, dtype=bool) if active is None else active
        infos[INFO_KEY] = _vector_info(self.shield, decision, proposed, mask)
        infos[f"_{INFO_KEY}"] = mask
        self._obs = obs
        if self._next_step:
            self._autoreset = np.logical_or(terminations, truncations)
        return obs, rewards, terminations, truncations, infos

    def close(self, **kwargs: Any) -> None:
        self.shield.close()
        super().close(**kwargs)


def _env_brake_action(env: Any) -> Any:
    """``brake_action`` of the first sub-env of a sync vector env (``None`` when unknown)."""
    envs = getattr(env.unwrapped if hasattr(env, "unwrapped") else env, "envs", None)
    if envs:
        return getattr(envs[0].unwrapped, "brake_action", None)
    return None


def _vec_env_wrapper_base() -> type:
    from stable_baselines3.common.vec_env import VecEnvWrapper

    return VecEnvWrapper


class VecShieldWrapper(_vec_env_wrapper_base()):  # type: ignore[misc]
    """Shield every sub-env of a Stable-Baselines3 ``VecEnv`` with one critic call per step.

    Arguments as for :class:`VectorShieldWrapper`. Each ``infos[i]["shield"]`` is the same dict a
    single :class:`~shieldgym.wrappers.shield.ShieldWrapper` reports. To make off-policy algorithms
    learn from the executed action, pass
    :class:`~shieldgym.wrappers.shield_sb3.ShieldReplayBuffer` as ``replay_buffer_class``.

    Example:
        >>> import numpy as np
        >>> from stable_baselines3.common.env_util import make_vec_env
        >>> venv = VecShieldWrapper(make_vec_env("Pendulum-v1", n_envs=2), lambda o, a: np.abs(a[:, 0]), threshold=1.0)
        >>> _ = venv.reset()
        >>> _, _, _, infos = venv.step(np.array([[1.5], [0.5]], dtype=np.float32))
        >>> [info["shield"]["intervened"] for info in infos]
        [True, False]
    """

    def __init__(
        self,
        venv: Any,
        critic: Any,
        backup: Any = None,
        threshold: Any = 0.5,
        *,
        safe_action: Any = None,
        max_latency_s: float | None = None,
        log_path: str | os.PathLike[str] | None = None,
        fsync: bool = False,
        validate_critic: bool = True,
        brake_action: Any = None,
    ) -> None:
        super().__init__(venv)
        if brake_action is None:
            brakes = venv.get_attr("brake_action") if _has_attr(venv, "brake_action") else [None]
            brake_action = brakes[0]
        self.shield = Shield.for_env(
            critic,
            _default_backup(venv.action_space, brake_action) if backup is None else backup,
            threshold,
            venv.action_space,
            venv.observation_space,
            safe_action=safe_action,
            max_latency_s=max_latency_s,
            log_path=log_path,
            fsync=fsync,
            validate_critic=validate_critic,
        )
        self._obs: Any = None
        self._pending: tuple[ShieldDecision, np.ndarray] | None = None

    def reset(self) -> Any:
        obs = self.venv.reset()
        self._obs = obs
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        if self._obs is None:
            raise RuntimeError("VecShieldWrapper: call reset() before step().")
        proposed = self.shield.as_actions(actions, self.num_envs)
        decision = self.shield.check(self._obs, proposed)
        self._pending = (decision, proposed)
        self.venv.step_async(decision.executed)

    def step_wait(self) -> Any:
        obs, rewards, dones, infos = self.venv.step_wait()
        if self._pending is None:
            raise RuntimeError("VecShieldWrapper: step_wait() called without step_async().")
        decision, proposed = self._pending
        self._pending = None
        for i, info in enumerate(infos):
            if INFO_KEY in info:
                raise ValueError(f"sub-env {i} already reports info[{INFO_KEY!r}]; shields cannot be nested.")
            info[INFO_KEY] = self.shield.info(decision, proposed, i)
        self._obs = obs
        return obs, rewards, dones, infos

    def close(self) -> None:
        self.shield.close()
        self.venv.close()


def _has_attr(venv: Any, name: str) -> bool:
    try:
        venv.get_attr(name, indices=[0])
    except AttributeError:
        return False
    return True
