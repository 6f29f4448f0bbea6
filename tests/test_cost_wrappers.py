"""CostWrapper, CostEpisodeStatistics and CostBudget on a scripted 1-D env with exact numbers."""

from __future__ import annotations

import math
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.error import ResetNeeded
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import shieldgym
from shieldgym.costs.base import CostTerm, FunctionCost, StepContext
from shieldgym.errors import CostSignalError
from shieldgym.wrappers.cost import CostBudget, CostEpisodeStatistics, CostWrapper


class LineEnv(gym.Env):
    """A point on a line: ``x <- clip(x + a, -4, 4)``, reward ``1 - |x|``, fixed episode length.

    ``info`` carries the step index ``t``; ``episode`` counts resets (from 0). Options:
    ``env_cost`` reports ``info["cost"] = 1`` when ``|x| > 1``; ``shield_every=k`` reports
    ``info["shield"] = {"intervened": t % k == 0}``; ``discrete`` uses actions {0, 1, 2} -> moves {-1, 0, +1}.
    """

    metadata = {"render_modes": []}

    def __init__(self, episode_length: int = 6, env_cost: bool = False, shield_every: int = 0, discrete: bool = False):
        self.episode_length = episode_length
        self.env_cost = env_cost
        self.shield_every = shield_every
        self.observation_space = gym.spaces.Box(-4.0, 4.0, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(3) if discrete else gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.x = 0.0
        self.t = 0
        self.episode = -1
        self.steps_taken = 0

    def _obs(self) -> np.ndarray:
        return np.array([self.x], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.x = float((options or {}).get("x0", 0.0))
        self.t = 0
        self.episode += 1
        return self._obs(), {"t": 0}

    def step(self, action):
        move = float(action) - 1.0 if isinstance(self.action_space, gym.spaces.Discrete) else float(action[0])
        self.x = min(4.0, max(-4.0, self.x + move))
        self.t += 1
        self.steps_taken += 1
        info: dict[str, Any] = {"t": self.t}
        if self.env_cost:
            info["cost"] = float(abs(self.x) > 1.0)
        if self.shield_every:
            info["shield"] = {"intervened": self.t % self.shield_every == 0}
        return self._obs(), 1.0 - abs(self.x), False, self.t >= self.episode_length, info


def outside(ctx: StepContext) -> float:
    """1 when the new position is outside [-1, 1]."""
    return float(abs(ctx.next_obs[0]) > 1.0)


def act(a: float) -> np.ndarray:
    return np.array([a], dtype=np.float32)


# x after each step: 0.5, 1.0, 1.5, 2.0, 1.5, 0.5 -> cost (|x| > 1): 0, 0, 1, 1, 1, 0
ACTIONS = [0.5, 0.5, 0.5, 0.5, -0.5, -1.0]
COSTS = [0.0, 0.0, 1.0, 1.0, 1.0, 0.0]
REWARDS = [0.5, 0.0, -0.5, -1.0, -0.5, 0.5]


def run_episode(env: gym.Env, actions=ACTIONS, seed: int = 0) -> list[tuple]:
    env.reset(seed=seed)
    return [env.step(act(a)) for a in actions]


# ---------------------------------------------------------------------------------------------- CostWrapper


def test_cost_from_a_plain_function_is_exact():
    env = CostWrapper(LineEnv(), [outside])
    steps = run_episode(env)
    assert [s[4]["cost"] for s in steps] == COSTS
    assert [s[4]["costs"] for s in steps] == [{"outside": c} for c in COSTS]
    assert all(type(s[4]["cost"]) is float for s in steps)
    assert [s[1] for s in steps] == REWARDS


def test_weights_scale_the_total_but_not_the_components():
    speed = FunctionCost("speed", lambda ctx: abs(float(ctx.action[0])), weight=0.5)
    env = CostWrapper(LineEnv(), [FunctionCost("outside", outside, weight=2.0), speed])
    steps = run_episode(env)
    expected_total = [2.0 * c + 0.5 * abs(a) for c, a in zip(COSTS, ACTIONS)]
    assert [s[4]["cost"] for s in steps] == expected_total
    assert steps[3][4]["costs"] == {"outside": 1.0, "speed": 0.5}


def test_env_cost_is_kept_as_a_component_and_added_when_asked():
    steps = run_episode(CostWrapper(LineEnv(env_cost=True), [FunctionCost("half", lambda ctx: 0.5)]))
    assert [s[4]["cost"] for s in steps] == [c + 0.5 for c in COSTS]
    assert steps[2][4]["costs"] == {"env": 1.0, "half": 0.5}

    steps = run_episode(CostWrapper(LineEnv(env_cost=True), [FunctionCost("half", lambda ctx: 0.5)], include_env_cost=False))
    assert [s[4]["cost"] for s in steps] == [0.5] * 6
    assert steps[2][4]["costs"] == {"env": 1.0, "half": 0.5}


def test_env_cost_alone_passes_through():
    steps = run_episode(CostWrapper(LineEnv(env_cost=True)))
    assert [s[4]["cost"] for s in steps] == COSTS
    assert steps[2][4]["costs"] == {"env": 1.0}


def test_custom_cost_key_is_read_and_total_goes_to_cost():
    class OtherKey(gym.Wrapper):
        def step(self, action):
            obs, r, term, trunc, info = self.env.step(action)
            info["hazard"] = info.pop("cost") * 3.0
            return obs, r, term, trunc, info

    steps = run_episode(CostWrapper(OtherKey(LineEnv(env_cost=True)), cost_key="hazard"))
    assert [s[4]["cost"] for s in steps] == [3.0 * c for c in COSTS]
    assert [s[4]["hazard"] for s in steps] == [3.0 * c for c in COSTS]


def test_nested_cost_wrappers_keep_inner_components():
    inner = CostWrapper(LineEnv(), [outside])
    outer = CostWrapper(inner, [FunctionCost("quarter", lambda ctx: 0.25)])
    steps = run_episode(outer)
    assert [s[4]["cost"] for s in steps] == [c + 0.25 for c in COSTS]
    assert steps[2][4]["costs"] == {"outside": 1.0, "env": 1.0, "quarter": 0.25}


class RecordingTerm(CostTerm):
    """Counts hook calls and keeps every StepContext it saw."""

    def __init__(self) -> None:
        super().__init__("recording")
        self.bound: list[gym.Env] = []
        self.resets: list[tuple] = []
        self.contexts: list[StepContext] = []

    def bind(self, env):
        self.bound.append(env)

    def reset(self, env, obs, info):
        self.resets.append((env, obs.copy(), dict(info)))

    def compute(self, ctx):
        self.contexts.append(ctx)
        return 0.0


def test_term_hooks_bind_once_reset_every_episode_and_see_the_transition():
    base = LineEnv()
    term = RecordingTerm()
    env = CostWrapper(base, [term])
    assert term.bound == [base]
    run_episode(env, ACTIONS[:3])
    run_episode(env, ACTIONS[:2])
    assert term.bound == [base]
    assert len(term.resets) == 2 and term.resets[0][0] is base
    assert len(term.contexts) == 5
    first, second = term.contexts[0], term.contexts[1]
    assert first.env is base
    assert first.obs[0] == 0.0 and first.next_obs[0] == 0.5
    assert second.obs is first.next_obs  # previous next_obs, not a copy
    assert second.next_obs[0] == 1.0 and second.reward == 0.0
    assert first.info["t"] == 1 and first.terminated is False and first.truncated is False


def test_single_term_and_callable_are_accepted_without_a_sequence():
    assert [s[4]["cost"] for s in run_episode(CostWrapper(LineEnv(), outside))] == COSTS
    assert [s[4]["cost"] for s in run_episode(CostWrapper(LineEnv(), FunctionCost("o", outside)))] == COSTS


def test_discrete_actions_are_checked_and_stepped():
    env = CostWrapper(LineEnv(discrete=True), [outside])
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.int64(2))
    assert info["cost"] == 0.0
    _, _, _, _, info = env.step(2)
    _, _, _, _, info = env.step(np.array(2))
    assert info["cost"] == 1.0  # x = 3


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (float("nan"), "nan"),
        (-0.5, "must be >= 0"),
        (np.array([0.1, 0.2]), "real scalar"),
        ("high", "real scalar"),
        (float("inf"), "finite"),
    ],
)
def test_bad_term_value_raises_naming_the_term(value, match):
    env = CostWrapper(LineEnv(), [FunctionCost("bad_term", lambda ctx: value)])
    env.reset(seed=0)
    with pytest.raises(CostSignalError, match=match) as err:
        env.step(act(0.5))
    assert "'bad_term'" in str(err.value)


