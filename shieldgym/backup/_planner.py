"""The rollout-and-score kernel of :class:`~shieldgym.backup.planning.LidarPlanningBackup`.

Compiled with numba when it is installed (the optional ``fast`` extra; cached on disk), plain Python
otherwise (the same results, about a hundred times slower).

:func:`navigation_grid` is the cost-to-go to the goal around the hazards: Dijkstra's algorithm on a square
grid of cells (8-connected, step lengths 1 and sqrt 2 cells) from the goal's cell, with every cell whose
centre lies within ``blocked`` of a hazard removed. :func:`plan_scores` rolls each candidate out and scores
it on the progress along that cost-to-go, so a hazard between the robot and the goal is driven around,
not stopped in front of.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from typing import Any

import numpy as np

try:
    import numba

    _jit: Callable[[Any], Any] = numba.njit(cache=True, nogil=True)
except ImportError:  # pragma: no cover - exercised only without the fast extra

    def _jit(fn: Any) -> Any:
        return fn


__all__ = ["heading_control", "navigation_grid", "plan_scores"]


@_jit
def heading_control(psi: float, heading: float, thrust: float, turn_gain: float, align: float) -> tuple[float, float]:
    """``(force, rotation)`` that turn ``heading`` towards ``psi`` (radians): ``rotation = clip(turn_gain * error, -1,
    1)`` with the error wrapped into ``(-pi, pi]``, and ``force = thrust`` once ``cos(error) >= align`` (0 before)."""
    err = math.pi - (math.pi - (psi - heading)) % (2.0 * math.pi)
    rotation = min(max(turn_gain * err, -1.0), 1.0)
    return (thrust if math.cos(err) >= align else 0.0), rotation


@_jit
def navigation_grid(hazards: np.ndarray, goal: np.ndarray, blocked: float, half: float, cell: float) -> np.ndarray:
    """Cost-to-go (metres) from each cell of the ``[-half, half]^2`` grid to ``goal``; ``inf`` where blocked
    or cut off. The goal's own cell is never blocked."""
    n = math.ceil(2.0 * half / cell)
    dist = np.full((n, n), np.inf)
    free = np.ones((n, n), dtype=np.bool_)
    for i in range(n):
        x = -half + (i + 0.5) * cell
        for j in range(n):
            y = -half + (j + 0.5) * cell
            for h in range(hazards.shape[0]):
                if (x - hazards[h, 0]) ** 2 + (y - hazards[h, 1]) ** 2 < blocked * blocked:
                    free[i, j] = False
                    break
    gi = min(max(int((goal[0] + half) / cell), 0), n - 1)
    gj = min(max(int((goal[1] + half) / cell), 0), n - 1)
    free[gi, gj] = True
    dist[gi, gj] = 0.0
    heap = [(0.0, gi * n + gj)]
    diag = math.sqrt(2.0) * cell
    while len(heap) > 0:
        d, k = heapq.heappop(heap)
        i, j = k // n, k % n
        if d > dist[i, j]:
            continue
        for di in range(-1, 2):
            for dj in range(-1, 2):
                if di == 0 and dj == 0:
                    continue
                a, b = i + di, j + dj
                if a < 0 or b < 0 or a >= n or b >= n or not free[a, b]:
                    continue
                nd = d + (diag if di != 0 and dj != 0 else cell)
                if nd < dist[a, b]:
                    dist[a, b] = nd
                    heapq.heappush(heap, (nd, a * n + b))
    return dist


