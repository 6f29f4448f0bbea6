"""calibrate_threshold: split-conformal threshold on synthetic data with a known risk."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shieldgym.critics.calibration import Calibration, calibrate_threshold


def synthetic(n: int, seed: int) -> dict[str, np.ndarray]:
    """Known risk: p(unsafe | s, a) = sigmoid(4 (|s + a| - 1)); the critic sees |s + a| plus noise."""
    rng = np.random.default_rng(seed)
    obs = rng.uniform(-1, 1, (n, 1)).astype(np.float32)
    act = rng.uniform(-1, 1, (n, 1)).astype(np.float32)
    p = 1.0 / (1.0 + np.exp(-4.0 * (np.abs(obs[:, 0] + act[:, 0]) - 1.0)))
    return {"obs": obs, "actions": act, "unsafe": rng.uniform(size=n) < p}


def critic(obs: np.ndarray, act: np.ndarray) -> np.ndarray:
    return np.abs(obs[:, 0] + act[:, 0]).astype(np.float64)


@pytest.mark.parametrize("target", [0.02, 0.05, 0.1, 0.2])
def test_heldout_miss_rate_meets_the_target(target: float) -> None:
    data = synthetic(20_000, seed=1)
    cal = calibrate_threshold(critic, data, target, seed=0)
    assert isinstance(cal, Calibration)
    n_u, n_h = cal.n_unsafe_calibration, cal.n_unsafe_heldout
    k = math.floor(target * (n_u + 1))
    assert cal.expected_rate == k / (n_u + 1) <= target
    assert cal.achieved_rate_calibration == k / n_u  # exactly k unsafe calibration scores pass (no ties)
    # held-out miss rate: Beta(k, n+1-k) from the calibration draw plus binomial noise on the held-out
    # part; 3 standard deviations of the two together
    sd = math.sqrt(target * (1 - target) * (1 / n_u + 1 / n_h))
    assert cal.achieved_rate_heldout <= target + 3 * sd
    assert cal.n == 20_000 and cal.n_heldout == 10_000
    # the threshold is the k-th smallest unsafe calibration score: a known-risk check
    perm = np.random.default_rng(0).permutation(20_000)[10_000:]
    scores = np.sort(critic(data["obs"][perm], data["actions"][perm])[data["unsafe"][perm]])
    assert cal.threshold == scores[k - 1]
    assert 0.0 < cal.safe_pass_rate_heldout < 1.0


def test_averaged_over_draws_the_rate_is_at_most_the_target() -> None:
    target, rates = 0.1, []
    for seed in range(20):
        cal = calibrate_threshold(critic, synthetic(2_000, seed=100 + seed), target, seed=seed)
        rates.append(cal.achieved_rate_heldout)
    # mean of 20 draws: standard error about sqrt(0.09 * 2 / 250) / sqrt(20) ~ 0.006
    assert np.mean(rates) <= target + 0.02


def test_ties_step_the_threshold_below_and_empirical_method() -> None:
    obs = np.zeros((8, 1), np.float32)
    act = np.zeros((8, 1), np.float32)
    unsafe = np.ones(8, bool)
    flat = calibrate_threshold(lambda o, a: np.ones(len(o)), (obs, act, unsafe), 0.5, heldout_fraction=0.0)
    assert flat.threshold < 1.0 and flat.achieved_rate_calibration == 0.0
    assert math.isnan(flat.achieved_rate_heldout)
    ramp = calibrate_threshold(lambda o, a: np.arange(len(o), dtype=float), (obs, act, unsafe), 0.25, heldout_fraction=0.0)
    assert ramp.threshold == 1.0  # k = floor(0.25 * 9) = 2 -> second smallest of 0..7
    emp = calibrate_threshold(
        lambda o, a: np.arange(len(o), dtype=float), (obs, act, unsafe), 0.25, method="empirical", heldout_fraction=0.0
    )
    assert emp.threshold == 1.0  # floor(0.25 * 8) = 2


def test_bad_input() -> None:
    data = synthetic(100, seed=0)
    with pytest.raises(ValueError, match="target_rate"):
        calibrate_threshold(critic, data, 1.5)
    with pytest.raises(ValueError, match="too few"):
        calibrate_threshold(critic, data, 0.001)
    with pytest.raises(ValueError, match="method"):
        calibrate_threshold(critic, data, 0.1, method="bayes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="missing"):
        calibrate_threshold(critic, {"obs": data["obs"]}, 0.1)
    with pytest.raises(ValueError, match="shape"):
        calibrate_threshold(lambda o, a: np.zeros((len(o), 2)), data, 0.1)
    with pytest.raises(ValueError, match="non-finite"):
        calibrate_threshold(lambda o, a: np.full(len(o), np.nan), data, 0.1)
    with pytest.raises(ValueError, match="< 0"):
        calibrate_threshold(lambda o, a: critic(o, a) - 5.0, data, 0.2)
