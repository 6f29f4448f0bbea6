"""CQLLag's cost-critic options: ``cost_critic_policy`` (which policy ``Q_c`` evaluates) and ``cost_gamma`` (its discount)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from shieldgym.algos.cqllag import CQLLag, discounted_cost_limit
from tests.test_cqllag import CostEnv, small_model
from tests.test_cqllag_update_equivalence import _model

BATCH = 64


def _expected_cost_loss(model: CQLLag, gamma: float = 0.99) -> float:
    """``sum_e 0.5 mean_b (Q_ce(s, a) - y)^2`` with ``y = c + gamma (1 - done) max_e Q'_ce(s', tanh(mu(s')))``.

    Draws the batch the update will draw (numpy's global generator, seeded as the update is).
    """
    np.random.seed(0)
    batch = model.replay_buffer.sample(BATCH)
    n_c = model.policy.n_critics
    with torch.no_grad():
        mean, _, _ = model.actor.get_action_dist_params(batch.next_observations)
        next_q = model.critic_target(batch.next_observations, torch.tanh(mean))[n_c:]  # (2, B)
        dones = batch.dones.view(-1)
        y = batch.costs.view(-1) + gamma * (1 - dones) * next_q.max(dim=0).values
        q = model.critic(batch.observations, batch.actions)[n_c:]
        return float((0.5 * (q - y).pow(2).mean(dim=1)).sum())


def _logged_cost_loss(model: CQLLag, torch_seed: int) -> float:
    np.random.seed(0)  # the replay buffer samples with numpy's global generator
    torch.manual_seed(torch_seed)  # the policy noise
    model.train(gradient_steps=1, batch_size=BATCH)
    return float(model.logger.name_to_value["train/cost_critic_loss"])


@pytest.mark.parametrize("torch_seed", [0, 1])
def test_cost_target_reads_the_mean_action_at_the_next_state(torch_seed: int) -> None:
    model = _model(fused=True, alpha_cql=0.0, beta_cql=0.0, cost_critic_policy="deterministic")
    want = _expected_cost_loss(model)
    assert want > 0
    # the same value whatever noise the policy draws: no sampled action enters the cost side
    assert _logged_cost_loss(model, torch_seed) == pytest.approx(want, rel=1e-5)


def test_stochastic_cost_target_differs_from_the_mean_action_target() -> None:
    model = _model(fused=True, alpha_cql=0.0, beta_cql=0.0)
    assert model.cost_critic_policy == "stochastic"  # the default
    want = _expected_cost_loss(model)
    got = [_logged_cost_loss(_model(fused=True, alpha_cql=0.0, beta_cql=0.0), seed) for seed in (0, 1)]
    assert got[0] != pytest.approx(want, rel=1e-3)
    assert got[0] != pytest.approx(got[1], rel=1e-3)  # sampled next actions: the noise changes the target


def test_cost_target_with_penalties_reads_the_mean_action_too() -> None:
    # beta_cql > 0 takes the proposal path; the TD part of the cost loss still reads tanh(mu(s'))
    want = _expected_cost_loss(_model(fused=True, alpha_cql=0.0, beta_cql=0.5, cost_critic_policy="deterministic"))
    for seed in (0, 1):
        model = _model(fused=True, alpha_cql=0.0, beta_cql=0.5, cost_critic_policy="deterministic")
        assert model.uses_cql_penalties
        total = _logged_cost_loss(model, seed)  # td + beta * penalty
        penalty = model.logger.name_to_value["train/cql_cost_penalty"]
        assert penalty != 0
        assert total - 0.5 * penalty == pytest.approx(want, rel=1e-4)


def _actor_gradients(lambda_init: float, cost_critic_policy: str) -> dict[str, torch.Tensor]:
    model = _model(
        fused=True,
        alpha_cql=0.0,
        beta_cql=0.0,
        lambda_source="episode_cost",  # lambda stays at lambda_init while train() runs
        lambda_init=lambda_init,
        cost_critic_policy=cost_critic_policy,
    )
    seen: dict[str, torch.Tensor] = {}
    step = model.actor.optimizer.step

    def capture(*args: Any, **kw: Any) -> Any:
        seen.update({n: p.grad.clone() for n, p in model.actor.named_parameters() if p.grad is not None})
        return step(*args, **kw)

    model.actor.optimizer.step = capture  # type: ignore[method-assign]
    np.random.seed(0)
    torch.manual_seed(0)
    model.train(gradient_steps=1, batch_size=BATCH)
    assert float(model.lagrange.value) == lambda_init
    return seen


def test_actor_cost_term_moves_the_mean_only() -> None:
    # actor loss: ent * log pi(a|s) - Q_r(s, a) + lambda Q_c(s, tanh(mu(s))); lambda reaches the mean head only
    low, high = _actor_gradients(0.0, "deterministic"), _actor_gradients(10.0, "deterministic")
    for name in ("log_std.weight", "log_std.bias"):
        assert low[name].abs().sum() > 0
        torch.testing.assert_close(low[name], high[name], rtol=1e-6, atol=1e-8)
    assert not torch.allclose(low["mu.weight"], high["mu.weight"], rtol=1e-3)
    # with the sampled action in the cost term, lambda reaches the spread too
    low, high = _actor_gradients(0.0, "stochastic"), _actor_gradients(10.0, "stochastic")
    assert not torch.allclose(low["log_std.weight"], high["log_std.weight"], rtol=1e-3)


def test_learns_online_and_the_option_survives_save_load(tmp_path: Path) -> None:
    model = small_model(
        CostEnv(), cost_critic_policy="deterministic", lambda_source="deterministic_episode_cost", lambda_lr=0.1
    )
    model.learn(60)
    assert model.num_timesteps == 60 and model._n_updates > 0
    assert np.isfinite(model.logger.name_to_value["train/cost_critic_loss"])
    model.save(tmp_path / "m.zip")
    loaded = CQLLag.load(tmp_path / "m.zip", device="cpu")
    assert loaded.cost_critic_policy == "deterministic"
    obs = np.array([[0.2, 1.0], [0.6, 1.0]], dtype=np.float32)
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])


def test_rejects_an_unknown_cost_critic_policy() -> None:
    with pytest.raises(ValueError, match="cost_critic_policy must be 'stochastic' or 'deterministic', got 'mean'"):
        small_model(CostEnv(), cost_critic_policy="mean")


def test_cost_gamma_discounts_the_cost_target_only() -> None:
    kwargs: dict[str, Any] = dict(alpha_cql=0.0, beta_cql=0.0, cost_critic_policy="deterministic")
    model = _model(fused=True, cost_gamma=0.5, **kwargs)
    assert model.gamma == 0.99 and model.cost_gamma == 0.5
    want = _expected_cost_loss(model, gamma=0.5)
    assert want != pytest.approx(_expected_cost_loss(model, gamma=0.99), rel=1e-3)
    assert _logged_cost_loss(model, 0) == pytest.approx(want, rel=1e-5)
    # the reward side keeps gamma: the same reward-critic loss as without cost_gamma
    default = _model(fused=True, **kwargs)
    _logged_cost_loss(default, 0)
    reward_losses = [m.logger.name_to_value["train/reward_critic_loss"] for m in (model, default)]
    assert reward_losses[0] == pytest.approx(reward_losses[1], rel=1e-6)


def test_cost_gamma_converts_the_discounted_limit_and_survives_save_load(tmp_path: Path) -> None:
    model = small_model(CostEnv(), cost_gamma=0.9, cost_limit=2.0)
    # d (1 - g^T) / ((1 - g) T) with d = 2, g = 0.9, T = EP_LEN = 5
    assert model.cost_limit_discounted == pytest.approx(2.0 * (1 - 0.9**5) / (0.1 * 5))
    assert model.cost_limit_discounted == pytest.approx(discounted_cost_limit(2.0, 0.9, 5))
    assert small_model(CostEnv(), cost_limit=2.0).cost_limit_discounted == pytest.approx(discounted_cost_limit(2.0, 0.99, 5))
    model.learn(40)
    model.save(tmp_path / "m.zip")
    loaded = CQLLag.load(tmp_path / "m.zip", device="cpu")
    assert loaded.cost_gamma == 0.9 and loaded.cost_limit_discounted == model.cost_limit_discounted


@pytest.mark.parametrize("bad", [0.0, -0.5, 1.5, float("nan")])
def test_rejects_a_cost_gamma_outside_0_1(bad: float) -> None:
    with pytest.raises(ValueError, match="cost_gamma must be in"):
        small_model(CostEnv(), cost_gamma=bad)
