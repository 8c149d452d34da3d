"""A tree in index notation: one entry written with explicit sums, ``(Xᵀ G)_ij = Σ_n X_ni G_nj``.

A contraction over a dimension ``D`` is summed over ``d`` where that letter is free, the
entries of an inverse or a determinant are atoms (they have no finite index form), and the
result evaluates entry by entry at explicit sizes, so that it is verified like everything else.
An index letter is never the name of a variable or a dimension: the printed form reads back
(``index_claim``) without a letter meaning two things.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import sympy as sp

from derivcheck.language.nodes import Node
from derivcheck.language.scalar_algebra import SYMPY_FUNCTIONS, Relu, Sigmoid, Softplus, Step


# One rule per operation for an entry in index notation, in a table filled by ``@_entry("op")``.
_INDEX_RULES: dict[str, Callable[..., sp.Expr]] = {}


def _entry(op: str) -> Callable[[Callable[..., sp.Expr]], Callable[..., sp.Expr]]:
    def register(rule: Callable[..., sp.Expr]) -> Callable[..., sp.Expr]:
        _INDEX_RULES[op] = rule
        return rule

    return register


# The free indices of an entry: the first pair that names no variable or dimension.
_FREE_LETTERS = (("i", "j"), ("p", "q"), ("r", "s"), ("u", "v"))
_SUMMED_LETTERS = ("k", "l", "m", "r", "s", "t", "u", "v", "a", "b", "c", "e", "f", "h")


def free_letters(names: set[str], ndim: int) -> tuple[str, ...]:
    """The letters of an entry's free indices: ``i, j`` unless a variable or a dimension takes one of them.

    Examples
    --------
    >>> free_letters({"X", "w"}, 2), free_letters({"i", "N"}, 1)
    (('i', 'j'), ('p',))
    """
    for pair in _FREE_LETTERS:
        if not set(pair[:ndim]) & names:
            return pair[:ndim]
    return tuple(f"i{k}" for k in range(ndim))


class IndexForm:
    """One entry of a tree, its free indices, and the atoms that stand for inverses and determinants.

    ``names`` are the names an index letter must not take (the variables and dimensions in view); the tree's own
    are always avoided.
    """

    def __init__(self, x: Node, free: tuple[str, ...] | None = None, names: set[str] | None = None) -> None:
        self.node = x
        self.atoms: dict[sp.Basic, Node] = {}
        self.names = set(names or ()) | _dim_names(x) | _var_names(x)
        letters = free if free is not None else free_letters(self.names, x.ndim)
        self.used: set[str] = set(letters[: x.ndim]) | self.names
        self.free = tuple(sp.Symbol(f, integer=True) for f in letters[: x.ndim])
        self.expr = self.at(x, self.free)

    def fresh(self, d: Any) -> sp.Symbol:
        preferred = [str(d).lower()] if isinstance(d, str) and len(d) == 1 else []
        for name in [*preferred, *_SUMMED_LETTERS]:
            if name not in self.used:
                self.used.add(name)
                return sp.Symbol(name, integer=True)
        k = 0
        while f"k{k}" in self.used:
            k += 1
        self.used.add(f"k{k}")
        return sp.Symbol(f"k{k}", integer=True)

    def summed(self, body: sp.Expr, k: sp.Symbol, d: Any) -> sp.Expr:
        if k not in body.free_symbols:  # a broadcast summand: D times it (a Σ_k of no entry of k has no range to read)
            return size_symbol(d) * body
        return sp.Sum(body, (k, 0, size_symbol(d) - 1))

    def atom(self, x: Node, ix: tuple[Any, ...]) -> sp.Expr:
        """An inverse or a determinant: a symbol (or the entries of a base) that the printers show as the tree."""
        known = {node: holder for holder, node in self.atoms.items()}
        holder = known.get(x)
        if holder is None:
            label = f"_atom{len(self.atoms)}"  # a name no variable can take: the printers look the tree up
            holder = sp.Symbol(label) if x.ndim == 0 else sp.IndexedBase(label)
            self.atoms[holder] = x
        return holder if x.ndim == 0 else holder[ix]

    def at(self, x: Node, ix: tuple[Any, ...]) -> sp.Expr:
        """Entry ``ix`` of ``x`` as a SymPy expression, with explicit sums; one rule per operation."""
        rule = _INDEX_RULES.get(x.op)
        return rule(self, x, ix) if rule is not None else self.atom(x, ix)  # inverses, determinants: atoms

    @_entry("var")
    def _var(self, x: Node, ix: tuple[Any, ...]) -> sp.Expr:
        # Real entries: |exp(x)| is exp(x), never exp(re(x)).
        return sp.Symbol(x.attrs[0], real=True) if x.ndim == 0 else sp.IndexedBase(x.attrs[0], real=True)[ix]

    @_entry("const")
    def _const(self, x: Node, ix: tuple[Any, ...]) -> sp.Expr:
        return x.attrs[0]

    @_entry("dim")
    def _dim(self, x: Node, ix: tuple[Any, ...]) -> sp.Expr:
        return size_symbol(x.attrs[0])

    @_entry("ones")
    def _ones(self, x: Node, ix: tuple[Any, ...]) -> sp.Expr:
        return sp.Integer(1)

    @_entry("identity")
    def _identity(self, x: Node, ix: tuple[Any, ...]) -> sp.Expr:
        return sp.KroneckerDelta(*ix)

    @_entry("add")
    def _add(self, x: Node, ix: tuple[Any, ...]) -> sp.Expr:
        return sp.Add(*[self.at(t, _align(ix, x.shape, t.shape)) for t in x.args])

    @_entry("mul")
    def _mul(self, x: Node, ix: tuple[Any, ...]) -> sp.Expr:
        return sp.Mul(*[self.at(t, _align(ix, x.shape, t.shape)) for t in x.args])

    @_entry("pow")
    def _pow(self, x: Node, ix: tuple[Any, ...]) -> sp.Expr:
        return self.at(x.args[0], ix) ** x.attrs[0]

    @_entry("func")
    def _func(self, x: Node, ix: tuple[Any, ...]) -> sp.Expr:
        return SYMPY_FUNCTIONS[x.attrs[0]](self.at(x.args[0], ix))

    @_entry("matmul")
    def _matmul(self, x: Node, ix: tuple[Any, ...]) -> sp.Expr:
        left, right = x.args
        d = left.shape[-1]
        k = self.fresh(d)
        li = (ix[0], k) if left.ndim == 2 else (k,)
        ri = (k, ix[-1]) if right.ndim == 2 else (k,)
        return self.summed(self.at(left, li) * self.at(right, ri), k, d)

    @_entry("outer")
    def _outer(self, x: Node, ix: tuple[Any, ...]) -> sp.Expr:
        return self.at(x.args[0], (ix[0],)) * self.at(x.args[1], (ix[1],))

    @_entry("T")
    def _transpose(self, x: Node, ix: tuple[Any, ...]) -> sp.Expr:
        return self.at(x.args[0], tuple(reversed(ix)))

    @_entry("sum")
    def _sum(self, x: Node, ix: tuple[Any, ...]) -> sp.Expr:
        a, axis = x.args[0], x.attrs[0]
        axes = sorted(range(a.ndim) if axis is None else [axis])
        inner = list(ix)
        ks = {}
        for ax in axes:
            ks[ax] = self.fresh(a.shape[ax])
            inner.insert(ax, ks[ax])
        body = self.at(a, tuple(inner))
        for ax in reversed(axes):
            body = self.summed(body, ks[ax], a.shape[ax])
        return body

    @_entry("expand")
    def _expand(self, x: Node, ix: tuple[Any, ...]) -> sp.Expr:
        return self.at(x.args[0], ix[: x.attrs[0]] + ix[x.attrs[0] + 1:])

    @_entry("squeeze")
    def _squeeze(self, x: Node, ix: tuple[Any, ...]) -> sp.Expr:
        axis = x.attrs[0]
        return self.at(x.args[0], ix[:axis] + (sp.Integer(0),) + ix[axis:])

    @_entry("broadcast")
    def _broadcast(self, x: Node, ix: tuple[Any, ...]) -> sp.Expr:
        return self.at(x.args[0], _align(ix, x.shape, x.args[0].shape))

    @_entry("softmax")
    def _softmax(self, x: Node, ix: tuple[Any, ...]) -> sp.Expr:
        axis = x.attrs[0]
        k = self.fresh(x.shape[axis])
        other = ix[:axis] + (k,) + ix[axis + 1:]
        return sp.exp(self.at(x.args[0], ix)) / self.summed(sp.exp(self.at(x.args[0], other)), k, x.shape[axis])

    @_entry("logsumexp")
    def _logsumexp(self, x: Node, ix: tuple[Any, ...]) -> sp.Expr:
        a, axis = x.args[0], x.attrs[0]
        if axis is None:
            return sp.log(self.at(Node("sum", (Node("func", (a,), ("exp",), a.shape),), (None,), ()), ()))
        k = self.fresh(a.shape[axis])
        inner = ix[:axis] + (k,) + ix[axis:]
        return sp.log(self.summed(sp.exp(self.at(a, inner)), k, a.shape[axis]))

    @_entry("trace")
    def _trace(self, x: Node, ix: tuple[Any, ...]) -> sp.Expr:
        a = x.args[0]
        k = self.fresh(a.shape[0])
        return self.summed(self.at(a, (k, k)), k, a.shape[0])

    @_entry("diag")
    def _diag(self, x: Node, ix: tuple[Any, ...]) -> sp.Expr:
        a = x.args[0]
        if a.ndim == 1:
            return sp.KroneckerDelta(*ix) * self.at(a, (ix[0],))
        return self.at(a, (ix[0], ix[0]))

    @_entry("norm")
    def _norm(self, x: Node, ix: tuple[Any, ...]) -> sp.Expr:
        a = x.args[0]
        return sp.sqrt(self.at(Node("sum", (Node("pow", (a,), (sp.Integer(2),), a.shape),), (None,), ()), ()))

    # --- values, for the verification ---
    def values(self, values: Mapping[str, Any], sizes: Mapping[str, int], evaluate: Any) -> np.ndarray:
        """Every entry at these sizes: the sums written out once, then compiled and read entry by entry."""
        shape = tuple(d if isinstance(d, int) else sizes[d] for d in self.node.shape)
        return entries(self.expr, self.free, shape, self.atoms, values, sizes, evaluate)


def _size_symbols(sizes: Mapping[str, int]) -> dict[Any, Any]:
    return {sp.Symbol(d, positive=True, integer=True): sp.Integer(v) for d, v in sizes.items()}


def entries(expr: sp.Expr, free: tuple[sp.Symbol, ...], shape: tuple[int, ...], atoms: Mapping[sp.Basic, Node],
            values: Mapping[str, Any], sizes: Mapping[str, int], evaluate: Any) -> np.ndarray:
    """Every entry of an index form at these sizes, in floating point; ``evaluate`` gives an atom's value."""
    e = expr.xreplace(_size_symbols(sizes)).doit()
    bases = sorted({ind.base for ind in e.atoms(sp.Indexed)}, key=str)
    safe = {b: sp.IndexedBase(f"_base{k}") for k, b in enumerate(bases)}
    scalars = sorted((s for s in e.free_symbols if not isinstance(s, sp.Indexed) and s not in free
                      and s not in {b.label for b in bases}), key=str)
    safe_scalars = {s: sp.Symbol(f"_scalar{k}") for k, s in enumerate(scalars)}
    body = e.xreplace({**safe, **safe_scalars})
    fn = sp.lambdify([*safe.values(), *safe_scalars.values(), *free], body, modules=[_NUMERIC, "numpy"])
    arrays = [np.asarray(evaluate(atoms[b]) if b in atoms else values[str(b.label)], dtype=float) for b in bases]
    numbers = [float(evaluate(atoms[s])) if s in atoms else float(values[s.name]) for s in scalars]
    out = np.empty(shape)
    with np.errstate(all="ignore"):
        for pos in np.ndindex(*shape):
            out[pos] = fn(*arrays, *numbers, *pos)
    return out


