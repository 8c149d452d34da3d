"""The exact oracle of the symbolic tests: index form and matrix form equal at small explicit sizes.

With every size a number, each gradient entry of either form expands into a finite
expression in the input entries, and their difference must simplify to 0. The cost grows
like size^4, so this is for sizes up to about 4.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import sympy as sp

from derivcheck.symbolic.build import element
from derivcheck.symbolic.derive import Derivation
from derivcheck.symbolic.matrix_form import reduce_axis


def _numeric_sizes(d: Derivation, sizes: Mapping[str, int]) -> dict[sp.Symbol, int]:
    return {sym: int(sizes[c]) for c, sym in d.built.sizes.items()}


def _index_entry(d: Derivation, arg: str, idx: tuple[int, ...], subs: dict[sp.Symbol, int]) -> sp.Expr:
    g = d.gradients[arg]
    e = g.index.expr.xreplace(subs).xreplace(dict(zip(g.index.free, idx)))
    return e.doit()


def _matrix_entry(d: Derivation, arg: str, idx: tuple[int, ...], subs: dict[sp.Symbol, int]) -> sp.Expr | None:
    g = d.gradients[arg]
    m = g.matrix
    if m.kind == "matrix":
        explicit = m.expr.xreplace(subs).as_explicit()
        return explicit[idx[0], idx[1] if len(idx) > 1 else 0]
    if m.kind != "elementwise":
        return None

    def axis_length(e: Any, axis: int) -> int:
        for h in e.free_symbols & set(m.placeholders):
            parent = m.placeholders[h]
            shape = parent.shape if not isinstance(parent, sp.IndexedBase) else parent.shape
            return int(sp.sympify(shape[axis]).xreplace(subs))
        raise ValueError("a reduction without entries")

    def at(e: Any, pos: tuple[int, ...]) -> Any:
        if e in m.placeholders:
            return element(m.placeholders[e].xreplace(subs), pos)
        if isinstance(e, reduce_axis):
            inner, axis = e.args
            axis = int(axis)
            return sp.Add(*[at(inner, pos[:axis] + (k,) + pos[axis + 1 :]) for k in range(axis_length(inner, axis))])
        if not e.args:
            return e.xreplace(subs)
        return e.func(*[at(a, pos) for a in e.args])

    return at(m.expr, idx)


def exactly_equal(d: Derivation, arg: str, sizes: Mapping[str, int]) -> bool | None:
    """True when index and matrix forms agree symbolically at these sizes; None without a matrix form."""
    subs = _numeric_sizes(d, sizes)
    letters = d.gradients[arg].arg.letters
    for idx in itertools.product(*[range(int(sizes[c])) for c in letters]):
        b = _matrix_entry(d, arg, idx, subs)
        if b is None:
            return None
        a = _index_entry(d, arg, idx, subs)
        diff = sp.expand(a - b)
        if diff != 0 and sp.simplify(diff) != 0:
            return False
    return True
