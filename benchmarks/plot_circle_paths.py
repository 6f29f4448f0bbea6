"""Where the return goes on SafetyPointCircle1-v0: the paths that trained policies drive, and their numbers.

Loads SB3 SAC and CQLLag checkpoints, plays deterministic episodes (reset seeds ``--seed``, ``--seed + 1``, ...),
and writes one panel per model with the driven paths, the reward circle (radius 1.5) and the cost boundaries
(``|x| = 1.125``), plus a table of return, cost, mean distance from the centre and mean speed (both after the first
100 steps, once the robot has left the centre). The table also gives the mean distance at the sides (``|x| / r > 0.9``,
where the boundaries are) and at the top and bottom (``|x| / r < 0.5``), and the largest ``|x|``: a circle has the
same distance in both, a path that follows the boundaries at the sides and the reward circle elsewhere a smaller one
at the sides.

The circle task pays ``(-u y + v x) / r / (1 + |r - 1.5|)`` per step (tangential speed, discounted by the distance
from the radius-1.5 circle) and costs 1 per step outside ``|x| <= 1.125``: a safe policy must either circle at a
smaller radius (paying the distance factor) or leave the circle near the boundaries.

    python benchmarks/plot_circle_paths.py --model "SAC=/path/sac.zip" --model "CQLLag Y3=/path/cqllag.zip" \\
        --out benchmarks/results/cqllag_pointcircle_paths.png
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import numpy as np

BOUNDARY, RADIUS, SETTLE = 1.125, 1.5, 100


def _load(path: str) -> Any:
    import zipfile

    from stable_baselines3 import SAC

    from shieldgym.algos.cqllag import CQLLag

    try:
        with zipfile.ZipFile(path) as z:
            data = z.read("data").decode()
    except (zipfile.BadZipFile, KeyError) as err:
        raise ValueError(f"{path} is not an SB3 checkpoint (a zip with a 'data' entry): {err}") from err
    cls = CQLLag if "shieldgym.algos.cqllag" in data else SAC
    return cls.load(path, device="cpu")


def path_shape(xy: np.ndarray) -> tuple[float, float, float]:
    """Mean distance from the centre at the sides (``|x| / r > 0.9``) and at the top and bottom (``< 0.5``), and max ``|x|``.

    NaN for a part of the path the robot never reaches.
    """
    r = np.linalg.norm(xy, axis=1)
    side = np.abs(xy[:, 0]) / np.maximum(r, 1e-9)
    sides, poles = r[side > 0.9], r[side < 0.5]
    return (
        float(sides.mean()) if len(sides) else float("nan"),
        float(poles.mean()) if len(poles) else float("nan"),
        float(np.abs(xy[:, 0]).max()),
    )


def play(model: Any, episodes: int, seed: int) -> list[dict[str, Any]]:
    """Deterministic episodes: the robot's xy path and per-step reward, cost and speed."""
    import shieldgym

    env = shieldgym.make("SafetyPointCircle1-v0")
    agent = env.unwrapped.suite_env.unwrapped.task.agent  # type: ignore[attr-defined]
    out = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        done = False
        xy, rewards, costs, speed = [], [], [], []
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, r, term, trunc, info = env.step(action)
            xy.append(np.array(agent.pos[:2], dtype=float))
            rewards.append(float(r))
            costs.append(float(info["cost"]))
            speed.append(float(np.linalg.norm(agent.vel[:2])))
            done = term or trunc
        out.append({"xy": np.array(xy), "reward": np.array(rewards), "cost": np.array(costs), "speed": np.array(speed)})
    env.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True, help="LABEL=PATH of an SB3 SAC or CQLLag zip")
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--seed", type=int, default=10_000, help="reset seed of the first episode")
    parser.add_argument("--out", default="cqllag_pointcircle_paths.png", help="the figure; the table goes next to it (.md)")
    args = parser.parse_args()
    os.environ.setdefault("MUJOCO_GL", "egl")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = []
    for spec in args.model:
        if "=" not in spec:
            parser.error(f"--model takes LABEL=PATH, got {spec!r}")
        label, path = spec.split("=", 1)
        if not Path(path).is_file():
            parser.error(f"--model {label}: no file at {path}")
        models.append((label, path))
    loaded = []
    for label, path in models:
        try:
            loaded.append((label, _load(path)))
        except ValueError as err:
            parser.error(f"--model {label}: {err}")

    rows = [
        "| model | episode | return | cost | mean distance from centre | at the sides | at the top and bottom | max abs(x) "
        "| mean speed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    fig, axes = plt.subplots(1, len(models), figsize=(3.6 * len(models), 3.8), squeeze=False)
    for ax, (label, model) in zip(axes[0], loaded):
        for i, ep in enumerate(play(model, args.episodes, args.seed)):
            xy = ep["xy"]
            ax.plot(xy[:, 0], xy[:, 1], lw=0.9, label=f"episode {i + 1}")
            radius = float(np.linalg.norm(xy[SETTLE:], axis=1).mean())
            sides, poles, max_x = path_shape(xy[SETTLE:])
            rows.append(
                f"| {label} | {i + 1} | {ep['reward'].sum():.1f} | {ep['cost'].sum():.0f} | {radius:.2f} | {sides:.2f} | "
                f"{poles:.2f} | {max_x:.2f} | {ep['speed'][SETTLE:].mean():.2f} |"
            )
        for x in (-BOUNDARY, BOUNDARY):
            ax.axvline(x, color="tab:red", lw=1)
        ax.add_patch(plt.Circle((0, 0), RADIUS, fill=False, ls="--", color="grey"))
        ax.set(xlim=(-2, 2), ylim=(-2, 2), aspect="equal", title=label)
        ax.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=7, loc="lower left")
    fig.suptitle("SafetyPointCircle1-v0, deterministic episodes (red: cost boundaries, dashed: reward circle)", fontsize=9)
    fig.tight_layout()
    out = Path(args.out)
    fig.savefig(out, dpi=90)
    table = "\n".join(rows)
    out.with_suffix(".md").write_text(
        f"# Paths on SafetyPointCircle1-v0\n\nFigure: `{out.name}`. Reset seeds {args.seed}..{args.seed + args.episodes - 1}; "
        f"distance and speed averaged after the first {SETTLE} steps.\n\n{table}\n"
    )
    print(table)


if __name__ == "__main__":
    main()
