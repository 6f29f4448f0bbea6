"""One CQLLag update with the fused critic ensemble gives the gradients of the module-by-module reference."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.logger import configure

from shieldgym.algos.cqllag import CQLLag, load_offline_dataset

OBS, ACT, N_DATA = 5, 3, 400


class _Spaces(gym.Env):
    observation_space = spaces.Box(-np.inf, np.inf, (OBS,), np.float32)
    action_space = spaces.Box(-1.0, 1.0, (ACT,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        return np.zeros(OBS, np.float32), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        return np.zeros(OBS, np.float32), 0.0, False, False, {"cost": 0.0}


def _model(fused: bool, cls: type[CQLLag] = CQLLag, **kwargs: Any) -> CQLLag:
    rng = np.random.default_rng(0)
    obs = rng.standard_normal((N_DATA, OBS)).astype(np.float32)
    data = dict(
        observations=obs,
        actions=rng.uniform(-1, 1, (N_DATA, ACT)).astype(np.float32),
        rewards=rng.standard_normal(N_DATA).astype(np.float32),
        costs=rng.uniform(0, 1, N_DATA).astype(np.float32),
        next_observations=np.roll(obs, -1, axis=0),
        terminals=np.arange(N_DATA) % 100 == 99,
    )
    kwargs.setdefault("cql_n_actions", 4)
    model = cls(
        "MlpPolicy",
        _Spaces(),
        buffer_size=N_DATA,
        batch_size=64,
        policy_kwargs=dict(net_arch=[64, 64]),  # 4 critics x 13 x 64 rows x 64 units: the reused-buffer path
        episode_length=100,
        seed=0,
        device="cpu",
        **kwargs,
    )
    model.add_offline_data(load_offline_dataset(data))
    model.set_logger(configure(None, [""]))
    for critic in (model.critic, model.critic_target):
        critic.q_net.mlp.fused = fused
    return model


def _gradients_of_one_update(model: CQLLag, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[torch.Tensor]]:
    """The gradients each optimizer steps on during one update, captured at ``step``."""
    seen: dict[str, list[torch.Tensor]] = {}
    for name, opt in (("critic", model.critic.optimizer), ("actor", model.actor.optimizer)):

        def step(*args: Any, _opt: torch.optim.Optimizer = opt, _name: str = name, _step: Any = opt.step, **kw: Any) -> Any:
            seen[_name] = [p.grad.clone() for group in _opt.param_groups for p in group["params"] if p.grad is not None]
            return _step(*args, **kw)

        monkeypatch.setattr(opt, "step", step)
    np.random.seed(0)  # the replay buffer samples with numpy's global generator
    torch.manual_seed(0)  # proposal actions and policy noise
    model.train(gradient_steps=1, batch_size=64)
    return seen


def test_fused_update_matches_the_reference_gradients(monkeypatch: pytest.MonkeyPatch) -> None:
    fused, ref = _model(fused=True), _model(fused=False)
    for p, q in zip(fused.policy.parameters(), ref.policy.parameters()):
        assert torch.equal(p, q)  # same initialisation
    got = _gradients_of_one_update(fused, monkeypatch)
    want = _gradients_of_one_update(ref, monkeypatch)
    assert set(got) == {"critic", "actor"} and len(got["critic"]) == len(want["critic"]) == 6
    for name in ("critic", "actor"):
        for g, w in zip(got[name], want[name]):
            assert g.abs().sum() > 0
            torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-6)
    for p, q in zip(fused.critic.parameters(), ref.critic.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)  # and the same step was taken


class _PenaltiesAlwaysComputed(CQLLag):
    """CQLLag that takes the full proposal-action path even with both CQL weights 0."""

    @property
    def uses_cql_penalties(self) -> bool:
        return True


def test_update_without_penalties_skips_the_proposals_and_matches_the_full_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # one proposal per kind, so both paths draw the same policy noise before the full path's uniform proposals
    plain = _model(fused=True, alpha_cql=0.0, beta_cql=0.0, cql_n_actions=1)
    full = _model(fused=True, cls=_PenaltiesAlwaysComputed, alpha_cql=0.0, beta_cql=0.0, cql_n_actions=1)
    assert not plain.uses_cql_penalties and full.uses_cql_penalties
    rows: dict[str, list[tuple[int, ...]]] = {"plain": [], "full": []}
    for name, model in (("plain", plain), ("full", full)):
        model.critic.q_net.register_forward_hook(lambda _m, args, _out, _n=name: rows[_n].append(tuple(args[1].shape)))
    got = _gradients_of_one_update(plain, monkeypatch)
    want = _gradients_of_one_update(full, monkeypatch)
    # the plain update evaluates the critics on the batch's actions (and the actor's) only: (B, A) inputs
    assert rows["plain"] == [(64, ACT), (64, ACT)]
    assert rows["full"] == [(4, 64, ACT), (64, ACT)]  # data + uniform + pi(s) + pi(s') proposals, then the actor's
    for name in ("critic", "actor"):
        assert len(got[name]) == len(want[name]) > 0
        for g, w in zip(got[name], want[name]):
            assert g.abs().sum() > 0
            torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-7)
    logged = plain.logger.name_to_value
    assert logged["train/cql_reward_penalty"] == 0.0 and logged["train/cql_cost_penalty"] == 0.0
    assert logged["train/reward_critic_loss"] > 0 and logged["train/cost_critic_loss"] > 0


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        (dict(alpha_cql=0.0, beta_cql=0.0), False),
        (dict(alpha_cql=0.0, beta_cql=0.1), True),
        (dict(alpha_cql=1.0, beta_cql=0.0), True),
        (dict(alpha_cql=0.0, beta_cql=1.0, cql_beta_threshold=5.0), True),
    ],
)
def test_penalties_are_computed_unless_both_weights_are_zero_and_fixed(kwargs: dict[str, Any], expected: bool) -> None:
    assert _model(fused=True, **kwargs).uses_cql_penalties is expected
