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

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixElement


@dataclass(frozen=True)
class Definition:
    """A named statistic: its matrix symbol and its value in index form, entry (``indices``) by entry."""

    symbol: sp.MatrixSymbol
    indices: tuple[sp.Symbol, ...]
    value: sp.Expr


@dataclass(frozen=True)
class NamedIndex:
    """A gradient's index form in the names of its statistics, where no matrix form holds it (group norm's rank-3
    input): ``expr`` with μ, σ, X̂ defined by ``definitions``; it is printed only after :meth:`values` agreed with
    the index form as derived."""

    expr: sp.Expr
    definitions: tuple[Definition, ...]

    def values(self, built: Any, free: tuple[Any, ...], letters: tuple[str, ...], symbols: Mapping[Any, Any],
               upstream: Any, sizes: Mapping[str, int]) -> np.ndarray:
        """``expr`` entry by entry, given the value of each of the layer's ``symbols`` (its arrays, the upstream
        gradient, sizes, constants), each statistic evaluated from its definition first."""
        env = dict(symbols)
        at_sizes = {sym: int(sizes[c]) for c, sym in built.sizes.items()}
        for d in self.definitions:
            shape = tuple(int(sp.sympify(n).subs(at_sizes)) for n in d.symbol.shape)
            env[d.symbol] = _entry_by_entry(d.value, env, d.indices, shape)
        out = _entry_by_entry(self.expr, env, free, tuple(int(sizes[c]) for c in letters))
        return out * (float(np.asarray(upstream)) if built.upstream is None else 1.0)


def _entry_by_entry(expr: sp.Expr, env: dict[Any, Any], indices: tuple[Any, ...], shape: tuple[int, ...]) -> np.ndarray:
    """``expr`` at every index of ``shape`` (a column vector's second index is 0), with ``env``'s values."""
    symbols = sorted((s for s in env if expr.has(s)), key=str)
    # Plain names for lambdify: X̂ is no Python identifier, and a dummy index must not be renamed inside a matrix entry.
    plain = {s: _renamed(s, f"a{k}") for k, s in enumerate(symbols)}
    plain.update({i: sp.Symbol(f"i{k}", integer=True) for k, i in enumerate(indices)})
    fn = sp.lambdify([plain[s] for s in [*symbols, *indices]], expr.xreplace(plain), modules="math", dummify=False)
    args = [env[s] for s in symbols]
    out = np.empty(shape)
    for idx in itertools.product(*[range(n) for n in shape[:len(indices)]]):
        out[idx + (0,) * (len(shape) - len(indices))] = fn(*args, *idx)
    return out


def _renamed(sym: Any, name: str) -> Any:
    if isinstance(sym, sp.MatrixSymbol):
        return sp.MatrixSymbol(name, *sym.shape)
    if isinstance(sym, sp.IndexedBase):
        return sp.IndexedBase(name, shape=sym.shape)
    return sp.Symbol(name)


@dataclass(frozen=True)
class _Axis:
    """A matrix (or a rank-3 tensor) and the axis its mean and variance run over; the statistics are indexed by
    the other axes (a vector μ_q for a matrix, a matrix μ_ng for group norm's N x G x K input)."""

    matrix: Any  # a MatrixSymbol or an IndexedBase with a shape
    axis: int

    @property
    def shape(self) -> tuple[Any, ...]:
        return tuple(self.matrix.shape)

    @property
    def size(self) -> Any:
        return self.shape[self.axis]

    @property
    def others(self) -> tuple[Any, ...]:
        return self.shape[:self.axis] + self.shape[self.axis + 1:]

    def entry(self, along: Any, at: tuple[Any, ...]) -> Any:
        indices = (*at[:self.axis], along, *at[self.axis:])
        return self.matrix[indices]

    def split(self, e: Any) -> tuple[Any, tuple[Any, ...]]:
        """(index along the axis, the other indices) of an entry."""
        indices = _indices(e)
        return indices[self.axis], indices[:self.axis] + indices[self.axis + 1:]

    def entries(self, expr: sp.Expr) -> list[Any]:
        return [e for e in _entries(expr) if _parent(e) == self.matrix]

    def statistic(self, name: str) -> sp.MatrixSymbol:
        """μ or σ: a column vector for a matrix's axis, a matrix for a rank-3 tensor's."""
        others = self.others
        return sp.MatrixSymbol(name, others[0], 1) if len(others) == 1 else sp.MatrixSymbol(name, *others)

    def normalized(self, name: str) -> Any:
        """X̂, of the input's shape."""
        return sp.MatrixSymbol(name, *self.shape) if len(self.shape) == 2 else sp.IndexedBase(name, shape=self.shape)


def _at(stat: sp.MatrixSymbol, others: tuple[Any, ...]) -> Any:
    return stat[others[0], 0] if len(others) == 1 else stat[others]


def _entries(expr: sp.Expr) -> list[Any]:
    return [*expr.atoms(MatrixElement), *expr.atoms(sp.Indexed)]


def _parent(e: Any) -> Any:
    return e.parent if isinstance(e, MatrixElement) else e.base


def _indices(e: Any) -> tuple[Any, ...]:
    return (e.i, e.j) if isinstance(e, MatrixElement) else tuple(e.indices)


