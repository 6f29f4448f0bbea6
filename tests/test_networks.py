"""Ensemble critics: one batched pass equals E separate MLPs; the fused ReLU path equals the module path."""

import copy
import pickle

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


def _grads(module: nn.Module, *inputs: torch.Tensor) -> list[torch.Tensor]:
    return [p.grad.clone() for p in module.parameters()] + [x.grad.clone() for x in inputs if x.requires_grad]


def _run(module: nn.Module, inputs: tuple[torch.Tensor, ...], weight: torch.Tensor) -> list[torch.Tensor]:
    """Output and every gradient of sum(weight * module(*inputs))."""
    module.zero_grad()
    for x in inputs:
        x.grad = None
    out = module(*inputs)
    (out * weight).sum().backward()
    return [out.detach(), *_grads(module, *inputs)]


@pytest.mark.parametrize("net_arch", [(16, 16), (16, 8, 12), (8,)])
@pytest.mark.parametrize("n_groups", [1, 5])
def test_fused_qensemble_matches_module_path_values_and_gradients(net_arch: tuple[int, ...], n_groups: int) -> None:
    """The fused function (first layer split, in-place ReLU backward, reused buffers) gives the module path's
    values, parameter gradients and input gradients (features and actions), in float64 to 1e-10."""
    torch.manual_seed(0)
    fused = QEnsemble(5, 3, n_critics=4, net_arch=net_arch).double()
    ref = copy.deepcopy(fused)
    ref.mlp.fused = False
    assert fused.mlp.fused
    features = torch.randn(7, 5, dtype=torch.float64, requires_grad=True)
    shape = (7, 3) if n_groups == 1 else (n_groups, 7, 3)
    actions = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    weight = torch.randn((4, *shape[:-1]), dtype=torch.float64)
    for _ in range(2):  # the second call reuses the first call's buffers
        got = _run(fused, (features, actions), weight)
        want = _run(ref, (features, actions), weight)
        assert got[0].shape == (4, *shape[:-1])
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-10)


def test_fused_qensemble_float32_and_grouped_equals_flat_calls() -> None:
    """(N, B, A) actions give, group by group, the values of N separate (B, A) calls."""
    torch.manual_seed(1)
    q = QEnsemble(4, 2, n_critics=2, net_arch=(32, 32))
    f, a = torch.randn(6, 4), torch.randn(3, 6, 2)
    grouped = q(f, a)
    for n in range(3):
        torch.testing.assert_close(grouped[:, n], q(f, a[n]))


@pytest.mark.parametrize("shared", [True, False])
def test_fused_mlp_matches_module_path_with_wide_output(shared: bool) -> None:
    torch.manual_seed(2)
    fused = EnsembleMLP(6, n_members=3, net_arch=(8, 8), out_dim=4).double()
    ref = copy.deepcopy(fused)
    ref.fused = False
    x = torch.randn((9, 6) if shared else (3, 9, 6), dtype=torch.float64, requires_grad=True)
    weight = torch.randn(3, 9, 4, dtype=torch.float64)
    for g, w in zip(_run(fused, (x,), weight), _run(ref, (x,), weight)):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-10)


def test_inputs_without_grad_get_none_and_parameters_still_train() -> None:
    q = QEnsemble(3, 2, n_critics=2, net_arch=(8, 8))
    f, a = torch.randn(4, 3), torch.randn(2, 4, 2)
    q(f, a).sum().backward()
    assert f.grad is None and a.grad is None
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in q.parameters())


