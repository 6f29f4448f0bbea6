"""Learning inside the shield with Stable-Baselines3 off-policy algorithms.

SB3's ``OffPolicyAlgorithm._store_transition`` calls
``replay_buffer.add(obs, next_obs, buffer_action, reward, dones, infos)`` with the action the
*policy proposed* (rescaled to ``[-1, 1]`` for ``Box`` spaces). Inside a shield the env may have
executed a different action, so the stored transition ``(s, a*, r, s')`` would be one that never
happened. :class:`ShieldReplayBuffer` (and :class:`ShieldDictReplayBuffer` for dict observations)
reads ``infos[i]["shield"]`` and, by default, stores the **executed** action instead, rescaled the
same way SB3 rescales policy actions (``2 (a - low) / (high - low) - 1``). This works with every
algorithm that takes ``replay_buffer_class``: SAC, TD3, DDPG, DQN, TQC, CrossQ. CQLLag, which also
stores the step cost, takes :class:`ShieldCostReplayBuffer` (:class:`ShieldCostDictReplayBuffer`).

``action_source="proposed"`` keeps the proposed action (the Recovery-RL choice: the task policy
learns the consequence of its own proposal, the backup's transition is what followed), and
``intervention_penalty`` subtracts a constant from the stored reward of every vetoed step, teaching
the policy to propose actions the shield accepts.

Example:
    >>> from stable_baselines3 import SAC
    >>> model = SAC("MlpPolicy", shielded_env, replay_buffer_class=ShieldReplayBuffer,  # doctest: +SKIP
    ...             replay_buffer_kwargs=dict(intervention_penalty=0.1))
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer

from shieldgym.algos.cqllag.buffers import CostDictReplayBuffer, CostReplayBuffer
from shieldgym.wrappers.shield import INFO_KEY

__all__ = [
    "ShieldCostDictReplayBuffer",
    "ShieldCostReplayBuffer",
    "ShieldDictReplayBuffer",
    "ShieldReplayBuffer",
    "scale_action",
    "shield_transition",
]

ActionSource = Literal["executed", "proposed"]


def scale_action(action_space: spaces.Space, action: np.ndarray) -> np.ndarray:
    """Env action -> buffer action: ``Box`` actions to ``[-1, 1]`` as SB3's ``policy.scale_action`` does; others unchanged."""
    if isinstance(action_space, spaces.Box):
        low, high = action_space.low, action_space.high
        return 2.0 * ((action - low) / (high - low)) - 1.0
    return action


def shield_transition(
    action_space: spaces.Space,
    action: np.ndarray,
    reward: np.ndarray,
    infos: list[dict[str, Any]],
    action_source: ActionSource,
    intervention_penalty: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``(buffer_action, reward)`` to store for one vector step, given each sub-env's ``info["shield"]``.

    Rows where the shield intervened get the executed action (``action_source="executed"``) and the
    reward minus ``intervention_penalty``; other rows are returned unchanged. Inputs are not modified.

    Raises:
        ValueError: no sub-env reports ``info["shield"]`` (the env is not shielded).
    """
    records = [info.get(INFO_KEY) for info in infos]
    if all(r is None for r in records):
        raise ValueError(
            "ShieldReplayBuffer needs info['shield'] from a ShieldWrapper / VecShieldWrapper around the env; none was found."
        )
    vetoed = [i for i, r in enumerate(records) if r is not None and r["intervened"]]
    if not vetoed:
        return action, reward
    if action_source == "executed":
        action = np.array(action, copy=True)
        flat = action.reshape(len(infos), -1)
        for i in vetoed:
            executed = np.asarray(records[i]["executed_action"], dtype=action_space.dtype)  # type: ignore[index]
            flat[i] = scale_action(action_space, executed).reshape(-1)
    if intervention_penalty:
        reward = np.array(reward, dtype=np.float32, copy=True)
        reward[vetoed] -= intervention_penalty
    return action, reward


def _check_options(action_source: str, intervention_penalty: float) -> None:
    if action_source not in ("executed", "proposed"):
        raise ValueError(f"action_source must be 'executed' or 'proposed', got {action_source!r}.")
    if not np.isfinite(intervention_penalty) or intervention_penalty < 0:
        raise ValueError(f"intervention_penalty must be a finite number >= 0, got {intervention_penalty!r}.")


class _ShieldTransitions:
    """What the shield buffers add to an SB3 buffer: :meth:`add` stores :func:`shield_transition`'s action and reward.

    Mixed in before the buffer class it changes (SB3's ``ReplayBuffer`` / ``DictReplayBuffer`` or CQLLag's cost buffers).
    """

    action_space: spaces.Space

    def __init__(
        self, *args: Any, action_source: ActionSource = "executed", intervention_penalty: float = 0.0, **kwargs: Any
    ) -> None:
        _check_options(action_source, intervention_penalty)
        super().__init__(*args, **kwargs)
        self.action_source: ActionSource = action_source
        self.intervention_penalty = float(intervention_penalty)

    def add(
        self, obs: Any, next_obs: Any, action: np.ndarray, reward: np.ndarray, done: np.ndarray, infos: list[dict[str, Any]]
    ) -> None:
        action, reward = shield_transition(
            self.action_space, action, reward, infos, self.action_source, self.intervention_penalty
        )
        super().add(obs, next_obs, action, reward, done, infos)  # type: ignore[misc]


class ShieldReplayBuffer(_ShieldTransitions, ReplayBuffer):
    """SB3 ``ReplayBuffer`` that stores the shield's executed action (or the proposed one) and can penalise vetoes.

    Pass as ``replay_buffer_class=ShieldReplayBuffer`` (options through ``replay_buffer_kwargs``).

    Args:
        *args: as ``ReplayBuffer``.
        action_source: ``"executed"`` (default) or ``"proposed"``.
        intervention_penalty: subtracted from the stored reward of every vetoed step (>= 0).
        **kwargs: as ``ReplayBuffer``.
    """


class ShieldDictReplayBuffer(_ShieldTransitions, DictReplayBuffer):
    """:class:`ShieldReplayBuffer` for ``Dict`` observation spaces (``MultiInputPolicy``)."""


class ShieldCostReplayBuffer(_ShieldTransitions, CostReplayBuffer):
    """:class:`ShieldReplayBuffer` for :class:`~shieldgym.algos.cqllag.CQLLag`: it also stores the step cost.

    ``CQLLag(..., replay_buffer_class=ShieldCostReplayBuffer)`` trains inside the shield on the executed
    action; the cost stored is the one the env reported for that executed action. Options as
    :class:`ShieldReplayBuffer`, plus ``cost_key`` as :class:`~shieldgym.algos.cqllag.buffers.CostReplayBuffer`.
    """


class ShieldCostDictReplayBuffer(_ShieldTransitions, CostDictReplayBuffer):
    """:class:`ShieldCostReplayBuffer` for ``Dict`` observation spaces (``MultiInputPolicy``)."""
