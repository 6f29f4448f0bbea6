"""The ``shieldgym`` command.

::

    shieldgym envs [--suite S] [--installed]          # suites and tasks, and whether each is installed
    shieldgym run SafetyPointGoal1-v0 --episodes 3    # roll out a policy, print return / cost / violations
    shieldgym benchmark --out benchmarks/results/main # the main job: table + benchmark.md/.csv/.png

``collect`` and ``pretrain`` come from :mod:`shieldgym.pretrain.cli` when it is present.

The benchmark runs every *variant* on every task. A variant is a name and a factory that turns the
task env into ``(env to roll out, policy)`` -- the random baseline returns the env unchanged and a
uniform random policy; a shielded variant wraps the env in a shield. New variants are added with
:func:`register_variant` and chosen with ``--variants``.

Errors that shieldgym raises on purpose (unknown id, missing package, ...) are printed on stderr
without a traceback and the command exits with status 2.
"""

from __future__ import annotations

import argparse
import csv
import functools
import importlib
import importlib.util
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from shieldgym.errors import ShieldgymError
from shieldgym.evaluation import Policy, rollout, summarize

__all__ = [
    "DEFAULT_BENCHMARK_SEED",
    "DEFAULT_TASKS",
    "DEFAULT_VARIANTS",
    "SHIELD_TASKS",
    "VARIANTS",
    "Variant",
    "build_parser",
    "main",
    "register_variant",
    "run_benchmark",
]

# The main job's tasks: navigation and velocity tasks from Safety-Gymnasium (MuJoCo) and five
# Bullet-Safety-Gym tasks.
DEFAULT_TASKS: tuple[str, ...] = (
    "SafetyPointGoal1-v0",
    "SafetyCarGoal1-v0",
    "SafetyPointButton1-v0",
    "SafetyPointPush1-v0",
    "SafetyPointCircle1-v0",
    "SafetyHopperVelocity-v1",
    "SafetyBallCircle-v0",
    "SafetyCarCircle-v0",
    "SafetyDroneCircle-v0",
    "SafetyBallReach-v0",
    "SafetyCarRun-v0",
)
DEFAULT_EPISODES = 10
# Variants the main job runs by default (names registered with register_variant): a random baseline on every
# task, and on the tasks with a scripted task policy that ignores the constraint, that policy alone and inside
# a shield whose cost critic is fitted on the spot.
DEFAULT_VARIANTS: tuple[str, ...] = ("random", "task", "shielded")
# Evaluation reset seeds start here, apart from the seeds the shield's data collection uses (0, 1, ...).
DEFAULT_BENCHMARK_SEED = 1000
# Tasks with a scripted task policy and recorded shield settings (keys of shieldgym.shield_eval.SHIELD_CONFIGS,
# listed here so that building the parser imports no torch).
SHIELD_TASKS: tuple[str, ...] = ("SafetyPointGoal1-v0", "SafetyBallCircle-v0")

# Columns of the benchmark table: (row key, header, format).
BENCHMARK_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("task", "task", ""),
    ("variant", "variant", ""),
    ("episodes", "episodes", "d"),
    ("ret_mean", "return", ".2f"),
    ("ret_std", "± return", ".2f"),
    ("cost_mean", "cost", ".2f"),
    ("cost_std", "± cost", ".2f"),
    ("violations_mean", "violations", ".1f"),
    ("length_mean", "length", ".0f"),
    ("shield_rate", "shield rate", ".3f"),
    ("steps_per_s", "steps/s", ".0f"),
)
_RESULT_KEYS = ("episodes", "ret_mean", "ret_std", "cost_mean", "cost_std", "violations_mean", "length_mean")


# --------------------------------------------------------------------------------------------------
# Policies and variants
# --------------------------------------------------------------------------------------------------


def _zero_policy(env: gym.Env) -> Policy:
    space = env.action_space
    if not isinstance(space, gym.spaces.Box):
        raise ShieldgymError(f"The zero policy needs a Box action space, got {space}.")
    zero = np.zeros(space.shape, dtype=space.dtype)
    return lambda _obs: zero


POLICIES: dict[str, Callable[[gym.Env], Policy | None]] = {
    "random": lambda env: None,  # rollout() samples the action space, seeded
    "zero": _zero_policy,
}


