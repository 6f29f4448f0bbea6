"""Policies for CQLLag: SAC's squashed-Gaussian actor, twin reward and twin cost critics in one ensemble.

The four critics (``n_critics`` reward members then ``n_critics`` cost members) are ONE
:class:`~shieldgym.critics.networks.QEnsemble`, so every critic is evaluated in one batched pass on
the same (features, actions) rows: the CQL update evaluates them on ~``(1 + 3N)`` times the batch.

Parameters with ``requires_grad=False`` (a frozen backbone inside a features extractor) are left out
of every optimizer.
"""

from __future__ import annotations

from typing import Any, Literal, cast

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import BaseModel
from stable_baselines3.common.preprocessing import get_action_dim
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, CombinedExtractor, NatureCNN
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from stable_baselines3.sac.policies import Actor, SACPolicy
from torch import nn

from shieldgym.critics.networks import QEnsemble
from shieldgym.vlpm.accounting import ParameterReport, parameter_report

__all__ = ["CQLLagPolicy", "CnnPolicy", "CostCritic", "EnsembleCritic", "MlpPolicy", "MultiInputPolicy"]


def _trainable(params: Any) -> list[nn.Parameter]:
    return [p for p in params if p.requires_grad]


class EnsembleCritic(BaseModel):
    """Reward and cost critics ``[Q_r^1..Q_r^n, Q_c^1..Q_c^n]`` as one :class:`QEnsemble` of ``2n`` members.

    Args:
        observation_space: observation space.
        action_space: action space (Box).
        net_arch: hidden sizes of every critic.
        features_extractor: extractor of this critic (shared with the actor when
            ``share_features_extractor``, in which case it gets no gradient from the critic loss).
        features_dim: output size of the extractor.
        activation_fn: activation between hidden layers.
        normalize_images: divide image observations by 255.
        n_critics: critics per signal (2 = clipped double Q for reward, max of two for cost).
        share_features_extractor: whether the extractor belongs to the actor.

    ``forward(obs, actions)`` returns ``(2n, B)``; :meth:`q_values` does the same from features.
    """

    features_extractor: BaseFeaturesExtractor

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        net_arch: list[int],
        features_extractor: BaseFeaturesExtractor,
        features_dim: int,
        activation_fn: type[nn.Module] = nn.ReLU,
        normalize_images: bool = True,
        n_critics: int = 2,
        share_features_extractor: bool = False,
    ) -> None:
        super().__init__(
            observation_space, action_space, features_extractor=features_extractor, normalize_images=normalize_images
        )
        if n_critics < 1:
            raise ValueError(f"n_critics must be >= 1 (critics per signal), got {n_critics}.")
        action_dim = get_action_dim(self.action_space)
        self.share_features_extractor = share_features_extractor
        self.n_critics = n_critics
        self.q_net = QEnsemble(features_dim, action_dim, n_critics=2 * n_critics, net_arch=net_arch, activation=activation_fn)

    def features(self, obs: PyTorchObs) -> th.Tensor:
        """Observation features ``(B, F)`` (no gradient into a shared extractor)."""
        with th.set_grad_enabled(th.is_grad_enabled() and not self.share_features_extractor):
            return self.extract_features(obs, self.features_extractor)

    def q_values(self, features: th.Tensor, actions: th.Tensor) -> th.Tensor:
        """All ``2n`` critics on ``(B, F)`` features and actions in [-1, 1].

        ``actions`` ``(B, A)`` gives ``(2n, B)``; ``(N, B, A)`` (``N`` actions per state) gives
        ``(2n, N, B)``, with the state part of the critics' first layer computed once per state.
        """
        return self.q_net(features, actions)

    def forward(self, obs: PyTorchObs, actions: th.Tensor) -> th.Tensor:
        return self.q_values(self.features(obs), actions)


