"""Overhead of shieldgym's cost wrappers on the benchmark envs: steps/s raw vs wrapped.

raw     = ``shieldgym.make(env_id)`` (the bridged env, already reporting ``info["cost"]``)
wrapped = ``CostEpisodeStatistics(CostWrapper(shieldgym.make(env_id)))`` (no extra cost terms)

Both envs are reset with the same seed and stepped with the same fixed random action sequence, in
blocks, interleaved raw, wrapped, raw, wrapped, ...; resets (which rebuild the MuJoCo model in
Safety-Gymnasium) are not timed. Per-step time = block time / block steps, in wall-clock and in CPU
time of this process (the machine may be shared). Overhead = median(wrapped) / median(raw) - 1, and
the median of the per-round ratios. Target: <= 3 %.

Run::

    .venv/bin/python benchmarks/bench_cost_overhead.py [--rounds 21] [--block 800]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Timing, interleave, median, result_header, timer, write_result

import shieldgym
from shieldgym.report import format_table

ENV_IDS = ("SafetyPointGoal1-v0", "SafetyBallCircle-v0")
TARGET = 0.03


class Stepper:
    """Steps one env through a fixed action sequence in timed blocks; resets happen outside the timer."""

    def __init__(self, env: Any, actions: np.ndarray, seed: int) -> None:
        self.env, self.actions, self.seed = env, actions, seed
        self.i = 0
        self.env.reset(seed=seed)

    def block(self, n: int) -> Timing:
        total = Timing()
        done_steps = 0
        while done_steps < n:
            with timer() as t:
                while done_steps < n:
                    _, _, terminated, truncated, _ = self.env.step(self.actions[self.i % len(self.actions)])
                    self.i += 1
                    done_steps += 1
                    if terminated or truncated:
                        break
            total.wall += t.wall
            total.cpu += t.cpu
            if terminated or truncated:
                self.seed += 1
                self.env.reset(seed=self.seed)
        return Timing(total.wall / n, total.cpu / n)


def measure(env_id: str, rounds: int, block: int, seed: int) -> dict[str, Any]:
    from shieldgym.wrappers.cost import CostEpisodeStatistics, CostWrapper

    raw_env = shieldgym.make(env_id)
    wrapped_env = CostEpisodeStatistics(CostWrapper(shieldgym.make(env_id)))
    rng = np.random.default_rng(seed)
    space = raw_env.action_space
    actions = rng.uniform(space.low, space.high, size=(4096, *space.shape)).astype(space.dtype)
    raw, wrapped = Stepper(raw_env, actions, seed), Stepper(wrapped_env, actions, seed)
    raw.block(block // 5)  # warm-up (first-step allocations, caches)
    wrapped.block(block // 5)
    results = interleave({"raw": lambda: raw.block(block), "wrapped": lambda: wrapped.block(block)}, rounds)
    raw_env.close()
    wrapped_env.close()
    row: dict[str, Any] = {"env_id": env_id, "rounds": rounds, "block": block}
    for clock in ("wall", "cpu"):
        r = [getattr(t, clock) for t in results["raw"]]
        w = [getattr(t, clock) for t in results["wrapped"]]
        row[f"raw_us_{clock}"] = median(r) * 1e6
        row[f"wrapped_us_{clock}"] = median(w) * 1e6
        row[f"overhead_{clock}"] = median(w) / median(r) - 1.0
        row[f"paired_{clock}"] = median([b / a for a, b in zip(r, w)]) - 1.0
    row["raw_sps"] = 1e6 / row["raw_us_wall"]
    row["wrapped_sps"] = 1e6 / row["wrapped_us_wall"]
    return row


class _NullEnv:
    """A no-op env with a BallCircle-like interface: isolates the wrappers' own cost per step."""

    def __new__(cls) -> Any:
        import gymnasium as gym

        class Null(gym.Env):
            observation_space = gym.spaces.Box(-1.0, 1.0, (8,), np.float64)
            action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
            _obs = np.zeros(8)

            def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
                super().reset(seed=seed)
                return self._obs, {}

            def step(self, action: Any) -> Any:
                return self._obs, 0.0, False, False, {"cost": 0.0, "costs": {}}

        return Null()


