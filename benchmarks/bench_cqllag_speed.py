"""Update throughput of CQLLag vs d3rlpy 2.8.1 CQL and SB3 SAC, and CQLLag's achieved FLOP rate.

Same settings for every variant: batch 256, actor and critics 256x256, 10 sampled actions per
proposal (uniform, pi(s), pi(s')), obs 17 / action 6 (HalfCheetah-sized), a 20k-transition buffer.
CQLLag updates 4 critics (2 reward + 2 cost), d3rlpy's CQL and SAC update 2. torch uses 2 threads.
Variants are interleaved (one timed block of each per repeat) and the medians are reported.

d3rlpy runs in its own venv (its pins clash with ours) as a subprocess that times blocks on request:

    python -m venv /tmp/d3rlpy-venv && /tmp/d3rlpy-venv/bin/pip install torch==2.13.0 d3rlpy==2.8.1
    python benchmarks/bench_cqllag_speed.py --d3rlpy-python /tmp/d3rlpy-venv/bin/python

FLOPs: the matmul FLOPs of one CQLLag update are counted analytically for the computation the
code does (2*m*k*n per matmul; the critics' first layer computes its state part once per state and
its action part once per state-action row; backward: weight gradients, and input gradients only
where they are needed, see :func:`critic_pass_flops`) and divided by the measured time per update;
the reference is this machine's measured fp32 rate of batched matmuls of the critic's hidden-layer
shapes (``torch.bmm``, same thread count), measured between the timed blocks.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import SAC
from stable_baselines3.common.logger import configure

from shieldgym.algos.cqllag import CQLLag, load_offline_dataset

RESULTS = Path(__file__).resolve().parent / "results"
REF_NAME, D3_NAME = "CQLLag, layer-by-layer critic (reference)", "d3rlpy CQL (2 critics)"
PLAIN_NAME, SAC_NAME = "CQLLag without CQL penalties (alpha = beta = 0, 4 critics)", "SB3 SAC (2 critics)"
OBS_DIM, ACT_DIM, HIDDEN, BATCH, N_ACTIONS, N_DATA = 17, 6, 256, 256, 10, 20_000

D3RLPY_WORKER = textwrap.dedent(
    """
    import sys, time
    import numpy as np, torch, d3rlpy
    obs_dim, act_dim, hidden, batch, n_actions, n_data, threads = map(int, sys.argv[1:8])
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    terminals = np.zeros(n_data); terminals[999::1000] = 1.0
    dataset = d3rlpy.dataset.MDPDataset(
        rng.standard_normal((n_data, obs_dim)).astype(np.float32),
        rng.uniform(-1, 1, (n_data, act_dim)).astype(np.float32),
        rng.standard_normal(n_data).astype(np.float32),
        terminals,
    )
    enc = d3rlpy.models.VectorEncoderFactory([hidden, hidden])
    cql = d3rlpy.algos.CQLConfig(
        batch_size=batch, n_action_samples=n_actions, n_critics=2,
        actor_encoder_factory=enc, critic_encoder_factory=enc,
    ).create(device="cpu:0")
    cql.build_with_dataset(dataset)
    print("@@ready " + d3rlpy.__version__, flush=True)
    for line in sys.stdin:
        k = int(line)
        t0 = time.perf_counter()
        for _ in range(k):
            cql.update(dataset.sample_transition_batch(batch))
        print("@@rate " + repr(k / (time.perf_counter() - t0)), flush=True)
    """
)


class _Spec(gym.Env):
    """Spaces only (the timed updates never step an env)."""

    observation_space = spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32)
    action_space = spaces.Box(-1.0, 1.0, (ACT_DIM,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        return np.zeros(OBS_DIM, np.float32), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        return np.zeros(OBS_DIM, np.float32), 0.0, False, False, {"cost": 0.0}


def _data(rng: np.random.Generator) -> dict[str, np.ndarray]:
    obs = rng.standard_normal((N_DATA, OBS_DIM)).astype(np.float32)
    return dict(
        observations=obs,
        actions=rng.uniform(-1, 1, (N_DATA, ACT_DIM)).astype(np.float32),
        rewards=rng.standard_normal(N_DATA).astype(np.float32),
        costs=rng.uniform(0, 1, N_DATA).astype(np.float32),
        next_observations=np.roll(obs, -1, axis=0),
        terminals=(np.arange(N_DATA) % 1000 == 999),
    )


def build_cqllag(rng: np.random.Generator, fused: bool = True, penalties: bool = True) -> CQLLag:
    """CQLLag on the benchmark's data; ``fused=False`` runs the critics module by module (the reference path),
    ``penalties=False`` sets both CQL weights to 0 (the online Lagrangian-SAC setting: no proposal actions)."""
    model = CQLLag(
        "MlpPolicy",
        _Spec(),
        buffer_size=N_DATA,
        batch_size=BATCH,
        cql_n_actions=N_ACTIONS,
        policy_kwargs=dict(net_arch=[HIDDEN, HIDDEN]),
        episode_length=1000,
        seed=0,
        device="cpu",
        **({} if penalties else dict(alpha_cql=0.0, beta_cql=0.0)),
    )
    model.add_offline_data(load_offline_dataset(_data(rng)))
    model.set_logger(configure(None, [""]))
    for critic in (model.critic, model.critic_target):
        critic.q_net.mlp.fused = fused
    return model


def build_sac(rng: np.random.Generator) -> SAC:
    model = SAC(
        "MlpPolicy",
        _Spec(),
        buffer_size=N_DATA,
        batch_size=BATCH,
        policy_kwargs=dict(net_arch=[HIDDEN, HIDDEN]),
        seed=0,
        device="cpu",
    )
    d = _data(rng)
    buf = model.replay_buffer
    buf.observations[:, 0], buf.next_observations[:, 0] = d["observations"], d["next_observations"]
    buf.actions[:, 0], buf.rewards[:, 0], buf.dones[:, 0] = d["actions"], d["rewards"], d["terminals"]
    buf.full = True
    model.set_logger(configure(None, [""]))
    return model


def time_sb3(model: CQLLag | SAC, updates: int) -> float:
    t0 = time.perf_counter()
    model.train(gradient_steps=updates, batch_size=BATCH)
    return updates / (time.perf_counter() - t0)


def critic_pass_flops(states: int, groups: int, grad_params: bool, grad_actions: bool) -> int:
    """Matmul FLOPs of the ReLU ensemble critic (4 members) on ``groups`` actions for each of ``states`` states.

    Counts what :class:`~shieldgym.critics.networks.QEnsemble` computes: the first layer's state part
    once per state, its action part once per row; backward: weight gradients (when ``grad_params``),
    input gradients of the hidden layers and, when ``grad_actions``, of the actions (never of the
    state features). The one-unit output layer's input gradient is an outer product (``rows * H``
    multiplies). Element-wise work (bias, ReLU, the sum over groups) is not counted.
    """
    e, rows = 4, states * groups
    fwd = 2 * states * OBS_DIM * HIDDEN + 2 * rows * ACT_DIM * HIDDEN + 2 * rows * HIDDEN * HIDDEN + 2 * rows * HIDDEN
    bwd = 0
    if grad_params or grad_actions:
        bwd += rows * HIDDEN + 2 * rows * HIDDEN * HIDDEN  # input gradients of the output and the second layer
    if grad_params:
        bwd += 2 * rows * HIDDEN + 2 * rows * HIDDEN * HIDDEN + 2 * rows * ACT_DIM * HIDDEN + 2 * states * OBS_DIM * HIDDEN
    if grad_actions:
        bwd += 2 * rows * HIDDEN * ACT_DIM
    return e * (fwd + bwd)


def cqllag_update_flops() -> int:
    """Analytic matmul FLOPs of one CQLLag update (see the module docstring)."""
    a_fwd = 2 * (OBS_DIM * HIDDEN + HIDDEN * HIDDEN + 2 * HIDDEN * ACT_DIM)  # trunk + mean and log_std heads
    a_wgrad = a_fwd
    a_igrad = a_fwd - 2 * OBS_DIM * HIDDEN
    critic_main = critic_pass_flops(BATCH, 1 + 3 * N_ACTIONS, grad_params=True, grad_actions=False)  # CQL pass, trained
    target = critic_pass_flops(BATCH, 1, grad_params=False, grad_actions=False)  # target network at s'
    actor_q = critic_pass_flops(BATCH, 1, grad_params=True, grad_actions=True)  # actor loss: gradient to the actions
    actor = BATCH * (a_fwd + a_wgrad + a_igrad) + BATCH * a_fwd  # pi(s) trained, pi(s') forward only
    return critic_main + target + actor_q + actor


def matmul_rate(reps: int) -> float:
    """Measured fp32 FLOP/s of batched matmuls shaped like the critic's hidden layer forward and backward."""
    rows = (1 + 3 * N_ACTIONS) * BATCH
    x, w = torch.randn(4, rows, HIDDEN), torch.randn(4, HIDDEN, HIDDEN)
    g = torch.randn(4, rows, HIDDEN)
    rates = []
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.bmm(x, w)
        torch.bmm(x.transpose(1, 2), g)  # weight gradient shape
        torch.bmm(g, w.transpose(1, 2))  # input gradient shape
        rates.append(3 * 2 * 4 * rows * HIDDEN * HIDDEN / (time.perf_counter() - t0))
    return statistics.median(rates)


