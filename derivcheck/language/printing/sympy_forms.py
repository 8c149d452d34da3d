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
from sympy.printing.str import StrPrinter

import derivcheck.language.printing.notation as notation
from derivcheck.language.printing.notation import Glyphs

UPSTREAM = "G"
# Where an argument g or a dimension G takes the letter, the upstream gradient is G-bar (the adjoint's bar).
UPSTREAM_NAMES = frozenset({"G", "g", "GBAR", "gbar"})
# The upstream gradient dE/dY is G, its entries g_{nq}: a delta would read as a Kronecker delta,
# which the index forms contract.
_UPSTREAM_LATEX = ("G", "g")
GREEK = notation.GREEK_NAMES


def _greek(name: str) -> str | None:
    return rf"\{name.lower()}" if name.lower() in GREEK and name not in notation.apart().spelled else None


def _vector_name(name: str) -> str:
    """A vector: bold, and a Greek name as its letter (gamma -> a bold gamma, never g^{amma})."""
    g = _greek(name)
    return rf"\boldsymbol{{{g}}}" if g else rf"\mathbf{{{name}}}"


def _collides(name: str) -> bool:
    """``N_n``: an argument n beside a dimension N (the symbol carries both); printed with a tilde, ñ."""
    head, _, tail = name.partition("_")
    return bool(tail) and head == tail.upper()


def _matrix_name(name: str, rename: dict[str, str] | None = None) -> str:
    if rename and name in rename:
        return rename[name]
    if name in notation.apart().spelled:  # eps beside epsilon: \mathrm{eps}
        return rf"\mathrm{{{name}}}"
    if name in ("GBAR", "gbar"):
        return r"\bar{G}"
    if notation.latex_name_rule(name) is not None:  # X̂: \hat{X}
        return str(notation.latex_name_rule(name))
    if _collides(name):
        return rf"\tilde{{{name.partition('_')[0]}}}"
    if name == UPSTREAM:
        return _UPSTREAM_LATEX[0]
    if _greek(name):
        return rf"\boldsymbol{{{_greek(name)}}}"
    # WX -> W_{x}: a weight named after what it multiplies.
    return f"{name[0]}_{{{name[1:].lower()}}}" if len(name) > 1 and name.isupper() and name.isalpha() else name


def _entry_name(name: str) -> str:
    kept_apart = notation.apart()
    if name in kept_apart.capital_entries:  # a matrix G beside a vector g: its entries are G_pq
        return _matrix_name(name)
    if name in kept_apart.spelled:  # GAMMA beside gamma: \mathrm{GAMMA}_{pq}, as the matrix is named
        return rf"\mathrm{{{name}}}"
    if name in ("GBAR", "gbar"):
        return r"\bar{g}"
    if notation.latex_name_rule(name.lower()) is not None:  # entries of X̂: \hat{x}
        return str(notation.latex_name_rule(name.lower()))
    if _collides(name):
        return rf"\tilde{{{name.partition('_')[2]}}}"
    if name in UPSTREAM_NAMES:
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
        if e.name in ("gbar", "g") and e.shape[1] == 1:  # a vector output's upstream gradient
            return r"\bar{\mathbf{g}}" if e.name == "gbar" else r"\mathbf{g}"
        return _matrix_name(e.name) if e.shape[1] != 1 else _vector_name(e.name)

    def _print_Transpose(self, e: Any) -> str:
        inner = self._print(e.arg)
        if not isinstance(e.arg, (sp.MatrixSymbol, sp.OneMatrix)):
            inner = rf"\left({inner}\right)"
        return inner + notation.LATEX_TRANSPOSE

    def _print_OneMatrix(self, e: sp.OneMatrix) -> str:
        n = e.rows if e.cols == 1 else e.cols
        return rf"{notation.LATEX_ONE}_{{{self._print(n)}}}"

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
        return f" {notation.LATEX_ODOT} ".join(self._print(a) for a in e.args)

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
        if e.name == "eps" or e.name in notation.apart().spelled:
            return str(notation.latex_greek(e.name))
        return super()._print_Symbol(e, style=style)

    def _print_reduce_axis(self, e: Any, exp: str | None = None) -> str:
        inner = self._print(e.args[0])
        size = _summed_length(e, self.holders)
        one = notation.LATEX_ONE + ("" if size is None else f"_{{{self._print(size)}}}")
        ones = one + one + notation.LATEX_TRANSPOSE
        out = rf"\left({inner}\right){ones}" if e.args[1] == 1 else rf"{ones}\left({inner}\right)"
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
            ordered = sorted(entries, key=lambda f: str(_parent_name(f)).upper() in UPSTREAM_NAMES)
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

        out = f" {notation.LATEX_ODOT} ".join(wrap(f) for f in num) if num else "1"
        if den:
            out += "".join(f" {notation.LATEX_OSLASH} {wrap(f)}" for f in den)
        if scalar:
            coeff = self._print(sp.Mul(*scalar))
            if coeff == "-1":
                coeff = "-"
            out = rf"{coeff} \left({out}\right)" if len(num) + len(den) > 1 else rf"{coeff}\, {out}"
        return out


