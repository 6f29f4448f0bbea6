"""The one conservative TD loss: exact values, signs of the penalty gradients, bounds after fitting."""

import math

import pytest
import torch

from shieldgym.critics.losses import bellman_target, conservative_td_loss


def test_td_loss_exact_value_without_penalty():
    q = torch.tensor([[1.0, 2.0], [0.0, 4.0]])  # (E=2, B=2)
    y = torch.tensor([1.5, 3.0])
    out = conservative_td_loss(q, y, None, upper_bound=False)
    # member 0: 0.5 * mean(0.25, 1) = 0.3125 ; member 1: 0.5 * mean(2.25, 1) = 0.8125
    assert out.td_loss.item() == pytest.approx(1.125)
    assert out.penalty.item() == 0.0
    assert out.loss.item() == pytest.approx(1.125)


@pytest.mark.parametrize("upper_bound", [False, True])
def test_penalty_exact_value(upper_bound):
    q_data = torch.tensor([[1.0]])
    q_s = torch.tensor([[[0.0, 2.0]]])  # (E=1, B=1, N=2)
    out = conservative_td_loss(q_data, torch.tensor([1.0]), q_s, upper_bound=upper_bound, weight=2.0)
    # cost side: logsumexp(-q_s) + q_data ; reward side: logsumexp(q_s) - q_data
    sign = -1.0 if upper_bound else 1.0
    expected = math.log(math.exp(sign * 0.0) + math.exp(sign * 2.0)) - sign * 1.0
    assert out.penalty.item() == pytest.approx(expected, rel=1e-6)
    assert out.loss.item() == pytest.approx(0.0 + 2.0 * expected, rel=1e-6)


@pytest.mark.parametrize("upper_bound", [False, True])
def test_penalty_gradient_signs(upper_bound):
    """Reward side: gradient descent lowers Q on sampled actions and raises it on data.
    Cost side: the opposite (an upper bound on out-of-data actions)."""
    q_data = torch.tensor([[0.5, -0.2]], requires_grad=True)
    q_s = torch.tensor([[[0.1, 0.3, -0.4], [1.0, 0.0, 0.2]]], requires_grad=True)
    out = conservative_td_loss(q_data, torch.zeros(2), q_s, upper_bound=upper_bound, weight=1.0)
    out.penalty.backward()
    # descent moves along -grad
    if upper_bound:
        assert (q_s.grad < 0).all()  # -grad > 0: Q_c rises on sampled actions
        assert (q_data.grad > 0).all()  # Q_c falls on dataset actions
    else:
        assert (q_s.grad > 0).all()  # Q_r falls on sampled actions
        assert (q_data.grad < 0).all()  # Q_r rises on dataset actions


def test_log_density_shifts_logits():
    q_data = torch.zeros(1, 1)
    q_s = torch.zeros(1, 1, 2)
    dens = torch.log(torch.tensor([[0.5, 0.5]]))
    out = conservative_td_loss(q_data, torch.zeros(1), q_s, upper_bound=False, log_density=dens)
    assert out.penalty.item() == pytest.approx(math.log(2 * 2.0))


def test_bounds_after_fitting_one_state_bandit():
    """Fit a table Q over 3 actions with data only on action 0 (value 1): the reward critic's
    values at actions 1, 2 sink below the data value, the cost critic's rise above it."""
    torch.manual_seed(0)
    for upper_bound, check in [(False, lambda q: (q[1:] < 1.0).all()), (True, lambda q: (q[1:] > 1.0).all())]:
        table = torch.zeros(1, 3, requires_grad=True)  # (E=1, actions=3)
        opt = torch.optim.SGD([table], lr=0.1)
        for _ in range(300):
            q_data = table[:, :1]  # (1, B=1): value at the dataset action
            q_s = table.unsqueeze(1)  # (1, 1, N=3): all actions as proposals
            out = conservative_td_loss(q_data, torch.ones(1), q_s, upper_bound=upper_bound, weight=0.5)
            opt.zero_grad()
            out.loss.backward()
            opt.step()
        q = table.detach()[0]
        assert check(q), q
        assert abs(q[0].item() - 1.0) < 0.6  # the data action stays near its TD target


def test_bellman_target_reductions_and_no_grad():
    r = torch.tensor([1.0, 0.0])
    d = torch.tensor([0.0, 1.0])
    nq = torch.tensor([[2.0, 5.0], [4.0, 3.0]], requires_grad=True)
    assert bellman_target(r, d, nq, 0.5, "min").tolist() == [2.0, 0.0]
    assert bellman_target(r, d, nq, 0.5, "max").tolist() == [3.0, 0.0]
    assert bellman_target(r, d, nq, 0.5, "mean").tolist() == [2.5, 0.0]
    assert not bellman_target(r, d, nq, 0.5, "max").requires_grad
    with pytest.raises(ValueError, match="reduce"):
        bellman_target(r, d, nq, 0.5, "median")  # type: ignore[arg-type]


def test_bad_shapes_and_grad_target_are_rejected():
    with pytest.raises(ValueError, match="without gradient"):
        conservative_td_loss(torch.zeros(1, 2), torch.zeros(2, requires_grad=True), None, upper_bound=True)
    with pytest.raises(ValueError, match=r"\(E, B\)"):
        conservative_td_loss(torch.zeros(2), torch.zeros(2), None, upper_bound=True)
    with pytest.raises(ValueError, match=r"\(E, B, N\)"):
        conservative_td_loss(torch.zeros(1, 2), torch.zeros(2), torch.zeros(1, 3, 4), upper_bound=True)