@_jit
def _cost_to_go(grid: np.ndarray, x: float, y: float, goal: np.ndarray, half: float, cell: float) -> float:
    """Cost-to-go at ``(x, y)``: the least ``grid[c] + |(x, y) - centre(c)|`` over the 3x3 cells around it; the
    straight-line distance plus ``2 half`` where none of them is reachable (outside the grid or boxed in)."""
    n = grid.shape[0]
    ci, cj = math.floor((x + half) / cell), math.floor((y + half) / cell)
    best = np.inf
    for a in range(ci - 1, ci + 2):
        for b in range(cj - 1, cj + 2):
            if 0 <= a < n and 0 <= b < n and np.isfinite(grid[a, b]):
                cx, cy = -half + (a + 0.5) * cell, -half + (b + 0.5) * cell
                best = min(best, grid[a, b] + math.sqrt((x - cx) ** 2 + (y - cy) ** 2))
    if not np.isfinite(best):
        best = math.sqrt((x - goal[0]) ** 2 + (y - goal[1]) ** 2) + 2.0 * half
    return best


@_jit
def plan_scores(
    hazards: np.ndarray,
    goal: np.ndarray,
    velocity: np.ndarray,
    yaw_rate: float,
    psi: np.ndarray,
    thrust: np.ndarray,
    model: np.ndarray,
    limits: np.ndarray,
) -> np.ndarray:
    """Score (higher is better) of each candidate ``(psi[k], thrust[k])``.

    ``model = (dt, decay, thrust_gain, force_saturation, yaw_decay, yaw_gain, turn_gain, align, horizon,
    brake_steps)``; ``limits = (radius, clearance, collision_weight, goal_radius, half, cell)``. ``goal`` holds
    NaN when no goal is seen: the score is then the drive's displacement along the robot's heading.
    """
    dt, decay, gain, sat = model[0], model[1], model[2], model[3]
    yaw_decay, yaw_gain, turn_gain, align = model[4], model[5], model[6], model[7]
    horizon, brake_steps = int(model[8]), int(model[9])
    radius, clearance, weight, goal_radius, half, cell = limits[0], limits[1], limits[2], limits[3], limits[4], limits[5]
    has_goal = np.isfinite(goal[0]) and np.isfinite(goal[1])
    grid = np.zeros((1, 1))
    start = 0.0
    if has_goal:
        grid = navigation_grid(hazards, goal, radius + clearance, half, cell)
        start = _cost_to_go(grid, 0.0, 0.0, goal, half, cell)
    keep = radius + clearance
    scores = np.empty(psi.shape[0])
    for k in range(psi.shape[0]):
        x, y, vx, vy, heading, yaw = 0.0, 0.0, velocity[0], velocity[1], 0.0, yaw_rate
        intrusion = 0.0
        reached = -1
        end_x, end_y = 0.0, 0.0
        for t in range(horizon + brake_steps):
            if t < horizon:
                force, rotation = heading_control(psi[k], heading, thrust[k], turn_gain, align)
            else:  # brake: against the velocity's component along the heading, heading held
                along = vx * math.cos(heading) + vy * math.sin(heading)
                force = -min(max(along / (2.0 * gain), -1.0), 1.0)
                rotation = 0.0
            yaw = yaw_decay * yaw + yaw_gain * rotation
            heading += yaw * dt
            accel = gain * min(max(force / sat, -1.0), 1.0)
            vx = decay * vx + accel * math.cos(heading)
            vy = decay * vy + accel * math.sin(heading)
            x += vx * dt
            y += vy * dt
            for h in range(hazards.shape[0]):
                gap = math.sqrt((x - hazards[h, 0]) ** 2 + (y - hazards[h, 1]) ** 2) - keep
                if gap < 0.0:
                    intrusion -= gap
            if t < horizon:
                end_x, end_y = x, y
                if has_goal and reached < 0 and (x - goal[0]) ** 2 + (y - goal[1]) ** 2 <= goal_radius * goal_radius:
                    reached = t
        if has_goal:
            if reached >= 0:
                score = start + 1.0 - reached / (horizon + 1.0)  # reached: earlier is better
            else:
                score = start - _cost_to_go(grid, end_x, end_y, goal, half, cell)
        else:
            score = end_x
        scores[k] = score - weight * intrusion
    return scores
