"""Train SAC inside a shield on SafetyBallCircle-v0 and learn from the executed actions.

The ball is rewarded for running clockwise around a circle of radius 7 that crosses two boundaries at
|x| = 6 (a cost of 1 for every step beyond). The critic here is a hand-written short-horizon predictor
(where will x be in ~1 s if this force is applied?); swap in a fitted one with
``shieldgym.fit_cost_critic`` (see docs/shield.md). ``ShieldReplayBuffer`` makes SAC store the action the
env actually executed, and a small penalty on vetoed steps teaches the policy to propose acceptable ones.

Run: python examples/shield_sb3.py [--steps 3000]
"""

from __future__ import annotations

import argparse

import numpy as np
from stable_baselines3 import SAC

import shieldgym
from shieldgym.backup import MinRiskBackup
from shieldgym.evaluation import rollout, summarize
from shieldgym.wrappers.shield_sb3 import ShieldReplayBuffer

BOUND = 6.0


def boundary_risk(obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """Predicted distance past the boundary ~1 s ahead: obs holds 0.1 x and 0.2 vx; the force adds ~3 m/s^2."""
    x, vx = 10.0 * obs[:, 0], 5.0 * obs[:, 2]
    x_ahead = x + 0.8 * vx + 1.5 * actions[:, 0]
    return np.maximum(np.abs(x_ahead) - (BOUND - 0.5), 0.0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=3000)
    args = parser.parse_args()

    env = shieldgym.CostEpisodeStatistics(
        shieldgym.ShieldWrapper(
            shieldgym.make("SafetyBallCircle-v0"),
            boundary_risk,
            MinRiskBackup(n_candidates=32, select="closest_safe", seed=0),
            threshold=0.0,
        )
    )
    model = SAC(
        "MlpPolicy",
        env,
        replay_buffer_class=ShieldReplayBuffer,  # store the executed action, not the vetoed proposal
        replay_buffer_kwargs=dict(intervention_penalty=0.05),
        learning_starts=500,
        seed=0,
        verbose=0,
    )
    model.learn(args.steps, progress_bar=False)

    def policy(obs: np.ndarray) -> np.ndarray:
        return model.predict(obs, deterministic=True)[0]

    shielded = summarize(rollout(env, policy, 3, seed=100))
    bare = summarize(rollout(shieldgym.make("SafetyBallCircle-v0"), policy, 3, seed=100))
    print(
        f"after {args.steps} steps: shielded return {shielded.ret_mean:.1f}, cost {shielded.cost_mean:.1f}, "
        f"shield rate {shielded.shield_rate:.1%}; "
        f"same policy unshielded: return {bare.ret_mean:.1f}, cost {bare.cost_mean:.1f}"
    )
    costs = env.get_wrapper_attr("cost_queue")  # CostEpisodeStatistics keeps the last episodes' costs
    print(f"training episodes: {len(costs)}, cost of the last one: {costs[-1] if costs else float('nan'):.1f}")


if __name__ == "__main__":
    main()
