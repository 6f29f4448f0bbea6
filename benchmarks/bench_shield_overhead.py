"""Per-step overhead of the shield on SafetyPointGoal1-v0 with a 2x256 MLP critic (1 torch thread).

Variants, interleaved round by round on the same reset seeds and the same action sequence:

- ``raw``: the bare env;
- ``shield-numba``: ``ShieldWrapper`` with the critic's fast forward, numba backend, whose single-row check
  reads 16-bit weights and is exact near the threshold (what ``as_critic`` picks for a fitted
  :class:`~shieldgym.critics.fit.CostCritic` when numba is installed);
- ``shield-numba-f32``: the same with float32 weights (``numpy_critic("numba", "float32")``);
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

Each variant runs in a worker process of its own by default (``--mode isolated``), as a user's program
holds one env; ``--mode in-process`` keeps them all in this process, as earlier versions of this script did.

Usage::

    python benchmarks/bench_shield_overhead.py [--rounds 7] [--steps 300] [--vec-steps 100] [--mode isolated]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

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


N_VEC = 8
SINGLE = ("raw", "shield-numba", "shield-numba-f32", "shield-numpy", "shield-torch", "shield-const")
VECTOR = ("vec8-raw", "vec8-shield")
NEVER = 1e9  # no veto: measure the check itself


def build_critic() -> CostCritic:
    """The benchmark's 2x256 critic: random weights from seed 0, identical in every process."""
    probe = shieldgym.make(ENV_ID)
    obs_dim, space = probe.observation_space.shape[0], probe.action_space
    probe.close()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return CostCritic(obs_dim, space.low, space.high, n_critics=1, net_arch=(256, 256)).eval()


def build_variant(name: str, module: CostCritic) -> gym.Env | gym.vector.VectorEnv:
    """One variant of the table (see the module docstring)."""
    if name == "raw":
        return shieldgym.make(ENV_ID)
    if name == "vec8-raw":
        return gym.vector.SyncVectorEnv([lambda: shieldgym.make(ENV_ID) for _ in range(N_VEC)])
    if name == "vec8-shield":
        vec = gym.vector.SyncVectorEnv([lambda: shieldgym.make(ENV_ID) for _ in range(N_VEC)])
        return shieldgym.VectorShieldWrapper(vec, module.numpy_critic("numba"), threshold=NEVER)
    critics: dict[str, Callable[[], Any]] = {
        "shield-numba": lambda: module.numpy_critic("numba"),
        "shield-numba-f32": lambda: module.numpy_critic("numba", "float32"),
        "shield-numpy": lambda: module.numpy_critic("numpy"),
        "shield-torch": lambda: TorchCritic(module),
        "shield-const": ConstantCritic,
    }
    return shieldgym.ShieldWrapper(shieldgym.make(ENV_ID), critics[name](), threshold=NEVER)


def block_actions(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """The single-env and the 8-env action sequences (the same in every process)."""
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (args.steps, 2)).astype(np.float64)
    return actions, rng.uniform(-1, 1, (args.vec_steps, N_VEC, 2)).astype(np.float64)


def worker(name: str, args: argparse.Namespace, conn: Connection) -> None:
    """One variant in a process of its own: times a block per reset seed received, until ``None``."""
    torch.set_num_threads(1)
    module = build_critic()
    env = build_variant(name, module)
    actions, vec_actions = block_actions(args)
    acts = vec_actions if name in VECTOR else actions
    if args.cpu is not None:  # pinned once built: the workers start in parallel
        os.sched_setaffinity(0, {args.cpu})
    conn.send(float(module.numpy_critic("numpy").params.astype(np.float64).sum()))  # same weights everywhere
    while (seed := conn.recv()) is not None:
        conn.send(timed_block(env, acts, seed))  # type: ignore[arg-type]
    env.close()


