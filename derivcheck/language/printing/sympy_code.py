"""SymPy matrix forms as NumPy code a person writes: ``dy @ w.T``, ``dy.sum(axis=0)``, ``np.exp``."""

from __future__ import annotations

from typing import Any

import sympy as sp
from sympy.printing.numpy import NumPyPrinter


class MatrixCodePrinter(NumPyPrinter):
    """NumPy as a person writes it: ``dy @ w.T``, ``dy.sum(axis=0)``, ``np.exp``; sizes read off the arrays."""

    def __init__(self, names: dict[Any, str], sizes: dict[Any, str]) -> None:
        super().__init__({"fully_qualified_modules": True, "inline": True, "allow_unknown_functions": True})
        self.names, self.size_of = names, sizes

    def _module_format(self, fqn: str, register: bool = True) -> str:
        return "np." + fqn.split(".", 1)[1] if fqn.startswith("numpy.") else fqn

    def _print_Symbol(self, e: sp.Symbol) -> str:
        return self.names.get(e) or self.size_of.get(e) or super()._print_Symbol(e)

    def _print_MatrixSymbol(self, e: sp.MatrixSymbol) -> str:
        return self.names.get(e, e.name)

    def _print_Transpose(self, e: Any) -> str:
        inner = self._print(e.arg)
        return f"{inner}.T" if isinstance(e.arg, sp.MatrixSymbol) else f"({inner}).T"

    def _print_OneMatrix(self, e: Any) -> str:
        return f"np.ones(({self._print(e.rows)}, {self._print(e.cols)}))"

    def _operand(self, a: Any) -> str:
        s = self._print(a)
        return s if isinstance(a, (sp.MatrixSymbol, sp.Transpose)) or s.isidentifier() or _is_call(s) else f"({s})"

    def _print_Piecewise(self, e: Any) -> str:
        *pieces, (last, cond) = e.args
        out = self._print(last) if cond == sp.true else f"np.where({self._print(cond)}, {self._print(last)}, np.nan)"
        for value, c in reversed(pieces):
            out = f"np.where({self._print(c)}, {self._print(value)}, {out})"
        return out

    def _print_Relational(self, e: Any) -> str:
        return f"{self._print(e.lhs)} {e.rel_op} {self._print(e.rhs)}"

    def _print_MatMul(self, e: Any) -> str:
        coeff, factors = e.as_coeff_matrices()
        factors = list(factors)
        head = "" if coeff == 1 else f"{self._print(coeff)} * "
        if len(factors) == 2 and isinstance(factors[1], sp.OneMatrix) and factors[1].cols == 1:
            a = factors[0]  # A^T 1 sums A's rows: A.sum(axis=0); A 1 sums its columns
            if isinstance(a, sp.Transpose):
                return head + f"{self._operand(a.arg)}.sum(axis=0)"
            return head + f"{self._operand(a)}.sum(axis=1, keepdims=True)"
        return head + " @ ".join(self._operand(a) for a in factors)

    def _print_Mul(self, e: Any) -> str:
        coeff, rest = e.as_coeff_Mul()
        if not coeff.is_Rational or coeff.is_Integer or rest == 1:
            return super()._print_Mul(e)
        sign = "-" if coeff < 0 else ""  # x*y/4, not (1/4)*x*y: no parentheses Python does not need
        return f"{sign}{self._print(abs(coeff.p) * rest)}/{coeff.q}"

    def _print_HadamardProduct(self, e: Any) -> str:
        return " * ".join(self._operand(a) for a in e.args)

    def _print_reduce_axis(self, e: Any) -> str:
        return f"{self._operand(e.args[0])}.sum(axis={self._print(e.args[1])}, keepdims=True)"

    def _print_ElementwiseApplyFunction(self, e: Any) -> str:
        lam, inner = e.function, self._operand(e.expr)
        out = self._print(lam.expr.xreplace({lam.variables[0]: sp.Symbol(inner)}))
        return out.replace(f"({inner})", f"{inner}") if inner.startswith("(") else out  # np.tanh(a + b), not ((a + b))


def _is_call(s: str) -> bool:
    """``np.exp(x)``: a name applied to one balanced argument list, safe to call a method on."""
    head, paren, _ = s.partition("(")
    if not paren or not head.replace(".", "_").isidentifier() or not s.endswith(")"):
        return False
    depth = 0
    for i, ch in enumerate(s[len(head):]):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth == 0 and i < len(s) - len(head) - 1:
            return False
    return True
