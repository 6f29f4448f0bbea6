"""The shield's hot path: the critic's fast forward (numba and NumPy backends) and the cheap checks."""

from __future__ import annotations

import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

import shieldgym.critics.fit as fit
from shieldgym.critics import as_critic
from shieldgym.critics.fit import CostCritic, NumpyCostCritic
from shieldgym.errors import MissingDependencyError
from shieldgym.wrappers.shield import Shield, _all_finite

SPACE = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
NEEDS_NUMBA = pytest.mark.skipif(fit._compiled_kernel() is None, reason="numba")
BACKENDS = ["numpy", pytest.param("numba", marks=NEEDS_NUMBA)]
# (backend, weights of risk_one)
ONE_ROW = [
    ("numpy", "float32"),
    pytest.param("numba", "float32", marks=NEEDS_NUMBA),
    pytest.param("numba", "int16", marks=NEEDS_NUMBA),
]


def critic_module(n_critics: int, net_arch: tuple[int, ...], feature_index: list[int] | None = None) -> CostCritic:
    torch.manual_seed(n_critics + len(net_arch))
    module = CostCritic(6, np.array([-1.0, -2.0]), np.array([1.0, 0.5]), n_critics, net_arch, feature_index)
    with torch.no_grad():  # a non-trivial normalisation, so that the folding into the first layer is tested
        module.obs_mean.uniform_(-1.0, 1.0)
        module.obs_std.uniform_(0.5, 2.0)
    return module.eval()


def reference(module: CostCritic, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        t_obs, t_act = torch.from_numpy(obs.astype(np.float32)), torch.from_numpy(actions.astype(np.float32))
        return module(t_obs, t_act).max(0).values.clamp_min(0).numpy()


def inputs(n: int, dtype: type, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, 6)).astype(dtype)
    obs[:, 3] = 0.0  # exact zeros take the kernel's skip branch
    return obs, rng.uniform(-1.0, 1.0, (n, 2)).astype(dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("n_critics", "net_arch", "feature_index"), [(1, (16, 16), None), (3, (8,), [0, 2, 2, 5]), (2, (8, 4, 8), None)]
)
def test_fast_forward_matches_the_torch_module(backend: str, n_critics: int, net_arch: tuple[int, ...], feature_index) -> None:
    module = critic_module(n_critics, net_arch, feature_index)
    fast = module.numpy_critic(backend)
    assert fast.backend == backend
    for n, dtype in ((1, np.float64), (5, np.float32), (7, np.float64)):
        obs, act = inputs(n, dtype, seed=n)
        risk = fast(obs, act)
        assert risk.shape == (n,) and risk.dtype == np.float32
        np.testing.assert_allclose(risk, reference(module, obs, act), rtol=1e-5, atol=1e-6)
    # a ReLU-heavy net whose output is clipped at 0 on some rows
    assert (fast(*inputs(64, np.float64, seed=0)) >= 0).all()


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize("backend", BACKENDS)
def test_fast_forward_propagates_nan_and_inf_like_torch(backend: str) -> None:
    module = critic_module(2, (16, 16))
    fast = module.numpy_critic(backend)
    obs, act = inputs(4, np.float64, seed=1)
    obs[1, 0] = np.nan
    act[2, 1] = np.nan
    risk = fast(obs, act)
    assert np.isnan(risk[1]) and np.isnan(risk[2])
    assert np.isfinite(risk[[0, 3]]).all()
    np.testing.assert_allclose(risk, reference(module, obs, act), rtol=1e-5, atol=1e-6)  # NaN == NaN here
    obs[1, 0], act[2, 1] = np.inf, -np.inf
    np.testing.assert_allclose(fast(obs, act), reference(module, obs, act), rtol=1e-5, atol=1e-6)


def test_numba_and_numpy_backends_agree_and_auto_prefers_numba() -> None:
    module = critic_module(2, (32, 32))
    obs, act = inputs(9, np.float64, seed=2)
    a = module.numpy_critic("numpy")(obs, act)
    auto = module.numpy_critic()
    assert auto.backend == ("numba" if fit._compiled_kernel() is not None else "numpy")
    np.testing.assert_allclose(auto(obs, act), a, rtol=1e-5, atol=1e-6)
    assert isinstance(as_critic(module), NumpyCostCritic)


def test_without_numba_auto_falls_back_to_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fit, "_kernels", None)
    monkeypatch.setitem(sys.modules, "numba", None)  # makes `import numba` raise ImportError
    monkeypatch.setitem(sys.modules, "shieldgym.critics._kernels", None)  # ... even when the kernels were imported
    module = critic_module(1, (8,))
    fast = module.numpy_critic()
    assert fast.backend == "numpy"
    obs, act = inputs(3, np.float64, seed=3)
    np.testing.assert_allclose(fast(obs, act), reference(module, obs, act), rtol=1e-5, atol=1e-6)
    with pytest.raises(MissingDependencyError, match="numba"):
        module.numpy_critic("numba")