def test_workspace_buffers_are_reused_and_not_shared_between_live_graphs() -> None:
    torch.manual_seed(3)
    q = QEnsemble(3, 2, n_critics=2, net_arch=(256, 256))  # (2, 5 * 64, 256): above the pooling size
    f, a = torch.randn(64, 3), torch.randn(5, 64, 2)
    q(f, a).sum().backward()
    first = {id(p): p.grad.clone() for p in q.parameters()}
    free = {t.data_ptr() for ts in q.mlp._workspace._free.values() for t in ts}
    assert len(free) == 3  # two activations and one gradient buffer came back
    ref = copy.deepcopy(q)
    ref.mlp.fused = False
    # two graphs alive at once: the second forward must not take the first one's buffers
    out1, out2 = q(f, a), q(f, 2 * a)
    (out1.sum() + out2.pow(2).sum()).backward()
    ref.zero_grad()
    (ref(f, a).sum() + ref(f, 2 * a).pow(2).sum()).backward()
    for p, r in zip(q.parameters(), ref.parameters()):
        assert p.grad is not None and r.grad is not None
        # q's grads hold the first backward's too: subtract a third call's to compare the two-graph part
        torch.testing.assert_close(p.grad - first[id(p)], r.grad, rtol=1e-4, atol=1e-5)
    # inference calls take their buffers from the workspace and hand them back at once
    before = {t.data_ptr() for ts in q.mlp._workspace._free.values() for t in ts}
    with torch.no_grad():
        q(f, a)
    assert {t.data_ptr() for ts in q.mlp._workspace._free.values() for t in ts} == before
    q.mlp.free_buffers()
    assert not q.mlp._workspace._free


def test_second_backward_through_a_fused_graph_is_a_clear_error() -> None:
    q = QEnsemble(3, 2, n_critics=2, net_arch=(8,))
    out = q(torch.randn(4, 3), torch.randn(4, 2)).sum()
    out.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="one backward per forward"):
        out.backward()


def test_workspace_is_not_copied_pickled_or_saved() -> None:
    q = QEnsemble(3, 2, n_critics=2, net_arch=(256, 256))
    q(torch.randn(64, 3), torch.randn(5, 64, 2)).sum().backward()
    assert q.mlp._workspace._free
    assert not copy.deepcopy(q).mlp._workspace._free
    assert not pickle.loads(pickle.dumps(q)).mlp._workspace._free
    assert set(q.state_dict()) == {f"mlp.net.{i}.{n}" for i in (0, 2, 4) for n in ("weight", "bias")}


def test_other_activations_use_the_module_path() -> None:
    torch.manual_seed(4)
    q = QEnsemble(3, 2, n_critics=2, net_arch=(8,), activation=nn.Tanh)
    assert not q.mlp.fused
    f, a = torch.randn(4, 3), torch.randn(3, 4, 2)
    out = q(f, a)
    lin0, lin1 = q.mlp.linears()
    x = torch.cat([f.repeat(3, 1), a.reshape(-1, 2)], dim=-1)
    want = torch.tanh(x @ lin0.weight[1] + lin0.bias[1]) @ lin1.weight[1] + lin1.bias[1]
    torch.testing.assert_close(out[1], want.view(3, 4))


def test_bad_shapes_name_what_was_expected() -> None:
    q = QEnsemble(3, 2, n_critics=2, net_arch=(8,))
    with pytest.raises(ValueError, match="features_dim=3, action_dim=2"):
        q(torch.zeros(4, 3), torch.zeros(4, 5))
    with pytest.raises(ValueError, match=r"actions \(B, A\) or \(N, B, A\)"):
        q(torch.zeros(4, 3), torch.zeros(2, 5, 2))
    with pytest.raises(ValueError, match="at least one hidden layer"):
        EnsembleMLP(3, net_arch=())


def test_workspace_does_not_hold_on_to_a_large_one_off_batch() -> None:
    q = QEnsemble(3, 2, n_critics=4, net_arch=(4096,))
    with torch.no_grad():
        q(torch.randn(16, 3), torch.randn(2, 16, 2))  # (4, 32, 4096): kept for reuse
        kept = {key[0] for key in q.mlp._workspace._free}
        q(torch.randn(1100, 3), torch.randn(1100, 2))  # (4, 1100, 4096) = 18M elements: released
    assert kept == {(4, 32, 4096), (4, 16, 4096)}  # the activation and the first layer's per-group scratch
    assert {key[0] for key in q.mlp._workspace._free} == kept
