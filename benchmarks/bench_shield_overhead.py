"""Per-step overhead of the shield on SafetyPointGoal1-v0 with a 2x256 MLP critic (1 torch thread).

Variants, interleaved round by round on the same reset seeds and the same action sequence:

- ``raw``: the bare env;
- ``shield-numba``: ``ShieldWrapper`` with the critic's fast forward, numba backend (what ``as_critic``
  picks for a fitted :class:`~shieldgym.critics.fit.CostCritic` when numba is installed);
- ``shield-numpy``: the same with the NumPy backend (one ``matmul`` per layer; the fallback without numba);
- ``shield-torch``: ``ShieldWrapper`` with the same critic run as a torch module (``TorchCritic``,
  inference mode, ``torch.from_numpy``);
- ``shield-const``: ``ShieldWrapper`` with a critic that has ``risk_one`` but reads no weights (risk 0):
  the shield's own per-step work on the same path, so the difference to ``shield-numba`` is the critic's;
- ``vec8-raw`` / ``vec8-shield``: 8 envs in a ``SyncVectorEnv``, bare and with ``VectorShieldWrapper``
  (one critic call for the 8 sub-envs, numba backend), reported per env-step.

The threshold is set so that no action is vetoed: the figures are the cost of checking. Wall and CPU
(process) time are both reported; the machine is shared, so the load average is recorded and the
overhead is the median over rounds of the per-round ratio.

Usage::

    python benchmarks/bench_shield_overhead.py [--rounds 7] [--steps 300] [--vec-steps 100]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import gymnasium as gym
import numpy as np
import torch

import shieldgym
from shieldgym.critics.fit import CostCritic
from shieldgym.critics.protocol import TorchCritic
from shieldgym.wrappers.shield import Shield

ENV_ID = "SafetyPointGoal1-v0"
RESULTS = Path(__file__).parent / "results" / "shield_overhead.md"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_str(load: tuple[float, float, float]) -> str:
    return "/".join(f"{x:.2f}" for x in load)


def timed_block(env: gym.Env, actions: np.ndarray, seed: int) -> tuple[float, float]:
    """(wall s, cpu s) per step of ``len(actions)`` steps from ``reset(seed)``."""
    env.reset(seed=seed)
    step = env.step
    w0, c0 = time.perf_counter(), time.process_time()
    for a in actions:
        step(a)
    return (time.perf_counter() - w0) / len(actions), (time.process_time() - c0) / len(actions)


def split_single_env(raw: gym.Env, shielded: gym.Env, actions: np.ndarray, rounds: int) -> dict[str, float]:
    """Median us/step of the bare env's step, and of the check and of the env step inside the shielded loop."""
    shield, inner = shielded.shield, shielded.env  # type: ignore[attr-defined]
    totals: dict[str, list[float]] = {"bare env step": [], "check (`Shield.filter`)": [], "env step after the check": []}
    clock = time.perf_counter
    for r in range(rounds + 1):
        raw.reset(seed=r)
        obs, _ = shielded.reset(seed=r)
        bare = check = step = 0.0
        for a in actions:
            t0 = clock()
            raw.step(a)
            bare += clock() - t0
        for a in actions:
            t0 = clock()
            executed, _ = shield.filter(obs, a)
            t1 = clock()
            obs = inner.step(executed)[0]
            t2 = clock()
            check, step = check + t1 - t0, step + t2 - t1
        if r:
            for key, total in zip(totals, (bare, check, step)):
                totals[key].append(total / len(actions) * 1e6)
    out = {k: statistics.median(v) for k, v in totals.items()}
    out["env step slowdown after the check (%)"] = 100 * statistics.median(
        b / a - 1 for a, b in zip(totals["bare env step"], totals["env step after the check"])
    )
    return out


