"""derivcheck: is your hand-derived gradient right? If not, where and why.

Examples
--------
>>> import numpy as np, derivcheck as dc
>>> w = np.array([[1.0, -2.0], [0.5, 3.0]])
>>> dc.check_gradient(lambda w: np.tanh(w).sum(), lambda w: 1 - np.tanh(w) ** 2, w).ok
True
"""

from derivcheck.backward import check_backward
from derivcheck.check import assert_gradient, check_gradient
from derivcheck.errors import (
    DerivcheckError,
    ExpressionError,
    GradientMismatch,
    GradientShapeError,
    InputError,
    IntegerDtypeError,
    NonFiniteError,
    UnknownOptionError,
    UserFunctionError,
)
from derivcheck.report import Finding, GradientReport, ParamReport
from derivcheck.second_order import check_hessian, check_hvp

# The symbolic side imports SymPy; load it on first use so numeric checks start fast.
_LAZY = {
    "derive": "derivcheck.symbolic.derive",
    "derive_expression": "derivcheck.expressions.derivation",
    "check_equation": "derivcheck.expressions.equation",
    "derive_steps": "derivcheck.expressions.program",
    "render_derivation": "derivcheck.render",
    "verify_layer": "derivcheck.verify",
    "list_layers": "derivcheck.registry",
    "Sequential": "derivcheck.compose",
    "Step": "derivcheck.compose",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'derivcheck' has no attribute {name!r}")


__all__ = [
    "DerivcheckError",
    "ExpressionError",
    "Finding",
    "GradientMismatch",
    "GradientReport",
    "GradientShapeError",
    "InputError",
    "IntegerDtypeError",
    "NonFiniteError",
    "ParamReport",
    "Sequential",
    "Step",
    "UnknownOptionError",
    "UserFunctionError",
    "assert_gradient",
    "check_backward",
    "check_equation",
    "check_gradient",
    "check_hessian",
    "check_hvp",
    "derive",
    "derive_expression",
    "derive_steps",
    "list_layers",
    "render_derivation",
    "verify_layer",
]
__version__ = "0.1.0"