def test_fast_forward_bad_input() -> None:
    module = critic_module(1, (8,))
    with pytest.raises(ValueError, match="backend must be"):
        NumpyCostCritic(module, backend="jax")  # type: ignore[arg-type]
    if fit._compiled_kernel() is not None:
        with pytest.raises(ValueError, match=r"expected obs \(B, 6\) and actions \(B, 2\)"):
            module.numpy_critic("numba")(np.zeros((2, 5)), np.zeros((2, 2)))


def test_all_finite_small_and_large_arrays() -> None:
    for size in (2, 16, 17, 60):  # both sides of the small-array branch
        x = np.zeros(size, np.float32)
        assert _all_finite(x)
        for bad in (np.nan, np.inf, -np.inf):
            y = x.copy()
            y[-1] = bad
            assert not _all_finite(y)
            assert not _all_finite(y.astype(np.float64)[None])
    # float32 maxima add up without overflow in float64; a float64 overflow vetoes (the safe side)
    assert _all_finite(np.full(4, np.finfo(np.float32).max, np.float32))
    assert not _all_finite(np.full(4, 1e308))
    assert _all_finite(np.array([1, 2], np.int64)) and _all_finite({"a": np.zeros(3), "b": np.ones(2, np.float32)})


@pytest.mark.parametrize("n", [1, 3, 20])
def test_all_rows_pass_only_at_or_below_threshold_and_never_on_nan(n: int) -> None:
    risk = np.full(n, 0.5, np.float32)
    shield = Shield(lambda o, a: risk.copy(), np.zeros(2), 0.5, SPACE)
    obs, act = np.zeros((n, 3)), np.zeros((n, 2), np.float32)
    decision = shield.check(obs, act)
    assert not decision.intervened.any() and decision.executed is act  # at the threshold passes
    for bad in (np.nextafter(np.float32(0.5), np.float32(1.0)), np.nan):
        risk[-1] = bad
        decision = shield.check(obs, act)
        assert decision.intervened.tolist() == [False] * (n - 1) + [True]
        assert decision.reasons[-1] == ("risk" if np.isfinite(bad) else "nan")
        risk[-1] = 0.5


def test_filter_fast_path_info_matches_the_batch_decision() -> None:
    shield = Shield(lambda o, a: np.abs(a[:, 0]).astype(np.float64), np.zeros(2), 0.5, SPACE)
    obs, proposed = np.ones(3), np.array([0.25, -0.5])
    executed, info = shield.filter(obs, proposed)
    batch = shield.check(obs[None], shield.as_actions(proposed[None], 1))
    assert info == {
        **shield.info(batch, shield.as_actions(proposed[None], 1), 0),
        "proposed_action": info["proposed_action"],
        "executed_action": info["executed_action"],
    }
    assert info["risk"] == 0.25 and type(info["risk"]) is float and info["reason"] is None and info["source"] == "policy"
    np.testing.assert_array_equal(executed, np.array([0.25, -0.5], np.float32))
    np.testing.assert_array_equal(info["proposed_action"], executed)
    np.testing.assert_array_equal(info["executed_action"], executed)
    assert shield.n_checks == 2 and shield.last_latency_s >= 0.0
    proposed[0] = 9.0  # the info holds its own copy of the action
    assert info["proposed_action"][0] == 0.25 and executed[0] == 0.25
    executed, info = shield.filter(obs, np.array([0.75, 0.0]))
    assert info["intervened"] and info["reason"] == "risk" and info["risk"] == 0.75
    np.testing.assert_array_equal(executed, [0.0, 0.0])


