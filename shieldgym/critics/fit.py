"""Fit a conservative cost critic ``Q_c(s, a)`` from offline transitions, for the shield.

``Q_c(s, a)`` estimates the expected discounted cost-to-go ``E[sum_t gamma^t c_t | s_0 = s, a_0 = a]``.
It is fitted by minimising the one conservative TD loss of :mod:`shieldgym.critics.losses` with
``upper_bound=True``:

    L = sum_e 0.5 E_(s,a,c,s')~D [(Q_e(s, a) - y)^2]
        + beta * sum_e E_s~D [ -tau log sum_j exp(-Q_e(s, a_j) / tau) + Q_e(s, a) ],     a_j ~ U(A)

    y = c + gamma (1 - done) max_e Q'_e(s', a')                         (bellman_target, reduce="max")

The penalty raises ``Q_c`` on actions the data does not support (most on those it thinks cheapest)
and lowers it on dataset actions, so out-of-data actions are over-estimated: the critic is an upper
bound where it knows little, which is the safe direction for a shield. ``Q'`` is a Polyak-averaged
target copy. The next action ``a'`` is, in order of preference: ``next_actions`` in the data (the
behaviour policy's cost-to-go), ``policy(next_obs)``, or the least risky of ``n_action_samples``
uniform actions (the cost-to-go of a shielded continuation that picks the safest action, what a
:class:`~shieldgym.backup.MinRiskBackup` does). A short horizon (``gamma`` 0.9-0.95) makes the critic
anticipate a cost a few steps ahead without smearing it over the episode.

The result is a :class:`CostCritic` (a torch module with the observation normalisation and action
scaling built in) whose :meth:`CostCritic.numpy_critic` gives a NumPy forward pass, faster than torch
for the one-observation checks of a shield (``as_critic`` uses it).

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> obs = rng.uniform(-1, 1, (512, 1)).astype(np.float32); act = rng.uniform(-1, 1, (512, 1)).astype(np.float32)
    >>> nxt = obs + act; cost = (np.abs(nxt[:, 0]) > 1).astype(np.float32)
    >>> data = dict(obs=obs, actions=act, costs=cost, next_obs=nxt, dones=cost)
    >>> critic = fit_cost_critic(data, action_low=-1, action_high=1, fit_steps=50, net_arch=(32,), progress=False)
    >>> critic.numpy_critic()(obs[:3], act[:3]).shape
    (3,)
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from shieldgym.critics.losses import bellman_target, conservative_td_loss
from shieldgym.critics.networks import EnsembleLinear, QEnsemble

__all__ = ["CostCritic", "FitRecord", "NumpyCostCritic", "fit_cost_critic"]


class CostCritic(nn.Module):
    """``Q_c`` ensemble with observation normalisation and action scaling built in.

    ``forward(obs (B, obs_dim), actions (B, A)) -> (E, B)``. Inputs are the env's raw observations
    and actions: observations are standardised with the data's mean/std (after selecting
    ``feature_index`` when given) and actions mapped from ``[low, high]`` to ``[-1, 1]``.

    Args:
        obs_dim: size of the flat observation.
        action_low, action_high: action bounds ``(A,)``.
        n_critics: ensemble size.
        net_arch: hidden sizes.
        feature_index: observation entries the critic sees (``None``: all).
    """

    feature_index: torch.Tensor
    obs_mean: torch.Tensor
    obs_std: torch.Tensor
    action_low: torch.Tensor
    action_high: torch.Tensor

    def __init__(
        self,
        obs_dim: int,
        action_low: np.ndarray,
        action_high: np.ndarray,
        n_critics: int = 2,
        net_arch: Sequence[int] = (256, 256),
        feature_index: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        low = torch.as_tensor(np.asarray(action_low, np.float32).reshape(-1))
        high = torch.as_tensor(np.asarray(action_high, np.float32).reshape(-1))
        if not (torch.isfinite(low).all() and torch.isfinite(high).all() and (high > low).all()):
            raise ValueError(f"action bounds must be finite with high > low, got low={low.tolist()}, high={high.tolist()}.")
        index = torch.arange(obs_dim) if feature_index is None else torch.as_tensor(list(feature_index), dtype=torch.long)
        if index.numel() == 0 or int(index.min()) < 0 or int(index.max()) >= obs_dim:
            raise ValueError(f"feature_index must hold indices in [0, {obs_dim}), got {index.tolist()}.")
        self.obs_dim, self.action_dim = obs_dim, low.numel()
        self.register_buffer("feature_index", index)
        self.register_buffer("obs_mean", torch.zeros(index.numel()))
        self.register_buffer("obs_std", torch.ones(index.numel()))
        self.register_buffer("action_low", low)
        self.register_buffer("action_high", high)
        self.q = QEnsemble(index.numel(), self.action_dim, n_critics=n_critics, net_arch=net_arch)

    def normalise(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw ``(obs, actions)`` -> the network's inputs (selected, standardised features; actions in [-1, 1])."""
        x = (obs[:, self.feature_index] - self.obs_mean) / self.obs_std
        a = 2.0 * (actions.reshape(actions.shape[0], -1) - self.action_low) / (self.action_high - self.action_low) - 1.0
        return x, a

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.q(*self.normalise(obs, actions))

    def numpy_critic(
        self,
        backend: Literal["auto", "numba", "numpy"] = "auto",
        weights: Literal["auto", "float32", "int16"] = "auto",
    ) -> NumpyCostCritic:
        """A NumPy copy of this critic (risk = max over members, clipped at 0), for the shield's hot path.

        Args:
            backend: ``"numba"`` (a compiled float32 kernel), ``"numpy"`` (one ``matmul`` per layer) or
                ``"auto"`` (numba when it is installed, else NumPy). See :class:`NumpyCostCritic`.
            weights: the weights of the shield's checks: ``"int16"`` (numba only; same veto decisions as
                float32), ``"float32"``, or ``"auto"`` (int16 with numba). See :class:`NumpyCostCritic`.
        """
        return NumpyCostCritic(self, backend=backend, weights=weights)


