"""Index forms of typed expressions as text and LaTeX, in the notation of the layer side (``sympy_forms``).

``∂f/∂w_i = Σ_n (σ(y_n Σ_d X_nd w_d) y_n - y_n) X_ni``: Σ and ∂ from the glyph table (``sum_n`` and
``df/dw_i`` where the terminal cannot show them), entries by subscripts, juxtaposition for products,
one index for a vector. A typed expression's names are the user's own, so an entry keeps its
matrix's name (``X_nd``, never ``x_nd``: ``x`` may be another variable). A Σ reaches to the end of
its product (its index is fresh, so the factors after it do not depend on it). Where a subscript
could be misread (an index of more than one character, a 0 for an axis of length 1, a name with an
underscore or the prefix of another name), the entry is written with brackets, ``W_1[i, j]``.
Inverses and determinants are atoms: ``(X⁻¹)_ji``, ``det(X)``. Everything printed here reads back
(:mod:`derivcheck.language.index_claim`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import sympy as sp
from sympy.printing.str import StrPrinter

from derivcheck.language.nodes import Node
from derivcheck.language.printing.notation import Glyphs
from derivcheck.language.printing.sympy_forms import DerivationPrinter, TextPrinter, _UnicodePrinter
from derivcheck.language.printing.trees import MathPrinter


def _power(exp: str | None) -> str:
    return "%s" if exp is None else "\\left(%s\\right)^{" + exp.replace("%", "%%") + "}"


def subscripted(name: str, names: Collection[str]) -> bool:
    """An entry of ``name`` may be written ``name_ij``: its name has no underscore and begins no other name."""
    return "_" not in name and not any(o != name and o.startswith(name + "_") for o in names)


def entry_text(shown: str, indices: list[str], by_subscript: bool) -> str:
    """``X_nd`` where each index is one letter and the name allows it, else ``X[n, d]``."""
    if not indices:
        return shown
    if by_subscript and all(len(i) == 1 and i.isalpha() for i in indices):
        return f"{shown}_{''.join(indices)}"
    return f"{shown}[{', '.join(indices)}]"


def lhs_text(wrt: str, free: tuple[Any, ...], names: Collection[str], glyphs: Glyphs, objective: str = "f") -> str:
    """The left side of an index form: ``∂f/∂w_i`` (``df/dw_i`` in ASCII), ``∂f/∂λ`` for a scalar."""
    entry = entry_text(glyphs.name(wrt), [str(i) for i in free], subscripted(wrt, names))
    return glyphs.derivative(objective, entry)


def lhs_latex(wrt: str, free: tuple[Any, ...], objective: str = "f") -> str:
    r"""``\frac{\partial f}{\partial w_{i}}``."""
    name = MathPrinter(latex=True).name(wrt)
    sub = "".join(str(i) for i in free) if all(len(str(i)) == 1 for i in free) else ",".join(map(str, free))
    entry = subscripted_latex(name, sub) if free else name
    return rf"\frac{{\partial {objective}}}{{\partial {entry}}}"


def subscripted_latex(name: str, sub: str) -> str:
    r"""``name`` with the subscript ``sub``; a name that has a subscript of its own is braced first, since TeX
    rejects a double subscript (``W_i_{jl}``).

    Examples
    --------
    >>> subscripted_latex("X", "nd"), subscripted_latex("W_i", "jl"), subscripted_latex(r"\bar{A_i}", "nj")
    ('X_{nd}', '{W_i}_{jl}', '\\bar{A_i}_{nj}')
    """
    depth = 0
    for ch in name:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if ch == "_" and depth == 0:
            return f"{{{name}}}_{{{sub}}}"
    return f"{name}_{{{sub}}}"


def chained(factors: tuple[Any, ...], free: tuple[Any, ...]) -> list[Any]:
    """Entries in the order a textbook writes a product: each contracted with the next, as a matrix product chains
    (``X_nd W_dj``, ``X_nd w_d``); among chains, the one holding the first free index first (``X_ni G_nj``).

    Examples
    --------
    >>> n, d, j = sp.symbols("n d j", integer=True)
    >>> chained((sp.IndexedBase("W")[d, j], sp.IndexedBase("X")[n, d]), (j,))
    [X[n, d], W[d, j]]
    """
    def key(f: Any) -> tuple[int, int, str]:
        ranks = [free.index(i) for i in f.indices if i in free]
        return min(ranks, default=len(free)), -len(f.indices), str(f.base.label)

    rest = sorted(factors, key=key)
    out: list[Any] = []
    while rest:
        lasts = {f.indices[-1] for f in rest}
        heads = [f for f in rest if f.indices[0] not in lasts or len(f.indices) == 1 and len(rest) == 1]
        current = (heads or rest)[0]
        while current is not None:
            out.append(current)
            rest.remove(current)
            current = next((f for f in rest if f.indices[0] == out[-1].indices[-1] and len(out[-1].indices) > 1), None)
    return out


class IndexLatex(DerivationPrinter):
    """LaTeX of an index form: sums with their index, entries with subscripts, σ for the sigmoid."""

    def __init__(self, atoms: Mapping[sp.Basic, Node] | None = None, free: tuple[Any, ...] = ()) -> None:
        super().__init__()
        self.atoms = atoms or {}
        self.free = tuple(free)

    def _print_Mul(self, e: Any) -> str:
        factors = sp.Mul.make_args(e)
        if len(factors) > 1 and all(isinstance(f, sp.Indexed) for f in factors):
            return r"\,".join(self._print(f) for f in chained(factors, self.free))
        return super()._print_Mul(e)

    def _needs_mul_brackets(self, expr: Any, first: bool = False, last: bool = False) -> bool:
        # A function's argument is delimited already: σ(Σ_d ...) needs no brackets of its own within a product.
        if isinstance(expr, sp.Function) and not isinstance(expr, sp.Piecewise):
            return False
        return bool(super()._needs_mul_brackets(expr, first=first, last=last))

    def _print_Sigmoid(self, e: Any, exp: str | None = None) -> str:
        return _power(exp) % rf"\sigma\left({self._print(e.args[0])}\right)"

    def _print_Softplus(self, e: Any, exp: str | None = None) -> str:
        return _power(exp) % rf"\operatorname{{softplus}}\left({self._print(e.args[0])}\right)"

    def _print_Relu(self, e: Any, exp: str | None = None) -> str:
        return _power(exp) % rf"\operatorname{{relu}}\left({self._print(e.args[0])}\right)"

    def _print_Step(self, e: Any, exp: str | None = None) -> str:
        return _power(exp) % rf"\mathbb{{1}}\left[{self._print(e.args[0])} > 0\right]"

    def _print_Indexed(self, e: sp.Indexed) -> str:
        if e.base in self.atoms:  # (X^{-1})_{ji}
            name = rf"\left({MathPrinter(latex=True)(self.atoms[e.base])}\right)"
        else:
            name = MathPrinter(latex=True).name(str(e.base.label))
        return subscripted_latex(name, self._indices(e.indices))

    def _print_Symbol(self, e: sp.Symbol, style: str = "plain") -> str:
        if e in self.atoms:  # \det\left(X\right)
            s, prec = MathPrinter(latex=True).p(self.atoms[e])
            return s if prec >= 4 else rf"\left({s}\right)"
        if e.is_integer and e.is_positive:  # a dimension, N
            return e.name
        return MathPrinter(latex=True).name(e.name)


class IndexText(TextPrinter):
    """An index form as text in the glyphs in force: ``Σ_n X_ni G_nj`` (``sum_n X_ni G_nj`` in ASCII).

    ``atoms`` maps the symbols of inverses and determinants to their trees; ``names`` are the declared names
    (an entry is written with brackets where a subscript could read as another name); ``free`` the entry's free
    indices, which order the entries of a product (``X_ni G_nj``).

    Examples
    --------
    >>> from derivcheck.language.printing.notation import ASCII
    >>> n, i, j = sp.symbols("n i j", integer=True)
    >>> X, G = sp.IndexedBase("X"), sp.IndexedBase("G")
    >>> IndexText(glyphs=ASCII, free=(i, j)).doprint(sp.Sum(X[n, i] * G[n, j], (n, 0, sp.Symbol("N") - 1)))
    'sum_n X_ni G_nj'
    """

    def __init__(self, atoms: Mapping[sp.Basic, Node] | None = None, names: Collection[str] = (),
                 glyphs: Glyphs | None = None, free: tuple[Any, ...] = ()) -> None:
        super().__init__(glyphs=glyphs)
        self.atoms = atoms or {}
        self.names = set(names)
        self.free = tuple(free)  # the entry's free indices: a product's entries are ordered by them
        self._printer = _TypedText(self)


class _TypedText(_UnicodePrinter):
    """The layer side's text printer with the typed expression's own names: ``X_nd``, ``G_nj``, ``λ``."""

    owner: IndexText

    def _entry(self, name: str, indices: tuple[Any, ...]) -> str:
        self.in_index += 1
        parts = [self._print(i) for i in indices]
        self.in_index -= 1
        ok = all(isinstance(i, sp.Symbol) for i in indices)
        return entry_text(self.g.name(name), parts, ok and subscripted(name, self.owner.names))

    def _print_Indexed(self, e: sp.Indexed) -> str:
        if e.base in self.owner.atoms:  # (X⁻¹)_ji
            self.in_index += 1
            parts = [self._print(i) for i in e.indices]
            self.in_index -= 1
            inside = MathPrinter(glyphs=self.g)(self.owner.atoms[e.base])
            return entry_text(f"({inside})", parts, all(isinstance(i, sp.Symbol) for i in e.indices))
        return self._entry(str(e.base.label), e.indices)

    def _print_Symbol(self, e: sp.Symbol) -> str:
        if e in self.owner.atoms:  # det(X), log det(X)
            s, prec = MathPrinter(glyphs=self.g).p(self.owner.atoms[e])
            return s if prec >= 4 else f"({s})"
        return self.g.name(e.name)

    _print_Dummy = _print_Symbol

    def _print_Mul(self, e: Any) -> str:
        # Juxtaposition outside indices, whatever the names: the layer side's · between sizes is for K·p inside one;
        # entries chained as in a textbook (a typed expression has no upstream gradient to put last).
        factors = sp.Mul.make_args(e)
        if len(factors) > 1 and all(isinstance(f, sp.Indexed) for f in factors):
            s = "*".join(self._print(f) for f in chained(factors, self.owner.free))
        else:
            s = StrPrinter._print_Mul(self, e)
        return s.replace("*", self.g.cdot if self.in_index else " ")

    def _print_Sigmoid(self, e: Any) -> str:
        return f"{self.g.sigmoid}({self._print(e.args[0])})"

    def _print_Softplus(self, e: Any) -> str:
        return f"softplus({self._print(e.args[0])})"

    def _print_Relu(self, e: Any) -> str:
        return f"relu({self._print(e.args[0])})"

    def _print_Step(self, e: Any) -> str:
        return f"1[{self._print(e.args[0])} > 0]"

    def _print_sign(self, e: Any) -> str:
        return f"sign({self._print(e.args[0])})"

    def _print_Exp1(self, e: Any) -> str:
        return "exp(1)"

