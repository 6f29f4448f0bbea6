"""Backup takeovers in the collected data, the critic of the cost under the backup (a' = backup(s')), and the
options of the lidar navigation backup that keep a momentum-driven robot from getting trapped."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from test_shield_scripted import PointEnv

from shieldgym.backup import LidarNavigationBackup
from shieldgym.shield_eval import ShieldEvalConfig, collect_transitions, prepare_shield


def _constant(value: float) -> Any:
    return lambda obs: np.array([value], np.float32)


def test_takeovers_hand_the_data_to_the_backup() -> None:
    # every step starts a takeover of exactly 3 steps: the backup acts throughout
    data = collect_transitions(
        PointEnv(horizon=9), _constant(0.5), 1, seed=0, backup=_constant(-0.25), takeover_prob=1.0, takeover_steps=(3, 3)
    )
    assert data["actions"][:, 0].tolist() == [-0.25] * 9
    assert data["from_backup"].tolist() == [1.0] * 9
    # no takeover: the noise-free task policy acts and nothing is marked as the backup's
    plain = collect_transitions(PointEnv(horizon=6), _constant(0.5), 2, seed=0, random_prob=0.0, noise_std=0.0)
    assert plain["actions"][:, 0].tolist() == [0.5] * 12
    assert plain["from_backup"].tolist() == [0.0] * 12


def test_takeover_lengths_and_fraction() -> None:
    data = collect_transitions(
        PointEnv(horizon=400),
        _constant(0.0),
        1,
        seed=3,
        random_prob=0.0,
        noise_std=0.0,
        backup=_constant(1.0),
        takeover_prob=0.05,
        takeover_steps=(4, 6),
    )
    flags = data["from_backup"].astype(int)
    assert (data["actions"][:, 0] == flags).all()  # the backup's action (1) exactly where it is flagged
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flags, [0]])))
    runs = edges[1::2] - edges[::2]
    # a takeover lasts 4-6 steps; one can start right after another ends, so a run is a sum of those
    assert runs.min() >= 4 and len(runs) >= 5
    assert all(any(r - k * 4 >= 0 and r <= k * 6 for k in range(1, r // 4 + 1)) for r in runs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(takeover_prob=0.5), "needs a backup"),
        (dict(takeover_prob=1.5, backup=_constant(0.0)), "takeover_prob"),
        (dict(takeover_prob=0.5, backup=_constant(0.0), takeover_steps=(5, 2)), "takeover_steps"),
        (dict(takeover_prob=0.5, backup=_constant(0.0), takeover_steps=(0, 2)), "takeover_steps"),
    ],
)
def test_takeover_bad_input(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        collect_transitions(PointEnv(horizon=3), _constant(0.0), 1, **kwargs)


def test_next_action_backup_fits_on_the_backups_actions(monkeypatch: pytest.MonkeyPatch) -> None:
    import shieldgym.critics.fit as fit

    seen: dict[str, np.ndarray] = {}
    real = fit.fit_cost_critic

    def spy(transitions: dict[str, np.ndarray], **kwargs: Any) -> Any:
        seen.update(transitions)
        return real(transitions, **kwargs)

    monkeypatch.setattr(fit, "fit_cost_critic", spy)
    config = ShieldEvalConfig(
        "Point",
        collect_episodes=4,
        random_prob=0.5,
        takeover_prob=0.2,
        takeover_steps=(2, 4),
        next_action="backup",
        backup="brake",
        threshold=0.5,
        fit_steps=5,
        batch_size=8,
        net_arch=(8,),
    )
    prepared = prepare_shield(config, _constant(0.6), make_env=lambda: PointEnv(horizon=10), progress=False)
    # a' is the brake backup's action (0) at every next state; the data's own next actions are not used
    assert seen["next_actions"].shape == (30, 1) and (seen["next_actions"] == 0.0).all()
    assert "from_backup" not in seen and "episode" not in seen
    assert prepared.threshold == 0.5 and prepared.n_transitions == 40
    with pytest.raises(ValueError, match="chooses its action with the critic"):
        prepare_shield(
            ShieldEvalConfig("Point", takeover_prob=0.1, backup="closest_safe"),
            _constant(0.6),
            make_env=PointEnv,
            progress=False,
        )


def _navigation(**kwargs: Any) -> LidarNavigationBackup:
    backup = LidarNavigationBackup(range(0, 4), range(4, 8), (8, 9), **kwargs)
    backup.bind(gym.spaces.Box(-1.0, 1.0, (2,), np.float32), None)
    return backup


def test_navigation_escape_from_inside_a_hazard() -> None:
    obs = np.zeros(10)
    obs[0] = 0.95  # inside a hazard (0.15 m < radius 0.2) at +45 deg (bin 0 of 4)
    # straight out is -135 deg: reverse at full force, the rear swung left towards it
    assert _navigation(escape=True)(obs).tolist() == pytest.approx([-1.0, 1.0])
    # between two hazards (+45 and -135 deg, both 0.15 m) the pushes cancel: across the line joining them,
    # on the goal's side; goal at -45 deg: leave towards -45 deg, forward with a full right turn
    obs[2], obs[7], obs[8] = 0.95, 0.5, 1.0  # (moving forward at 1 m/s changes nothing)
    assert _navigation(escape=True)(obs).tolist() == pytest.approx([1.0, -1.0])
    obs[7], obs[5] = 0.0, 0.5  # goal at +135 deg: leave towards +135 deg, reversing with the rear swung right
    assert _navigation(escape=True)(obs).tolist() == pytest.approx([-1.0, -1.0])
    # without the option the field acts as before: radial push plus swirl (no goal seen) point straight back
    single = np.zeros(10)
    single[0] = 0.95
    assert _navigation()(single).tolist() == pytest.approx([-1.0, 0.0])


def test_navigation_brake_force_and_cone() -> None:
    obs = np.zeros(10)
    obs[4] = 0.5  # goal at +45 deg
    obs[0], obs[8] = 0.9, 1.0  # hazard 0.3 m away at +45 deg (|cos| = 0.707); closing at 0.707 m/s: cannot stop
    default = _navigation()(obs)
    assert default[0] == -1.0  # the brake rule's full reverse force
    assert _navigation(brake_force=0.5)(obs)[0] == -0.5
    assert _navigation(brake_force=0.5, brake_cone=0.7)(obs)[0] == -0.5  # 0.707 > 0.7: inside the cone
    outside = _navigation(brake_force=0.5, brake_cone=0.75)(obs)  # outside the cone: the field's own action,
    still = obs.copy()
    still[8] = 0.0
    assert outside.tolist() == pytest.approx(_navigation()(still).tolist())  # the same as without the approach
    assert outside[0] != -0.5 and outside[1] == default[1]
    with pytest.raises(ValueError, match="brake_force"):
        _navigation(brake_force=0.0)
    with pytest.raises(ValueError, match="brake_cone"):
        _navigation(brake_cone=1.0)
    with pytest.raises(ValueError, match="wall_gap"):
        _navigation(wall_gap=-0.1)


def test_navigation_edge_fade_turns_the_swirl_off_at_the_edge() -> None:
    obs = np.zeros(10)
    obs[4] = 1.0  # goal at +45 deg
    obs[0] = 1.0 - 0.25 / 3.0  # hazard at +45 deg, 0.25 m (0.05 m from its edge): w = ((0.7 - 0.25) / 0.5)^2 = 0.81
    # swirl: D = g + 3 (2 x 0.81 t - 0.81 g) = -1.43 g + 4.86 t, 106 deg from the goal: reverse, turning hard
    assert _navigation(swirl=2.0)(obs).tolist() == pytest.approx([-0.8779489, -0.9984707], abs=1e-6)
    # faded to 1/3 at 0.05 m from the edge: D = -1.43 g + 1.62 t (131 deg): back straight away, barely turning
    assert _navigation(swirl=2.0, edge_fade=0.15)(obs).tolist() == pytest.approx([-0.9980653, -0.1244294], abs=1e-6)
    obs[0] = 1.0 - 0.4 / 3.0  # 0.2 m from the edge: beyond the fade, the same action
    assert _navigation(swirl=2.0, edge_fade=0.15)(obs).tolist() == pytest.approx(_navigation(swirl=2.0)(obs).tolist())


def test_navigation_wall_between_two_close_hazards() -> None:
    backup = LidarNavigationBackup(range(0, 8), range(8, 16), (16, 17), wall_gap=0.3, wall_swirl=0.0)
    backup.bind(gym.spaces.Box(-1.0, 1.0, (2,), np.float32), None)
    plain = LidarNavigationBackup(range(0, 8), range(8, 16), (16, 17))
    plain.bind(gym.spaces.Box(-1.0, 1.0, (2,), np.float32), None)
    obs = np.zeros(18)
    obs[8] = obs[15] = 1.0  # goal straight ahead (bins 0 and 7 of 8: +22.5 and -22.5 deg)
    obs[1] = obs[6] = 1.0 - 0.45 / 3.0  # hazards at +67.5 and -67.5 deg, 0.45 m: centres 0.83 m apart
    assert backup(obs).tolist() == pytest.approx(plain(obs).tolist())  # 0.83 >= 2 x 0.2 + 0.3: a passable gap
    obs[1] = obs[6] = 1.0 - 0.3 / 3.0  # 0.3 m each: centres 0.55 m apart, a wall 0.11 m ahead
    assert plain(obs)[0] > 0.5  # the plain field drives on between them
    assert backup(obs).tolist() == pytest.approx([-1.0, 0.0])  # pushed from the wall's middle: straight back


def test_the_critics_reference_backup_can_differ_from_the_shields() -> None:
    from shieldgym.shield_eval import _make_backup

    env = gym.make("Pendulum-v1")  # any env: only the config decides the backup
    config = ShieldEvalConfig(
        "SafetyPointGoal1-v0",
        backup="lidar_navigation",
        backup_kwargs=(("swirl", 2.0), ("brake_force", 0.5)),
        critic_backup_kwargs=(("swirl", 1.0),),
    )
    shield_backup = _make_backup(config, env)
    reference = _make_backup(config, env, config.critic_backup_kwargs)
    assert (shield_backup.swirl, shield_backup.brake_force) == (2.0, 0.5)
    assert (reference.swirl, reference.brake_force) == (1.0, 1.0)
    env.close()


def test_point_goal_alternative_settings_override_the_default() -> None:
    from shieldgym.backup import LidarNavigationBackup, LidarPlanningBackup
    from shieldgym.shield_eval import (
        POINT_GOAL_BACKUP_CRITIC,
        POINT_GOAL_BRANCHED,
        POINT_GOAL_NAVIGATION,
        SHIELD_CONFIGS,
        _make_backup,
        shield_config,
    )

    default = shield_config("SafetyPointGoal1-v0")
    alternative = shield_config("SafetyPointGoal1-v0", **POINT_GOAL_BACKUP_CRITIC)
    assert (default.next_action, default.threshold, default.takeover_prob, default.backup) == (
        "data",
        0.15,
        0.0,
        "lidar_planning",
    )
    assert (alternative.next_action, alternative.threshold, alternative.takeover_prob) == ("backup", 0.1, 0.03)
    # everything the alternative does not set comes from the default
    for key in set(SHIELD_CONFIGS["SafetyPointGoal1-v0"]) - set(POINT_GOAL_BACKUP_CRITIC):
        assert getattr(alternative, key) == getattr(default, key), key
    env = gym.make("Pendulum-v1")
    assert isinstance(_make_backup(default, env), LidarPlanningBackup)
    # every alternative names the navigation backup its options belong to
    for settings in (POINT_GOAL_NAVIGATION, POINT_GOAL_BACKUP_CRITIC, POINT_GOAL_BRANCHED):
        assert isinstance(_make_backup(shield_config("SafetyPointGoal1-v0", **settings), env), LidarNavigationBackup)
    backup = _make_backup(alternative, env)
    assert (backup.swirl, backup.brake_cone, backup.escape) == (2.0, 0.7, True)
    reference = _make_backup(alternative, env, alternative.critic_backup_kwargs)
    assert (reference.swirl, reference.brake_cone, reference.escape) == (1.0, 0.0, False)
    env.close()
