"""A shield in a fixed-rate control loop, as on a real robot: no Gymnasium env, one check per tick.

The robot here is simulated (a 1-D cart: position x, velocity command a), the safety critic is a
plain function (risk = distance past the safe zone after the step), and the loop shows the parts a
hardware deployment needs: a latency budget per check (a slow critic is treated as a fault), a fixed
safe action used if the backup itself fails, and an append-only intervention log that survives a
crash (flushed and fsynced per line).

Run: python examples/shield_hardware_loop.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

from shieldgym.backup import MinRiskBackup
from shieldgym.wrappers.shield import InterventionLog, Shield

RATE_HZ = 50.0
SAFE_ZONE = 1.0


class Cart:
    """Stand-in for the robot driver: read_state() and send_command()."""

    def __init__(self) -> None:
        self.x = 0.0

    def read_state(self) -> np.ndarray:
        return np.array([self.x], dtype=np.float32)

    def send_command(self, velocity: np.ndarray) -> None:
        self.x += 0.1 * float(velocity[0])


def critic(obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """Risk = how far outside the safe zone the cart would be after the step (0 inside)."""
    return np.maximum(np.abs(obs[:, 0] + 0.1 * actions[:, 0]) - SAFE_ZONE, 0.0)


def task_policy(obs: np.ndarray, t: int) -> np.ndarray:
    """A policy that wants to go far to the right (it ignores the safe zone)."""
    return np.array([1.0], dtype=np.float32)


def main() -> None:
    log_path = Path(tempfile.mkdtemp()) / "interventions.jsonl"
    shield = Shield(
        critic,
        MinRiskBackup(n_candidates=16, select="closest_safe", seed=0),  # the safe action closest to the proposal
        threshold=0.0,
        action_space=gym.spaces.Box(-1.0, 1.0, (1,), np.float32),
        safe_action=np.zeros(1, np.float32),  # used if the backup fails
        max_latency_s=0.005,  # a check slower than 5 ms counts as a fault: the backup acts
        log_path=log_path,
        fsync=True,
    )
    cart = Cart()
    period = 1.0 / RATE_HZ
    next_tick = time.perf_counter()
    for t in range(50):
        obs = cart.read_state()
        executed, info = shield.filter(obs, task_policy(obs, t))
        cart.send_command(executed)
        if info["intervened"] and t % 10 == 0:
            proposed = info["proposed_action"][0]
            print(f"t={t:2d} x={obs[0]:+.3f} proposed={proposed:+.2f} executed={executed[0]:+.3f} ({info['reason']})")
        next_tick += period
        time.sleep(max(0.0, next_tick - time.perf_counter()))
    shield.close()
    records = InterventionLog.read(log_path)
    print(f"final x = {cart.x:.3f} (safe zone |x| <= {SAFE_ZONE}); {len(records)} interventions logged to {log_path}")
    print(f"last check took {shield.last_latency_s * 1e6:.0f} us")


if __name__ == "__main__":
    main()