_kernels: Any = None


def _compiled_kernel() -> Any:
    """The compiled kernels module :mod:`shieldgym.critics._kernels`, or ``None`` when numba is not installed."""
    global _kernels
    if _kernels is None:
        try:
            import shieldgym.critics._kernels as compiled
        except ImportError:
            return None
        _kernels = compiled
    return _kernels


class NumpyCostCritic:
    """Fast forward pass of a :class:`CostCritic`: ``(obs (B, obs_dim), actions (B, A)) -> risk (B,)``.

    The weights are copied once into one contiguous float32 buffer, with the observation
    standardisation, the feature selection and the action scaling folded into the first layer
    (``x_n = (x - m) / s`` gives ``x_n @ W = x @ (W / s) - (m / s) @ W``). Risk is the maximum over
    ensemble members, clipped at 0 (a cost-to-go is never negative); NaN in the input gives NaN.

    Two backends compute the same function (up to float32 rounding):

    - ``"numba"``: one compiled call (:mod:`shieldgym.critics._kernels`) that reads each weight row once and
      skips the zero activations after a ReLU; for one observation it is ~3x faster than NumPy and
      much less slowed down when the caller has evicted the weights from the CPU caches;
    - ``"numpy"``: one float32 ``matmul`` per layer (used when numba is not installed).

    The shield's checks can read 16-bit weights instead (``weights="int16"``, the default with numba): each
    float32 weight ``W[i, j]`` becomes an integer ``q[i, j]`` times one float32 scale per output unit ``s[j]
    = max_i |W[i, j]| / 32766``, which halves the bytes a check reads (the simulator's step that follows
    then finds more of its own data in the caches). The pass also accumulates a bound on its distance to the
    float32 pass, from the rounding of each weight (at most ``s[j] / 2``) carried through the absolute
    weights of the later layers (ReLU does not grow a difference). The 16-bit pass runs when the caller
    gives the ``threshold`` (the shield does, to :meth:`risk_one` and to the batched call): a row is
    recomputed in float32 whenever the threshold lies within its bound, so **every veto decision is the
    float32 pass's**, and the risk returned is within the bound of the float32 value (:meth:`risk_bound`
    gives both; on a 2x256 critic the bound is ~1e-3 of the risk's range and the actual difference ~1e-5).
    Without a threshold (backups, calibration, evaluation) the float32 weights are used.

    Args:
        module: the fitted critic.
        backend: ``"auto"`` (numba when installed, else NumPy), ``"numba"`` or ``"numpy"``.
        weights: weights of the checks given a threshold: ``"int16"`` (numba backend only), ``"float32"``,
            or ``"auto"`` (int16 with the numba backend, else float32).

    Raises:
        ValueError: unknown ``backend`` or ``weights``, or ``weights="int16"`` without the numba backend.
        MissingDependencyError: ``backend="numba"`` and numba is not installed.
    """

    def __init__(
        self,
        module: CostCritic,
        backend: Literal["auto", "numba", "numpy"] = "auto",
        weights: Literal["auto", "float32", "int16"] = "auto",
    ) -> None:
        if backend not in ("auto", "numba", "numpy"):
            raise ValueError(f"backend must be 'auto', 'numba' or 'numpy', got {backend!r}.")
        if weights not in ("auto", "float32", "int16"):
            raise ValueError(f"weights must be 'auto', 'float32' or 'int16', got {weights!r}.")

        def np64(t: torch.Tensor) -> np.ndarray:
            return t.detach().cpu().double().numpy()

        index = module.feature_index.cpu().numpy()
        mean, inv_std = np64(module.obs_mean), 1.0 / np64(module.obs_std)
        low, high = np64(module.action_low), np64(module.action_high)
        a_scale, a_shift = 2.0 / (high - low), -2.0 * low / (high - low) - 1.0
        layers = [m for m in module.q.mlp.net if isinstance(m, EnsembleLinear)]
        self.n_members: int = module.q.n_critics
        self.obs_dim: int = module.obs_dim
        w0, b0 = np64(layers[0].weight), np64(layers[0].bias)  # (E, F + A, H), (E, 1, H)
        nf = index.size
        w_sel, w_act = w0[:, :nf], w0[:, nf:]
        # fold: obs -> selected, standardised features; actions -> [-1, 1]
        w_obs = np.zeros((self.n_members, module.obs_dim, w0.shape[2]))
        for j, i in enumerate(index.tolist()):  # a feature listed twice adds up, like the torch indexing
            w_obs[:, i] += w_sel[:, j] * inv_std[j]
        bias = b0 - np.einsum("f,efh->eh", mean * inv_std, w_sel)[:, None] + np.einsum("a,eah->eh", a_shift, w_act)[:, None]
        w_act = w_act * a_scale[None, :, None]
        folded = [(np.concatenate([w_obs, w_act], axis=1), bias)]
        folded += [(np64(m.weight), np64(m.bias)) for m in layers[1:]]
        # one contiguous float32 buffer: W_0, b_0, W_1, b_1, ... (each member-major)
        self.params = np.concatenate([p.reshape(-1) for w, b in folded for p in (w, b)]).astype(np.float32)
        self.layers = np.zeros((len(folded), 4), dtype=np.int64)  # in, out, offset of W, offset of b
        views: list[tuple[np.ndarray, np.ndarray]] = []
        at = 0
        for k, (w, b) in enumerate(folded):
            n_in, n_out = w.shape[1], w.shape[2]
            self.layers[k] = (n_in, n_out, at, at + w.size)
            wv = self.params[at : at + w.size].reshape(w.shape)
            bv = self.params[at + w.size : at + w.size + b.size].reshape(self.n_members, 1, n_out)
            views.append((wv[0], bv[0, 0]) if self.n_members == 1 else (wv, bv))  # plain 2-D matmuls for one member
            at += w.size + b.size
        self._width = int(self.layers[:, 1].max())
        w_first, self.b0 = views[0]
        self.w_obs, self.w_act = w_first[..., : self.obs_dim, :], w_first[..., self.obs_dim :, :]
        self.hidden = views[1:]
        kernel = _compiled_kernel() if backend != "numpy" else None
        if backend == "numba" and kernel is None:
            from shieldgym.errors import MissingDependencyError

            raise MissingDependencyError("NumpyCostCritic(backend='numba') needs numba: pip install numba.")
        self._kernel = kernel
        self.backend: str = "numpy" if kernel is None else "numba"
        if weights == "int16" and kernel is None:
            raise ValueError("weights='int16' needs the numba backend (pip install numba).")
        self.weights: str = "int16" if weights == "int16" or (weights == "auto" and kernel is not None) else "float32"
        if self.weights == "int16":
            self._quantise()

    def _quantise(self) -> None:
        """16-bit copy of the float32 weights (per-unit scales) and the bound's constants ``gamma``."""
        n_layers = self.layers.shape[0]
        w32: list[np.ndarray] = []  # float64 copies of the float32 weights, (E, in, out) per layer
        qs, scales, biases = [], [], []
        self.layers16 = np.zeros_like(self.layers)
        q_at = s_at = 0
        for k in range(n_layers):
            n_in, n_out, w_at, b_at = (int(v) for v in self.layers[k])
            w = self.params[w_at : w_at + self.n_members * n_in * n_out].reshape(self.n_members, n_in, n_out)
            w = w.astype(np.float64)
            peak = np.abs(w).max(axis=1)  # (E, out)
            # 32766, not 32767: the float32 rounding of the scale cannot push |q| past the int16 range
            sc = np.where(peak > 0, peak / 32766.0, 1.0).astype(np.float32)
            q = np.rint(w / sc[:, None, :].astype(np.float64))
            w32.append(w)
            qs.append(q.astype(np.int16).reshape(-1))
            scales.append(sc.reshape(-1))
            biases.append(self.params[b_at : b_at + self.n_members * n_out])
            self.layers16[k] = (n_in, n_out, q_at, s_at)
            q_at, s_at = q_at + q.size, s_at + sc.size
        self.q16 = np.concatenate(qs)
        self.scale16 = np.concatenate(scales)
        self.bias16 = np.concatenate(biases).astype(np.float32)
        # gamma[e, l] = |W_L|^T ... |W_(l+1)|^T s_l at the output unit (in float64, rounded up by 0.1%)
        self.gamma16 = np.zeros((self.n_members, n_layers))
        for e in range(self.n_members):
            for k in range(n_layers):
                n_out = int(self.layers[k, 1])
                v = self.scale16[self.layers16[k, 3] + e * n_out : self.layers16[k, 3] + (e + 1) * n_out].astype(np.float64)
                for later in range(k + 1, n_layers):
                    v = np.abs(w32[later][e]).T @ v
                self.gamma16[e, k] = 1.001 * float(v[0])
        # the kernels' arguments: the 16-bit weights with the bound's constants, then the float32 weights
        self._q16_args = (self.q16, self.scale16, self.bias16, self.layers16, self.gamma16)
        self._f32_args = (self.params, self.layers, self.n_members, self._width)

    def risk_bound(self, obs: np.ndarray, action: np.ndarray) -> tuple[float, float]:
        """``(risk, bound)`` of one row from the 16-bit weights (``weights="int16"``): ``risk`` clipped at 0
        and NaN for a non-finite input, and ``bound`` >= its distance to the float32 risk (up to float32
        rounding)."""
        if self.weights != "int16" or self._kernel is None:
            raise ValueError("risk_bound needs weights='int16'.")
        x, a = np.asarray(obs, np.float64), np.asarray(action, np.float64)
        value, bound = self._kernel.q16_forward(x, a, *self._q16_args, self.n_members, self._width)
        if not (np.isfinite(x).all() and np.isfinite(a).all()) or value != value:
            return math.nan, bound
        return max(value, 0.0), bound

    def __call__(self, obs: np.ndarray, actions: np.ndarray, threshold: float | None = None) -> np.ndarray:
        """Risk ``(B,)`` of each row (float32, clipped at 0, NaN where an input is NaN).

        Without ``threshold`` the float32 weights are used. With one (the shield passes its own) and
        16-bit weights, the 16-bit pass runs and each row within its bound of ``threshold`` is recomputed
        in float32, so ``risk > threshold`` is the float32 decision row by row.
        """
        if self._kernel is not None:
            # float32 / float64 arrays go in as they are (the kernel is compiled for each); anything else is cast
            x = obs if type(obs) is np.ndarray and obs.dtype.char in "fd" and obs.ndim == 2 else np.asarray(obs, np.float32)
            a = actions if type(actions) is np.ndarray and actions.dtype.char in "fd" else np.asarray(actions, np.float32)
            if a.ndim != 2:
                a = a.reshape(len(x), -1)
            if x.ndim != 2 or x.shape[1] != self.obs_dim or a.shape != (x.shape[0], self.layers[0, 0] - self.obs_dim):
                raise ValueError(
                    f"expected obs (B, {self.obs_dim}) and actions (B, {self.layers[0, 0] - self.obs_dim}), "
                    f"got {x.shape} and {a.shape}."
                )
            if threshold is not None and self.weights == "int16":
                return self._kernel.mlp_forward_q16(x, a, *self._q16_args, float(threshold), *self._f32_args)
            return self._kernel.mlp_forward(x, a, self.params, self.layers, self.n_members, self._width)
        x = np.asarray(obs, dtype=np.float32)  # float32 in, so no weight is up-cast per call
        a = np.asarray(actions, dtype=np.float32).reshape(len(x), -1)
        # (B, obs) @ ([E,] obs, H) -> ([E,] B, H)
        h = np.matmul(x, self.w_obs)
        h += np.matmul(a, self.w_act)
        h += self.b0
        for w, b in self.hidden:
            np.maximum(h, 0.0, out=h)
            h = np.matmul(h, w)
            h += b
        risk = h[:, 0] if self.n_members == 1 else h[..., 0].max(axis=0)  # (B,)
        return np.maximum(risk, 0.0)

    def risk_one(self, obs: np.ndarray, action: np.ndarray, threshold: float | None = None) -> float:
        """Risk of one observation ``(obs_dim,)`` and one action ``(A,)`` (no batch dimension).

        The same value as ``self(obs[None], action[None])[0]``, except that any NaN or inf in the
        inputs gives NaN. With the numba backend the finiteness test and the forward pass are one
        compiled call: this is the single-env check of :class:`~shieldgym.wrappers.shield.Shield`.
        Given ``threshold`` (the shield passes its own) and 16-bit weights, the 16-bit pass runs: the
        value is within :meth:`risk_bound`'s bound of the float32 one, and is the float32 one whenever
        ``threshold`` lies within that bound, so ``risk_one(o, a, t) > t`` always equals
        ``self(o[None], a[None])[0] > t``.

        Raises:
            ValueError: wrong input shapes.
        """
        n_act = int(self.layers[0, 0]) - self.obs_dim
        if self._kernel is not None and type(obs) is np.ndarray and type(action) is np.ndarray:
            if obs.shape != (self.obs_dim,) or action.shape != (n_act,):
                raise ValueError(f"expected obs ({self.obs_dim},) and action ({n_act},), got {obs.shape} and {action.shape}.")
            if threshold is not None and self.weights == "int16":
                return self._kernel.risk_one_q16(obs, action, *self._q16_args, float(threshold), *self._f32_args)
            return self._kernel.risk_one(obs, action, self.params, self.layers, self.n_members, self._width)
        x, a = np.asarray(obs, dtype=np.float64), np.asarray(action, dtype=np.float64)
        if x.shape != (self.obs_dim,) or a.shape != (n_act,):
            raise ValueError(f"expected obs ({self.obs_dim},) and action ({n_act},), got {x.shape} and {a.shape}.")
        if not (np.isfinite(x).all() and np.isfinite(a).all()):
            return math.nan
        return float(self(x[None], a[None])[0])


