"""The Lagrange multipliers of CQLLag on scripted cost sequences (exact values)."""

from __future__ import annotations

import pytest
import torch

from shieldgym.algos.cqllag import LagrangeMultiplier, PIDLagrangeMultiplier, discounted_cost_limit


def run(lag: LagrangeMultiplier, costs: list[float]) -> list[float]:
    return [float(lag.update(c)) for c in costs]


def test_dual_ascent_rises_while_violated_and_falls_to_zero_when_safe() -> None:
    lag = LagrangeMultiplier(limit=1.0, lr=0.5)
    # cost 3 > 1: +1 per step; cost 0 < 1: -0.5 per step, projected at 0
    assert run(lag, [3.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0]) == [1.0, 2.0, 1.5, 1.0, 0.5, 0.0, 0.0]


def test_dual_ascent_at_the_limit_is_stationary_and_max_value_clips() -> None:
    lag = LagrangeMultiplier(limit=2.0, lr=0.25, init=0.5, max_value=1.0)
    assert run(lag, [2.0, 2.0, 10.0, 10.0]) == [0.5, 0.5, 1.0, 1.0]


def test_error_clip_bounds_each_step_both_ways() -> None:
    lag = LagrangeMultiplier(limit=1.0, lr=0.5, error_clip=2.0)
    # errors 9 -> 2, 0.5 -> 0.5, -1 -> -1, -5 (cost -4) -> -2: steps +1, +0.25, -0.5, -1
    assert run(lag, [10.0, 1.5, 0.0, -4.0]) == [1.0, 1.25, 0.75, 0.0]
    assert "error_clip=2.0" in repr(lag)


def test_lr_down_sets_the_size_of_the_falling_steps_only() -> None:
    lag = LagrangeMultiplier(limit=1.0, lr=0.5, lr_down=2.0)
    # errors +2, +1: steps +1, +0.5; errors -1: steps -2 (projected at 0); then up again at lr
    assert run(lag, [3.0, 2.0, 0.0, 3.0, 0.5, 0.0]) == [1.0, 1.5, 0.0, 1.0, 0.0, 0.0]
    tensor = LagrangeMultiplier(limit=1.0, lr=0.5, lr_down=2.0)
    assert [float(tensor.update(torch.tensor(c))) for c in [3.0, 2.0, 0.0, 3.0, 0.5, 0.0]] == run(
        LagrangeMultiplier(limit=1.0, lr=0.5, lr_down=2.0), [3.0, 2.0, 0.0, 3.0, 0.5, 0.0]
    )
    assert LagrangeMultiplier(limit=1.0, lr=0.5).lr_down == 0.5 and "lr_down=2.0" in repr(lag)


def test_tensor_updates_match_float_updates() -> None:
    a, b = LagrangeMultiplier(limit=1.0, lr=0.1), LagrangeMultiplier(limit=1.0, lr=0.1)
    costs = [4.0, 0.2, 3.5, 0.0]
    assert run(a, costs) == pytest.approx([float(b.update(torch.tensor(c, dtype=torch.float32))) for c in costs], abs=1e-6)


def test_pid_lagrangian_exact_values() -> None:
    lag = PIDLagrangeMultiplier(limit=1.0, kp=0.5, ki=0.1, kd=1.0)
    # k=1: delta 2, I 2, D 0 (first)        -> 1.0 + 0.2       = 1.2
    # k=2: delta 3, I 5, D = 4 - 3 = 1      -> 1.5 + 0.5 + 1.0 = 3.0
    # k=3: delta 1, I 6, D = max(0, 2 - 4)  -> 0.5 + 0.6       = 1.1
    # k=4: delta -1, I 5                    -> -0.5 + 0.5      = 0.0
    # k=5: delta -1, I 4                    -> -0.5 + 0.4 < 0  -> 0.0
    assert run(lag, [3.0, 4.0, 2.0, 0.0, 0.0]) == pytest.approx([1.2, 3.0, 1.1, 0.0, 0.0], abs=1e-12)
    assert float(lag.integral) == pytest.approx(4.0)