class Variants:
    """The variants' blocks, each in its own process (``isolated``) or all in this one (``in-process``)."""

    def __init__(self, mode: str, args: argparse.Namespace, module: CostCritic) -> None:
        self.mode = mode
        self.replicas = 1
        names = [*SINGLE, *VECTOR]
        if mode == "in-process":
            self.envs = {name: build_variant(name, module) for name in names}
            self.actions = block_actions(args)
            return
        ctx = mp.get_context("spawn")
        # replicas: a process's memory layout shifts its timings by about a point, so round r runs on
        # replica r % replicas of every variant, and the median over rounds mixes the layouts
        self.replicas = max(1, args.replicas)
        self.conns: dict[tuple[str, int], Connection] = {}
        self.procs = []
        for name in names:
            for replica in range(self.replicas):
                parent, child = ctx.Pipe()
                proc = ctx.Process(target=worker, args=(name, args, child), daemon=True)
                proc.start()
                self.conns[name, replica], self.procs = parent, [*self.procs, proc]
        sums = {key: conn.recv() for key, conn in self.conns.items()}
        if len(set(sums.values())) != 1:
            raise RuntimeError(f"the worker processes built different critics: {sums}")

    def block(self, name: str, seed: int) -> tuple[float, float]:
        """(wall s, cpu s) per step of one block of ``name`` from ``reset(seed)`` (round ``seed``)."""
        if self.mode == "in-process":
            actions, vec_actions = self.actions
            return timed_block(self.envs[name], vec_actions if name in VECTOR else actions, seed)  # type: ignore[arg-type]
        conn = self.conns[name, seed % self.replicas]
        conn.send(seed)
        return conn.recv()

    def close(self) -> None:
        if self.mode == "in-process":
            for env in self.envs.values():
                env.close()
            return
        for conn in self.conns.values():
            conn.send(None)
        for proc in self.procs:
            proc.join(timeout=30)


