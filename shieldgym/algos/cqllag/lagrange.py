"""Lagrange multipliers for the cost constraint of CQLLag.

The constrained problem ``max_pi J_r(pi)  s.t.  J_c(pi) <= d`` is solved through its Lagrangian
``min_{lambda >= 0} max_pi J_r(pi) - lambda * (J_c(pi) - d)``: the policy ascends the Lagrangian for
fixed ``lambda`` and ``lambda`` descends it, i.e. rises while the constraint is violated.

Two updaters, both ``nn.Module`` so their state saves with the model:

* :class:`LagrangeMultiplier`: projected gradient ascent on the dual,
  ``lambda <- max(0, lambda + lr * (J_c - d) / scale)``;
* :class:`PIDLagrangeMultiplier`: the PID Lagrangian of Stooke, Achiam and Abbeel (2020),
  "Responsive Safety in Reinforcement Learning by PID Lagrangian Methods", Algorithm 2, which damps
  the oscillation of plain dual ascent with a proportional and a derivative term.

Example:
    >>> lag = LagrangeMultiplier(limit=1.0, lr=0.5)
    >>> float(lag.update(3.0)), float(lag.update(3.0)), float(lag.update(0.0))
    (1.0, 2.0, 1.5)
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["LagrangeMultiplier", "PIDLagrangeMultiplier", "discounted_cost_limit"]


def discounted_cost_limit(episode_limit: float, gamma: float, episode_length: int) -> float:
    """Convert a per-episode cost limit ``d`` to the discounted scale of a cost critic.

    Assuming the cost is spread evenly over an episode of ``T`` steps (``d / T`` per step), its
    discounted sum from the first step is

        d_disc = (d / T) * sum_{t<T} gamma^t = d * (1 - gamma^T) / ((1 - gamma) * T).

    >>> round(discounted_cost_limit(25.0, 0.99, 1000), 4)
    2.4999

    Args:
        episode_limit: ``d``, the allowed undiscounted cost per episode (>= 0).
        gamma: discount factor in ``(0, 1]``.
        episode_length: ``T`` (>= 1).

    Returns:
        The discounted limit ``d_disc``.
    """
    if not (math.isfinite(episode_limit) and episode_limit >= 0):
        raise ValueError(f"cost_limit must be a finite number >= 0, got {episode_limit!r}.")
    if not (0.0 < gamma <= 1.0):
        raise ValueError(f"gamma must be in (0, 1], got {gamma!r}.")
    if int(episode_length) < 1:
        raise ValueError(f"episode_length must be >= 1, got {episode_length!r}.")
    if gamma == 1.0:
        return float(episode_limit)
    t = int(episode_length)
    return float(episode_limit * (1.0 - gamma**t) / ((1.0 - gamma) * t))


class LagrangeMultiplier(nn.Module):
    """``lambda >= 0`` by projected dual ascent: ``lambda <- max(0, lambda + lr * (J_c - d))``.

    Args:
        limit: the constraint threshold ``d`` on the scale of the cost estimates passed to :meth:`update`.
        lr: dual step size (> 0).
        init: initial ``lambda`` (>= 0).
        max_value: optional upper clip of ``lambda`` (keeps the actor loss bounded).
        error_clip: optional bound ``c`` on the (scaled) error, ``clip((J_c - d) / scale, -c, c)``. With a
            measured episode cost ``C >= 0`` and ``scale = d`` the error is at least -1, but unbounded above:
            one very costly episode moves ``lambda`` up as much as many safe ones move it down. ``c = 1``
            makes the step symmetric.
        lr_down: optional step size of the steps with a negative error (constraint met, ``lambda`` falls);
            default ``lr``. ``lr_down > lr`` lets ``lambda`` come back down from a costly stretch faster than
            it went up.

    ``update`` takes a float or a 0-dim tensor and performs no host synchronisation for tensors.
    """

    value: torch.Tensor

    def __init__(
        self,
        limit: float,
        lr: float = 1e-3,
        init: float = 0.0,
        max_value: float | None = None,
        error_clip: float | None = None,
        lr_down: float | None = None,
    ) -> None:
        super().__init__()
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"lambda_lr must be a finite number > 0, got {lr!r}.")
        if lr_down is not None and not (math.isfinite(lr_down) and lr_down > 0):
            raise ValueError(f"lambda_lr_down must be a finite number > 0, got {lr_down!r}.")
        if not (math.isfinite(init) and init >= 0):
            raise ValueError(f"lambda_init must be a finite number >= 0, got {init!r}.")
        if max_value is not None and not max_value >= init:
            raise ValueError(f"lambda_max must be >= lambda_init ({init}), got {max_value!r}.")
        if error_clip is not None and not (math.isfinite(error_clip) and error_clip > 0):
            raise ValueError(f"lambda_error_clip must be a finite number > 0, got {error_clip!r}.")
        self.limit, self.lr, self.max_value = float(limit), float(lr), max_value
        self.error_clip = None if error_clip is None else float(error_clip)
        self.lr_down = self.lr if lr_down is None else float(lr_down)
        self.register_buffer("value", torch.tensor(float(init), dtype=torch.float64))

    def _clip(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(min=0.0, max=self.max_value)

    def _error(self, cost_estimate: float | torch.Tensor, limit: float | None, scale: float) -> torch.Tensor:
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a finite number > 0, got {scale!r}.")
        cost = torch.as_tensor(cost_estimate, dtype=self.value.dtype, device=self.value.device)
        error = (cost - (self.limit if limit is None else float(limit))) / scale
        return error if self.error_clip is None else error.clamp(-self.error_clip, self.error_clip)

    @torch.no_grad()
    def update(self, cost_estimate: float | torch.Tensor, *, limit: float | None = None, scale: float = 1.0) -> torch.Tensor:
        """One dual step with the current estimate ``J_c`` of the policy's cost; returns the new ``lambda``.

        Args:
            cost_estimate: ``J_c``, a float or a 0-dim tensor.
            limit: the threshold of this step (default: the one given at construction). Lets one
                multiplier take steps on two scales, e.g. the critic's discounted estimate against
                ``d_disc`` and a measured episode cost against ``d``.
            scale: the error is divided by it, ``lambda <- max(0, lambda + lr * (J_c - d) / scale)``, so
                the step size does not depend on the cost's units (e.g. ``scale = max(d, 1)``).
        """
        error = self._error(cost_estimate, limit, scale)
        step = error * self.lr if self.lr_down == self.lr else torch.where(error < 0, error * self.lr_down, error * self.lr)
        self.value.copy_(self._clip(self.value + step))
        return self.value

    def extra_repr(self) -> str:
        return (
            f"limit={self.limit}, lr={self.lr}, lr_down={self.lr_down}, max_value={self.max_value}, "
            f"error_clip={self.error_clip}"
        )


class PIDLagrangeMultiplier(LagrangeMultiplier):
    """PID Lagrangian (Stooke et al., 2020, Algorithm 2).

    With ``delta_k = (J_c - d) / scale`` (``scale`` of :meth:`update`, 1 by default; clipped to
    ``[-error_clip, error_clip]`` when given)::

        I_k      = max(0, I_{k-1} + delta_k)                 # integral (the plain dual variable / ki)
        D_k      = max(0, Jbar_k - Jbar_{k-1})               # cost increase, smoothed by an EMA Jbar
        lambda_k = clip(kp * delta_k + ki * I_k + kd * D_k, 0, max_value)

    ``kp = kd = 0`` and ``ki = lr`` recovers :class:`LagrangeMultiplier` (for ``init = 0``).

    Args:
        limit: threshold ``d``.
        kp: proportional gain.
        ki: integral gain.
        kd: derivative gain.
        ema_decay: smoothing of ``J_c`` for the derivative term (0 = no smoothing).
        init: initial ``lambda`` (sets the integral to ``init / ki``).
        max_value: optional upper clip.
        error_clip: optional bound on ``delta_k``, as in :class:`LagrangeMultiplier`.
    """

    integral: torch.Tensor
    cost_ema: torch.Tensor
    prev_cost_ema: torch.Tensor
    n_updates: torch.Tensor

    def __init__(
        self,
        limit: float,
        kp: float = 0.0,
        ki: float = 1e-3,
        kd: float = 0.0,
        ema_decay: float = 0.0,
        init: float = 0.0,
        max_value: float | None = None,
        error_clip: float | None = None,
    ) -> None:
        super().__init__(limit, lr=ki, init=init, max_value=max_value, error_clip=error_clip)
        for name, gain in (("kp", kp), ("kd", kd)):
            if not (math.isfinite(gain) and gain >= 0):
                raise ValueError(f"PID gain {name} must be a finite number >= 0, got {gain!r}.")
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay!r}.")
        self.kp, self.ki, self.kd, self.ema_decay = float(kp), float(ki), float(kd), float(ema_decay)
        self.register_buffer("integral", torch.tensor(init / ki, dtype=torch.float64))
        self.register_buffer("cost_ema", torch.tensor(0.0, dtype=torch.float64))
        self.register_buffer("prev_cost_ema", torch.tensor(0.0, dtype=torch.float64))
        self.register_buffer("n_updates", torch.tensor(0, dtype=torch.int64))

    @torch.no_grad()
    def update(self, cost_estimate: float | torch.Tensor, *, limit: float | None = None, scale: float = 1.0) -> torch.Tensor:
        """One PID step; ``limit`` and ``scale`` as in :meth:`LagrangeMultiplier.update` (the EMA tracks ``J_c / scale``)."""
        delta = self._error(cost_estimate, limit, scale)
        cost = torch.as_tensor(cost_estimate, dtype=self.value.dtype, device=self.value.device) / scale
        self.integral.copy_((self.integral + delta).clamp(min=0.0))
        # EMA of the cost; the first update initialises it, so D_1 = 0.
        first = self.n_updates == 0
        self.prev_cost_ema.copy_(torch.where(first, cost, self.cost_ema))
        self.cost_ema.copy_(torch.where(first, cost, self.ema_decay * self.cost_ema + (1.0 - self.ema_decay) * cost))
        derivative = (self.cost_ema - self.prev_cost_ema).clamp(min=0.0)
        self.value.copy_(self._clip(self.kp * delta + self.ki * self.integral + self.kd * derivative))
        self.n_updates += 1
        return self.value

    def extra_repr(self) -> str:
        return (
            f"limit={self.limit}, kp={self.kp}, ki={self.ki}, kd={self.kd}, ema_decay={self.ema_decay}, "
            f"error_clip={self.error_clip}"
        )