def tolerance(fast: NumpyCostCritic, obs: np.ndarray, act: np.ndarray) -> float:
    """How far ``risk_one`` may be from the float32 batch call: float32 rounding, or the 16-bit weights' bound."""
    return fast.risk_bound(obs, act)[1] if fast.weights == "int16" else 1e-6 * (1 + abs(float(fast(obs[None], act[None])[0])))


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize(("backend", "weights"), ONE_ROW)
def test_risk_one_matches_the_batch_call_and_is_nan_on_non_finite_input(backend: str, weights: str) -> None:
    module = critic_module(2, (16, 16))
    fast = module.numpy_critic(backend, weights)  # type: ignore[arg-type]
    assert fast.weights == weights
    obs, act = inputs(6, np.float64, seed=4)
    for i in range(6):
        one = fast.risk_one(obs[i], act[i])
        assert type(one) is float
        assert abs(one - float(fast(obs[i : i + 1], act[i : i + 1])[0])) <= tolerance(fast, obs[i], act[i])
    o32, a32 = obs[0].astype(np.float32), act[0].astype(np.float32)
    assert abs(fast.risk_one(o32, a32) - float(reference(module, obs[:1], act[:1])[0])) <= tolerance(fast, o32, a32) + 1e-6
    for bad in (np.nan, np.inf, -np.inf):  # any non-finite input is NaN, even where the forward pass would not be
        o, a = obs[0].copy(), act[0].copy()
        o[3] = bad  # column 3 is 0 in every row: a skipped weight row in the forward pass
        assert np.isnan(fast.risk_one(o, act[0]))
        a[1] = bad
        assert np.isnan(fast.risk_one(obs[0], a))
    with pytest.raises(ValueError, match=r"expected obs \(6,\) and action \(2,\)"):
        fast.risk_one(np.zeros(5), np.zeros(2))
    with pytest.raises(ValueError, match=r"expected obs \(6,\) and action \(2,\)"):
        fast.risk_one(np.zeros(6), np.zeros(3))


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@pytest.mark.parametrize(("backend", "weights"), ONE_ROW)
def test_filter_through_risk_one_decides_like_the_batch_path(backend: str, weights: str) -> None:
    module = critic_module(2, (16, 16))
    fast = module.numpy_critic(backend, weights)  # type: ignore[arg-type]
    space = gym.spaces.Box(np.array([-1.0, -2.0], np.float32), np.array([1.0, 0.5], np.float32))
    obs, act = inputs(8, np.float64, seed=5)
    risks = fast(obs, act)
    threshold = float(np.sort(risks)[4])  # the rows above it are vetoed
    assert (risks > threshold).sum() >= 2
    one = Shield(fast, np.zeros(2), threshold, space)
    plain = Shield(lambda o, a: fast(o, a), np.zeros(2), threshold, space)  # no risk_one: the batch path
    assert one._risk_one is not None and plain._risk_one is None
    cases = [(obs[i], act[i]) for i in range(8)]
    nan_obs = obs[0].copy()
    nan_obs[3] = np.nan
    inf_act = act[1].copy()
    inf_act[0] = np.inf
    cases += [(nan_obs, act[0]), (obs[1], inf_act)]
    for o, a in cases:
        ex_one, info_one = one.filter(o, a)
        ex_plain, info_plain = plain.filter(o, a)
        np.testing.assert_array_equal(ex_one, ex_plain)
        assert ex_one.dtype == np.float32
        assert info_one["intervened"] == info_plain["intervened"] and info_one["reason"] == info_plain["reason"]
        assert info_one["source"] == info_plain["source"]
        if np.isfinite(info_plain["risk"]):
            assert abs(info_one["risk"] - info_plain["risk"]) <= tolerance(fast, o, a)
        else:
            assert np.isnan(info_one["risk"])
        np.testing.assert_array_equal(info_one["proposed_action"], info_plain["proposed_action"])
    assert one.n_interventions == plain.n_interventions == (risks > threshold).sum() + 2
    assert [one.filter(o, a)[1]["reason"] for o, a in cases[-2:]] == ["nan", "nan"]
    # a missed deadline vetoes on the risk_one path too
    ticks = iter([0.0, 1.0])
    late = Shield(fast, np.zeros(2), 1e9, space, max_latency_s=0.5, clock=lambda: next(ticks))
    executed, info = late.filter(obs[0], act[0])
    assert info["reason"] == "deadline" and info["intervened"] and executed.tolist() == [0.0, 0.0]

    def broken(o: np.ndarray, a: np.ndarray, threshold: float | None = None) -> float:
        raise RuntimeError("sensor bus down")

    one._risk_one = broken
    executed, info = one.filter(obs[0], act[0])
    assert info["reason"] == "critic_error" and executed.tolist() == [0.0, 0.0]


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_numba_batch_in_row_blocks_equals_row_by_row_exactly() -> None:
    if fit._compiled_kernel() is None:
        pytest.skip("numba is not installed")
    from shieldgym.critics._kernels import ROW_BLOCK

    module = critic_module(2, (16, 16))
    fast = module.numpy_critic("numba", "float32")
    n = 2 * ROW_BLOCK + 5  # two full blocks and a partial one
    obs, act = inputs(n, np.float64, seed=6)
    obs[ROW_BLOCK + 1, 2] = np.nan  # a NaN row inside a block leaves its neighbours alone
    risk = fast(obs, act)
    row_by_row = np.array([fast.risk_one(obs[i], act[i]) for i in range(n)], np.float32)
    np.testing.assert_array_equal(risk, row_by_row)  # same summation order: bit-identical, NaN where NaN
    assert np.isnan(risk[ROW_BLOCK + 1]) and np.isfinite(np.delete(risk, ROW_BLOCK + 1)).all()


