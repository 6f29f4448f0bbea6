"""Critic networks evaluated as one batched ensemble.

An ensemble of ``E`` MLPs is stored as stacked weights ``(E, in, out)`` and evaluated with one
``baddbmm`` per layer, so twin reward critics and twin cost critics (``E = 4``) cost one pass, not
four Python-level calls. This is what keeps the CQL update (every critic on ~30x the batch)
compute-bound.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["EnsembleLinear", "EnsembleMLP", "QEnsemble"]


class EnsembleLinear(nn.Module):
    """``E`` independent linear layers applied in one batched matmul.

    Input ``(E, B, in)`` -> output ``(E, B, out)``. Each member is initialised like ``nn.Linear``.
    """

    def __init__(self, n_members: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.n_members, self.in_features, self.out_features = n_members, in_features, out_features
        self.weight = nn.Parameter(torch.empty(n_members, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(n_members, 1, out_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # nn.Linear's default: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias.
        bound = 1.0 / math.sqrt(self.in_features)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (E, B, in) @ (E, in, out) + (E, 1, out) -> (E, B, out)
        return torch.baddbmm(self.bias, x, self.weight)

    def extra_repr(self) -> str:
        return f"n_members={self.n_members}, in_features={self.in_features}, out_features={self.out_features}"


class EnsembleMLP(nn.Module):
    """``E`` MLPs with the same architecture, evaluated together.

    Args:
        in_dim: input size.
        n_members: ensemble size ``E``.
        net_arch: hidden layer sizes (default two layers of 256).
        out_dim: output size of each member.
        activation: activation class between layers.

    ``forward`` takes ``(B, in)`` (shared input, broadcast to every member) or ``(E, B, in)`` and
    returns ``(E, B, out)``.
    """

    def __init__(
        self,
        in_dim: int,
        n_members: int = 2,
        net_arch: Sequence[int] = (256, 256),
        out_dim: int = 1,
        activation: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        if n_members < 1:
            raise ValueError(f"n_members must be >= 1, got {n_members}.")
        self.in_dim, self.n_members, self.out_dim = in_dim, n_members, out_dim
        sizes = [in_dim, *net_arch]
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(sizes):
            act = activation()
            if hasattr(act, "inplace"):
                # The matmul's output is not needed for its own backward, so the activation may overwrite
                # it: one (E, B, hidden) tensor less per layer on the CQL hot path.
                act.inplace = True  # type: ignore[assignment]
            layers += [EnsembleLinear(n_members, a, b), act]
        layers.append(EnsembleLinear(n_members, sizes[-1], out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            # (B, in) -> (E, B, in): a broadcast view, no copy.
            x = x.unsqueeze(0).expand(self.n_members, -1, -1)
        if x.dim() != 3 or x.shape[0] != self.n_members or x.shape[-1] != self.in_dim:
            want = f"(B, {self.in_dim}) or ({self.n_members}, B, {self.in_dim})"
            raise ValueError(f"EnsembleMLP expects {want}, got {tuple(x.shape)}.")
        return self.net(x)


class QEnsemble(nn.Module):
    """State-action value ensemble ``Q_e(s, a)``, ``e = 1..E``, in one batched pass.

    Args:
        features_dim: size of the (already extracted) observation features.
        action_dim: size of the flat action.
        n_critics: ensemble size ``E``.
        net_arch: hidden sizes.

    ``forward(features, actions)`` with ``features`` ``(B, F)`` and ``actions`` ``(B, A)`` returns
    ``(E, B)``.

    >>> q = QEnsemble(features_dim=3, action_dim=2, n_critics=4)
    >>> q(torch.zeros(5, 3), torch.zeros(5, 2)).shape
    torch.Size([4, 5])
    """

    def __init__(self, features_dim: int, action_dim: int, n_critics: int = 2, net_arch: Sequence[int] = (256, 256)) -> None:
        super().__init__()
        self.features_dim, self.action_dim, self.n_critics = features_dim, action_dim, n_critics
        self.mlp = EnsembleMLP(features_dim + action_dim, n_members=n_critics, net_arch=net_arch, out_dim=1)

    def forward(self, features: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        # (B, F) ++ (B, A) -> (B, F + A) -> (E, B, 1) -> (E, B)
        return self.mlp(torch.cat([features, actions], dim=-1)).squeeze(-1)
