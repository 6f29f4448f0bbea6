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
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["mlp_forward", "risk_one"]


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
