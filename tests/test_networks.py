"""Ensemble critics: one batched pass equals E separate MLPs."""

import pytest
import torch
from torch import nn

from shieldgym.critics.networks import EnsembleLinear, EnsembleMLP, QEnsemble


def test_ensemble_linear_matches_per_member_linear():
    torch.manual_seed(0)
    layer = EnsembleLinear(3, 4, 5)
    x = torch.randn(3, 7, 4)
    out = layer(x)
    for e in range(3):
        ref = x[e] @ layer.weight[e] + layer.bias[e]
        torch.testing.assert_close(out[e], ref)


def test_ensemble_mlp_members_are_independent_networks():
    torch.manual_seed(1)
    mlp = EnsembleMLP(6, n_members=4, net_arch=(8, 8))
    x = torch.randn(10, 6)
    out = mlp(x)
    assert out.shape == (4, 10, 1)
    # rebuild member 2 as a plain MLP and compare
    lins = [m for m in mlp.net if isinstance(m, EnsembleLinear)]
    h = x
    for i, lin in enumerate(lins):
        h = h @ lin.weight[2] + lin.bias[2]
        if i < len(lins) - 1:
            h = nn.functional.relu(h)
    torch.testing.assert_close(out[2], h)
    assert not torch.allclose(out[0], out[1])  # members differ


def test_qensemble_shapes_and_errors():
    q = QEnsemble(3, 2, n_critics=4, net_arch=(16,))
    assert q(torch.zeros(5, 3), torch.zeros(5, 2)).shape == (4, 5)
    with pytest.raises(ValueError, match="expects"):
        q.mlp(torch.zeros(5, 7))
    with pytest.raises(ValueError, match="n_members"):
        EnsembleMLP(3, n_members=0)


def test_gradients_reach_every_member():
    q = QEnsemble(3, 2, n_critics=2, net_arch=(8,))
    q(torch.randn(4, 3), torch.randn(4, 2)).sum().backward()
    for p in q.parameters():
        assert p.grad is not None and (p.grad.abs().sum(dim=tuple(range(1, p.dim()))) > 0).all()


def test_inplace_activation_gives_the_same_gradients_as_out_of_place():
    torch.manual_seed(3)
    q = QEnsemble(5, 2, n_critics=3, net_arch=(16, 16))
    assert all(m.inplace for m in q.mlp.net if isinstance(m, nn.ReLU))
    f, a = torch.randn(9, 5), torch.randn(9, 2)
    q(f, a).pow(2).sum().backward()
    grads = [p.grad.clone() for p in q.parameters()]
    q.zero_grad()
    for m in q.mlp.net:
        if isinstance(m, nn.ReLU):
            m.inplace = False
    q(f, a).pow(2).sum().backward()
    for g, p in zip(grads, q.parameters()):
        torch.testing.assert_close(g, p.grad)
