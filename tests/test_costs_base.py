"""The cost convention: validation and reading of info["cost"]."""

import numpy as np
import pytest

from shieldgym.costs.base import CostTerm, FunctionCost, get_cost, validate_cost
from shieldgym.errors import CostSignalError


@pytest.mark.parametrize(
    "value, expected", [(0, 0.0), (1.5, 1.5), (np.float32(0.25), 0.25), (np.array([2.0]), 2.0), (True, 1.0)]
)
def test_validate_cost_accepts_scalars(value, expected):
    out = validate_cost(value, "c")
    assert out == expected and type(out) is float


@pytest.mark.parametrize(
    "value, match",
    [
        (float("nan"), "finite"),
        (float("inf"), "finite"),
        (-0.1, ">= 0"),
        (np.zeros(2), "scalar"),
        ("1", "scalar"),
        (None, "scalar"),
    ],
)
def test_validate_cost_rejects_with_the_name(value, match):
    with pytest.raises(CostSignalError, match=match) as err:
        validate_cost(value, "contact")
    assert "contact" in str(err.value)


def test_get_cost_missing_key_lists_keys():
    with pytest.raises(CostSignalError, match="'cost'") as err:
        get_cost({"x": 1}, "cost")
    assert "['x']" in str(err.value)
    assert get_cost({"penalty": 2}, "penalty") == 2.0


def test_cost_term_arguments_are_checked():
    with pytest.raises(ValueError, match="name"):
        FunctionCost("", lambda ctx: 0.0)
    with pytest.raises(ValueError, match="weight"):
        FunctionCost("a", lambda ctx: 0.0, weight=-1)
    with pytest.raises(TypeError, match="callable"):
        FunctionCost("a", 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        CostTerm("abstract")  # type: ignore[abstract]
