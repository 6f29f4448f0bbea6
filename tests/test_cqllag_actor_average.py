"""CQLLag(actor_average_tau=...): the averaged actor's recurrence, which predictions use it, save/load."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from shieldgym.algos.cqllag import CQLLag
from tests.test_cqllag import CostEnv, FrozenExtractor, small_model

OBS = np.array([[0.2, 1.0], [0.6, 1.0], [1.0, 1.0]], dtype=np.float32)


def test_average_follows_the_exponential_recurrence_after_every_actor_step(monkeypatch: pytest.MonkeyPatch) -> None:
    tau = 0.25
    model = small_model(CostEnv(), actor_average_tau=tau)
    average = model.policy.actor_average
    assert average is not None
    names = [n for n, p in model.actor.named_parameters() if p.requires_grad]
    expected = {n: p.detach().clone() for n, p in model.actor.named_parameters()}  # the copy starts at the actor
    for n, p in average.named_parameters():
        torch.testing.assert_close(p, expected[n], rtol=0, atol=0)
    original = model._update_actor_average
    steps = []

    def record() -> None:
        live = dict(model.actor.named_parameters())
        for n in names:
            expected[n] = (1 - tau) * expected[n] + tau * live[n].detach()
        steps.append(1)
        original()

    monkeypatch.setattr(model, "_update_actor_average", record)
    model.learn(45)
    assert len(steps) == 45 - model.learning_starts > 0
    live = dict(model.actor.named_parameters())
    for n, p in average.named_parameters():
        torch.testing.assert_close(p, expected[n], rtol=1e-6, atol=1e-7)
        assert not p.requires_grad
        assert not torch.equal(p, live[n])  # the average lags the live actor


def test_deterministic_predictions_use_the_average_and_sampled_ones_the_live_actor() -> None:
    model = small_model(CostEnv(), actor_average_tau=0.1)
    model.learn(40)
    average = model.policy.actor_average
    assert average is not None
    obs_t = torch.as_tensor(OBS)
    with torch.no_grad():
        want = model.policy.unscale_action(average(obs_t, deterministic=True).numpy())
        live = model.policy.unscale_action(model.actor(obs_t, deterministic=True).numpy())
    got = model.predict(OBS, deterministic=True)[0]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert np.abs(got - live).max() > 1e-4

    class Unusable(torch.nn.Module):
        def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
            raise AssertionError("the averaged actor was used")

    model.policy.actor_average = Unusable()  # type: ignore[assignment]
    model.predict(OBS, deterministic=False)  # exploration: the live actor only
    model.learn(10, reset_num_timesteps=False)
    with pytest.raises(AssertionError, match="averaged actor"):
        model.predict(OBS, deterministic=True)


def test_without_average_deterministic_predictions_are_the_actor_mean() -> None:
    model = small_model(CostEnv())
    assert model.policy.actor_average is None and model.actor_average_tau is None
    model.learn(30)
    with torch.no_grad():
        want = model.policy.unscale_action(model.actor(torch.as_tensor(OBS), deterministic=True).numpy())
    np.testing.assert_allclose(model.predict(OBS, deterministic=True)[0], want, rtol=1e-6)


def test_save_load_round_trip_keeps_the_average(tmp_path: Path) -> None:
    model = small_model(CostEnv(), actor_average_tau=0.05)
    model.learn(50)
    model.save(tmp_path / "m.zip")
    loaded = CQLLag.load(tmp_path / "m.zip", env=CostEnv(), device="cpu")
    assert loaded.actor_average_tau == 0.05 and loaded.policy.actor_average is not None
    np.testing.assert_array_equal(model.predict(OBS, deterministic=True)[0], loaded.predict(OBS, deterministic=True)[0])
    before = {n: p.clone() for n, p in loaded.policy.actor_average.named_parameters()}
    loaded.learn(30, reset_num_timesteps=False)  # the loaded average keeps tracking its actor
    after = dict(loaded.policy.actor_average.named_parameters())
    assert any(not torch.equal(before[n], after[n]) for n in before)


def test_average_shares_frozen_parameters_and_copies_trainable_ones() -> None:
    model = small_model(
        CostEnv(),
        actor_average_tau=0.5,
        policy_kwargs=dict(net_arch=[16, 16], features_extractor_class=FrozenExtractor),
    )
    average = model.policy.actor_average
    assert average is not None
    live = dict(model.actor.named_parameters())
    for n, p in average.named_parameters():
        if live[n].requires_grad:
            assert p is not live[n]
        else:
            assert p is live[n]  # the frozen backbone is not duplicated
    assert any(not p.requires_grad for p in live.values())
    for opt in (model.actor.optimizer, model.critic.optimizer):
        in_opt = {id(p) for group in opt.param_groups for p in group["params"]}
        assert not in_opt & {id(p) for p in average.parameters()}
    assert not hasattr(average, "optimizer")


@pytest.mark.parametrize("tau", [0.0, -0.1, 1.5, math.nan])
def test_bad_average_rate_is_refused(tau: float) -> None:
    with pytest.raises(ValueError, match="actor_average_tau"):
        small_model(CostEnv(), actor_average_tau=tau)


def test_safe_predict_samples_around_the_averaged_actor() -> None:
    model = small_model(CostEnv(), actor_average_tau=0.1)
    model.learn(40)
    # one candidate: the deterministic action, which must be the averaged actor's (the one predict uses)
    np.testing.assert_allclose(
        model.safe_predict(OBS, n_samples=1, seed=0), model.predict(OBS, deterministic=True)[0], rtol=1e-6
    )
