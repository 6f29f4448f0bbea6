"""Branched rollouts: Monte-Carlo cost labels of several actions from the same simulator state.

A cost critic fitted by TD on one-step transitions of a momentum-driven robot ranks *states*: what one
step's action changes is small next to where the velocity already takes the robot. Branching gives data
that ranks *actions*. From a state ``s`` visited by the noisy task policy, each of ``K`` candidate
actions ``a_k`` (the task policy's action, the brake action, uniform random ones) is run on a copy of the
physics state:

    a_k held for ``hold`` steps, then (optionally) the task policy for ``follow`` steps, then the backup
    for ``horizon`` steps,

and labelled with the discounted cost of that branch,

    y_k = sum_{t=0}^{hold + follow + horizon - 1} gamma^t c_t,

after which the saved state is restored and the main rollout continues as if nothing had happened. A
critic regressed onto ``y`` (:func:`fit_branch_critic`) estimates "can the backup still recover after this
action is kept up for a moment"; a shield with it vetoes the actions after which, by that estimate, the
backup cannot.

Only the MuJoCo state is branched (:class:`SimulatorBrancher`): the full integration state (positions,
velocities, controls, the solver's warm start, mocap bodies, time) is saved with ``mj_getState`` and written
back with ``mj_setState``. A branch steps the physics the way the suite does (action clipped into the
actuator range, ``frameskip`` physics steps, the same three forward passes) and reads the suite's cost and
observation, which depend on that state only (or their vectorised copies, ``fast=True``); it never calls
the env's ``step``, so the suite's Python-side state (step counter, goal relocation, last goal distance,
random generator) is not touched. A goal reached inside a branch stays where it is (the label needs only
the cost). The env's own steps after a restore are bit for bit those it would have taken without the branch.

Example:
    >>> import shieldgym
    >>> env = shieldgym.make("SafetyPointGoal1-v0")  # doctest: +SKIP
    >>> obs, _ = env.reset(seed=0)  # doctest: +SKIP
    >>> sim = SimulatorBrancher(env)  # doctest: +SKIP
    >>> state = sim.save()  # doctest: +SKIP
    >>> cost, obs = sim.step(np.array([1.0, 0.0]), observe=True)  # doctest: +SKIP
    >>> sim.restore(state)  # the env is back where it was  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["BranchConfig", "SimulatorBrancher", "branch_labels", "collect_branches", "fit_branch_critic"]

Policy = Callable[[np.ndarray], np.ndarray]


class _FastReadout:
    """Vectorised copies of the suite's hazard cost and flat observation (sensors and pseudo lidars).

    The suite computes them in Python loops over objects, looking each body up by name (~0.3 ms a step);
    here the body indices are resolved once. :meth:`build` returns ``None`` when the task has anything
    this does not reproduce (other cost terms, natural lidar, compass, vision, unflattened observations).
    """

    def __init__(self, task: Any, hazards: list[tuple[np.ndarray, float, float]], lidars: list[tuple[str, np.ndarray]]):
        import mujoco

        self.task = task
        self.model, self.data = task.model, task.data
        self.agent_id = int(mujoco.mj_name2id(task.model, mujoco.mjtObj.mjOBJ_BODY, "agent"))
        self.hazards = hazards  # (body ids, size, cost per unit of depth)
        self.lidars = dict(lidars)  # observation key -> body ids
        self.keys = list(task.obs_info.obs_space_dict.keys())
        conf = task.lidar_conf
        self.n_bins, self.max_dist, self.alias = int(conf.num_bins), float(conf.max_dist), bool(conf.alias)

    @classmethod
    def build(cls, task: Any) -> _FastReadout | None:
        import mujoco

        conf = getattr(task, "lidar_conf", None)
        if (
            conf is None
            or conf.type != "pseudo"
            or conf.max_dist is None
            or not getattr(task, "observation_flatten", False)
            or getattr(task, "observe_vision", False)
            or getattr(task, "_is_load_static_geoms", False)
            or conf.num_bins < 3
        ):
            return None

        def body_ids(obstacle: Any) -> np.ndarray | None:
            num = getattr(obstacle, "num", None)
            names = [obstacle.name] if num is None else [f"{obstacle.name[:-1]}{i}" for i in range(num)]
            ids = np.array([mujoco.mj_name2id(task.model, mujoco.mjtObj.mjOBJ_BODY, n) for n in names], dtype=np.int64)
            if (ids < 0).any() or not np.array_equal(task.data.xpos[ids], np.array(obstacle.pos, ndmin=2)):
                return None
            return ids

        hazards, lidars = [], []
        for obstacle in task._obstacles:
            if getattr(obstacle, "is_comp_observed", False):
                return None
            ids = body_ids(obstacle)
            if ids is None:
                return None
            if getattr(obstacle, "is_constrained", False):
                if type(obstacle).__name__ != "Hazards":
                    return None
                hazards.append((ids, float(obstacle.size), float(obstacle.cost)))
            if obstacle.is_lidar_observed:
                lidars.append((obstacle.name + "_lidar", ids))
        return cls(task, hazards, lidars)

    def cost(self) -> float:
        """``sum_h cost_h (size_h - d_h)`` over the hazards the agent is within (``d_h <= size_h``)."""
        xpos = self.data.xpos
        agent = xpos[self.agent_id, :2]
        total = 0.0
        for ids, size, unit in self.hazards:
            dist = np.sqrt(np.square(xpos[ids, :2] - agent).sum(axis=1))
            total += float((unit * (size - dist[dist <= size])).sum())
        return total

    def lidar(self, ids: np.ndarray) -> np.ndarray:
        """The suite's pseudo lidar of the bodies ``ids``: per bin the closest reading, spread to the two
        neighbouring bins by the angle within the bin (aliasing)."""
        xpos = self.data.xpos
        agent = xpos[self.agent_id]
        mat = self.data.xmat[self.agent_id].reshape(3, 3)
        world = np.zeros((len(ids), 3))
        world[:, :2] = xpos[ids, :2]
        ego = ((world - agent) @ mat)[:, :2]  # (N, 3) @ (3, 3): world -> agent frame
        dist = np.hypot(ego[:, 0], ego[:, 1])
        bin_size = 2.0 * np.pi / self.n_bins
        angle = np.arctan2(ego[:, 1], ego[:, 0]) % (2.0 * np.pi)
        bins = (angle / bin_size).astype(np.int64) % self.n_bins
        sensor = np.maximum(0.0, self.max_dist - dist) / self.max_dist
        rows = np.zeros((len(ids), self.n_bins))  # one row per body; the reading is the maximum over rows
        at = np.arange(len(ids))
        if self.alias:
            alias = (angle - bin_size * bins) / bin_size
            rows[at, (bins + 1) % self.n_bins] = alias * sensor
            rows[at, (bins - 1) % self.n_bins] = (1.0 - alias) * sensor
        rows[at, bins] = sensor
        return rows.max(axis=0)

    def observe(self) -> np.ndarray:
        """The flat observation: the agent's sensors and the lidars, in the observation space's key order."""
        parts = self.task.agent.obs_sensor()
        for key, ids in self.lidars.items():
            parts[key] = self.lidar(ids)
        return np.concatenate([np.asarray(parts[k], dtype=np.float64).reshape(-1) for k in self.keys])


class SimulatorBrancher:
    """Save, restore and step the physics of a Safety-Gymnasium navigation env, bypassing its ``step``.

    Args:
        env: a ``shieldgym.make`` Safety-Gymnasium navigation env (any wrappers around it), reset.

    Raises:
        TypeError: ``env`` is not a Safety-Gymnasium navigation env.
        ValueError: the env steps non-deterministically (random frame skip or action noise), so a branch
            could not reproduce what the env would do.
    """

    def __init__(self, env: gym.Env) -> None:
        import mujoco

        suite_env = getattr(env.unwrapped, "suite_env", None)
        task = getattr(suite_env, "task", None)
        if task is None or not hasattr(task, "data"):
            raise TypeError(f"SimulatorBrancher needs a Safety-Gymnasium navigation env (shieldgym.make), got {env!r}.")
        sim = task.sim_conf
        if sim.frameskip_binom_p != 1.0 or task.action_noise:
            raise ValueError(
                "SimulatorBrancher needs deterministic steps (frameskip_binom_p == 1 and no action noise), got "
                f"frameskip_binom_p={sim.frameskip_binom_p!r}, action_noise={task.action_noise!r}."
            )
        if getattr(task, "_mocaps", None):
            raise ValueError(f"SimulatorBrancher does not support tasks with moving mocap bodies, got {sorted(task._mocaps)}.")
        self._mujoco = mujoco
        self.task = task
        self.frameskip = int(sim.frameskip_binom_n)
        self.indicator = bool(task.cost_conf.constrain_indicator)
        self._spec = mujoco.mjtState.mjSTATE_INTEGRATION
        self._size = mujoco.mj_stateSize(task.model, self._spec)
        self._fast = _FastReadout.build(task)

    @property
    def has_fast_readout(self) -> bool:
        """Whether ``step(..., fast=True)`` uses the vectorised cost and observation (else the suite's own)."""
        return self._readout() is not None

    def _readout(self) -> _FastReadout | None:
        # a reset may rebuild the simulator (new model and data): resolve the bodies again then
        fast, task = self._fast, self.task
        if fast is not None and (fast.model is not task.model or fast.data is not task.data):
            self._fast = fast = _FastReadout.build(task)
        return fast

    def save(self) -> np.ndarray:
        """The full integration state of the simulator (a new array)."""
        state = np.empty(self._size)
        self._mujoco.mj_getState(self.task.model, self.task.data, state, self._spec)
        return state

    def restore(self, state: np.ndarray) -> None:
        """Write back a state from :meth:`save` and recompute the derived quantities (positions, sensors).

        The forward pass also overwrites the constraint solver's warm start, which is part of the state (the
        next step's solution depends on it in the last bits), so the state is written once more after it.
        """
        task, mujoco = self.task, self._mujoco
        mujoco.mj_setState(task.model, task.data, state, self._spec)
        mujoco.mj_forward(task.model, task.data)
        mujoco.mj_setState(task.model, task.data, state, self._spec)

    def step(self, action: np.ndarray, observe: bool = False, fast: bool = False) -> tuple[float, np.ndarray | None]:
        """One env step of the physics, as the suite's ``step`` does it; returns its cost and, with
        ``observe``, the observation.

        The suite runs three forward passes per step (after the physics, in the cost and in the
        observation), each of which updates the solver's warm start; a step here runs the same three, so
        a branch follows the env bit for bit. With ``fast`` (and :attr:`has_fast_readout`) the cost and the
        observation are computed by vectorised copies of the suite's formulas (hazard cost, pseudo lidar),
        ~4x faster and equal to the suite's up to float rounding.
        """
        task, mujoco = self.task, self._mujoco
        readout = self._readout() if fast else None
        task.agent.apply_action(np.asarray(action))
        for _ in range(self.frameskip):
            mujoco.mj_step(task.model, task.data)
        mujoco.mj_forward(task.model, task.data)
        if readout is None:
            cost = float(task.calculate_cost()["cost_sum"])  # a forward pass, then the suite's cost terms
        else:
            mujoco.mj_forward(task.model, task.data)
            cost = readout.cost()
        obs = None
        if observe and readout is None:
            obs = np.asarray(task.obs())  # a forward pass, then the suite's sensors and lidars
        else:
            mujoco.mj_forward(task.model, task.data)
            if observe and readout is not None:
                obs = readout.observe()
        return (float(cost > 0.0) if self.indicator else cost), obs


def branch_labels(
    sim: SimulatorBrancher,
    actions: np.ndarray,
    backup: Policy,
    *,
    hold: int,
    horizon: int,
    gamma: float,
    policy: Policy | None = None,
    follow: int = 0,
    fast: bool = True,
) -> np.ndarray:
    """Discounted cost of each action held for ``hold`` steps, then ``policy`` for ``follow`` steps, then
    ``backup`` for ``horizon`` steps.

    Every branch starts from the simulator's current state, which is restored afterwards.

    Args:
        sim: the simulator.
        actions: ``(K, A)`` first actions.
        backup: ``backup(obs) -> action`` after the hold.
        hold: steps each action is held (>= 1).
        horizon: backup steps after the hold (>= 0).
        gamma: discount per step.
        policy: the task policy followed after the hold (needed when ``follow > 0``).
        follow: steps of ``policy`` between the hold and the backup.
        fast: use the simulator's vectorised cost and observation (see :meth:`SimulatorBrancher.step`).

    Returns:
        ``(K,)`` labels ``sum_t gamma^t c_t``.
    """
    if follow > 0 and policy is None:
        raise ValueError("follow > 0 needs the task policy (policy=...).")
    state = sim.save()
    labels = np.zeros(len(actions))
    for k, action in enumerate(actions):
        total, weight = 0.0, 1.0
        obs: Any = None  # observed on the hold's last step, when a policy or the backup acts after it
        for t in range(hold):
            cost, obs = sim.step(action, observe=horizon + follow > 0 and t == hold - 1, fast=fast)
            total += weight * cost
            weight *= gamma
        for _ in range(follow):
            assert policy is not None
            cost, obs = sim.step(np.asarray(policy(obs)), observe=True, fast=fast)
            total += weight * cost
            weight *= gamma
        for _ in range(horizon):
            cost, obs = sim.step(np.asarray(backup(obs)), observe=True, fast=fast)
            total += weight * cost
            weight *= gamma
        labels[k] = total
        sim.restore(state)
    return labels


@dataclass(frozen=True)
class BranchConfig:
    """How :func:`collect_branches` branches.

    Attributes:
        hold: steps each branched action is held.
        horizon: backup steps after the hold (and the ``follow`` steps).
        gamma: discount of the label.
        follow: steps of the task policy between the hold and the backup: the label then asks whether the backup
            can still recover after the action *and* a stretch of the task policy, so the shield keeps vetoing while
            the task policy's own path leads into a hazard (0: the backup right after the hold).
        n_random: uniform random actions per branched state (besides the task policy's and the brake action).
        near: states whose nearest hazard (from the hazard lidar) is closer than this (metres) are branched
            with probability ``near_prob``, the others with ``far_prob``.
        near_prob, far_prob: branching probabilities.
        hazard_index: observation entries of the hazard lidar.
        max_dist: the lidar's range.
    """

    hold: int = 5
    horizon: int = 30
    gamma: float = 0.95
    follow: int = 0
    n_random: int = 5
    near: float = 1.0
    near_prob: float = 0.25
    far_prob: float = 0.01
    hazard_index: tuple[int, ...] = tuple(range(28, 44))
    max_dist: float = 3.0

    def __post_init__(self) -> None:
        if not isinstance(self.hold, int) or self.hold < 1:
            raise ValueError(f"hold must be a positive int, got {self.hold!r}.")
        if not isinstance(self.follow, int) or self.follow < 0:
            raise ValueError(f"follow must be an int >= 0, got {self.follow!r}.")
        if not isinstance(self.horizon, int) or self.horizon < 0:
            raise ValueError(f"horizon must be an int >= 0, got {self.horizon!r}.")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma!r}.")
        if not isinstance(self.n_random, int) or self.n_random < 0:
            raise ValueError(f"n_random must be an int >= 0, got {self.n_random!r}.")
        for name in ("near_prob", "far_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}.")


