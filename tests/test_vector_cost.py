"""Vector cost wrappers agree exactly with the single-env wrappers under every autoreset mode."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from test_cost_wrappers import LineEnv, outside

from shieldgym.errors import CostSignalError
from shieldgym.wrappers import VectorCostBudget, VectorCostEpisodeStatistics
from shieldgym.wrappers.cost import CostBudget, CostEpisodeStatistics, CostWrapper

NUM_ENVS = 3
BUDGET = 1.5
MODES = [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP, AutoresetMode.DISABLED]
EPISODE_FIELDS = ("r", "c", "l", "violations", "shield_interventions", "shield_rate")


def fns(inner=lambda env: env, shield_every: int = 2):
    # staggered episode lengths (4, 5, 6) so sub-episodes end on different steps
    return [
        (lambda i=i: inner(CostWrapper(LineEnv(episode_length=4 + i, shield_every=shield_every), [outside])))
        for i in range(NUM_ENVS)
    ]


def scripted_actions(steps: int) -> np.ndarray:
    return np.random.default_rng(7).choice([-1.0, -0.5, 0.5, 1.0], size=(steps, NUM_ENVS, 1)).astype(np.float32)


def drive(envs, mode: AutoresetMode, steps: int = 40):
    """Step ``envs`` with fixed actions; returns per-step (terminations, infos). Resets finished envs in DISABLED."""
    envs.reset(seed=0)
    out = []
    for actions in scripted_actions(steps):
        _, _, term, trunc, infos = envs.step(actions)
        out.append((term, trunc, infos))
        done = term | trunc
        if mode == AutoresetMode.DISABLED and done.any():
            envs.reset(options={"reset_mask": done})
    return out


def step_info(infos: dict, key: str, i: int, done: bool, mode: AutoresetMode):
    """Sub-env ``i``'s value of ``key`` from a vector info dict (final_info for finished SAME_STEP envs), or None."""
    src = infos.get("final_info", {}) if (mode == AutoresetMode.SAME_STEP and done) else infos
    if key in src and src[f"_{key}"][i]:
        value = src[key]
        return {k: v[i] for k, v in value.items() if not k.startswith("_")} if isinstance(value, dict) else value[i]
    return None


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.name)
def test_vector_statistics_and_budget_equal_the_single_env_wrappers(mode):
    single = SyncVectorEnv(
        fns(lambda env: CostEpisodeStatistics(CostBudget(env, BUDGET))),
        autoreset_mode=mode,
    )
    vector = VectorCostEpisodeStatistics(VectorCostBudget(SyncVectorEnv(fns(), autoreset_mode=mode), BUDGET))
    single_steps, vector_steps = drive(single, mode), drive(vector, mode)

    n_budget = 0
    expected_costs: list[float] = []
    for (term, trunc, s_infos), (_, _, v_infos) in zip(single_steps, vector_steps):
        done = term | trunc
        for i in range(NUM_ENVS):
            expected = step_info(s_infos, "episode", i, done[i], mode)
            if expected is None:
                assert "_episode" not in v_infos or not v_infos["_episode"][i]
            else:
                expected_costs.append(expected["c"])
                assert v_infos["_episode"][i]
                assert {k: v_infos["episode"][k][i] for k in EPISODE_FIELDS} == {k: expected[k] for k in EPISODE_FIELDS}
            expected_budget = step_info(s_infos, "cost_budget", i, done[i], mode)
            if expected_budget is None:
                assert not v_infos["_cost_budget"][i]
            else:
                n_budget += 1
                assert v_infos["_cost_budget"][i]
                assert {k: v_infos["cost_budget"][k][i] for k in ("budget", "episode_cost", "exceeded")} == expected_budget
    assert len(expected_costs) >= 15 and n_budget >= 100
    assert list(vector.cost_queue) == expected_costs  # finished episodes, in step then sub-env order
    assert vector.episode_count == len(expected_costs)


