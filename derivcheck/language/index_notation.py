"""A tree in index notation: one entry written with explicit sums, ``(X^T G)_ij = sum_n X_ni G_nj``.

A contraction over a dimension ``D`` is summed over ``d`` where that letter is free, the
entries of an inverse or a determinant are atoms (they have no finite index form), and the
result evaluates entry by entry at explicit sizes, so that it is verified like everything else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import sympy as sp
from sympy.printing.str import StrPrinter

from derivcheck.language.nodes import Node
from derivcheck.language.printing import MathPrinter
from derivcheck.language.scalar_algebra import SYMPY_FUNCTIONS
from derivcheck.symbolic.latex import DerivationPrinter


class IndexForm:
    """One entry of a tree, its free indices, and the atoms that stand for inverses and determinants."""

    def __init__(self, x: Node, free: tuple[str, ...] = ("i", "j")) -> None:
        self.node = x
        self.atoms: dict[sp.Basic, Node] = {}
        dims = _dim_names(x)
        self.taken = {f for f in free} | {d.lower() for d in dims if len(d) == 1} - set()
        self.used: set[str] = set(free[: x.ndim])
        self.free = tuple(sp.Symbol(f, integer=True) for f in free[: x.ndim])
        self.expr = self.at(x, self.free)

    def fresh(self, d: Any) -> sp.Symbol:
        preferred = [str(d).lower()] if isinstance(d, str) and len(d) == 1 else []
        for name in [*preferred, "k", "l", "m", "r", "s", "t", "u", "v", "a", "b", "c"]:
            if name not in self.used:
                self.used.add(name)
                return sp.Symbol(name, integer=True)
        name = f"k{len(self.used)}"
        self.used.add(name)
        return sp.Symbol(name, integer=True)

    def summed(self, body: sp.Expr, k: sp.Symbol, d: Any) -> sp.Expr:
        return sp.Sum(body, (k, 0, _size(d) - 1))

    def atom(self, x: Node, ix: tuple[Any, ...]) -> sp.Expr:
        label = MathPrinter(latex=True)(x)
        if x.ndim == 0:
            s = sp.Symbol(label)
            self.atoms[s] = x
            return s
        base = sp.IndexedBase(sp.Symbol(rf"\left({label}\right)"))
        self.atoms[base] = x
        return base[ix]

    def at(self, x: Node, ix: tuple[Any, ...]) -> sp.Expr:  # noqa: C901 - one branch per operation
        op, a = x.op, x.args
        if op == "var":
            return sp.Symbol(x.attrs[0]) if x.ndim == 0 else sp.IndexedBase(x.attrs[0])[ix]
        if op == "const":
            return x.attrs[0]
        if op == "dim":
            return sp.Symbol(x.attrs[0], positive=True, integer=True)
        if op == "ones":
            return sp.Integer(1)
        if op == "identity":
            return sp.KroneckerDelta(*ix)
        if op in ("add", "mul"):
            parts = [self.at(t, _align(ix, x.shape, t.shape)) for t in a]
            return sp.Add(*parts) if op == "add" else sp.Mul(*parts)
        if op == "pow":
            return self.at(a[0], ix) ** x.attrs[0]
        if op == "func":
            return SYMPY_FUNCTIONS[x.attrs[0]](self.at(a[0], ix))
        if op == "matmul":
            left, right = a
            d = left.shape[-1]
            k = self.fresh(d)
            li = (ix[0], k) if left.ndim == 2 else (k,)
            ri = (k, ix[-1]) if right.ndim == 2 else (k,)
            return self.summed(self.at(left, li) * self.at(right, ri), k, d)
        if op == "outer":
            return self.at(a[0], (ix[0],)) * self.at(a[1], (ix[1],))
        if op == "T":
            return self.at(a[0], tuple(reversed(ix)))
        if op == "sum":
            axis = x.attrs[0]
            axes = range(a[0].ndim) if axis is None else [axis]
            inner = list(ix)
            ks = {}
            for ax in sorted(axes):
                ks[ax] = self.fresh(a[0].shape[ax])
                inner.insert(ax, ks[ax])
            body = self.at(a[0], tuple(inner))
            for ax in sorted(axes, reverse=True):
                body = self.summed(body, ks[ax], a[0].shape[ax])
            return body
        if op == "expand":
            return self.at(a[0], ix[: x.attrs[0]] + ix[x.attrs[0] + 1:])
        if op == "squeeze":
            axis = x.attrs[0]
            return self.at(a[0], ix[:axis] + (sp.Integer(0),) + ix[axis:])
        if op == "broadcast":
            return self.at(a[0], _align(ix, x.shape, a[0].shape))
        if op == "softmax":
            axis = x.attrs[0]
            k = self.fresh(x.shape[axis])
            other = ix[:axis] + (k,) + ix[axis + 1:]
            return sp.exp(self.at(a[0], ix)) / self.summed(sp.exp(self.at(a[0], other)), k, x.shape[axis])
        if op == "logsumexp":
            axis = x.attrs[0]
            if axis is None:
                return sp.log(self.at(Node("sum", (Node("func", (a[0],), ("exp",), a[0].shape),), (None,), ()), ()))
            k = self.fresh(a[0].shape[axis])
            inner = ix[:axis] + (k,) + ix[axis:]
            return sp.log(self.summed(sp.exp(self.at(a[0], inner)), k, a[0].shape[axis]))
        if op == "trace":
            k = self.fresh(a[0].shape[0])
            return self.summed(self.at(a[0], (k, k)), k, a[0].shape[0])
        if op == "diag":
            if a[0].ndim == 1:
                return sp.KroneckerDelta(*ix) * self.at(a[0], (ix[0],))
            return self.at(a[0], (ix[0], ix[0]))
        if op == "norm":
            inner = Node("sum", (Node("pow", (a[0],), (sp.Integer(2),), a[0].shape),), (None,), ())
            return sp.sqrt(self.at(inner, ()))
        return self.atom(x, ix)  # inverses, determinants: entries without a finite index form

    # --- values, for the verification ---
    def values(self, values: Mapping[str, Any], sizes: Mapping[str, int], evaluate: Any) -> np.ndarray:
        """Every entry at these sizes: the sums written out once, then compiled and read entry by entry."""
        subs: dict[Any, Any] = {sp.Symbol(d, positive=True, integer=True): v for d, v in sizes.items()}
        e = self.expr.xreplace(subs).doit()
        shape = tuple(d if isinstance(d, int) else sizes[d] for d in self.node.shape)
        bases = sorted({ind.base for ind in e.atoms(sp.Indexed)}, key=str)
        safe = {b: sp.IndexedBase(f"_base{k}") for k, b in enumerate(bases)}
        scalars = sorted((s for s in e.free_symbols if not isinstance(s, sp.Indexed) and s not in self.free
                          and s not in {b.label for b in bases}), key=str)
        safe_scalars = {s: sp.Symbol(f"_scalar{k}") for k, s in enumerate(scalars)}
        body = e.xreplace({**safe, **safe_scalars})
        fn = sp.lambdify([*safe.values(), *safe_scalars.values(), *self.free], body, modules=[_NUMERIC, "numpy"])
        arrays = [np.asarray(evaluate(self.atoms[b]) if b in self.atoms else values[str(b.label)], dtype=float)
                  for b in bases]
        numbers = [float(evaluate(self.atoms[s])) if s in self.atoms else float(values[s.name]) for s in scalars]
        out = np.empty(shape)
        for pos in np.ndindex(*shape):
            out[pos] = fn(*arrays, *numbers, *pos)
        return out


_NUMERIC = {"Sigmoid": lambda t: 1 / (1 + np.exp(-t)), "Softplus": lambda t: np.logaddexp(0, t),
            "Relu": lambda t: np.maximum(t, 0), "Step": lambda t: (np.asarray(t) > 0).astype(float),
            "KroneckerDelta": lambda a, b: 1.0 if a == b else 0.0}


def _align(ix: tuple[Any, ...], full: tuple[Any, ...], part: tuple[Any, ...]) -> tuple[Any, ...]:
    """The indices of a broadcast operand: right-aligned, 0 along its axes of length 1."""
    tail = ix[len(full) - len(part):] if part else ()
    return tuple(sp.Integer(0) if d == 1 else i for i, d in zip(tail, part))


def _size(d: Any) -> Any:
    return sp.Integer(d) if isinstance(d, int) else sp.Symbol(d, positive=True, integer=True)


def _dim_names(x: Node) -> set[str]:
    out = {d for d in x.shape if isinstance(d, str)}
    for a in x.args:
        out |= _dim_names(a)
    return out


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
        return f"δ({self._print(e.args[0])},{self._print(e.args[1])})"

    def _print_Sigmoid(self, e: Any) -> str:
        return f"σ({self._print(e.args[0])})"

    def _print_Step(self, e: Any) -> str:
        return f"1[{self._print(e.args[0])} > 0]"


def _plain(label: str) -> str:
    for a, b in ((r"\left(", ""), (r"\right)", ""), ("^{-1}", "^-1"), (r"^{-\top}", "^-T"), (r"\log\det", "log det"),
                 (r"\det", "det"), (r"\left", ""), (r"\right", ""), ("^\\top", "^T")):
        label = label.replace(a, b)
    return label
