"""One notation for every layer: entries ``x_{np}``, upstream ``g``/``G``, ``\\partial``.

Index form: entries of a matrix ``X`` print as ``x_{np}``, the upstream gradient ``G`` as
``g_{nq}`` (a delta would read as a Kronecker delta), Greek names as Greek letters, sums
as ``\\sum_{n}`` (ranges are implied by the dimension letters).
Matrix form: ``X^{\\top}``, ``\\mathbf{1}_{N}`` for ones vectors, ``\\odot`` for Hadamard
products and ``\\oslash`` for elementwise division; functions of a matrix act elementwise.
"""

from __future__ import annotations

from typing import Any

import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixElement
from sympy.printing.latex import LatexPrinter

UPSTREAM = "G"
# The upstream gradient dE/dY is G, its entries g_{nq}: a delta would read as a Kronecker delta,
# which the index forms contract.
_UPSTREAM_LATEX = ("G", "g")
GREEK = frozenset("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi pi rho sigma tau upsilon "
                  "phi chi psi omega".split())


def _greek(name: str) -> str | None:
    return rf"\{name.lower()}" if name.lower() in GREEK else None


def _vector_name(name: str) -> str:
    """A vector: bold, and a Greek name as its letter (gamma -> a bold gamma, never g^{amma})."""
    g = _greek(name)
    return rf"\boldsymbol{{{g}}}" if g else rf"\mathbf{{{name}}}"


def _matrix_name(name: str, rename: dict[str, str] | None = None) -> str:
    if rename and name in rename:
        return rename[name]
    if name == UPSTREAM:
        return _UPSTREAM_LATEX[0]
    if _greek(name):
        return rf"\boldsymbol{{{_greek(name)}}}"
    # WX -> W_{x}: a weight named after what it multiplies.
    return f"{name[0]}_{{{name[1:].lower()}}}" if len(name) > 1 and name.isupper() and name.isalpha() else name


def _entry_name(name: str) -> str:
    if name == UPSTREAM:
        return _UPSTREAM_LATEX[1]
    if _greek(name):
        return _greek(name)
    # Entries of W_x are w^{x}_{dm}: the subscript is taken by the indices.
    if len(name) > 1 and name.isalpha():
        return f"{name[0].lower()}^{{{name[1:].lower()}}}"
    return name.lower()