def test_duplicate_term_names_raise():
    with pytest.raises(ValueError, match=r"Duplicate cost term names \['outside'\]"):
        CostWrapper(LineEnv(), [outside, FunctionCost("outside", outside)])
    with pytest.raises(ValueError, match="<lambda>"):
        CostWrapper(LineEnv(), [lambda ctx: 0.0, lambda ctx: 1.0])


def test_term_of_wrong_type_raises():
    with pytest.raises(TypeError, match="CostTerm instances or callables"):
        CostWrapper(LineEnv(), [3.0])


def test_missing_env_cost_without_terms_names_the_key():
    env = CostWrapper(LineEnv(), cost_key="hazard")
    env.reset(seed=0)
    with pytest.raises(CostSignalError, match=r"reports no info\['hazard'\] and no cost terms"):
        env.step(act(0.5))


def test_no_terms_and_no_env_cost_is_rejected_at_construction():
    with pytest.raises(ValueError, match="include_env_cost=False"):
        CostWrapper(LineEnv(env_cost=True), include_env_cost=False)


def test_term_named_env_clashes_with_the_env_cost():
    env = CostWrapper(LineEnv(env_cost=True), [FunctionCost("env", outside)])
    env.reset(seed=0)
    with pytest.raises(CostSignalError, match=r"\['env'\] clash"):
        env.step(act(0.5))


