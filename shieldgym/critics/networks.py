"""Critic networks evaluated as one batched ensemble.

An ensemble of ``E`` MLPs is stored as stacked weights ``(E, in, out)`` and evaluated with one
batched matmul per layer, so twin reward critics and twin cost critics (``E = 4``) cost one pass, not
four Python-level calls. This is what keeps the CQL update (every critic on ~30x the batch)
compute-bound.

With ReLU activations (the default) the whole ensemble MLP runs as one fused autograd function
(:class:`_FusedReLUMLP`) instead of module by module:

- the bias and ReLU are applied in place on the matmul's output, and the backward masks the
  incoming gradient in place with the saved (post-ReLU) output: ``relu'(z) = 1[h > 0]``;
- the backward writes each layer's input gradient into the buffer of an activation it no longer
  needs, and no input gradient is computed for inputs that need none;
- the large activation buffers are reused from call to call (:class:`_Workspace`), so a CQL update
  does not page-fault fresh memory for every ``(E, rows, hidden)`` tensor;
- a one-unit output layer runs as matrix-vector products (``addmv``), which on CPU are several times
  faster than a batched matmul with a single output column;
- :class:`QEnsemble` splits the first layer ``W_1 [s; a] = W_1^s s + W_1^a a``: given ``N`` actions
  per state, the state part is computed once per state and broadcast to its ``N`` actions, instead
  of repeating the state features ``N`` times (same parameters, views of the same weight).

The module-by-module path (``EnsembleMLP.fused = False``) computes the same values and gradients
and serves as the reference.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.autograd.function import once_differentiable

__all__ = ["EnsembleLinear", "EnsembleMLP", "QEnsemble"]

# Activations smaller than this many elements are allocated normally (cheap); larger ones are reused, up to a
# tensor of _POOL_MAX_NUMEL elements and _POOL_MAX_TOTAL elements kept in all (a large one-off inference batch
# is not held on to).
_POOL_MIN_NUMEL, _POOL_MAX_NUMEL, _POOL_MAX_TOTAL = 1 << 16, 1 << 24, 1 << 26
# At most this many distinct buffer shapes are kept (e.g. the CQL rows, the batch, the next-state batch).
_POOL_MAX_SHAPES = 8


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


class _Workspace:
    """Free activation buffers of one :class:`EnsembleMLP`, reused across calls.

    A buffer is either free (held here) or owned by exactly one forward pass until its backward has
    run; a graph dropped without backward simply keeps its buffers and they are freed with it. The
    workspace is never copied, pickled or saved: copies start empty.
    """

    def __init__(self) -> None:
        self._free: dict[tuple[tuple[int, ...], torch.dtype, torch.device], list[torch.Tensor]] = {}

    def take(self, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """An uninitialised tensor of ``shape`` with ``like``'s dtype and device."""
        free = self._free.get((shape, like.dtype, like.device))
        if free:
            return free.pop()
        return torch.empty(shape, dtype=like.dtype, device=like.device)

    def give(self, *tensors: torch.Tensor) -> None:
        """Return buffers no longer referenced by anything but the caller."""
        for t in tensors:
            if not _POOL_MIN_NUMEL <= t.numel() <= _POOL_MAX_NUMEL:
                continue
            key = (tuple(t.shape), t.dtype, t.device)
            free = self._free.pop(key, [])
            free.append(t)
            self._free[key] = free[-4:]  # re-inserted: most recently used shapes last
        # drop the least recently used shapes beyond the limits
        while len(self._free) > _POOL_MAX_SHAPES or sum(t.numel() for ts in self._free.values() for t in ts) > _POOL_MAX_TOTAL:
            del self._free[next(iter(self._free))]

    def clear(self) -> None:
        """Drop every free buffer."""
        self._free.clear()

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._free = {}

    def __deepcopy__(self, memo: dict[int, Any]) -> _Workspace:
        return _Workspace()


def _mask_relu_grad_(grad: torch.Tensor, activation: torch.Tensor) -> None:
    # grad *= 1[activation > 0], in place (activation is the post-ReLU output, so > 0 iff pre-activation > 0)
    torch.ops.aten.threshold_backward.grad_input(grad, activation, 0.0, grad_input=grad)


def _members(x: torch.Tensor, n_members: int) -> torch.Tensor:
    # (R, d) shared by all members -> (E, R, d) broadcast view (no copy); (E, R, d) unchanged
    return x.unsqueeze(0).expand(n_members, -1, -1) if x.dim() == 2 else x


