"""Frozen actor copies: frozen parameters shared, trainable state stored and restored."""

from __future__ import annotations

import pytest
import torch as th

from shieldgym.algos.cqllag.snapshots import frozen_copy, load_trainable_state, trainable_state


def net() -> th.nn.Sequential:
    th.manual_seed(0)
    model = th.nn.Sequential(th.nn.Linear(3, 4), th.nn.BatchNorm1d(4), th.nn.Linear(4, 2))
    model[0].requires_grad_(False)  # a frozen "backbone"
    return model


def test_frozen_copy_shares_frozen_parameters_and_copies_the_rest() -> None:
    live = net()
    live.train()
    copy = frozen_copy(live)
    assert copy[0].weight is live[0].weight and copy[0].bias is live[0].bias
    assert copy[2].weight is not live[2].weight and th.equal(copy[2].weight, live[2].weight)
    assert copy[1].running_mean is not live[1].running_mean
    assert not copy.training and live.training
    assert not any(p.requires_grad for p in copy.parameters()) and live[2].weight.requires_grad
    with th.no_grad():
        live[2].weight.add_(1.0)
    assert not th.equal(copy[2].weight, live[2].weight)


def test_trainable_state_round_trip_leaves_out_frozen_parameters() -> None:
    live = net()
    state = trainable_state(frozen_copy(live), live)
    batch_norm = {"1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked"}
    assert set(state) == batch_norm | {"2.weight", "2.bias"}
    before = live[2].weight.detach().clone()
    with th.no_grad():
        live[2].weight.mul_(3.0)
    load_trainable_state(live, state)
    assert th.equal(live[2].weight, before)
    with pytest.raises(ValueError, match=r"missing \['2.bias'\]"):
        load_trainable_state(live, {k: v for k, v in state.items() if k != "2.bias"})
    with pytest.raises(ValueError, match=r"unexpected \['extra'\]"):
        load_trainable_state(live, {**state, "extra": state["2.bias"]})
