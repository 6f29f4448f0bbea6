"""Replay buffers that also store the per-step cost ``info[cost_key]``.

SB3's :class:`~stable_baselines3.common.buffers.ReplayBuffer` receives the step ``infos`` in ``add``;
these subclasses read the cost from each env's info with :func:`shieldgym.costs.base.get_cost`, so an
env without the cost key fails at its first step with an error naming the key.

Samples are :class:`CostReplayBufferSamples` / :class:`CostDictReplayBufferSamples`: SB3's sample
tuples with one more field, ``costs`` ``(batch, 1)``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch as th
from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer
from stable_baselines3.common.type_aliases import TensorDict
from stable_baselines3.common.vec_env import VecNormalize

from shieldgym.costs.base import COST_KEY, get_cost

__all__ = ["CostDictReplayBuffer", "CostDictReplayBufferSamples", "CostReplayBuffer", "CostReplayBufferSamples"]


class CostReplayBufferSamples(NamedTuple):
    """:class:`~stable_baselines3.common.type_aliases.ReplayBufferSamples` plus ``costs``."""

    observations: th.Tensor
    actions: th.Tensor
    next_observations: th.Tensor
    dones: th.Tensor
    rewards: th.Tensor
    discounts: th.Tensor | None = None
    costs: th.Tensor | None = None


class CostDictReplayBufferSamples(NamedTuple):
    """:class:`~stable_baselines3.common.type_aliases.DictReplayBufferSamples` plus ``costs``."""

    observations: TensorDict
    actions: th.Tensor
    next_observations: TensorDict
    dones: th.Tensor
    rewards: th.Tensor
    discounts: th.Tensor | None = None
    costs: th.Tensor | None = None


def _check_cost_key(cost_key: str) -> str:
    if not isinstance(cost_key, str) or not cost_key:
        raise ValueError(f"cost_key must be a non-empty string, got {cost_key!r}.")
    return cost_key


class _CostColumn:
    """What both cost buffers add to SB3's buffer: the ``costs (buffer_size, n_envs)`` column filled from
    ``info[cost_key]`` in :meth:`add`, and whole blocks of offline transitions in :meth:`extend_transitions`.

    Mixed in before SB3's ``ReplayBuffer`` / ``DictReplayBuffer``, whose storage it writes.
    """

    buffer_size: int
    n_envs: int
    pos: int
    full: bool
    optimize_memory_usage: bool
    observations: Any
    next_observations: Any
    actions: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    timeouts: np.ndarray

    def __init__(self, *args: Any, cost_key: str = COST_KEY, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cost_key = _check_cost_key(cost_key)
        self.costs = np.zeros((self.buffer_size, self.n_envs), dtype=np.float32)

    def add(
        self, obs: Any, next_obs: Any, action: np.ndarray, reward: np.ndarray, done: np.ndarray, infos: list[dict]
    ) -> None:
        # Read (and validate) the costs before anything is written, so a bad info leaves the buffer unchanged.
        costs = np.array([get_cost(info, self.cost_key) for info in infos], dtype=np.float32)
        self.costs[self.pos] = costs
        super().add(obs, next_obs, action, reward, done, infos)  # type: ignore[misc]

    def extend_transitions(
        self,
        observations: np.ndarray | dict[str, np.ndarray],
        actions: np.ndarray,
        rewards: np.ndarray,
        costs: np.ndarray,
        next_observations: np.ndarray | dict[str, np.ndarray],
        dones: np.ndarray,
    ) -> int:
        """Write a block of transitions (first axis = transition) into the buffer; returns how many were written.

        Observations are arrays, or dicts of arrays for a Dict observation space. With ``n_envs > 1`` the
        block is laid out over the env slots, so ``len % n_envs`` trailing transitions are dropped.
        Timeouts are stored as not-done (``dones`` must already be terminals only).
        """
        if self.optimize_memory_usage:
            raise ValueError("Offline data cannot be loaded into a buffer with optimize_memory_usage=True.")
        rows = len(rewards) // self.n_envs
        n = rows * self.n_envs
        if rows > self.buffer_size - self.pos:
            raise ValueError(
                f"The dataset has {len(rewards)} transitions but the replay buffer has room for "
                f"{(self.buffer_size - self.pos) * self.n_envs}; pass a larger buffer_size."
            )
        sl = slice(self.pos, self.pos + rows)

        def put(store: np.ndarray, x: np.ndarray) -> None:
            # (n, ...) -> (rows, n_envs, ...) in the buffer's layout
            store[sl] = np.asarray(x)[:n].reshape(store[sl].shape)

        if isinstance(self.observations, dict):
            assert isinstance(observations, dict) and isinstance(next_observations, dict)
            for key in self.observations:
                put(self.observations[key], observations[key])
                put(self.next_observations[key], next_observations[key])
        else:
            assert isinstance(observations, np.ndarray) and isinstance(next_observations, np.ndarray)
            put(self.observations, observations)
            put(self.next_observations, next_observations)
        for store, x in ((self.actions, actions), (self.rewards, rewards), (self.costs, costs), (self.dones, dones)):
            put(store, x)
        self.timeouts[sl] = 0.0
        self.pos += rows
        if self.pos == self.buffer_size:
            self.full, self.pos = True, 0
        return n


class CostReplayBuffer(_CostColumn, ReplayBuffer):
    """A :class:`~stable_baselines3.common.buffers.ReplayBuffer` that stores ``info[cost_key]`` as the step cost.

    Args:
        buffer_size, observation_space, action_space, device, n_envs, optimize_memory_usage,
        handle_timeout_termination: as for SB3's ``ReplayBuffer``.
        cost_key: the info key holding the step cost (default ``"cost"``), keyword only.
    """

    def _get_samples(self, batch_inds: np.ndarray, env: VecNormalize | None = None) -> CostReplayBufferSamples:  # type: ignore[override]
        # Same as SB3's ReplayBuffer._get_samples, with the cost read at the same (index, env) pairs.
        env_indices = np.random.randint(0, high=self.n_envs, size=(len(batch_inds),))
        if self.optimize_memory_usage:
            next_obs = self.observations[(batch_inds + 1) % self.buffer_size, env_indices, :]
        else:
            next_obs = self.next_observations[batch_inds, env_indices, :]
        data = (
            self._normalize_obs(self.observations[batch_inds, env_indices, :], env),
            self.actions[batch_inds, env_indices, :],
            self._normalize_obs(next_obs, env),
            # only dones that are not time-limit truncations end the bootstrap
            (self.dones[batch_inds, env_indices] * (1 - self.timeouts[batch_inds, env_indices])).reshape(-1, 1),
            self._normalize_reward(self.rewards[batch_inds, env_indices].reshape(-1, 1), env),
        )
        observations, actions, next_observations, dones, rewards = map(self.to_torch, data)
        costs = self.to_torch(self.costs[batch_inds, env_indices].reshape(-1, 1))
        return CostReplayBufferSamples(observations, actions, next_observations, dones, rewards, None, costs)


class CostDictReplayBuffer(_CostColumn, DictReplayBuffer):
    """A :class:`~stable_baselines3.common.buffers.DictReplayBuffer` (Dict observations) that stores ``info[cost_key]``.

    Args:
        buffer_size, observation_space, action_space, device, n_envs, optimize_memory_usage,
        handle_timeout_termination: as for SB3's ``DictReplayBuffer``.
        cost_key: the info key holding the step cost (default ``"cost"``), keyword only.
    """

    def _get_samples(  # type: ignore[override]
        self, batch_inds: np.ndarray, env: VecNormalize | None = None
    ) -> CostDictReplayBufferSamples:
        env_indices = np.random.randint(0, high=self.n_envs, size=(len(batch_inds),))
        obs_ = self._normalize_obs({key: obs[batch_inds, env_indices, :] for key, obs in self.observations.items()}, env)
        next_obs_ = self._normalize_obs(
            {key: obs[batch_inds, env_indices, :] for key, obs in self.next_observations.items()}, env
        )
        assert isinstance(obs_, dict) and isinstance(next_obs_, dict)
        dones = self.dones[batch_inds, env_indices] * (1 - self.timeouts[batch_inds, env_indices])
        return CostDictReplayBufferSamples(
            observations={key: self.to_torch(o) for key, o in obs_.items()},
            actions=self.to_torch(self.actions[batch_inds, env_indices]),
            next_observations={key: self.to_torch(o) for key, o in next_obs_.items()},
            dones=self.to_torch(dones).reshape(-1, 1),
            rewards=self.to_torch(self._normalize_reward(self.rewards[batch_inds, env_indices].reshape(-1, 1), env)),
            costs=self.to_torch(self.costs[batch_inds, env_indices].reshape(-1, 1)),
        )
