"""Index form: differentiate L with respect to one entry, then contract the Kronecker deltas.

``diff`` of a ``Sum`` leaves ``KroneckerDelta``s inside the sums, and ``.doit()`` evaluates
them but wraps the result in range guards (``Piecewise((.., p <= D - 1), (0, True))``), and
stops at the first limit with no closed form. ``contract`` evaluates exactly the sums whose
summand has a delta on the summation index, in any limit order, with
``deltasummation``; it drops a range guard only when the guard mentions nothing but free
indices, sizes and constants (the free index is in range by construction). A guard that
mentions a summation index (a kernel offset in a convolution) matters and survives.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sympy as sp
from sympy.concrete.delta import deltasummation
from sympy.core.function import AppliedUndef
from sympy.matrices.expressions.matexpr import MatrixElement

from derivcheck.catalog.declarations import Arg
from derivcheck.symbolic.build import Built, element


Ranges = dict[Any, sp.Expr]  # free index (or index-valued input) -> its size


def _implied(cond: sp.Basic, ranges: Ranges) -> bool:
    """Whether ``cond`` holds for every value of the free indices in their declared ranges.

    Each relation is linear in the indices, so it holds on the whole box of index values
    when it holds at the box's corners (sizes are positive integers).
    """
    entries = {e: sp.Dummy(integer=True) for e in cond.atoms(MatrixElement, sp.Indexed) if _parent(e) in ranges}
    bounds = {d: ranges[_parent(e)] for e, d in entries.items()}
    bounds.update({v: n for v, n in ranges.items() if isinstance(v, sp.Symbol)})
    cond = cond.xreplace(entries)
    relations = cond.args if isinstance(cond, sp.And) else (cond,)
    for rel in relations:
        if not isinstance(rel, sp.core.relational.Relational):
            return False
        variables = [v for v in rel.free_symbols if v in bounds]
        if not variables or (rel.free_symbols - set(variables)) - _size_like(rel):
            return False
        for corner in itertools.product(*[(0, bounds[v] - 1) for v in variables]):
            if sp.simplify(rel.xreplace(dict(zip(variables, corner)))) is not sp.true:
                return False
    return True


def _size_like(rel: sp.Basic) -> set[sp.Basic]:
    return {s for s in rel.free_symbols if s.is_positive or s.is_nonnegative and not s.is_Dummy}


def drop_range_guards(expr: sp.Expr, ranges: Ranges) -> sp.Expr:
    """``Piecewise((f, cond), (0, True)) -> f`` when the index ranges imply ``cond``.

    A guard that says "this free index is in range" holds by construction and goes; one
    that restricts a free index to part of its range (a gate block of a combined LSTM
    weight) or mentions a summation index (a kernel offset in a convolution) stays.
    """

    def is_guard(a: sp.Basic) -> bool:
        return (
            isinstance(a, sp.Piecewise)
            and len(a.args) == 2
            and a.args[1].cond == sp.true
            and a.args[1].expr == 0
            and _implied(a.args[0].cond, ranges)
        )

    return expr.replace(is_guard, lambda a: a.args[0].expr)


def _parent(e: Any) -> Any:
    return e.parent if isinstance(e, MatrixElement) else e.base


def _has_delta_on(term: sp.Expr, var: sp.Symbol) -> bool:
    """A delta that ``deltasummation`` can solve for ``var``: ``var`` on one side only,
    with coefficient +-1, and not inside an entry (``ids[n]`` cannot be solved for n)."""
    for kd in term.atoms(sp.KroneckerDelta):
        sides = [a for a in kd.args[:2] if var in a.free_symbols]
        if len(sides) != 1:
            continue
        side = sides[0]
        if any(var in e.free_symbols for e in side.atoms(MatrixElement, sp.Indexed)):
            continue
        if sp.diff(side, var) in (1, -1):
            return True
    return False


def _contract_sum(s: sp.Sum, safe: Ranges) -> sp.Expr:
    body, limits = s.function, list(s.limits)
    if not body.has(sp.KroneckerDelta) or not any(_has_delta_on(body, lim[0]) for lim in limits):
        return s  # rebuilding a Sum re-runs piecewise_fold: leave delta-free sums alone
    while True:
        candidates = [lim for lim in limits if _has_delta_on(body, lim[0])]
        if not candidates:
            break
        lim = candidates[0]
        limits.remove(lim)
        terms = sp.Add.make_args(sp.expand(body, power_exp=False, log=False, multinomial=False, power_base=False))
        body = sp.Add(
            *[drop_range_guards(_delta_sum(t, lim), safe) if _has_delta_on(t, lim[0]) else sp.Sum(t, lim) for t in terms]
        )
    return sp.Sum(body, *limits) if limits else body


def _delta_sum(term: sp.Expr, lim: tuple[Any, ...]) -> sp.Expr:
    """``deltasummation`` with every Piecewise (a guard left by an earlier contraction) made opaque first.

    SymPy substitutes the solved index into a Piecewise's branches but not into its
    conditions, so a guard would keep the summation index it was contracted over (a leak).
    As an opaque function of its indices it is substituted like any other factor.
    """
    if not term.has(sp.Piecewise):
        return deltasummation(term, lim)
    table: dict[Any, tuple[sp.Piecewise, tuple[sp.Symbol, ...]]] = {}

    def guarded(pw: sp.Basic) -> bool:  # Piecewise((e, c), (0, True)): e times the indicator of c
        return isinstance(pw, sp.Piecewise) and len(pw.args) == 2 and pw.args[1].expr == 0 and pw.args[1].cond == True  # noqa: E712

    def hide(pw: sp.Piecewise) -> sp.Expr:
        indicator = sp.Piecewise((1, pw.args[0].cond), (0, True))
        indices = tuple(sorted((v for v in indicator.free_symbols if v.is_integer), key=str))
        fn = sp.Function(f"_guard{len(table)}")
        table[fn] = (indicator, indices)
        return pw.args[0].expr * fn(*indices)

    hidden = term.replace(guarded, hide)
    out = deltasummation(hidden, lim)
    return out.replace(lambda a: isinstance(a, AppliedUndef) and a.func in table,
                       lambda a: table[a.func][0].xreplace(dict(zip(table[a.func][1], a.args))))



def _hide_piecewise(expr: sp.Expr) -> tuple[sp.Expr, Callable[[sp.Expr], sp.Expr]]:
    """Move deltas out of piecewise branches and hide each Piecewise behind a placeholder.

    ``diff`` of a piecewise function (ReLU) puts the deltas inside the branches, where
    ``deltasummation`` cannot see them; and ``Sum`` folds any Piecewise in its summand back
    over its factors (``piecewise_fold``). So a delta shared by every non-zero branch moves
    out, and the rest becomes ``_pw0(n, d)``: an opaque function of its indices that the
    contraction substitutes like any other factor, restored afterwards.
    """
    table: dict[Any, tuple[sp.Piecewise, tuple[sp.Symbol, ...]]] = {}

    def shared(pw: sp.Piecewise) -> set[sp.Basic]:
        # factor_terms: a branch that is a sum (a PReLU's g a + g where x is both signs) shares its terms' deltas too.
        sets = [{a for a in sp.Mul.make_args(sp.factor_terms(b.expr)) if isinstance(a, sp.KroneckerDelta)}
                for b in pw.args if b.expr != 0]
        return set.intersection(*sets) if sets else set()

    def hide(pw: sp.Piecewise) -> sp.Expr:
        deltas = sp.Mul(*shared(pw))
        inner = sp.Piecewise(*[(sp.factor_terms(b.expr) / deltas if b.expr != 0 else b.expr, b.cond) for b in pw.args])
        indices = tuple(sorted((v for v in inner.free_symbols if v.is_integer), key=str))
        fn = sp.Function(f"_pw{len(table)}")
        table[fn] = (inner, indices)
        return deltas * fn(*indices)

    hidden = expr.replace(lambda a: isinstance(a, sp.Piecewise) and bool(shared(a)), hide)

    def restore(e: sp.Expr) -> sp.Expr:
        return e.replace(
            lambda a: isinstance(a, AppliedUndef) and a.func in table,
            lambda a: table[a.func][0].xreplace(dict(zip(table[a.func][1], a.args))),
        )

    return hidden, restore


def contract(expr: sp.Expr, safe: Ranges) -> sp.Expr:
    """Evaluate every Kronecker delta against its summation index."""
    expr, restore = _hide_piecewise(expr)
    expr = drop_range_guards(expr, safe)
    for _ in range(4):  # nested sums expose new deltas once their inner sum is contracted
        new = expr.replace(lambda a: isinstance(a, sp.Sum), lambda a: _contract_sum(a, safe))
        new = drop_range_guards(new, safe)
        if new == expr:
            break
        expr = new
    return drop_range_guards(restore(expr), safe)


def _factor_out_constants(expr: sp.Expr) -> sp.Expr:
    """Sum(c * f(k), k) -> c * Sum(f(k), k) for factors c free of the summation index."""

    def pull(s: sp.Sum) -> sp.Expr:
        if len(s.limits) != 1:
            return s
        var = s.limits[0][0]
        inside, outside = [], []
        for f in sp.Mul.make_args(s.function):
            (inside if var in f.free_symbols else outside).append(f)
        if not outside:
            return s
        return sp.Mul(*outside) * sp.Sum(sp.Mul(*inside), s.limits[0])

    return expr.replace(lambda a: isinstance(a, sp.Sum), pull)


def substitute_row_sums(expr: sp.Expr, built: Built) -> sp.Expr:
    """Targets declared to sum to 1 over their last axis: ``Sum(t[p, k], k) -> 1``."""
    targets = [built.symbols[name] for name in built.layer.row_sums_to_one]
    if not targets:
        return expr
    expr = _factor_out_constants(sp.expand(expr))

    def is_row_sum(a: sp.Basic) -> bool:
        if not isinstance(a, sp.Sum) or len(a.limits) != 1:
            return False
        f, var = a.function, a.limits[0][0]
        return any(
            isinstance(f, sp.matrices.expressions.matexpr.MatrixElement) and f.parent == t and f.j == var for t in targets
        )

    return expr.replace(is_row_sum, lambda a: sp.Integer(1))


@dataclass(frozen=True)
class IndexForm:
    """The derivative of the objective with respect to one entry of an argument."""

    arg: Arg
    free: tuple[sp.Symbol, ...]
    entry: sp.Expr  # the entry differentiated by, e.g. W[p, q]
    expr: sp.Expr
    seconds: float


def derive_index_form(built: Built, arg: Arg) -> IndexForm:
    """Differentiate, contract, apply the declared target assumptions, tidy."""
    start = time.perf_counter()
    free = built.free_indices(arg)
    entry = element(built.symbols[arg.name], free)
    raw = sp.diff(built.objective, entry)
    expr = contract(raw, built.index_ranges(arg))
    # Drop the deltas' own range tuples: printers and lambdify know only two-argument deltas.
    expr = expr.replace(lambda a: isinstance(a, sp.KroneckerDelta) and len(a.args) > 2, lambda a: sp.KroneckerDelta(*a.args[:2]))
    expr = substitute_row_sums(expr, built)
    expr = _exp_of_sums(_tidy(_counted_sums(_exp_of_sums(_never_taken(expr)))))
    return IndexForm(arg, free, entry, expr, time.perf_counter() - start)


def _counted_sums(expr: sp.Expr) -> sp.Expr:
    """A sum of a term its index does not appear in is the term times the range's length: ``Σ_j 1`` is ``N``
    (a batch norm's mean, differentiated, leaves one in every term)."""

    def count(s: sp.Sum) -> sp.Expr:
        out, kept = s.function, []
        for k, lo, hi in s.limits:
            if out.has(k):
                kept.append((k, lo, hi))
            else:
                out = out * (hi - lo + 1)
        return sp.Sum(out, *kept) if kept else out

    return expr.replace(lambda e: isinstance(e, sp.Sum) and any(not e.function.has(lim[0]) for lim in e.limits), count)


def _never_taken(expr: sp.Expr) -> sp.Expr:
    """Piecewise branches whose condition cannot hold (``x > 0 and x < 0``, left by diff of Max and Min) removed."""

    def prune(pw: sp.Piecewise) -> sp.Expr:
        kept = [(b.expr, b.cond) for b in pw.args if not contradictory(b.cond)]
        return sp.Piecewise(*kept) if kept else sp.Integer(0)

    return expr.replace(lambda a: isinstance(a, sp.Piecewise) and any(contradictory(b.cond) for b in a.args), prune)


def contradictory(cond: Any) -> bool:
    """``x > 0 and x < 0`` (either side of the comparison): a branch that is never taken."""
    if not isinstance(cond, sp.And):
        return False
    signs: dict[Any, set[int]] = {}
    for c in cond.args:
        if isinstance(c, (sp.StrictGreaterThan, sp.StrictLessThan)) and c.rhs == 0:
            signs.setdefault(c.lhs, set()).add(1 if isinstance(c, sp.StrictGreaterThan) else -1)
        if isinstance(c, (sp.StrictGreaterThan, sp.StrictLessThan)) and c.lhs == 0:
            signs.setdefault(c.rhs, set()).add(-1 if isinstance(c, sp.StrictGreaterThan) else 1)
    return any(len(s) == 2 for s in signs.values())


def _exp_of_sums(expr: sp.Expr) -> sp.Expr:
    """``Product(exp(a), k) -> exp(Sum(a, k))``: SymPy's rewriting of an exp of a sum (an attention score) into a
    product of exps, which no printer can turn into code and no reader wants."""
    return expr.replace(lambda e: isinstance(e, sp.Product) and isinstance(e.function, sp.exp),
                        lambda e: sp.exp(sp.Sum(e.function.args[0], *e.limits)))


# Beyond this many sums (an LSTM gate's gradient) rewriting costs seconds and gains nothing.
_TIDY_MAX_SUMS = 40


def _tidy(expr: sp.Expr) -> sp.Expr:
    """A cheap, size-independent cleanup: the shortest of a few equivalent rewritings."""
    if len(expr.atoms(sp.Sum)) > _TIDY_MAX_SUMS:
        return expr
    expr = _factor_out_constants(expr)
    if expr.has(sp.Piecewise):
        return expr
    candidates = [expr, sp.factor_terms(expr), sp.factor_terms(sp.together(expr))]
    if not expr.has(sp.Sum):
        candidates.append(sp.factor(expr))
    return min(candidates, key=sp.count_ops)
