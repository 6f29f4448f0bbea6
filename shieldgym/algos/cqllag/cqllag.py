"""CQLLag: Lagrangian Conservative Q-Learning, an SB3 off-policy algorithm for constrained MDPs.

Problem: ``max_pi E[sum_t gamma^t r_t]  s.t.  E[sum_t gamma^t c_t] <= d_disc``.

One gradient step (all four critics share the sampled actions and run as ONE ensemble pass)::

    a' ~ pi(.|s'), a_pi ~ pi(.|s), N proposal actions per state: uniform, pi(.|s), pi(.|s')
    y_r = r + gamma (1 - done) (min_i Q'_ri(s', a') - alpha_ent log pi(a'|s'))       # bellman_target "min"
    y_c = c + gamma (1 - done)  max_i Q'_ci(s', a')                                    # bellman_target "max"
    L_Qr = TD(Q_r, y_r) + alpha_cql * CQL penalty (pushes Q_r down off-data: lower bound)
    L_Qc = TD(Q_c, y_c) + beta_cql  * CQL penalty (pushes Q_c up off-data:  upper bound)
    L_pi = E[alpha_ent log pi(a_pi|s) - min_i Q_ri(s, a_pi) + lambda * max_i Q_ci(s, a_pi)]
    lambda <- max(0, lambda + lr_lambda * (E_s[max_i Q_ci(s, a_pi)] - d_disc))        # dual ascent (or PID)

With ``lambda_source="episode_cost"`` the dual step is taken once per finished training episode,
on the measured (undiscounted) episode cost ``C`` against the per-episode limit ``d``, scale-free::

    lambda <- max(0, lambda + lr_lambda * (C - d) / max(d, 1))

With ``lambda_source="deterministic_episode_cost"`` every ``deterministic_every``-th training episode of each env
is played by the deterministic policy (the one ``predict(deterministic=True)`` and evaluation use; its
transitions go to the replay like any other) and only those episodes' costs take the dual step, so the
multiplier constrains the policy that is deployed rather than the noisier exploring one.

And ``normalise_actor_loss=True`` divides the Lagrangian part of the actor loss by ``1 + lambda``,
``(-min_i Q_ri + lambda max_i Q_ci) / (1 + lambda)``, so a large ``lambda`` cannot swamp a small reward.

Both conservative losses are :func:`shieldgym.critics.losses.conservative_td_loss` (Kumar et al., 2020,
CQL(H) with importance-sampled proposals), with ``upper_bound`` choosing the direction.

The per-episode limit ``d`` is put on the critic's discounted scale assuming the cost is spread
evenly over an episode of ``T`` steps: ``d_disc = d (1 - gamma^T) / ((1 - gamma) T)``
(:func:`~shieldgym.algos.cqllag.lagrange.discounted_cost_limit`).

References: Kumar et al. (2020) "Conservative Q-Learning for Offline RL"; Haarnoja et al. (2018)
"Soft Actor-Critic"; Stooke et al. (2020) "Responsive Safety in RL by PID Lagrangian Methods".
"""

from __future__ import annotations

import io
import math
import os
import pathlib
import tempfile
import warnings
import zipfile
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal, TypeVar

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.preprocessing import get_action_dim
from stable_baselines3.common.save_util import load_from_zip_file
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, PyTorchObs, Schedule
from stable_baselines3.common.utils import configure_logger, get_parameters_by_name, polyak_update, safe_mean
from stable_baselines3.sac.policies import Actor

from shieldgym.algos.cqllag.buffers import CostDictReplayBuffer, CostReplayBuffer
from shieldgym.algos.cqllag.datasets import OfflineDataset, load_offline_dataset
from shieldgym.algos.cqllag.lagrange import LagrangeMultiplier, PIDLagrangeMultiplier, discounted_cost_limit
from shieldgym.algos.cqllag.policies import (
    CnnPolicy,
    CostCritic,
    CQLLagPolicy,
    EnsembleCritic,
    MlpPolicy,
    MultiInputPolicy,
)
from shieldgym.algos.cqllag.safe_threshold import SafeThresholdTuning, tune_safe_threshold
from shieldgym.algos.cqllag.snapshots import frozen_copy, load_trainable_state, trainable_state
from shieldgym.costs.base import COST_KEY, get_cost
from shieldgym.critics.losses import bellman_target, conservative_td_loss
from shieldgym.errors import ShieldgymError

__all__ = ["CQLLag", "CheckpointError", "TrainingDivergedError"]

SelfCQLLag = TypeVar("SelfCQLLag", bound="CQLLag")

# What one gradient step reports, in this order (logged as train/<name>, means over the steps of a call).
_STAT_NAMES = (
    "reward_critic_loss",
    "cost_critic_loss",
    "cql_reward_penalty",
    "cql_cost_penalty",
    "actor_loss",
    "ent_coef",
    "lambda",
    "alpha_cql",
    "beta_cql",
    "cost_estimate",
)
_DEFAULT_EPISODE_LENGTH = 1000
# Dual step size per lambda_source: per gradient step on the discounted critic estimate, per finished
# episode on the normalised error (C - d) / max(d, 1).
_LAMBDA_LR_DEFAULTS = {"critic": 1e-3, "episode_cost": 0.05, "deterministic_episode_cost": 0.05}


def _integer(name: str, value: Any, minimum: int, context: str = "") -> int:
    """``value`` as an ``int`` if it is an integer (not a bool) ``>= minimum``, else a ``ValueError`` naming ``name``."""
    numeric = isinstance(value, int | float | np.integer) and not isinstance(value, bool) and math.isfinite(value)
    if not numeric or int(value) != value or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}{context}, got {value!r}.")
    return int(value)


class CheckpointError(ShieldgymError, ValueError):
    """A file is not a readable CQLLag checkpoint (truncated, corrupt, or saved by another algorithm)."""


class TrainingDivergedError(ShieldgymError, FloatingPointError):
    """A loss became NaN or infinite; the message names the loss and the gradient step."""