def test_vector_statistics_values_on_a_hand_checked_run():
    # sub-env 0 (length 4) moves +0.5 each step: x = 0.5, 1.0, 1.5, 2.0 -> costs 0, 0, 1, 1
    envs = VectorCostEpisodeStatistics(SyncVectorEnv(fns(shield_every=0)))
    envs.reset(seed=0)
    actions = np.full((NUM_ENVS, 1), 0.5, dtype=np.float32)
    for _ in range(3):
        _, _, _, _, infos = envs.step(actions)
        assert "episode" not in infos
        np.testing.assert_array_equal(infos["_cost"], [True] * NUM_ENVS)
    _, _, _, trunc, infos = envs.step(actions)
    np.testing.assert_array_equal(trunc, [True, False, False])
    np.testing.assert_array_equal(infos["_episode"], [True, False, False])
    assert infos["episode"]["c"].tolist() == [2.0, 0.0, 0.0]
    assert infos["episode"]["violations"].tolist() == [2, 0, 0]
    assert infos["episode"]["l"].tolist() == [4, 0, 0]
    assert infos["episode"]["r"][0] == 0.5 + 0.0 - 0.5 - 1.0
    assert "shield_rate" not in infos["episode"]
    # NEXT_STEP: the next call only resets sub-env 0, so it reports no cost for it
    _, rewards, _, _, infos = envs.step(actions)
    np.testing.assert_array_equal(infos["_cost"], [False, True, True])
    assert rewards[0] == 0.0
    assert infos["cost"].tolist() == [0.0, 1.0, 1.0]  # x = 2.5 for sub-envs 1, 2


def test_vector_queues_follow_sub_env_order():
    envs = VectorCostEpisodeStatistics(SyncVectorEnv(fns()), buffer_length=4)
    drive(envs, AutoresetMode.NEXT_STEP, steps=30)
    assert len(envs.cost_queue) == 4
    assert all(length in (4, 5, 6) for length in envs.length_queue)


def test_missing_cost_names_the_key_and_the_sub_envs():
    envs = VectorCostEpisodeStatistics(SyncVectorEnv([LineEnv] * 2))
    envs.reset(seed=0)
    with pytest.raises(CostSignalError, match=r"Sub-envs \[0, 1\] report no info\['cost'\]"):
        envs.step(np.zeros((2, 1), dtype=np.float32))


class NegativeCost(gym.Wrapper):
    def step(self, action):
        obs, r, term, trunc, info = self.env.step(action)
        info["cost"] = -1.0
        return obs, r, term, trunc, info


def test_invalid_vector_cost_names_the_sub_env():
    envs = VectorCostBudget(SyncVectorEnv([lambda: CostWrapper(LineEnv(), [outside]), lambda: NegativeCost(LineEnv())]), 1.0)
    envs.reset(seed=0)
    with pytest.raises(CostSignalError, match=r"sub-env 1 is -1\.0"):
        envs.step(np.zeros((2, 1), dtype=np.float32))


def test_budget_terminate_refuses_next_step_autoreset():
    with pytest.raises(
        ValueError, match=r"needs autoreset_mode SAME_STEP or DISABLED.*CostBudget\(env, 1.0, terminate=True\)"
    ):
        VectorCostBudget(SyncVectorEnv(fns()), 1.0, terminate=True)


def masked(infos: dict, key: str) -> dict:
    """``{sub-env: value}`` for the sub-envs whose ``_key`` mask is set."""
    if key not in infos:
        return {}
    return {int(i): infos[key][i] for i in np.flatnonzero(infos[f"_{key}"])}


@pytest.mark.parametrize("mode", [AutoresetMode.SAME_STEP, AutoresetMode.DISABLED], ids=lambda m: m.name)
def test_budget_terminate_matches_the_single_env_wrapper(mode):
    single = SyncVectorEnv(
        fns(lambda env: CostEpisodeStatistics(CostBudget(env, BUDGET, terminate=True))), autoreset_mode=mode
    )
    vector = VectorCostEpisodeStatistics(VectorCostBudget(SyncVectorEnv(fns(), autoreset_mode=mode), BUDGET, terminate=True))
    single.reset(seed=0)
    vector.reset(seed=0)
    n_budget_ends = n_episodes = 0
    for actions in scripted_actions(40):
        s_obs, s_rew, s_term, s_trunc, s_infos = single.step(actions)
        v_obs, v_rew, v_term, v_trunc, v_infos = vector.step(actions)
        for a, b in [(s_obs, v_obs), (s_rew, v_rew), (s_term, v_term), (s_trunc, v_trunc)]:
            np.testing.assert_array_equal(a, b)
        for key in ("cost", "t"):  # top level: stepping sub-envs' step info, or the reset info of ended ones
            assert masked(s_infos, key) == masked(v_infos, key)
        done = s_term | s_trunc
        if mode == AutoresetMode.SAME_STEP:
            assert masked(s_infos, "final_obs") == masked(v_infos, "final_obs")
            assert masked(s_infos.get("final_info", {}), "cost") == masked(v_infos.get("final_info", {}), "cost")
        for i in np.flatnonzero(done):
            expected = step_info(s_infos, "episode", i, True, mode)
            assert {k: v_infos["episode"][k][i] for k in EPISODE_FIELDS} == {k: expected[k] for k in EPISODE_FIELDS}
            n_episodes += 1
        n_budget_ends += int(np.sum(s_term))
        if mode == AutoresetMode.DISABLED and done.any():
            single.reset(options={"reset_mask": done})
            vector.reset(options={"reset_mask": done})
    assert n_budget_ends >= 3 and n_episodes >= 15