class ConstantCritic:
    """Risk 0 for every input, through the same ``risk_one`` path as the fitted critic, with no weights to read."""

    def __call__(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        return np.zeros(len(obs), np.float32)

    def risk_one(self, obs: np.ndarray, action: np.ndarray) -> float:
        return 0.0


def critic_call_us(fn: Callable, obs: np.ndarray, act: np.ndarray, n: int = 2000) -> float:
    for _ in range(50):
        fn(obs, act)
    t0 = time.perf_counter()
    for _ in range(n):
        fn(obs, act)
    return (time.perf_counter() - t0) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=300, help="steps per single-env block")
    parser.add_argument("--vec-steps", type=int, default=100, help="vector steps per 8-env block")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load_before = os.getloadavg()

    probe = shieldgym.make(ENV_ID)
    obs_dim, space = probe.observation_space.shape[0], probe.action_space
    probe.close()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        module = CostCritic(obs_dim, space.low, space.high, n_critics=1, net_arch=(256, 256)).eval()
    numba_critic, numpy_critic = module.numpy_critic("numba"), module.numpy_critic("numpy")
    torch_critic = TorchCritic(module)
    never = 1e9  # no veto: measure the check itself

    variants: dict[str, gym.Env | gym.vector.VectorEnv] = {
        "raw": shieldgym.make(ENV_ID),
        "shield-numba": shieldgym.ShieldWrapper(shieldgym.make(ENV_ID), numba_critic, threshold=never),
        "shield-numpy": shieldgym.ShieldWrapper(shieldgym.make(ENV_ID), numpy_critic, threshold=never),
        "shield-torch": shieldgym.ShieldWrapper(shieldgym.make(ENV_ID), torch_critic, threshold=never),
        "shield-const": shieldgym.ShieldWrapper(shieldgym.make(ENV_ID), ConstantCritic(), threshold=never),
    }
    n_vec = 8
    vec_variants = {
        "vec8-raw": gym.vector.SyncVectorEnv([lambda: shieldgym.make(ENV_ID) for _ in range(n_vec)]),
        "vec8-shield": shieldgym.VectorShieldWrapper(
            gym.vector.SyncVectorEnv([lambda: shieldgym.make(ENV_ID) for _ in range(n_vec)]), numba_critic, threshold=never
        ),
    }
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (args.steps, 2)).astype(np.float64)
    vec_actions = rng.uniform(-1, 1, (args.vec_steps, n_vec, 2)).astype(np.float64)

    wall: dict[str, list[float]] = {k: [] for k in [*variants, *vec_variants]}
    cpu: dict[str, list[float]] = {k: [] for k in wall}
    for r in range(args.rounds + 1):  # round 0 warms up and is discarded
        order = list(variants) if r % 2 == 0 else list(reversed(variants))
        for name in order:
            w, c = timed_block(variants[name], actions, seed=r)
            if r:
                wall[name].append(w)
                cpu[name].append(c)
        vorder = list(vec_variants) if r % 2 == 0 else list(reversed(vec_variants))
        for name in vorder:
            w, c = timed_block(vec_variants[name], vec_actions, seed=r)  # type: ignore[arg-type]
            if r:
                wall[name].append(w / n_vec)
                cpu[name].append(c / n_vec)
    load_after = os.getloadavg()

    # the critic call inside the loop, where the simulator step has evicted its weights from the caches
    in_loop_us: dict[str, float] = {}
    for name in ("shield-numba", "shield-numpy"):
        shielded = variants[name]
        shielded.reset(seed=0)
        in_loop = []
        for a in actions:
            shielded.step(a)
            in_loop.append(shielded.shield.last_latency_s)  # type: ignore[union-attr]
        in_loop_us[name] = statistics.median(in_loop) * 1e6

    # where the single-env overhead goes: the check (Shield.filter) and the wrapped env's step timed
    # separately inside the shielded loop, against the bare env's step, in alternating blocks
    split = split_single_env(variants["raw"], variants["shield-numba"], actions, args.rounds)

    # the decision logic alone: Shield.filter with a critic that costs nothing
    zero = np.zeros(1, np.float32)
    bare_shield = Shield(lambda o, a: zero, np.zeros(2), never, space)
    probe_obs, probe_act = np.zeros(obs_dim), np.zeros(2)
    logic_us = min(critic_call_us(lambda o, a: bare_shield.filter(o, a), probe_obs, probe_act) for _ in range(5))

    def ratio(name: str, base: str, table: dict[str, list[float]]) -> float:
        return statistics.median(a / b for a, b in zip(table[name], table[base])) - 1.0

    one_obs = np.zeros((1, obs_dim), np.float64)
    one_act = np.zeros((1, 2), np.float64)
    eight_obs, eight_act = np.zeros((8, obs_dim)), np.zeros((8, 2))
    calls = {
        "numba, batch 1": critic_call_us(numba_critic, one_obs, one_act),
        "numba, one row (`risk_one`: finiteness test + forward, the single-env shield's call)": critic_call_us(
            numba_critic.risk_one, one_obs[0], one_act[0]
        ),
        "numpy, batch 1": critic_call_us(numpy_critic, one_obs, one_act),
        "torch, batch 1": critic_call_us(torch_critic, one_obs, one_act),
        "numba, batch 8": critic_call_us(numba_critic, eight_obs, eight_act),
        "numpy, batch 8": critic_call_us(numpy_critic, eight_obs, eight_act),
        "torch, batch 8": critic_call_us(torch_critic, eight_obs, eight_act),
    }

    rows = []
    for name, base in (
        ("raw", "raw"),
        ("shield-numba", "raw"),
        ("shield-numpy", "raw"),
        ("shield-torch", "raw"),
        ("shield-const", "raw"),
        ("vec8-raw", "vec8-raw"),
        ("vec8-shield", "vec8-raw"),
    ):
        rows.append(
            (
                name,
                statistics.median(wall[name]) * 1e6,
                statistics.median(cpu[name]) * 1e6,
                ratio(name, base, wall) * 100,
                ratio(name, base, cpu) * 100,
            )
        )
    vec_over = ratio("vec8-shield", "vec8-raw", cpu) * 100
    header = "| variant | wall us/step (median) | CPU us/step (median) | overhead vs bare, wall | overhead vs bare, CPU |"
    lines = [header, "|---|---:|---:|---:|---:|"]
    for name, w, c, ow, oc in rows:
        lines.append(f"| {name} | {w:.1f} | {c:.1f} | {ow:+.1f}% | {oc:+.1f}% |")
    table = "\n".join(lines)
    call_lines = ["| critic call | us/call |", "|---|---:|", *[f"| {k} | {v:.1f} |" for k, v in calls.items()]]
    for name, us in in_loop_us.items():
        backend = name.split("-")[1]
        call_lines.append(f"| {backend} `risk_one`, inside the env loop (median `shield.last_latency_s`) | {us:.1f} |")
    call_lines.append(f"| shield decision logic alone (`Shield.filter`, critic returning a constant) | {logic_us:.1f} |")
    split_lines = ["| single env, numba, inside the loop | us/step |", "|---|---:|"]
    split_lines += [f"| {k} | {v:.1f} |" for k, v in split.items() if not k.endswith("(%)")]
    split_lines.append(f"| env step slowdown after the check | {split['env step slowdown after the check (%)']:+.1f}% |")
    print(table)
    print()
    print("\n".join(call_lines))
    print()
    print("\n".join(split_lines))

    call_table = "\n".join(call_lines)
    versions = f"python {platform.python_version()}, numpy {np.__version__}, torch {torch.__version__}, " + ", ".join(
        f"{p} {version(p)}" for p in ("gymnasium", "mujoco", "safety-gymnasium")
    )
    cmd = "OMP_NUM_THREADS=1 python benchmarks/bench_shield_overhead.py " + " ".join(sys.argv[1:])
    single_cpu = ratio("shield-numba", "raw", cpu) * 100
    single_wall = ratio("shield-numba", "raw", wall) * 100
    numpy_cpu = ratio("shield-numpy", "raw", cpu) * 100
    const_cpu = ratio("shield-const", "raw", cpu) * 100
    verdict_numpy = "met" if numpy_cpu <= 5.0 else f"missed by {numpy_cpu - 5.0:.1f} points"
    verdict_single = "met" if single_cpu <= 5.0 else f"missed by {single_cpu - 5.0:.1f} points"
    vec_cpu = vec_over
    verdict_vec = "met" if vec_cpu < single_cpu else "missed (not lower than single-env)"
    md = f"""# Shield overhead on {ENV_ID}

Per-step cost of checking every action with a 2x256 MLP cost critic (`CostCritic`, one member,
random weights; 1 torch thread; numba {version("numba")}), against the bare env. No action is vetoed (threshold {never:g}), so
the figures are the price of the check itself. Variants are interleaved round by round (order
alternating), each block replays the same {args.steps} actions from the same reset seed; the
overhead is the median over {args.rounds} rounds of the per-round ratio shielded / bare.

Command: `{cmd}`

| | |
|---|---|
| machine | {os.cpu_count()} CPUs (`nproc`), {cpu_model()} |
| load average (1, 5, 15 min) | before {load_str(load_before)}, after {load_str(load_after)} |
| shared | yes: other jobs ran on the same 2 cores; wall times are noisy, CPU (process) time is steadier |
| versions | {versions} |

{table}

Critic call alone, in a tight loop (the fast forward of the same weights, numba and NumPy backends,
vs the torch module under `inference_mode`), inside the env loop, and the shield's own work:

{call_table}

Where the single-env overhead goes: wall time inside the shielded loop of the check (`Shield.filter`,
the critic's `risk_one` included) and of the wrapped env's step that follows it, against the bare
env's step, {args.rounds} rounds of alternating blocks (medians):

{chr(10).join(split_lines)}

## Targets

- single env, shield overhead <= 5% (numba backend, the default): CPU {single_cpu:+.1f}%, wall {single_wall:+.1f}%
  -> **{verdict_single}** (CPU time).
- the same without numba (NumPy backend): CPU {numpy_cpu:+.1f}% -> **{verdict_numpy}**.
- 8 envs, per-env overhead lower than single-env: CPU {vec_cpu:+.1f}% vs {single_cpu:+.1f}% -> **{verdict_vec}**.

The shield's own work (`shield-const`: the same wrapper and `risk_one` path with a critic that reads no
weights) costs {const_cpu:+.1f}% CPU; the rest of the single-env overhead, {single_cpu - const_cpu:+.1f} points, is
the 2x256 critic itself: its forward pass and its weights' traffic through the caches it shares with the simulator.

`as_critic` uses the fast forward (`CostCritic.numpy_critic()`, numba backend when numba is installed,
else NumPy) for a fitted `CostCritic`; a generic torch module goes through `TorchCritic` (the
`shield-torch` row). For one env the shield calls the fast forward's `risk_one(obs, action)`: the
finiteness test of the inputs and the forward pass in one compiled call.
"""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(md)
    print(f"\nwrote {RESULTS}  (CPU overhead: single env {single_cpu:+.1f}%, 8 envs {vec_over:+.1f}% per env-step)")
    for env in [*variants.values(), *vec_variants.values()]:
        env.close()


if __name__ == "__main__":
    main()
