"""The statistics a normalization computes, named: μ (a mean over an axis), σ (its standard deviation), X̂.

An index form of a normalization spells every mean and variance out (``Σ_k x_kq / N`` and
``√(ε + Σ_j (x_jq - Σ_k x_kq / N)² / N)``, dozens of times in batch norm's dX). Written in the
names a textbook gives them, with ``x_pq = μ_q + σ_q x̂_pq`` and ``Σ_n x̂_nq = 0`` (the
normalized values have mean 0 by construction), it collapses to the textbook's
``(γ / (N σ)) (N G - 1 1ᵀ G - X̂ ⊙ 1 1ᵀ (G ⊙ X̂))``. Each name is defined from the layer's
inputs (``Definition``), and the form is verified with the names evaluated from those
definitions, against the index form as it was: the identities used are checked, not trusted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixElement


@dataclass(frozen=True)
class Definition:
    """A named statistic: its matrix symbol and its value in index form, entry (``indices``) by entry."""

    symbol: sp.MatrixSymbol
    indices: tuple[sp.Symbol, ...]
    value: sp.Expr


@dataclass(frozen=True)
class _Axis:
    """A matrix and the axis its mean and variance run over."""

    matrix: sp.MatrixSymbol
    axis: int

    @property
    def size(self) -> Any:
        return self.matrix.shape[self.axis]

    @property
    def other(self) -> Any:
        return self.matrix.shape[1 - self.axis]

    def entry(self, along: Any, at: Any) -> Any:
        return self.matrix[along, at] if self.axis == 0 else self.matrix[at, along]


def _mean_axes(expr: sp.Expr) -> dict[_Axis, list[sp.Sum]]:
    """Sums of a bare matrix entry over one of its indices (``Σ_k x_kq``), by matrix and axis."""
    out: dict[_Axis, list[sp.Sum]] = {}
    for s in expr.atoms(sp.Sum):
        f = s.function
        if len(s.limits) != 1 or not isinstance(f, MatrixElement) or f.parent.shape[1] == 1:
            continue
        k, lo, hi = s.limits[0]
        for axis, (along, at) in enumerate(((f.i, f.j), (f.j, f.i))):
            if along == k and at != k and lo == 0 and hi == f.parent.shape[axis] - 1:
                out.setdefault(_Axis(f.parent, axis), []).append(s)
    return out


def _fresh(name: str, taken: set[str]) -> str:
    while name in taken:
        name += "_"
    return name


def name_statistics(expr: sp.Expr, built: Any) -> tuple[sp.Expr, tuple[Definition, ...]]:
    """``expr`` in terms of μ, σ and X̂ where it normalizes a matrix by its mean and standard deviation over an axis;
    ``(expr, ())`` unchanged where it does not."""
    # The upstream gradient's sums (Σ_n g_nq) are no statistic of the input.
    axes = {ax: sums for ax, sums in _mean_axes(expr).items() if ax.matrix != built.upstream}
    if len(axes) != 1:
        return expr, ()
    (ax, sums), = axes.items()
    taken = {str(getattr(s, "name", s)) for s in built.symbols.values()} | {str(c) for c in built.constants}
    o = sp.Dummy("o", integer=True, nonnegative=True)
    i = sp.Dummy("i", integer=True, nonnegative=True)
    mu = sp.MatrixSymbol(_fresh("mu", taken), ax.other, 1)
    sigma = sp.MatrixSymbol(_fresh("sigma", taken), ax.other, 1)
    hat = sp.MatrixSymbol(_fresh("X̂", taken), *ax.matrix.shape)
    out = expr.xreplace({s: ax.size * mu[_at(s, ax), 0] for s in sums})
    out, eps = _variances(out, ax, mu, sigma, built)
    if eps is None:
        return expr, ()
    out = out.xreplace({e: mu[_pos(e, ax)[1], 0] + sigma[_pos(e, ax)[1], 0] * hat[e.i, e.j]
                        for e in out.atoms(MatrixElement) if e.parent == ax.matrix})
    out = _zero_mean(_linear_sums(out), hat, ax)
    # σ > 0: √(σ²) is σ (the entries of a matrix symbol carry no sign of their own).
    out = out.replace(lambda a: isinstance(a, sp.Pow) and isinstance(a.base, sp.Pow) and a.base.exp == 2
                      and isinstance(a.base.base, MatrixElement) and a.base.base.parent == sigma,
                      lambda a: a.base.base ** (2 * a.exp))
    out = sp.factor_terms(_linear_sums(sp.simplify(out)))
    if out.has(ax.matrix) and out.count_ops() >= expr.count_ops():
        return expr, ()
    j = sp.Dummy("j", integer=True, nonnegative=True)
    mean = sp.Sum(ax.entry(j, o), (j, 0, ax.size - 1)) / ax.size
    definitions = (
        Definition(mu, (o,), mean),
        Definition(sigma, (o,), sp.sqrt(sp.Sum((ax.entry(j, o) - mu[o, 0]) ** 2, (j, 0, ax.size - 1)) / ax.size + eps)),
        Definition(hat, (i, o) if ax.axis == 0 else (o, i), (ax.entry(i, o) - mu[o, 0]) / sigma[o, 0]),
    )
    used = tuple(d for d in definitions if out.has(d.symbol) or any(out.has(u.symbol) and u.value.has(d.symbol)
                                                                     for u in definitions))
    return out, used


def _pos(e: MatrixElement, ax: _Axis) -> tuple[Any, Any]:
    """(index along the axis, the other index) of an entry."""
    return (e.i, e.j) if ax.axis == 0 else (e.j, e.i)


def _at(s: sp.Sum, ax: _Axis) -> Any:
    return _pos(s.function, ax)[1]


def _variances(expr: sp.Expr, ax: _Axis, mu: Any, sigma: Any, built: Any) -> tuple[sp.Expr, Any]:
    """Σ_j c (x_jq - μ_q)² -> c N (σ_q² - ε), with ε the constant the variance is shifted by (None: no variance)."""
    found = {}
    for s in expr.atoms(sp.Sum):
        if len(s.limits) != 1:
            continue
        j = s.limits[0][0]
        entries = [e for e in s.function.atoms(MatrixElement) if e.parent == ax.matrix and _pos(e, ax)[0] == j]
        if not entries:
            continue
        q = _pos(entries[0], ax)[1]
        ratio = sp.simplify(s.function / (ax.entry(j, q) - mu[q, 0]) ** 2)
        if ratio.has(j) or ratio.atoms(MatrixElement):
            continue
        found[s] = ratio * ax.size * sp.Symbol("_var_" + str(q))
    if not found:
        return expr, None
    out = expr.xreplace(found)
    for eps in [*built.constants.values(), sp.Integer(0)]:
        trial = out.xreplace({v: sigma[sp.Symbol(str(v)[5:], integer=True, nonnegative=True), 0] ** 2 - eps
                              for v in out.free_symbols if str(v).startswith("_var_")})
        trial = _restore_indices(trial, expr)
        if eps == 0 or not trial.has(eps):
            return trial, eps
    return expr, None


def _restore_indices(trial: sp.Expr, expr: sp.Expr) -> sp.Expr:
    """The index symbols rebuilt from their names above, back to the exact symbols of ``expr``."""
    by_name = {str(s): s for s in expr.free_symbols | {v for s in expr.atoms(sp.Sum) for v, *_ in s.limits}}
    return trial.xreplace({s: by_name[str(s)] for s in trial.free_symbols if str(s) in by_name})


def _linear_sums(expr: sp.Expr) -> sp.Expr:
    """Σ_k (a + b) = Σ_k a + Σ_k b, and factors free of k outside: Σ_k c a_k = c Σ_k a_k; Σ_k c = c N."""

    def split(s: sp.Sum) -> sp.Expr:
        if len(s.limits) != 1:
            return s
        k, lo, hi = s.limits[0]
        total = 0
        for term in sp.Add.make_args(sp.expand(s.function, power_exp=False, log=False, power_base=False)):
            inside = [f for f in sp.Mul.make_args(term) if f.has(k)]
            outside = [f for f in sp.Mul.make_args(term) if not f.has(k)]
            total += sp.Mul(*outside) * (sp.Sum(sp.Mul(*inside), (k, lo, hi)) if inside else hi - lo + 1)
        return total

    return expr.replace(lambda a: isinstance(a, sp.Sum), split)


def _zero_mean(expr: sp.Expr, hat: Any, ax: _Axis) -> sp.Expr:
    """Σ_n x̂_nq = 0: the normalized values have mean zero along the axis (checked numerically with the rest)."""

    def is_mean_of_hat(s: sp.Basic) -> bool:
        if not isinstance(s, sp.Sum) or len(s.limits) != 1 or not isinstance(s.function, MatrixElement):
            return False
        e = s.function
        return e.parent == hat and _pos(e, ax)[0] == s.limits[0][0]

    return expr.replace(is_mean_of_hat, lambda s: sp.Integer(0))
