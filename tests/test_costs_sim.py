"""Simulator cost terms on scripted MuJoCo and PyBullet scenes: exact values on violations and on safe states."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from shieldgym.costs import (
    ContactCost,
    EndEffectorSpeedCost,
    JointLimitCost,
    MujocoSim,
    PyBulletSim,
    TorqueLimitCost,
    WorkspaceCost,
    sim_of,
)
from shieldgym.costs.sim import match_names
from shieldgym.wrappers.cost import CostWrapper

mujoco = pytest.importorskip("mujoco")

# A table (top at z=0), an arm body on a vertical slide "lift" (+ a hinge "swivel") carrying a sphere at its
# origin and a "finger" sphere 0.3 m out along x, and an obstacle at (0, 0.3, 0.5) that the finger reaches
# when swivel ~ pi/2. A motor drives "lift" (ctrlrange +-10, gear 1).
XML = """
<mujoco>
  <compiler angle="radian"/>
  <option gravity="0 0 0"/>
  <worldbody>
    <body name="table" pos="0 0 -0.05"><geom type="box" size="1 1 0.05"/></body>
    <body name="obstacle" pos="0 0.3 0.5"><geom type="box" size="0.05 0.05 0.05"/></body>
    <body name="arm" pos="0 0 0.5">
      <joint name="lift" type="slide" axis="0 0 1" range="-0.6 0.5"/>
      <joint name="swivel" type="hinge" axis="0 0 1" range="-2 2"/>
      <geom name="palm" type="sphere" size="0.05"/>
      <body name="finger" pos="0.3 0 0"><geom type="sphere" size="0.03"/><site name="tip"/></body>
    </body>
  </worldbody>
  <actuator><motor joint="lift" ctrlrange="-10 10" ctrllimited="true" gear="1"/></actuator>
