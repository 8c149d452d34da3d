"""derivcheck: is your hand-derived gradient right? If not, where and why.

Examples
--------
>>> import numpy as np, derivcheck as dc
>>> w = np.array([[1.0, -2.0], [0.5, 3.0]])
>>> dc.check_gradient(lambda w: np.tanh(w).sum(), lambda w: 1 - np.tanh(w) ** 2, w).ok
True
"""

from derivcheck.check import assert_gradient, check_backward, check_gradient
from derivcheck.errors import (
    DerivcheckError,
    GradientMismatch,
    GradientShapeError,
    InputError,
    IntegerDtypeError,
    NonFiniteError,
    UserFunctionError,
)
from derivcheck.report import Finding, GradientReport, ParamReport

__all__ = [
    "DerivcheckError",
    "Finding",
    "GradientMismatch",
    "GradientReport",
    "GradientShapeError",
    "InputError",
    "IntegerDtypeError",
    "NonFiniteError",
    "ParamReport",
    "UserFunctionError",
    "assert_gradient",
    "check_backward",
    "check_gradient",
]
__version__ = "0.1.0"
