"""Second derivatives in index form: d2L / dX[p, q] dX[r, s], verified before they are printed.

The first-order index form is differentiated once more by an entry at fresh indices, and the
Kronecker deltas are contracted as for the first order. With the upstream gradient G held
fixed, this is the Hessian of L = <G, y> (of the loss itself for a loss layer). It is checked
in the same run: contracted with a random direction V, it must match central differences of
the compiled first-order index form along V, at random sizes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp

from derivcheck.catalog.declarations import Arg
from derivcheck.errors import InputError
from derivcheck.language.printing import notation
from derivcheck.symbolic.build import FREE_INDEX_NAMES, element, index_symbol
from derivcheck.symbolic.index_form import IndexForm, _tidy, contract

# Central differences of the first-order form, and how closely the contraction must match them.
_STEP = 1e-6
_AGREEMENT = 1e-6


@dataclass(frozen=True)
class SecondOrder:
    """One argument's second derivative, and what its in-run check found (None: it agrees)."""

    arg: Arg
    form: IndexForm
    problem: str | None
    sizes: dict[str, int]
    other: Arg | None = None  # a mixed block: d2E / d arg d other; None: arg twice


def second_order(d: Any, arg_name: str, other_name: str | None = None) -> SecondOrder:
    """The second derivative of a derivation's objective by ``arg_name`` and then ``other_name`` (the same
    argument when None: a diagonal block; another: a mixed block), verified numerically."""
    g = d.gradients[arg_name]
    other = d.gradients[other_name or arg_name].arg
    first = g.index
    k, m = len(first.free), len(other.letters)
    second = tuple(index_symbol(n) for n in FREE_INDEX_NAMES[k:k + m])
    if len(second) < m:
        raise InputError(f"{d.layer.name}: {arg_name} and {other.name} have {k + m} axes together; a second-order "
                         f"index form names at most {len(FREE_INDEX_NAMES)} ({', '.join(FREE_INDEX_NAMES)}), so "
                         f"--order 2 is not derived for this layer")
    start = time.perf_counter()
    entry = element(d.built.symbols[other.name], second)
    ranges = {**d.built.index_ranges(g.arg), **{i: d.built.sizes[c] for i, c in zip(second, other.letters)}}
    raw = sp.diff(first.expr, entry)
    expr = contract(raw, ranges)
    expr = expr.replace(lambda a: isinstance(a, sp.KroneckerDelta) and len(a.args) > 2,
                        lambda a: sp.KroneckerDelta(*a.args[:2]))
    doubled = Arg(g.arg.name, f"{g.arg.dims} {other.dims}", g.arg.domain)
    form = IndexForm(doubled, (*first.free, *second), entry, _tidy(expr), time.perf_counter() - start)
    problem, sizes = _check(d, arg_name, form, other.name)
    return SecondOrder(g.arg, form, problem, sizes, None if other_name in (None, arg_name) else other)


def _check(d: Any, arg_name: str, form: IndexForm, along: str | None = None) -> tuple[str | None, dict[str, int]]:
    from derivcheck.symbolic.checked_code import draw_inputs
    from derivcheck.symbolic.compile import compile_index_form, compiled_gradient

    first = compiled_gradient(d.layer.name, arg_name, "index")
    hessian = compile_index_form(d.built, form)
    rng = np.random.default_rng(7)
    sizes: dict[str, int] = {}
    for seed in (303, 404):
        arrays, upstream, sizes = draw_inputs(d, seed)
        along = along or arg_name  # the argument moved: arg_name itself, or another for a mixed block
        x = np.asarray(arrays[along], dtype=float)
        v = rng.standard_normal(x.shape)
        h = _STEP * max(float(np.max(np.abs(x))), 1.0)
        up = first({**arrays, along: x + h * v}, upstream, sizes)
        down = first({**arrays, along: x - h * v}, upstream, sizes)
        numeric = (up - down) / (2 * h)
        exact = hessian(arrays, upstream, sizes)
        rank = np.ndim(arrays[arg_name])
        axes = tuple(range(rank, rank + x.ndim))
        contracted = np.tensordot(exact, v, axes=(axes, tuple(range(x.ndim))))
        scale = max(float(np.max(np.abs(numeric), initial=0.0)), float(np.max(np.abs(first(arrays, upstream, sizes)),
                                                                             initial=0.0)), 1.0)
        gap = float(np.max(np.abs(contracted - numeric), initial=0.0))
        if not gap <= _AGREEMENT * scale:
            return f"differs from central differences of the first derivative by {gap:.3g} at sizes {sizes}", sizes
    return None, sizes


def describe(d: Any, result: SecondOrder, fmt: str) -> list[str]:
    """Lines for one argument: the verified second derivative, or the defect."""
    from derivcheck.language.printing.sympy_forms import DerivationPrinter

    name = result.arg.name
    other = result.other or result.arg
    free = result.form.free
    k = len(result.arg.letters)
    from derivcheck.language.printing.sympy_forms import TextPrinter, text_name

    def plain(arg: Arg) -> str:
        return text_name(d._param_name(arg).replace(r"\mathbf{", "").replace(r"\boldsymbol{", "").strip("{}\\"))

    shown, shown2 = plain(result.arg), plain(other)

    def sub(indices: tuple) -> str:
        parts = [str(i) for i in indices]
        return "_" + "".join(parts) if all(len(p) == 1 for p in parts) else "[" + ", ".join(parts) + "]"

    lhs_text = notation.current().derivative("E", f"{shown}{sub(free[:k])}", f"{shown2}{sub(free[k:])}")
    sizes = ", ".join(f"{c}={n}" for c, n in result.sizes.items())
    if result.problem is not None:
        return [f"{lhs_text}: DEFECT, not shown: the second derivative {result.problem}"]
    if fmt == "latex":
        p = DerivationPrinter()
        base, base2 = (d._param_name(a).replace(r"\mathbf{", "{").replace(r"\boldsymbol{", "{") for a in (result.arg, other))
        lhs = (rf"\frac{{\partial^2 E}}{{\partial {base}_{{{p._indices(free[:k])}}}\, "
               rf"\partial {base2}_{{{p._indices(free[k:])}}}}}")
        return [f"{lhs} = {p.doprint(result.form.expr)}"]
    from derivcheck.language.printing.sympy_forms import wrap_text

    return [*wrap_text(f"{lhs_text} = {TextPrinter().doprint(result.form.expr)}"),
            f"  verified: contracted with a random direction{'' if other is result.arg else ' in ' + other.name}, it "
            f"matches central differences of dE/d{name} (sizes {sizes})"]


def render_second_order(name: str, fmt: str = "text") -> str:
    """Every argument's second derivative for a catalog layer (G held fixed for a non-loss layer)."""
    from derivcheck.symbolic.derive import derive

    d = derive(name)
    lines = [] if fmt == "latex" else [f"{name}: second derivatives" + ("" if d.layer.is_loss else
                                                                        " of L = <G, y> with G held fixed"), ""]
    names = list(d.gradients)
    for arg in names:
        lines += describe(d, second_order(d, arg), fmt)
    # The mixed blocks d2E / da db (a before b: the Hessian is symmetric), e.g. a PReLU's d2E/dx da, which is
    # its only non-zero block.
    for i, arg in enumerate(names):
        for other in names[i + 1:]:
            lines += describe(d, second_order(d, arg, other), fmt)
    return "\n".join(lines)


__all__ = ["SecondOrder", "render_second_order", "second_order"]
