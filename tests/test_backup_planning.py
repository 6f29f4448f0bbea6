"""LidarPlanningBackup: lidar decoding, the cost-to-go grid, the rollouts and the chosen actions."""

from __future__ import annotations

import importlib.util
import math

import gymnasium as gym
import numpy as np
import pytest

from shieldgym.backup import LidarPlanningBackup
from shieldgym.backup._planner import navigation_grid, plan_scores
from shieldgym.backup.planning import decode_lidar

BOX = gym.spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)
N_BINS = 16


def pseudo_lidar(points: list[tuple[float, float]], n: int = N_BINS, max_dist: float = 3.0) -> np.ndarray:
    """Safety-Gymnasium's aliased pseudo-lidar of robot-frame points (the formula of its base task)."""
    obs = np.zeros(n)
    size = 2.0 * math.pi / n
    for x, y in points:
        dist, angle = math.hypot(x, y), math.atan2(y, x) % (2.0 * math.pi)
        b = int(angle / size)
        sensor = max(0.0, max_dist - dist) / max_dist
        alias = (angle - b * size) / size
        obs[b] = max(obs[b], sensor)
        obs[(b + 1) % n] = max(obs[(b + 1) % n], alias * sensor)
        obs[(b - 1) % n] = max(obs[(b - 1) % n], (1 - alias) * sensor)
    return obs


def observation(hazards: list[tuple[float, float]], goal: tuple[float, float] | None, velocity=(0.0, 0.0), yaw=0.0):
    """A flat observation laid out as the backup below reads it: hazard lidar, goal lidar, velocity, yaw rate."""
    return np.concatenate(
        [pseudo_lidar(hazards), pseudo_lidar([goal] if goal is not None else []), np.asarray(velocity, float), [yaw]]
    )


def make_backup(**kw) -> LidarPlanningBackup:
    backup = LidarPlanningBackup(range(0, 16), range(16, 32), (32, 33), 34, **kw)
    backup.bind(BOX, None)
    return backup


def test_decode_lidar_recovers_separated_objects_exactly() -> None:
    points = [(1.2, 0.4), (-0.5, 1.1), (0.3, -2.0), (-1.7, -0.9)]
    decoded = decode_lidar(pseudo_lidar(points), 3.0)
    order = np.argsort(np.arctan2(decoded[:, 1], decoded[:, 0]) % (2 * np.pi))
    expected = np.array(points)[np.argsort(np.arctan2([p[1] for p in points], [p[0] for p in points]) % (2 * np.pi))]
    np.testing.assert_allclose(decoded[order], expected, atol=1e-9)
    assert decode_lidar(np.zeros(N_BINS), 3.0).shape == (0, 2)


def test_decode_lidar_reads_the_alias_from_the_neighbour_another_object_did_not_raise() -> None:
    # two objects two bins apart: the bin between them is raised by both; each is still decoded exactly
    size = 2 * np.pi / N_BINS
    a = (1.0 * np.cos(0.3 * size), 1.0 * np.sin(0.3 * size))  # bin 0, alias 0.3
    b = (0.8 * np.cos(2.6 * size), 0.8 * np.sin(2.6 * size))  # bin 2, alias 0.6
    decoded = decode_lidar(pseudo_lidar([a, b]), 3.0)
    assert len(decoded) == 2
    np.testing.assert_allclose(sorted(decoded.tolist()), sorted([list(a), list(b)]), atol=1e-9)


def test_navigation_grid_is_the_octile_distance_and_goes_around_blocked_cells() -> None:
    empty = np.zeros((0, 2))
    grid = navigation_grid(empty, np.array([0.1, 0.1]), 0.2, 0.5, 0.25)  # 4 x 4 cells, goal in cell (2, 2)
    assert grid.shape == (4, 4) and grid[2, 2] == 0.0
    assert grid[0, 0] == pytest.approx(2 * math.sqrt(2) * 0.25)
    assert grid[0, 2] == pytest.approx(0.5) and grid[3, 0] == pytest.approx(math.sqrt(2) * 0.25 + 0.25)
    # a hazard on the straight line from the left edge to the goal: its cells are blocked, the path bends
    half, cell = 1.0, 0.1
    goal = np.array([0.85, 0.05])
    free = navigation_grid(empty, goal, 0.3, half, cell)
    walled = navigation_grid(np.array([[0.0, 0.0]]), goal, 0.3, half, cell)
    start = (0, 10)  # cell centre (-0.95, 0.05)
    assert np.isinf(walled[10, 10]) and np.isinf(walled[12, 9])
    assert free[start] == pytest.approx(1.8)
    assert walled[start] > free[start] + 0.1
    assert np.isfinite(walled[start])