@pytest.mark.parametrize("budget", [-0.1, float("nan"), "1"])
def test_vector_budget_rejects_bad_budgets(budget):
    with pytest.raises(ValueError, match="Cost budget must be a finite number >= 0"):
        VectorCostBudget(SyncVectorEnv(fns()), budget)


def test_reset_mask_resets_only_the_masked_statistics_and_leaves_options_alone():
    envs = VectorCostEpisodeStatistics(SyncVectorEnv(fns(), autoreset_mode=AutoresetMode.DISABLED))
    envs.reset(seed=0)
    envs.step(np.full((NUM_ENVS, 1), 1.0, dtype=np.float32))
    envs.step(np.full((NUM_ENVS, 1), 1.0, dtype=np.float32))  # x = 2: cost 1 everywhere
    options = {"reset_mask": np.array([True, False, False])}
    envs.reset(options=options)
    assert "reset_mask" in options
    assert envs.episode_costs.tolist() == [0.0, 1.0, 1.0]
    assert envs.episode_lengths.tolist() == [0, 2, 2]


def test_existing_stats_key_is_not_overwritten():
    envs = VectorCostEpisodeStatistics(SyncVectorEnv(fns(CostEpisodeStatistics)))
    with pytest.raises(ValueError, match="already has key 'episode'"):
        drive(envs, AutoresetMode.NEXT_STEP, steps=6)


class OuterShield(gym.vector.VectorWrapper):
    """A vector-level shield stand-in: reports ``infos["shield"]`` at the top level, intervening on even steps."""

    def reset(self, *, seed=None, options=None):
        if options is None or "reset_mask" not in options:  # finished sub-envs were zeroed at their last step
            self.counts = np.zeros(self.num_envs, dtype=int)
        return super().reset(seed=seed, options=options)

    def step(self, actions):
        obs, rewards, term, trunc, infos = self.env.step(actions)
        self.counts += 1
        every = np.ones(self.num_envs, dtype=bool)
        infos["shield"] = {"intervened": self.counts % 2 == 0, "_intervened": every}
        infos["_shield"] = every
        self.counts[term | trunc] = 0
        return obs, rewards, term, trunc, infos


@pytest.mark.parametrize("mode", [AutoresetMode.SAME_STEP, AutoresetMode.DISABLED], ids=lambda m: m.name)
def test_a_shield_around_the_vector_env_is_counted_like_one_inside(mode):
    inside = VectorCostEpisodeStatistics(SyncVectorEnv(fns(shield_every=2), autoreset_mode=mode))
    outside_ = VectorCostEpisodeStatistics(OuterShield(SyncVectorEnv(fns(shield_every=0), autoreset_mode=mode)))
    n = 0
    for (_, _, a), (_, _, b) in zip(drive(inside, mode), drive(outside_, mode)):
        if "episode" in a:
            np.testing.assert_array_equal(a["_episode"], b["_episode"])
            for key in ("shield_interventions", "shield_rate", "c"):
                np.testing.assert_array_equal(a["episode"][key], b["episode"][key])
            n += int(a["_episode"].sum())
    assert n >= 15
    assert max(inside.length_queue) == 6


def test_merging_vector_infos_promotes_dtypes_and_recurses():
    from shieldgym.wrappers.vector_cost import _merge

    dst = {"a": np.array([1, 2]), "_a": np.array([True, True])}
    src = {
        "a": np.array([0.5, 0.0]),
        "_a": np.array([True, False]),
        "b": {"x": np.array([3, 0]), "_x": np.array([True, False])},
        "_b": np.array([True, False]),
    }
    out = _merge(dst, src)
    assert out["a"].tolist() == [0.5, 2.0] and out["_a"].tolist() == [True, True]
    assert out["b"]["x"].tolist() == [3, 0] and out["_b"].tolist() == [True, False]
