"""Index forms as text and LaTeX: sums with their index, entries with subscripts, σ for the sigmoid."""

from __future__ import annotations

from typing import Any

import sympy as sp
from sympy.printing.str import StrPrinter

from derivcheck.language.printing.sympy_forms import DerivationPrinter
from derivcheck.language.printing.trees import MathPrinter


def _power(exp: str | None) -> str:
    return "%s" if exp is None else "\\left(%s\\right)^{" + exp.replace("%", "%%") + "}"


class IndexLatex(DerivationPrinter):
    """LaTeX of an index form: sums with their index, entries with subscripts, σ for the sigmoid."""

    def _print_Sigmoid(self, e: Any, exp: str | None = None) -> str:
        return _power(exp) % rf"\sigma\left({self._print(e.args[0])}\right)"

    def _print_Softplus(self, e: Any, exp: str | None = None) -> str:
        return _power(exp) % rf"\operatorname{{softplus}}\left({self._print(e.args[0])}\right)"

    def _print_Relu(self, e: Any, exp: str | None = None) -> str:
        return _power(exp) % rf"\operatorname{{relu}}\left({self._print(e.args[0])}\right)"

    def _print_Step(self, e: Any, exp: str | None = None) -> str:
        return _power(exp) % rf"\mathbb{{1}}\left[{self._print(e.args[0])} > 0\right]"

    def _print_Indexed(self, e: sp.Indexed) -> str:
        label = str(e.base.label)
        name = MathPrinter(latex=True).name(label) if not label.startswith("\\left") else label
        return f"{name}_{{{self._indices(e.indices)}}}"


class IndexText(StrPrinter):
    """Plain text of an index form: ``sum_n X[n,i] G[n,j]``."""

    printmethod = "_derivcheck_text"  # Indexed brings its own _sympystr, which would win over ours

    def _print_Sum(self, e: sp.Sum) -> str:
        ks = ",".join(str(lim[0]) for lim in e.limits)
        body = self._print(e.function)
        if isinstance(e.function, sp.Add):
            body = f"({body})"
        return f"sum_{ks} {body}"

    def _print_Indexed(self, e: sp.Indexed) -> str:
        label = str(e.base.label)
        if label.startswith("\\left("):
            label = "(" + _plain(label) + ")"
        return f"{MathPrinter().name(label)}[{','.join(self._print(i) for i in e.indices)}]"

    def _print_Symbol(self, e: sp.Symbol) -> str:
        return MathPrinter().name(_plain(e.name)) if "\\" in e.name else MathPrinter().name(e.name)

    def _print_KroneckerDelta(self, e: Any) -> str:
        return f"{'δ' if MathPrinter().g.unicode else 'delta'}({self._print(e.args[0])},{self._print(e.args[1])})"

    def _print_Sigmoid(self, e: Any) -> str:
        return f"{MathPrinter().g.sigmoid}({self._print(e.args[0])})"  # the glyphs the terminal shows

    def _print_Step(self, e: Any) -> str:
        return f"1[{self._print(e.args[0])} > 0]"


def _plain(label: str) -> str:
    for a, b in ((r"\left(", ""), (r"\right)", ""), ("^{-1}", "^-1"), (r"^{-\top}", "^-T"), (r"\log\det", "log det"),
                 (r"\det", "det"), (r"\left", ""), (r"\right", ""), ("^\\top", "^T")):
        label = label.replace(a, b)
    return label
