"""Roll out a policy and summarise return, cost, violations and shield activity per episode.

Used by the CLI (``shieldgym run`` / ``shieldgym benchmark``) and by the benchmark scripts, so every
table in the project is computed the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from shieldgym.costs.base import COST_KEY, get_cost

__all__ = ["EpisodeRecord", "Summary", "rollout", "summarize"]

Policy = Callable[[Any], Any]


@dataclass(frozen=True)
class EpisodeRecord:
    """One finished episode.

    Attributes:
        ret: undiscounted return.
        cost: undiscounted sum of ``info["cost"]``.
        length: number of steps.
        violations: number of steps with cost > 0.
        interventions: number of steps on which the shield replaced the action (0 without a shield).
        seed: the reset seed of the episode.
        seconds: wall-clock time of the episode (env + policy).
    """

    ret: float
    cost: float
    length: int
    violations: int
    interventions: int
    seed: int
    seconds: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Summary:
    """Means (and standard deviations) over episodes, plus throughput."""

    episodes: int
    ret_mean: float
    ret_std: float
    cost_mean: float
    cost_std: float
    violations_mean: float
    length_mean: float
    shield_rate: float
    steps_per_s: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _random_policy(env: gym.Env, seed: int) -> Policy:
    space = env.action_space
    space.seed(seed)
    return lambda _obs: space.sample()


def rollout(
    env: gym.Env,
    policy: Policy | None,
    n_episodes: int,
    seed: int = 0,
    *,
    cost_key: str = COST_KEY,
    max_steps: int | None = None,
    progress: bool = False,
    desc: str | None = None,
) -> list[EpisodeRecord]:
    """Run ``n_episodes`` episodes of ``policy`` on ``env``.

    Args:
        env: a Gymnasium env reporting ``info[cost_key]``.
        policy: ``policy(obs) -> action``; ``None`` samples uniformly from the action space (seeded).
        n_episodes: number of episodes (>= 1).
        seed: episode ``i`` is reset with seed ``seed + i``, so runs with the same seed see the same
            initial states.
        cost_key: the info key holding the step cost.
        max_steps: optional cap on steps per episode (the env's own time limit applies otherwise).
        progress: show a tqdm progress bar over episodes.
        desc: label of the progress bar.

    Returns:
        One :class:`EpisodeRecord` per episode.

    Raises:
        CostSignalError: the env does not report a valid ``info[cost_key]``.
    """
    if not isinstance(n_episodes, int) or n_episodes < 1:
        raise ValueError(f"n_episodes must be a positive int, got {n_episodes!r}.")
    act = policy if policy is not None else _random_policy(env, seed)
    records: list[EpisodeRecord] = []
    episodes: Sequence[int] | Any = range(n_episodes)
    if progress:
        from tqdm.auto import tqdm

        episodes = tqdm(episodes, desc=desc or "episodes", unit="ep", leave=False)
    for i in episodes:
        ep_seed = seed + i
        t0 = time.perf_counter()
        obs, _ = env.reset(seed=ep_seed)
        ret = cost = 0.0
        length = violations = interventions = 0
        done = False
        while not done:
            obs, reward, terminated, truncated, info = env.step(act(obs))
            c = get_cost(info, cost_key)
            ret += float(reward)
            cost += c
            length += 1
            violations += c > 0.0
            shield = info.get("shield")
            if shield is not None and shield.get("intervened"):
                interventions += 1
            done = terminated or truncated or (max_steps is not None and length >= max_steps)
        records.append(EpisodeRecord(ret, cost, length, int(violations), interventions, ep_seed, time.perf_counter() - t0))
    return records


def summarize(records: Sequence[EpisodeRecord]) -> Summary:
    """Aggregate episode records into a :class:`Summary` (``shield_rate`` = interventions / steps)."""
    if not records:
        raise ValueError("summarize needs at least one episode record.")
    r = np.array([e.ret for e in records])
    c = np.array([e.cost for e in records])
    steps = sum(e.length for e in records)
    secs = sum(e.seconds for e in records)
    return Summary(
        episodes=len(records),
        ret_mean=float(r.mean()),
        ret_std=float(r.std()),
        cost_mean=float(c.mean()),
        cost_std=float(c.std()),
        violations_mean=float(np.mean([e.violations for e in records])),
        length_mean=steps / len(records),
        shield_rate=sum(e.interventions for e in records) / max(steps, 1),
        steps_per_s=steps / secs if secs > 0 else float("nan"),
    )