class DerivationPrinter(LatexPrinter):
    """LaTeX for derivations; ``elementwise`` maps placeholder symbols to matrix names."""

    def __init__(self, elementwise: dict[sp.Symbol, Any] | None = None, rename: dict[str, str] | None = None) -> None:
        super().__init__({"mul_symbol": None})
        self.holders = elementwise or {}
        self.rename = rename or {}

    def _indices(self, indices: tuple[Any, ...]) -> str:
        parts = [self._print(i) for i in indices]
        joined = "".join(parts) if all(len(p) == 1 for p in parts) else ",".join(parts)
        return joined

    def _print_MatrixElement(self, e: MatrixElement) -> str:
        idx = (e.i,) if e.parent.shape[1] == 1 else (e.i, e.j)
        if e.parent.name in self.rename:  # an entry of a renamed matrix: (G_{h2})_{qr}
            return rf"\left({self.rename[e.parent.name]}\right)_{{{self._indices(idx)}}}"
        return f"{_entry_name(e.parent.name)}_{{{self._indices(idx)}}}"

    def _print_Indexed(self, e: sp.Indexed) -> str:
        label = str(e.base.label)
        if label in self.rename:  # an entry of a renamed matrix: (G_{h2})_{qr}
            return rf"\left({self.rename[label]}\right)_{{{self._indices(e.indices)}}}"
        return f"{_entry_name(label)}_{{{self._indices(e.indices)}}}"

    def _print_MatrixSymbol(self, e: sp.MatrixSymbol) -> str:
        if e.name in self.rename:
            return self.rename[e.name]
        return _matrix_name(e.name) if e.shape[1] != 1 else _vector_name(e.name)

    def _print_Transpose(self, e: Any) -> str:
        inner = self._print(e.arg)
        if not isinstance(e.arg, (sp.MatrixSymbol, sp.OneMatrix)):
            inner = rf"\left({inner}\right)"
        return f"{inner}^{{\\top}}"

    def _print_OneMatrix(self, e: sp.OneMatrix) -> str:
        n = e.rows if e.cols == 1 else e.cols
        return rf"\mathbf{{1}}_{{{self._print(n)}}}"

    def _print_MatMul(self, e: Any) -> str:
        parts = []
        for a in e.args:
            s = self._print(a)
            parts.append(rf"\left({s}\right)" if isinstance(a, (sp.MatAdd, sp.HadamardProduct)) else s)
        return r"\,".join(parts)

    def _print_ElementwiseApplyFunction(self, e: Any) -> str:
        # f applied entry by entry: print f's body with the matrix argument in place.
        lam = e.function
        xi = sp.Symbol("xi")
        body = self._print(lam.expr.xreplace({lam.variables[0]: xi}))
        body = body.replace(r"\left(\xi \right)", r"\xi").replace(r"\xi", rf"\left({self._print(e.expr)}\right)")
        return rf"\left[{body}\right]" if isinstance(lam.expr, sp.Add) else body

    def _print_HadamardProduct(self, e: Any) -> str:
        return r" \odot ".join(self._print(a) for a in e.args)

    def _print_Sum(self, e: sp.Sum) -> str:
        variables = ",".join(self._print(lim[0]) for lim in e.limits)
        body = self._print(e.function)
        if isinstance(e.function, sp.Add):
            body = rf"\left({body}\right)"
        return rf"\sum_{{{variables}}} {body}"

    def _print_Symbol(self, e: sp.Symbol, style: str = "plain") -> str:
        if e in self.holders:
            target = self.holders[e]
            name = str(target.label if isinstance(target, sp.IndexedBase) else target.name)
            if name in self.rename:
                return self.rename[name]
            if isinstance(target, sp.MatrixSymbol) and target.shape[1] == 1:
                return _vector_name(name)
            return _matrix_name(name)
        if e.name == "eps":
            return r"\epsilon"
        return super()._print_Symbol(e, style=style)

    def _print_reduce_axis(self, e: Any, exp: str | None = None) -> str:
        inner = self._print(e.args[0])
        if e.args[1] == 1:
            out = rf"\left({inner}\right)\mathbf{{1}}\mathbf{{1}}^{{\top}}"
        else:
            out = rf"\mathbf{{1}}\mathbf{{1}}^{{\top}}\left({inner}\right)"
        return rf"\left[{out}\right]^{{\circ {exp}}}" if exp is not None else out

    def _is_matrix_valued(self, e: Any) -> bool:
        return bool(self.holders) and bool(e.free_symbols & set(self.holders))

    def _print_Mul(self, e: Any) -> str:
        factors = sp.Mul.make_args(e)
        if self.holders:
            matrix = [f for f in factors if self._is_matrix_valued(f)]
            if len(matrix) >= 2 or any(isinstance(f, sp.Pow) and f.exp.is_negative for f in matrix):
                return self._hadamard(factors)
        # Entries of the upstream gradient go last: x_{np} \delta_{nq}, as in textbooks.
        entries = [f for f in factors if isinstance(f, (MatrixElement, sp.Indexed))]
        if len(entries) == len(factors) and len(entries) > 1:
            ordered = sorted(entries, key=lambda f: str(_parent_name(f)) == UPSTREAM)
            return r"\,".join(self._print(f) for f in ordered)
        return super()._print_Mul(e)

    def _hadamard(self, factors: tuple[Any, ...]) -> str:
        scalar = [f for f in factors if not self._is_matrix_valued(f)]
        matrix = [f for f in factors if self._is_matrix_valued(f)]
        num = [f for f in matrix if not (isinstance(f, sp.Pow) and f.exp.is_negative)]
        den = [1 / f for f in matrix if isinstance(f, sp.Pow) and f.exp.is_negative]

        def wrap(f: Any) -> str:
            s = self._print(f)
            return rf"\left({s}\right)" if isinstance(f, sp.Add) else s

        out = r" \odot ".join(wrap(f) for f in num) if num else "1"
        if den:
            out = out + r" \oslash " + r" \oslash ".join(wrap(f) for f in den)
        if scalar:
            coeff = self._print(sp.Mul(*scalar))
            if coeff == "-1":
                coeff = "-"
            out = rf"{coeff} \left({out}\right)" if len(num) + len(den) > 1 else rf"{coeff}\, {out}"
        return out


def _parent_name(e: Any) -> str:
    return e.parent.name if isinstance(e, MatrixElement) else str(e.base.label)


def partial(objective: str, wrt: str) -> str:
    r"""``\frac{\partial E}{\partial W_{pq}}``."""
    return rf"\frac{{\partial {objective}}}{{\partial {wrt}}}"