@dataclass(frozen=True)
class FitRecord:
    """Loss values logged during :func:`fit_cost_critic` (every ``log_every`` steps)."""

    step: int
    loss: float
    td_loss: float
    penalty: float
    q_data: float


def _array(data: Mapping[str, Any], key: str, n: int | None = None) -> np.ndarray:
    if key not in data:
        raise ValueError(f"transitions needs key {key!r}; got keys {sorted(data)}.")
    arr = np.asarray(data[key], dtype=np.float32)
    if n is not None and len(arr) != n:
        raise ValueError(f"transitions[{key!r}] has {len(arr)} rows, expected {n}.")
    if not np.isfinite(arr).all():
        raise ValueError(f"transitions[{key!r}] contains NaN or inf.")
    return arr


def fit_cost_critic(
    transitions: Mapping[str, Any],
    *,
    action_low: Any = None,
    action_high: Any = None,
    action_space: Any = None,
    gamma: float = 0.9,
    fit_steps: int = 5_000,
    batch_size: int = 256,
    n_critics: int = 2,
    net_arch: Sequence[int] = (256, 256),
    learning_rate: float = 3e-4,
    conservative_weight: float = 1.0,
    n_action_samples: int = 10,
    temperature: float = 1.0,
    tau: float = 0.005,
    policy: Callable[[np.ndarray], np.ndarray] | None = None,
    feature_index: Sequence[int] | None = None,
    seed: int = 0,
    progress: bool = True,
    log_every: int = 100,
    device: str = "cpu",
) -> CostCritic:
    """Fit a conservative (upper-bound) cost critic from offline transitions.

    Args:
        transitions: dict of arrays with ``obs`` ``(N, obs_dim)``, ``actions`` ``(N, A)``, ``costs``
            ``(N,)`` (>= 0), ``next_obs`` ``(N, obs_dim)``, ``dones`` ``(N,)`` (1 where the episode
            terminated, not truncated) and optionally ``next_actions`` ``(N, A)``.
        action_low, action_high: action bounds (or pass ``action_space``, a ``Box``).
        action_space: a ``gymnasium.spaces.Box`` giving the bounds.
        gamma: discount of the cost-to-go (0.9-0.95: a horizon of ~10-20 steps).
        fit_steps: gradient steps.
        batch_size: transitions per step.
        n_critics: ensemble size (risk is the max over members).
        net_arch: hidden layer sizes.
        learning_rate: Adam learning rate.
        conservative_weight: ``beta``, weight of the upper-bound penalty (0: plain TD).
        n_action_samples: uniform actions per state for the penalty (and for ``a'`` without
            ``next_actions``/``policy``).
        temperature: ``tau`` of the soft minimum.
        tau: Polyak coefficient of the target network.
        policy: ``policy(next_obs_batch) -> actions`` giving ``a'`` (used when the data has no
            ``next_actions``).
        feature_index: observation entries the critic sees (``None``: all).
        seed: seed of initialisation and sampling (the global torch RNG is left untouched).
        progress: show a tqdm progress bar.
        log_every: record a :class:`FitRecord` every this many steps (in ``critic.fit_history``).
        device: torch device.

    Returns:
        The fitted :class:`CostCritic` in eval mode (use it with ``ShieldWrapper(env, critic, ...)``).

    Raises:
        ValueError: missing or malformed arrays, negative costs, or bad hyperparameters.
    """
    if action_space is not None:
        action_low, action_high = action_space.low, action_space.high
    if action_low is None or action_high is None:
        raise ValueError("fit_cost_critic needs the action bounds: pass action_space=Box(...) or action_low/action_high.")
    if not 0.0 <= gamma < 1.0:
        raise ValueError(f"gamma must be in [0, 1), got {gamma!r}.")
    for name, value in (("fit_steps", fit_steps), ("batch_size", batch_size), ("n_action_samples", n_action_samples)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}.")
    if conservative_weight < 0:
        raise ValueError(f"conservative_weight must be >= 0, got {conservative_weight!r}.")
    obs = _array(transitions, "obs")
    n = len(obs)
    obs = obs.reshape(n, -1)
    actions = _array(transitions, "actions", n).reshape(n, -1)
    costs = _array(transitions, "costs", n).reshape(n)
    next_obs = _array(transitions, "next_obs", n).reshape(n, -1)
    dones = _array(transitions, "dones", n).reshape(n)
    if (costs < 0).any():
        raise ValueError(f"costs must be >= 0, got a minimum of {float(costs.min())}.")
    next_actions = _array(transitions, "next_actions", n).reshape(n, -1) if "next_actions" in transitions else None
    if next_actions is None and policy is not None:
        next_actions = np.asarray(policy(next_obs), dtype=np.float32).reshape(n, -1)

    dev = torch.device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        critic = CostCritic(obs.shape[1], np.asarray(action_low), np.asarray(action_high), n_critics, net_arch, feature_index)
    if critic.action_dim != actions.shape[1]:
        raise ValueError(f"actions have {actions.shape[1]} entries but the bounds have {critic.action_dim}.")
    feats = obs[:, critic.feature_index.numpy()]
    critic.obs_mean.copy_(torch.as_tensor(feats.mean(axis=0)))
    critic.obs_std.copy_(torch.as_tensor(np.maximum(feats.std(axis=0), 1e-3)))
    critic.to(dev)
    target = copy.deepcopy(critic).requires_grad_(False)
    optimizer = torch.optim.Adam(critic.q.parameters(), lr=learning_rate)
    gen = torch.Generator(device="cpu").manual_seed(seed)

    t_obs, t_act, t_cost = (torch.as_tensor(x, device=dev) for x in (obs, actions, costs))
    t_next, t_done = torch.as_tensor(next_obs, device=dev), torch.as_tensor(dones, device=dev)
    t_next_act = None if next_actions is None else torch.as_tensor(next_actions, device=dev)
    low, high = critic.action_low, critic.action_high
    k = n_action_samples

    def uniform_actions(b: int) -> torch.Tensor:
        u = torch.rand((b * k, critic.action_dim), generator=gen).to(dev)
        return low + u * (high - low)  # (B * N, A)

    history: list[FitRecord] = []
    steps: Any = range(1, fit_steps + 1)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc="fit cost critic", unit="step", leave=False)
    critic.train()
    for step in steps:
        idx = torch.randint(0, n, (min(batch_size, n),), generator=gen).to(dev)
        s, a, c, s2, d = t_obs[idx], t_act[idx], t_cost[idx], t_next[idx], t_done[idx]
        b = idx.numel()
        with torch.no_grad():
            if t_next_act is not None:
                next_q = target(s2, t_next_act[idx])  # (E, B)
            else:
                # safest continuation: min over N uniform actions of the pessimistic (max) member
                s2_rep = s2.repeat_interleave(k, dim=0)  # (B, obs) -> (B * N, obs)
                q_all = target(s2_rep, uniform_actions(b)).reshape(-1, b, k)  # (E, B, N)
                next_q = q_all.amax(dim=0).amin(dim=-1).unsqueeze(0)  # (1, B)
            y = bellman_target(c, d, next_q, gamma, reduce="max")
        q_data = critic(s, a)  # (E, B)
        q_sampled = None
        if conservative_weight > 0:
            q_sampled = critic(s.repeat_interleave(k, dim=0), uniform_actions(b)).reshape(-1, b, k)  # (E, B, N)
        out = conservative_td_loss(q_data, y, q_sampled, upper_bound=True, weight=conservative_weight, temperature=temperature)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        optimizer.step()
        with torch.no_grad():
            for p, tp in zip(critic.q.parameters(), target.q.parameters()):
                tp.lerp_(p, tau)
        if step % log_every == 0 or step == fit_steps:
            history.append(FitRecord(step, out.loss.item(), out.td_loss.item(), out.penalty.item(), q_data.mean().item()))
    critic.eval()
    critic.fit_history = history  # type: ignore[assignment]
    return critic