class CQLLag(OffPolicyAlgorithm):
    """Lagrangian Conservative Q-Learning (CQL + SAC + a Lagrange multiplier on the cost critic).

    Takes SAC's arguments (``learning_rate``, ``buffer_size``, ``batch_size``, ``tau``, ``gamma``,
    ``train_freq``, ``gradient_steps``, ``ent_coef``, ``target_entropy``, ...) plus:

    Args:
        cost_key: info key of the per-step cost (default ``"cost"``); missing at the first step -> error.
        cost_limit: per-episode cost limit ``d`` (default 25).
        episode_length: ``T`` for the discounted conversion of ``cost_limit``; default: the env's
            ``spec.max_episode_steps``, else 1000.
        cost_limit_discounted: give ``d_disc`` directly instead (overrides the conversion).
        lambda_lr: dual step size of the Lagrange multiplier.
        lambda_init: initial ``lambda``.
        lambda_max: optional upper clip of ``lambda``.
        pid_lagrangian: ``dict(kp=..., ki=..., kd=..., ema_decay=...)`` to use the PID Lagrangian
            (Stooke et al., 2020) instead of plain dual ascent.
        lambda_source: what the multiplier reads online. ``"critic"``: every gradient step, the cost
            critic's estimate ``E_s[max_i Q_ci(s, a ~ pi)]`` on the replay batch against ``d_disc``.
            ``"episode_cost"``: once per finished training episode (any env of a VecEnv), the episode's
            measured cost ``C`` against ``d``, as ``(C - d) / max(d, 1)``; before the first episode
            ends ``lambda`` stays at ``lambda_init``. The critic's estimate is biased upwards by the
            exploration's costly states in the replay (and by the max over the twin cost critics), so
            with ``"critic"`` ``lambda`` can keep rising under a policy that meets the limit.
            ``"deterministic_episode_cost"``: the same step, taken only on the episodes played by the
            deterministic policy (see ``deterministic_every``); the exploring policy's episodes give no dual step.
            :meth:`learn_offline` has no episodes and always reads the critic.
        lambda_lr: dual step size: per gradient step with ``"critic"`` (default 1e-3), per finished
            episode on the normalised error with ``"episode_cost"`` (default 0.05).
        lambda_error_clip: optional bound ``c`` on the multiplier's normalised error, clipped to ``[-c, c]``.
            With ``"episode_cost"`` the error ``(C - d) / d`` is at least -1 but unbounded above, so one
            episode at ``C = 10 d`` raises ``lambda`` as much as nine safe episodes lower it; ``c = 1`` makes
            rises and falls equally fast. Default: no clip.
        lambda_lr_down: optional dual step size of the steps that lower ``lambda`` (a negative error: the
            constraint is met); default ``lambda_lr``. A larger value lets ``lambda`` come back down after a
            costly stretch faster than it rose, so one bad stretch mid-training does not hold the policy
            back for the rest of the run. Not with ``pid_lagrangian`` (its gains set its steps).
        lambda_delay_steps: online, the multiplier takes no step up to this env step (episodes ending at it
            included; ``lambda`` stays at ``lambda_init``), so the policy first learns the task and the costly
            exploration of the first steps does not drive ``lambda`` up. Default 0.
        deterministic_every: every ``k``-th training episode of each env (its 2nd, 4th, ... for ``k = 2``) that
            starts after ``learning_starts`` is played by the deterministic policy, without action noise: by a
            frozen copy of the actor taken when the episode starts (frozen parameters shared, not copied), so the
            episode measures one fixed policy while training goes on. Its transitions go to the replay like any
            other. Default: 2 with ``lambda_source="deterministic_episode_cost"``, else 0 (none). ``k = 1`` plays
            every episode deterministically (no exploration from the policy's noise). Logged:
            ``rollout/det_ep_cost_mean`` and ``rollout/det_ep_rew_mean``.
        deterministic_repeats: how many consecutive deterministic episodes each frozen copy plays (default 1).
            The copy whose episodes have the highest mean return among those with mean cost ``<= cost_limit`` is
            kept as :attr:`best_deterministic`; :meth:`load_best_deterministic` puts it into the actor.
        normalise_actor_loss: divide the actor's ``-Q_r + lambda Q_c`` by ``1 + lambda`` (the entropy
            term is not divided), so the actor weighs reward and cost by ``1 / (1 + lambda)`` and
            ``lambda / (1 + lambda)``: bounded weights whatever the reward's scale.
        cost_reduce: how the actor loss and the multiplier's critic estimate combine the twin cost
            critics: ``"max"`` (pessimistic, default) or ``"mean"``. The max compounds an upward bias
            over the horizon offline; the cost critics' Bellman target always takes the max.
        cost_critic_policy: which policy the cost critics evaluate. ``"stochastic"`` (default): the training
            policy, as the reward critics do (next actions sampled in the Bellman target, a sampled action in
            the actor's cost term). ``"deterministic"``: the policy's mean action ``tanh(mu(s))``, the one
            ``predict(deterministic=True)`` runs: the cost target reads ``Q_c(s', tanh(mu(s')))`` and the
            actor's cost term ``lambda Q_c(s, tanh(mu(s)))``, whose gradient reaches the mean only. Then
            ``Q_c`` is the cost-to-go of the policy that is evaluated and deployed, not of the exploring one:
            near a boundary the exploration's noise crosses it while the mean path does not, and a stochastic
            cost critic pushes the mean path away from the boundary by the noise's reach. Pair it with
            ``lambda_source="deterministic_episode_cost"`` so the multiplier also reads that policy. The
            reward side is unchanged (soft Q of the training policy). The mean is the live actor's, also with
            ``actor_average_tau``.
        cost_gamma: discount of the cost critics' Bellman target; default ``gamma``. A smaller value makes
            ``Q_c`` a local signal, the cost of the next ``~1 / (1 - cost_gamma)`` steps, so the actor's cost
            term acts where a crossing is imminent instead of spreading a state's long-run cost rate over every
            state that leads there. ``cost_limit_discounted`` (the critic-read multiplier's limit and
            :meth:`safe_predict`'s default threshold) is converted with it. The episode-cost multipliers
            (``lambda_source="episode_cost"`` / ``"deterministic_episode_cost"``) read undiscounted measured
            costs and are unaffected.
        bc_weight: weight of a behaviour-cloning term on the actor (as in TD3+BC, Fujimoto and Gu, 2021),
            ``bc_weight * E[||a_pi - a_data||^2]`` with actions in ``[-1, 1]``, which keeps an offline policy
            near the data's actions; 0 (default) disables it.
        alpha_cql: weight of the reward-side CQL penalty (initial value when auto-tuned; 0 = SAC critic).
        beta_cql: weight of the cost-side CQL penalty. With both weights 0 and neither tuned (the usual
            online setting, a Lagrangian SAC) the proposal actions are not drawn at all: each update
            evaluates the critics on the batch's actions only, and the penalties log as 0.
        cql_alpha_threshold / cql_beta_threshold: if set, the weight is tuned by dual gradient descent so
            the per-critic penalty stays near this threshold (CQL(H) "with Lagrange").
        actor_average_tau: if set, the policy keeps an exponential moving average of the actor's trainable
            parameters, ``avg <- (1 - tau) avg + tau actor`` after every actor step (a horizon of about ``1 / tau``
            gradient steps), and deterministic predictions (evaluation, deployment) use it; sampled actions
            (exploration) still come from the live actor. A Lagrangian's last iterate oscillates with its
            multiplier; the average smooths that. ``None`` (default): no average.
        cql_n_actions: ``N`` proposal actions per state and proposal (uniform, pi(s), pi(s')).
        cql_temperature: temperature of the soft maximum in the penalty.
        cql_weight_lr: learning rate of the auto-tuned CQL weights.

    Example:
        >>> model = CQLLag("MlpPolicy", env, cost_limit=25.0)  # doctest: +SKIP
        >>> model.learn(10_000, progress_bar=True)  # doctest: +SKIP
        >>> risk = model.cost_critic()  # risk(obs_batch, action_batch) -> (B,)  # doctest: +SKIP
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": MlpPolicy,
        "CnnPolicy": CnnPolicy,
        "MultiInputPolicy": MultiInputPolicy,
    }
    policy: CQLLagPolicy
    actor: Actor
    critic: EnsembleCritic
    critic_target: EnsembleCritic
    replay_buffer: CostReplayBuffer | CostDictReplayBuffer  # type: ignore[assignment]
    lagrange: LagrangeMultiplier

    def __init__(
        self,
        policy: str | type[CQLLagPolicy],
        env: GymEnv | str | None,
        learning_rate: float | Schedule = 3e-4,
        buffer_size: int = 1_000_000,
        learning_starts: int = 100,
        batch_size: int = 256,
        tau: float = 0.005,
        gamma: float = 0.99,
        train_freq: int | tuple[int, str] = 1,
        gradient_steps: int = 1,
        action_noise: ActionNoise | None = None,
        replay_buffer_class: type[ReplayBuffer] | None = None,
        replay_buffer_kwargs: dict[str, Any] | None = None,
        optimize_memory_usage: bool = False,
        ent_coef: str | float = "auto",
        target_update_interval: int = 1,
        target_entropy: str | float = "auto",
        cost_key: str = COST_KEY,
        cost_limit: float = 25.0,
        episode_length: int | None = None,
        cost_limit_discounted: float | None = None,
        lambda_lr: float | None = None,
        lambda_init: float = 0.0,
        lambda_max: float | None = None,
        pid_lagrangian: dict[str, float] | None = None,
        lambda_source: Literal["critic", "episode_cost", "deterministic_episode_cost"] = "critic",
        lambda_error_clip: float | None = None,
        lambda_lr_down: float | None = None,
        lambda_delay_steps: int = 0,
        deterministic_every: int | None = None,
        deterministic_repeats: int = 1,
        normalise_actor_loss: bool = False,
        cost_reduce: Literal["max", "mean"] = "max",
        cost_critic_policy: Literal["stochastic", "deterministic"] = "stochastic",
        cost_gamma: float | None = None,
        bc_weight: float = 0.0,
        actor_average_tau: float | None = None,
        alpha_cql: float = 1.0,
        beta_cql: float = 1.0,
        cql_alpha_threshold: float | None = None,
        cql_beta_threshold: float | None = None,
        cql_n_actions: int = 10,
        cql_temperature: float = 1.0,
        cql_weight_lr: float = 3e-4,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        super().__init__(
            policy,
            env,  # type: ignore[arg-type]
            learning_rate,
            buffer_size,
            learning_starts,
            batch_size,
            tau,
            gamma,
            train_freq,
            gradient_steps,
            action_noise,
            replay_buffer_class=replay_buffer_class,
            replay_buffer_kwargs=replay_buffer_kwargs,
            optimize_memory_usage=optimize_memory_usage,
            policy_kwargs=policy_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            device=device,
            seed=seed,
            use_sde=False,
            sde_support=False,
            supported_action_spaces=(spaces.Box,),
            support_multi_env=True,
        )
        for name, value in (("alpha_cql", alpha_cql), ("beta_cql", beta_cql), ("cql_temperature", cql_temperature)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.")
        if cql_temperature <= 0:
            raise ValueError(f"cql_temperature must be > 0, got {cql_temperature!r}.")
        if int(cql_n_actions) < 1:
            raise ValueError(f"cql_n_actions must be >= 1, got {cql_n_actions!r}.")
        self.ent_coef = ent_coef
        self.target_entropy = target_entropy
        self.target_update_interval = target_update_interval
        self.log_ent_coef: th.Tensor | None = None
        self.ent_coef_optimizer: th.optim.Adam | None = None
        self.cost_key = cost_key
        self.cost_limit = float(cost_limit)
        self.episode_length = episode_length if episode_length is not None else self._env_episode_length()
        self.cost_limit_discounted = cost_limit_discounted
        self.safe_threshold: float | None = None
        if lambda_source not in _LAMBDA_LR_DEFAULTS:
            raise ValueError(f"lambda_source must be one of {sorted(_LAMBDA_LR_DEFAULTS)}, got {lambda_source!r}.")
        self.lambda_source = lambda_source
        self.lambda_lr = _LAMBDA_LR_DEFAULTS[lambda_source] if lambda_lr is None else float(lambda_lr)
        self.lambda_init, self.lambda_max = lambda_init, lambda_max
        self.pid_lagrangian = pid_lagrangian
        self.lambda_error_clip = lambda_error_clip
        if lambda_lr_down is not None and pid_lagrangian is not None:
            raise ValueError("lambda_lr_down applies to plain dual ascent; the PID Lagrangian's gains set its steps.")
        self.lambda_lr_down = lambda_lr_down
        self.lambda_delay_steps = _integer("lambda_delay_steps", lambda_delay_steps, 0)
        if deterministic_every is None:
            deterministic_every = 2 if lambda_source == "deterministic_episode_cost" else 0
        minimum = 1 if lambda_source == "deterministic_episode_cost" else 0
        self.deterministic_every = _integer("deterministic_every", deterministic_every, minimum, f" with {lambda_source!r}")
        self.deterministic_repeats = _integer("deterministic_repeats", deterministic_repeats, 1)
        self.normalise_actor_loss = bool(normalise_actor_loss)
        if cost_reduce not in ("max", "mean"):
            raise ValueError(f"cost_reduce must be 'max' or 'mean', got {cost_reduce!r}.")
        self.cost_reduce = cost_reduce
        if cost_critic_policy not in ("stochastic", "deterministic"):
            raise ValueError(f"cost_critic_policy must be 'stochastic' or 'deterministic', got {cost_critic_policy!r}.")
        self.cost_critic_policy = cost_critic_policy
        if cost_gamma is not None and not (math.isfinite(cost_gamma) and 0 < cost_gamma <= 1):
            raise ValueError(f"cost_gamma must be in (0, 1] or None, got {cost_gamma!r}.")
        self.cost_gamma = None if cost_gamma is None else float(cost_gamma)
        if not (math.isfinite(bc_weight) and bc_weight >= 0):
            raise ValueError(f"bc_weight must be a finite number >= 0, got {bc_weight!r}.")
        self.bc_weight = float(bc_weight)
        if actor_average_tau is not None and not (math.isfinite(actor_average_tau) and 0 < actor_average_tau <= 1):
            raise ValueError(f"actor_average_tau must be in (0, 1] or None, got {actor_average_tau!r}.")
        self.actor_average_tau = None if actor_average_tau is None else float(actor_average_tau)
        self._average_pairs: tuple[list[th.Tensor], list[th.Tensor], list[th.Tensor], list[th.Tensor]] | None = None
        self._offline_training = False  # True inside learn_offline: lambda reads the critic there
        self.alpha_cql, self.beta_cql = float(alpha_cql), float(beta_cql)
        self.cql_alpha_threshold, self.cql_beta_threshold = cql_alpha_threshold, cql_beta_threshold
        self.cql_n_actions = int(cql_n_actions)
        self.cql_temperature = float(cql_temperature)
        self.cql_weight_lr = cql_weight_lr
        self.ep_cost_buffer: deque[float] | None = None
        # deterministic episodes (lambda_source="deterministic_episode_cost"): cost, return; per env: episodes finished
        self.det_ep_buffer: deque[tuple[float, float]] | None = None
        self._episode_index: np.ndarray | None = None
        # the best frozen copy so far: return, cost, episodes, num_timesteps, actor_state (trainable entries)
        self.best_deterministic: dict[str, Any] | None = None
        self._lambda_frozen = False  # True during the lambda warm-up of learn_offline
        self._initial_obs: PyTorchObs | None = None  # set by learn_offline(lambda_states="initial")
        if _init_setup_model:
            self._setup_model()

    # ------------------------------------------------------------------ setup

    def _env_episode_length(self) -> int | None:
        if self.env is None:
            return None
        # the registered time limit, else the one of a TimeLimit wrapper around an unregistered env
        for attr in ("spec", "_max_episode_steps"):
            try:
                value = self.env.get_attr(attr, indices=[0])[0]
            except (AttributeError, IndexError, NotImplementedError):
                continue
            steps = getattr(value, "max_episode_steps", None) if attr == "spec" else value
            if isinstance(steps, int) and steps > 0:
                return steps
        return None

    def _setup_model(self) -> None:
        is_dict = isinstance(self.observation_space, spaces.Dict)
        if self.replay_buffer_class is None:
            self.replay_buffer_class = CostDictReplayBuffer if is_dict else CostReplayBuffer
        elif not issubclass(self.replay_buffer_class, (CostReplayBuffer, CostDictReplayBuffer)):
            raise TypeError(
                f"CQLLag needs a replay buffer that stores costs (CostReplayBuffer or CostDictReplayBuffer), "
                f"got {self.replay_buffer_class.__name__}. Inside a shield, use ShieldCostReplayBuffer "
                "(or ShieldCostDictReplayBuffer) from shieldgym.wrappers.shield_sb3."
            )
        self.replay_buffer_kwargs.setdefault("cost_key", self.cost_key)
        super()._setup_model()
        self.actor = self.policy.actor
        self.critic = self.policy.critic
        self.critic_target = self.policy.critic_target
        self.batch_norm_stats = get_parameters_by_name(self.critic, ["running_"])
        self.batch_norm_stats_target = get_parameters_by_name(self.critic_target, ["running_"])
        self._setup_actor_average()

        # Entropy temperature, as in SAC (Haarnoja et al., 2018b): learnt in log space.
        if self.target_entropy == "auto":
            self.target_entropy = -float(get_action_dim(self.action_space))
        else:
            self.target_entropy = float(self.target_entropy)
        if isinstance(self.ent_coef, str) and self.ent_coef.startswith("auto"):
            init_value = float(self.ent_coef.split("_")[1]) if "_" in self.ent_coef else 1.0
            if not init_value > 0.0:
                raise ValueError(f"The initial value of ent_coef must be > 0, got {self.ent_coef!r}.")
            self.log_ent_coef = th.log(th.ones(1, device=self.device) * init_value).requires_grad_(True)
            self.ent_coef_optimizer = th.optim.Adam([self.log_ent_coef], lr=self.lr_schedule(1))
        else:
            self.ent_coef_tensor = th.tensor(float(self.ent_coef), device=self.device)

        # The cost limit on the critic's discounted scale.
        if self.cost_limit_discounted is None:
            if self.episode_length is None:
                warnings.warn(
                    f"CQLLag: the episode length is unknown (no env spec); converting cost_limit={self.cost_limit} with "
                    f"T={_DEFAULT_EPISODE_LENGTH}. Pass episode_length= or cost_limit_discounted= to silence this.",
                    stacklevel=2,
                )
                self.episode_length = _DEFAULT_EPISODE_LENGTH
            self.cost_limit_discounted = discounted_cost_limit(self.cost_limit, self._cost_gamma, self.episode_length)
        if self.pid_lagrangian is not None:
            self.lagrange = PIDLagrangeMultiplier(
                self.cost_limit_discounted,
                init=self.lambda_init,
                max_value=self.lambda_max,
                error_clip=self.lambda_error_clip,
                **self.pid_lagrangian,
            )
        else:
            self.lagrange = LagrangeMultiplier(
                self.cost_limit_discounted,
                lr=self.lambda_lr,
                init=self.lambda_init,
                max_value=self.lambda_max,
                error_clip=self.lambda_error_clip,
                lr_down=self.lambda_lr_down,
            )
        self.lagrange.to(self.device)

        # CQL weights: fixed, or tuned in log space by dual descent against a threshold (CQL(H) with Lagrange).
        self.log_alpha_cql, self.alpha_cql_optimizer = self._cql_weight(self.alpha_cql, self.cql_alpha_threshold, "alpha_cql")
        self.log_beta_cql, self.beta_cql_optimizer = self._cql_weight(self.beta_cql, self.cql_beta_threshold, "beta_cql")

        report = self.policy.parameter_report()
        self.trainable_params, self.total_params, self.trainable_fraction = report.trainable, report.total, report.fraction
        if self.verbose >= 1:
            print(f"CQLLag: {report}")

    def _setup_actor_average(self) -> None:
        """The averaged actor (``actor_average_tau``): a copy sharing the frozen parameters, and the tensors it tracks."""
        self._average_pairs = None
        if self.actor_average_tau is None:
            return
        average = frozen_copy(self.actor)  # eval mode; frozen parameters are the live actor's own tensors
        if hasattr(average, "optimizer"):
            del average.optimizer  # the copied optimizer would only hold memory
        self.policy.actor_average = average  # type: ignore[assignment]
        live, copies = dict(self.actor.named_parameters()), dict(average.named_parameters())
        names = [name for name, p in live.items() if p.requires_grad]
        live_buffers, average_buffers = dict(self.actor.named_buffers()), dict(average.named_buffers())
        self._average_pairs = (
            [live[n] for n in names],
            [copies[n] for n in names],
            [live_buffers[n] for n in live_buffers],
            [average_buffers[n] for n in live_buffers],
        )

    def _update_actor_average(self) -> None:
        if self._average_pairs is None or self.actor_average_tau is None:
            return
        params, average_params, buffers, average_buffers = self._average_pairs
        polyak_update(params, average_params, self.actor_average_tau)
        polyak_update(buffers, average_buffers, 1.0)  # normalisation statistics follow the live actor, as the critics' do

    def _cql_weight(self, init: float, threshold: float | None, name: str) -> tuple[th.Tensor, th.optim.Adam | None]:
        if threshold is None:
            return th.tensor(math.log(init) if init > 0 else -math.inf, device=self.device), None
        if not init > 0:
            raise ValueError(f"{name} must be > 0 when it is auto-tuned (threshold {threshold}), got {init}.")
        log_w = th.tensor(math.log(init), device=self.device, requires_grad=True)
        return log_w, th.optim.Adam([log_w], lr=self.cql_weight_lr)

    # ------------------------------------------------------------------ training

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        """Run ``gradient_steps`` CQLLag updates on batches from the replay buffer (SB3 hook)."""
        self.policy.set_training_mode(True)
        optimizers: list[th.optim.Optimizer] = [self.actor.optimizer, self.critic.optimizer]
        if self.ent_coef_optimizer is not None:
            optimizers.append(self.ent_coef_optimizer)
        self._update_learning_rate(optimizers)

        # One row of scalars per step, kept on the device: no host sync inside the loop.
        stats = th.empty((gradient_steps, len(_STAT_NAMES)), device=self.device)
        for step in range(gradient_steps):
            batch = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
            stats[step] = self._gradient_step(batch, update_target=(self._n_updates + step) % self.target_update_interval == 0)

        values = stats.cpu().numpy()
        bad = ~np.isfinite(values)
        if bad.any():
            step, col = np.argwhere(bad)[0]
            raise TrainingDivergedError(
                f"train/{_STAT_NAMES[col]} became {values[step, col]} at gradient step {self._n_updates + step + 1}; "
                f"training stopped (lower the learning rate, check rewards/costs/observations for NaN or huge values)."
            )
        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        for name, mean in zip(_STAT_NAMES, values.mean(axis=0)):
            self.logger.record(f"train/{name}", float(mean))
        self.logger.record("train/cost_limit_discounted", self.cost_limit_discounted)
        self.logger.record("train/trainable_params", self.trainable_params)
        self.logger.record("train/trainable_fraction", self.trainable_fraction)

    @property
    def _cost_gamma(self) -> float:
        """The cost critics' discount: ``cost_gamma``, else ``gamma``."""
        return self.gamma if self.cost_gamma is None else self.cost_gamma

    @property
    def uses_cql_penalties(self) -> bool:
        """Whether an update computes the CQL penalties: ``False`` only with both weights 0 and neither tuned."""
        tuned = self.alpha_cql_optimizer is not None or self.beta_cql_optimizer is not None
        return tuned or self.alpha_cql > 0 or self.beta_cql > 0

    def _sample_actions(
        self, obs: PyTorchObs, next_obs: PyTorchObs, n: int
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor, th.Tensor, th.Tensor]:
        """``n`` reparameterised squashed-Gaussian samples at ``s`` and ``s'`` from one actor pass each.

        Returns ``(a_s (n, B, A), logp_s (n, B), a_s' (n, B, A), logp_s' (n, B), mu (2, B, A))``, where
        ``mu`` holds the Gaussian means (before the tanh) at ``s`` and ``s'``; sample 0 at ``s`` and the
        mean at ``s`` keep their gradient (they are the actor-loss actions).
        """
        mean_s, log_std_s, _ = self.actor.get_action_dist_params(obs)
        with th.no_grad():
            mean_n, log_std_n, _ = self.actor.get_action_dist_params(next_obs)
        # (2, B, A): both states' parameters, sampled together -> (N, 2, B, A)
        mean, log_std = th.stack([mean_s, mean_n]), th.stack([log_std_s, log_std_n])
        std = log_std.exp()
        noise = th.randn((n, *mean.shape), device=mean.device)
        u = mean + std * noise
        actions = th.tanh(u)
        # log N(u; mean, std) - sum log(1 - tanh(u)^2): the change of variables of the tanh squashing
        log_gauss = (-0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        logp = log_gauss - th.log(1.0 - actions.pow(2) + 1e-6).sum(-1)
        return actions[:, 0], logp[:, 0], actions[:, 1], logp[:, 1], mean

    def _gradient_step(self, batch: Any, update_target: bool) -> th.Tensor:
        """One CQLLag update; returns the detached scalars named in ``_STAT_NAMES``."""
        n_c, n_act = self.policy.n_critics, self.cql_n_actions
        cql = self.uses_cql_penalties
        bsz = batch.rewards.shape[0]
        action_dim = batch.actions.shape[-1]
        rewards, costs, dones = batch.rewards.view(-1), batch.costs.view(-1), batch.dones.view(-1)

        a_s, logp_s, a_n, logp_n, mu = self._sample_actions(batch.observations, batch.next_observations, n_act if cql else 1)
        a_pi, logp_pi = a_s[0], logp_s[0]  # (B, A), (B,) with gradient into the actor
        # the cost critics evaluate the mean action (cost_critic_policy="deterministic"): one more action per state
        cost_on_mode = self.cost_critic_policy == "deterministic"

        # --- entropy temperature (SAC)
        if self.ent_coef_optimizer is not None and self.log_ent_coef is not None:
            ent_coef = th.exp(self.log_ent_coef.detach())
            assert isinstance(self.target_entropy, float)
            ent_coef_loss = -(self.log_ent_coef * (logp_pi + self.target_entropy).detach()).mean()
            self.ent_coef_optimizer.zero_grad()
            ent_coef_loss.backward()
            self.ent_coef_optimizer.step()
        else:
            ent_coef = self.ent_coef_tensor

        # --- targets: reward side min over twins with the entropy bonus, cost side max over twins
        with th.no_grad():
            next_features = self.critic_target.features(batch.next_observations)
            if cost_on_mode:
                next_q_both = self.critic_target.q_values(next_features, th.stack([a_n[0], th.tanh(mu[1])]))  # (2n, 2, B)
                next_q_r, next_q_c = next_q_both[:n_c, 0], next_q_both[n_c:, 1]
            else:
                next_q = self.critic_target.q_values(next_features, a_n[0].detach())  # (2n, B)
                next_q_r, next_q_c = next_q[:n_c], next_q[n_c:]
            y_r = bellman_target(rewards, dones, next_q_r - ent_coef * logp_n[0], self.gamma, reduce="min")
            y_c = bellman_target(costs, dones, next_q_c, self._cost_gamma, reduce="max")

        # --- all critics on [data; uniform; pi(s); pi(s')] actions in ONE ensemble pass; the state part of the
        # first layer is computed once per state and shared by its 1 + 3N actions. Without penalties: data only.
        features = self.critic.features(batch.observations)  # (B, F)
        q_prop: th.Tensor | None = None
        log_density: th.Tensor | None = None
        if cql:
            uniform = th.rand((n_act, bsz, action_dim), device=features.device) * 2.0 - 1.0
            actions = th.cat([batch.actions.unsqueeze(0), uniform, a_s.detach(), a_n.detach()])  # (1 + 3N, B, A)
            q_all = self.critic.q_values(features, actions)  # (2n, 1 + 3N, B)
            q_data = q_all[:, 0]  # (2n, B)
            q_prop = q_all[:, 1:].transpose(1, 2)  # (2n, B, 3N), a view
            # log mu(a | s) of each proposal: uniform on [-1, 1]^A, and the policy's own densities
            log_uniform = th.full((n_act, bsz), -action_dim * math.log(2.0), device=features.device)
            log_density = th.cat([log_uniform, logp_s.detach(), logp_n.detach()]).T  # (B, 3N)
        else:
            q_data = self.critic.q_values(features, batch.actions)  # (2n, B)

        alpha_cql, beta_cql = self.log_alpha_cql.detach().exp(), self.log_beta_cql.detach().exp()
        reward_loss = conservative_td_loss(
            q_data[:n_c],
            y_r,
            None if q_prop is None else q_prop[:n_c],
            upper_bound=False,
            weight=alpha_cql,
            temperature=self.cql_temperature,
            log_density=log_density,
        )
        cost_loss = conservative_td_loss(
            q_data[n_c:],
            y_c,
            None if q_prop is None else q_prop[n_c:],
            upper_bound=True,
            weight=beta_cql,
            temperature=self.cql_temperature,
            log_density=log_density,
        )
        self.critic.optimizer.zero_grad()
        (reward_loss.loss + cost_loss.loss).backward()
        self.critic.optimizer.step()
        self._tune_cql_weight(self.log_alpha_cql, self.alpha_cql_optimizer, reward_loss.penalty, self.cql_alpha_threshold)
        self._tune_cql_weight(self.log_beta_cql, self.beta_cql_optimizer, cost_loss.penalty, self.cql_beta_threshold)

        # --- actor: maximise Q_r - lambda Q_c + entropy, with the just-updated critics
        lam = self.lagrange.value.to(features.dtype)
        if cost_on_mode:  # Q_r at the sampled action, Q_c at the mean action: one pass, (2n, 2, B)
            q_both = self.critic.q_values(features.detach(), th.stack([a_pi, th.tanh(mu[0])]))
            q_r_pi, q_c_pi = q_both[:n_c, 0].min(dim=0).values, self._reduce_cost(q_both[n_c:, 1])
        else:
            q_pi = self.critic.q_values(features.detach(), a_pi)  # (2n, B)
            q_r_pi = q_pi[:n_c].min(dim=0).values
            q_c_pi = self._reduce_cost(q_pi[n_c:])
        lagrangian = -q_r_pi + lam * q_c_pi
        if self.normalise_actor_loss:
            lagrangian = lagrangian / (1.0 + lam)  # weights 1/(1+lambda) on Q_r, lambda/(1+lambda) on Q_c
        actor_loss = (ent_coef * logp_pi + lagrangian).mean()
        if self.bc_weight > 0:  # behaviour cloning towards the batch's (data) actions, TD3+BC style
            actor_loss = actor_loss + self.bc_weight * (a_pi - batch.actions).pow(2).sum(dim=-1).mean()
        self.actor.optimizer.zero_grad()
        actor_loss.backward()
        self.actor.optimizer.step()
        self._update_actor_average()

        # --- dual ascent on lambda with the critic's estimate of the policy's discounted cost (with
        # lambda_source="episode_cost" online, the step is taken per finished episode in _update_info_buffer)
        cost_estimate = q_c_pi.detach().mean() if self._initial_obs is None else self._initial_cost_estimate(bsz)
        if self._offline_training:
            if not self._lambda_frozen:
                self.lagrange.update(cost_estimate)
        elif self.lambda_source == "critic" and not self._lambda_delayed():
            self.lagrange.update(cost_estimate)

        if update_target:
            polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
            polyak_update(self.batch_norm_stats, self.batch_norm_stats_target, 1.0)

        return th.stack(
            [
                reward_loss.loss.detach(),
                cost_loss.loss.detach(),
                reward_loss.penalty.detach(),
                cost_loss.penalty.detach(),
                actor_loss.detach(),
                ent_coef.reshape(()),
                lam,
                alpha_cql,
                beta_cql,
                cost_estimate,
            ]
        )

    @th.no_grad()
    def _initial_cost_estimate(self, batch_size: int) -> th.Tensor:
        """``E_{s0}[max_i Q_ci(s0, a)]``, ``a ~ pi(.|s0)``, over (at most ``batch_size`` random) episode-start states."""
        assert self._initial_obs is not None
        obs = self._initial_obs
        n = len(next(iter(obs.values()))) if isinstance(obs, dict) else len(obs)
        if n > batch_size:
            idx = th.randint(n, (batch_size,), device=self.device)
            obs = {k: v[idx] for k, v in obs.items()} if isinstance(obs, dict) else obs[idx]
        q = self.critic(obs, self.actor(obs))  # (2n_critics, B)
        return self._reduce_cost(q[self.policy.n_critics :]).mean()

    def _reduce_cost(self, q_c: th.Tensor) -> th.Tensor:
        """Combine the cost critics' ``(n, B)`` values into ``(B,)``: ``max`` (pessimistic) or ``mean`` (``cost_reduce``)."""
        return q_c.max(dim=0).values if self.cost_reduce == "max" else q_c.mean(dim=0)

    def _tune_cql_weight(
        self, log_w: th.Tensor, optimizer: th.optim.Optimizer | None, penalty: th.Tensor, threshold: float | None
    ) -> None:
        # CQL(H) with Lagrange: min over log w of  -w * (penalty / n_critics - threshold).
        if optimizer is None or threshold is None:
            return
        gap = penalty.detach() / self.policy.n_critics - threshold
        loss = -(log_w.exp() * gap)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with th.no_grad():
            log_w.clamp_(max=math.log(1e6))

    # ------------------------------------------------------------------ rollout bookkeeping

    def _setup_learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        reset_num_timesteps: bool = True,
        tb_log_name: str = "run",
        progress_bar: bool = False,
    ) -> tuple[int, BaseCallback]:
        result = super()._setup_learn(total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar)
        if self.ep_cost_buffer is None or reset_num_timesteps:
            self.ep_cost_buffer = deque(maxlen=self._stats_window_size)
        # a continued learn() (reset_num_timesteps=False) continues the running episodes, so keep their cost so far
        running = getattr(self, "_ep_cost", None)
        fresh = reset_num_timesteps or running is None or running.shape != (self.n_envs,)
        if fresh:
            self._ep_cost = np.zeros(self.n_envs, dtype=np.float64)
        if self.det_ep_buffer is None or reset_num_timesteps:
            self.det_ep_buffer = deque(maxlen=self._stats_window_size)
        if reset_num_timesteps or self._episode_index is None or self._episode_index.shape != (self.n_envs,):
            self._episode_index = np.zeros(self.n_envs, dtype=np.int64)
        if fresh or getattr(self, "_deterministic_episode", None) is None:
            self._deterministic_episode = np.zeros(self.n_envs, dtype=bool)
            self._det_actor: list[th.nn.Module | None] = [None] * self.n_envs
            self._det_group: list[list[tuple[float, float]]] = [[] for _ in range(self.n_envs)]
            for i in range(self.n_envs):
                self._start_episode(i)
        return result

    def _start_episode(self, env_index: int) -> None:
        """Decide whether env ``env_index``'s episode starting now is deterministic; if so, freeze the actor for it."""
        assert self._episode_index is not None
        k = self.deterministic_every
        deterministic = k > 0 and self.num_timesteps >= self.learning_starts and self._episode_index[env_index] % k == k - 1
        self._deterministic_episode[env_index] = deterministic
        if deterministic and self._det_actor[env_index] is None:
            self._det_actor[env_index] = frozen_copy(self.actor)

    def _sample_action(
        self, learning_starts: int, action_noise: ActionNoise | None = None, n_envs: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        action, buffer_action = super()._sample_action(learning_starts, action_noise, n_envs)
        rows = np.flatnonzero(self._deterministic_episode)
        if rows.size and self.num_timesteps >= learning_starts:
            assert self._last_obs is not None
            obs, _ = self.policy.obs_to_tensor(self._last_obs)  # type: ignore[arg-type]
            action, buffer_action = action.copy(), buffer_action.copy()
            for i in rows:
                actor = self._det_actor[i]
                assert actor is not None
                row = {key: value[i : i + 1] for key, value in obs.items()} if isinstance(obs, dict) else obs[i : i + 1]
                with th.no_grad():
                    scaled = actor(row, deterministic=True).cpu().numpy()[0]
                buffer_action[i] = scaled
                action[i] = self.policy.unscale_action(scaled)
        return action, buffer_action

    def _update_info_buffer(self, infos: list[dict[str, Any]], dones: np.ndarray | None = None) -> None:
        super()._update_info_buffer(infos, dones)
        if dones is None:
            return
        self._ep_cost += np.array([get_cost(info, self.cost_key) for info in infos])
        for i in np.flatnonzero(dones):
            assert self.ep_cost_buffer is not None
            self.ep_cost_buffer.append(float(self._ep_cost[i]))
            if self._deterministic_episode[i]:
                episode = infos[i].get("episode")
                self._finish_deterministic_episode(i, float(self._ep_cost[i]), float(episode["r"]) if episode else math.nan)
            steps_lambda = self.lambda_source == "episode_cost" or (
                self.lambda_source == "deterministic_episode_cost" and self._deterministic_episode[i]
            )
            if steps_lambda and not self._lambda_delayed():
                self._episode_cost_dual_step(float(self._ep_cost[i]))
            self._ep_cost[i] = 0.0
            assert self._episode_index is not None
            self._episode_index[i] += 1
            self._start_episode(i)

    def _finish_deterministic_episode(self, env_index: int, cost: float, episode_return: float) -> None:
        """Record a deterministic episode; after ``deterministic_repeats`` of them, score the frozen copy and drop it."""
        assert self.det_ep_buffer is not None
        self.det_ep_buffer.append((cost, episode_return))
        group = self._det_group[env_index]
        group.append((cost, episode_return))
        if len(group) < self.deterministic_repeats:
            return
        actor = self._det_actor[env_index]
        assert actor is not None
        mean_cost, mean_return = float(np.mean([c for c, _ in group])), float(np.mean([r for _, r in group]))
        best = self.best_deterministic
        if mean_cost <= self.cost_limit and math.isfinite(mean_return) and (best is None or mean_return > best["return"]):
            self.best_deterministic = {
                "return": mean_return,
                "cost": mean_cost,
                "episodes": len(group),
                "num_timesteps": int(self.num_timesteps),
                "actor_state": trainable_state(actor, self.actor),
            }
        group.clear()
        self._det_actor[env_index] = None

    def load_best_deterministic(self) -> dict[str, Any]:
        """Put :attr:`best_deterministic` (the best frozen copy that met ``cost_limit``) into the actor.

        Returns its record without the weights (``return``, ``cost``, ``episodes``, ``num_timesteps``).
        Raises ``ValueError`` if no deterministic episodes were played or none met the limit (an episode's
        return comes from SB3's ``Monitor``: a VecEnv without ``VecMonitor`` gives no returns, so no copy is kept).
        """
        if self.best_deterministic is None:
            raise ValueError(
                "no deterministic training episode met the cost limit (or none was played: set deterministic_every > 0; "
                "or their returns are unknown: wrap a VecEnv in VecMonitor)."
            )
        load_trainable_state(self.actor, self.best_deterministic["actor_state"])
        return {key: value for key, value in self.best_deterministic.items() if key != "actor_state"}

    def _lambda_delayed(self) -> bool:
        """Online: ``lambda`` holds at ``lambda_init`` up to env step ``lambda_delay_steps`` (episodes ending there too)."""
        return self.num_timesteps <= self.lambda_delay_steps

    def _episode_cost_dual_step(self, episode_cost: float) -> None:
        """``lambda <- max(0, lambda + lr * (C - d) / max(d, 1))`` for one finished episode's measured cost ``C``."""
        self.lagrange.update(episode_cost, limit=self.cost_limit, scale=max(self.cost_limit, 1.0))

    def dump_logs(self) -> None:
        """SB3's rollout and time logs, plus ``rollout/ep_cost_mean``, ``rollout/lambda`` and the deterministic episodes'."""
        if self.ep_cost_buffer:
            self.logger.record("rollout/ep_cost_mean", safe_mean(list(self.ep_cost_buffer)))
        if self.det_ep_buffer:
            self.logger.record("rollout/det_ep_cost_mean", safe_mean([c for c, _ in self.det_ep_buffer]))
            self.logger.record("rollout/det_ep_rew_mean", safe_mean([r for _, r in self.det_ep_buffer]))
        self.logger.record("rollout/lambda", float(self.lagrange.value))
        super().dump_logs()

    def learn(
        self: SelfCQLLag,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str = "CQLLag",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfCQLLag:
        """Train online (SB3's loop); after :meth:`learn_offline` this continues from the offline data."""
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )

    # ------------------------------------------------------------------ offline

    def learn_offline(
        self: SelfCQLLag,
        dataset: OfflineDataset | Mapping[str, Any] | str | Any | None,
        gradient_steps: int,
        *,
        batch_size: int | None = None,
        log_interval: int = 1000,
        progress_bar: bool = False,
        tb_log_name: str = "CQLLag_offline",
        lambda_warmup_steps: int = 0,
        lambda_states: Literal["batch", "initial"] = "batch",
    ) -> SelfCQLLag:
        """Train from a fixed dataset, then ``learn()`` can continue online on the same replay buffer.

        Args:
            dataset: an :class:`OfflineDataset`, a DSRL-style dict of arrays, a Minari dataset or its id
                (see :func:`~shieldgym.algos.cqllag.datasets.load_offline_dataset`), or ``None`` to keep
                training on what the replay buffer already holds.
            gradient_steps: number of updates (>= 1).
            batch_size: default: the model's ``batch_size``.
            log_interval: dump the logger every this many updates.
            progress_bar: show a tqdm bar.
            tb_log_name: tensorboard run name (when ``tensorboard_log`` is set).
            lambda_warmup_steps: the first this many of the ``gradient_steps`` keep ``lambda`` at its
                current value (critics and actor train, the multiplier does not move), so the cost
                critic has fitted the data before its estimate drives ``lambda``. Offline, a fresh cost
                critic's early, inflated estimates would otherwise push ``lambda`` far past its need.
            lambda_states: where ``lambda`` reads the policy's cost ``E_s[max_i Q_ci(s, a ~ pi)]``:
                ``"batch"``, the sampled replay states (as online); ``"initial"``, the dataset's
                episode-start states (row 0 and every row after a terminal or timeout), i.e. the
                constraint ``J_c(pi) = E_{s0}[V_c(s0)] <= d_disc`` as posed. A mixed-quality dataset
                holds many states from which no action avoids cost (a random policy's), so its batch
                average stays far above what the best policy incurs from the start; ``"initial"``
                requires ``dataset`` (not ``None``) and applies to this call only.

        Returns:
            ``self``.
        """
        if int(gradient_steps) < 1:
            raise ValueError(f"gradient_steps must be >= 1, got {gradient_steps!r}.")
        if lambda_states not in ("batch", "initial"):
            raise ValueError(f"lambda_states must be 'batch' or 'initial', got {lambda_states!r}.")
        if lambda_states == "initial" and dataset is None:
            raise ValueError("lambda_states='initial' needs the dataset (its episode starts); got dataset=None.")
        if not 0 <= int(lambda_warmup_steps) <= int(gradient_steps):
            raise ValueError(
                f"lambda_warmup_steps must be in [0, gradient_steps={gradient_steps}], got {lambda_warmup_steps!r}."
            )
        if dataset is not None:
            data = dataset if isinstance(dataset, OfflineDataset) else load_offline_dataset(dataset, cost_key=self.cost_key)
            self.add_offline_data(data)
            if lambda_states == "initial":
                self._initial_obs = self._episode_starts(data)
        if self.replay_buffer.size() == 0:
            raise ValueError("learn_offline: the replay buffer is empty; pass a dataset.")
        if getattr(self, "_logger", None) is None:
            self.set_logger(configure_logger(self.verbose, self.tensorboard_log, tb_log_name, True))
        batch_size = batch_size or self.batch_size
        pbar = None
        if progress_bar:
            from tqdm.auto import tqdm

            pbar = tqdm(total=int(gradient_steps), desc="CQLLag offline", unit="step")
        done = 0
        self._offline_training = True
        try:
            while done < gradient_steps:
                frozen = done < int(lambda_warmup_steps)
                end = int(lambda_warmup_steps) if frozen else int(gradient_steps)
                chunk = min(int(log_interval), end - done)
                self._lambda_frozen = frozen
                self.train(chunk, batch_size=batch_size)
                done += chunk
                self.logger.record("offline/gradient_steps", done)
                self.logger.dump(step=self._n_updates)
                if pbar is not None:
                    pbar.update(chunk)
        finally:
            self._lambda_frozen = False
            self._offline_training = False
            self._initial_obs = None
            if pbar is not None:
                pbar.close()
        return self

    def _episode_starts(self, data: OfflineDataset) -> PyTorchObs:
        """Observations of the dataset's episode starts (row 0 and each row after a terminal or timeout) on the device."""
        ends = np.logical_or(np.asarray(data.terminals, bool), np.asarray(data.timeouts, bool))
        idx = np.flatnonzero(np.concatenate([[True], ends[:-1]]))
        obs = data.observations
        starts = {k: np.asarray(v)[idx] for k, v in obs.items()} if isinstance(obs, dict) else np.asarray(obs)[idx]
        return self.policy.obs_to_tensor(starts)[0]  # type: ignore[arg-type]

    def add_offline_data(self, data: OfflineDataset) -> int:
        """Put an :class:`OfflineDataset` into the replay buffer (actions rescaled to [-1, 1]); returns the count."""
        data.check_spaces(self.observation_space, self.action_space)
        actions = np.clip(self.policy.scale_action(np.asarray(data.actions, dtype=np.float32)), -1.0, 1.0)
        return self.replay_buffer.extend_transitions(
            data.observations,  # type: ignore[arg-type]
            actions,
            data.rewards,
            data.costs,
            data.next_observations,  # type: ignore[arg-type]
            data.terminals.astype(np.float32),
        )

    # ------------------------------------------------------------------ inference

    def cost_critic(self, reduce: Literal["max", "mean", "min"] = "max") -> CostCritic:
        """The cost critic as the shield's risk function ``critic(obs_batch, action_batch) -> (B,)``.

        Pass it to :class:`~shieldgym.ShieldWrapper`: ``ShieldWrapper(env, model.cost_critic())``.

        Actions are in the env's units. ``reduce`` combines the twin cost critics (``"max"`` = pessimistic).
        """
        return CostCritic(self.policy, reduce=reduce)

    def safe_predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        n_samples: int = 16,
        threshold: float | None = None,
        seed: int | None = None,
    ) -> np.ndarray:
        """Pick, among ``n_samples`` policy actions, the best ``Q_r`` one whose ``Q_c <= threshold``.

        The deterministic (mean) action is always one of the candidates; with ``actor_average_tau`` the
        candidates come from the averaged actor, as :meth:`predict`'s deterministic actions do. If no
        candidate passes, the one with the lowest ``Q_c`` is returned.

        Args:
            observation: one observation or a batch.
            n_samples: candidates per observation (>= 1).
            threshold: ``epsilon`` on the discounted-cost scale; default ``safe_threshold`` when
                :meth:`tune_safe_threshold` has set it, else ``cost_limit_discounted``.
            seed: seed of the candidate sampling (reproducible picks).

        Returns:
            Actions in the env's units, shaped like :meth:`predict`'s.
        """
        if int(n_samples) < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples!r}.")
        if threshold is None:
            threshold = self.cost_limit_discounted if self.safe_threshold is None else self.safe_threshold
        eps = float(threshold)  # type: ignore[arg-type]
        n_c = self.policy.n_critics
        obs_tensor, vectorized = self.policy.obs_to_tensor(observation)
        generator = th.Generator(device=self.device)
        if seed is not None:
            generator.manual_seed(int(seed))
        else:
            generator.seed()
        with th.no_grad():
            actor = self.actor if self.policy.actor_average is None else self.policy.actor_average
            mean, log_std, _ = actor.get_action_dist_params(obs_tensor)  # (B, A)
            noise = th.randn((int(n_samples), *mean.shape), generator=generator, device=mean.device)
            noise[0] = 0.0  # candidate 0: the deterministic action
            candidates = th.tanh(mean + log_std.exp() * noise)  # (K, B, A)
            k, bsz, adim = candidates.shape
            features = self.critic.features(obs_tensor)
            q = self.critic.q_values(features.repeat(k, 1), candidates.reshape(k * bsz, adim)).reshape(2 * n_c, k, bsz)
            q_r, q_c = q[:n_c].min(dim=0).values, q[n_c:].max(dim=0).values  # (K, B)
            ok = q_c <= eps
            best_safe = th.where(ok, q_r, th.full_like(q_r, -math.inf)).argmax(dim=0)
            least_risky = q_c.argmin(dim=0)
            pick = th.where(ok.any(dim=0), best_safe, least_risky)  # (B,)
            chosen = candidates[pick, th.arange(bsz, device=pick.device)]
        actions = self.policy.unscale_action(chosen.cpu().numpy())
        if not vectorized:
            actions = actions.squeeze(axis=0)
        return actions

    def tune_safe_threshold(
        self,
        env: gym.Env,
        thresholds: Sequence[float],
        *,
        n_episodes: int = 10,
        cost_limit: float | None = None,
        n_samples: int = 16,
        seed: int = 0,
        progress_bar: bool = False,
    ) -> SafeThresholdTuning:
        """Choose :meth:`safe_predict`'s threshold on tuning episodes and make it the default.

        Plays ``n_episodes`` episodes (reset seeds ``seed + i``) with :meth:`safe_predict` at each candidate and
        keeps the highest mean return whose mean episode cost is at most ``cost_limit`` (default ``self.cost_limit``).
        The choice is stored as ``safe_threshold`` (saved with the model). See
        :func:`~shieldgym.algos.cqllag.safe_threshold.tune_safe_threshold` for the arguments and errors.

        Returns:
            The :class:`~shieldgym.algos.cqllag.safe_threshold.SafeThresholdTuning` record (``.table()`` prints it).
        """
        record = tune_safe_threshold(
            self,
            env,
            thresholds,
            n_episodes=n_episodes,
            cost_limit=cost_limit,
            n_samples=n_samples,
            seed=seed,
            cost_key=self.cost_key,
            progress_bar=progress_bar,
        )
        self.safe_threshold = record.threshold
        return record

    # ------------------------------------------------------------------ save / load

    def _excluded_save_params(self) -> list[str]:
        transient = [
            "_ep_cost",
            "_deterministic_episode",
            "_det_actor",
            "_det_group",
            "_initial_obs",
            "_offline_training",
            "_average_pairs",
        ]
        return [*super()._excluded_save_params(), "actor", "critic", "critic_target", *transient]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts = ["policy", "actor.optimizer", "critic.optimizer", "lagrange"]
        variables = ["log_alpha_cql", "log_beta_cql"]
        if self.ent_coef_optimizer is not None:
            variables.append("log_ent_coef")
            state_dicts.append("ent_coef_optimizer")
        else:
            variables.append("ent_coef_tensor")
        if self.alpha_cql_optimizer is not None:
            state_dicts.append("alpha_cql_optimizer")
        if self.beta_cql_optimizer is not None:
            state_dicts.append("beta_cql_optimizer")
        return state_dicts, variables

    def save(
        self,
        path: str | pathlib.Path | io.BufferedIOBase,
        exclude: Any = None,
        include: Any = None,
    ) -> None:
        """Save like SB3, atomically: the zip is written to a temporary file then moved over ``path``.

        A failed save leaves any previous file at ``path`` intact.
        """
        if isinstance(path, io.BufferedIOBase):
            super().save(path, exclude=exclude, include=include)
            return
        target = pathlib.Path(path)
        if target.suffix == "":
            target = target.with_suffix(".zip")  # SB3's naming rule
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".zip", dir=target.parent)
        os.close(fd)
        try:
            super().save(tmp_name, exclude=exclude, include=include)
            os.replace(tmp_name, target)
        except BaseException:
            if os.path.exists(tmp_name):
                os.remove(tmp_name)
            raise

    @classmethod
    def load(  # type: ignore[override]
        cls: type[SelfCQLLag],
        path: str | pathlib.Path | io.BufferedIOBase,
        env: GymEnv | None = None,
        device: th.device | str = "auto",
        custom_objects: dict[str, Any] | None = None,
        print_system_info: bool = False,
        force_reset: bool = True,
        **kwargs: Any,
    ) -> SelfCQLLag:
        """Load a CQLLag checkpoint (SB3's ``load``), after checking it is one.

        Raises:
            CheckpointError: the file is missing, truncated/corrupt, or saved by another algorithm.
        """
        if not isinstance(path, io.BufferedIOBase):
            _check_checkpoint(pathlib.Path(path), custom_objects)
        return super().load(
            path,
            env=env,
            device=device,
            custom_objects=custom_objects,
            print_system_info=print_system_info,
            force_reset=force_reset,
            **kwargs,
        )


