"""Shielded vs unshielded: collect data with a task policy, fit a cost critic, calibrate, evaluate both.

The pipeline behind ``benchmarks/bench_shield_safety.py`` (and a shielded benchmark run from the
command line):

1. **collect**: run the task policy with exploration noise (a fraction of uniformly random actions
   and Gaussian noise on the rest) so that both safe and unsafe actions are covered, optionally with
   the backup taking over at random times (for a critic of the cost under the backup), or, with
   ``ShieldEvalConfig.branches``, branch candidate actions from the visited simulator states
   (:mod:`shieldgym.branching`) and regress the critic onto each branch's discounted cost;
2. **fit**: :func:`~shieldgym.critics.fit.fit_cost_critic` on the transitions of the first
   ``1 - calib_fraction`` of the episodes (short-horizon cost-to-go, conservative upper bound);
3. **calibrate**: :func:`~shieldgym.critics.calibration.calibrate_threshold` on the remaining
   episodes, an action labelled unsafe when a cost follows within ``label_horizon`` steps;
4. **evaluate**: the task policy with and without the shield on the same reset seeds, summarised by
   :func:`shieldgym.evaluation.summarize`.

The scripted task policies for the two benchmark tasks live here too (:data:`TASK_POLICIES`): both
pursue the task and ignore the constraint.

Example:
    >>> from shieldgym.shield_eval import ShieldEvalConfig, run_shield_eval
    >>> result = run_shield_eval(ShieldEvalConfig("SafetyBallCircle-v0", collect_episodes=4, fit_steps=100,
    ...                                           eval_episodes=2))  # doctest: +SKIP
    >>> [row["variant"] for row in result.rows]  # doctest: +SKIP
    ['unshielded', 'shielded']
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import gymnasium as gym
import numpy as np

from shieldgym.branching import BranchConfig
from shieldgym.costs.base import get_cost

__all__ = [
    "CRITIC_FEATURES",
    "POINT_GOAL_BACKUP_CRITIC",
    "POINT_GOAL_BRANCHED",
    "POINT_GOAL_FEATURES",
    "POINT_GOAL_NAVIGATION",
    "SHIELD_CONFIGS",
    "TASK_POLICIES",
    "FeatureCritic",
    "HazardMarginFeatures",
    "PreparedShield",
    "ShieldEvalConfig",
    "ShieldEvalResult",
    "circling_policy",
    "collect_transitions",
    "goal_seeking_policy",
    "in_violation",
    "prepare_shield",
    "run_shield_eval",
    "shield_config",
    "unsafe_labels",
]

Policy = Callable[[np.ndarray], np.ndarray]

_LIDAR_ANGLES = (np.arange(16) + 0.5) * 2.0 * np.pi / 16.0


def goal_seeking_policy(obs: np.ndarray) -> np.ndarray:
    """SafetyPointGoal1: turn towards the goal and drive at it, ignoring hazards.

    The flat observation is ``accelerometer(3) velocimeter(3) gyro(3) magnetometer(3) goal_lidar(16)
    hazards_lidar(16) vases_lidar(16)``; the goal direction is the lidar-weighted mean bin angle
    (bin ``i`` covers ``[i, i + 1) * 2 pi / 16`` counter-clockwise from the robot's heading). When the
    goal is out of lidar range (all bins 0) it heads back into the arena, towards the objects the hazard
    and vase lidars see (and reverses when it sees nothing at all).
    """
    goal = obs[12:28]
    if not goal.any():
        # goal beyond the lidar's 3 m: head back into the arena (towards what the hazard and vase lidars see)
        goal = obs[28:44] + obs[44:60]
        if not goal.any():
            return np.array([-1.0, 0.0], dtype=np.float32)
    angle = np.arctan2((goal * np.sin(_LIDAR_ANGLES)).sum(), (goal * np.cos(_LIDAR_ANGLES)).sum())
    forward = 1.0 if abs(angle) < np.pi / 3 else 0.2
    return np.array([forward, np.clip(2.0 * angle, -1.0, 1.0)], dtype=np.float32)


def circling_policy(obs: np.ndarray, radius: float = 7.0) -> np.ndarray:
    """SafetyBallCircle: run clockwise on a circle of ``radius`` (the reward's circle), which crosses the
    safety boundaries at ``|x| = 6``.

    The observation starts ``0.1 x, 0.1 y, 0.2 vx, 0.2 vy`` (Bullet-Safety-Gym's ball agent).
    """
    pos, vel = obs[:2] * 10.0, obs[2:4] * 5.0
    dist = float(np.linalg.norm(pos)) + 1e-6
    tangent = np.array([pos[1], -pos[0]]) / dist
    radial = pos / dist
    action = 0.8 * tangent + 0.5 * np.clip(radius - dist, -1.0, 1.0) * radial - 0.2 * vel
    return np.clip(action, -1.0, 1.0).astype(np.float32)


#: scripted constraint-ignoring task policies, by env id
TASK_POLICIES: dict[str, Policy] = {
    "SafetyPointGoal1-v0": goal_seeking_policy,
    "SafetyBallCircle-v0": circling_policy,
}


@dataclass(frozen=True)
class HazardMarginFeatures:
    """Append ``[d, v_c, m]`` to a Safety-Gymnasium observation: the nearest hazard's distance ``d``
    (from the strongest hazard-lidar bin, ``(1 - reading) * max_dist``), the closing speed ``v_c``
    (velocimeter projected on that bin's direction) and the stopping margin
    ``m = d - radius - max(v_c, 0)^2 / (2 decel)`` (negative: the robot cannot stop before the hazard).

    These are the products of velocity and hazard direction that decide whether the next steps cost;
    an MLP critic learns them slowly from the raw entries.

    >>> obs = np.zeros(60, np.float32); obs[28] = 0.9; obs[3] = 1.0  # hazard 0.3 m ahead, 1 m/s forward
    >>> [round(float(x), 3) for x in HazardMarginFeatures()(obs[None])[0, 60:]]
    [0.3, 0.981, -0.06]
    """

    lidar_index: tuple[int, ...] = tuple(range(28, 44))
    velocity_index: tuple[int, int] = (3, 4)
    max_dist: float = 3.0
    radius: float = 0.2
    decel: float = 3.0

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        flat = np.asarray(obs, dtype=np.float32)
        flat = flat.reshape(len(flat), -1)
        n = len(self.lidar_index)
        angles = (np.arange(n) + 0.5) * 2.0 * np.pi / n
        units = np.stack([np.cos(angles), np.sin(angles)], axis=1)
        reading = np.clip(flat[:, list(self.lidar_index)], 0.0, 1.0)
        nearest = reading.argmax(axis=1)
        dist = (1.0 - reading.max(axis=1)) * self.max_dist
        closing = (flat[:, list(self.velocity_index)] * units[nearest]).sum(axis=1)
        margin = dist - self.radius - np.maximum(closing, 0.0) ** 2 / (2.0 * self.decel)
        return np.concatenate([flat, np.stack([dist, closing, margin], axis=1)], axis=1).astype(np.float32)


class FeatureCritic:
    """A critic fitted on ``features(obs)``, called on raw observations: ``risk = critic(features(obs), a)``."""

    def __init__(self, critic: Any, features: Callable[[np.ndarray], np.ndarray]) -> None:
        from shieldgym.critics.protocol import as_critic

        self.critic = as_critic(critic)
        self.features = features

    def __call__(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        return self.critic(self.features(obs), actions)

    def __repr__(self) -> str:
        return f"FeatureCritic({self.critic!r}, {self.features!r})"


#: observation features a critic can be fitted on, by name (``"obs"``: the raw observation)
CRITIC_FEATURES: dict[str, Callable[[np.ndarray], np.ndarray]] = {"hazard_margin": HazardMarginFeatures()}


@dataclass(frozen=True)
class ShieldEvalConfig:
    """Everything that defines one shielded-vs-unshielded comparison.

    Attributes:
        env_id: a ``shieldgym.make`` id.
        collect_episodes: episodes of noisy task-policy data (fit + calibration).
        random_prob: probability of a uniformly random action at each collection step.
        noise_std: Gaussian noise (fraction of the action range) on the other collection steps.
        hold_steps: a uniformly random action is held for this many steps (> 1 makes the data show
            what an action does when kept up, which a momentum-driven robot needs to tell actions apart).
        calib_fraction: fraction of the collected episodes held out for calibration.
        gamma: cost-to-go discount of the critic.
        fit_steps, batch_size, net_arch, n_critics, conservative_weight, n_action_samples: critic fitting.
        feature_index: observation entries the critic sees (``None``: all); indices into the
            observation extended by ``critic_features``.
        critic_features: ``"obs"`` (the raw observation) or a key of :data:`CRITIC_FEATURES` whose
            features are appended to the observation the critic is fitted on (the shield then uses a
            :class:`FeatureCritic`).
        next_action: ``a'`` of the critic's target: ``"min"`` (the least risky of sampled actions, the
            cost-to-go of a shielded continuation), ``"data"`` (the noisy behaviour policy's next action) or
            ``"backup"`` (the backup's action at ``s'``: ``Q_c(s, a)`` is then the cost of taking ``a`` and
            following the backup from there on, so an action passes when the backup can still recover after it).
        takeover_prob: probability per collection step that the backup takes over (see
            :func:`collect_transitions`); use it with ``next_action="backup"`` so the data shows the backup acting.
        takeover_steps: ``(min, max)`` steps of a takeover.
        critic_backup_kwargs: keyword arguments (``(name, value)`` pairs) of the backup that takes over in the
            data and gives ``a'`` for ``next_action="backup"`` (or finishes each branch, with ``branches``), when it
            should differ from the shield's backup (``None``: the shield's backup). The critic then scores "can this
            reference backup still recover after the action"; a cautious reference (full braking) makes that a
            safety margin for a bolder backup.
        branches: fit the critic on branched rollouts instead of one-step transitions
            (:mod:`shieldgym.branching`, Safety-Gymnasium navigation tasks): from states of the noisy task policy,
            candidate actions are each held for a few steps, followed by the backup, and the critic is regressed
            onto the discounted cost of each branch (``gamma``, ``next_action``, ``conservative_weight`` and
            ``n_action_samples`` then play no part). With ``threshold=None`` the threshold is calibrated on the
            branches of the held-out episodes, a branch being unsafe when its label is > 0.
        label_horizon: an action is unsafe when a cost follows within this many steps.
        target_rate: calibration target (fraction of unsafe actions passed).
        threshold: fixed threshold instead of calibrating (``None``: calibrate).
        backup: ``"closest_safe"`` / ``"min_risk"`` (:class:`~shieldgym.backup.MinRiskBackup`), ``"brake"``,
            ``"lidar_navigation"`` (:class:`~shieldgym.backup.LidarNavigationBackup`, Safety-Gymnasium goal tasks),
            ``"lidar_planning"`` (:class:`~shieldgym.backup.LidarPlanningBackup`, Safety-Gymnasium point goal tasks) or
            ``"guided_navigation"`` (:class:`~shieldgym.backup.recovery.GuidedNavigationBackup` around that navigation
            backup: the action closest to the proposal that the critic passes; the data and the branches use the plain
            navigation backup).
        backup_kwargs: keyword arguments of the backup, as ``(name, value)`` pairs.
        reference_backup: also evaluate the backup alone as the policy (a third row, ``"backup only"``),
            which shows how much of the shielded result the backup would get without the task policy.
        n_candidates: candidates of the min-risk backup.
        eval_episodes: evaluation episodes per variant.
        seed: collection seeds start here (and the critic's and backup's seeds).
        eval_seed: evaluation reset seeds start here (the same for both variants).
    """

    env_id: str
    collect_episodes: int = 40
    random_prob: float = 0.3
    noise_std: float = 0.3
    hold_steps: int = 1
    calib_fraction: float = 0.25
    gamma: float = 0.9
    fit_steps: int = 4_000
    batch_size: int = 256
    net_arch: tuple[int, ...] = (128, 128)
    n_critics: int = 2
    conservative_weight: float = 0.5
    n_action_samples: int = 4
    feature_index: tuple[int, ...] | None = None
    critic_features: str = "obs"
    next_action: Literal["min", "data", "backup"] = "min"
    takeover_prob: float = 0.0
    takeover_steps: tuple[int, int] = (5, 30)
    critic_backup_kwargs: tuple[tuple[str, Any], ...] | None = None
    branches: BranchConfig | None = None
    label_horizon: int = 3
    target_rate: float = 0.2
    threshold: float | None = None
    backup: Literal["closest_safe", "min_risk", "brake", "lidar_navigation", "guided_navigation", "lidar_planning"] = (
        "closest_safe"
    )
    backup_kwargs: tuple[tuple[str, Any], ...] = ()
    reference_backup: bool = False
    n_candidates: int = 32
    eval_episodes: int = 20
    seed: int = 0
    eval_seed: int = 20_000


@dataclass
class ShieldEvalResult:
    """Rows (one per variant, keys of :class:`~shieldgym.evaluation.Summary` plus ``variant``/``env_id``),
    the calibration record, data sizes (``n_transitions``: states visited; ``n_unsafe``: unsafe labels;
    ``n_branches``: branched actions, 0 without ``branches``) and wall times."""

    config: ShieldEvalConfig
    rows: list[dict[str, Any]]
    calibration: dict[str, Any] | None
    threshold: float
    n_transitions: int
    n_unsafe: int
    seconds: dict[str, float] = field(default_factory=dict)
    episodes: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    n_branches: int = 0

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["config"] = asdict(self.config)
        return out


# Critic inputs that determine the cost: PointGoal's velocimeter, gyro and hazard lidar (the goal and
# vase lidars and the accelerometer only add noise) plus the appended hazard distance, closing speed and
# stopping margin (60, 61, 62: HazardMarginFeatures); all 8 entries of BallCircle's observation
# (position, velocity, spin, distance to the circle).
POINT_GOAL_FEATURES: tuple[int, ...] = tuple(range(3, 9)) + tuple(range(28, 44))

# Settings of the recorded shield benchmark per task (benchmarks/bench_shield_safety.py and `shieldgym
# benchmark` use these). PointGoal1: the planning backup (LidarPlanningBackup, default options); its fixed threshold
# 0.15 was chosen among 0.3, 0.2, 0.15 and 0.1 on reset seeds 20000..20019.
SHIELD_CONFIGS: dict[str, dict[str, Any]] = {
    "SafetyPointGoal1-v0": dict(
        collect_episodes=40,
        random_prob=0.1,
        hold_steps=10,
        gamma=0.9,
        conservative_weight=0.0,
        label_horizon=10,
        target_rate=0.1,
        threshold=0.15,
        next_action="data",
        fit_steps=4_000,
        critic_features="hazard_margin",
        feature_index=(*POINT_GOAL_FEATURES, 60, 61, 62),
        backup="lidar_planning",
        reference_backup=True,
    ),
    "SafetyBallCircle-v0": dict(
        collect_episodes=80,
        gamma=0.95,
        label_horizon=10,
        target_rate=0.1,
        next_action="data",
        fit_steps=4_000,
    ),
}


# The previous PointGoal1 default (`bench_shield_safety.py --pointgoal-navigation`): the same critic with the
# potential-field navigation backup (LidarNavigationBackup) and threshold 0.4, chosen on reset seeds 20000..20009.
POINT_GOAL_NAVIGATION: dict[str, Any] = dict(
    threshold=0.4,
    backup="lidar_navigation",
    backup_kwargs=(("influence", 0.6), ("repulsion", 2.0), ("swirl", 1.0)),
)


# An alternative for PointGoal1 (`bench_shield_safety.py --pointgoal-backup-critic`): the critic is the cost
# of an action followed by a cautious reference backup (it brakes whenever the closing speed cannot be
# stopped), fitted on data in which that backup takes over at random times; the shield's own backup brakes
# only with the hazard ahead or behind (within ~45 degrees), slides around hazards and walls of two hazards,
# and leaves a hazard it is in straight away. Threshold and backup options chosen on reset seeds 20000..20019.
# It keeps more of the return than the navigation setting but cuts less of the cost (docs/shield.md, Recorded results).
POINT_GOAL_BACKUP_CRITIC: dict[str, Any] = dict(
    backup="lidar_navigation",
    takeover_prob=0.03,
    takeover_steps=(5, 30),
    critic_backup_kwargs=POINT_GOAL_NAVIGATION["backup_kwargs"],
    threshold=0.1,
    next_action="backup",
    backup_kwargs=(
        ("influence", 0.6),
        ("repulsion", 2.0),
        ("swirl", 2.0),
        ("reverse_below", -1.0),
        ("margin", 0.15),
        ("brake_cone", 0.7),
        ("edge_fade", 0.15),
        ("wall_gap", 0.3),
        ("wall_swirl", 2.0),
        ("escape", True),
    ),
)


# An alternative for PointGoal1 (`bench_shield_safety.py --pointgoal-branched`): the critic is regressed onto the
# discounted cost of branched rollouts (shieldgym.branching): from states of the noisy task policy, the task policy's
# action, the brake action and random actions are each held for a few steps and followed by the navigation backup.
# Settings chosen on reset seeds 20000..20019 (docs/shield.md, Recorded results).
POINT_GOAL_BRANCHED: dict[str, Any] = dict(
    branches=BranchConfig(hold=5, horizon=25, gamma=0.95, n_random=4, near=1.0, near_prob=0.1, far_prob=0.005),
    threshold=0.3,
    backup="lidar_navigation",
    backup_kwargs=POINT_GOAL_BACKUP_CRITIC["backup_kwargs"],
)


def shield_config(env_id: str, **overrides: Any) -> ShieldEvalConfig:
    """The :class:`ShieldEvalConfig` of :data:`SHIELD_CONFIGS` for ``env_id``, with ``overrides`` applied.

    Raises:
        ValueError: no recorded settings for ``env_id``.
    """
    if env_id not in SHIELD_CONFIGS:
        raise ValueError(f"no shield settings for {env_id!r}; known: {sorted(SHIELD_CONFIGS)}.")
    return ShieldEvalConfig(env_id, **{**SHIELD_CONFIGS[env_id], **overrides})


def collect_transitions(
    env: gym.Env,
    policy: Policy,
    n_episodes: int,
    *,
    seed: int = 0,
    random_prob: float = 0.3,
    noise_std: float = 0.3,
    hold_steps: int = 1,
    backup: Policy | None = None,
    takeover_prob: float = 0.0,
    takeover_steps: tuple[int, int] = (5, 30),
    before_step: Callable[[np.ndarray, int], None] | None = None,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Roll out ``policy`` with exploration noise; return flat transition arrays.

    With probability ``random_prob`` a step starts a uniformly random action that is then held for
    ``hold_steps`` steps; the other steps take ``policy(obs)`` plus Gaussian noise. With a ``backup``,
    a step also starts a *takeover* with probability ``takeover_prob``: the backup acts (noise-free) for
    a uniformly drawn number of steps in ``takeover_steps`` (inclusive), so the data shows the backup
    recovering from wherever the noisy task policy has led, which a critic of the cost under the backup
    (``a' = backup(s')``) needs. ``before_step(obs, episode)``, when given, is called at every state before
    the action is chosen (:func:`shieldgym.branching.collect_branches` branches the simulator there); it must
    leave the env as it found it.

    Returns:
        ``obs``, ``actions``, ``costs``, ``next_obs``, ``dones`` (terminated, not truncated),
        ``episode`` (episode index of each transition), ``next_actions`` (the action taken at
        ``next_obs``; the last step of an episode repeats its own action) and ``from_backup`` (1 where
        the backup chose the action).
    """
    space = env.action_space
    if not isinstance(space, gym.spaces.Box):
        raise TypeError(f"collect_transitions needs a Box action space, got {space!r}.")
    if not isinstance(hold_steps, int) or hold_steps < 1:
        raise ValueError(f"hold_steps must be a positive int, got {hold_steps!r}.")
    if not 0.0 <= takeover_prob <= 1.0:
        raise ValueError(f"takeover_prob must be in [0, 1], got {takeover_prob!r}.")
    if takeover_prob > 0 and backup is None:
        raise ValueError("takeover_prob > 0 needs a backup policy (backup=...).")
    low_k, high_k = takeover_steps
    if not (isinstance(low_k, int) and isinstance(high_k, int) and 1 <= low_k <= high_k):
        raise ValueError(f"takeover_steps must be (min, max) ints with 1 <= min <= max, got {takeover_steps!r}.")
    rng = np.random.default_rng(seed)
    span = space.high - space.low
    keys = ("obs", "actions", "costs", "next_obs", "dones", "episode", "from_backup")
    cols: dict[str, list[Any]] = {k: [] for k in keys}
    episodes: Sequence[int] | Any = range(n_episodes)
    if progress:
        from tqdm.auto import tqdm

        episodes = tqdm(episodes, desc="collect", unit="ep", leave=False)
    for ep in episodes:
        obs, _ = env.reset(seed=seed + ep)
        done, left, takeover = False, 0, 0
        held = np.zeros(space.shape)
        while not done:
            if before_step is not None:
                before_step(obs, ep)
            if takeover == 0 and takeover_prob > 0 and rng.uniform() < takeover_prob:
                takeover, left = int(rng.integers(low_k, high_k + 1)), 0
            by_backup = takeover > 0
            if by_backup:
                assert backup is not None
                action, takeover = np.asarray(backup(obs), dtype=np.float64), takeover - 1
            elif left > 0:
                action, left = held, left - 1
            elif rng.uniform() < random_prob:
                action = held = rng.uniform(space.low, space.high)
                left = hold_steps - 1
            else:
                action = np.asarray(policy(obs), dtype=np.float64) + noise_std * span * rng.standard_normal(space.shape)
            action = np.clip(action, space.low, space.high).astype(space.dtype)
            next_obs, _, terminated, truncated, info = env.step(action)
            for key, value in (
                ("obs", obs),
                ("actions", action),
                ("costs", get_cost(info)),
                ("next_obs", next_obs),
                ("dones", float(terminated)),
                ("episode", ep),
                ("from_backup", float(by_backup)),
            ):
                cols[key].append(value)
            obs, done = next_obs, terminated or truncated
    data = {k: np.asarray(v, dtype=np.int64 if k == "episode" else np.float32) for k, v in cols.items()}
    same = np.append(data["episode"][1:] == data["episode"][:-1], False)
    data["next_actions"] = np.where(same[:, None], np.roll(data["actions"], -1, axis=0), data["actions"])
    return data


def unsafe_labels(costs: np.ndarray, episode: np.ndarray, horizon: int) -> np.ndarray:
    """True where a cost > 0 occurs within ``horizon`` steps from the transition (itself included), same episode.

    >>> unsafe_labels(np.array([0, 0, 1, 0, 0.0]), np.zeros(5, int), 2).tolist()
    [False, True, True, False, False]
    """
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}.")
    n = len(costs)
    unsafe = np.zeros(n, dtype=bool)
    for k in range(horizon):
        later = np.zeros(n, dtype=bool)
        later[: n - k] = (costs[k:] > 0) & (episode[k:] == episode[: n - k])
        unsafe |= later
    return unsafe


def in_violation(costs: np.ndarray, episode: np.ndarray) -> np.ndarray:
    """True where the transition starts in violation (the previous step of the same episode had a cost).

    >>> in_violation(np.array([1, 0, 1, 1.0]), np.array([0, 0, 1, 1])).tolist()
    [False, True, False, True]
    """
    start = np.zeros(len(costs), dtype=bool)
    start[1:] = (costs[:-1] > 0) & (episode[1:] == episode[:-1])
    return start


def _make_backup(
    config: ShieldEvalConfig, env: gym.Env, kwargs: tuple[tuple[str, Any], ...] | None = None, guided: bool = True
) -> Any:
    """The backup ``config`` names (``kwargs``: the navigation options instead of ``config.backup_kwargs``;
    ``guided=False``: the plain navigation backup of ``"guided_navigation"``, which acts without a critic)."""
    from shieldgym.backup import BrakeBackup, MinRiskBackup
    from shieldgym.backup.planning import LidarPlanningBackup
    from shieldgym.backup.recovery import GuidedNavigationBackup, LidarNavigationBackup

    if config.backup == "lidar_planning":
        # SafetyPointGoal's flat observation: velocimeter 3:6 (yaw rate: gyro 8), goal lidar 12:28, hazards lidar 28:44
        options = dict(config.backup_kwargs if kwargs is None else kwargs)
        return LidarPlanningBackup(range(28, 44), range(12, 28), (3, 4), 8, **options)
    if config.backup in ("lidar_navigation", "guided_navigation"):
        # SafetyPointGoal's flat observation: velocimeter 3:6, goal lidar 12:28, hazards lidar 28:44
        options = dict(config.backup_kwargs if kwargs is None else kwargs)
        navigation = LidarNavigationBackup(range(28, 44), range(12, 28), (3, 4), **options)
        return GuidedNavigationBackup(navigation) if config.backup == "guided_navigation" and guided else navigation
    if config.backup == "brake":
        return BrakeBackup.from_env(env)
    if config.backup == "closest_safe":
        return MinRiskBackup(config.n_candidates, select="closest_safe", seed=config.seed)
    return MinRiskBackup(config.n_candidates, select="min_risk", seed=config.seed)


@dataclass
class PreparedShield:
    """What :func:`prepare_shield` produces: a fitted critic, its threshold, and how it was obtained
    (``n_transitions``: states visited by the data collection; ``n_unsafe``: unsafe labels; ``n_branches``:
    branched actions, 0 without ``config.branches``).

    Use :meth:`wrap` to put the shield around a fresh env of the same task.
    """

    config: ShieldEvalConfig
    policy: Policy
    critic: Any
    threshold: float
    calibration: dict[str, Any] | None
    n_transitions: int
    n_unsafe: int
    seconds: dict[str, float] = field(default_factory=dict)
    n_branches: int = 0

    def backup(self, env: gym.Env) -> Any:
        """A new backup policy for ``env``, as the config describes."""
        return _make_backup(self.config, env)

    def wrap(self, env: gym.Env) -> gym.Env:
        """``ShieldWrapper(env, critic, backup, threshold)`` with this shield's critic and settings."""
        from shieldgym.wrappers.shield import ShieldWrapper

        return ShieldWrapper(env, self.critic, self.backup(env), self.threshold)


def _data_backup(config: ShieldEvalConfig, env: gym.Env, needed_by: str) -> Any:
    """The bound backup that acts in the collected data (``config.critic_backup_kwargs``); it must not need the critic.

    Raises:
        ValueError: the configured backup chooses its action with the critic, which is not fitted yet.
    """
    if config.backup in ("closest_safe", "min_risk"):
        raise ValueError(
            f"backup {config.backup!r} chooses its action with the critic, which is not fitted yet: {needed_by} need a "
            "backup that acts without the critic (e.g. 'brake', 'lidar_navigation')."
        )
    backup = _make_backup(config, env, config.critic_backup_kwargs, guided=False)
    backup.bind(env.action_space, None)
    return backup


def _critic_features(config: ShieldEvalConfig) -> Callable[[np.ndarray], np.ndarray] | None:
    """The features ``config.critic_features`` names (``None`` for the raw observation).

    Raises:
        ValueError: unknown name.
    """
    if config.critic_features == "obs":
        return None
    if config.critic_features not in CRITIC_FEATURES:
        raise ValueError(f"unknown critic_features {config.critic_features!r}; known: 'obs', {sorted(CRITIC_FEATURES)}.")
    return CRITIC_FEATURES[config.critic_features]


def _threshold(
    config: ShieldEvalConfig, critic: Any, data: dict[str, np.ndarray], unsafe: np.ndarray, held: np.ndarray
) -> tuple[dict[str, Any] | None, float]:
    """``(calibration record or None, threshold)``: ``config.threshold`` when fixed, else calibrated on the ``held`` rows."""
    from shieldgym.critics.calibration import calibrate_threshold

    if config.threshold is not None:
        return None, float(config.threshold)
    record = calibrate_threshold(
        critic,
        {"obs": data["obs"][held], "actions": data["actions"][held], "unsafe": unsafe[held]},
        config.target_rate,
        seed=config.seed,
    )
    return record.as_dict(), float(record.threshold)


def prepare_shield(
    config: ShieldEvalConfig,
    policy: Policy | None = None,
    *,
    make_env: Callable[[], gym.Env] | None = None,
    progress: bool = True,
) -> PreparedShield:
    """Collect noisy task-policy data, fit the cost critic and choose the threshold (fixed or calibrated).

    Args:
        config: the :class:`ShieldEvalConfig`.
        policy: the task policy; ``None`` uses :data:`TASK_POLICIES` for ``config.env_id``.
        make_env: env factory; ``None`` uses ``shieldgym.make(config.env_id)``.
        progress: tqdm progress bars.
    """
    from shieldgym.critics.fit import fit_cost_critic

    if policy is None:
        if config.env_id not in TASK_POLICIES:
            raise ValueError(
                f"no scripted task policy for {config.env_id!r}; pass policy=... (known: {sorted(TASK_POLICIES)})."
            )
        policy = TASK_POLICIES[config.env_id]
    if make_env is None:
        import shieldgym

        def make_env() -> gym.Env:
            return shieldgym.make(config.env_id)

    if config.branches is not None:
        return _prepare_branched(config, policy, make_env(), progress)
    seconds: dict[str, float] = {}
    env = make_env()
    backup = None
    if config.takeover_prob > 0 or config.next_action == "backup":
        backup = _data_backup(config, env, "takeovers and next_action='backup'")
    t0 = time.perf_counter()
    data = collect_transitions(
        env,
        policy,
        config.collect_episodes,
        seed=config.seed,
        random_prob=config.random_prob,
        noise_std=config.noise_std,
        hold_steps=config.hold_steps,
        backup=backup,
        takeover_prob=config.takeover_prob,
        takeover_steps=config.takeover_steps,
        progress=progress,
    )
    seconds["collect"] = time.perf_counter() - t0
    n_fit_eps = max(1, round(config.collect_episodes * (1.0 - config.calib_fraction)))
    fit_mask = data["episode"] < n_fit_eps
    unsafe = unsafe_labels(data["costs"], data["episode"], config.label_horizon)
    # Calibrate on decisions taken outside violation: once in violation every action is "unsafe" for a
    # few steps whatever it is, and those examples would say nothing about which actions lead there.
    decisions = ~in_violation(data["costs"], data["episode"])

    fit_data = {
        k: v[fit_mask]
        for k, v in data.items()
        if k not in ("episode", "from_backup") and (k != "next_actions" or config.next_action == "data")
    }
    if config.next_action == "backup":
        # a' = the backup's action at s' (computed on the raw observation, before any critic features)
        assert backup is not None
        fit_data["next_actions"] = np.stack([np.asarray(backup(o), dtype=np.float32) for o in fit_data["next_obs"]])
    features = _critic_features(config)
    if features is not None:
        fit_data["obs"], fit_data["next_obs"] = features(fit_data["obs"]), features(fit_data["next_obs"])

    t0 = time.perf_counter()
    fitted = fit_cost_critic(
        fit_data,
        action_space=env.action_space,
        gamma=config.gamma,
        fit_steps=config.fit_steps,
        batch_size=config.batch_size,
        n_critics=config.n_critics,
        net_arch=config.net_arch,
        conservative_weight=config.conservative_weight,
        n_action_samples=config.n_action_samples,
        feature_index=config.feature_index,
        seed=config.seed,
        progress=progress,
    )
    seconds["fit"] = time.perf_counter() - t0
    critic: Any = fitted if features is None else FeatureCritic(fitted, features)

    calibration, threshold = _threshold(config, critic, data, unsafe, ~fit_mask & decisions)

    env.close()
    return PreparedShield(
        config=config,
        policy=policy,
        critic=critic,
        threshold=float(threshold),
        calibration=calibration,
        n_transitions=len(data["costs"]),
        n_unsafe=int(unsafe.sum()),
        seconds=seconds,
    )


def _prepare_branched(config: ShieldEvalConfig, policy: Policy, env: gym.Env, progress: bool) -> PreparedShield:
    """:func:`prepare_shield` with ``config.branches``: branched data, a regression critic, a fixed or calibrated threshold."""
    from shieldgym.branching import collect_branches, fit_branch_critic

    assert config.branches is not None
    features = _critic_features(config)
    backup = _data_backup(config, env, "branches")
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    data = collect_branches(
        env,
        policy,
        backup,
        config.collect_episodes,
        config.branches,
        seed=config.seed,
        random_prob=config.random_prob,
        noise_std=config.noise_std,
        hold_steps=config.hold_steps,
        progress=progress,
    )
    seconds["collect"] = time.perf_counter() - t0
    n_fit_eps = max(1, round(config.collect_episodes * (1.0 - config.calib_fraction)))
    fit_mask = data["episode"] < n_fit_eps
    t0 = time.perf_counter()
    critic = fit_branch_critic(
        {k: data[k][fit_mask] for k in ("obs", "actions", "labels")},
        action_space=env.action_space,
        features=features,
        feature_index=config.feature_index,
        fit_steps=config.fit_steps,
        batch_size=config.batch_size,
        n_critics=config.n_critics,
        net_arch=config.net_arch,
        seed=config.seed,
        progress=progress,
    )
    seconds["fit"] = time.perf_counter() - t0
    unsafe = data["labels"] > 0
    calibration, threshold = _threshold(config, critic, data, unsafe, ~fit_mask)
    env.close()
    return PreparedShield(
        config=config,
        policy=policy,
        critic=critic,
        threshold=float(threshold),
        calibration=calibration,
        n_transitions=int(data["n_states"]),
        n_unsafe=int(unsafe.sum()),
        seconds=seconds,
        n_branches=len(unsafe),
    )


def run_shield_eval(
    config: ShieldEvalConfig,
    policy: Policy | None = None,
    *,
    make_env: Callable[[], gym.Env] | None = None,
    progress: bool = True,
) -> ShieldEvalResult:
    """Run the whole comparison for one env: :func:`prepare_shield`, then the task policy with and
    without the shield on the same reset seeds.

    Args:
        config: the :class:`ShieldEvalConfig`.
        policy: the task policy; ``None`` uses :data:`TASK_POLICIES` for ``config.env_id``.
        make_env: env factory; ``None`` uses ``shieldgym.make(config.env_id)``.
        progress: tqdm progress bars.

    Returns:
        A :class:`ShieldEvalResult` whose ``rows`` are ``[unshielded, shielded]`` (and ``backup only`` when
        ``config.reference_backup``).
    """
    from shieldgym.evaluation import rollout, summarize

    if make_env is None:
        import shieldgym

        def make_env() -> gym.Env:
            return shieldgym.make(config.env_id)

    prepared = prepare_shield(config, policy, make_env=make_env, progress=progress)
    policy, critic, threshold, seconds = prepared.policy, prepared.critic, prepared.threshold, dict(prepared.seconds)
    calibration = prepared.calibration
    rows: list[dict[str, Any]] = []
    episodes: dict[str, list[dict[str, float]]] = {}
    eval_seed = config.eval_seed
    variants = ("unshielded", "shielded", "backup only") if config.reference_backup else ("unshielded", "shielded")
    for variant in variants:
        env = make_env()
        act: Policy = policy
        if variant == "shielded":
            env = prepared.wrap(env)
        elif variant == "backup only":
            backup = _make_backup(config, env, guided=False)
            backup.bind(env.action_space, critic, threshold)
            act = backup
        t0 = time.perf_counter()
        records = rollout(env, act, config.eval_episodes, seed=eval_seed, progress=progress, desc=variant)
        seconds[f"eval_{variant}"] = time.perf_counter() - t0
        env.close()
        rows.append({"env_id": config.env_id, "variant": variant, **summarize(records).as_dict()})
        episodes[variant] = [r.as_dict() for r in records]
    return ShieldEvalResult(
        config=config,
        rows=rows,
        calibration=calibration,
        threshold=float(threshold),
        n_transitions=prepared.n_transitions,
        n_unsafe=prepared.n_unsafe,
        seconds=seconds,
        episodes=episodes,
        n_branches=prepared.n_branches,
    )