def test_plan_scores_compiled_and_pure_python_agree() -> None:
    backup = make_backup()
    obs = observation([(0.7, 0.05), (0.9, -0.5)], (1.8, 0.1), velocity=(0.4, 0.1), yaw=0.3)
    hazards, goal = backup.decode(obs)
    args = (hazards, goal, obs[32:34].copy(), 0.3, backup.psi, backup.thrust, backup._model, backup._limits)
    compiled = plan_scores(*args)
    python = getattr(plan_scores, "py_func", plan_scores)(*args)
    np.testing.assert_allclose(compiled, python, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(backup.scores(obs), compiled)


def test_drives_straight_at_a_goal_with_nothing_in_the_way() -> None:
    backup = make_backup()
    action = backup(observation([], (1.5, 0.0)))
    assert action.dtype == np.float32 and action.tolist() == [1.0, 0.0]
    # a goal on the left: turn towards it before pushing (cos of the 90-degree error is below align)
    left = backup(observation([], (0.0, 1.5)))
    assert left.tolist() == [0.0, 1.0]


def test_goes_around_a_hazard_between_the_robot_and_the_goal() -> None:
    backup = make_backup()
    obs = observation([(0.6, 0.0)], (1.5, 0.0))
    scores = backup.scores(obs)
    straight = int(np.flatnonzero((backup.psi == 0.0) & (backup.thrust == 1.0))[0])
    best = int(np.argmax(scores))
    assert scores[straight] < scores[best]
    assert backup.psi[best] != 0.0 and backup.thrust[best] == 1.0  # drives off to a side, not straight or coasting
    action = backup(obs)
    assert action[1] != 0.0  # turns away from the straight line
    # the chosen candidate keeps clear of the hazard: no intrusion penalty (its score is its goal progress, >= 0)
    assert scores[best] > 0.0


def test_brakes_instead_of_running_into_a_hazard_ahead() -> None:
    # moving at 1.2 m/s straight at a hazard 0.55 m ahead, goal behind it: the best plan does not push forward
    backup = make_backup()
    action = backup(observation([(0.55, 0.0)], (2.0, 0.0), velocity=(1.2, 0.0)))
    assert action[0] <= 0.0


def test_no_goal_in_sight_keeps_moving_away_from_hazards() -> None:
    backup = make_backup()
    action = backup(observation([(-0.5, 0.0)], None))
    assert action.tolist() == [1.0, 0.0]  # the hazard is behind: straight ahead


def test_bad_input() -> None:
    with pytest.raises(ValueError, match=">= 3 bins"):
        LidarPlanningBackup(range(2), range(2, 18), (18, 19))
    with pytest.raises(ValueError, match="velocity_index"):
        LidarPlanningBackup(range(16), range(16, 32), (32,))
    with pytest.raises(ValueError, match="horizon must be an integer >= 1"):
        LidarPlanningBackup(range(16), range(16, 32), (32, 33), horizon=0)
    with pytest.raises(ValueError, match="thrusts"):
        LidarPlanningBackup(range(16), range(16, 32), (32, 33), thrusts=(2.0,))
    with pytest.raises(ValueError, match="clearance"):
        LidarPlanningBackup(range(16), range(16, 32), (32, 33), clearance=-0.1)
    with pytest.raises(ValueError, match="grid_cell"):
        LidarPlanningBackup(range(16), range(16, 32), (32, 33), grid_cell=0.0)
    with pytest.raises(TypeError, match="1-D Box"):
        LidarPlanningBackup(range(16), range(16, 32), (32, 33)).bind(gym.spaces.Discrete(3), None)
    with pytest.raises(RuntimeError, match="not bound"):
        LidarPlanningBackup(range(16), range(16, 32), (32, 33))(np.zeros(35))
    obs = observation([], (1.0, 0.0))
    obs[3] = np.nan
    with pytest.raises(ValueError, match="non-finite observation"):
        make_backup()(obs)


@pytest.mark.skipif(importlib.util.find_spec("safety_gymnasium") is None, reason="safety-gymnasium not installed")
@pytest.mark.parametrize("seed", [9, 10, 22])
def test_on_point_goal_it_reaches_goals_without_cost_where_the_task_policy_pays(seed: int) -> None:
    import shieldgym
    from shieldgym.shield_eval import goal_seeking_policy

    env = shieldgym.make("SafetyPointGoal1-v0")
    backup = LidarPlanningBackup(range(28, 44), range(12, 28), (3, 4), 8)
    backup.bind(env.action_space, None)
    totals = {}
    for name, policy in (("task", goal_seeking_policy), ("planner", backup)):
        obs, _ = env.reset(seed=seed)
        cost, goals = 0.0, 0
        for _ in range(300):
            obs, _, _, _, info = env.step(policy(obs))
            cost += info["cost"]
            goals += bool(info.get("goal_met", False))
        totals[name] = (cost, goals)
    env.close()
    assert totals["task"][0] > 30  # the goal-seeking policy drives through hazards on these seeds
    assert totals["planner"] == (0.0, 3)  # the planner reaches at least as many goals in 300 steps, without cost