def _check_checkpoint(path: pathlib.Path, custom_objects: dict[str, Any] | None) -> None:
    if not path.exists() and path.suffix == "":
        path = path.with_suffix(".zip")
    if not path.is_file():
        raise CheckpointError(f"No CQLLag checkpoint at {str(path)!r} (file not found).")
    try:
        with zipfile.ZipFile(path) as archive:
            broken = archive.testzip()
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise CheckpointError(f"{str(path)!r} is not a readable CQLLag checkpoint (truncated or corrupt zip: {exc}).") from exc
    if broken is not None:
        raise CheckpointError(f"{str(path)!r} is corrupt: member {broken!r} fails its CRC check.")
    if "data" not in names or "policy.pth" not in names:
        raise CheckpointError(
            f"{str(path)!r} is not a complete SB3 checkpoint (truncated or corrupt: no 'data' and 'policy.pth' members; "
            f"found {sorted(names)[:5]})."
        )
    try:
        data, params, _ = load_from_zip_file(path, device="cpu", custom_objects=custom_objects, load_data=True)
    except Exception as exc:  # anything the SB3 reader raises means the file cannot be used
        raise CheckpointError(f"{str(path)!r} could not be read as a CQLLag checkpoint: {exc}") from exc
    policy_class = (data or {}).get("policy_class")
    if not (isinstance(policy_class, type) and issubclass(policy_class, CQLLagPolicy)) or "lagrange" not in params:
        name = getattr(policy_class, "__qualname__", repr(policy_class))
        raise CheckpointError(
            f"{str(path)!r} was saved by another algorithm (policy class {name}); load it with that algorithm's load()."
        )