def _summed_length(e: Any, holders: dict[sp.Symbol, Any]) -> Any:
    """The length of the axis a ``reduce_axis`` sums: read off a matrix it sums over, None where none says."""
    for symbol in sorted(e.args[0].free_symbols & set(holders), key=str):
        shape = getattr(holders[symbol], "shape", None)
        if shape is not None and len(shape) > e.args[1]:
            return shape[e.args[1]]
    return None


def _parent_name(e: Any) -> str:
    return e.parent.name if isinstance(e, MatrixElement) else str(e.base.label)


def partial(objective: str, wrt: str) -> str:
    r"""``\frac{\partial E}{\partial W_{pq}}``."""
    return rf"\frac{{\partial {objective}}}{{\partial {wrt}}}"


# --- The same notation as text -----------------------------------------------------------------------
# One notation in both outputs: entries x_np (a vector's entries b_m, by one index), Σ_n over indices,
# ⊙ and ⊘ between matrices, ᵀ, Iverson brackets [x_pq > 0] for data-dependent cases, and index-range
# guards stated once, in words, below the equation. The glyphs (Unicode where the terminal shows
# them, else ASCII) are those of derivcheck.language.printing.notation, shared with the matrix language.


def text_name(name: str, glyphs: Glyphs | None = None) -> str:
    """A symbol's name in text: Greek names as Greek letters (``gamma`` -> ``γ``, ``eps`` -> ``ε``)."""
    g = glyphs or notation.current()
    if name in ("GBAR", "gbar"):
        return g.accent("G" if name == "GBAR" else "g", "bar")
    if _collides(name):  # the argument n beside the size N: Ñ
        return g.accent(name.partition("_")[0], "tilde")
    return g.greek(name, fold_case=True) if name.isascii() else g.name(name)  # X̂: Xhat in ASCII


def text_entry_name(name: str, upstream: str = "g", glyphs: Glyphs | None = None) -> str:
    """The letter of a matrix's entries: ``W`` -> ``w``, ``GAMMA`` -> ``γ``, the upstream gradient ``G`` -> ``g``."""
    g = glyphs or notation.current()
    kept_apart = notation.apart()
    if name in kept_apart.capital_entries:  # a matrix G beside a vector g: its entries are G_pq
        return text_name(name, g)
    if name in kept_apart.spelled:  # GAMMA beside gamma: GAMMA_pq, as the matrix is named
        return name
    if name in ("GBAR", "gbar"):
        return g.accent("g", "bar")
    if _collides(name):
        return g.accent(name.partition("_")[2], "tilde")
    if name in UPSTREAM_NAMES:
        return upstream
    return text_name(name.lower(), g)


class TextPrinter:
    """SymPy index and matrix forms as Unicode text; ``elementwise`` maps placeholders to matrix names.

    Examples
    --------
    >>> X, G = sp.MatrixSymbol("X", 3, 2), sp.MatrixSymbol("G", 3, 2)
    >>> n = sp.Symbol("n")
    >>> TextPrinter().doprint(sp.Sum(X[n, 0] * G[n, 1], (n, 0, 2)))
    'Σ_n x[n, 0] g[n, 1]'
    """

    def __init__(self, elementwise: dict[sp.Symbol, Any] | None = None, upstream: str = "g",
                 rename: dict[str, str] | None = None, glyphs: Glyphs | None = None) -> None:
        self.glyphs = glyphs or notation.current()  # Unicode where the terminal shows it, else ASCII
        self.holders = elementwise or {}
        self.upstream = upstream
        self.rename = rename or {}  # matrix name -> the name shown (a model's step values: G -> G_z2)
        self.guards: list[str] = []  # index-range conditions, stated once below the equation
        self._printer = _UnicodePrinter(self)

    def doprint(self, e: Any) -> str:
        return self._printer.doprint(e)

    def guard_note(self) -> str:
        """The index ranges the printed sums respect, in words (empty when there are none)."""
        if not self.guards:
            return ""
        return "where terms whose indices fall outside these ranges are 0: " + "; ".join(dict.fromkeys(self.guards))


