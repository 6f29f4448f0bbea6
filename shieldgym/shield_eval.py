"""Shielded vs unshielded: collect data with a task policy, fit a cost critic, calibrate, evaluate both.

The pipeline behind ``benchmarks/bench_shield_safety.py`` (and a shielded benchmark run from the
command line):

1. **collect**: run the task policy with exploration noise (a fraction of uniformly random actions
   and Gaussian noise on the rest) so that both safe and unsafe actions are covered;
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

from shieldgym.costs.base import get_cost

__all__ = [
    "TASK_POLICIES",
    "ShieldEvalConfig",
    "ShieldEvalResult",
    "circling_policy",
    "collect_transitions",
    "goal_seeking_policy",
    "in_violation",
    "run_shield_eval",
    "unsafe_labels",
]

Policy = Callable[[np.ndarray], np.ndarray]

_LIDAR_ANGLES = (np.arange(16) + 0.5) * 2.0 * np.pi / 16.0


def goal_seeking_policy(obs: np.ndarray) -> np.ndarray:
    """SafetyPointGoal1: turn towards the goal and drive at it, ignoring hazards.

    The flat observation is ``accelerometer(3) velocimeter(3) gyro(3) magnetometer(3) goal_lidar(16)
    hazards_lidar(16) vases_lidar(16)``; the goal direction is the lidar-weighted mean bin angle
    (bin ``i`` covers ``[i, i + 1) * 2 pi / 16`` counter-clockwise from the robot's heading).
    """
    goal = obs[12:28]
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
class ShieldEvalConfig:
    """Everything that defines one shielded-vs-unshielded comparison.

    Attributes:
        env_id: a ``shieldgym.make`` id.
        collect_episodes: episodes of noisy task-policy data (fit + calibration).
        random_prob: probability of a uniformly random action at each collection step.
        noise_std: Gaussian noise (fraction of the action range) on the other collection steps.
        calib_fraction: fraction of the collected episodes held out for calibration.
        gamma: cost-to-go discount of the critic.
        fit_steps, batch_size, net_arch, n_critics, conservative_weight, n_action_samples: critic fitting.
        feature_index: observation entries the critic sees (``None``: all).
        next_action: ``a'`` of the critic's target: ``"min"`` (the least risky of sampled actions, the
            cost-to-go of a shielded continuation) or ``"data"`` (the noisy behaviour policy's next action).
        label_horizon: an action is unsafe when a cost follows within this many steps.
        target_rate: calibration target (fraction of unsafe actions passed).
        threshold: fixed threshold instead of calibrating (``None``: calibrate).
        backup: ``"closest_safe"`` / ``"min_risk"`` (:class:`~shieldgym.backup.MinRiskBackup`) or ``"brake"``.
        n_candidates: candidates of the min-risk backup.
        eval_episodes: evaluation episodes per variant.
        seed: collection seeds start here (and the critic's and backup's seeds).
        eval_seed: evaluation reset seeds start here (the same for both variants).
    """

    env_id: str
    collect_episodes: int = 40
    random_prob: float = 0.3
    noise_std: float = 0.3
    calib_fraction: float = 0.25
    gamma: float = 0.9
    fit_steps: int = 4_000
    batch_size: int = 256
    net_arch: tuple[int, ...] = (128, 128)
    n_critics: int = 2
    conservative_weight: float = 0.5
    n_action_samples: int = 4
    feature_index: tuple[int, ...] | None = None
    next_action: Literal["min", "data"] = "min"
    label_horizon: int = 3
    target_rate: float = 0.2
    threshold: float | None = None
    backup: Literal["closest_safe", "min_risk", "brake"] = "closest_safe"
    n_candidates: int = 32
    eval_episodes: int = 20
    seed: int = 0
    eval_seed: int = 20_000


@dataclass
class ShieldEvalResult:
    """Rows (one per variant, keys of :class:`~shieldgym.evaluation.Summary` plus ``variant``/``env_id``),
    the calibration record, data sizes and wall times."""

    config: ShieldEvalConfig
    rows: list[dict[str, Any]]
    calibration: dict[str, Any] | None
    threshold: float
    n_transitions: int
    n_unsafe: int
    seconds: dict[str, float] = field(default_factory=dict)
    episodes: dict[str, list[dict[str, float]]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["config"] = asdict(self.config)
        return out


def collect_transitions(
    env: gym.Env,
    policy: Policy,
    n_episodes: int,
    *,
    seed: int = 0,
    random_prob: float = 0.3,
    noise_std: float = 0.3,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Roll out ``policy`` with exploration noise; return flat transition arrays.

    Returns:
        ``obs``, ``actions``, ``costs``, ``next_obs``, ``dones`` (terminated, not truncated),
        ``episode`` (episode index of each transition) and ``next_actions`` (the action taken at
        ``next_obs``; the last step of an episode repeats its own action).
    """
    space = env.action_space
    if not isinstance(space, gym.spaces.Box):
        raise TypeError(f"collect_transitions needs a Box action space, got {space!r}.")
    rng = np.random.default_rng(seed)
    span = space.high - space.low
    cols: dict[str, list[Any]] = {k: [] for k in ("obs", "actions", "costs", "next_obs", "dones", "episode")}
    episodes: Sequence[int] | Any = range(n_episodes)
    if progress:
        from tqdm.auto import tqdm

        episodes = tqdm(episodes, desc="collect", unit="ep", leave=False)
    for ep in episodes:
        obs, _ = env.reset(seed=seed + ep)
        done = False
        while not done:
            if rng.uniform() < random_prob:
                action = rng.uniform(space.low, space.high)
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


def _make_backup(config: ShieldEvalConfig, env: gym.Env) -> Any:
    from shieldgym.backup import BrakeBackup, MinRiskBackup

    if config.backup == "brake":
        return BrakeBackup.from_env(env)
    if config.backup == "closest_safe":
        return MinRiskBackup(config.n_candidates, select="closest_safe", seed=config.seed)
    return MinRiskBackup(config.n_candidates, select="min_risk", seed=config.seed)


def run_shield_eval(
    config: ShieldEvalConfig,
    policy: Policy | None = None,
    *,
    make_env: Callable[[], gym.Env] | None = None,
    progress: bool = True,
) -> ShieldEvalResult:
    """Run the whole comparison for one env.

    Args:
        config: the :class:`ShieldEvalConfig`.
        policy: the task policy; ``None`` uses :data:`TASK_POLICIES` for ``config.env_id``.
        make_env: env factory; ``None`` uses ``shieldgym.make(config.env_id)``.
        progress: tqdm progress bars.

    Returns:
        A :class:`ShieldEvalResult` whose ``rows`` are ``[unshielded, shielded]``.
    """
    from shieldgym.critics.calibration import calibrate_threshold
    from shieldgym.critics.fit import fit_cost_critic
    from shieldgym.evaluation import rollout, summarize
    from shieldgym.wrappers.shield import ShieldWrapper

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

    seconds: dict[str, float] = {}
    env = make_env()
    t0 = time.perf_counter()
    data = collect_transitions(
        env,
        policy,
        config.collect_episodes,
        seed=config.seed,
        random_prob=config.random_prob,
        noise_std=config.noise_std,
        progress=progress,
    )
    seconds["collect"] = time.perf_counter() - t0
    n_fit_eps = max(1, round(config.collect_episodes * (1.0 - config.calib_fraction)))
    fit_mask = data["episode"] < n_fit_eps
    unsafe = unsafe_labels(data["costs"], data["episode"], config.label_horizon)
    # Calibrate on decisions taken outside violation: once in violation every action is "unsafe" for a
    # few steps whatever it is, and those examples would say nothing about which actions lead there.
    decisions = ~in_violation(data["costs"], data["episode"])

    t0 = time.perf_counter()
    critic = fit_cost_critic(
        {k: v[fit_mask] for k, v in data.items() if k != "episode" and (k != "next_actions" or config.next_action == "data")},
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

    calibration = None
    threshold = config.threshold
    if threshold is None:
        held = ~fit_mask & decisions
        record = calibrate_threshold(
            critic,
            {"obs": data["obs"][held], "actions": data["actions"][held], "unsafe": unsafe[held]},
            config.target_rate,
            seed=config.seed,
        )
        calibration = record.as_dict()
        threshold = record.threshold

    rows: list[dict[str, Any]] = []
    episodes: dict[str, list[dict[str, float]]] = {}
    eval_seed = config.eval_seed
    for variant in ("unshielded", "shielded"):
        env = make_env()
        if variant == "shielded":
            env = ShieldWrapper(env, critic, _make_backup(config, env), threshold)
        t0 = time.perf_counter()
        records = rollout(env, policy, config.eval_episodes, seed=eval_seed, progress=progress, desc=variant)
        seconds[f"eval_{variant}"] = time.perf_counter() - t0
        env.close()
        rows.append({"env_id": config.env_id, "variant": variant, **summarize(records).as_dict()})
        episodes[variant] = [r.as_dict() for r in records]
    return ShieldEvalResult(
        config=config,
        rows=rows,
        calibration=calibration,
        threshold=float(threshold),
        n_transitions=len(data["costs"]),
        n_unsafe=int(unsafe.sum()),
        seconds=seconds,
        episodes=episodes,
    )
