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

    rows = [
        "| run | seed | SAC return | predict: return | cost | return ratio | safe_predict: return | cost | return ratio "
        "| safe_predict meets both |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    t_start = time.perf_counter()
    for label, path, seed, sac in runs:
        model = CQLLag.load(path, device="cpu")
        env, _ = make_env(args.env)
        plain = evaluate(model, env, args.episodes, seed)
        safe = evaluate(SafePredictPolicy(model, args.n_samples, args.threshold), env, args.episodes, seed)
        env.close()
        ratio_plain, ratio_safe = plain["return"] / sac["return"], safe["return"] / sac["return"]
        both = safe["cost"] <= COST_LIMIT and ratio_safe >= 0.70
        rows.append(
            f"| {label} | {seed} | {sac['return']:.1f} | {plain['return']:.1f} ± {plain['return_std']:.1f} "
            f"| {plain['cost']:.1f} ± {plain['cost_std']:.1f} | {ratio_plain:.2f} "
            f"| {safe['return']:.1f} ± {safe['return_std']:.1f} | {safe['cost']:.1f} ± {safe['cost_std']:.1f} "
            f"| {ratio_safe:.2f} | {'yes' if both else 'no'} |"
        )
        print(rows[-1], flush=True)
    threshold = "each model's cost_limit_discounted" if args.threshold is None else f"{args.threshold:g}"
    header = [
        f"# CQLLag on {args.env}: deterministic predict vs safe_predict",
        "",
        "Command: `python benchmarks/eval_safe_predict.py "
        + " ".join(f'--run "{s}"' for s in args.run)
        + f" --episodes {args.episodes} --n-samples {args.n_samples}"
        + ("" if args.threshold is None else f" --threshold {args.threshold:g}")
        + f" --out {args.out}`",
        "",
        f"Versions: python {platform.python_version()}, torch {torch.__version__}. Evaluation wall-clock: "
        f"{time.perf_counter() - t_start:.0f} s.",
        "",
        f"{args.episodes} episodes per policy on the benchmark's evaluation reset seeds (seed + 10000 + i); safe_predict "
        f"with {args.n_samples} candidate actions per step, threshold {threshold}. Targets: cost <= {COST_LIMIT:g}, "
        "return >= 0.70 of SAC's (the SAC run of the same seed, as recorded).",
        "",
    ]
    Path(args.out).write_text("\n".join(header + rows) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
