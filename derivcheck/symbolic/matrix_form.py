"""Matrix form of a derived index form, by one of two routes, or an honest "none".

1. *Contraction bridge*: a pure sum of products of entries (``Sum(X[n, p] G[n, q], n)``)
   goes through SymPy's ``convert_indexed_to_array`` and ``convert_array_to_matrix`` to
   ``X.T*G``. SymPy 1.14 asserts on a bare axis sum (``ArrayContraction(G, (0,))``, the bias
   gradient), which is written here as ``G.T * 1``.
2. *Elementwise with reductions*: an expression whose entries are all indexed by the free
   indices, except inside sums that replace one of them (``Sum(exp(Z[p, k]), k)``), is an
   elementwise (Hadamard) expression of whole matrices with axis sums broadcast back,
   ``(A 1) 1^T``. Elementwise layers, softmax and the losses take this route.

Anything else (convolutions' shifted indices) has no clean matrix form: the einsum of the
array form is given where SymPy can build one, and the index form stays the statement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixElement
from sympy.tensor.array.expressions import convert_array_to_matrix, convert_indexed_to_array

from derivcheck.language.printing.sympy_forms import TextPrinter
from sympy.tensor.array.expressions.array_expressions import ArrayContraction


class reduce_axis(sp.Function):  # noqa: N801 - reads as the operation it is
    """Sum over one axis, kept as a length-1 axis so that it broadcasts back."""

    nargs = 2


@dataclass(frozen=True)
class MatrixForm:
    """A matrix-form gradient: ``kind`` is "matrix", "elementwise" or "none"."""

    kind: str
    expr: Any = None  # MatrixExpr ("matrix") or a scalar pattern over placeholders ("elementwise")
    placeholders: dict[sp.Symbol, Any] = field(default_factory=dict)  # placeholder -> matrix symbol
    einsum: str | None = None
    note: str = ""


class _NotElementwise(Exception):
    pass


def _position(e: Any) -> tuple[Any, ...]:
    if isinstance(e, MatrixElement):
        return (e.i,) if e.parent.shape[1] == 1 else (e.i, e.j)
    return tuple(e.indices)


def _parent(e: Any) -> Any:
    return e.parent if isinstance(e, MatrixElement) else e.base


def to_elementwise(expr: sp.Expr, free: tuple[sp.Symbol, ...]) -> tuple[sp.Expr, dict[sp.Symbol, Any]]:
    """Rewrite an index form as an elementwise pattern; raise if it is not one."""
    placeholders: dict[sp.Symbol, Any] = {}
    by_parent: dict[Any, sp.Symbol] = {}
    bound = set(free)

    def holder(parent: Any) -> sp.Symbol:
        if parent not in by_parent:
            name = str(parent.label if isinstance(parent, sp.IndexedBase) else parent.name)
            sym = sp.Symbol(f"{name}_", commutative=True)
            by_parent[parent] = sym
            placeholders[sym] = parent
        return by_parent[parent]

    def convert(e: Any, position: tuple[Any, ...], active: set[sp.Symbol]) -> Any:
        if isinstance(e, (MatrixElement, sp.Indexed)):
            if _position(e) != position:
                where = ", ".join(map(str, position))
                raise _NotElementwise(f"the entry {TextPrinter().doprint(e)} is not indexed by the output's ({where}): "
                                      "it is broadcast, not elementwise")
            return holder(_parent(e))
        if isinstance(e, sp.Sum):
            if len(e.limits) > 1:
                inner = sp.Sum(e.function, *e.limits[:-1])
                return convert(sp.Sum(inner, e.limits[-1]), position, active)
            var, lo, _hi = e.limits[0]
            if lo != 0:
                raise _NotElementwise("a sum that does not start at 0")
            for axis in range(len(position)):
                moved = tuple(var if k == axis else p for k, p in enumerate(position))
                try:
                    return reduce_axis(convert(e.function, moved, active | {var}), axis)
                except _NotElementwise:
                    continue
            raise _NotElementwise(_why_not_a_reduction(e.function, var, position))
        if isinstance(e, sp.Symbol) and (e in active or e in bound):
            raise _NotElementwise(f"index {e} outside an entry")
        if not e.args:
            return e
        return e.func(*[convert(a, position, active) for a in e.args])

    return convert(expr, free, set()), placeholders


def _why_not_a_reduction(summand: sp.Expr, var: sp.Symbol, position: tuple[Any, ...]) -> str:
    """Exactly why a sum over ``var`` is no axis sum of an elementwise expression: the entries it runs over."""
    entries = sorted({_position(a) for a in summand.atoms(MatrixElement, sp.Indexed) if var in a.free_symbols}, key=str)
    out = ", ".join(map(str, position))
    seen = ", ".join("(" + ", ".join(map(str, p)) + ")" for p in entries[:2]) + (", …" if len(entries) > 2 else "")
    if any(len(p) > len(position) for p in entries):
        return f"the sum over {var} reduces entries indexed {seen} to the gradient's ({out})"
    return f"the sum over {var} runs over entries indexed {seen or 'none'}, not over an index of the gradient's ({out})"


def _axis_sum(arr: Any) -> sp.MatrixExpr | None:
    if isinstance(arr, ArrayContraction) and isinstance(arr.expr, sp.MatrixSymbol) and len(arr.contraction_indices) == 1:
        (axes,) = arr.contraction_indices
        a = arr.expr
        if axes == (0,):
            return a.T * sp.OneMatrix(a.rows, 1)
        if axes == (1,):
            return a * sp.OneMatrix(a.cols, 1)
    return None


def _split_scalar(expr: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    """(coefficient free of entries, rest): SymPy 1.14's convert_indexed_to_array silently
    drops a symbolic coefficient such as 1/(M N), so the bridge only sees the rest."""
    expr = sp.factor_terms(expr)
    coeff, rest = [], []
    for f in sp.Mul.make_args(expr):
        (rest if f.atoms(MatrixElement, sp.Indexed, sp.Sum) else coeff).append(f)
    return sp.Mul(*coeff), sp.Mul(*rest)


def bridge(expr: sp.Expr, free: tuple[sp.Symbol, ...], shape: tuple[Any, ...]) -> tuple[sp.MatrixExpr | None, str | None]:
    """Index form -> matrix expression through SymPy's array expressions, plus the einsum."""
    coeff, expr = _split_scalar(expr)
    try:
        arr = convert_indexed_to_array(expr, first_indices=list(free))
    except Exception:  # noqa: BLE001 - SymPy raises many types here; "no bridge" is the answer
        return None, None
    einsum = None
    try:
        from sympy.printing.numpy import NumPyPrinter

        einsum = NumPyPrinter({"fully_qualified_modules": False}).doprint(arr)
    except Exception:  # noqa: BLE001
        einsum = None
    matrix = _axis_sum(arr)
    if matrix is None:
        try:
            matrix = convert_array_to_matrix(arr)
        except Exception:  # noqa: BLE001
            return None, einsum
    if not isinstance(matrix, sp.MatrixExpr):
        return None, einsum
    target = tuple(shape) if len(shape) == 2 else (shape[0], 1)
    if matrix.shape != target and matrix.shape[::-1] == target:
        matrix = matrix.T
    if matrix.shape != target:
        return None, einsum
    return (coeff * matrix if coeff != 1 else matrix), einsum