class _UnicodePrinter(StrPrinter):
    printmethod = "_derivcheck_text"  # never an object's own _sympystr (Indexed has one)

    def __init__(self, owner: TextPrinter) -> None:
        super().__init__({"order": None})
        self.owner = owner
        self.g = owner.glyphs
        self.in_index = 0

    def _index_list(self, indices: tuple[Any, ...]) -> str:
        self.in_index += 1
        parts = [self._print(i) for i in indices]
        self.in_index -= 1
        if all(isinstance(i, sp.Symbol) and len(p) == 1 for i, p in zip(indices, parts)):
            return "_" + "".join(parts)
        return "[" + ", ".join(parts) + "]"

    def _entry(self, name: str, indices: tuple[Any, ...]) -> str:
        if name in self.owner.rename:  # an entry of a renamed matrix: (G_z2)_pq
            shown = self.owner.rename[name]
            return (f"({shown})" if "_" in shown else shown.lower()) + self._index_list(indices)
        return text_entry_name(name, self.owner.upstream, self.g) + self._index_list(indices)

    def _print_MatrixElement(self, e: MatrixElement) -> str:
        idx = (e.i,) if e.parent.shape[1] == 1 else (e.i, e.j)
        return self._entry(e.parent.name, idx)

    def _print_Indexed(self, e: sp.Indexed) -> str:
        return self._entry(str(e.base.label), e.indices)

    def _print_Symbol(self, e: sp.Symbol) -> str:
        if e in self.owner.holders:
            target = self.owner.holders[e]
            name = str(target.label if isinstance(target, sp.IndexedBase) else target.name)
            return self.owner.rename.get(name, text_name(name, self.g))
        return text_name(e.name, self.g)

    _print_Dummy = _print_Symbol

    def _print_MatrixSymbol(self, e: sp.MatrixSymbol) -> str:
        return self.owner.rename.get(e.name, text_name(e.name, self.g))

    def _print_Transpose(self, e: Any) -> str:
        inner = self._print(e.arg)
        return (inner if isinstance(e.arg, (sp.MatrixSymbol, sp.OneMatrix)) else f"({inner})") + self.g.transpose

    def _print_OneMatrix(self, e: sp.OneMatrix) -> str:
        return self.g.ones(self._print(e.rows if e.cols == 1 else e.cols))  # its length: 1_N

    def _print_MatMul(self, e: Any) -> str:
        coeff, factors = e.as_coeff_matrices()
        parts = [f"({self._print(a)})" if isinstance(a, (sp.MatAdd, sp.HadamardProduct)) else self._print(a)
                 for a in factors]
        head = "" if coeff == 1 else ("-" if coeff == -1 else self._print(coeff) + " ")
        return head + " ".join(parts)

    def _print_HadamardProduct(self, e: Any) -> str:
        def loose(a: Any) -> bool:  # binds looser than ⊙: a sum, or a function whose body is a sum (1 - tanh(A)²)
            return isinstance(a, sp.MatAdd) or (type(a).__name__ == "ElementwiseApplyFunction"
                                                and isinstance(a.function.expr, sp.Add))

        return f" {self.g.odot} ".join(f"({self._print(a)})" if loose(a) else self._print(a) for a in e.args)

    def _print_ElementwiseApplyFunction(self, e: Any) -> str:
        lam = e.function
        inner = self._print(e.expr)
        hole = "\x00"
        body = self._print(lam.expr.xreplace({lam.variables[0]: sp.Symbol(hole)}))
        wrapped = inner if isinstance(e.expr, sp.MatrixSymbol) or not any(c in inner for c in " +-") else f"({inner})"
        return body.replace(f"({hole})", f"({inner})").replace(hole, wrapped)  # f(A), never f((A))

    def _print_Sum(self, e: sp.Sum) -> str:
        variables = [self._print(lim[0]) for lim in e.limits]
        head = f"{self.g.sum}_" + (variables[0] if len(variables) == 1 else "{" + ",".join(variables) + "}")
        body = self._print(e.function)
        return f"{head} ({body})" if isinstance(e.function, sp.Add) else f"{head} {body}"

    def _print_Piecewise(self, e: sp.Piecewise) -> str:
        pieces = e.args
        if len(pieces) == 2 and pieces[1].expr == 0 and pieces[1].cond == sp.true:
            value, cond = pieces[0]
            if _is_index_range(cond):  # a range of the indices: stated once, in words, below the equation
                self.in_index += 1
                self.owner.guards.append(self._print(cond))
                self.in_index -= 1
                return self._print(value)
            return f"{self._wrap_product(value)} [{self._print(_simplest_condition(cond))}]"
        parts = [f"{self._print(p.expr)} if {self._print(p.cond)}" for p in pieces[:-1]]
        last = pieces[-1]
        tail = self._print(last.expr) if last.cond == sp.true else f"{self._print(last.expr)} if {self._print(last.cond)}"
        return "(" + ", ".join(parts) + f", otherwise {tail})"

    def _print_ITE(self, e: Any) -> str:
        return f"({self._print(e.args[1])} if {self._print(e.args[0])}, otherwise {self._print(e.args[2])})"

    def _print_KroneckerDelta(self, e: Any) -> str:
        a, b = e.args
        a, b = (b, a) if a.is_number else (a, b)  # [p = 0], as written by hand
        return f"[{self._print(a)} = {self._print(b)}]"

    def _print_Relational(self, e: Any) -> str:
        relation = {"<=": self.g.le, ">=": self.g.ge, "==": "=", "!=": self.g.ne}.get(e.rel_op, e.rel_op)
        return f"{self._print(e.lhs)} {relation} {self._print(e.rhs)}"

    def _print_And(self, e: Any) -> str:
        lows, highs, rest = _ranges(e.args)
        parts = [f"0 {self.g.le} {self._print(x)} < {self._print(highs[x])}" for x in lows if x in highs]
        parts += [self._print(sp.Ge(x, 0)) for x in lows if x not in highs]
        parts += [self._print(sp.Lt(x, b)) for x, b in highs.items() if x not in lows]
        return " and ".join(parts + [self._print(a) for a in rest])

    def _print_Or(self, e: Any) -> str:
        return " or ".join(f"({self._print(a)})" for a in e.args)

    def _print_Max(self, e: Any) -> str:
        return "max(" + ", ".join(self._print(a) for a in e.args) + ")"

    def _print_Min(self, e: Any) -> str:
        return "min(" + ", ".join(self._print(a) for a in e.args) + ")"

    def _print_Abs(self, e: Any) -> str:
        return f"|{self._print(e.args[0])}|"

    def _print_reduce_axis(self, e: Any) -> str:
        inner = self._print(e.args[0])
        inner = inner if isinstance(e.args[0], (sp.Symbol, sp.Function)) else f"({inner})"
        size = _summed_length(e, self.owner.holders)  # 1_K: a bare 1 would not say which axis it sums
        one = "1" if size is None else self.g.ones(self._print(size))
        return f"({inner} {one}) {one}{self.g.transpose}" if e.args[1] == 1 else f"{one} {one}{self.g.transpose} {inner}"

    def _print_Pow(self, e: sp.Pow, rational: bool = False) -> str:
        base, exp = e.args
        b = self._print(base)
        if not (base.is_Atom or isinstance(base, (MatrixElement, sp.Indexed, sp.Function))):
            b = f"({b})"
        if exp == sp.Rational(1, 2):
            return f"{self.g.sqrt}{b}" if b.startswith("(") else f"{self.g.sqrt}({b})"
        if exp == -1:
            return f"1/{b}"
        if exp.is_Integer and self.g.superscript(int(exp)):
            return b + str(self.g.superscript(int(exp)))
        return f"{b}^{self._print(exp)}" if exp.is_Integer and exp > 0 else f"{b}^({self._print(exp)})"

    def _is_matrix_valued(self, e: Any) -> bool:
        return bool(self.owner.holders) and bool(e.free_symbols & set(self.owner.holders))

    def _print_Mul(self, e: Any) -> str:
        factors = sp.Mul.make_args(e)
        if self.owner.holders and sum(self._is_matrix_valued(f) for f in factors) >= 2 or any(
                self._is_matrix_valued(f) and isinstance(f, sp.Pow) and f.exp.is_negative for f in factors):
            return self._hadamard(factors)
        entries = [f for f in factors if isinstance(f, (MatrixElement, sp.Indexed))]
        if len(entries) == len(factors) > 1:  # upstream entries last, as in textbooks: x_np g_nq
            return " ".join(self._print(f) for f in sorted(entries, key=lambda f: _parent_name(f).upper() in UPSTREAM_NAMES))
        sizes_only = all((f.is_Symbol and f not in self.owner.holders) or f.is_number for f in factors)
        dot = self.in_index or (sizes_only and any(f.is_Symbol and len(self._print(f)) > 1 for f in factors))
        return super()._print_Mul(e).replace("*", self.g.cdot if dot else " ")

    def _wrap_product(self, f: Any) -> str:
        s = self._print(f)
        return f"({s})" if isinstance(f, (sp.Add, sp.MatAdd)) else s

    def _hadamard(self, factors: tuple[Any, ...]) -> str:
        scalar = [f for f in factors if not self._is_matrix_valued(f)]
        matrix = [f for f in factors if self._is_matrix_valued(f)]
        num = [f for f in matrix if not (isinstance(f, sp.Pow) and f.exp.is_negative)]
        den = [1 / f for f in matrix if isinstance(f, sp.Pow) and f.exp.is_negative]
        out = f" {self.g.odot} ".join(self._wrap_product(f) for f in num) if num else "1"
        if den:
            out += "".join(f" {self.g.oslash} {self._wrap_product(f)}" for f in den)
        if not scalar:
            return out
        coeff = sp.Mul(*scalar)
        if coeff == -1:
            return f"-({out})" if len(num) + len(den) > 1 else f"-{out}"
        c = self._print(coeff)
        c = f"({c})" if isinstance(coeff, sp.Add) else c
        return f"{c} ({out})" if len(num) + len(den) > 1 else f"{c} {out}"