def wrapper_cost_us(rounds: int, steps: int = 20_000) -> float:
    """Median extra CPU µs per step of CostEpisodeStatistics(CostWrapper(env)) over a no-op env."""
    from shieldgym.wrappers.cost import CostEpisodeStatistics, CostWrapper

    action = np.zeros(2, np.float32)
    raw_env, wrapped_env = _NullEnv(), CostEpisodeStatistics(CostWrapper(_NullEnv()))
    raw_env.reset(seed=0)
    wrapped_env.reset(seed=0)

    def run(env: Any) -> Timing:
        with timer() as t:
            for _ in range(steps):
                env.step(action)
        return t

    res = interleave({"raw": lambda: run(raw_env), "wrapped": lambda: run(wrapped_env)}, rounds)
    return (median([t.cpu for t in res["wrapped"]]) - median([t.cpu for t in res["raw"]])) / steps * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--block", type=int, default=800, help="steps per timed block")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--envs", nargs="+", default=list(ENV_IDS))
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    header = result_header("Cost-wrapper overhead (steps/s raw vs CostWrapper + CostEpisodeStatistics)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = [measure(e, args.rounds, args.block, args.seed) for e in args.envs]
        extra_us = wrapper_cost_us(args.rounds)
    for r in rows:
        r["wrapper_us"] = extra_us
        r["implied"] = extra_us / r["raw_us_cpu"]

    cols = [
        ("env_id", "env"),
        ("raw_us_wall", "raw µs/step (wall)", ".1f"),
        ("wrapped_us_wall", "wrapped µs/step (wall)", ".1f"),
        ("raw_sps", "raw steps/s", ".0f"),
        ("wrapped_sps", "wrapped steps/s", ".0f"),
        ("overhead_wall", "overhead (wall)", ".2%"),
        ("paired_wall", "paired ratio - 1 (wall)", ".2%"),
        ("raw_us_cpu", "raw µs/step (CPU)", ".1f"),
        ("wrapped_us_cpu", "wrapped µs/step (CPU)", ".1f"),
        ("overhead_cpu", "overhead (CPU)", ".2%"),
        ("paired_cpu", "paired ratio - 1 (CPU)", ".2%"),
        ("implied", "wrapper µs / raw µs (CPU)", ".2%"),
    ]
    print(format_table(rows, cols))
    verdicts = []
    for r in rows:
        worst = max(r["overhead_cpu"], r["paired_cpu"])
        status = "met" if worst <= TARGET else f"missed by {100 * (worst - TARGET):.2f} percentage points"
        verdicts.append(
            f"- {r['env_id']}: CPU-time overhead {100 * r['overhead_cpu']:.2f} % (paired {100 * r['paired_cpu']:.2f} %), "
            f"wall {100 * r['overhead_wall']:.2f} % (paired {100 * r['paired_wall']:.2f} %); the wrappers' own cost, "
            f"{r['wrapper_us']:.2f} µs/step on a no-op env, is {100 * r['implied']:.2f} % of a raw step: "
            f"target <= 3 % {status}."
        )
    print("\n".join(verdicts))
    if not args.no_write:
        text = "\n".join(
            [
                header,
                f"{args.rounds} interleaved rounds (raw, wrapped, raw, ...) of {args.block} steps per env, the same fixed "
                "random action sequence and reset seeds for both; resets untimed. Medians of per-step time; overhead = "
                "median(wrapped) / median(raw) - 1; 'paired' = median over rounds of wrapped/raw - 1. CPU time is this "
                "process's `time.process_time`, less sensitive than wall time to other jobs on the machine. "
                "'wrapper µs / raw µs' isolates the wrappers: their extra CPU time per step on a no-op env (same "
                "interleaving, 20 000 steps per round) divided by the raw env's CPU time per step.",
                "",
                format_table(rows, cols, markdown=True),
                "",
                "Target: wrapper overhead <= 3 % (judged on CPU time, the larger of the two estimates).",
                "",
                *verdicts,
                "",
            ]
        )
        print(f"wrote {write_result('cost_overhead', text)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
