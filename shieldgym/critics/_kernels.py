"""Compiled (numba) forward passes of :class:`~shieldgym.critics.fit.NumpyCostCritic`.

This module imports numba at import time; :mod:`shieldgym.critics.fit` imports it only when a
numba backend is asked for (numba is the optional ``fast`` extra). Every function is compiled on
first use and cached on disk.

The weights live in one float32 buffer ``params``: every layer's ``W (E, in, out)`` then
``b (E, out)``, member-major, with ``layers[l] = (in, out, offset of W, offset of b)``. Layer 0's
inputs are the entries of the observation row then those of the action row; later layers take the
ReLU of the previous layer's output. The weight rows of inputs that are exactly 0 (about half the
units after a ReLU) are skipped, which is exact for finite weights: a NaN input is not 0 and
propagates. Risk is the maximum over members, clipped at 0 (a cost-to-go is never negative).

:func:`risk_one_q16` and :func:`mlp_forward_q16` are the checks with 16-bit weights (half the bytes to read):
``W[i, j] ~ q[i, j] * s[j]`` with integer ``q`` and one float32 scale per output unit. Alongside the
risk it accumulates a bound on its distance to the float32 forward pass, and recomputes in float32
whenever the threshold lies within that bound, so its veto decisions are the float32 ones.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["mlp_forward", "mlp_forward_q16", "q16_forward", "risk_one", "risk_one_q16"]


#: rows computed together by :func:`mlp_forward`: each weight row is read once per block of rows
#: (while it is in L1) instead of once per row; 16 rows of 256 float32 activations fit L1 twice over
ROW_BLOCK = 16


@numba.njit(cache=True, nogil=True)
def _block_max(
    x: np.ndarray,
    a: np.ndarray,
    start: int,
    m: int,
    params: np.ndarray,
    layers: np.ndarray,
    n_members: int,
    h: np.ndarray,
    g: np.ndarray,
    best: np.ndarray,
) -> None:
    """``best[r] = max_e Q_e`` (NaN when any member's is) of rows ``start .. start + m - 1`` of ``x (B, obs_dim)``,
    ``a (B, A)``, computed in the ``(>= m, width)`` buffers ``h`` and ``g``; each weight row is read once for
    the ``m`` rows, and each row's sums are accumulated in input order."""
    n_obs = x.shape[1]
    for r in range(m):
        best[r] = -np.inf
    for e in range(n_members):
        for k in range(layers.shape[0]):
            n_in, n_out, w_at, b_at = layers[k, 0], layers[k, 1], layers[k, 2], layers[k, 3]
            # 2-D / 1-D views, indexed by loop counters only, so the inner loops vectorise
            w = params[w_at + e * n_in * n_out : w_at + (e + 1) * n_in * n_out].reshape((n_in, n_out))
            b = params[b_at + e * n_out : b_at + (e + 1) * n_out]
            for r in range(m):
                for j in range(n_out):
                    g[r, j] = b[j]
            for i in range(n_in):
                for r in range(m):
                    if k > 0:
                        v = h[r, i]
                        if v < 0.0:  # ReLU of the previous layer; NaN < 0 is False, so NaN propagates
                            continue
                    elif i < n_obs:
                        v = np.float32(x[start + r, i])
                    else:
                        v = np.float32(a[start + r, i - n_obs])
                    if v != 0.0:  # exact for finite weights; NaN != 0, so a NaN input propagates
                        for j in range(n_out):
                            g[r, j] += v * w[i, j]
            h, g = g, h
        for r in range(m):
            q = h[r, 0]
            if q > best[r] or q != q:
                best[r] = q


@numba.njit(cache=True, nogil=True)
def mlp_forward(
    x: np.ndarray, a: np.ndarray, params: np.ndarray, layers: np.ndarray, n_members: int, width: int
) -> np.ndarray:
    """Risk of each row of ``x (B, obs_dim)``, ``a (B, A)``: float32 ``(B,)``, clipped at 0, NaN kept.

    Rows go through the network in blocks of :data:`ROW_BLOCK`: every weight row is read once per
    block. Each row's sums are accumulated in the same order whatever the block, so :func:`risk_one`
    gives bit-identical values.
    """
    n_rows = x.shape[0]
    h = np.empty((ROW_BLOCK, width), np.float32)
    g = np.empty((ROW_BLOCK, width), np.float32)
    best = np.empty(ROW_BLOCK, np.float32)
    risk = np.empty(n_rows, np.float32)
    for start in range(0, n_rows, ROW_BLOCK):
        m = min(ROW_BLOCK, n_rows - start)
        _block_max(x, a, start, m, params, layers, n_members, h, g, best)
        for r in range(m):
            risk[start + r] = best[r] if not best[r] < 0.0 else np.float32(0.0)  # clipped at 0, NaN kept
    return risk


@numba.njit(cache=True, nogil=True)
def risk_one(x: np.ndarray, a: np.ndarray, params: np.ndarray, layers: np.ndarray, n_members: int, width: int) -> float:
    """Risk of one observation ``x (obs_dim,)`` and action ``a (A,)``; NaN when any input is NaN or inf.

    The finiteness test and the forward pass in one call: the shield's single-env check.
    """
    for i in range(x.shape[0]):
        if not math.isfinite(x[i]):
            return math.nan
    for i in range(a.shape[0]):
        if not math.isfinite(a[i]):
            return math.nan
    h = np.empty((1, width), np.float32)
    g = np.empty((1, width), np.float32)
    best = np.empty(1, np.float32)
    _block_max(x[None], a[None], 0, 1, params, layers, n_members, h, g, best)
    return 0.0 if best[0] < 0.0 else float(best[0])


@numba.njit(cache=True, nogil=True)
def _block_q16(
    x: np.ndarray,
    a: np.ndarray,
    start: int,
    m: int,
    q: np.ndarray,
    scale: np.ndarray,
    bias: np.ndarray,
    layers: np.ndarray,
    gamma: np.ndarray,
    n_members: int,
    h: np.ndarray,
    g: np.ndarray,
    best: np.ndarray,
    bound: np.ndarray,
    member_bound: np.ndarray,
    norm: np.ndarray,
) -> None:
    """:func:`_block_max` with 16-bit weights: ``best[r]`` and the bound of :func:`q16_forward` in ``bound[r]``
    for rows ``start .. start + m - 1``; each weight row is read once for the ``m`` rows."""
    n_obs = x.shape[1]
    for r in range(m):
        best[r] = -np.inf
        bound[r] = 0.0
    for e in range(n_members):
        for r in range(m):
            member_bound[r] = 0.0
        for k in range(layers.shape[0]):
            n_in, n_out, q_at, s_at = layers[k, 0], layers[k, 1], layers[k, 2], layers[k, 3]
            w = q[q_at + e * n_in * n_out : q_at + (e + 1) * n_in * n_out].reshape((n_in, n_out))
            sc = scale[s_at + e * n_out : s_at + (e + 1) * n_out]
            b = bias[s_at + e * n_out : s_at + (e + 1) * n_out]
            for r in range(m):
                norm[r] = 0.0
                for j in range(n_out):
                    g[r, j] = 0.0
            for i in range(n_in):
                for r in range(m):
                    if k > 0:
                        v = h[r, i]
                        if v < 0.0:  # ReLU; NaN < 0 is False, so NaN propagates
                            continue
                    elif i < n_obs:
                        v = np.float32(x[start + r, i])
                    else:
                        v = np.float32(a[start + r, i - n_obs])
                    if v != 0.0:
                        norm[r] += abs(v)
                        for j in range(n_out):
                            g[r, j] += v * np.float32(w[i, j])
            for r in range(m):
                for j in range(n_out):
                    g[r, j] = b[j] + sc[j] * g[r, j]
                member_bound[r] += 0.5 * norm[r] * gamma[e, k]
            h, g = g, h
        for r in range(m):
            value = h[r, 0]
            if value > best[r] or value != value:
                best[r] = value
            bound[r] = max(bound[r], member_bound[r])


@numba.njit(cache=True, nogil=True)
def q16_forward(
    x: np.ndarray,
    a: np.ndarray,
    q: np.ndarray,
    scale: np.ndarray,
    bias: np.ndarray,
    layers: np.ndarray,
    gamma: np.ndarray,
    n_members: int,
    width: int,
) -> tuple[float, float]:
    """``(max_e Q_e, bound)`` of one row with 16-bit weights, unclipped; NaN propagates as in :func:`risk_one`.

    ``layers[l] = (in, out, offset of q, offset of scale and bias)`` (member-major, as the float32
    layout). ``bound`` is ``max_e sum_l 0.5 * ||h_(l-1)||_1 * gamma[e, l]``, where ``h_(l-1)`` is the
    layer's input as computed here and ``gamma[e, l] = |W_L|^T ... |W_(l+1)|^T s_l`` (the scales carried
    to the output through the absolute float32 weights): the rounding of each weight is at most
    ``s_j / 2`` and a ReLU does not grow a difference, so ``|result - float32 result| <= bound`` up to the
    float32 rounding of the two sums.
    """
    h = np.empty((1, width), np.float32)
    g = np.empty((1, width), np.float32)
    best = np.empty(1, np.float32)
    bound, member_bound, norm = np.empty(1), np.empty(1), np.empty(1)
    _block_q16(x[None], a[None], 0, 1, q, scale, bias, layers, gamma, n_members, h, g, best, bound, member_bound, norm)
    return float(best[0]), bound[0]


@numba.njit(cache=True, nogil=True)
def _undecided(value: float, bound: float, threshold: float) -> bool:
    """Whether the 16-bit ``value`` is too close to ``threshold`` to decide ``value > threshold`` as the float32
    pass would: within its bound, widened by 1% and a float32 slack of 1e-5 (the two passes' own rounding)."""
    return abs(value - threshold) <= 1.01 * bound + 1e-5 * (1.0 + abs(value))


@numba.njit(cache=True, nogil=True)
def risk_one_q16(
    x: np.ndarray,
    a: np.ndarray,
    q: np.ndarray,
    scale: np.ndarray,
    bias: np.ndarray,
    layers: np.ndarray,
    gamma: np.ndarray,
    threshold: float,
    params: np.ndarray,
    layers32: np.ndarray,
    n_members: int,
    width: int,
) -> float:
    """:func:`risk_one` with 16-bit weights (:func:`q16_forward`); exact near ``threshold``.

    When ``|risk - threshold|`` is within the bound (plus a float32 slack) the row is recomputed with
    the float32 weights ``params``, so ``risk > threshold`` is decided as the float32 pass decides it.
    ``threshold < 0`` turns the refinement off (the returned risk is then within the bound).
    """
    for i in range(x.shape[0]):
        if not math.isfinite(x[i]):
            return math.nan
    for i in range(a.shape[0]):
        if not math.isfinite(a[i]):
            return math.nan
    value, bound = q16_forward(x, a, q, scale, bias, layers, gamma, n_members, width)
    if value != value:
        return math.nan
    if threshold >= 0.0 and _undecided(value, bound, threshold):
        return risk_one(x, a, params, layers32, n_members, width)
    return 0.0 if value < 0.0 else value


@numba.njit(cache=True, nogil=True)
def mlp_forward_q16(
    x: np.ndarray,
    a: np.ndarray,
    q: np.ndarray,
    scale: np.ndarray,
    bias: np.ndarray,
    layers: np.ndarray,
    gamma: np.ndarray,
    threshold: float,
    params: np.ndarray,
    layers32: np.ndarray,
    n_members: int,
    width: int,
) -> np.ndarray:
    """:func:`mlp_forward` with 16-bit weights, in blocks of :data:`ROW_BLOCK` rows; a row whose risk is
    within its bound of ``threshold`` is recomputed with the float32 weights, so ``risk > threshold`` is
    decided row by row as :func:`mlp_forward` decides it. NaN rows stay NaN."""
    n_rows = x.shape[0]
    h = np.empty((ROW_BLOCK, width), np.float32)
    g = np.empty((ROW_BLOCK, width), np.float32)
    best = np.empty(ROW_BLOCK, np.float32)
    bound = np.empty(ROW_BLOCK)
    member_bound = np.empty(ROW_BLOCK)
    norm = np.empty(ROW_BLOCK)
    h1 = np.empty((1, width), np.float32)
    g1 = np.empty((1, width), np.float32)
    best1 = np.empty(1, np.float32)
    risk = np.empty(n_rows, np.float32)
    for start in range(0, n_rows, ROW_BLOCK):
        m = min(ROW_BLOCK, n_rows - start)
        _block_q16(x, a, start, m, q, scale, bias, layers, gamma, n_members, h, g, best, bound, member_bound, norm)
        for r in range(m):
            value = best[r]
            if value == value and _undecided(value, bound[r], threshold):
                _block_max(x, a, start + r, 1, params, layers32, n_members, h1, g1, best1)
                value = best1[0]
            risk[start + r] = value if not value < 0.0 else np.float32(0.0)  # clipped at 0, NaN kept
    return risk