# The exact arithmetic of the special functions, as the exact backend (evaluate.SYMPY) writes them.
_EXACT = {Sigmoid: lambda t: 1 / (1 + sp.exp(-t)), Softplus: lambda t: sp.log(1 + sp.exp(t)),
          Relu: lambda t: sp.Max(t, 0), Step: lambda t: sp.Piecewise((1, t > 0), (0, True))}


def exact_entries(expr: sp.Expr, free: tuple[sp.Symbol, ...], shape: tuple[int, ...], atoms: Mapping[sp.Basic, Node],
                  values: Mapping[str, Any], sizes: Mapping[str, int], evaluate: Any) -> np.ndarray:
    """Every entry exactly: ``values`` hold SymPy entries (object arrays), ``evaluate`` gives an atom's exact value."""
    e = expr.xreplace(_size_symbols(sizes)).doit()
    for f, rule in _EXACT.items():
        e = e.replace(f, rule)
    held = {holder: evaluate(node) for holder, node in atoms.items()}
    out = np.empty(shape, dtype=object)
    for pos in np.ndindex(*shape):
        at = e.xreplace(dict(zip(free, map(sp.Integer, pos)))) if free else e
        table: dict[Any, Any] = {}
        for ind in at.atoms(sp.Indexed):
            source = held[ind.base] if ind.base in held else values[str(ind.base.label)]
            table[ind] = np.asarray(source, dtype=object)[tuple(int(k) for k in ind.indices)]
        scalars = {s: held[s] if s in held else values[s.name] for s in at.free_symbols
                   if not isinstance(s, sp.Indexed) and (s in held or s.name in values)}
        out[pos] = at.xreplace({**table, **scalars})
    return out


