"""derivcheck: is your hand-derived gradient right? If not, where and why.

Examples
--------
>>> import numpy as np, derivcheck as dc
>>> w = np.array([[1.0, -2.0], [0.5, 3.0]])
>>> dc.check_gradient(lambda w: np.tanh(w).sum(), lambda w: 1 - np.tanh(w) ** 2, w).ok
True
"""

import importlib
import importlib.abc
import importlib.machinery
import sys
import types

# Modules moved when the package was laid out by design part (catalog/, checker/, language/, ...):
# an old import path still works and gives the module at its new place.
_MOVED = {
    "answer": "interfaces.derivation_scripts",
    "attribution": "checker.attribution",
    "backward": "checker.backward",
    "check": "checker.gradient",
    "cli": "interfaces.cli",
    "compose": "catalog.compose",
    "diagnosis": "checker.diagnosis",
    "domains": "catalog.domains",
    "entries": "checker.entries",
    "evaluation": "checker.evaluation",
    "evidence": "checker.evidence",
    "examples": "interfaces.examples",
    "expressions": "language",
    "expressions.layer_chain": "symbolic.layer_chain",
    "expressions.report": "report.language",
    "expressions.result": "report.results",
    "extend": "catalog.extension",
    "findings": "checker.verdict",
    "joint": "checker.joint",
    "layers": "catalog.layers",
    "models": "catalog.models",
    "outcome": "checker.outcome",
    "plot": "checker.plots",
    "progress": "checker.progress",
    "pytest_plugin": "interfaces.pytest_plugin",
    "registry": "catalog.registry",
    "render": "symbolic.presentation",
    "results": "report.results",
    "sampling": "catalog.sampling",
    "second_order": "checker.second_order",
    "strategies": "interfaces.strategies",
    "symbolic.latex": "language.printing.sympy_forms",
    "report.latex": "language.printing.sympy_forms",
    "report.notation": "language.printing.notation",
    "numeric.taylor": "checker.taylor",
    "tolerances": "numeric.tolerances",
    "user_files": "interfaces.user_files",
    "user_functions": "checker.user_functions",
    "verify": "symbolic.verify",
    "vspace": "checker.parameters",
}


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves ``derivcheck.<old name>`` (and its submodules) to the module at its new place."""

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> importlib.machinery.ModuleSpec | None:
        head, _, rest = fullname.partition(".")
        if head != "derivcheck" or not rest:
            return None
        for old, new in sorted(_MOVED.items(), key=lambda item: -len(item[0])):  # the longest old name first
            if rest == old or rest.startswith(old + "."):
                return importlib.machinery.ModuleSpec(fullname, self, loader_state="derivcheck." + new + rest[len(old):])
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None  # a placeholder module, replaced below

    def exec_module(self, module: types.ModuleType) -> None:
        # The import system returns whatever sys.modules holds once this returns: the real module,
        # with its own name and spec untouched.
        sys.modules[module.__name__] = importlib.import_module(module.__spec__.loader_state)


# First in line: a moved package (derivcheck.expressions) must not have its new folder searched under the old name.
sys.meta_path.insert(0, _MovedModuleFinder())

from derivcheck.checker.backward import check_backward
from derivcheck.checker.gradient import assert_gradient, check_gradient
from derivcheck.errors import (
    DerivcheckError,
    DerivcheckWarning,
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
from derivcheck.checker.second_order import check_hessian, check_hvp

# The symbolic side imports SymPy; load it on first use so numeric checks start fast.
_LAZY = {
    "derive": "derivcheck.symbolic.derive",
    "derive_expression": "derivcheck.language.derivation",
    "check_equation": "derivcheck.language.equation",
    "derive_steps": "derivcheck.language.program",
    "render_derivation": "derivcheck.symbolic.presentation",
    "verify_layer": "derivcheck.symbolic.verify",
    "list_layers": "derivcheck.catalog.registry",
    "Sequential": "derivcheck.catalog.compose",
    "Step": "derivcheck.catalog.compose",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'derivcheck' has no attribute {name!r}")


__all__ = [
    "DerivcheckError",
    "DerivcheckWarning",
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