def _output_layer(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``(E, R, H) @ (E, H, out) + (E, 1, out)``; one output unit runs as ``E`` matrix-vector products.

    (A batched matmul with a single output column is several times slower than ``addmv`` on CPU.)
    """
    if weight.shape[-1] != 1:
        return torch.baddbmm(bias, h, weight)
    out = torch.empty((h.shape[0], h.shape[1], 1), dtype=h.dtype, device=h.device)
    for e in range(h.shape[0]):
        torch.addmv(bias[e, 0], h[e], weight[e, :, 0], out=out[e, :, 0])
    return out


class _FusedReLUMLP(torch.autograd.Function):
    """Forward and backward of an ensemble ReLU MLP ``E x [in -> H_1 -> ... -> out]`` in one function.

    Inputs: ``state`` ``(B, F)`` or ``(E, B, F)`` (or ``None``), ``rows`` ``(G B, A)`` or ``(E, G B, A)``
    holding ``G`` row groups of ``B`` rows, and the layers' ``weight, bias`` pairs. The first layer is
    ``h_1 = relu(rows W_1[F:] + (state W_1[:F] + b_1))`` with the state part computed once for the ``B``
    states and broadcast over the ``G`` groups (``F = 0``: a plain first layer on ``rows``).
    Output ``(E, G B, out)``. ``keep`` is False when no backward can follow (the buffers are freed at once).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        workspace: _Workspace,
        keep: bool,
        n_groups: int,
        state: torch.Tensor | None,
        rows: torch.Tensor,
        *params: torch.Tensor,
    ) -> torch.Tensor:
        weights, biases = params[0::2], params[1::2]
        n_members, n_rows = weights[0].shape[0], rows.shape[-2]
        n_state = 0 if state is None else state.shape[-1]
        w1 = weights[0]
        acts: list[torch.Tensor] = []  # post-ReLU outputs of the hidden layers, (E, G B, H_l)
        h = workspace.take((n_members, n_rows, w1.shape[-1]), rows)
        if state is None:
            torch.baddbmm(biases[0], _members(rows, n_members), w1, out=h)
            h.relu_()
        else:
            # state part once per state: (E, B, F) @ (E, F, H) + b_1 -> (E, B, H)
            base = torch.baddbmm(biases[0], _members(state, n_members), w1[:, :n_state])
            # action part group by group, (E, B, A) @ (E, A, H) + base into a small contiguous (E, B, H) scratch
            # (so the batched matmul is one call, not one per member), then its ReLU written to the group's rows
            w_act, rows_m, n_states = w1[:, n_state:].contiguous(), _members(rows, n_members), state.shape[-2]
            grouped = h.view(n_members, n_groups, n_states, h.shape[-1])
            scratch = workspace.take(tuple(base.shape), base)
            for g in range(n_groups):
                torch.baddbmm(base, rows_m[:, g * n_states : (g + 1) * n_states], w_act, out=scratch)
                torch.clamp_min(scratch, 0.0, out=grouped[:, g])
            workspace.give(scratch)
        acts.append(h)
        for w, b in zip(weights[1:-1], biases[1:-1]):
            h = workspace.take((n_members, n_rows, w.shape[-1]), rows)
            torch.baddbmm(b, acts[-1], w, out=h)
            h.relu_()
            acts.append(h)
        out = _output_layer(acts[-1], weights[-1], biases[-1])  # (E, G B, out), a fresh tensor
        if not keep:
            workspace.give(*acts)
            acts = []
        ctx.workspace, ctx.n_groups, ctx.n_state, ctx.acts, ctx.consumed = workspace, n_groups, n_state, acts, False
        ctx.save_for_backward(state, rows, *weights)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        if ctx.consumed:
            raise RuntimeError(
                "The fused ensemble MLP supports one backward per forward (its buffers are reused); "
                "set EnsembleMLP.fused = False to backpropagate through the same graph twice."
            )
        ctx.consumed = True
        state, rows, *weights = ctx.saved_tensors
        acts: list[torch.Tensor] = ctx.acts
        workspace: _Workspace = ctx.workspace
        n_members, n_state, n_groups = weights[0].shape[0], ctx.n_state, ctx.n_groups
        need_state, need_rows = ctx.needs_input_grad[3], ctx.needs_input_grad[4]
        n_layers = len(weights)
        grad_w: list[torch.Tensor | None] = [None] * n_layers
        grad_b: list[torch.Tensor | None] = [None] * n_layers
        owned = list(acts)  # buffers to hand back to the workspace at the end

        g = grad_out.contiguous()  # (E, R, out): gradient at the output of layer n_layers - 1
        for layer in range(n_layers - 1, 0, -1):
            h_in = acts[layer - 1]  # (E, R, H_in), post-ReLU input of this layer
            single = weights[layer].shape[-1] == 1  # a one-unit output layer: matrix-vector products
            if single:
                # (E, H_in, 1): h_in^T g per member
                grad_w[layer] = torch.stack([torch.mv(h_in[e].T, g[e, :, 0]) for e in range(n_members)]).unsqueeze(-1)
            else:
                grad_w[layer] = torch.bmm(h_in.transpose(1, 2), g)  # (E, H_in, H_out)
            grad_b[layer] = g.sum(dim=1, keepdim=True)
            # input gradient (E, R, H_in), written over this layer's own (no longer needed) output if it fits
            dead = acts[layer] if layer < n_layers - 1 else None
            if dead is not None and dead.shape == h_in.shape:
                g_in = dead
            else:
                g_in = workspace.take(tuple(h_in.shape), h_in)
                owned.append(g_in)
            if single:
                torch.mul(g, weights[layer].transpose(1, 2), out=g_in)  # outer product (E, R, 1) x (E, 1, H_in)
            else:
                torch.bmm(g, weights[layer].transpose(1, 2), out=g_in)
            _mask_relu_grad_(g_in, h_in)  # ReLU backward, in place
            g = g_in
        # first layer; g is (E, G B, H_1)
        w1 = weights[0]
        grad_w1 = torch.empty_like(w1)
        grad_w1[:, n_state:] = torch.bmm(_members(rows, n_members).transpose(1, 2), g)  # (E, A, H_1)
        if state is None:
            g_state = g
        else:
            # the state part was broadcast over the G groups: its gradient is the sum over them
            g_state = g.view(n_members, n_groups, -1, g.shape[-1]).sum(dim=1)  # (E, B, H_1)
            grad_w1[:, :n_state] = torch.bmm(_members(state, n_members).transpose(1, 2), g_state)
        grad_w[0], grad_b[0] = grad_w1, g_state.sum(dim=1, keepdim=True)
        grad_rows = grad_state = None
        if need_rows:
            grad_rows = torch.bmm(g, w1[:, n_state:].transpose(1, 2))  # (E, R, A)
            if rows.dim() == 2:
                grad_rows = grad_rows.sum(dim=0)  # shared input: sum over members
        if need_state and state is not None:
            grad_state = torch.bmm(g_state, w1[:, :n_state].transpose(1, 2))  # (E, B, F)
            if state.dim() == 2:
                grad_state = grad_state.sum(dim=0)
        ctx.acts = []
        workspace.give(*owned)
        grads: list[torch.Tensor | None] = [None, None, None, grad_state, grad_rows]
        for gw, gb in zip(grad_w, grad_b):
            grads += [gw, gb]
        return tuple(grads)