def test_pid_with_only_integral_gain_is_dual_ascent() -> None:
    costs = [3.0, 3.0, 0.5, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0]
    plain = run(LagrangeMultiplier(limit=1.0, lr=0.2), costs)
    pid = run(PIDLagrangeMultiplier(limit=1.0, ki=0.2), costs)
    assert pid == pytest.approx(plain, abs=1e-12)
    assert plain[-1] == 0.0 and max(plain) == pytest.approx(0.8)


def test_state_round_trips_through_state_dict() -> None:
    lag = PIDLagrangeMultiplier(limit=1.0, kp=0.5, ki=0.1, kd=1.0, ema_decay=0.5)
    run(lag, [3.0, 4.0])
    copy = PIDLagrangeMultiplier(limit=1.0, kp=0.5, ki=0.1, kd=1.0, ema_decay=0.5)
    copy.load_state_dict(lag.state_dict())
    assert run(copy, [2.0, 5.0]) == run(lag, [2.0, 5.0])


def test_discounted_cost_limit_formula() -> None:
    # d (1 - gamma^T) / ((1 - gamma) T)
    assert discounted_cost_limit(25.0, 0.99, 1000) == pytest.approx(25.0 * (1 - 0.99**1000) / (0.01 * 1000))
    assert discounted_cost_limit(10.0, 0.5, 2) == pytest.approx(10.0 * 0.75 / 1.0)
    assert discounted_cost_limit(25.0, 1.0, 1000) == 25.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(limit=1.0, lr=0.0), "lambda_lr"),
        (dict(limit=1.0, lr=0.1, init=-1.0), "lambda_init"),
        (dict(limit=1.0, lr=0.1, init=2.0, max_value=1.0), "lambda_max"),
        (dict(limit=1.0, lr=0.1, error_clip=-1.0), "lambda_error_clip"),
        (dict(limit=1.0, lr=0.1, error_clip=float("inf")), "lambda_error_clip"),
        (dict(limit=1.0, lr=0.1, lr_down=0.0), "lambda_lr_down"),
        (dict(limit=1.0, lr=0.1, lr_down=float("nan")), "lambda_lr_down"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LagrangeMultiplier(**kwargs)


def test_bad_discount_inputs() -> None:
    with pytest.raises(ValueError, match="gamma"):
        discounted_cost_limit(25.0, 0.0, 10)
    with pytest.raises(ValueError, match="episode_length"):
        discounted_cost_limit(25.0, 0.9, 0)
    with pytest.raises(ValueError, match="cost_limit"):
        discounted_cost_limit(-1.0, 0.9, 10)


def test_per_call_limit_and_scale() -> None:
    lag = LagrangeMultiplier(limit=1.0, lr=0.5)
    # against the stored limit 1 on a unit scale: +0.5 * (3 - 1) = +1
    assert float(lag.update(3.0)) == 1.0
    # against limit 20 with the error divided by 20: +0.5 * (60 - 20) / 20 = +1, then 0.5 * (0 - 20) / 20 = -0.5
    assert float(lag.update(60.0, limit=20.0, scale=20.0)) == 2.0
    assert float(lag.update(0.0, limit=20.0, scale=20.0)) == 1.5
    with pytest.raises(ValueError, match=r"scale must be a finite number > 0, got 0\.0"):
        lag.update(1.0, scale=0.0)


def test_pid_on_a_scaled_error() -> None:
    # delta = (C - 10) / 10: 2, then 1; EMA of C / 10 (no smoothing): 3, 2 -> D = 0 then max(0, 2 - 3) = 0
    lag = PIDLagrangeMultiplier(limit=0.0, kp=0.5, ki=0.1, kd=1.0)
    assert run_scaled(lag, [30.0, 20.0], limit=10.0, scale=10.0) == pytest.approx([1.0 + 0.2, 0.5 + 0.3], abs=1e-12)
    assert float(lag.cost_ema) == pytest.approx(2.0)


def run_scaled(lag: LagrangeMultiplier, costs: list[float], limit: float, scale: float) -> list[float]:
    return [float(lag.update(c, limit=limit, scale=scale)) for c in costs]