def _tensor_note(expr: sp.Expr, shape: tuple[Any, ...]) -> str:
    """Why a gradient has no matrix form, exactly: it has more than two axes, or it reads an array that has."""
    if len(shape) > 2:
        axes = " x ".join(str(d) for d in shape)
        return (f"no matrix form: the gradient has {len(shape)} axes ({axes}), a tensor no matrix holds; the index "
                "form is the statement")
    ranks = sorted({len(a.indices) for a in expr.atoms(sp.Indexed)})
    return (f"no matrix form: it reads an array of rank {ranks[-1]}, which no matrix holds; the index form is the "
            "statement")


def derive_matrix_form(expr: sp.Expr, free: tuple[sp.Symbol, ...], shape: tuple[Any, ...]) -> MatrixForm:
    """The matrix form of an index-form gradient, by the first route that applies."""
    if len(shape) > 2 or any(isinstance(a, sp.Indexed) for a in expr.atoms(sp.Indexed)):
        _, einsum = bridge(expr, free, shape) if not _has_function_of_entries(expr) else (None, None)
        return MatrixForm("none", einsum=einsum, note=_tensor_note(expr, shape))
    # A pointwise expression reads best elementwise (Y - T rather than -1 T + Y).
    if len(shape) <= 2 and expr.has(sp.Sum) and not expr.has(sp.Piecewise) and not _has_function_of_entries(expr):
        matrix, einsum = bridge(expr, free, shape)
        if matrix is not None:
            return MatrixForm("matrix", matrix, einsum=einsum)
    else:
        einsum = None
    try:
        try:
            pattern, holders = to_elementwise(expr, free)
        except RecursionError as exc:  # SymPy re-evaluating relations of placeholders
            raise _NotElementwise("SymPy could not rebuild the expression elementwise") from exc
        return MatrixForm("elementwise", pattern, holders)
    except _NotElementwise as why:
        if einsum is None and not _has_function_of_entries(expr):
            _, einsum = bridge(expr, free, shape)
        return MatrixForm(
            "none",
            einsum=einsum,
            note=f"no clean matrix form ({why}); the index form is the statement"
            + ("; the einsum below computes it" if einsum else ""),
        )


def _has_function_of_entries(expr: sp.Expr) -> bool:
    """A nonlinear function (exp, tanh, a power) applied to something holding an entry."""
    for f in expr.atoms(sp.Function, sp.Pow):
        if isinstance(f, sp.Pow) and f.exp == 1:
            continue
        if f.atoms(MatrixElement, sp.Indexed):
            return True
    return False