def _mean_axes(expr: sp.Expr) -> dict[_Axis, list[sp.Sum]]:
    """Sums of a bare matrix (or rank-3) entry over one of its indices (``Σ_k x_kq``), by matrix and axis."""
    out: dict[_Axis, list[sp.Sum]] = {}
    for s in expr.atoms(sp.Sum):
        f = s.function
        if len(s.limits) != 1 or not isinstance(f, (MatrixElement, sp.Indexed)):
            continue
        parent, indices = _parent(f), _indices(f)
        shape = getattr(parent, "shape", None)
        if shape is None or len(shape) not in (2, 3) or (isinstance(f, MatrixElement) and shape[1] == 1):
            continue
        k, lo, hi = s.limits[0]
        for axis, index in enumerate(indices):
            if index == k and indices.count(k) == 1 and lo == 0 and hi == shape[axis] - 1:
                out.setdefault(_Axis(parent, axis), []).append(s)
    return out


def _fresh(name: str, taken: set[str]) -> str:
    while name in taken:
        name += "_"
    return name


def named_index(expr: sp.Expr, built: Any) -> NamedIndex | None:
    """The index form ``expr`` in the names of its statistics, or None where it normalizes nothing."""
    named, definitions = name_statistics(expr, built)
    return NamedIndex(named, definitions) if definitions else None


def name_statistics(expr: sp.Expr, built: Any) -> tuple[sp.Expr, tuple[Definition, ...]]:
    """``expr`` in terms of μ, σ and X̂ where it normalizes a matrix (or a rank-3 tensor: group norm) by its mean and
    standard deviation over an axis; ``(expr, ())`` unchanged where it does not."""
    # The upstream gradient's sums (Σ_n g_nq) are no statistic of the input.
    axes = {ax: sums for ax, sums in _mean_axes(expr).items() if ax.matrix != built.upstream}
    if len(axes) != 1:
        return expr, ()
    (ax, sums), = axes.items()
    taken = {str(getattr(s, "name", getattr(s, "label", s))) for s in built.symbols.values()}
    taken |= {str(c) for c in built.constants}
    mu, sigma = ax.statistic(_fresh("mu", taken)), ax.statistic(_fresh("sigma", taken))
    hat = ax.normalized(_fresh("X̂", taken))
    out = expr.xreplace({s: ax.size * _at(mu, ax.split(s.function)[1]) for s in sums})
    out, eps = _variances(out, ax, mu, sigma, built)
    if eps is None:
        return expr, ()
    out = out.xreplace({e: _at(mu, ax.split(e)[1]) + _at(sigma, ax.split(e)[1]) * hat[_indices(e)]
                        for e in ax.entries(out)})
    out = _zero_mean(_linear_sums(out), hat, ax)
    # σ > 0: √(σ²) is σ (the entries of a matrix symbol carry no sign of their own).
    out = out.replace(lambda a: isinstance(a, sp.Pow) and isinstance(a.base, sp.Pow) and a.base.exp == 2
                      and isinstance(a.base.base, MatrixElement) and a.base.base.parent == sigma,
                      lambda a: a.base.base ** (2 * a.exp))
    out = sp.factor_terms(_linear_sums(sp.simplify(out)))
    if out.has(ax.matrix) and out.count_ops() >= expr.count_ops():
        return expr, ()
    return out, _definitions(ax, mu, sigma, hat, eps, out)


def _definitions(ax: _Axis, mu: Any, sigma: Any, hat: Any, eps: Any, out: sp.Expr) -> tuple[Definition, ...]:
    """μ, σ and X̂ from the input, entry by entry: those ``out`` uses, and those they are defined from."""
    o = tuple(sp.Dummy(name, integer=True, nonnegative=True) for name in ("o", "r")[:len(ax.others)])
    i = sp.Dummy("i", integer=True, nonnegative=True)
    j = sp.Dummy("j", integer=True, nonnegative=True)
    mean = sp.Sum(ax.entry(j, o), (j, 0, ax.size - 1)) / ax.size
    variance = sp.Sum((ax.entry(j, o) - _at(mu, o)) ** 2, (j, 0, ax.size - 1)) / ax.size
    definitions = (
        Definition(mu, o, mean),
        Definition(sigma, o, sp.sqrt(variance + eps)),
        Definition(hat, _indices(ax.entry(i, o)), (ax.entry(i, o) - _at(mu, o)) / _at(sigma, o)),
    )
    return tuple(d for d in definitions if out.has(d.symbol) or any(out.has(u.symbol) and u.value.has(d.symbol)
                                                                    for u in definitions))


def _variances(expr: sp.Expr, ax: _Axis, mu: Any, sigma: Any, built: Any) -> tuple[sp.Expr, Any]:
    """Σ_j c (x_jq - μ_q)² -> c N (σ_q² - ε), with ε the constant the variance is shifted by (None: no variance)."""
    found, variances = {}, {}
    for s in expr.atoms(sp.Sum):
        if len(s.limits) != 1:
            continue
        j = s.limits[0][0]
        entries = [e for e in ax.entries(s.function) if ax.split(e)[0] == j]
        if not entries:
            continue
        q = ax.split(entries[0])[1]
        ratio = sp.simplify(s.function / (ax.entry(j, q) - _at(mu, q)) ** 2)
        if ratio.has(j) or _entries(ratio):
            continue
        var = variances.setdefault(q, sp.Dummy("var"))
        found[s] = ratio * ax.size * var
    if not found:
        return expr, None
    out = expr.xreplace(found)
    for eps in [*built.constants.values(), sp.Integer(0)]:
        trial = out.xreplace({var: _at(sigma, q) ** 2 - eps for q, var in variances.items()})
        if eps == 0 or not trial.has(eps):
            return trial, eps
    return expr, None


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
        if not isinstance(s, sp.Sum) or len(s.limits) != 1 or not isinstance(s.function, (MatrixElement, sp.Indexed)):
            return False
        e = s.function
        return _parent(e) == hat and ax.split(e)[0] == s.limits[0][0]

    return expr.replace(is_mean_of_hat, lambda s: sp.Integer(0))