MODE_TEXT = {
    "isolated": (
        "Mode `isolated`: each variant runs in a worker process of its own (started with `spawn`, the same critic "
        "weights checked in every worker), as a user's program holds one env; CPU time is the worker's own. "
        "All processes are pinned to one CPU (`--cpu`), so every variant runs on the same core and caches. Each "
        "variant has `--replicas` worker processes and round r runs on replica r mod replicas: where a process's "
        "memory happens to lie moves its timings by about a point, and the median over rounds mixes those layouts. "
        "The load average after the run includes these workers' own start-up."
    ),
    "in-process": (
        "Mode `in-process`: all variants (5 single envs, 16 vector sub-envs) live in this one process, so each "
        "block also pays for what the other variants hold (the garbage collector's passes over every live object, "
        "cache and TLB footprint); this moves the single-env overhead by about a point."
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=300, help="steps per single-env block")
    parser.add_argument("--vec-steps", type=int, default=100, help="vector steps per 8-env block")
    parser.add_argument(
        "--mode",
        choices=("isolated", "in-process"),
        default="isolated",
        help="each variant in its own worker process (as a user's program holds one env), or all in this one",
    )
    parser.add_argument(
        "--cpu",
        type=int,
        default=(os.cpu_count() or 1) - 1,
        help="pin every timing process to this CPU (same core, same caches for every variant); -1: no pinning",
    )
    parser.add_argument("--replicas", type=int, default=3, help="isolated mode: worker processes per variant")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.cpu is not None and args.cpu < 0:
        args.cpu = None
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    torch.set_num_threads(1)
    load_before = os.getloadavg()

    module = build_critic()
    probe = shieldgym.make(ENV_ID)
    obs_dim, space = module.obs_dim, probe.action_space
    probe.close()
    numba_critic, numpy_critic = module.numpy_critic("numba"), module.numpy_critic("numpy")
    numba_f32 = module.numpy_critic("numba", "float32")
    torch_critic = TorchCritic(module)
    never = NEVER
    actions, _ = block_actions(args)

    runner = Variants(args.mode, args, module)
    wall: dict[str, list[float]] = {k: [] for k in [*SINGLE, *VECTOR]}
    cpu: dict[str, list[float]] = {k: [] for k in wall}
    warm = runner.replicas if args.mode == "isolated" else 1  # every process's first round is discarded
    for r in range(args.rounds + warm):
        for group, per in ((SINGLE, 1), (VECTOR, N_VEC)):
            for name in group if r % 2 == 0 else reversed(group):
                w, c = runner.block(name, seed=r)
                if r >= warm:
                    wall[name].append(w / per)
                    cpu[name].append(c / per)
    runner.close()
    load_after = os.getloadavg()

    # the critic call inside the loop, where the simulator step has evicted its weights from the caches
    in_loop_names = ("shield-numba", "shield-numba-f32", "shield-numpy")
    variants = {name: build_variant(name, module) for name in ("raw", *in_loop_names)}
    in_loop_us: dict[str, float] = {}
    for name in in_loop_names:
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
    # a row with a positive risk, and a threshold at that risk: inside the 16-bit bound, so refined in float32
    probe_rng = np.random.default_rng(1)
    probe_rows = probe_rng.normal(size=(64, obs_dim)), probe_rng.uniform(-1, 1, (64, 2))
    k = int(np.argmax(numba_f32(*probe_rows)))
    near_obs, near_act = probe_rows[0][k], probe_rows[1][k]
    at_threshold = numba_f32.risk_one(near_obs, near_act)
    calls = {
        "numba, batch 1, float32 weights": critic_call_us(numba_critic, one_obs, one_act),
        "numba, one row, 16-bit weights (`risk_one`: finiteness test + forward, the single-env shield's call)": (
            critic_call_us(lambda o, a: numba_critic.risk_one(o, a, never), one_obs[0], one_act[0])
        ),
        "numba, one row, 16-bit weights, threshold within the bound (16-bit pass, then float32)": critic_call_us(
            lambda o, a: numba_critic.risk_one(o, a, at_threshold), near_obs, near_act
        ),
        "numba, batch 8, 16-bit weights (the vector shield's call)": critic_call_us(
            lambda o, a: numba_critic(o, a, never), np.zeros((8, obs_dim)), np.zeros((8, 2))
        ),
        "numba, one row, float32 weights": critic_call_us(numba_f32.risk_one, one_obs[0], one_act[0]),
        "numpy, batch 1": critic_call_us(numpy_critic, one_obs, one_act),
        "torch, batch 1": critic_call_us(torch_critic, one_obs, one_act),
        "numba, batch 8, float32 weights": critic_call_us(numba_critic, eight_obs, eight_act),
        "numpy, batch 8": critic_call_us(numpy_critic, eight_obs, eight_act),
        "torch, batch 8": critic_call_us(torch_critic, eight_obs, eight_act),
    }

    rows = []
    for name, base in (
        ("raw", "raw"),
        ("shield-numba", "raw"),
        ("shield-numba-f32", "raw"),
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
        call_lines.append(f"| `{name}` `risk_one`, inside the env loop (median `shield.last_latency_s`) | {us:.1f} |")
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
    f32_cpu = ratio("shield-numba-f32", "raw", cpu) * 100
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
{MODE_TEXT[args.mode]}

Command: `{cmd}`

| | |
|---|---|
| machine | {os.cpu_count()} CPUs (`nproc`), {cpu_model()} |
| timing processes pinned to CPU | {"none" if args.cpu is None else args.cpu} |
| load average (1, 5, 15 min) | before {load_str(load_before)}, after {load_str(load_after)} |
| shared | other jobs may share the cores (see the load average); CPU (process) time is steadier than wall time |
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

- single env, shield overhead <= 5% (numba backend with 16-bit weights, the default): CPU {single_cpu:+.1f}%,
  wall {single_wall:+.1f}% -> **{verdict_single}** (CPU time). With float32 weights: CPU {f32_cpu:+.1f}%.
- the same without numba (NumPy backend): CPU {numpy_cpu:+.1f}% -> **{verdict_numpy}**.
- 8 envs, per-env overhead lower than single-env: CPU {vec_cpu:+.1f}% vs {single_cpu:+.1f}% -> **{verdict_vec}**.

The shield's own work (`shield-const`: the same wrapper and `risk_one` path with a critic that reads no
weights) costs {const_cpu:+.1f}% CPU; the rest of the single-env overhead, {single_cpu - const_cpu:+.1f} points, is
the 2x256 critic itself: its forward pass and its weights' traffic through the caches it shares with the simulator.

`as_critic` uses the fast forward (`CostCritic.numpy_critic()`, numba backend when numba is installed,
else NumPy) for a fitted `CostCritic`; a generic torch module goes through `TorchCritic` (the
`shield-torch` row). For one env the shield calls the fast forward's `risk_one(obs, action, threshold)`: the
finiteness test of the inputs and the forward pass in one compiled call, reading 16-bit weights (half
the bytes of float32) and recomputing in float32 when the threshold lies within the 16-bit pass's error
bound, so every veto decision is the float32 pass's.
"""
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(md)
    print(f"\nwrote {args.output}  (CPU overhead: single env {single_cpu:+.1f}%, 8 envs {vec_over:+.1f}% per env-step)")
    for env in variants.values():
        env.close()


if __name__ == "__main__":
    main()
