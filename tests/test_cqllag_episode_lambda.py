"""CQLLag with ``lambda_source="episode_cost"``: the multiplier follows the measured cost of finished episodes.

And with ``"deterministic_episode_cost"``: only the episodes played by the deterministic policy take a step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.logger import KVWriter, Logger
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.vec_env import DummyVecEnv

from shieldgym.algos.cqllag import CQLLag

EP_LEN = 4
LIMIT = 4.0  # per-episode limit d; the dual step divides the error by max(d, 1) = 4


class ScriptedCostEnv(gym.Env):
    """Episodes of ``EP_LEN`` steps whatever the actions; episode ``k`` (from 0) costs ``episode_costs[k]``.

    The whole episode cost is paid at its last step (``info["cost"]`` is 0 before), so the measured
    episode cost is exact and independent of the policy. Reward ``-|a|``; truncated at ``EP_LEN``.
    """

    observation_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self, episode_costs: list[float]) -> None:
        self.episode_costs = episode_costs
        self.episode, self.t = -1, 0

    def _obs(self) -> np.ndarray:
        return np.array([self.t / EP_LEN, 1.0], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.episode, self.t = self.episode + 1, 0
        return self._obs(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        last = self.t >= EP_LEN
        cost = self.episode_costs[min(self.episode, len(self.episode_costs) - 1)] if last else 0.0
        return self._obs(), -abs(float(action[0])), False, last, {"cost": cost}


def make_model(env: Any, **kw: Any) -> CQLLag:
    defaults: dict[str, Any] = dict(
        learning_starts=2,
        batch_size=8,
        cql_n_actions=2,
        policy_kwargs=dict(net_arch=[8]),
        cost_limit=LIMIT,
        episode_length=EP_LEN,
        lambda_source="episode_cost",
        lambda_lr=0.5,
        seed=0,
        device="cpu",
    )
    defaults.update(kw)
    return CQLLag("MlpPolicy", env, **defaults)


def offline_data(rng: np.random.Generator, actions: np.ndarray, cost: float, terminals: np.ndarray) -> dict[str, np.ndarray]:
    """DSRL-style arrays: uniform observations in [0, 1]^2, the given actions, reward 0, a constant cost; without
    terminals, a timeout every ``EP_LEN`` steps."""
    n = len(actions)
    observations = rng.uniform(0.0, 1.0, (n, 2)).astype(np.float32)
    next_observations = rng.uniform(0.0, 1.0, (n, 2)).astype(np.float32)
    return dict(
        observations=observations,
        actions=np.asarray(actions, np.float32),
        rewards=np.zeros(n, np.float32),
        costs=np.full(n, cost, np.float32),
        next_observations=next_observations,
        terminals=terminals,
        timeouts=np.zeros(n, bool) if terminals.any() else np.arange(n) % EP_LEN == EP_LEN - 1,
    )


def lambdas_per_episode(model: CQLLag, episodes: int) -> list[float]:
    """Learn one episode at a time (continuing the same run) and read lambda after each."""
    values = []
    for k in range(episodes):
        model.learn(EP_LEN, reset_num_timesteps=k == 0)
        values.append(float(model.lagrange.value))
    return values


def lambdas_per_vec_round(build: Any, rounds: int) -> tuple[CQLLag, list[float]]:
    """A 2-env VecEnv (env 0 costs 12 per episode, env 1 costs 0); lambda after each round of one episode per env."""
    model = build(DummyVecEnv([lambda: ScriptedCostEnv([12.0]), lambda: ScriptedCostEnv([0.0])]))
    values = []
    for k in range(rounds):
        model.learn(2 * EP_LEN, reset_num_timesteps=k == 0)
        values.append(float(model.lagrange.value))
    return model, values


def test_lambda_rises_while_the_episode_cost_exceeds_the_limit_and_falls_to_zero_below_it() -> None:
    # cost 12 > 4: + 0.5 * (12 - 4) / 4 = +1 per episode; cost 0: 0.5 * (0 - 4) / 4 = -0.5, projected at 0
    model = make_model(ScriptedCostEnv([12.0, 12.0, 0.0, 0.0, 0.0, 0.0, 0.0]))
    assert lambdas_per_episode(model, 7) == [1.0, 2.0, 1.5, 1.0, 0.5, 0.0, 0.0]
    assert list(model.ep_cost_buffer) == [12.0, 12.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert model._n_updates > 0  # the gradient steps ran but did not move lambda


def test_episode_at_the_limit_leaves_lambda_and_max_value_clips() -> None:
    model = make_model(ScriptedCostEnv([4.0, 40.0, 40.0]), lambda_init=0.75, lambda_max=2.0)
    # 4 = d: no change; 40: +0.5 * 36 / 4 = +4.5, clipped at 2
    assert lambdas_per_episode(model, 3) == [0.75, 2.0, 2.0]


def test_small_limit_uses_a_unit_scale() -> None:
    # d = 0.5 < 1: the error is divided by max(d, 1) = 1, so cost 2.5 gives +0.5 * (2.5 - 0.5) = +1
    model = make_model(ScriptedCostEnv([2.5, 0.0]), cost_limit=0.5)
    assert lambdas_per_episode(model, 2) == [1.0, 0.75]


def test_lambda_stays_at_its_initial_value_until_the_first_episode_ends() -> None:
    model = make_model(ScriptedCostEnv([100.0]), lambda_init=0.3, learning_starts=1)
    model.learn(EP_LEN - 1)
    assert model._n_updates == EP_LEN - 2 and float(model.lagrange.value) == 0.3
    assert model.logger.name_to_value["train/lambda"] == pytest.approx(0.3)
    model.learn(1, reset_num_timesteps=False)  # the episode ends here: one step of 0.5 * 96 / 4
    assert float(model.lagrange.value) == pytest.approx(0.3 + 12.0)


def test_error_clip_makes_rises_and_falls_equally_fast() -> None:
    # unclipped: cost 40 -> +0.5 * 36 / 4 = +4.5; clipped at 1: +0.5 per costly episode, -0.5 per safe one
    model = make_model(ScriptedCostEnv([40.0, 40.0, 0.0, 6.0, 0.0, 0.0]), lambda_error_clip=1.0)
    # 6: error (6 - 4) / 4 = 0.5, inside the clip -> +0.25
    assert lambdas_per_episode(model, 6) == [0.5, 1.0, 0.5, 0.75, 0.25, 0.0]
    pid = make_model(ScriptedCostEnv([40.0]), lambda_error_clip=2.0, pid_lagrangian=dict(kp=0.5, ki=0.25))
    assert lambdas_per_episode(pid, 2) == [1.0 + 0.5, 1.0 + 1.0]  # delta clipped to 2: kp 2 * 0.5 + ki I


def test_lambda_lr_down_lowers_lambda_faster_than_it_rose() -> None:
    # cost 12 against d = 4: +0.5 * 8 / 4 = +1; cost 0: -1.5 * 4 / 4 = -1.5, projected at 0
    model = make_model(ScriptedCostEnv([12.0, 12.0, 0.0, 12.0, 0.0, 0.0]), lambda_lr_down=1.5)
    assert lambdas_per_episode(model, 6) == [1.0, 2.0, 0.5, 1.5, 0.0, 0.0]
    with pytest.raises(ValueError, match="lambda_lr_down applies to plain dual ascent"):
        make_model(ScriptedCostEnv([0.0]), lambda_lr_down=1.0, pid_lagrangian=dict(ki=0.5))
    with pytest.raises(ValueError, match="lambda_lr_down must be a finite number > 0"):
        make_model(ScriptedCostEnv([0.0]), lambda_lr_down=-1.0)


def test_lambda_delay_holds_the_multiplier_for_the_first_env_steps() -> None:
    # no dual step for the episodes that end within the first 2 * EP_LEN env steps, then +1 per costly episode
    model = make_model(ScriptedCostEnv([12.0]), lambda_delay_steps=2 * EP_LEN, lambda_init=0.25)
    assert lambdas_per_episode(model, 4) == [0.25, 0.25, 1.25, 2.25]
    assert list(model.ep_cost_buffer) == [12.0] * 4  # the delayed episodes are still measured
    # with lambda read from the critic, no step is taken during the delay either
    critic = make_model(ScriptedCostEnv([12.0]), lambda_source="critic", lambda_delay_steps=3 * EP_LEN, lambda_init=0.25)
    critic.learn(3 * EP_LEN)
    assert critic._n_updates > 0 and float(critic.lagrange.value) == 0.25
    critic.learn(EP_LEN, reset_num_timesteps=False)
    assert float(critic.lagrange.value) != 0.25
    for bad in (-1, 2.5):
        with pytest.raises(ValueError, match="lambda_delay_steps must be an integer >= 0"):
            make_model(ScriptedCostEnv([0.0]), lambda_delay_steps=bad)
    with pytest.raises(ValueError, match="lambda_error_clip must be a finite number > 0"):
        make_model(ScriptedCostEnv([0.0]), lambda_error_clip=0.0)


def test_every_env_of_a_vecenv_takes_one_step_per_finished_episode() -> None:
    # env 0 costs 12 (+1), env 1 costs 0 (-0.5); both finish together, in the VecEnv's order
    model, values = lambdas_per_vec_round(make_model, 3)
    assert values == [0.5, 1.0, 1.5]
    assert list(model.ep_cost_buffer) == [12.0, 0.0] * 3


def test_pid_multiplier_reads_the_normalised_episode_error() -> None:
    # delta = (C - 4) / 4: 2, 2, -1; kp 0.5, ki 0.25 -> integral 2, 4, 3 -> lambda 1.5, 2.0, 0.25
    model = make_model(ScriptedCostEnv([12.0, 12.0, 0.0]), pid_lagrangian=dict(kp=0.5, ki=0.25))
    assert lambdas_per_episode(model, 3) == pytest.approx([1.5, 2.0, 0.25], abs=1e-12)
    assert int(model.lagrange.n_updates) == 3


def test_default_dual_step_size_depends_on_the_source() -> None:
    env = ScriptedCostEnv([0.0])
    assert make_model(env, lambda_lr=None).lambda_lr == 0.05
    assert make_model(env, lambda_lr=None, lambda_source="critic").lambda_lr == 1e-3
    assert make_model(env, lambda_lr=None, lambda_source="deterministic_episode_cost").lambda_lr == 0.05
    with pytest.raises(ValueError, match=r"lambda_source must be one of \[.*\], got 'episodes'"):
        make_model(env, lambda_source="episodes")


def test_offline_training_still_reads_the_critic() -> None:
    rng = np.random.default_rng(0)
    n = 64
    data = offline_data(rng, rng.uniform(-1.0, 1.0, (n, 1)), cost=1.0, terminals=np.zeros(n, bool))
    # d_disc = 0: every critic estimate (> 0 with costs 1) violates the limit, so each offline step raises lambda
    model = make_model(ScriptedCostEnv([0.0]), cost_limit_discounted=0.0, lambda_lr=1e-3, lambda_init=0.1)
    model.learn_offline(data, gradient_steps=20, log_interval=20)
    after_offline = float(model.lagrange.value)
    assert after_offline > 0.1
    # online again, the critic no longer drives it: unchanged until an episode (cost 0 < 4) ends
    model.learn(EP_LEN - 1)
    assert float(model.lagrange.value) == after_offline
    model.learn(1, reset_num_timesteps=False)
    assert float(model.lagrange.value) == pytest.approx(max(0.0, after_offline - 1e-3))


def test_normalised_actor_loss_divides_the_lagrangian_by_one_plus_lambda() -> None:
    losses = {}
    for normalise in (False, True):
        model = make_model(
            ScriptedCostEnv([4.0]), ent_coef=0.0, lambda_init=3.0, normalise_actor_loss=normalise, learning_starts=100
        )
        model.learn(4 * EP_LEN)  # fills the buffer without updates: both models are identical here
        model.set_random_seed(7)
        model.train(1, batch_size=8)
        losses[normalise] = model.logger.name_to_value["train/actor_loss"]
    # with ent_coef 0 the actor loss is the Lagrangian alone: (-Q_r + 3 Q_c) vs (-Q_r + 3 Q_c) / 4
    assert losses[False] != 0.0
    assert losses[True] == pytest.approx(losses[False] / 4.0, rel=1e-5)


def test_options_survive_save_and_load(tmp_path: Path) -> None:
    model = make_model(
        ScriptedCostEnv([12.0]), normalise_actor_loss=True, lambda_error_clip=5.0, lambda_delay_steps=1, lambda_lr_down=0.75
    )
    model.learn(2 * EP_LEN)
    model.save(tmp_path / "m")
    loaded = CQLLag.load(tmp_path / "m", env=ScriptedCostEnv([12.0]), device="cpu")
    assert loaded.lambda_source == "episode_cost" and loaded.normalise_actor_loss and loaded.lambda_lr == 0.5
    assert loaded.lambda_delay_steps == 1 and loaded.lagrange.error_clip == 5.0 and loaded.lagrange.lr_down == 0.75
    assert float(loaded.lagrange.value) == float(model.lagrange.value) == 2.0
    loaded.learn(EP_LEN, reset_num_timesteps=False)
    assert float(loaded.lagrange.value) == 3.0


def test_cost_reduce_combines_the_twin_cost_critics() -> None:
    q_c = torch.tensor([[1.0, 4.0], [3.0, 2.0]])  # (n_critics, B)
    env = ScriptedCostEnv([0.0])
    assert make_model(env)._reduce_cost(q_c).tolist() == [3.0, 4.0]
    assert make_model(env, cost_reduce="mean")._reduce_cost(q_c).tolist() == [2.0, 3.0]
    with pytest.raises(ValueError, match="cost_reduce must be 'max' or 'mean', got 'min'"):
        make_model(env, cost_reduce="min")


def test_behaviour_cloning_pulls_the_offline_policy_to_the_data_actions() -> None:
    # flat critics (reward 0 and cost 0 everywhere, no CQL): only the cloning term moves the actor
    n = 64
    data = offline_data(np.random.default_rng(1), np.full((n, 1), 0.5), cost=0.0, terminals=np.ones(n, bool))
    model = make_model(ScriptedCostEnv([0.0]), alpha_cql=0.0, beta_cql=0.0, ent_coef=0.0, bc_weight=10.0, learning_rate=1e-2)
    model.learn_offline(data, gradient_steps=300, log_interval=300)
    action, _ = model.predict(data["observations"][:8], deterministic=True)
    np.testing.assert_allclose(action, 0.5, atol=0.05)
    with pytest.raises(ValueError, match=r"bc_weight must be a finite number >= 0, got -1\.0"):
        make_model(ScriptedCostEnv([0.0]), bc_weight=-1.0)


class Capture(KVWriter):
    """Keeps every dump of the SB3 logger."""

    def __init__(self) -> None:
        self.dumps: list[dict[str, Any]] = []

    def write(self, key_values: dict[str, Any], key_excluded: Any, step: int = 0) -> None:
        self.dumps.append(dict(key_values))

    def close(self) -> None:
        pass


class RecordingCostEnv(ScriptedCostEnv):
    """:class:`ScriptedCostEnv` that records every executed action, per episode."""

    def __init__(self, episode_costs: list[float]) -> None:
        super().__init__(episode_costs)
        self.actions: list[list[float]] = []

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        self.actions.append([])
        return super().reset(seed=seed, options=options)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.actions[-1].append(float(action[0]))
        return super().step(action)


def deterministic_model(env: Any, **kw: Any) -> CQLLag:
    return make_model(env, lambda_source="deterministic_episode_cost", **kw)


def test_only_the_deterministic_episodes_move_lambda() -> None:
    # every 2nd episode (indices 1, 3, 5) is deterministic: 12 -> +1, 12 -> +1, 0 -> -0.5; the others give no step
    env = Monitor(ScriptedCostEnv([12.0, 12.0, 40.0, 12.0, 40.0, 0.0]))
    model = deterministic_model(env)
    assert lambdas_per_episode(model, 6) == [0.0, 1.0, 1.0, 2.0, 2.0, 1.5]
    assert list(model.ep_cost_buffer) == [12.0, 12.0, 40.0, 12.0, 40.0, 0.0]  # every episode is still measured
    det_costs = [c for c, _ in model.det_ep_buffer]
    assert det_costs == [12.0, 12.0, 0.0]
    assert all(r <= 0.0 for _, r in model.det_ep_buffer)  # the Monitor's return, -sum |a|
    assert model._episode_index.tolist() == [6]
    # every 3rd: only episode 2 (cost 40: +0.5 * 36 / 4 = +4.5) and 5 (0: -0.5)
    every3 = deterministic_model(ScriptedCostEnv([12.0, 12.0, 40.0, 12.0, 40.0, 0.0]), deterministic_every=3)
    assert lambdas_per_episode(every3, 6) == [0.0, 0.0, 4.5, 4.5, 4.5, 4.0]
    assert [c for c, _ in every3.det_ep_buffer] == [40.0, 0.0]


def test_deterministic_episodes_execute_and_store_the_policy_mean_without_noise() -> None:
    # learning rate 0: the policy never changes, so every action can be checked against predict() afterwards
    env = RecordingCostEnv([0.0])
    noise = NormalActionNoise(np.zeros(1), np.full(1, 0.3))
    model = deterministic_model(env, learning_rate=0.0, action_noise=noise, buffer_size=100)
    model.learn(4 * EP_LEN)
    assert model._n_updates > 0
    buf = model.replay_buffer
    stored = buf.actions[: 4 * EP_LEN, 0, 0]
    observations = buf.observations[: 4 * EP_LEN, 0]
    mean, _ = model.predict(observations, deterministic=True)
    executed = np.array(env.actions[:4], dtype=np.float32)
    for episode, deterministic in enumerate([False, True, False, True]):
        rows = slice(episode * EP_LEN, (episode + 1) * EP_LEN)
        # the action space is [-1, 1], so env and buffer actions coincide
        np.testing.assert_allclose(stored[rows], executed[episode], rtol=0, atol=1e-6)
        if deterministic:
            np.testing.assert_allclose(executed[episode], mean[rows, 0], rtol=0, atol=1e-6)
        else:  # random warm-up (episode 0) or the policy's samples plus noise
            assert np.abs(executed[episode] - mean[rows, 0]).min() > 1e-4


def test_episodes_started_during_warm_up_are_not_deterministic() -> None:
    # learning_starts 2 * EP_LEN + 1: episode 1 starts at step 4 (random actions), so the first deterministic
    # episode is episode 3; each costs 12 -> +1
    model = deterministic_model(ScriptedCostEnv([12.0]), learning_starts=2 * EP_LEN + 1)
    assert lambdas_per_episode(model, 5) == [0.0, 0.0, 0.0, 1.0, 1.0]
    # every 1: every episode from the first that starts after the warm-up (episode 3 at step 12)
    every1 = deterministic_model(ScriptedCostEnv([12.0]), learning_starts=2 * EP_LEN + 1, deterministic_every=1)
    assert lambdas_per_episode(every1, 5) == [0.0, 0.0, 0.0, 1.0, 2.0]
    for bad in (0, 1.5, True, -2):
        with pytest.raises(ValueError, match="deterministic_every must be an integer >= 1"):
            deterministic_model(ScriptedCostEnv([0.0]), deterministic_every=bad)


def test_each_env_of_a_vecenv_alternates_on_its_own() -> None:
    # env 0 costs 12, env 1 costs 0: both play their 2nd, 4th, ... episodes deterministically, together
    model, values = lambdas_per_vec_round(deterministic_model, 4)
    assert values == [0.0, 0.5, 0.5, 1.0]  # +1 - 0.5 per deterministic pair
    assert [c for c, _ in model.det_ep_buffer] == [12.0, 0.0, 12.0, 0.0]


def test_deterministic_source_logs_and_resumes_its_alternation(tmp_path: Path) -> None:
    model = deterministic_model(Monitor(ScriptedCostEnv([12.0])))
    capture = Capture()
    model.set_logger(Logger(folder=None, output_formats=[capture]))
    model.learn(3 * EP_LEN, log_interval=1)  # SB3 dumps after every episode
    last = capture.dumps[-1]
    assert last["rollout/ep_cost_mean"] == 12.0 and last["rollout/det_ep_cost_mean"] == 12.0
    assert last["rollout/det_ep_rew_mean"] <= 0.0 and last["rollout/lambda"] == 1.0
    assert "rollout/det_ep_cost_mean" not in capture.dumps[0]  # episode 0 is not deterministic
    assert float(model.lagrange.value) == 1.0
    model.save(tmp_path / "m")
    loaded = CQLLag.load(tmp_path / "m", env=ScriptedCostEnv([12.0]), device="cpu")
    assert loaded.lambda_source == "deterministic_episode_cost" and loaded.deterministic_every == 2
    assert loaded._episode_index.tolist() == [3] and len(loaded.det_ep_buffer) == 1
    # the loaded model starts a fresh episode, its 4th (index 3): deterministic, +1
    loaded.learn(EP_LEN, reset_num_timesteps=False)
    assert float(loaded.lagrange.value) == 2.0
    loaded.learn(EP_LEN, reset_num_timesteps=False)
    assert float(loaded.lagrange.value) == 2.0


def episode_obs() -> np.ndarray:
    return np.array([[t / EP_LEN, 1.0] for t in range(EP_LEN)], dtype=np.float32)


def test_the_best_frozen_copy_is_the_one_that_played_its_episode() -> None:
    # a learning actor (lr 1e-2): each deterministic episode (1, 3, 5) is played by a copy frozen at its start;
    # episode 3 costs 40 > 4, so the best is whichever of 1 and 5 has the higher return -sum |a|
    env = RecordingCostEnv([0.0, 0.0, 0.0, 40.0, 0.0, 0.0])
    model = make_model(env, lambda_source="episode_cost", deterministic_every=2, learning_rate=1e-2)
    model.learn(6 * EP_LEN)
    returns = {k: -float(np.sum(np.abs(env.actions[k]))) for k in (1, 3, 5)}
    best = max((1, 5), key=returns.__getitem__)
    record = model.load_best_deterministic()
    assert record["return"] == pytest.approx(returns[best], abs=1e-5) and record["cost"] == 0.0
    assert record["episodes"] == 1 and record["num_timesteps"] == (best + 1) * EP_LEN
    assert [c for c, _ in model.det_ep_buffer] == [0.0, 40.0, 0.0]
    # the loaded actor reproduces that episode's actions exactly
    action, _ = model.predict(episode_obs(), deterministic=True)
    np.testing.assert_allclose(action[:, 0], env.actions[best], rtol=0, atol=1e-6)
    # episode_cost still steps lambda on every episode: 0 -> -1 each (clipped at 0), 40 -> +4.5
    assert float(model.lagrange.value) == pytest.approx(4.5 - 2 * 0.5)


def test_each_frozen_copy_plays_its_repeats_and_is_scored_on_their_mean(tmp_path: Path) -> None:
    # every episode from the first after the warm-up (episode 1) is deterministic, two per frozen copy:
    # episodes 1-2 share one copy, 3-4 the next; the observations repeat, so a copy's two episodes act alike
    env = RecordingCostEnv([0.0, 2.0, 6.0, 0.0, 0.0])
    model = deterministic_model(env, deterministic_every=1, deterministic_repeats=2, learning_rate=1e-2)
    model.learn(5 * EP_LEN)
    np.testing.assert_array_equal(env.actions[1], env.actions[2])
    np.testing.assert_array_equal(env.actions[3], env.actions[4])
    assert np.abs(np.subtract(env.actions[2], env.actions[3])).max() > 1e-4
    # copy A: mean cost (2 + 6) / 2 = 4 <= 4 (feasible); copy B: 0
    returns = [-float(np.sum(np.abs(env.actions[k]))) for k in (1, 3)]
    best = model.best_deterministic
    assert best is not None and best["episodes"] == 2
    assert best["return"] == pytest.approx(max(returns), abs=1e-5)
    assert best["cost"] == (4.0 if returns[0] > returns[1] else 0.0)
    # the record survives save / load
    model.save(tmp_path / "m")
    loaded = CQLLag.load(tmp_path / "m", env=ScriptedCostEnv([0.0]), device="cpu")
    assert loaded.deterministic_repeats == 2 and loaded.best_deterministic["return"] == best["return"]
    loaded.load_best_deterministic()
    model.load_best_deterministic()
    np.testing.assert_array_equal(
        loaded.predict(episode_obs(), deterministic=True)[0], model.predict(episode_obs(), deterministic=True)[0]
    )


def test_no_feasible_or_no_deterministic_episode_is_a_clear_error() -> None:
    plain = make_model(ScriptedCostEnv([0.0]))
    assert plain.deterministic_every == 0
    plain.learn(3 * EP_LEN)
    assert plain.best_deterministic is None and not plain.det_ep_buffer
    with pytest.raises(ValueError, match="no deterministic training episode met the cost limit"):
        plain.load_best_deterministic()
    costly = deterministic_model(ScriptedCostEnv([12.0]))
    costly.learn(4 * EP_LEN)
    assert len(costly.det_ep_buffer) == 2 and costly.best_deterministic is None
    with pytest.raises(ValueError, match="deterministic_every must be an integer >= 1 with 'deterministic_episode_cost'"):
        deterministic_model(ScriptedCostEnv([0.0]), deterministic_every=0)
    for bad in (0, 2.5, float("nan")):
        with pytest.raises(ValueError, match="deterministic_repeats must be an integer >= 1"):
            deterministic_model(ScriptedCostEnv([0.0]), deterministic_repeats=bad)