@dataclass(frozen=True)
class Variant:
    """One way of acting in a benchmark task.

    Attributes:
        name: shown in the ``variant`` column, e.g. ``"random"`` or ``"shielded"``.
        build: ``build(env_id, env, seed) -> (env, policy)``: wrap ``env`` if needed (a shield, a cost
            budget...) and return the policy (``None``: uniform random actions, seeded).
        tasks: the task ids it applies to (``None``: every task); other tasks skip it.
        description: one line for ``shieldgym benchmark --help``.
    """

    name: str
    build: Callable[[str, gym.Env, int], tuple[gym.Env, Policy | None]]
    tasks: tuple[str, ...] | None = None
    description: str = ""

    def applies_to(self, env_id: str) -> bool:
        return self.tasks is None or env_id in self.tasks


VARIANTS: dict[str, Variant] = {}


def register_variant(variant: Variant) -> None:
    """Make ``variant`` selectable with ``shieldgym benchmark --variants NAME`` (replaces one of the same name)."""
    if not isinstance(variant, Variant):
        raise TypeError(f"register_variant expects a Variant, got {type(variant).__name__}.")
    VARIANTS[variant.name] = variant


def _task_policy_variant(env_id: str, env: gym.Env, seed: int) -> tuple[gym.Env, Policy | None]:
    from shieldgym.shield_eval import TASK_POLICIES

    return env, TASK_POLICIES[env_id]


@functools.cache
def _prepared_shield(env_id: str) -> Any:
    # One critic per task and process: collect noisy task-policy data, fit, set the threshold.
    import torch

    from shieldgym.shield_eval import prepare_shield, shield_config

    # The critic is small (2 x 128 units, batch 256): one thread fits it as fast as several, and does not
    # slow to a crawl when other jobs share the cores (the recorded benchmark fits it the same way).
    torch.set_num_threads(1)
    return prepare_shield(shield_config(env_id), progress=True)


def _shielded_variant(env_id: str, env: gym.Env, seed: int) -> tuple[gym.Env, Policy | None]:
    prepared = _prepared_shield(env_id)
    return prepared.wrap(env), prepared.policy


register_variant(Variant("random", lambda env_id, env, seed: (env, None), description="uniform random actions"))
register_variant(Variant("zero", lambda env_id, env, seed: (env, _zero_policy(env)), description="all-zero actions"))
register_variant(
    Variant("task", _task_policy_variant, tasks=SHIELD_TASKS, description="scripted task policy that ignores the cost")
)
register_variant(
    Variant(
        "shielded",
        _shielded_variant,
        tasks=SHIELD_TASKS,
        description="the task policy inside ShieldWrapper with a cost critic fitted on noisy task-policy data",
    )
)


# --------------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------------


