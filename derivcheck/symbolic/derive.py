"""``derive``: every gradient of a layer in index form and matrix form, with its checks."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sympy as sp

from derivcheck.catalog.declarations import Arg, Layer
from derivcheck.catalog.registry import get_layer
from derivcheck.symbolic.build import Built, build, element
from derivcheck.symbolic.index_form import IndexForm, derive_index_form
from derivcheck.language.printing.sympy_forms import DerivationPrinter, partial
from derivcheck.symbolic.language_form import LanguageForm, LanguageFormError, read
from derivcheck.symbolic.matrix_form import MatrixForm, derive_matrix_form
from derivcheck.symbolic.statistics import NamedIndex, name_statistics, named_index


@dataclass(frozen=True)
class Gradient:
    """One argument's gradient: index form, matrix form, and the matrix-calculus cross-check."""

    arg: Arg
    index: IndexForm
    matrix: MatrixForm
    trace: sp.MatrixExpr | None  # Trace(G^T Y).diff(arg), where the layer declares a matrix forward
    trace_note: str
    seconds: float
    # Where SymPy's conversion finds no matrix form: the matrix language's reading of the index form (or None).
    language: LanguageForm | None = None
    # Where no matrix form holds it (group norm's rank-3 input): the index form in its statistics' names (or None).
    named: NamedIndex | None = None
    # Where SymPy's conversion found a matrix form: the matrix language's reading of the same index form, shown in
    # its place where it is the shorter of the two and agreed with the index form in the run (or None).
    reading: LanguageForm | None = None


# Filled by symbolic.presentation (loaded with the symbolic package): a derivation is shown only through
# the module that checks what it prints, which itself needs derivations, so it is reached through this table.
PRESENTERS: dict[str, Callable[..., Any]] = {}


@dataclass(frozen=True)
class Derivation:
    """All gradients of one layer, derived with symbolic sizes."""

    layer: Layer
    built: Built
    gradients: dict[str, Gradient]
    seconds: float

    @property
    def objective_name(self) -> str:
        return "E"

    # How a derivation is shown: by symbolic.presentation, which verifies each form before it prints it.
    def _repr_latex_(self) -> str:
        """The derived equations, aligned (notebooks render it with MathJax)."""
        return PRESENTERS["latex"](self)

    def _repr_markdown_(self) -> str:
        return PRESENTERS["markdown"](self)

    def _repr_html_(self) -> str:
        return PRESENTERS["html"](self)

    def latex_lines(self) -> list[str]:
        """One LaTeX equation per line: the forward, then index and matrix form per argument."""
        return PRESENTERS["latex_lines"](self)

    def matrix_latex(self, g: Gradient) -> str | None:
        """The matrix form in LaTeX, or None where there is no clean one or it did not verify in this run."""
        return PRESENTERS["matrix_latex"](self, g)

    def _entry_lhs(self, g: Gradient) -> str:
        # The entry differentiated by is named by its matrix, as textbooks do: W_{pq}.
        p = DerivationPrinter()
        name = self._param_name(g.arg).replace(r"\mathbf{", "{").replace(r"\boldsymbol{", "{")
        name = rf"\left({name}\right)" if "_" in name else name
        return f"{name}_{{{p._indices(g.index.free)}}}"

    def _param_name(self, arg: Arg) -> str:
        sym = self.built.symbols[arg.name]
        return DerivationPrinter().doprint(sym) if not isinstance(sym, sp.IndexedBase) else str(sym.label)

    def _lhs_forward(self, p: DerivationPrinter) -> str:
        if self.layer.is_loss:
            return "E"
        y = sp.IndexedBase("y")
        return p.doprint(y[self.built.out]) if self.built.out else "y"