</mujoco>
"""


class ScriptedArmEnv(gym.Env):
    """Each action sets the state directly: ``(lift, swivel, lift_velocity, swivel_velocity, ctrl)``."""

    def __init__(self) -> None:
        self.model = mujoco.MjModel.from_xml_string(XML)
        self.data = mujoco.MjData(self.model)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float64)
        self.action_space = gym.spaces.Box(-10.0, 10.0, (5,), np.float64)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        mujoco.mj_resetData(self.model, self.data)
        mujoco.mj_forward(self.model, self.data)
        return self.data.qpos.copy(), {}

    def step(self, action):
        self.data.qpos[:] = action[:2]
        self.data.qvel[:] = action[2:4]
        self.data.ctrl[:] = action[4:5]
        mujoco.mj_forward(self.model, self.data)
        return self.data.qpos.copy(), 0.0, False, False, {}


SAFE = np.array([0.0, 0.0, 0.0, 0.0, 0.0])


def all_terms() -> list:
    return [
        ContactCost("table", bodies=["arm", "finger"], others=["table"], mode="count"),
        ContactCost("obstacle", bodies=["arm", "finger"], others=["obstacle"]),
        JointLimitCost("limit", joints=["lift", "swivel"], margin=0.05, mode="magnitude"),
        EndEffectorSpeedCost("speed", point="arm", max_speed=1.5, mode="magnitude"),
        WorkspaceCost("box", point="arm", low=(-1, -1, 0.1), high=(1, 1, 1), mode="magnitude"),
        TorqueLimitCost("torque", joints="lift", fraction=0.8, mode="magnitude"),
    ]


@pytest.fixture()
def env():
    wrapped = CostWrapper(ScriptedArmEnv(), all_terms())
    wrapped.reset(seed=0)
    return wrapped


def test_every_term_is_zero_on_a_safe_state(env):
    _, _, _, _, info = env.step(SAFE)
    assert info["costs"] == {"table": 0.0, "obstacle": 0.0, "limit": 0.0, "speed": 0.0, "box": 0.0, "torque": 0.0}
    assert info["cost"] == 0.0


def test_safe_motion_costs_nothing(env):
    for t in np.linspace(0.0, 1.0, 20):  # lift up to 0.3 m and swivel to 1 rad at moderate speed
        _, _, _, _, info = env.step(np.array([0.3 * t, t, 0.3, 1.0, 5.0]))
        assert info["cost"] == 0.0, info["costs"]


def test_contact_with_table_counts_penetrating_contacts(env):
    deep = ContactCost("deep", bodies=["arm", "finger"], others="table", mode="count", max_distance=-0.02)
    deep.bind(env)
    # arm origin at z=0.02: the palm (r=0.05) is 0.03 m and the finger (r=0.03) 0.01 m into the table
    _, _, _, _, info = env.step(np.array([-0.48, 0.0, 0.0, 0.0, 0.0]))
    assert info["costs"]["table"] == 2.0
    assert deep.compute(None) == 1.0  # only the palm is deeper than 0.02 m
    assert info["costs"]["obstacle"] == 0.0
    assert info["costs"]["box"] == pytest.approx(0.08)  # arm origin at z=0.02, box starts at z=0.1


def test_vectorised_contact_filter_matches_the_loop(env, monkeypatch):
    from shieldgym.costs.sim import _MujocoContacts

    table = ContactCost("t", bodies=["arm", "finger"], others="table", mode="count")
    table.bind(env)
    env.step(np.array([-0.48, 0.0, 0.0, 0.0, 0.0]))
    by_loop = table.compute(None)
    monkeypatch.setattr(_MujocoContacts, "loop_max", -1)  # force the fancy-index path
    assert table.compute(None) == by_loop == 2.0


def test_contact_with_obstacle_is_an_indicator(env):
    _, _, _, _, info = env.step(np.array([0.0, np.pi / 2, 0.0, 0.0, 0.0]))
    assert info["costs"]["obstacle"] == 1.0
    assert info["costs"]["table"] == 0.0


def test_joint_limit_magnitude_and_modes(env):
    _, _, _, _, info = env.step(np.array([0.0, 1.97, 0.0, 0.0, 0.0]))  # 0.03 rad from the +2 rad limit
    assert info["costs"]["limit"] == pytest.approx(0.02)
    count = JointLimitCost("c", joints="*", margin=0.05, mode="count")
    count.bind(env)
    assert count.compute(None) == 1.0
    beyond = JointLimitCost("b", joints="lift", margin=0.1, mode="magnitude")
    beyond.bind(env)
    env.step(np.array([0.55, 0.0, 0.0, 0.0, 0.0]))  # 0.05 m beyond the upper limit
    assert beyond.compute(None) == pytest.approx(0.15)


def test_speed_limit(env):
    _, _, _, _, info = env.step(np.array([0.0, 0.0, 2.0, 0.0, 0.0]))
    assert info["costs"]["speed"] == pytest.approx(0.5)
    indicator = EndEffectorSpeedCost("s", point="tip", max_speed=0.5)
    indicator.bind(env)
    env.step(np.array([0.0, 0.0, 0.0, 2.0, 0.0]))  # the tip 0.3 m out turns at 2 rad/s: 0.6 m/s
    assert indicator.speed() == pytest.approx(0.6)
    assert indicator.compute(None) == 1.0


def test_torque_limit_from_the_actuator(env):
    term = env.terms[-1]
    assert term.limit.tolist() == pytest.approx([8.0])  # 0.8 * ctrlrange 10 * gear 1
    _, _, _, _, info = env.step(np.array([0.0, 0.0, 0.0, 0.0, 9.0]))
    assert info["costs"]["torque"] == pytest.approx(1.0)
    _, _, _, _, info = env.step(np.array([0.0, 0.0, 0.0, 0.0, -7.9]))
    assert info["costs"]["torque"] == 0.0


def test_weights_sum_into_info_cost():
    env = CostWrapper(ScriptedArmEnv(), [WorkspaceCost("box", point="arm", low=(-1, -1, 0.1), high=(1, 1, 1), weight=3.0)])
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([-0.45, 0.0, 0.0, 0.0, 0.0]))
    assert info["costs"] == {"box": 1.0}
    assert info["cost"] == 3.0


@pytest.mark.parametrize(
    ("term", "needle"),
    [
        (ContactCost(bodies=["arm", "elbow"]), "Unknown body 'elbow'. Valid body names: ['world', 'table', 'obstacle', 'arm'"),
        (JointLimitCost(joints="knee"), "Unknown joint 'knee'. Valid joint names: ['lift', 'swivel']"),
        (EndEffectorSpeedCost(point="hand", max_speed=1.0), "Unknown point 'hand'"),
        (TorqueLimitCost(joints="swivel"), "no torque limit for ['swivel']"),
    ],
)
def test_bad_names_fail_at_bind_listing_valid_names(term, needle):
    with pytest.raises(ValueError) as err:
        CostWrapper(ScriptedArmEnv(), [term])
    assert needle in str(err.value)


def test_bad_configuration_fails_at_construction():
    with pytest.raises(ValueError, match="mode must be one of"):
        ContactCost(bodies="arm", mode="sum")
    with pytest.raises(ValueError, match="low < high"):
        WorkspaceCost(point="arm", low=(0, 0, 1), high=(1, 1, 0))
    with pytest.raises(ValueError, match="max_speed"):
        EndEffectorSpeedCost(point="arm", max_speed=0.0)
    with pytest.raises(ValueError, match="margin"):
        JointLimitCost(margin=-1.0)


def test_unbound_term_refuses_to_compute():
    with pytest.raises(RuntimeError, match="not bound"):
        ContactCost(bodies="arm").compute(None)


def test_sim_lookup_walks_wrappers():
    env = gym.wrappers.TimeLimit(ScriptedArmEnv(), 5)
    sim = sim_of(env)
    assert isinstance(sim, MujocoSim)
    assert sim.joint_names == ("lift", "swivel")
    with pytest.raises(TypeError, match="Cannot find a simulator"):
        sim_of(gym.make("CartPole-v1"))


def test_match_names_keeps_model_order():
    assert match_names(["b*", "a"], ["a", "b1", "c", "b2"], "body") == ["a", "b1", "b2"]


# ----------------------------------------------------------------------------------------------- PyBullet


@pytest.fixture()
def bullet():
    p = pytest.importorskip("pybullet")
    cid = p.connect(p.DIRECT)
    p.setGravity(0, 0, 0, physicsClientId=cid)
    box = p.createCollisionShape(p.GEOM_BOX, halfExtents=(0.1, 0.1, 0.1), physicsClientId=cid)
    a = p.createMultiBody(1.0, box, -1, (0, 0, 0), physicsClientId=cid)
    b = p.createMultiBody(0.0, box, -1, (1, 0, 0), physicsClientId=cid)
    yield p, cid, a, b
    p.disconnect(physicsClientId=cid)


def test_pybullet_contact_speed_and_workspace(bullet):
    p, cid, a, b = bullet
    sim = PyBulletSim(cid, {"a": a, "b": b})
    contact = ContactCost(bodies="a", others="b")
    speed = EndEffectorSpeedCost(point="a", max_speed=1.5, mode="magnitude")
    box = WorkspaceCost(point="a", low=(-0.5, -0.5, -0.5), high=(0.5, 0.5, 0.5), mode="magnitude")
    for term in (contact, speed, box):
        term.bind_sim(sim)
    p.stepSimulation(physicsClientId=cid)
    assert (contact.compute(None), speed.compute(None), box.compute(None)) == (0.0, 0.0, 0.0)
    p.resetBasePositionAndOrientation(a, (0.85, 0, 0), (0, 0, 0, 1), physicsClientId=cid)  # 0.05 m into b
    p.resetBaseVelocity(a, (2.0, 0, 0), (0, 0, 0), physicsClientId=cid)
    p.performCollisionDetection(physicsClientId=cid)
    assert contact.compute(None) == 1.0
    assert speed.compute(None) == pytest.approx(0.5)
    assert box.compute(None) == pytest.approx(0.35)


def test_pybullet_bad_name_lists_valid_names(bullet):
    _, cid, a, b = bullet
    sim = PyBulletSim(cid, {"a": a, "b": b})
    with pytest.raises(ValueError, match=r"Unknown body 'c'\. Valid body names: \['a', 'b'"):
        ContactCost(bodies="c").bind_sim(sim)


def test_pybullet_everything_else_and_exclude(bullet):
    p, cid, a, b = bullet
    sim = PyBulletSim(cid, {"a": a, "b": b})
    anything = ContactCost(bodies="a", mode="count")
    not_b = ContactCost(bodies="a", exclude="b")
    anything.bind_sim(sim)
    not_b.bind_sim(sim)
    p.resetBasePositionAndOrientation(a, (0.85, 0, 0), (0, 0, 0, 1), physicsClientId=cid)
    p.performCollisionDetection(physicsClientId=cid)
    assert anything.compute(None) >= 1.0  # box-box manifold: one or more points
    assert not_b.compute(None) == 0.0