def _has_entries(e: Any) -> bool:
    return bool(e.atoms(MatrixElement, sp.Indexed))


def _simplest_condition(cond: Any) -> Any:
    """A condition with redundant clauses absorbed ((x < 0 and x > 0) or x < 0 is x < 0). Sound: the
    relations are kept as atoms, so the result is equivalent under every truth assignment."""
    if not isinstance(cond, (sp.And, sp.Or)):
        return cond
    simpler = sp.simplify_logic(cond, force=False)
    return simpler if sp.count_ops(simpler) < sp.count_ops(cond) else cond


def _is_index_range(cond: Any) -> bool:
    """A condition on indices and sizes only (a window's edge), not on the data (ReLU's x > 0)."""
    return not _has_entries(cond) and cond != sp.true


def _ranges(conds: tuple[Any, ...]) -> tuple[list[Any], dict[Any, Any], list[Any]]:
    """Index bounds ``e >= 0`` and ``K >= e + 1`` read as ``0 ≤ e < K``: the lower bounds, the upper ones, the rest."""
    lows: list[Any] = []
    highs: dict[Any, Any] = {}
    rest: list[Any] = []
    for c in conds:
        if not isinstance(c, (sp.GreaterThan, sp.LessThan, sp.StrictGreaterThan, sp.StrictLessThan)):
            rest.append(c)
            continue
        big, small = (c.lhs, c.rhs) if isinstance(c, (sp.GreaterThan, sp.StrictGreaterThan)) else (c.rhs, c.lhs)
        strict = isinstance(c, (sp.StrictGreaterThan, sp.StrictLessThan))
        diff = sp.expand(big - small)  # the condition is diff >= 0 (or > 0)
        sizes = sum(t for t in sp.Add.make_args(diff) if t.is_positive)  # sizes are positive symbols; indices not
        if sizes == 0 and not strict:
            lows.append(diff)
        elif sizes != 0:
            highs[sp.expand(sizes - diff - (0 if strict else 1))] = sizes
        else:
            rest.append(c)
    return lows, highs, rest


def wrap_text(line: str, width: int = 200, indent: str = "      ") -> list[str]:
    """A long equation broken before a top-level ``+``/``-`` (else at the shallowest space), lines under ``width``.

    Examples
    --------
    >>> [len(x) <= 30 for x in wrap_text("y = " + " + ".join(["a b c"] * 10), 30)]
    [True, True, True, True]
    """
    out: list[str] = []
    rest = line
    while len(rest) > width:
        cut = _break_point(rest, width)
        if cut <= len(indent):
            break
        out.append(rest[:cut].rstrip())
        rest = indent + rest[cut:].lstrip()
    return out + [rest]


def _break_point(s: str, width: int) -> int:
    """The position to break ``s`` before ``width``: a space at the shallowest bracket depth, a sign preferred."""
    depth, best, best_key = 0, -1, None
    for i, ch in enumerate(s[:width]):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == " " and i > width // 3:
            sign = s[i + 1: i + 3] in ("+ ", "- ", "⊙ ", "* ")
            key = (depth, not sign, -i)
            if best_key is None or key < best_key:
                best, best_key = i, key
    return best
