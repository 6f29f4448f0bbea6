"""The one conservative TD loss, used for the reward critic (lower bound) and the cost critic (upper bound).

Conservative Q-Learning (Kumar et al., 2020, "Conservative Q-Learning for Offline Reinforcement
Learning", eq. 4, CQL(H)) adds to the TD loss a penalty that pushes Q DOWN on actions drawn from a
proposal mu (uniform and policy samples) and UP on the dataset actions:

    P_r = tau * log sum_j exp(Q(s, a_j) / tau - log mu(a_j | s)) - Q(s, a_data)

so the learnt reward critic under-estimates out-of-data actions. For a COST critic the safe
direction is the opposite: over-estimate the cost of actions the data does not support (as in
CPQ, Xu et al., 2022, and the cost side of CQL-Lagrangian). Mirroring Q -> -Q gives

    P_c = tau * log sum_j exp(-Q_c(s, a_j) / tau - log mu(a_j | s)) + Q_c(s, a_data)

whose gradient raises Q_c on the sampled actions (most on those it currently thinks are cheapest)
and lowers it on dataset actions. Both are the same function with ``upper_bound`` choosing the sign.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch

__all__ = ["ConservativeTDLoss", "bellman_target", "conservative_td_loss"]


class ConservativeTDLoss(NamedTuple):
    """The parts of one conservative TD loss (scalars; ``loss = td_loss + weight * penalty``)."""

    loss: torch.Tensor
    td_loss: torch.Tensor
    penalty: torch.Tensor


def bellman_target(
    signal: torch.Tensor,
    dones: torch.Tensor,
    next_q: torch.Tensor,
    gamma: float,
    reduce: Literal["min", "max", "mean"],
) -> torch.Tensor:
    """One-step target ``y = signal + gamma * (1 - done) * reduce_e Q'_e(s', a')`` (no gradient).

    Args:
        signal: reward or cost, ``(B,)``.
        dones: 1.0 where the episode terminated (not truncated), ``(B,)``.
        next_q: target-network values at the next state, ``(E, B)``.
        gamma: discount.
        reduce: ``"min"`` for a reward critic (clipped double Q), ``"max"`` for a cost critic (the
            pessimistic choice for a cost is the larger estimate), ``"mean"`` otherwise.

    Returns:
        ``(B,)`` detached target.
    """
    with torch.no_grad():
        if reduce == "min":
            nq = next_q.min(dim=0).values
        elif reduce == "max":
            nq = next_q.max(dim=0).values
        elif reduce == "mean":
            nq = next_q.mean(dim=0)
        else:
            raise ValueError(f"reduce must be 'min', 'max' or 'mean', got {reduce!r}.")
        return signal + gamma * (1.0 - dones) * nq


def conservative_td_loss(
    q_data: torch.Tensor,
    target: torch.Tensor,
    q_sampled: torch.Tensor | None,
    *,
    upper_bound: bool,
    weight: float | torch.Tensor = 1.0,
    temperature: float = 1.0,
    log_density: torch.Tensor | None = None,
) -> ConservativeTDLoss:
    """TD loss plus the CQL(H) penalty, for a reward critic (lower bound) or a cost critic (upper bound).

    Args:
        q_data: critic values at dataset actions, ``(E, B)``.
        target: Bellman target, ``(B,)`` (shared by members) or ``(E, B)``; must carry no gradient.
        q_sampled: critic values at ``N`` proposal actions per state, ``(E, B, N)``; ``None`` gives the
            plain TD loss (penalty 0).
        upper_bound: ``False`` for a reward critic (pushed down on sampled actions), ``True`` for a
            cost critic (pushed up on sampled actions).
        weight: penalty weight (CQL's alpha for reward, beta for cost); a tensor is allowed for
            auto-tuned weights.
        temperature: ``tau`` of the soft maximum (soft minimum for the cost side).
        log_density: ``log mu(a_j | s)`` of the proposal actions, ``(B, N)`` or ``(E, B, N)``, for the
            importance-sampled estimate of CQL(H); ``None`` treats all samples as equally likely.

    Returns:
        :class:`ConservativeTDLoss` where ``td_loss = sum_e 0.5 * mean_b (Q_e - y)^2`` and
        ``penalty = sum_e mean_b P_e(s_b)`` (summed over members like SB3's twin critics).
    """
    if target.requires_grad:
        raise ValueError("target must be computed without gradient (use bellman_target or torch.no_grad()).")
    if q_data.dim() != 2:
        raise ValueError(f"q_data must be (E, B), got {tuple(q_data.shape)}.")
    # (E, B) vs (B,) -> broadcast over members.
    td_loss = 0.5 * ((q_data - target) ** 2).mean(dim=1).sum()
    if q_sampled is None:
        penalty = torch.zeros((), dtype=q_data.dtype, device=q_data.device)
    else:
        if q_sampled.dim() != 3 or q_sampled.shape[:2] != q_data.shape:
            raise ValueError(
                f"q_sampled must be (E, B, N) matching q_data {tuple(q_data.shape)}, got {tuple(q_sampled.shape)}."
            )
        sign = -1.0 if upper_bound else 1.0
        logits = sign * q_sampled / temperature
        if log_density is not None:
            logits = logits - log_density
        # soft max (reward) or soft min (cost) over the N proposal actions: (E, B, N) -> (E, B)
        soft = temperature * torch.logsumexp(logits, dim=-1)
        penalty = (soft - sign * q_data).mean(dim=1).sum()
    loss = td_loss + weight * penalty
    return ConservativeTDLoss(loss=loss, td_loss=td_loss, penalty=penalty)
