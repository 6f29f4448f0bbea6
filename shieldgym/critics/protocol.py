"""The safety-critic protocol and adapters that turn models into critics.

A *critic* is any callable ``critic(obs_batch, action_batch) -> risk_batch`` working on NumPy arrays
with a leading batch dimension: ``obs_batch`` is ``(B, *obs_shape)`` (or a dict of such arrays for a
``Dict`` observation space), ``action_batch`` is ``(B, *action_shape)`` (``(B,)`` integers for a
``Discrete`` space) and the result is a float array of shape ``(B,)``: the estimated risk (e.g. the
expected discounted cost ``Q_c(s, a)``) of each action. Larger is riskier.

:func:`as_critic` adapts the common sources:

- a torch module ``module(obs, actions)`` returning ``(B,)``, ``(B, 1)`` or an ensemble ``(E, B)``
  (reduced by the maximum over members, the pessimistic choice for a cost);
- a trained model with a ``cost_critic()`` method (e.g. ``CQLLag``) returning one of these;
- a plain callable, used as is.

A critic may also offer ``critic.risk_one(obs, action) -> float``: the risk of one observation and one
action without a batch dimension, NaN when any input is NaN or inf. When it does (the fast forward of
a fitted :class:`~shieldgym.critics.fit.CostCritic` does), the single-env shield calls it instead of the
batched call, which saves the batch bookkeeping and the separate finiteness test on every step. If its
third parameter is named ``threshold``, the shield passes its threshold, and ``risk_one(o, a, t) > t``
must equal the exact risk's comparison (the 16-bit weights of the fast forward recompute in float32
near ``t``).

Example:
    >>> import numpy as np
    >>> critic = as_critic(lambda obs, act: np.abs(obs[:, 0] + act[:, 0]))
    >>> critic(np.zeros((2, 1)), np.array([[0.5], [-2.0]]))
    array([0.5, 2. ])
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

__all__ = ["Critic", "TorchCritic", "as_critic"]


@runtime_checkable
class Critic(Protocol):
    """``critic(obs_batch, action_batch) -> risk_batch`` on NumPy arrays, risk shape ``(B,)``."""

    def __call__(self, obs: Any, actions: np.ndarray) -> np.ndarray: ...


class TorchCritic:
    """Runs a torch module as a NumPy critic, with no gradient tracking and no per-call copies.

    Inputs are wrapped with ``torch.from_numpy`` (a view, no copy, when they are already
    ``float32`` and contiguous); the module runs under ``torch.inference_mode``.

    Args:
        module: ``module(obs, actions)`` returning ``(B,)``, ``(B, 1)`` or ``(E, B)`` (ensemble).
        reduce: how an ensemble output ``(E, B)`` becomes ``(B,)``: ``"max"`` (default, pessimistic
            for a cost) or ``"mean"``.
        device: device the module lives on.
    """

    def __init__(self, module: Any, reduce: Literal["max", "mean"] = "max", device: str = "cpu") -> None:
        import torch

        if reduce not in ("max", "mean"):
            raise ValueError(f"reduce must be 'max' or 'mean', got {reduce!r}.")
        self.module = module
        self.reduce = reduce
        self.device = torch.device(device)
        self._torch = torch
        module.eval()

    def _tensor(self, x: Any) -> Any:
        if isinstance(x, Mapping):
            return {k: self._tensor(v) for k, v in x.items()}
        arr = np.asarray(x)
        if arr.dtype != np.float32 and arr.dtype.kind == "f":
            arr = arr.astype(np.float32)
        t = self._torch.from_numpy(np.ascontiguousarray(arr))
        return t if self.device.type == "cpu" else t.to(self.device)

    def __call__(self, obs: Any, actions: np.ndarray) -> np.ndarray:
        with self._torch.inference_mode():
            out = self.module(self._tensor(obs), self._tensor(actions))
            if out.dim() == 2 and out.shape == (len(actions), 1):
                out = out[:, 0]  # (B, 1) -> (B,)
            elif out.dim() == 2:
                out = out.amax(dim=0) if self.reduce == "max" else out.mean(dim=0)  # (E, B) -> (B,)
            return out.float().cpu().numpy()

    def __repr__(self) -> str:
        return f"TorchCritic({type(self.module).__name__}, reduce={self.reduce!r})"


def as_critic(obj: Any, *, reduce: Literal["max", "mean"] = "max", device: str = "cpu") -> Critic:
    """Adapt ``obj`` to the critic protocol.

    Args:
        obj: a torch module, an object with a ``cost_critic()`` method (a trained ``CQLLag``), an
            object with a ``numpy_critic()`` method (a fitted :class:`~shieldgym.critics.fit.CostCritic`,
            whose fast forward, compiled by numba when installed, is ~20x faster than torch for one
            observation), or a callable.
        reduce: ensemble reduction for torch modules returning ``(E, B)``.
        device: device of a torch module.

    Returns:
        A callable ``critic(obs_batch, action_batch) -> (B,)`` float array.

    Raises:
        TypeError: ``obj`` is none of the above.
    """
    numpy_critic = getattr(obj, "numpy_critic", None)
    if callable(numpy_critic) and reduce == "max":
        return numpy_critic()
    cost_critic = getattr(obj, "cost_critic", None)
    if callable(cost_critic):
        return as_critic(cost_critic(), reduce=reduce, device=device)
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(obj, torch.nn.Module):
        return TorchCritic(obj, reduce=reduce, device=device)
    if callable(obj):
        return obj
    raise TypeError(
        f"critic must be a callable critic(obs_batch, action_batch) -> risk (B,), a torch module or a model with "
        f"cost_critic(); got {type(obj).__name__}."
    )
