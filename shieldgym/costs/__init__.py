"""Cost terms and the cost convention (``info["cost"]``, ``info["costs"]``)."""

from shieldgym.costs.base import COST_KEY, COSTS_KEY, CostTerm, FunctionCost, StepContext, get_cost, validate_cost

__all__ = ["COSTS_KEY", "COST_KEY", "CostTerm", "FunctionCost", "StepContext", "get_cost", "validate_cost"]
from shieldgym.costs.contact import ContactCost
from shieldgym.costs.joint_limit import JointLimitCost
from shieldgym.costs.sim import MujocoSim, PyBulletSim, SimCostTerm, SimInterface, sim_of
from shieldgym.costs.torque import TorqueLimitCost
from shieldgym.costs.velocity import EndEffectorSpeedCost
from shieldgym.costs.workspace import WorkspaceCost

__all__ += [
    "ContactCost",
    "EndEffectorSpeedCost",
    "JointLimitCost",
    "MujocoSim",
    "PyBulletSim",
    "SimCostTerm",
    "SimInterface",
    "TorqueLimitCost",
    "WorkspaceCost",
    "sim_of",
]