class CQLLagPolicy(SACPolicy):
    """SAC's policy (squashed-Gaussian :class:`~stable_baselines3.sac.policies.Actor`) with an :class:`EnsembleCritic`.

    Takes every argument of :class:`~stable_baselines3.sac.policies.SACPolicy`; ``n_critics`` is
    the number of critics PER SIGNAL (2 reward + 2 cost by default). Custom extractors go in as usual::

        CQLLag("MlpPolicy", env, policy_kwargs=dict(features_extractor_class=MyExtractor))
    """

    critic: EnsembleCritic  # type: ignore[assignment]
    critic_target: EnsembleCritic  # type: ignore[assignment]

    def __init__(
        self, observation_space: spaces.Space, action_space: spaces.Box, lr_schedule: Schedule, **kwargs: Any
    ) -> None:
        if not isinstance(action_space, spaces.Box):
            raise TypeError(f"CQLLag needs a continuous (Box) action space, got {action_space}.")
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def _build(self, lr_schedule: Schedule) -> None:
        # As SACPolicy._build, but frozen parameters (requires_grad=False) go in no optimizer.
        self.actor_average: Actor | None = None  # set by CQLLag(actor_average_tau=...)
        self.actor = self.make_actor()
        self.actor.optimizer = self.optimizer_class(
            _trainable(self.actor.parameters()),
            lr=lr_schedule(1),  # type: ignore[call-arg]
            **self.optimizer_kwargs,
        )
        if self.share_features_extractor:
            self.critic = self.make_critic(features_extractor=self.actor.features_extractor)
            critic_parameters = [
                p for n, p in self.critic.named_parameters() if "features_extractor" not in n and p.requires_grad
            ]
        else:
            self.critic = self.make_critic(features_extractor=None)
            critic_parameters = _trainable(self.critic.parameters())
        self.critic_target = self.make_critic(features_extractor=None)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.requires_grad_(False)
        self.critic.optimizer = self.optimizer_class(critic_parameters, lr=lr_schedule(1), **self.optimizer_kwargs)  # type: ignore[call-arg]
        self.critic_target.set_training_mode(False)

    def make_critic(self, features_extractor: BaseFeaturesExtractor | None = None) -> EnsembleCritic:  # type: ignore[override]
        critic_kwargs = self._update_features_extractor(self.critic_kwargs, features_extractor)
        return EnsembleCritic(**critic_kwargs).to(self.device)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data["share_features_extractor"] = self.share_features_extractor
        return data

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        # deterministic actions come from the averaged actor when there is one; sampled ones (exploration) from the live actor
        if deterministic and self.actor_average is not None:
            return self.actor_average(observation, deterministic=True)
        return self.actor(observation, deterministic)

    @property
    def n_critics(self) -> int:
        """Critics per signal."""
        return cast(int, self.critic_kwargs["n_critics"])

    def parameter_report(self) -> ParameterReport:
        """Trainable / total parameter counts of the actor and critics (targets excluded)."""
        return parameter_report(nn.ModuleList([self.actor, self.critic]))

    def cost_values(self, obs: PyTorchObs, actions: th.Tensor) -> th.Tensor:
        """The cost critics ``(n, B)`` at ``actions`` in the policy's [-1, 1] space."""
        return self.critic(obs, actions)[self.n_critics :]


class MultiInputPolicy(CQLLagPolicy):
    """:class:`CQLLagPolicy` for Dict observations (SB3's ``CombinedExtractor`` by default)."""

    def __init__(
        self, observation_space: spaces.Space, action_space: spaces.Box, lr_schedule: Schedule, **kwargs: Any
    ) -> None:
        kwargs.setdefault("features_extractor_class", CombinedExtractor)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)


class CnnPolicy(CQLLagPolicy):
    """:class:`CQLLagPolicy` for image observations (SB3's ``NatureCNN`` by default)."""

    def __init__(
        self, observation_space: spaces.Space, action_space: spaces.Box, lr_schedule: Schedule, **kwargs: Any
    ) -> None:
        kwargs.setdefault("features_extractor_class", NatureCNN)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)


MlpPolicy = CQLLagPolicy


class CostCritic:
    """The learnt cost critic as the shield's risk function ``critic(obs_batch, action_batch) -> (B,)``.

    Actions are taken in the env's action-space units and rescaled to the policy's [-1, 1] space.
    The object reads the policy live, so it follows further training.

    Args:
        policy: the :class:`CQLLagPolicy` whose cost critics to use.
        reduce: how to combine the cost critics: ``"max"`` (pessimistic, default), ``"mean"`` or ``"min"``.

    Example:
        >>> risk = model.cost_critic()  # doctest: +SKIP
        >>> risk(obs[None], action[None]).shape  # doctest: +SKIP
        (1,)
    """

    def __init__(self, policy: CQLLagPolicy, reduce: Literal["max", "mean", "min"] = "max") -> None:
        if reduce not in ("max", "mean", "min"):
            raise ValueError(f"reduce must be 'max', 'mean' or 'min', got {reduce!r}.")
        self.policy, self.reduce = policy, reduce

    def __call__(self, obs: np.ndarray | dict[str, np.ndarray], actions: np.ndarray) -> np.ndarray:
        obs_tensor, _ = self.policy.obs_to_tensor(obs)
        batch = next(iter(obs_tensor.values())).shape[0] if isinstance(obs_tensor, dict) else obs_tensor.shape[0]
        action_space = self.policy.action_space
        acts = np.asarray(actions, dtype=np.float32)
        if acts.size != batch * get_action_dim(action_space):
            raise ValueError(
                f"Expected {batch} action(s) of shape {action_space.shape} for {batch} observation(s), got shape {acts.shape}."
            )
        # env units -> the policy's [-1, 1] squashed space
        scaled = np.clip(self.policy.scale_action(acts.reshape(batch, -1)), -1.0, 1.0)
        with th.no_grad():
            q_c = self.policy.cost_values(obs_tensor, th.as_tensor(scaled, dtype=th.float32, device=self.policy.device))
            if self.reduce == "max":
                risk = q_c.max(dim=0).values
            elif self.reduce == "min":
                risk = q_c.min(dim=0).values
            else:
                risk = q_c.mean(dim=0)
        return risk.cpu().numpy().astype(np.float32)

    def __repr__(self) -> str:
        return f"CostCritic(reduce={self.reduce!r}, n_critics={self.policy.n_critics})"