def test_custom_key_when_inner_already_writes_cost_is_rejected():
    env = CostWrapper(LineEnv(env_cost=True), [outside], cost_key="hazard")
    env.reset(seed=0)
    with pytest.raises(CostSignalError, match=r"already writes info\['cost'\]"):
        env.step(act(0.5))


@pytest.mark.parametrize(
    ("action", "match"),
    [
        (np.zeros(2, dtype=np.float32), r"shape \(2,\); expected shape \(1,\)"),
        (np.zeros((1, 2), dtype=np.float32), r"shape \(1, 2\); expected shape \(1,\)"),
        ([[0.1], [0.2]], r"shape \(2, 1\)"),
        (np.array(["a"]), "not numeric"),
    ],
)
def test_wrong_action_shape_raises_before_the_inner_env_steps(action, match):
    base = LineEnv()
    env = CostWrapper(base, [outside])
    env.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        env.step(action)
    assert base.steps_taken == 0


def test_castable_action_shapes_are_reshaped():
    env = CostWrapper(LineEnv(), [outside])
    env.reset(seed=0)
    obs, *_ = env.step(0.5)
    assert obs[0] == 0.5
    obs, *_ = env.step(np.array([[0.5]], dtype=np.float32))
    assert obs[0] == 1.0


@pytest.mark.parametrize(
    ("action", "match"), [(3, r"out of range.*\[0, 3\)"), (-1, "out of range"), (1.0, "not an integer"), (True, "not")]
)
def test_bad_discrete_action_raises(action, match):
    base = LineEnv(discrete=True)
    env = CostWrapper(base, [outside])
    env.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        env.step(action)
    assert base.steps_taken == 0


def test_step_before_reset_raises():
    with pytest.raises(ResetNeeded):
        CostWrapper(LineEnv(), [outside]).step(act(0.5))


def test_cost_wrapper_does_not_touch_the_inner_env_spaces():
    base = LineEnv()
    env = CostWrapper(base, [outside])
    assert env.action_space is base.action_space and env.observation_space is base.observation_space


# --------------------------------------------------------------------------------------- CostEpisodeStatistics


def test_episode_statistics_are_exact():
    env = CostEpisodeStatistics(CostWrapper(LineEnv(), [outside]), buffer_length=2)
    for _ in range(3):
        steps = run_episode(env)
        assert all("episode" not in s[4] for s in steps[:-1])
        episode = steps[-1][4]["episode"]
        assert episode["r"] == sum(REWARDS) == -1.0
        assert episode["c"] == 3.0 and episode["l"] == 6 and episode["violations"] == 3
        assert episode["t"] >= 0.0
        assert set(episode) == {"r", "c", "l", "t", "violations"}
    assert list(env.return_queue) == [-1.0, -1.0]  # buffer_length=2
    assert list(env.cost_queue) == [3.0, 3.0]
    assert list(env.length_queue) == [6, 6] and list(env.violation_queue) == [3, 3]
    assert env.episode_count == 3


def test_episode_statistics_count_shield_interventions():
    env = CostEpisodeStatistics(CostWrapper(LineEnv(shield_every=2), [outside]))
    episode = run_episode(env)[-1][4]["episode"]
    assert episode["shield_interventions"] == 3  # t = 2, 4, 6
    assert episode["shield_rate"] == 0.5


def test_episode_statistics_reset_mid_episode_starts_over():
    env = CostEpisodeStatistics(CostWrapper(LineEnv(), [outside]))
    run_episode(env, ACTIONS[:4])  # cut short: cost 2 so far
    episode = run_episode(env, [0.5, -0.5] * 3)[-1][4]["episode"]
    assert episode["c"] == 0.0 and episode["l"] == 6 and episode["violations"] == 0