class EnsembleMLP(nn.Module):
    """``E`` MLPs with the same architecture, evaluated together.

    Args:
        in_dim: input size.
        n_members: ensemble size ``E``.
        net_arch: hidden layer sizes (default two layers of 256).
        out_dim: output size of each member.
        activation: activation class between layers.

    ``forward`` takes ``(B, in)`` (shared input, broadcast to every member) or ``(E, B, in)`` and
    returns ``(E, B, out)``. With ``nn.ReLU`` the network runs as one fused autograd function;
    ``fused = False`` runs the layers one by one (same values and gradients, more memory traffic).
    The fused function supports one backward per forward.

    Example:
        >>> mlp = EnsembleMLP(5, n_members=4, net_arch=(32, 32))
        >>> mlp(torch.zeros(7, 5)).shape
        torch.Size([4, 7, 1])
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
        if len(net_arch) < 1:
            raise ValueError(f"net_arch needs at least one hidden layer, got {list(net_arch)}.")
        self.in_dim, self.n_members, self.out_dim = in_dim, n_members, out_dim
        sizes = [in_dim, *net_arch]
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(sizes):
            act = activation()
            if hasattr(act, "inplace"):
                # The matmul's output is not needed for its own backward, so the activation may overwrite
                # it: one (E, B, hidden) tensor less per layer on the module-by-module path.
                act.inplace = True  # type: ignore[assignment]
            layers += [EnsembleLinear(n_members, a, b), act]
        layers.append(EnsembleLinear(n_members, sizes[-1], out_dim))
        self.net = nn.Sequential(*layers)
        self.fused = activation is nn.ReLU
        self._workspace = _Workspace()

    def free_buffers(self) -> None:
        """Release the reused activation buffers of the fused path (they are re-allocated by the next call).

        The fused path keeps, per input shape, the buffers of its last call: for the CQL update about
        ``3 * E * rows * hidden`` floats (97 MB for 4 critics on 31 x 256 rows of 256 units).
        """
        self._workspace.clear()

    def linears(self) -> list[EnsembleLinear]:
        """The ensemble layers, input to output."""
        return [m for m in self.net if isinstance(m, EnsembleLinear)]

    def _fused(self, n_groups: int, state: torch.Tensor | None, rows: torch.Tensor) -> torch.Tensor:
        params = [p for lin in self.linears() for p in (lin.weight, lin.bias)]
        inputs = [rows, *params] if state is None else [state, rows, *params]
        keep = torch.is_grad_enabled() and any(t.requires_grad for t in inputs)
        return _FusedReLUMLP.apply(self._workspace, keep, n_groups, state, rows, *params)  # type: ignore[no-any-return]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() not in (2, 3) or (x.dim() == 3 and x.shape[0] != self.n_members) or x.shape[-1] != self.in_dim:
            want = f"(B, {self.in_dim}) or ({self.n_members}, B, {self.in_dim})"
            raise ValueError(f"EnsembleMLP expects {want}, got {tuple(x.shape)}.")
        if self.fused:
            return self._fused(1, None, x)
        # (B, in) -> (E, B, in): a broadcast view, no copy.
        return self.net(_members(x, self.n_members))

    def forward_split(self, state: torch.Tensor, rows: torch.Tensor, n_groups: int) -> torch.Tensor:
        """The ensemble on ``[state_b; rows_{g,b}]`` for ``n_groups`` groups of rows per state.

        Args:
            state: ``(B, F)`` inputs shared by each state's ``n_groups`` rows (the first ``F`` inputs).
            rows: ``(n_groups * B, in - F)``, group-major (row ``g * B + b`` belongs to state ``b``).
            n_groups: ``G``.

        Returns:
            ``(E, G * B, out)``, equal to ``forward(cat([state.repeat(G, 1), rows], -1))`` with the state
            part of the first layer computed once per state.
        """
        n_state = state.shape[-1]
        if state.dim() != 2 or rows.dim() != 2 or rows.shape[0] != n_groups * state.shape[0]:
            raise ValueError(
                f"forward_split expects state (B, F) and rows ({n_groups} * B, A), got {tuple(state.shape)} and "
                f"{tuple(rows.shape)}."
            )
        if n_state + rows.shape[-1] != self.in_dim:
            raise ValueError(f"state ({n_state}) + row ({rows.shape[-1]}) sizes must add up to in_dim={self.in_dim}.")
        if self.fused:
            return self._fused(n_groups, state, rows)
        x = torch.cat([state.repeat(n_groups, 1), rows], dim=-1)
        return self.net(_members(x, self.n_members))


class QEnsemble(nn.Module):
    """State-action value ensemble ``Q_e(s, a)``, ``e = 1..E``, in one batched pass.

    Args:
        features_dim: size of the (already extracted) observation features.
        action_dim: size of the flat action.
        n_critics: ensemble size ``E``.
        net_arch: hidden sizes.
        activation: activation class between layers (``nn.ReLU`` runs fused, see the module docstring).

    ``forward(features, actions)`` with ``features`` ``(B, F)`` and ``actions`` ``(B, A)`` returns
    ``(E, B)``; with ``actions`` ``(N, B, A)`` (``N`` actions per state) it returns ``(E, N, B)`` and
    the state part of the first layer is computed once per state.

    >>> q = QEnsemble(features_dim=3, action_dim=2, n_critics=4)
    >>> q(torch.zeros(5, 3), torch.zeros(5, 2)).shape
    torch.Size([4, 5])
    >>> q(torch.zeros(5, 3), torch.zeros(10, 5, 2)).shape
    torch.Size([4, 10, 5])
    """

    def __init__(
        self,
        features_dim: int,
        action_dim: int,
        n_critics: int = 2,
        net_arch: Sequence[int] = (256, 256),
        activation: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        self.features_dim, self.action_dim, self.n_critics = features_dim, action_dim, n_critics
        in_dim = features_dim + action_dim
        self.mlp = EnsembleMLP(in_dim, n_members=n_critics, net_arch=net_arch, out_dim=1, activation=activation)

    def forward(self, features: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        if features.dim() != 2 or actions.dim() not in (2, 3) or actions.shape[-2] != features.shape[0]:
            raise ValueError(
                f"QEnsemble expects features (B, F) and actions (B, A) or (N, B, A), got {tuple(features.shape)} and "
                f"{tuple(actions.shape)}."
            )
        if actions.shape[-1] != self.action_dim or features.shape[-1] != self.features_dim:
            raise ValueError(
                f"QEnsemble was built for features_dim={self.features_dim}, action_dim={self.action_dim}; got features "
                f"{tuple(features.shape)} and actions {tuple(actions.shape)}."
            )
        n_groups = 1 if actions.dim() == 2 else actions.shape[0]
        # (N, B, A) -> (N B, A), group-major; (E, N B, 1) -> (E, N, B) or (E, B)
        q = self.mlp.forward_split(features, actions.reshape(-1, self.action_dim), n_groups).squeeze(-1)
        return q if actions.dim() == 2 else q.view(self.n_critics, n_groups, -1)