@NEEDS_NUMBA
@pytest.mark.parametrize(("n_critics", "net_arch"), [(1, (64, 64)), (2, (16, 16)), (3, (8, 4, 8))])
def test_int16_weights_decide_every_threshold_as_the_float32_pass(n_critics: int, net_arch: tuple[int, ...]) -> None:
    module = critic_module(n_critics, net_arch)
    exact, q16 = module.numpy_critic("numba", "float32"), module.numpy_critic("numba", "int16")
    assert module.numpy_critic().weights == "int16"  # the default with numba
    assert q16.q16.dtype == np.int16 and q16.q16.nbytes * 2 == sum(  # half the bytes of the float32 weights
        int(n_in * n_out) * 4 * n_critics for n_in, n_out, _, _ in exact.layers
    )
    obs, act = inputs(200, np.float64, seed=7)
    refined = 0
    for o, a in zip(obs, act):
        r32 = float(exact(o[None], a[None])[0])
        assert r32 == exact.risk_one(o, a)
        rq, bound = q16.risk_bound(o, a)
        assert 0.0 < bound < 0.05 * max(1.0, r32)  # a useful bound ...
        assert abs(rq - r32) <= bound  # ... that holds
        above = float(np.nextafter(np.float32(r32), np.float32(np.inf)))
        for t in (r32, above, r32 - 1e-7, r32 + 0.5 * bound, r32 - 2 * bound):
            if t < 0:
                continue
            got = q16.risk_one(o, a, t)
            assert (got > t) == (r32 > t), (t, r32, got)
            if abs(rq - t) <= bound:  # inside the bound: the float32 value itself
                assert got == r32
                refined += 1
        far = r32 + 10 * bound + 1.0
        assert q16.risk_one(o, a, far) == rq  # far from the threshold: the 16-bit value
        assert q16.risk_one(o, a) == r32  # no threshold: float32
    assert refined > 0
    # the batched call: 16-bit rows given a threshold, float32 where a row lies within its bound of it
    r32 = exact(obs, act)
    np.testing.assert_array_equal(q16(obs, act), r32)  # no threshold: float32
    bounds = np.array([q16.risk_bound(o, a)[1] for o, a in zip(obs, act)])
    cases = [(float(np.median(r32)), None), (float(r32[3]), 3), (float(r32[10]) + 1e-7, 10), (float(r32[20]) - 1e-7, 20)]
    for t, row in cases:
        got = q16(obs, act, t)
        assert got.dtype == np.float32 and got.shape == r32.shape
        np.testing.assert_array_equal(got > t, r32 > t)
        assert (np.abs(got - r32) <= bounds + 1e-6).all()
        near = np.abs(got - t) <= bounds  # rows the 16-bit pass could not decide: float32 values
        np.testing.assert_array_equal(got[near], r32[near])
        if row is not None:
            assert near[row] and got[row] == r32[row]
    nan_obs = obs[:3].copy()
    nan_obs[1, 0] = np.nan
    got = q16(nan_obs, act[:3], 0.1)
    assert np.isnan(got[1]) and np.isfinite(got[[0, 2]]).all()


@NEEDS_NUMBA
def test_shield_passes_its_threshold_to_risk_one() -> None:
    seen: list[float] = []

    class Critic:
        def __call__(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
            return np.zeros(len(obs))

        def risk_one(self, obs: np.ndarray, action: np.ndarray, threshold: float | None = None) -> float:
            seen.append(threshold)  # type: ignore[arg-type]
            return 0.25

    shield = Shield(Critic(), np.zeros(2), 0.5, SPACE)
    shield.filter(np.zeros(3), np.array([0.1, 0.2], np.float32))
    shield.threshold = 0.125
    _, info = shield.filter(np.zeros(3), np.array([0.1, 0.2], np.float32))
    assert seen == [0.5, 0.125] and info["intervened"] and info["reason"] == "risk"

    class BatchCritic:  # the batched call (vector shields) gets the threshold the same way
        def __call__(self, obs: np.ndarray, actions: np.ndarray, threshold: float | None = None) -> np.ndarray:
            seen.append(threshold)  # type: ignore[arg-type]
            return np.full(len(obs), 0.25)

    decision = Shield(BatchCritic(), np.zeros(2), 0.75, SPACE).check(np.zeros((4, 3)), np.zeros((4, 2), np.float32))
    assert seen[-1] == 0.75 and not decision.intervened.any()
    assert Shield(lambda o, a: np.zeros(len(o)), np.zeros(2), 0.5, SPACE)._risk_one is None


def test_int16_bad_input() -> None:
    module = critic_module(1, (8,))
    with pytest.raises(ValueError, match="weights must be"):
        module.numpy_critic("numpy", "int8")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs the numba backend"):
        module.numpy_critic("numpy", "int16")
    with pytest.raises(ValueError, match="risk_bound needs weights='int16'"):
        module.numpy_critic("numpy").risk_bound(np.zeros(6), np.zeros(2))