_NUMERIC = {"Sigmoid": lambda t: 1 / (1 + np.exp(-t)), "Softplus": lambda t: np.logaddexp(0, t),
            "Relu": lambda t: np.maximum(t, 0), "Step": lambda t: (np.asarray(t) > 0).astype(float),
            "KroneckerDelta": lambda a, b: 1.0 if a == b else 0.0}


def _align(ix: tuple[Any, ...], full: tuple[Any, ...], part: tuple[Any, ...]) -> tuple[Any, ...]:
    """The indices of a broadcast operand: right-aligned, 0 along its axes of length 1."""
    tail = ix[len(full) - len(part):] if part else ()
    return tuple(sp.Integer(0) if d == 1 else i for i, d in zip(tail, part))


def size_symbol(d: Any) -> Any:
    """A dimension as SymPy reads it: a positive integer symbol ``N``, or the number."""
    return sp.Integer(d) if isinstance(d, int) else sp.Symbol(d, positive=True, integer=True)


def _var_names(x: Node) -> set[str]:
    out = {x.attrs[0]} if x.op == "var" else set()
    for a in x.args:
        out |= _var_names(a)
    return out


def _dim_names(x: Node) -> set[str]:
    out = {d for d in x.shape if isinstance(d, str)}
    for a in x.args:
        out |= _dim_names(a)
    return out