def _reply(stream: Any, tag: str) -> str:
    """The next line starting with ``tag`` from the worker (d3rlpy also logs to stdout)."""
    for line in stream:
        if line.startswith(tag):
            return line.split()[1]
    raise RuntimeError(f"the d3rlpy worker exited before replying {tag!r}")


def profile_shares(model: CQLLag, updates: int) -> list[tuple[str, float]]:
    """Share of CPU self-time per op over ``updates`` CQLLag updates (top 8, plus all matmuls together)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        model.train(gradient_steps=updates, batch_size=BATCH)
    events = [(e.key, e.self_cpu_time_total) for e in prof.key_averages()]
    total = sum(t for _, t in events) or 1.0
    matmul_ops = {"aten::bmm", "aten::baddbmm", "aten::baddbmm_", "aten::mm", "aten::addmm", "aten::mv", "aten::addmv"}
    matmul_ops.add("aten::addmv_")
    matmul = sum(t for k, t in events if k in matmul_ops)
    top = sorted(events, key=lambda kv: -kv[1])[:8]
    return [("all matmuls (bmm, baddbmm, mm, addmm, mv, addmv)", matmul / total)] + [(k, t / total) for k, t in top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--updates", type=int, default=20, help="updates per timed block")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    default_d3 = "/tmp/d3rlpy-venv/bin/python"
    parser.add_argument("--d3rlpy-python", default=default_d3 if Path(default_d3).exists() else None)
    parser.add_argument("--output", default=str(RESULTS / "cqllag_speed.md"))
    parser.add_argument("--note", default="", help="a sentence about the run's conditions, written under the machine line")
    parser.add_argument(
        "--no-reference", action="store_true", help="skip the module-by-module critic (the same update without fusion)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)

    cqllag, sac = build_cqllag(rng), build_sac(rng)
    plain = build_cqllag(np.random.default_rng(0), penalties=False)
    reference = None if args.no_reference else build_cqllag(np.random.default_rng(0), fused=False)
    worker, d3_version = None, None
    if args.d3rlpy_python:
        script = Path(tempfile.mkdtemp()) / "d3rlpy_worker.py"
        script.write_text(D3RLPY_WORKER)
        cmd = [args.d3rlpy_python, str(script), *map(str, (OBS_DIM, ACT_DIM, HIDDEN, BATCH, N_ACTIONS, N_DATA, args.threads))]
        worker = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": str(args.threads)},
        )
        assert worker.stdout is not None and worker.stdin is not None
        d3_version = _reply(worker.stdout, "@@ready")

    def time_d3(k: int) -> float:
        assert worker is not None and worker.stdin is not None and worker.stdout is not None
        worker.stdin.write(f"{k}\n")
        worker.stdin.flush()
        return float(_reply(worker.stdout, "@@rate"))

    variants = {"CQLLag (4 critics)": lambda k: time_sb3(cqllag, k)}
    if reference is not None:
        variants[REF_NAME] = lambda k: time_sb3(reference, k)
    variants[PLAIN_NAME] = lambda k: time_sb3(plain, k)
    variants[SAC_NAME] = lambda k: time_sb3(sac, k)
    if worker is not None:
        variants[D3_NAME] = time_d3
    for fn in variants.values():
        fn(3)  # warm-up
    rates: dict[str, list[float]] = {name: [] for name in variants}
    peak: list[float] = []
    for i in range(args.repeats):
        for name, fn in variants.items():  # interleaved
            rates[name].append(fn(args.updates))
        peak.append(matmul_rate(3))
        done = ", ".join(f"{name} {v[-1]:.2f}" for name, v in rates.items())
        print(f"repeat {i + 1}/{args.repeats}: {done} updates/s; bmm {peak[-1] / 1e9:.0f} GFLOP/s", file=sys.stderr)
    shares = profile_shares(cqllag, 3)
    if worker is not None:
        worker.stdin.close()  # type: ignore[union-attr]
        worker.wait(timeout=30)

    med = {name: statistics.median(v) for name, v in rates.items()}
    flops = cqllag_update_flops()
    achieved = flops * med["CQLLag (4 critics)"]
    peak_rate = statistics.median(peak)
    # paired figures: each repeat's ratio, from blocks timed back to back
    frac_paired = statistics.median(flops * r / p for r, p in zip(rates["CQLLag (4 critics)"], peak))
    import stable_baselines3

    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name")),
        platform.processor(),
    )
    lines = [
        "# CQLLag update speed",
        "",
        f"Command: `{shlex.join([Path(sys.executable).name, *sys.argv])}`",
        "",
        f"Versions: python {platform.python_version()}, torch {torch.__version__}, "
        f"stable-baselines3 {stable_baselines3.__version__}, "
        f"d3rlpy {d3_version or 'not run'} (own venv, same torch).",
        f"Machine: {os.cpu_count()} CPUs ({cpu}); torch threads = {args.threads} for every variant; load average at the end "
        f"{tuple(round(x, 2) for x in os.getloadavg())} (the machine is shared with other jobs, so absolute rates are noisy; "
        "the variants are interleaved so the ratios are fair).",
        *([args.note] if args.note else []),
        "",
        f"Settings: batch {BATCH}, nets {HIDDEN}x{HIDDEN}, {N_ACTIONS} sampled actions per proposal (3 proposals), "
        f"obs {OBS_DIM}, "
        f"action {ACT_DIM}; {args.repeats} interleaved repeats of {args.updates} updates; medians. "
        f"{REF_NAME!r} is the same update with the critic ensemble run layer by layer through autograd "
        "(no fused function, no first-layer split, fresh buffers).",
        "",
        "| variant | updates/s (median) | all repeats | ratio to d3rlpy CQL |",
        "|---|---|---|---|",
    ]
    ref = med.get(D3_NAME)
    for name, v in med.items():
        ratio = f"{v / ref:.2f}" if ref else "-"
        lines.append(f"| {name} | {v:.2f} | {', '.join(f'{x:.2f}' for x in rates[name])} | {ratio} |")
    lines += [
        "",
        f"FLOPs of one CQLLag update (analytic matmul count): {flops / 1e9:.2f} GFLOP; achieved {achieved / 1e9:.1f} GFLOP/s; "
        f"measured fp32 batched-matmul rate at the critic's shapes: {peak_rate / 1e9:.1f} GFLOP/s "
        f"-> {100 * achieved / peak_rate:.0f}% of it (median over repeats of each repeat's own ratio: "
        f"{100 * frac_paired:.0f}%).",
        "",
        "Targets:",
        "",
    ]
    if ref:
        r = med["CQLLag (4 critics)"] / ref
        paired = statistics.median(a / b for a, b in zip(rates["CQLLag (4 critics)"], rates[D3_NAME]))
        lines.append(
            f"- CQLLag (4 critics) >= 0.5x d3rlpy CQL (2 critics): {r:.2f}x, {'met' if r >= 0.5 else 'MISSED'} "
            f"(median of the per-repeat ratios: {paired:.2f}x)."
        )
    else:
        lines.append("- CQLLag vs d3rlpy: UNMEASURED (no --d3rlpy-python).")
    frac = achieved / peak_rate
    lines_profile = ["", "Where one CQLLag update spends its CPU time (torch.profiler, self time, 3 updates):", ""]
    lines_profile += [f"- {name}: {100 * share:.0f}%" for name, share in shares]
    lines.append(
        f"- Achieved FLOP rate >= 70% of measured matmul rate: {100 * frac:.0f}%, {'met' if frac >= 0.7 else 'MISSED'}."
    )
    if reference is not None:
        speedup = statistics.median(a / b for a, b in zip(rates["CQLLag (4 critics)"], rates[REF_NAME]))
        lines.append(f"- Fused critic ensemble vs the layer-by-layer reference, same run: {speedup:.2f}x the updates/s.")
    plain_vs_sac = statistics.median(a / b for a, b in zip(rates[PLAIN_NAME], rates[SAC_NAME]))
    lines.append(
        f"- Without CQL penalties (the online setting) CQLLag updates 4 critics at {plain_vs_sac:.2f}x SAC's updates/s "
        "(SAC updates 2; no target, for information)."
    )
    text = "\n".join(lines + lines_profile) + "\n"
    Path(args.output).write_text(text)
    print(text)
    print(json.dumps({"median_updates_per_s": med, "flops_per_update": flops}))


if __name__ == "__main__":
    main()