def _trace_check(built: Built, arg: Arg) -> tuple[sp.MatrixExpr | None, str]:
    """SymPy's matrix calculus on Trace(G^T Y); an unexpected zero is reported, never used."""
    layer = built.layer
    if layer.matrix_forward is None or built.upstream is None:
        return None, ""
    from derivcheck.catalog.declarations import Symbols

    from derivcheck.symbolic.build import _by_symbol_name

    ns = Symbols({**built.symbols, **_by_symbol_name(built.symbols), **built.sizes, **built.constants}, built.out)
    y = layer.matrix_forward(ns)
    sym = built.symbols[arg.name]
    if not isinstance(sym, sp.MatrixSymbol):
        return None, ""
    try:
        result = sp.Trace(built.upstream.T * y).diff(sym)
    except Exception as exc:  # noqa: BLE001 - SymPy's matrix calculus raises several types
        return None, f"SymPy's matrix calculus failed ({type(exc).__name__}); the index form stands"
    if result == 0 or isinstance(result, sp.ZeroMatrix):
        return None, "SymPy's matrix calculus returned 0 (a known silent-zero case): ignored"
    if not isinstance(result, sp.MatrixExpr):
        return None, f"SymPy's matrix calculus returned a {type(result).__name__}, not a matrix: ignored"
    return result, "also derived by SymPy's matrix calculus from Trace(G^T Y)"


@functools.lru_cache(maxsize=None)
def _derive(name: str) -> Derivation:
    layer = get_layer(name)
    start = time.perf_counter()
    built = build(layer)
    gradients = {}
    for arg in layer.differentiable:
        t0 = time.perf_counter()
        index = derive_index_form(built, arg)
        shape = tuple(built.sizes[c] for c in arg.letters)
        matrix = derive_matrix_form(index.expr, index.free, shape)
        trace, note = _trace_check(built, arg)
        if matrix.kind == "none" and trace is not None:
            # Verified against the index form by every verify run, like any matrix form.
            matrix = MatrixForm("matrix", trace, note="from SymPy's matrix calculus on Trace(G^T Y)")
            note = "the matrix form above; the index form was derived independently"
        language, matrix = _language_form(built, arg, index, matrix)
        named = named_index(index.expr, built) if language is None and matrix.kind == "none" else None
        reading = _reading(built, arg, index) if matrix.kind in ("matrix", "elementwise") else None
        gradients[arg.name] = Gradient(arg, index, matrix, trace, note, time.perf_counter() - t0, language, named,
                                       reading)
    return Derivation(layer, built, gradients, time.perf_counter() - start)


def _reading(built: Built, arg: Arg, index: IndexForm) -> LanguageForm | None:
    """The matrix language's reading of an index form that SymPy's conversion already holds (None where it has none)."""
    if len(arg.letters) > 2:
        return None
    try:
        return read(built, index.free, arg.letters, index.expr)
    except Exception:  # noqa: BLE001 - a reading is only an alternative display: SymPy's verified form stands without it
        return None


def _language_form(built: Built, arg: Arg, index: IndexForm, matrix: MatrixForm) -> tuple[LanguageForm | None, MatrixForm]:
    """The matrix language's reading where SymPy's conversion found no matrix form; else the exact reason."""
    if matrix.kind != "none" or len(arg.letters) > 2:  # a tensor's note already says why
        return None, matrix
    read_by_language = MatrixForm("none", einsum=matrix.einsum, note="SymPy's index -> matrix conversion finds no "
                                  "matrix form; the matrix language's reading of the index form is the matrix form")
    named, definitions = name_statistics(index.expr, built)
    if definitions:  # a normalization: in the names a textbook gives its statistics (μ, σ, X̂), where that reads
        try:
            return read(built, index.free, arg.letters, named, definitions), read_by_language
        except LanguageFormError:
            pass
    try:
        return read(built, index.free, arg.letters, index.expr), read_by_language
    except LanguageFormError as why:
        note = f"no matrix form: {why}; the index form is the statement" + (
            "; the einsum below computes it" if matrix.einsum else "")
        return None, MatrixForm("none", einsum=matrix.einsum, note=note)


def derive(layer: str | Layer) -> Derivation:
    """Derive every gradient of a layer (cached: the derivation does not depend on sizes).

    Examples
    --------
    >>> d = derive("dense")
    >>> print(d.gradients["w"].matrix.expr)
    X.T*G
    """
    return _derive(layer if isinstance(layer, str) else layer.name)


__all__ = ["Derivation", "Gradient", "derive", "element"]
