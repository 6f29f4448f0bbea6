"""Evaluate finished CQLLag safety-benchmark runs with ``safe_predict`` next to plain deterministic ``predict``.

``safe_predict`` is CQLLag's resampling action selection: among ``--n-samples`` actions of the policy (the mean action
included) it keeps those whose cost-critic value ``Q_c`` is at most the threshold (default: the model's
``cost_limit_discounted``, the per-episode limit on the critic's discounted scale) and plays the one with the best
``Q_r``; if none passes, the one with the lowest ``Q_c``. It needs no retraining, so it can be applied to any run that
``bench_cqllag_safety.py`` finished.

Each ``--run LABEL=WORKDIR`` names a workdir of ``bench_cqllag_safety.py`` holding a finished CQLLag run
(``<env>_cqllag_s<seed>.zip``) and the SAC run of the same seed (``<env>_sac_s<seed>.json``, its recorded evaluation);
``LABEL=WORKDIR:SEED`` picks one seed of a workdir that holds several.
Both policies play the evaluation episodes the benchmark plays (reset seeds ``seed + 10000 + i``), so the ``predict``
column repeats the benchmark's own figure and the ``safe_predict`` one differs only in the action selection.

``--tune-thresholds 5,7.5,10`` adds a third selection: per run, ``CQLLag.tune_safe_threshold`` plays
``--tune-episodes`` tuning episodes (reset seeds ``seed + 20000 + i``, none of them an evaluation episode) at each
threshold and keeps the best mean return whose mean episode cost is within the limit; the evaluation episodes are
then played at that threshold. The tuning curves go to ``<out>.json`` and a cost-vs-return plot to ``<out>.png``.
``--eval-offset N`` plays reset seeds ``seed + 10000 + N + i`` instead: fresh evaluation episodes, to check a result
beyond the benchmark's own ten.

    python benchmarks/eval_safe_predict.py --run "AE2=/tmp/pc_DE_s1" --run "Y3=/tmp/cqllag_pc_trial_Y3_T2_utd2_limit20" \\
        --out benchmarks/results/cqllag_pointcircle_safe_predict.md
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bench_cqllag_safety import COST_LIMIT, evaluate, make_env

from shieldgym.algos.cqllag import CQLLag

TUNE_SEED_OFFSET = 20_000


class SafePredictPolicy:
    """``predict`` through the model's ``safe_predict``: what ``evaluate`` calls, one seeded draw per step."""

    def __init__(self, model: CQLLag, n_samples: int, threshold: float | None) -> None:
        self.model, self.n_samples, self.threshold = model, n_samples, threshold
        self.calls = 0

    def predict(self, obs: Any, deterministic: bool = True) -> tuple[np.ndarray, None]:
        self.calls += 1
        action = self.model.safe_predict(obs, n_samples=self.n_samples, threshold=self.threshold, seed=self.calls)
        return action, None


