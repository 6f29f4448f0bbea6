"""Cost terms and the cost convention (``info["cost"]``, ``info["costs"]``)."""

from shieldgym.costs.base import COST_KEY, COSTS_KEY, CostTerm, FunctionCost, StepContext, get_cost, validate_cost

__all__ = ["COSTS_KEY", "COST_KEY", "CostTerm", "FunctionCost", "StepContext", "get_cost", "validate_cost"]
