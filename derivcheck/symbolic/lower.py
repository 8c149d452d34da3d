"""Non-smooth functions lowered to Piecewise with the project's conventions, before differentiation.

SymPy treats matrix entries as complex: ``Abs(x)`` differentiates to ``re``/``im`` terms and
``Derivative(re(x), x)``, which nothing can evaluate; ``Max(x, 0)`` differentiates to
``Heaviside(x, 1/2)``, half a gradient at 0. Lowered first, each is a real Piecewise whose
derivative follows the conventions: ReLU'(0) = 0 (a constant wins a tie with a variable),
sign(0) = 0 so |x|'(0) = 0, Heaviside(0) = 0, and between two variables the first argument
wins a tie.

Examples
--------
>>> x = sp.Symbol("x")
>>> lower(sp.Max(x, 0))
Piecewise((x, x > 0), (0, True))
>>> sp.diff(lower(sp.Abs(x)), x).subs(x, 0)
0
"""

from __future__ import annotations

import sympy as sp


def _sign(u: sp.Expr) -> sp.Expr:
    return sp.Piecewise((1, u > 0), (-1, u < 0), (0, True))


def _extreme(args: tuple[sp.Expr, ...], larger: bool) -> sp.Expr:
    """Max (larger) or Min of the arguments; constants lose ties, then earlier arguments win them."""
    variables = [a for a in args if not a.is_number]
    constants = [a for a in args if a.is_number]
    ordered = variables + constants
    out = ordered[-1]
    for a in reversed(ordered[:-1]):
        # Against a constant a variable must win strictly (ReLU'(0) = 0); between variables the earlier wins ties.
        if larger:
            cond = (a > out) if out.is_number else (a >= out)
        else:
            cond = (a < out) if out.is_number else (a <= out)
        out = sp.Piecewise((a, cond), (out, True))
    return out


def lower(expr: sp.Expr) -> sp.Expr:
    """``expr`` with Abs, sign, Max, Min and Heaviside replaced by Piecewise (conventions above)."""
    out = expr.replace(lambda e: isinstance(e, sp.Heaviside), lambda e: sp.Piecewise((1, e.args[0] > 0), (0, True)))
    out = out.replace(lambda e: isinstance(e, sp.sign), lambda e: _sign(e.args[0]))
    out = out.replace(lambda e: isinstance(e, sp.Abs), lambda e: e.args[0] * _sign(e.args[0]))
    out = out.replace(lambda e: isinstance(e, sp.Max), lambda e: _extreme(e.args, True))
    out = out.replace(lambda e: isinstance(e, sp.Min), lambda e: _extreme(e.args, False))
    return out


def unsupported(expr: sp.Expr) -> str | None:
    """The name of a construct the derivation cannot handle, or None."""
    for kind, label in ((sp.Product, "Product (write it as exp(Sum(log(...))) for positive factors)"),
                        (sp.Determinant, "Determinant (log det has no index form here; the matrix language derives it: "
                                         "derivcheck derive-expr 'logdet(X)' --wrt X --let 'X: D x D' gives X^-T)"),
                        (sp.Derivative, "an unevaluated Derivative"),
                        (sp.re, "re(...) (a complex-valued expression)"), (sp.im, "im(...)")):
        if expr.has(kind):
            return label
    return None