def collect_branches(
    env: gym.Env,
    policy: Policy,
    backup: Policy,
    n_episodes: int,
    config: BranchConfig = BranchConfig(),
    *,
    seed: int = 0,
    random_prob: float = 0.1,
    noise_std: float = 0.3,
    hold_steps: int = 10,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Roll out the noisy task policy and branch candidate actions from the states it visits.

    The main rollout is :func:`shieldgym.shield_eval.collect_transitions` with the same arguments (and so
    the same states, whatever the branching does); at each state it is branched with the probability of
    :class:`BranchConfig` (drawn from a separate generator), over the task policy's action, the brake
    action (zeros clipped into the bounds) and ``n_random`` uniform actions, each labelled by
    :func:`branch_labels`.

    Returns:
        ``obs`` ``(M, obs_dim)`` (the branched state, repeated per action), ``actions`` ``(M, A)``,
        ``labels`` ``(M,)``, ``kind`` ``(M,)`` (0 task policy, 1 brake, 2 random), ``state`` ``(M,)``
        (index of the branched state) and ``episode`` ``(M,)``; plus ``n_states`` (the states visited).
    """
    from shieldgym.shield_eval import collect_transitions

    space = env.action_space
    if not isinstance(space, gym.spaces.Box):
        raise TypeError(f"collect_branches needs a Box action space, got {space!r}.")
    rng = np.random.default_rng([seed, 1])  # apart from the main rollout's generator
    brake = np.clip(np.zeros(space.shape), space.low, space.high)
    hazard = list(config.hazard_index)
    rows: dict[str, list[Any]] = {k: [] for k in ("obs", "actions", "labels", "kind", "state", "episode")}
    visited = [0]
    sim: list[SimulatorBrancher] = []

    def branch(obs: np.ndarray, episode: int) -> None:
        index = visited[0]
        visited[0] += 1
        flat = np.asarray(obs, dtype=np.float64).reshape(-1)
        nearest = (1.0 - float(np.clip(flat[hazard], 0.0, 1.0).max())) * config.max_dist
        if rng.uniform() >= (config.near_prob if nearest < config.near else config.far_prob):
            return
        if not sim:
            sim.append(SimulatorBrancher(env))
        actions = np.concatenate(
            [
                np.clip(np.asarray(policy(flat), dtype=np.float64), space.low, space.high)[None],
                brake[None],
                rng.uniform(space.low, space.high, size=(config.n_random, *space.shape)),
            ]
        )
        labels = branch_labels(
            sim[0],
            actions,
            backup,
            hold=config.hold,
            horizon=config.horizon,
            gamma=config.gamma,
            policy=policy,
            follow=config.follow,
        )
        kinds = [0, 1] + [2] * config.n_random
        for action, label, kind in zip(actions, labels, kinds):
            for key, value in (("obs", flat), ("actions", action), ("labels", label), ("kind", kind)):
                rows[key].append(value)
            rows["state"].append(index)
            rows["episode"].append(episode)

    collect_transitions(
        env,
        policy,
        n_episodes,
        seed=seed,
        random_prob=random_prob,
        noise_std=noise_std,
        hold_steps=hold_steps,
        before_step=branch,
        progress=progress,
    )
    obs_dim = int(np.prod(env.observation_space.shape or (0,)))
    data: dict[str, np.ndarray] = {
        "obs": np.asarray(rows["obs"], dtype=np.float32).reshape(-1, obs_dim),
        "actions": np.asarray(rows["actions"], dtype=np.float32).reshape(-1, *space.shape),
        "labels": np.asarray(rows["labels"], dtype=np.float32),
        "kind": np.asarray(rows["kind"], dtype=np.int64),
        "state": np.asarray(rows["state"], dtype=np.int64),
        "episode": np.asarray(rows["episode"], dtype=np.int64),
        "n_states": np.asarray(visited[0]),
    }
    return data


def fit_branch_critic(
    branches: dict[str, np.ndarray],
    *,
    action_space: gym.Space,
    features: Callable[[np.ndarray], np.ndarray] | None = None,
    feature_index: Sequence[int] | None = None,
    fit_steps: int = 4_000,
    batch_size: int = 256,
    n_critics: int = 2,
    net_arch: Sequence[int] = (128, 128),
    seed: int = 0,
    progress: bool = False,
) -> Any:
    """Regress a cost critic onto branch labels with :func:`~shieldgym.critics.fit.fit_cost_critic`.

    The labels are Monte-Carlo targets, so no new loss is needed: with ``costs = labels``, ``dones = 1`` and
    ``conservative_weight = 0`` the fit's Bellman target is ``y = c + gamma (1 - done) Q'(s', a') = label``
    and its loss the plain squared error ``0.5 (Q(s, a) - label)^2`` per ensemble member (``next_obs`` is
    then never used; the observation is passed for it).

    Args:
        branches: the output of :func:`collect_branches` (``obs``, ``actions``, ``labels``).
        action_space: the env's action space (a ``Box``).
        features: optional observation features the critic is fitted on (the result is then a
            :class:`~shieldgym.shield_eval.FeatureCritic` called on raw observations).
        feature_index, fit_steps, batch_size, n_critics, net_arch, seed, progress: as in ``fit_cost_critic``.

    Returns:
        The fitted critic (risk = max over members): a ``CostCritic``, or a ``FeatureCritic`` around it.
    """
    from shieldgym.critics.fit import fit_cost_critic
    from shieldgym.shield_eval import FeatureCritic

    if not isinstance(action_space, gym.spaces.Box):
        raise TypeError(f"fit_branch_critic needs a Box action space, got {action_space!r}.")
    obs = np.asarray(branches["obs"], dtype=np.float32)
    x = obs if features is None else features(obs)
    labels = np.asarray(branches["labels"], dtype=np.float32)
    if len(labels) == 0:
        raise ValueError("no branches to fit on: collect more episodes or raise the branching probabilities.")
    fitted = fit_cost_critic(
        {"obs": x, "actions": branches["actions"], "costs": labels, "next_obs": x, "dones": np.ones_like(labels)},
        action_space=action_space,
        fit_steps=fit_steps,
        batch_size=batch_size,
        n_critics=n_critics,
        net_arch=net_arch,
        conservative_weight=0.0,
        feature_index=feature_index,
        seed=seed,
        progress=progress,
    )
    return fitted if features is None else FeatureCritic(fitted, features)
