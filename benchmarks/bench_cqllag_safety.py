"""Safety benchmark of CQLLag: online on SafetyBallCircle-v0 / SafetyPointCircle1-v0, offline on BallCircle.

Online: CQLLag and unconstrained SB3 SAC get the same env-step budget and network; after training
each runs ``--eval-episodes`` deterministic episodes. Targets: CQLLag mean episode cost <= 25 and
return >= 70% of SAC's.

Offline: a BallCircle dataset is collected with mixed-quality behaviour policies (uniform random,
the online SAC and CQLLag policies with and without action noise), CQLLag trains on it for
``--offline-steps`` gradient steps and is evaluated. Target: cost <= 25 and return >= 80% of the
best behaviour episode that meets the limit. The dataset is cached under ``--workdir`` and reused with
``--resume``, so offline settings (``--offline-lambda-states``, ``--offline-tau``, ``--offline-pid``,
``--offline-lambda-warmup``, ...) can be compared on the same data without retraining online.

Online, ``--lambda-source episode_cost`` drives lambda by the measured cost of finished training episodes
instead of the cost critic (``deterministic_episode_cost``: only of the every ``--deterministic-every``-th
training episode, played by the deterministic policy that evaluation uses), and ``--normalise-actor-loss``
divides the actor's ``-Q_r + lambda Q_c`` by ``1 + lambda``; the report lists lambda, the mean cost of the last 10
training episodes and (with the deterministic source) the last 5 deterministic episodes' return and cost at every
checkpoint.

Runs are chunked: after every ``--chunk`` env steps the model and its replay buffer are saved under
``--workdir``; ``--resume`` continues from there. Results go to ``benchmarks/results/cqllag_safety.md``.

    python benchmarks/bench_cqllag_safety.py --envs SafetyBallCircle-v0 --seeds 0 --steps 20000 --offline-steps 10000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import SAC
from stable_baselines3.common.monitor import Monitor

import shieldgym
from shieldgym.algos.cqllag import CQLLag

RESULTS = Path(__file__).resolve().parent / "results"
COST_LIMIT = 25.0


def make_env(env_id: str) -> tuple[gym.Env, str]:
    """The env through shieldgym.make (``info["cost"]`` on every step); returns it and how it was built."""
    return shieldgym.make(env_id), "shieldgym.make"


def evaluate(model: Any, env: gym.Env, episodes: int, seed: int) -> dict[str, float]:
    """Deterministic episodes: mean/std of return and cost."""
    rets, costs = [], []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + 10_000 + ep)
        done, ret, cost = False, 0.0, 0.0
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, r, term, trunc, info = env.step(action)
            ret += float(r)
            cost += float(info.get("cost", 0.0))
            done = term or trunc
        rets.append(ret)
        costs.append(cost)
    return {
        "return": float(np.mean(rets)),
        "return_std": float(np.std(rets)),
        "cost": float(np.mean(costs)),
        "cost_std": float(np.std(costs)),
    }


def build(algo: str, env: gym.Env, seed: int, args: argparse.Namespace) -> Any:
    net = dict(net_arch=[args.hidden, args.hidden])
    common = dict(batch_size=args.batch_size, learning_starts=1000, seed=seed, policy_kwargs=net, verbose=0, device="cpu")
    if algo == "sac":
        return SAC("MlpPolicy", Monitor(env), **common)
    return CQLLag(
        "MlpPolicy",
        Monitor(env),
        gradient_steps=args.gradient_steps,
        cost_limit=COST_LIMIT if args.train_cost_limit is None else args.train_cost_limit,
        target_entropy="auto" if args.target_entropy is None else args.target_entropy,
        alpha_cql=args.alpha_cql,
        beta_cql=args.beta_cql,
        cql_n_actions=args.n_actions,
        lambda_lr=args.lambda_lr,
        lambda_init=args.lambda_init,
        lambda_source=args.lambda_source,
        normalise_actor_loss=args.normalise_actor_loss,
        cost_reduce=args.cost_reduce,
        cost_critic_policy=args.cost_critic_policy,
        cost_gamma=args.cost_gamma,
        lambda_max=args.lambda_max,
        lambda_error_clip=args.lambda_error_clip,
        lambda_lr_down=args.lambda_lr_down,
        actor_average_tau=args.actor_average_tau,
        lambda_delay_steps=args.lambda_delay,
        deterministic_every=args.deterministic_every,
        deterministic_repeats=args.deterministic_repeats,
        pid_lagrangian=None if args.pid is None else dict(zip(("kp", "ki", "kd"), args.pid)),
        **common,
    )


def train_online(env_id: str, algo: str, seed: int, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    tag = f"{env_id}_{algo}_s{seed}"
    ckpt, buf, meta_path = workdir / f"{tag}.zip", workdir / f"{tag}_buffer.pkl", workdir / f"{tag}.json"
    env, how = make_env(env_id)
    meta: dict[str, Any] = {"steps_done": 0, "wall_s": 0.0}
    cls = SAC if algo == "sac" else CQLLag
    if args.resume and ckpt.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        model = cls.load(ckpt, env=Monitor(env), device="cpu")
        if buf.exists():
            model.load_replay_buffer(buf)
    else:
        model = build(algo, env, seed, args)
    if meta["steps_done"] < args.steps:
        meta.pop("eval", None)  # a resumed run trained further: its stored evaluation is stale
    while meta["steps_done"] < args.steps:
        chunk = min(args.chunk, args.steps - meta["steps_done"])
        t0 = time.perf_counter()
        model.learn(chunk, reset_num_timesteps=meta["steps_done"] == 0, progress_bar=args.progress)
        meta["wall_s"] += time.perf_counter() - t0
        meta["steps_done"] += chunk
        if algo == "cqllag":  # the multiplier and the measured training-episode cost at each checkpoint
            recent = list(model.ep_cost_buffer or [])[-10:]
            det = list(model.det_ep_buffer or [])[-5:]
            meta.setdefault("history", []).append(
                {
                    "steps": meta["steps_done"],
                    "lambda": float(model.lagrange.value),
                    "train_ep_cost_last10": float(np.mean(recent)) if recent else None,
                    "det_ep_cost_last5": float(np.mean([c for c, _ in det])) if det else None,
                    "det_ep_return_last5": float(np.mean([r for _, r in det])) if det else None,
                }
            )
        model.save(ckpt)
        model.save_replay_buffer(buf)
        meta_path.write_text(json.dumps(meta))
        print(f"[{tag}] {meta['steps_done']}/{args.steps} steps, {meta['wall_s']:.0f} s", flush=True)
    if "eval" not in meta:
        eval_env, _ = make_env(env_id)
        meta["eval"] = evaluate(model, eval_env, args.eval_episodes, seed)
        meta["env_built_with"] = how
        if algo == "cqllag":
            meta["lambda"] = float(model.lagrange.value)
        if algo == "cqllag" and model.policy.actor_average is not None:
            # the reported policy is the averaged actor; the live actor's last iterate is kept for comparison
            average, model.policy.actor_average = model.policy.actor_average, None
            meta["eval_live_actor"] = evaluate(model, eval_env, args.eval_episodes, seed)
            model.policy.actor_average = average
        if algo == "cqllag" and args.select_best_deterministic:
            # the reported policy is the frozen copy picked from the run's own deterministic episodes
            meta["eval_final"] = meta["eval"]
            meta["best_deterministic"] = None
            if model.best_deterministic is not None:
                meta["best_deterministic"] = model.load_best_deterministic()
                meta["eval"] = evaluate(model, eval_env, args.eval_episodes, seed)
        meta_path.write_text(json.dumps(meta))
    return {"tag": tag, "model": model, **meta}


def collect_dataset(
    env_id: str, policies: list[tuple[str, Any, float]], episodes: int, seed: int
) -> tuple[dict[str, np.ndarray], list[dict]]:
    """Roll out each (name, model|None, noise) for ``episodes`` episodes; DSRL-style arrays + per-episode stats."""
    env, _ = make_env(env_id)
    rng = np.random.default_rng(seed)
    cols: dict[str, list] = {
        k: [] for k in ("observations", "actions", "rewards", "costs", "next_observations", "terminals", "timeouts")
    }
    episodes_stats = []
    low, high = env.action_space.low, env.action_space.high
    for name, model, noise in policies:
        for _ in range(episodes):
            obs, _ = env.reset(seed=int(rng.integers(1 << 31)))
            done, ret, cost = False, 0.0, 0.0
            while not done:
                if model is None:
                    action = rng.uniform(low, high).astype(np.float32)
                else:
                    action, _ = model.predict(obs, deterministic=True)
                    action = np.clip(action + noise * rng.standard_normal(action.shape), low, high).astype(np.float32)
                next_obs, r, term, trunc, info = env.step(action)
                for k, v in (
                    ("observations", obs),
                    ("actions", action),
                    ("rewards", r),
                    ("costs", info["cost"]),
                    ("next_observations", next_obs),
                    ("terminals", term),
                    ("timeouts", trunc),
                ):
                    cols[k].append(v)
                ret += float(r)
                cost += float(info["cost"])
                obs, done = next_obs, term or trunc
            episodes_stats.append({"policy": f"{name} (noise {noise})", "return": ret, "cost": cost})
    return {k: np.asarray(v) for k, v in cols.items()}, episodes_stats


def load_or_collect_dataset(
    env_id: str, policies: list[tuple[str, Any, float]], episodes: int, seed: int, workdir: Path, reuse: bool
) -> tuple[dict[str, np.ndarray], list[dict], float]:
    """The offline dataset of :func:`collect_dataset`, cached under ``workdir`` so offline trials share one dataset.

    With ``reuse`` a cached dataset for the same env, seed and episodes per policy is loaded instead of
    re-collected (rollouts of the same checkpoints are not bit-reproducible across processes).
    Returns the arrays, the per-episode stats and the collection time (0 when loaded).
    """
    tag = f"{env_id}_offline_s{seed}_e{episodes}"
    data_path, stats_path = workdir / f"{tag}.npz", workdir / f"{tag}.json"
    if reuse and data_path.exists() and stats_path.exists():
        with np.load(data_path) as f:
            data = {k: f[k] for k in f.files}
        return data, json.loads(stats_path.read_text()), 0.0
    t0 = time.perf_counter()
    data, ep_stats = collect_dataset(env_id, policies, episodes, seed)
    collect_s = time.perf_counter() - t0
    np.savez(data_path, **data)
    stats_path.write_text(json.dumps(ep_stats))
    return data, ep_stats, collect_s


def discounted_cost_to_go(data: dict[str, np.ndarray], gamma: float) -> np.ndarray:
    """Empirical discounted cost-to-go of every transition, summed backwards within its episode.

    Episodes end at a terminal or a timeout; nothing is bootstrapped past a timeout, so rows near a
    truncation are under-estimates of the critic's (bootstrapped) target.
    """
    costs = data["costs"].astype(np.float64)
    ends = np.logical_or(data["terminals"], data["timeouts"])
    out, acc = np.zeros_like(costs), 0.0
    for i in range(len(costs) - 1, -1, -1):
        acc = costs[i] + gamma * (0.0 if ends[i] else acc)
        out[i] = acc
    return out


def cost_calibration(model: CQLLag, data: dict[str, np.ndarray]) -> dict[str, float]:
    """Mean cost-critic estimates on the dataset states against the data's empirical discounted cost-to-go.

    ``q_c_data``: ``max_i Q_ci(s, a_data)``; ``q_c_policy``: at the deterministic policy action (what the
    multiplier sees with ``lambda_states="batch"``, up to the policy's noise); ``cost_to_go``:
    :func:`discounted_cost_to_go`; the ``start_`` keys: the same on the episode-start states only (what the
    multiplier sees with ``lambda_states="initial"``).
    """
    obs, act = data["observations"].astype(np.float32), data["actions"].astype(np.float32)
    ends = np.logical_or(data["terminals"], data["timeouts"])
    start = np.concatenate([[True], ends[:-1]])
    critic = model.cost_critic()
    pi_act, _ = model.predict(obs, deterministic=True)
    q_data, q_pi, to_go = critic(obs, act), critic(obs, pi_act), discounted_cost_to_go(data, model.gamma)
    return {
        "q_c_data": float(np.mean(q_data)),
        "q_c_policy": float(np.mean(q_pi)),
        "cost_to_go": float(np.mean(to_go)),
        "start_q_c_data": float(np.mean(q_data[start])),
        "start_q_c_policy": float(np.mean(q_pi[start])),
        "start_cost_to_go": float(np.mean(to_go[start])),
        "limit_discounted": float(model.cost_limit_discounted),
    }


def train_offline(model: CQLLag, data: dict[str, np.ndarray], args: argparse.Namespace) -> None:
    """``--offline-steps`` updates, the first ``--offline-lambda-warmup`` with lambda frozen; lambda reads the
    policy's cost at ``--offline-lambda-states``."""
    model.learn_offline(
        data,
        args.offline_steps,
        progress_bar=args.progress,
        log_interval=1000,
        lambda_warmup_steps=min(args.offline_lambda_warmup, args.offline_steps),
        lambda_states=args.offline_lambda_states,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=["SafetyBallCircle-v0", "SafetyPointCircle1-v0"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--steps", type=int, default=100_000, help="env steps per online run")
    parser.add_argument("--chunk", type=int, default=5_000, help="checkpoint every this many env steps")
    parser.add_argument("--offline-steps", type=int, default=10_000, help="gradient steps of the offline run (0 = skip)")
    parser.add_argument("--offline-episodes", type=int, default=10, help="episodes per behaviour policy")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--n-actions", type=int, default=10)
    parser.add_argument("--alpha-cql", type=float, default=0.0, help="reward-side CQL weight online (0: plain SAC critic)")
    parser.add_argument("--beta-cql", type=float, default=0.1)
    parser.add_argument("--offline-alpha-cql", type=float, default=1.0)
    parser.add_argument("--offline-beta-cql", type=float, default=1.0)
    parser.add_argument("--offline-lambda-lr", type=float, default=None, help="default: --lambda-lr")
    parser.add_argument("--offline-lambda-init", type=float, default=None, help="default: --lambda-init")
    parser.add_argument("--offline-lambda-max", type=float, default=None, help="upper clip of lambda offline")
    parser.add_argument(
        "--offline-pid",
        nargs=3,
        type=float,
        default=None,
        metavar=("KP", "KI", "KD"),
        help="PID Lagrangian offline instead of dual ascent (on the discounted limit)",
    )
    parser.add_argument(
        "--offline-lambda-states",
        choices=("batch", "initial"),
        default="batch",
        help="states where lambda reads the policy's cost offline: replay batch or the dataset's episode starts",
    )
    parser.add_argument("--offline-tau", type=float, default=0.005, help="target-network Polyak rate offline")
    parser.add_argument(
        "--offline-cost-reduce",
        choices=("max", "mean"),
        default="max",
        help="offline: how the actor and lambda's estimate combine the twin cost critics",
    )
    parser.add_argument("--offline-bc-weight", type=float, default=0.0, help="offline behaviour-cloning weight on the actor")
    parser.add_argument(
        "--offline-normalise-actor-loss", action="store_true", help="offline actor loss (-Q_r + lambda Q_c) / (1 + lambda)"
    )
    parser.add_argument("--offline-lambda-warmup", type=int, default=0, help="offline steps with lambda frozen first")
    parser.add_argument("--offline-seed", type=int, default=None, help="seed of the offline learner (default: --seeds[0])")
    parser.add_argument(
        "--lambda-lr", type=float, default=None, help="dual step size (default: 3e-3 with --lambda-source critic, else 0.05)"
    )
    parser.add_argument(
        "--lambda-source",
        choices=("critic", "episode_cost", "deterministic_episode_cost"),
        default="critic",
        help="online: lambda reads the cost critic on replay batches, the measured cost of finished training episodes, "
        "or only that of the training episodes played by the deterministic policy (see --deterministic-every)",
    )
    parser.add_argument(
        "--deterministic-every",
        type=int,
        default=None,
        help="online CQLLag: every k-th training episode is played by the deterministic policy "
        "(default: 2 with --lambda-source deterministic_episode_cost, else none)",
    )
    parser.add_argument(
        "--deterministic-repeats", type=int, default=1, help="deterministic episodes per frozen copy of the actor"
    )
    parser.add_argument(
        "--gradient-steps",
        type=int,
        default=1,
        help="online CQLLag: gradient steps per env step (SAC keeps SB3's default of 1)",
    )
    parser.add_argument(
        "--select-best-deterministic",
        action="store_true",
        help="report the frozen copy with the best deterministic training episodes within the limit (the final "
        "policy's evaluation is listed too)",
    )
    parser.add_argument(
        "--normalise-actor-loss", action="store_true", help="online actor loss (-Q_r + lambda Q_c) / (1 + lambda)"
    )
    parser.add_argument(
        "--cost-reduce",
        choices=("max", "mean"),
        default="max",
        help="online: how the actor and lambda's estimate combine the twin cost critics",
    )
    parser.add_argument(
        "--cost-critic-policy",
        choices=("stochastic", "deterministic"),
        default="stochastic",
        help="online: the policy the cost critics evaluate (deterministic: the mean action, the evaluated policy)",
    )
    parser.add_argument(
        "--cost-gamma", type=float, default=None, help="online: discount of the cost critics (default: gamma, 0.99)"
    )
    parser.add_argument("--lambda-init", type=float, default=1.0)
    parser.add_argument("--lambda-max", type=float, default=None, help="online: upper clip of lambda (default: none)")
    parser.add_argument(
        "--lambda-error-clip", type=float, default=None, help="online: clip the multiplier's normalised error to [-c, c]"
    )
    parser.add_argument(
        "--lambda-lr-down", type=float, default=None, help="online: dual step size when lambda falls (default: --lambda-lr)"
    )
    parser.add_argument(
        "--actor-average-tau",
        type=float,
        default=None,
        help="online: evaluate an exponential moving average of the actor (rate per gradient step; default: none)",
    )
    parser.add_argument("--lambda-delay", type=int, default=0, help="online: env steps before lambda's first dual step")
    parser.add_argument(
        "--target-entropy",
        type=float,
        default=None,
        help="online CQLLag's entropy target (default: SAC's -dim(A)); lower is a less random training policy",
    )
    parser.add_argument(
        "--train-cost-limit",
        type=float,
        default=None,
        help=f"online: the limit CQLLag trains against (a margin below the evaluated {COST_LIMIT:g}); default: the same",
    )
    parser.add_argument(
        "--pid",
        nargs=3,
        type=float,
        metavar=("KP", "KI", "KD"),
        default=None,
        help="online: PID Lagrangian instead of dual ascent (with --lambda-source episode_cost, on the normalised error)",
    )
    parser.add_argument(
        "--algos",
        nargs="+",
        choices=("sac", "cqllag"),
        default=["sac", "cqllag"],
        help="online algorithms to train (e.g. one per process, then one run with both and --resume reports them)",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workdir", default="/tmp/cqllag_safety")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--output", default=str(RESULTS / "cqllag_safety.md"))
    args = parser.parse_args()
    if args.select_best_deterministic and not (
        args.lambda_source == "deterministic_episode_cost" or (args.deterministic_every or 0) > 0
    ):
        parser.error("--select-best-deterministic needs deterministic episodes: --deterministic-every k > 0")
    if args.lambda_lr is None:
        args.lambda_lr = 3e-3 if args.lambda_source == "critic" else 0.05
    torch.set_num_threads(args.threads)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    online: list[dict[str, Any]] = []
    models: dict[tuple[str, str, int], Any] = {}
    for env_id in args.envs:
        seeds = args.seeds if env_id.startswith("SafetyBall") else args.seeds[:1]
        for seed in seeds:
            for algo in args.algos:
                res = train_online(env_id, algo, seed, args, workdir)
                models[(env_id, algo, seed)] = res.pop("model")
                online.append({"env": env_id, "algo": algo, "seed": seed, **res})
                print(json.dumps({k: v for k, v in online[-1].items() if k != "tag"}), flush=True)

    offline: dict[str, Any] | None = None
    if args.offline_steps > 0 and any(e.startswith("SafetyBall") for e in args.envs):
        env_id = next(e for e in args.envs if e.startswith("SafetyBall"))
        seed = args.seeds[0]
        behaviour = [("random", None, 0.0)]
        for algo in ("sac", "cqllag"):
            m = models.get((env_id, algo, seed))
            if m is not None:
                behaviour += [(algo, m, 0.0), (algo, m, 0.5)]
        data, ep_stats, collect_s = load_or_collect_dataset(
            env_id, behaviour, args.offline_episodes, seed, workdir, reuse=args.resume
        )
        env, _ = make_env(env_id)
        pid = None if args.offline_pid is None else dict(zip(("kp", "ki", "kd"), args.offline_pid))
        model = CQLLag(
            "MlpPolicy",
            env,
            buffer_size=len(data["rewards"]) + 1,
            batch_size=args.batch_size,
            cost_limit=COST_LIMIT,
            alpha_cql=args.offline_alpha_cql,
            beta_cql=args.offline_beta_cql,
            cql_n_actions=args.n_actions,
            lambda_lr=args.lambda_lr if args.offline_lambda_lr is None else args.offline_lambda_lr,
            lambda_init=args.lambda_init if args.offline_lambda_init is None else args.offline_lambda_init,
            lambda_max=args.offline_lambda_max,
            pid_lagrangian=pid,
            cost_reduce=args.offline_cost_reduce,
            bc_weight=args.offline_bc_weight,
            normalise_actor_loss=args.offline_normalise_actor_loss,
            tau=args.offline_tau,
            policy_kwargs=dict(net_arch=[args.hidden, args.hidden]),
            seed=seed if args.offline_seed is None else args.offline_seed,
            device="cpu",
        )
        t0 = time.perf_counter()
        train_offline(model, data, args)
        train_s = time.perf_counter() - t0
        eval_env, _ = make_env(env_id)
        feasible = [e["return"] for e in ep_stats if e["cost"] <= COST_LIMIT]
        offline = {
            "env": env_id,
            "transitions": len(data["rewards"]),
            "behaviour": ep_stats,
            "best_feasible_behaviour_return": max(feasible) if feasible else None,
            "eval": evaluate(model, eval_env, args.eval_episodes, seed),
            "lambda": float(model.lagrange.value),
            "calibration": cost_calibration(model, data),
            "collect_s": collect_s,
            "train_s": train_s,
        }
        print(json.dumps({k: v for k, v in offline.items() if k != "behaviour"}), flush=True)

    write_report(args, online, offline, time.perf_counter() - t_start)


def write_report(
    args: argparse.Namespace, online: list[dict[str, Any]], offline: dict[str, Any] | None, total_s: float
) -> None:
    import stable_baselines3

    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name")),
        platform.processor(),
    )
    lines = [
        "# CQLLag safety benchmark",
        "",
        f"Command: `{' '.join([Path(sys.executable).name, *sys.argv])}`",
        "",
        f"Versions: python {platform.python_version()}, torch {torch.__version__}, "
        f"stable-baselines3 {stable_baselines3.__version__}, "
        f"gymnasium {gym.__version__}, numpy {np.__version__}.",
        f"Machine: {os.cpu_count()} CPUs ({cpu}), torch threads {args.threads}, "
        f"load average at the end {tuple(round(x, 2) for x in os.getloadavg())} "
        "(other jobs share this machine). Total wall-clock of this run: "
        f"{total_s / 60:.1f} min.",
        "",
        f"Settings: {args.steps} env steps per online run, nets {args.hidden}x{args.hidden}, batch {args.batch_size}, "
        f"{args.n_actions} CQL actions per proposal, online alpha_cql={args.alpha_cql}, beta_cql={args.beta_cql}, "
        f"lambda_lr={args.lambda_lr}, lambda_init={args.lambda_init}, lambda_source={args.lambda_source}, "
        f"cost_reduce={args.cost_reduce}, cost_critic_policy={args.cost_critic_policy}, cost_gamma={args.cost_gamma}, "
        f"lambda_max={args.lambda_max}, PID (kp, ki, kd)={args.pid}, "
        f"lambda_error_clip={args.lambda_error_clip}, lambda_lr_down={args.lambda_lr_down}, lambda_delay={args.lambda_delay}, "
        f"deterministic_every={args.deterministic_every}, deterministic_repeats={args.deterministic_repeats}, "
        f"select_best_deterministic={args.select_best_deterministic}, CQLLag gradient steps per env step="
        f"{args.gradient_steps}, "
        f"CQLLag target entropy={'auto' if args.target_entropy is None else args.target_entropy}, "
        f"normalise_actor_loss={args.normalise_actor_loss}, actor_average_tau={args.actor_average_tau}, "
        f"cost limit d={COST_LIMIT} per episode (trained against {args.train_cost_limit or COST_LIMIT:g}), "
        f"{args.eval_episodes} deterministic evaluation episodes.",
        "",
        "## Online",
        "",
        "| env | algo | seed | env steps | wall-clock (s) | eval return | eval cost | lambda | env built with |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in online:
        e = r["eval"]
        lam = f"{r['lambda']:.3f}" if "lambda" in r else "-"
        lines.append(
            f"| {r['env']} | {r['algo']} | {r['seed']} | {r['steps_done']} | {r['wall_s']:.0f} "
            f"| {e['return']:.1f} ± {e['return_std']:.1f} "
            f"| {e['cost']:.1f} ± {e['cost_std']:.1f} | {lam} | {r.get('env_built_with', '')} |"
        )
    for r in online:
        if "eval_live_actor" in r:
            f = r["eval_live_actor"]
            lines += [
                "",
                f"{r['env']} cqllag seed {r['seed']}: the table evaluates the averaged actor (actor_average_tau="
                f"{args.actor_average_tau}); the live actor's last iterate gives return {f['return']:.1f} ± "
                f"{f['return_std']:.1f}, cost {f['cost']:.1f} ± {f['cost_std']:.1f}.",
            ]
        if "eval_final" in r:
            f = r["eval_final"]
            final = (
                f"the final policy gives return {f['return']:.1f} ± {f['return_std']:.1f}, "
                f"cost {f['cost']:.1f} ± {f['cost_std']:.1f}"
            )
            best = r["best_deterministic"]
            if best is None:
                lines += ["", f"{r['env']} cqllag seed {r['seed']}: no deterministic training episode met the limit; {final}."]
            else:
                lines += [
                    "",
                    f"{r['env']} cqllag seed {r['seed']}: the table evaluates the frozen copy picked from the deterministic "
                    f"training episodes (env step {best['num_timesteps']}, return {best['return']:.1f}, cost "
                    f"{best['cost']:.1f} over {best['episodes']} episode(s)); {final}.",
                ]
    for r in online:
        if r.get("history"):
            steps = ", ".join(
                f"{h['steps']}: lambda {h['lambda']:.3f}"
                + (f", cost {h['train_ep_cost_last10']:.1f}" if h["train_ep_cost_last10"] is not None else "")
                + (
                    f", deterministic (last 5) return {h['det_ep_return_last5']:.1f} cost {h['det_ep_cost_last5']:.1f}"
                    if h.get("det_ep_cost_last5") is not None
                    else ""
                )
                for h in r["history"]
            )
            lines += ["", f"{r['env']} cqllag seed {r['seed']}, at each checkpoint (training episodes, last 10): {steps}."]
    lines += ["", "Targets (CQLLag vs SAC, same env and budget):", ""]
    for env_id in dict.fromkeys(r["env"] for r in online):
        c = [r["eval"] for r in online if r["env"] == env_id and r["algo"] == "cqllag"]
        s = [r["eval"] for r in online if r["env"] == env_id and r["algo"] == "sac"]
        if c and s:
            cost = float(np.mean([x["cost"] for x in c]))
            ratio = float(np.mean([x["return"] for x in c])) / max(1e-9, float(np.mean([x["return"] for x in s])))
            budget = (
                "the full 100k-step budget"
                if args.steps >= 100_000
                else f"a REDUCED budget of {args.steps} env steps (target budget: 100k)"
            )
            lines.append(
                f"- {env_id} ({len(c)} seed(s), {budget}): cost {cost:.1f} <= 25: {'met' if cost <= 25 else 'MISSED'}; "
                f"return ratio vs SAC {ratio:.2f} >= 0.70: {'met' if ratio >= 0.7 else 'MISSED'}."
            )
    if offline is not None:
        e, cal = offline["eval"], offline["calibration"]
        best = offline["best_feasible_behaviour_return"]
        lines += [
            "",
            "## Offline (BallCircle, dataset collected by this run)",
            "",
            f"{offline['transitions']} transitions from {len(offline['behaviour'])} behaviour episodes "
            f"(collection {offline['collect_s']:.0f} s); {args.offline_steps} gradient steps in {offline['train_s']:.0f} s; "
            f"alpha_cql={args.offline_alpha_cql}, beta_cql={args.offline_beta_cql}, "
            f"lambda_lr={args.lambda_lr if args.offline_lambda_lr is None else args.offline_lambda_lr}, "
            f"lambda_init={args.lambda_init if args.offline_lambda_init is None else args.offline_lambda_init}, "
            f"lambda_max={args.offline_lambda_max}, PID (kp, ki, kd)={args.offline_pid}, "
            f"tau={args.offline_tau}, lambda warm-up={args.offline_lambda_warmup} steps, "
            f"lambda states={args.offline_lambda_states}, cost reduce={args.offline_cost_reduce}, "
            f"normalised actor loss={args.offline_normalise_actor_loss}, bc weight={args.offline_bc_weight}, "
            f"learner seed={args.seeds[0] if args.offline_seed is None else args.offline_seed}"
            + (" (dataset loaded from the --workdir cache)." if offline["collect_s"] == 0.0 else "."),
            "",
            "| behaviour policy | episodes | mean return | mean cost |",
            "|---|---|---|---|",
        ]
        for name in dict.fromkeys(b["policy"] for b in offline["behaviour"]):
            eps = [b for b in offline["behaviour"] if b["policy"] == name]
            lines.append(
                f"| {name} | {len(eps)} | {np.mean([b['return'] for b in eps]):.1f} "
                f"| {np.mean([b['cost'] for b in eps]):.1f} |"
            )
        lines += [
            "",
            f"Offline CQLLag: return {e['return']:.1f} ± {e['return_std']:.1f}, cost {e['cost']:.1f} ± {e['cost_std']:.1f}, "
            f"lambda {offline['lambda']:.3f}.",
            "",
            "Cost-critic calibration on the dataset states (discounted scale): "
            f"max_i Q_ci(s, a_data) {cal['q_c_data']:.2f}, max_i Q_ci(s, pi(s)) {cal['q_c_policy']:.2f}, "
            f"empirical discounted cost-to-go of the data {cal['cost_to_go']:.2f}, "
            f"limit d_disc {cal['limit_discounted']:.2f}. "
            f"The same on the {len(offline['behaviour'])} episode-start states: {cal['start_q_c_data']:.2f}, "
            f"{cal['start_q_c_policy']:.2f}, {cal['start_cost_to_go']:.2f}.",
        ]
        if best is None:
            lines.append("- No behaviour episode met the cost limit, so the return target is undefined.")
        else:
            ratio = e["return"] / best if best > 0 else float("nan")
            lines.append(
                f"- Best behaviour episode within the limit: return {best:.1f}. "
                f"Target cost <= 25: {'met' if e['cost'] <= 25 else 'MISSED'}; "
                f"return >= 80% of it: ratio {ratio:.2f}, {'met' if ratio >= 0.8 else 'MISSED'}."
            )
    Path(args.output).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