def find_run(workdir: Path, env_id: str, seed: int | None = None) -> tuple[Path, int, dict[str, Any]]:
    """The CQLLag checkpoint of ``workdir`` (of ``seed``, needed when it holds several), its seed and SAC's evaluation."""
    found = {}
    for path in workdir.glob(f"{env_id}_cqllag_s*.zip"):
        match = re.fullmatch(rf"{re.escape(env_id)}_cqllag_s(\d+)\.zip", path.name)
        if match:
            found[int(match.group(1))] = path
    if seed is None:
        if len(found) != 1:
            seeds = ", ".join(str(s) for s in sorted(found)) or "none"
            raise ValueError(
                f"{workdir}: expected one {env_id}_cqllag_s<seed>.zip, found seeds {seeds} (pick one: LABEL=WORKDIR:SEED)"
            )
        seed = next(iter(found))
    elif seed not in found:
        raise ValueError(f"{workdir}: no {env_id}_cqllag_s{seed}.zip")
    sac_meta = workdir / f"{env_id}_sac_s{seed}.json"
    if not sac_meta.is_file():
        raise ValueError(f"{workdir}: no SAC run of seed {seed} ({sac_meta.name})")
    sac = json.loads(sac_meta.read_text())
    if "eval" not in sac:
        raise ValueError(f"{sac_meta}: the SAC run has no recorded evaluation (unfinished?)")
    return found[seed], seed, sac["eval"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="append", required=True, help="LABEL=WORKDIR of a finished benchmark run")
    parser.add_argument("--env", default="SafetyPointCircle1-v0")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--n-samples", type=int, default=16, help="safe_predict's candidate actions per step")
    parser.add_argument("--threshold", type=float, default=None, help="Q_c threshold (default: cost_limit_discounted)")
    parser.add_argument(
        "--tune-thresholds",
        default=None,
        help="comma-separated thresholds: choose one per run with tune_safe_threshold on tuning episodes and evaluate it",
    )
    parser.add_argument("--tune-episodes", type=int, default=10, help="tuning episodes per candidate threshold")
    parser.add_argument(
        "--tune-cost-limit",
        type=float,
        default=COST_LIMIT,
        help=f"the mean tuning-episode cost a threshold must keep (default the target, {COST_LIMIT:g}; lower for a margin)",
    )
    parser.add_argument(
        "--eval-offset",
        type=int,
        default=0,
        help="play evaluation reset seeds seed + 10000 + OFFSET + i (0: the benchmark's own; e.g. 10 for 10 fresh ones)",
    )
    parser.add_argument("--out", default="benchmarks/results/cqllag_pointcircle_safe_predict.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    runs = []
    for spec in args.run:
        if "=" not in spec:
            parser.error(f"--run takes LABEL=WORKDIR, got {spec!r}")
        label, workdir = spec.split("=", 1)
        seed = None
        if re.fullmatch(r".+:\d+", workdir):
            workdir, seed_text = workdir.rsplit(":", 1)
            seed = int(seed_text)
        try:
            runs.append((label, *find_run(Path(workdir), args.env, seed)))
        except ValueError as err:
            parser.error(f"--run {label}: {err}")

    thresholds = parse_thresholds(parser, args.tune_thresholds)
    if not 0.0 <= args.tune_cost_limit < float("inf"):
        parser.error(f"--tune-cost-limit must be a finite number >= 0, got {args.tune_cost_limit}")
    if args.tune_episodes < 1:
        parser.error(f"--tune-episodes must be >= 1, got {args.tune_episodes}")
    if args.eval_offset < 0 or args.eval_offset + args.episodes > TUNE_SEED_OFFSET - 10_000:
        parser.error(
            f"--eval-offset must be >= 0 and keep the evaluation seeds below the tuning seeds, got {args.eval_offset}"
        )
    columns = "| run | seed | SAC return | predict: return | cost | return ratio | safe_predict: return | cost | return ratio "
    if thresholds:
        columns += "| tuned threshold | tuning: return ratio | cost | tuned safe_predict: return | cost | return ratio "
    columns += "| tuned safe_predict meets both |" if thresholds else "| safe_predict meets both |"
    rows = [columns, "|" + "---|" * (columns.count("|") - 1)]
    records: list[dict[str, Any]] = []
    t_start = time.perf_counter()
    for label, path, seed, sac in runs:
        model = CQLLag.load(path, device="cpu")
        env, _ = make_env(args.env)
        first = seed + args.eval_offset  # evaluation reset seeds first + 10000 + i
        plain = evaluate(model, env, args.episodes, first)
        safe = evaluate(SafePredictPolicy(model, args.n_samples, args.threshold), env, args.episodes, first)
        record: dict[str, Any] = dict(label=label, seed=seed, sac=sac, predict=plain, safe_predict=safe)
        if thresholds:
            # tuning episodes: reset seeds seed + 20000 + i, disjoint from the evaluation's seed + 10000 + i
            tuning = model.tune_safe_threshold(
                env,
                thresholds,
                n_episodes=args.tune_episodes,
                cost_limit=args.tune_cost_limit,
                n_samples=args.n_samples,
                seed=seed + TUNE_SEED_OFFSET,
            )
            final = evaluate(SafePredictPolicy(model, args.n_samples, tuning.threshold), env, args.episodes, first)
            record.update(tuning=tuning.as_dict(), tuned_safe_predict=final)
        env.close()
        rows.append(format_row(record))
        records.append(record)
        print(rows[-1], flush=True)
    elapsed = time.perf_counter() - t_start
    threshold = "each model's cost_limit_discounted" if args.threshold is None else f"{args.threshold:g}"
    header = [
        f"# CQLLag on {args.env}: deterministic predict vs safe_predict",
        "",
        "Command: `python benchmarks/eval_safe_predict.py "
        + " ".join(f'--run "{s}"' for s in args.run)
        + f" --episodes {args.episodes} --n-samples {args.n_samples}"
        + (f" --eval-offset {args.eval_offset}" if args.eval_offset else "")
        + ("" if args.threshold is None else f" --threshold {args.threshold:g}")
        + (f" --tune-thresholds {args.tune_thresholds} --tune-episodes {args.tune_episodes}" if thresholds else "")
        + (f" --tune-cost-limit {args.tune_cost_limit:g}" if thresholds and args.tune_cost_limit != COST_LIMIT else "")
        + f" --out {args.out}`",
        "",
        f"Versions: python {platform.python_version()}, torch {torch.__version__}. Evaluation wall-clock: {elapsed:.0f} s.",
        "",
        f"{args.episodes} episodes per policy on reset seeds seed + 10000 + {args.eval_offset} + i"
        + (" (the benchmark's own evaluation episodes)" if args.eval_offset == 0 else " (beyond the benchmark's own)")
        + f"; safe_predict "
        f"with {args.n_samples} candidate actions per step, threshold {threshold}. Targets: cost <= {COST_LIMIT:g}, "
        "return >= 0.70 of SAC's (the SAC run of the same seed, as recorded).",
        "",
    ]
    if thresholds:
        header += [
            f"Tuned: `tune_safe_threshold` plays {args.tune_episodes} tuning episodes (reset seeds seed + "
            f"{TUNE_SEED_OFFSET} + i, none of them an evaluation episode) at each threshold of "
            f"{', '.join(f'{t:g}' for t in thresholds)} and keeps the best mean return whose mean cost is <= "
            f"{args.tune_cost_limit:g}; the tuned columns then play the evaluation episodes at that threshold. The last "
            f"column judges the tuned selection against the target (cost <= {COST_LIMIT:g}).",
            "",
        ]
    out = Path(args.out)
    out.write_text("\n".join(header + rows) + "\n")
    out.with_suffix(".json").write_text(
        json.dumps(dict(env=args.env, episodes=args.episodes, eval_offset=args.eval_offset, runs=records), indent=1) + "\n"
    )
    print(f"wrote {out} and {out.with_suffix('.json')}")
    if thresholds:
        plot_frontier(records, out.with_suffix(".png"), args.env)
        print(f"wrote {out.with_suffix('.png')}")


def format_row(record: dict[str, Any]) -> str:
    """One table row of a run's record (ratios to SAC's return with three decimals, so the 0.70 cut is readable)."""
    sac = record["sac"]["return"]

    def cells(result: dict[str, float]) -> str:
        return (
            f"| {result['return']:.1f} ± {result['return_std']:.1f} | {result['cost']:.1f} ± {result['cost_std']:.1f} "
            f"| {result['return'] / sac:.3f} "
        )

    row = f"| {record['label']} | {record['seed']} | {sac:.1f} " + cells(record["predict"]) + cells(record["safe_predict"])
    final = record["safe_predict"]
    if "tuning" in record:
        tuning = record["tuning"]
        chosen = next(r for r in tuning["results"] if r["threshold"] == tuning["threshold"])
        final = record["tuned_safe_predict"]
        row += (
            f"| {tuning['threshold']:g}{'' if tuning['feasible'] else ' (none within the limit)'} "
            f"| {chosen['ret_mean'] / sac:.3f} | {chosen['cost_mean']:.1f} " + cells(final)
        )
    both = final["cost"] <= COST_LIMIT and final["return"] / sac >= 0.70
    return row + f"| {'yes' if both else 'no'} |"


def parse_thresholds(parser: argparse.ArgumentParser, text: str | None) -> list[float]:
    """``--tune-thresholds`` as numbers (comma-separated); empty when not given."""
    if not text:
        return []
    try:
        return [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        parser.error(f"--tune-thresholds takes comma-separated numbers, got {text!r}")


def plot_frontier(records: list[dict[str, Any]], path: Path, env_id: str) -> None:
    """Evaluation cost vs return ratio of every run: predict, and safe_predict at the tuned threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5.0))
    ax.axhline(0.70, color="0.5", lw=0.8, ls="--")
    ax.axvline(COST_LIMIT, color="0.5", lw=0.8, ls="--")
    for i, rec in enumerate(records):
        sac = rec["sac"]["return"]
        p, t = rec["predict"], rec["tuned_safe_predict"]
        xy0 = (p["cost"], p["return"] / sac)
        xy1 = (t["cost"], t["return"] / sac)
        ax.annotate("", xy=xy1, xytext=xy0, arrowprops=dict(arrowstyle="->", color="0.6", lw=0.7))
        ax.scatter(*xy0, s=16, color="tab:blue", label="predict" if i == 0 else None, zorder=3)
        ax.scatter(*xy1, s=16, color="tab:orange", label="safe_predict (tuned threshold)" if i == 0 else None, zorder=3)
        if xy1[0] <= COST_LIMIT and xy1[1] >= 0.70:
            ax.annotate(f"{rec['label']} (seed {rec['seed']})", xy1, textcoords="offset points", xytext=(5, 4), fontsize=8)
    (x0, _), (_, y1) = ax.get_xlim(), ax.get_ylim()
    y1 = max(y1, 0.8)
    ax.fill_between([x0, COST_LIMIT], 0.70, y1, color="tab:green", alpha=0.12, zorder=0, label="both targets met")
    ax.set_xlim(left=x0)
    ax.set_ylim(top=y1)
    ax.set_xlabel("mean episode cost (evaluation episodes)")
    ax.set_ylabel("return / SAC's return (same seed)")
    ax.set_title(f"CQLLag on {env_id}: target is the upper-left box (cost <= {COST_LIMIT:g}, ratio >= 0.70)")
    ax.title.set_fontsize(9)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
