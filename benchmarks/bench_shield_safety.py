"""Shielded vs unshielded task policies on SafetyPointGoal1-v0 and SafetyBallCircle-v0.

For each task, :func:`shieldgym.shield_eval.run_shield_eval` collects noisy data with a scripted task
policy that ignores the constraint, fits a conservative cost critic, calibrates the threshold on
held-out episodes (split conformal), and evaluates the task policy with and without the shield on the
same reset seeds. Targets: cost per episode reduced by >= 80% while keeping >= 70% of the unshielded
return.

Usage::

    python benchmarks/bench_shield_safety.py [--episodes 20] [--tasks SafetyBallCircle-v0 ...] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch

from shieldgym.backup import LidarPlanningBackup
from shieldgym.report import format_table, machine_header, machine_info, plot_summary
from shieldgym.shield_eval import (
    POINT_GOAL_BACKUP_CRITIC,
    POINT_GOAL_BRANCHED,
    POINT_GOAL_NAVIGATION,
    SHIELD_CONFIGS,
    ShieldEvalResult,
    run_shield_eval,
    shield_config,
)

RESULTS = Path(__file__).parent / "results"

# Reset seeds of the short runs on which the fixed settings (e.g. a fixed threshold) were chosen.
TUNING_SEEDS = "20000..20019"

COLUMNS: list[str | tuple[str, str] | tuple[str, str, str]] = [
    ("env_id", "task"),
    "variant",
    ("ret_mean", "return", ".1f"),
    ("ret_std", "return sd", ".1f"),
    ("cost_mean", "cost", ".1f"),
    ("cost_std", "cost sd", ".1f"),
    ("violations_mean", "violations", ".1f"),
    ("shield_rate", "shield rate", ".3f"),
    ("episodes", "episodes"),
]


def verdict(result: ShieldEvalResult) -> dict[str, float | bool]:
    bare, shielded = result.rows[:2]
    cost_red = 1.0 - shielded["cost_mean"] / bare["cost_mean"] if bare["cost_mean"] > 0 else float("nan")
    ret_kept = shielded["ret_mean"] / bare["ret_mean"] if bare["ret_mean"] != 0 else float("nan")
    return {"cost_reduction": cost_red, "return_kept": ret_kept, "cost_met": cost_red >= 0.8, "return_met": ret_kept >= 0.7}


def _target(value: float, target: float) -> str:
    return "met" if value >= target else f"missed by {100 * (target - value):.1f} percentage points"


def describe(result: ShieldEvalResult) -> str:
    c, v = result.config, verdict(result)
    cal = result.calibration or {}
    features = "all" if c.feature_index is None else list(c.feature_index)
    last_seed, eval_seed = c.seed + c.collect_episodes - 1, c.eval_seed
    wall = ", ".join(f"{k} {s:.0f} s" for k, s in result.seconds.items())
    red = v["cost_reduction"]
    change = f"cost reduced by {red:.1%}" if red >= 0 else f"cost increased by {-red:.1%}"
    inputs = "raw observation" if c.critic_features == "obs" else f"observation + {c.critic_features!r} features"
    next_action: str = c.next_action
    if c.next_action == "backup":
        reference = "the shield's backup" if c.critic_backup_kwargs is None else f"{c.backup} {dict(c.critic_backup_kwargs)}"
        next_action = f"backup(s') of {reference} (the cost of the action, then of that backup)"
    critic_line = (
        f"- critic: {c.n_critics} x MLP {list(c.net_arch)}, gamma {c.gamma}, a' = {next_action}, conservative weight "
        f"{c.conservative_weight}, {c.fit_steps} steps of batch {c.batch_size}, {inputs}, "
        f"inputs {features}"
    )
    if c.branches is not None:
        b = c.branches
        reference = "the shield's backup" if c.critic_backup_kwargs is None else f"{c.backup} {dict(c.critic_backup_kwargs)}"
        critic_line = (
            f"- branched data (`shieldgym.branching`): states closer than {b.near} m to a hazard branched with "
            f"probability {b.near_prob}, the others with {b.far_prob} ({result.n_branches} branched actions); per "
            f"branched state the task policy's action, the brake action and {b.n_random} uniform random actions, each "
            f"held {b.hold} steps, then "
            + (f"the task policy for {b.follow} steps, then " if b.follow else "")
            + f"{reference} for {b.horizon} steps; "
            f"label = the branch's cost discounted by {b.gamma}\n"
            f"- critic: {c.n_critics} x MLP {list(c.net_arch)} regressed onto the labels (`fit_cost_critic` with dones = 1, "
            f"conservative weight 0), {c.fit_steps} steps of batch {c.batch_size}, {inputs}, inputs {features}"
        )
    if result.calibration is None and c.branches is not None:
        calib_line = (
            f"- threshold: fixed at {result.threshold:.3f} on the branch label's scale (discounted cost-steps; chosen on "
            f"tuning runs with reset seeds {TUNING_SEEDS}, disjoint from the evaluation seeds below)"
        )
    elif result.calibration is None:
        calib_line = (
            f"- threshold: fixed at {result.threshold:.3f} (chosen on tuning runs with reset seeds "
            f"{TUNING_SEEDS}, disjoint from the evaluation seeds below; see docs/shield.md, Recorded results)"
        )
    else:
        calib_line = (
            f"- calibration: unsafe = a cost within {c.label_horizon} steps, decisions taken outside violation; "
            f"target rate {c.target_rate}; threshold {result.threshold:.3f}; unsafe passed on the held-out part "
            f"{cal.get('achieved_rate_heldout', float('nan')):.3f} (unsafe examples: {cal.get('n_unsafe_calibration', '-')} "
            f"calibration, {cal.get('n_unsafe_heldout', '-')} held-out); safe actions passed "
            f"{cal.get('safe_pass_rate_heldout', float('nan')):.3f}"
        )
    if c.backup == "lidar_navigation":
        backup_line = (
            f"- backup: {c.backup} {dict(c.backup_kwargs)} (task-specific: goal lidar pull, hazard-lidar repulsion with "
            "swirl, brake when closing faster than it can stop; see `LidarNavigationBackup`)"
        )
    elif c.backup == "lidar_planning":
        n_candidates = LidarPlanningBackup(range(28, 44), range(12, 28), (3, 4), 8, **dict(c.backup_kwargs)).psi.size
        backup_line = (
            f"- backup: {c.backup} {dict(c.backup_kwargs)} (task-specific: hazards and goal decoded from the lidars, a "
            f"point-mass model of the robot rolled out over {n_candidates} candidate headings and thrusts, each followed by "
            "braking, scored on the cost-to-go to the goal around the hazards; see `LidarPlanningBackup`)"
        )
    else:
        backup_line = f"- backup: {c.backup} over {c.n_candidates} candidates (brake action and shrunk proposals included)"
    lines = [
        f"### {c.env_id}",
        "",
        f"- data: {c.collect_episodes} episodes ({result.n_transitions} transitions, seeds {c.seed}..{last_seed}), "
        f"{c.random_prob:.0%} of the steps start a uniform random action held for {c.hold_steps} step(s), Gaussian "
        f"noise sd {c.noise_std} x range on the rest; "
        + (
            f"with probability {c.takeover_prob} per step the critic's backup takes over for {c.takeover_steps[0]}-"
            f"{c.takeover_steps[1]} steps; "
            if c.takeover_prob > 0
            else ""
        )
        + f"{1 - c.calib_fraction:.0%} of the episodes fit the critic, "
        + ("the rest calibrate it" if result.calibration is not None else "the rest are not used (fixed threshold)"),
        critic_line,
        calib_line,
        backup_line,
        f"- evaluation: {c.eval_episodes} episodes per variant, reset seeds {eval_seed}..{eval_seed + c.eval_episodes - 1}",
        f"- wall time: {wall}",
        f"- **{change}** (target: reduced by >= 80%: {_target(v['cost_reduction'], 0.8)}); "
        f"**return kept {v['return_kept']:.1%}** (target >= 70%: {_target(v['return_kept'], 0.7)})",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=20, help="evaluation episodes per variant")
    parser.add_argument("--tasks", nargs="+", default=list(SHIELD_CONFIGS))
    parser.add_argument("--quick", action="store_true", help="tiny data and fit (a smoke run, not a result)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--eval-seed", type=int, default=30_000, help="first evaluation reset seed (never used while tuning the settings)"
    )
    parser.add_argument(
        "--pointgoal-navigation",
        action="store_true",
        help="PointGoal1 with the previous default POINT_GOAL_NAVIGATION (the potential-field navigation backup)",
    )
    parser.add_argument(
        "--pointgoal-backup-critic",
        action="store_true",
        help="PointGoal1 with the alternative settings POINT_GOAL_BACKUP_CRITIC (critic of the cost under a backup)",
    )
    parser.add_argument(
        "--pointgoal-branched",
        action="store_true",
        help="PointGoal1 with the alternative settings POINT_GOAL_BRANCHED (critic fitted on branched rollouts)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    info = machine_info()
    command = "OMP_NUM_THREADS=1 python benchmarks/bench_shield_safety.py " + " ".join(sys.argv[1:])
    t0 = time.perf_counter()
    results: list[ShieldEvalResult] = []
    for task in args.tasks:
        quick = dict(collect_episodes=4, fit_steps=50) if args.quick else {}
        if args.pointgoal_navigation and task == "SafetyPointGoal1-v0":
            quick = {**POINT_GOAL_NAVIGATION, **quick}
        if args.pointgoal_backup_critic and task == "SafetyPointGoal1-v0":
            quick = {**POINT_GOAL_BACKUP_CRITIC, **quick}
        if args.pointgoal_branched and task == "SafetyPointGoal1-v0":
            quick = {**POINT_GOAL_BRANCHED, **quick}
        config = shield_config(task, eval_episodes=args.episodes, eval_seed=args.eval_seed, **quick)
        result = run_shield_eval(config, progress=True)
        results.append(result)
        print(format_table(result.rows, COLUMNS))
        print(verdict(result))
    rows = [row for r in results for row in r.rows]
    table = format_table(rows, COLUMNS, markdown=True)
    args.out.mkdir(parents=True, exist_ok=True)
    png = plot_summary(
        [{**row, "task": row["env_id"]} for row in rows],
        args.out / "shield_safety.png",
        metrics=(
            ("ret_mean", "return / episode", "ret_std"),
            ("cost_mean", "cost / episode", "cost_std"),
            ("shield_rate", "shield rate", None),
        ),
        title="task policy with and without the shield",
    )
    md = "\n".join(
        [
            "# Shield safety: constraint-ignoring task policies with and without the shield",
            "",
            machine_header(command, info),
            f"- total wall time: {time.perf_counter() - t0:.0f} s",
            "",
            "Task policies (scripted, `shieldgym.shield_eval.TASK_POLICIES`): on PointGoal1 the robot turns to the goal and "
            "drives at it through hazards; on BallCircle the ball runs clockwise on the reward's radius-7 circle, which "
            "crosses the |x| = 6 boundaries. Same reset seeds for both variants. Targets: cost per episode reduced by "
            ">= 80% with >= 70% of the unshielded return kept.",
            "",
            table,
            "",
            f"![return, cost and shield rate]({png.name})",
            "",
            *[describe(r) for r in results],
            "Why a task misses (when it does) is discussed in `docs/shield.md`, section Recorded results.",
            "",
        ]
    )
    (args.out / "shield_safety.md").write_text(md)
    print(f"wrote {args.out / 'shield_safety.md'}")


if __name__ == "__main__":
    main()