def test_episode_statistics_need_the_cost_key():
    env = CostEpisodeStatistics(LineEnv())
    env.reset(seed=0)
    with pytest.raises(CostSignalError, match="no cost key 'cost'"):
        env.step(act(0.5))
    env = CostEpisodeStatistics(CostWrapper(LineEnv(), [outside]), cost_key="hazard")
    env.reset(seed=0)
    with pytest.raises(CostSignalError, match="'hazard'"):
        env.step(act(0.5))


def test_episode_statistics_refuse_to_overwrite_the_stats_key():
    env = CostEpisodeStatistics(CostEpisodeStatistics(CostWrapper(LineEnv(), [outside])))
    with pytest.raises(ValueError, match="already has key 'episode'"):
        run_episode(env)
    env = CostEpisodeStatistics(CostEpisodeStatistics(CostWrapper(LineEnv(), [outside])), stats_key="outer")
    assert run_episode(env)[-1][4]["outer"]["c"] == 3.0


def test_episode_statistics_reject_a_bad_buffer_length():
    with pytest.raises(ValueError, match="buffer_length must be a positive int, got 0"):
        CostEpisodeStatistics(LineEnv(), buffer_length=0)


# -------------------------------------------------------------------------------------------------- CostBudget


def test_budget_is_reported_every_step():
    env = CostBudget(CostWrapper(LineEnv(), [outside]), budget=1.5)
    steps = run_episode(env)
    cumulative = np.cumsum(COSTS).tolist()
    assert [s[4]["cost_budget"] for s in steps] == [
        {"budget": 1.5, "episode_cost": c, "exceeded": c > 1.5} for c in cumulative
    ]
    assert not any(s[2] for s in steps)  # terminate=False never terminates


def test_budget_terminates_on_the_step_it_is_first_exceeded():
    env = CostBudget(CostWrapper(LineEnv(), [outside]), budget=1.5, terminate=True)
    steps = run_episode(env)
    assert [s[2] for s in steps] == [False, False, False, True, True, True]
    env = CostBudget(CostWrapper(LineEnv(), [outside]), budget=1.0, terminate=True)
    steps = run_episode(env)
    assert [s[2] for s in steps[:4]] == [False, False, False, True]  # 1.0 is not > 1.0; 2.0 is


def test_zero_budget_terminates_on_the_first_cost():
    env = CostBudget(CostWrapper(LineEnv(), [outside]), budget=0, terminate=True)
    steps = run_episode(env)
    assert [s[2] for s in steps[:3]] == [False, False, True]


@pytest.mark.parametrize("budget", [-1.0, float("nan"), float("inf"), "5", None, True])
def test_bad_budget_raises_naming_the_value(budget):
    with pytest.raises(ValueError, match="Cost budget must be a finite number >= 0, got") as err:
        CostBudget(CostWrapper(LineEnv(), [outside]), budget)
    assert repr(budget) in str(err.value)


def test_budget_needs_the_cost_key():
    env = CostBudget(LineEnv(), 1.0)
    env.reset(seed=0)
    with pytest.raises(CostSignalError, match="'cost'"):
        env.step(act(0.5))


# ----------------------------------------------------------------------------------------- checkers, public API


def stacks() -> list[gym.Env]:
    return [
        CostWrapper(LineEnv(), [outside]),
        CostWrapper(LineEnv(discrete=True), [outside]),
        CostWrapper(LineEnv(env_cost=True)),
        CostEpisodeStatistics(CostWrapper(LineEnv(shield_every=2), [outside])),
        CostBudget(CostEpisodeStatistics(CostWrapper(LineEnv(), [outside])), 2.0, terminate=True),
    ]


@pytest.mark.parametrize("index", range(5))
def test_wrapped_envs_pass_the_gymnasium_and_sb3_checkers(index):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "the environment is wrapped" notices
        gym_check_env(stacks()[index], skip_render_check=True)
        sb3_check_env(stacks()[index], warn=False)


def test_public_names_are_the_same_objects():
    assert shieldgym.CostWrapper is CostWrapper
    assert shieldgym.CostEpisodeStatistics is CostEpisodeStatistics
    assert shieldgym.CostBudget is CostBudget
    assert shieldgym.wrappers.CostBudget is CostBudget


def test_spec_records_constructor_arguments():
    env = CostBudget(CostWrapper(LineEnv(), [outside]), 2.5, terminate=True)
    assert env._saved_kwargs == {"budget": 2.5, "terminate": True, "cost_key": "cost"}
    assert math.isclose(env.budget, 2.5)
