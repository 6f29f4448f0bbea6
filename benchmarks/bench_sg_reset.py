"""Reset time and episode throughput of Safety-Gymnasium navigation tasks through ``shieldgym.make``.

A navigation task builds a new MuJoCo model on every reset. ``shieldgym.make`` builds the world of
an env that can never show the sky (``render_mode=None``, no vision observation) without the skybox
texture, whose six PNG faces decode to 191 MB per reset; the suite's own ``safety_gymnasium.make``
(loaded through the same compatibility layer) keeps it. Variants, interleaved round by round:

- ``suite``: ``safety_gymnasium.make(task)``, the package's own env (6-tuple step);
- ``shieldgym``: ``shieldgym.make(task)``.

Each round times one ``reset(seed)`` and then one whole episode of uniform random actions (the
same seed and actions for both variants); the observations of both are compared exactly.

Usage::

    python benchmarks/bench_sg_reset.py [--tasks SafetyPointGoal1-v0 SafetyPointCircle1-v0] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from _common import interleave, median, result_header, timer, write_result

import shieldgym
from shieldgym.envs.safety_gymnasium import load_safety_gymnasium, max_episode_steps_of


def episode(env: Any, seed: int, actions: np.ndarray, six_tuple: bool) -> tuple[float, float, int, np.ndarray]:
    """(reset wall s, episode wall s incl. the reset, steps, observation checksum row)."""
    with timer() as t_reset:
        obs, _ = env.reset(seed=seed)
    checksum = [float(np.sum(obs))]
    with timer() as t_steps:
        n = 0
        for a in actions:
            out = env.step(a)
            n += 1
            checksum.append(float(np.sum(out[0])))
            terminated, truncated = (out[3], out[4]) if six_tuple else (out[2], out[3])
            if terminated or truncated:
                break
    return t_reset.wall, t_reset.wall + t_steps.wall, n, np.array(checksum)


def measure(sg: Any, task: str, rounds: int) -> list[tuple]:
    """Rows ``(task, variant, reset s, episode s, steps, steps/s)`` and a final ``(task, "ratio", ...)`` row."""
    envs = {"suite": sg.make(task), "shieldgym": shieldgym.make(task)}
    actions = np.random.default_rng(0).uniform(-1.0, 1.0, (max_episode_steps_of(task), 2))
    calls = iter(range(10**6))  # both variants of a round get the same reset seed

    def run(name: str) -> tuple[float, float, int, np.ndarray]:
        return episode(envs[name], 1000 + next(calls) // 2, actions, six_tuple=name == "suite")

    results = interleave({k: (lambda k=k: run(k)) for k in envs}, repeats=rounds)
    same = all(np.array_equal(a[3], b[3]) for a, b in zip(results["suite"], results["shieldgym"]))
    rows: list[tuple] = []
    for name in envs:
        steps = results[name][0][2]
        episode_s = median([r[1] for r in results[name]])
        rows.append((task, name, median([r[0] for r in results[name]]), episode_s, steps, steps / episode_s))
    rows.append((task, "ratio", None, None, None, rows[-1][5] / rows[-2][5], same))
    for env in envs.values():
        env.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["SafetyPointGoal1-v0", "SafetyPointCircle1-v0"])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    sg = load_safety_gymnasium()
    rows = [row for task in args.tasks for row in measure(sg, task, args.rounds)]

    lines = [
        "| task | env | reset (s, median) | episode incl. reset (s, median) | steps | steps/s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    notes = []
    for row in rows:
        if row[1] == "ratio":
            notes.append(f"- {row[0]}: shieldgym {row[5]:.2f}x the suite's steps/s; observations identical: {row[6]}")
            continue
        task, name, reset, ep, steps, rate = row
        lines.append(f"| {task} | {name} | {reset:.3f} | {ep:.2f} | {steps} | {rate:.0f} |")
    table = "\n".join(lines)
    print(table)
    print("\n".join(notes))
    text = (
        result_header("Safety-Gymnasium reset time and episode throughput")
        + "\n"
        + __doc__.split("Usage::")[0].split("\n", 1)[1].strip()
        + f"\n\nMedians over {args.rounds} interleaved rounds; one round = one reset and one whole episode.\n\n"
        + table
        + "\n\n"
        + "\n".join(notes)
        + "\n"
    )
    print(f"wrote {write_result('sg_reset', text)}")


if __name__ == "__main__":
    main()
