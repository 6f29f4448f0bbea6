"""Train CQLLag on Bullet-Safety-Gym's SafetyBallCircle-v0 under a cost limit, then reuse its cost critic.

    python examples/cqllag_ballcircle.py --steps 20000

The ball is rewarded for circling fast and pays a cost of 1 per step outside the safe band; CQLLag keeps the
expected episode cost under ``--cost-limit`` with a Lagrange multiplier on its (conservative) cost critic.
"""

from __future__ import annotations

import argparse

import numpy as np

import shieldgym
from shieldgym.algos.cqllag import CQLLag


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--cost-limit", type=float, default=25.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", default="/tmp/cqllag_ballcircle.zip")
    args = parser.parse_args()

    env = shieldgym.make("SafetyBallCircle-v0")  # info["cost"] on every step
    model = CQLLag(
        "MlpPolicy",
        env,
        cost_limit=args.cost_limit,  # per episode; converted to the critic's discounted scale
        alpha_cql=0.0,  # online: plain SAC reward critic ...
        beta_cql=0.1,  # ... and a mildly pessimistic cost critic
        lambda_init=1.0,
        lambda_lr=3e-3,
        policy_kwargs=dict(net_arch=[64, 64]),
        seed=args.seed,
        verbose=1,
    )
    model.learn(args.steps, progress_bar=True)
    model.save(args.save)

    # Evaluate: return and cost of 5 deterministic episodes.
    returns, costs = [], []
    for ep in range(5):
        obs, _ = env.reset(seed=1000 + ep)
        done, ret, cost = False, 0.0, 0.0
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, info = env.step(action)
            ret, cost, done = ret + float(reward), cost + info["cost"], terminated or truncated
        returns.append(ret)
        costs.append(cost)
    lam = float(model.lagrange.value)
    print(f"return {np.mean(returns):.1f}, cost {np.mean(costs):.1f} (limit {args.cost_limit}), lambda {lam:.3f}")

    # The learnt cost critic is the shield's risk function: critic(obs_batch, action_batch) -> (B,).
    risk = model.cost_critic()
    obs, _ = env.reset(seed=0)
    print("Q_c of the policy's first action:", risk(obs[None], model.predict(obs, deterministic=True)[0][None]))
    # Veto actions whose discounted-cost estimate exceeds the (discounted) limit; the default backup takes over.
    shielded = shieldgym.ShieldWrapper(env, risk, threshold=model.cost_limit_discounted)
    obs, _ = shielded.reset(seed=0)
    obs, reward, terminated, truncated, info = shielded.step(model.predict(obs, deterministic=True)[0])
    print("shield:", info["shield"])


if __name__ == "__main__":
    main()