def _cmd_envs(args: argparse.Namespace) -> int:
    from shieldgym.envs import registry
    from shieldgym.report import format_table

    chosen = [registry.get_suite(args.suite)] if args.suite else registry.suites()
    if args.installed:
        chosen = [s for s in chosen if s.installed]
    if not args.suite:
        summary = [
            {
                "suite": s.name,
                "installed": "yes" if s.installed else "no",
                "tasks": len(s.task_ids),
                "about": s.description if s.installed else f"{s.description} -- install: {s.install_command}",
            }
            for s in chosen
        ]
        print(format_table(summary, ["suite", "installed", "tasks", "about"]))
        print("\n`shieldgym envs --suite NAME` lists the task ids of one suite.")
        return 0
    rows: list[dict[str, Any]] = []
    for s in chosen:
        ok = "yes" if s.installed else "no"
        limits = s.max_episode_steps or {}
        rows.extend({"env_id": i, "suite": s.name, "installed": ok, "max steps": limits.get(i)} for i in s.task_ids)
    print(format_table(rows, ["env_id", "suite", "installed", "max steps"]))
    if chosen and not chosen[0].installed:
        print(f"\nInstall with: {chosen[0].install_command}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    import shieldgym
    from shieldgym.report import Column, format_table

    env = shieldgym.make(args.env_id, max_episode_steps=args.max_steps) if args.max_steps else shieldgym.make(args.env_id)
    try:
        policy = POLICIES[args.policy](env)
        records = rollout(env, policy, args.episodes, seed=args.seed, progress=not args.quiet, desc=args.env_id)
    finally:
        env.close()
    rows: list[dict[str, Any]] = [
        {
            "episode": i,
            "seed": r.seed,
            "return": r.ret,
            "cost": r.cost,
            "violations": r.violations,
            "length": r.length,
            "steps/s": r.length / r.seconds if r.seconds > 0 else float("nan"),
        }
        for i, r in enumerate(records)
    ]
    s = summarize(records)
    rows.append(
        {
            "episode": "mean",
            "return": s.ret_mean,
            "cost": s.cost_mean,
            "violations": s.violations_mean,
            "length": s.length_mean,
            "steps/s": s.steps_per_s,
        }
    )
    print(f"{args.env_id}  policy={args.policy}  episodes={args.episodes}  seed={args.seed}")
    cols: list[Column] = ["episode", "seed", "return", "cost", ("violations", "violations", ".1f")]
    print(format_table(rows, [*cols, ("length", "length", ".0f"), ("steps/s", "steps/s", ".0f")]))
    return 0


def _read_done(path: Path, episodes: int, seed: int) -> dict[tuple[str, str], dict[str, Any]]:
    """Rows of an earlier run with the same episodes and seed (for --resume), keyed by (task, variant)."""
    if not path.exists():
        return {}
    done = {}
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row.get("episodes") == str(episodes) and row.get("seed") == str(seed):
                parsed: dict[str, Any] = dict(row)
                for key in (*_RESULT_KEYS, "shield_rate", "steps_per_s", "seconds"):
                    if row.get(key) not in (None, ""):
                        parsed[key] = int(row[key]) if key == "episodes" else float(row[key])
                parsed["seed"] = int(row["seed"])
                done[(row["task"], row["variant"])] = parsed
    return done


def run_benchmark(
    tasks: Sequence[str],
    variants: Sequence[str],
    episodes: int,
    seed: int,
    *,
    out: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    command: str = "shieldgym benchmark",
) -> list[dict[str, Any]]:
    """Roll out every variant on every task and, with ``out``, write ``benchmark.md/.csv/.png`` there.

    Every (task, variant) uses the same reset seeds ``seed, seed + 1, ...``. The CSV is rewritten after
    each (task, variant), so an interrupted run keeps what it finished; ``resume=True`` skips the pairs
    already in ``out/benchmark.csv`` with the same ``episodes`` and ``seed``.

    Returns:
        One row per (task, variant): ``task``, ``variant``, ``seed``, ``seconds`` and the
        :class:`~shieldgym.evaluation.Summary` fields.

    Raises:
        UnknownEnvError: an unknown task id (before anything runs).
        ShieldgymError: an unknown variant name.
        ValueError: ``episodes < 1``.
    """
    import shieldgym
    from shieldgym.envs import registry
    from shieldgym.report import machine_info, write_csv

    if not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be a positive int, got {episodes!r}.")
    for task in tasks:
        registry.suite_of(task)  # unknown ids fail before anything runs
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ShieldgymError(f"Unknown variant(s) {unknown}; known: {sorted(VARIANTS)}.")
    out_dir = Path(out) if out is not None else None
    csv_path = out_dir / "benchmark.csv" if out_dir is not None else None
    done = _read_done(csv_path, episodes, seed) if (resume and csv_path is not None) else {}

    machine = machine_info()  # recorded before the run: its load average is the one the run started under
    t_start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for task in tasks:
        for name in variants:
            variant = VARIANTS[name]
            if not variant.applies_to(task):
                continue
            if (task, name) in done:
                rows.append(done[(task, name)])
                continue
            t0 = time.perf_counter()
            env = shieldgym.make(task)
            try:
                env, policy = variant.build(task, env, seed)
                records = rollout(env, policy, episodes, seed=seed, progress=progress, desc=f"{task} [{name}]")
            finally:
                env.close()
            summary = summarize(records)
            rows.append(
                {"task": task, "variant": name, "seed": seed, **summary.as_dict(), "seconds": time.perf_counter() - t0}
            )
            if csv_path is not None:
                write_csv(rows, csv_path)
    if out_dir is not None:
        _write_outputs(rows, out_dir, command, machine, time.perf_counter() - t_start)
    return rows


def _write_outputs(rows: list[dict[str, Any]], out_dir: Path, command: str, machine: dict[str, Any], wall: float) -> None:
    from shieldgym.report import format_table, machine_header, plot_summary, write_csv

    write_csv(rows, out_dir / "benchmark.csv")
    plot_summary(rows, out_dir / "benchmark.png", title="shieldgym benchmark (mean over episodes, ± std)")
    text = [
        "# shieldgym benchmark",
        "",
        machine_header(command, machine),
        f"- wall time of this run: {wall:.1f} s",
        "",
        "Per task and variant: mean (and std) over episodes of the undiscounted return and of the summed cost, "
        "the mean number of steps with cost > 0 (violations), the mean episode length, the fraction of steps on "
        "which a shield replaced the action, and environment steps per second (policy and resets included; "
        "Safety-Gymnasium resets rebuild the MuJoCo model).",
        "",
        format_table(rows, BENCHMARK_COLUMNS, markdown=True),
        "",
        "![benchmark](benchmark.png)",
        "",
    ]
    (out_dir / "benchmark.md").write_text("\n".join(text), encoding="utf-8")


def _cmd_benchmark(args: argparse.Namespace) -> int:
    from shieldgym.report import format_table

    command = "shieldgym " + " ".join(shlex.quote(a) for a in args.argv)
    t0 = time.perf_counter()
    rows = run_benchmark(
        args.tasks,
        args.variants,
        args.episodes,
        args.seed,
        out=args.out,
        resume=args.resume,
        progress=not args.quiet,
        command=command,
    )
    print(format_table(rows, BENCHMARK_COLUMNS))
    print(f"\nwall time: {time.perf_counter() - t0:.1f} s")
    if args.out:
        print(f"wrote {Path(args.out) / 'benchmark.md'}, benchmark.csv, benchmark.png")
    return 0


# --------------------------------------------------------------------------------------------------
# Parser and entry point
# --------------------------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``shieldgym`` argument parser (subcommands ``envs``, ``run``, ``benchmark``, and ``collect``/``pretrain``)."""
    parser = argparse.ArgumentParser(prog="shieldgym", description="Safe RL benchmarks, shields and CQLLag for Gymnasium.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("envs", help="list suites and tasks and whether each is installed")
    p.add_argument("--suite", help="list the task ids of this suite (e.g. safety-gymnasium, bullet-safety-gym)")
    p.add_argument("--installed", action="store_true", help="only installed suites")
    p.set_defaults(func=_cmd_envs)

    p = sub.add_parser("run", help="roll out a policy on one task and print return, cost and violations per episode")
    p.add_argument("env_id", help="task id, e.g. SafetyPointGoal1-v0")
    p.add_argument("--episodes", type=_positive_int, default=3)
    p.add_argument("--seed", type=int, default=0, help="episode i is reset with seed + i")
    p.add_argument("--policy", choices=sorted(POLICIES), default="random")
    p.add_argument("--max-steps", type=_positive_int, default=None, help="override the task's time limit")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_run)

    variants_help = "; ".join(f"{v.name}: {v.description}" for v in VARIANTS.values())
    p = sub.add_parser("benchmark", help="the main job: every variant on every task; table, .md, .csv and .png")
    p.add_argument("--tasks", nargs="+", default=list(DEFAULT_TASKS), metavar="ENV_ID")
    p.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS), metavar="NAME", help=f"({variants_help})")
    p.add_argument("--episodes", type=_positive_int, default=DEFAULT_EPISODES, help="episodes per task and variant")
    p.add_argument("--seed", type=int, default=DEFAULT_BENCHMARK_SEED, help="episode i is reset with seed + i")
    p.add_argument("--out", default=None, help="write benchmark.md, benchmark.csv and benchmark.png here")
    p.add_argument("--resume", action="store_true", help="skip (task, variant) pairs already in OUT/benchmark.csv")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_benchmark)

    if importlib.util.find_spec("shieldgym.pretrain.cli") is not None:
        importlib.import_module("shieldgym.pretrain.cli").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``shieldgym`` command; returns the exit status (0 ok, 2 usage or shieldgym error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed by argparse
        return exc.code if isinstance(exc.code, int) else 2
    args.argv = argv
    try:
        return int(args.func(args))
    except ShieldgymError as exc:
        print(f"shieldgym: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("shieldgym: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
