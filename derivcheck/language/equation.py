"""``check_equation``: is a hand-typed gradient the gradient of an expression?

Decided two ways: exactly, with every entry a symbol at sizes 2 (SymPy differentiates the
expanded scalar; a rational point where the two differ proves them different), and
numerically, by the project's checker at two random sizes with every entry compared. A
difference is explained only by a correction that makes the claim agree with the verified
gradient: a constant factor, a transpose, a missing sum, a function where its derivative belongs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np

from derivcheck.errors import ExpressionError
from derivcheck.language import nodes as n
from derivcheck.language.adjoint import derivative
from derivcheck.language.derivation import (_SEEDS, Problem, claim_value, derive_expression, exact_difference,
                                            exact_sizes)
from derivcheck.language.evaluate import evaluate
from derivcheck.language.printing import notation
from derivcheck.language.index_claim import IndexClaim, looks_like_index_form, parse_index_claim, without_matrix_lhs
from derivcheck.language.nodes import Node, ShapeError
from derivcheck.language.parse import parse_expression
from derivcheck.language.printing import text
from derivcheck.report.results import EquationCheck, Verification, verdict_ok

# A correction explains the numbers when it agrees with the verified gradient this closely.
_EXPLAINS = 1e-8


# What a claim is: a matrix-language tree (Xᵀ (σ(X w) - y)) or an index form (Σ_n (σ(Σ_d X_nd w_d) - y_n) X_ni).
Claim = Node | IndexClaim


def _numeric(p: Problem, claimed: Claim, seed: int) -> tuple[Verification, object]:
    from derivcheck.checker.gradient import check_gradient

    sizes, values = p.draw(seed)

    def loss(params: dict[str, np.ndarray]) -> float:
        return float(evaluate(p.forward, {**values, **params}, sizes))

    def grad(params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {p.wrt: np.asarray(claim_value(claimed, {**values, **params}, sizes), dtype=float)}

    # A dict, so that the checker's findings name the variable: "dW[0, 1]".
    report = check_gradient(loss, grad, {p.wrt: np.asarray(values[p.wrt], dtype=float)}, mode="full", seed=seed,
                            title=f"claimed d/d{p.wrt}")
    row = report.params[0]
    ok = verdict_ok(report.verdict)
    return Verification("claimed gradient", "finite differences of the expression", sizes, float(row.max_rel_error),
                        ok, row.reason if ok is None else ""), report


def _close(p: Problem, a: Claim, b: Node, seed: int = _SEEDS[0]) -> bool:
    sizes, values = p.draw(seed)
    x = np.asarray(claim_value(a, values, sizes), dtype=float)
    y = np.asarray(evaluate(b, values, sizes), dtype=float)
    if x.shape != y.shape:
        return False
    return float(np.max(np.abs(x - y), initial=0.0)) <= _EXPLAINS * max(float(np.max(np.abs(y), initial=0.0)), 1e-300)


def _functions(x: Node) -> list[Node]:
    out = [x] if x.op == "func" else []
    for a in x.args:
        out.extend(_functions(a))
    return out


def _replace(x: Node, old: Node, new: Node) -> Node:
    if x == old:
        return new
    if not x.args:
        return x
    return Node(x.op, tuple(_replace(a, old, new) for a in x.args), x.attrs, x.shape)


def _ratio(p: Problem, claimed: Claim, truth: Node) -> float | None:
    """claim / truth when it is one constant at two independent draws (one draw of a scalar fits any factor)."""
    ratios = [_ratio_at(p, claimed, truth, seed) for seed in _SEEDS]
    if any(r is None for r in ratios) or not np.isclose(ratios[0], ratios[1], rtol=1e-8, atol=0):
        return None
    return ratios[0]


def _ratio_at(p: Problem, claimed: Claim, truth: Node, seed: int) -> float | None:
    sizes, values = p.draw(seed)
    a = np.asarray(claim_value(claimed, values, sizes), dtype=float).ravel()
    b = np.asarray(evaluate(truth, values, sizes), dtype=float).ravel()
    keep = np.abs(b) > 1e-8 * max(float(np.max(np.abs(b), initial=0.0)), 1e-300)
    if not keep.any():
        return None
    r = a[keep] / b[keep]
    return float(r[0]) if np.allclose(r, r[0], rtol=1e-8, atol=0) else None


# Powers of the sizes tried as a factor between a claim and the truth (1/N, N, 1/(N D), N^2, ...).
_SIZE_POWERS = (-2, -1, 1, 2)


def _size_factor(p: Problem, claimed: Claim, truth: Node) -> str | None:
    """The factor truth / claim written in the sizes ("1/N", "N D"), when one product of sizes times one constant
    fits both draws (a factor seen at one size, "4 times", is a size in disguise)."""
    draws = [p.draw(seed)[0] for seed in _SEEDS]
    ratios = [_ratio_at(p, claimed, truth, seed) for seed in _SEEDS]
    if any(r is None for r in ratios) or np.isclose(ratios[0], ratios[1], rtol=1e-8, atol=0):
        return None
    letters = sorted({k for d in draws for k in d})
    candidates = [((a, i),) for a in letters for i in _SIZE_POWERS]
    candidates += [((a, i), (b, j)) for a in letters for b in letters if a < b for i in (-1, 1) for j in (-1, 1)]
    for monomial in candidates:
        values = [float(np.prod([d[k] ** e for k, e in monomial])) for d in draws]
        c = [1 / (r * v) for r, v in zip(ratios, values)]  # truth / claim = c * monomial
        if np.isclose(c[0], c[1], rtol=1e-8, atol=0) and values[0] != values[1]:
            return _monomial_text(monomial, c[0])
    return None


def _monomial_text(monomial: tuple[tuple[str, int], ...], c: float) -> str:
    up = " ".join(k if e == 1 else f"{k}^{e}" for k, e in monomial if e > 0)
    down = " ".join(k if e == -1 else f"{k}^{-e}" for k, e in monomial if e < 0)
    const = round(c) if abs(c - round(c)) < 1e-9 else c
    head = f"{const:g}" if const not in (1,) else ""
    num = " ".join(x for x in (head, up) if x) or "1"
    if not down:
        return num
    return f"{num}/{down}" if " " not in down else f"{num}/({down})"


def explain(p: Problem, claimed: Claim, truth: Node) -> list[str]:
    """Corrections that turn ``claimed`` into the verified gradient, each tested on the numbers."""
    out: list[str] = []
    shape = p.var.shape
    if isinstance(claimed, IndexClaim):  # its free indices are bound to the axes of wrt: its shape is right
        return _explain_entries(p, claimed, truth)
    if claimed.shape != shape:
        for axis in range(claimed.ndim):
            summed = n.total(claimed, axis)
            if summed.shape == shape and _close(p, summed, truth):
                out.append(f"a sum is missing: the claim has shape {n.show_shape(claimed.shape)}, {p.wrt} has "
                           f"{n.show_shape(shape)}; summed over axis {axis}, sum({text(claimed)}, axis={axis}), "
                           "it is right")
        if claimed.ndim == 2 and n.transpose(claimed).shape == shape and _close(p, n.transpose(claimed), truth):
            out.append(f"transposed: the claim has shape {n.show_shape(claimed.shape)}; its transpose is right")
        return out or [f"the claim has shape {n.show_shape(claimed.shape)}, but {p.wrt} has {n.show_shape(shape)}"]
    out.extend(_factors(p, claimed, truth))
    if claimed.ndim == 2 and claimed.shape[0] == claimed.shape[1] and _close(p, n.transpose(claimed), truth):
        out.append("transposed: the transpose of the claim is right")
    if _close(p, n.neg(claimed), truth):
        out.append("the sign is wrong: the negated claim is right")
    for f in _functions(claimed):
        name = f.attrs[0]
        try:
            fixed = _replace(claimed, f, derivative(name, f.args[0]))
        except KeyError:
            continue
        if _close(p, fixed, truth):
            out.append(f"a function stands where its derivative belongs: with {text(f)} replaced by "
                       f"{text(derivative(name, f.args[0]))}, the claim is right")
    return [x for i, x in enumerate(out) if x not in out[:i]]


def _explain_entries(p: Problem, claimed: IndexClaim, truth: Node) -> list[str]:
    """An index form's corrections: a factor, its two indices swapped, the sign."""
    out = _factors(p, claimed, truth)
    if claimed.ndim == 2 and claimed.shape[0] == claimed.shape[1] and _close(p, claimed.transposed(), truth):
        i, j = claimed.free
        out.append(f"the indices are swapped: with {i} and {j} exchanged (the transpose), the claim is right")
    if _close(p, claimed.negated(), truth):
        out.append("the sign is wrong: the negated claim is right")
    return out


def _factors(p: Problem, claimed: Claim, truth: Node) -> list[str]:
    """A constant factor, or a factor in the sizes, that makes the claim the verified gradient."""
    out: list[str] = []
    ratio = _ratio(p, claimed, truth)
    if ratio is not None and abs(ratio - 1) > 1e-8:
        factor = 1 / ratio
        word = f"{factor:.6g}" if abs(factor - round(factor)) > 1e-9 else str(int(round(factor)))
        out.append(f"a constant factor is missing: the right gradient is {word} times the claim")
    sized = _size_factor(p, claimed, truth) if ratio is None else None
    if sized is not None:
        out.append(f"a factor in the sizes is missing: the right gradient is {sized} times the claim "
                   "(the same factor at both sizes drawn)")
    return out


def check_equation(expr: str, wrt: str, claimed: str, shapes: Mapping[str, str] | None = None, *,
                   lets: list[str] | None = None) -> EquationCheck:
    """Decide whether ``claimed`` is the gradient of ``expr`` by ``wrt``, exactly at sizes 2 and numerically.

    Examples
    --------
    >>> shapes = {"X": "N x D", "w": "D", "y": "N"}
    >>> f = "-sum(y * log(sigmoid(X @ w)) + (1 - y) * log(1 - sigmoid(X @ w)))"
    >>> check_equation(f, "w", "X.T @ (sigmoid(X @ w) - y)", shapes).ok
    True
    """
    start = time.perf_counter()
    p = Problem(expr, wrt, shapes, lets)
    with notation.names_apart(spelled=notation.printed_alike(p.variables)):  # read as derive-expr prints: lam, λ
        return _decide(p, claimed, shapes, lets, start)


def _decide(p: Problem, claimed: str, shapes: Mapping[str, str] | None, lets: list[str] | None,
            start: float) -> EquationCheck:
    """The verdict on a claim, its numbers and the correction that explains a difference."""
    expr, wrt = p.text, p.wrt
    c = _read_claim(claimed, p)
    truth_d = derive_expression(expr, wrt, shapes, lets=lets, exact=False)
    truth = p.gradient_of(p.forward)
    shown = truth_d.matrix_form  # an index form is answered in index form, beside the matrix form
    if isinstance(c, IndexClaim) and truth_d.index_form.text is not None:
        shown = f"{truth_d.index_lhs.text} = {truth_d.index_form.text}, i.e. {truth_d.matrix_form}"
    checks: list[Verification] = []
    reports: list[object] = []
    if c.shape != p.var.shape:
        return EquationCheck(expr, wrt, claimed, "fail", None, shown, tuple(explain(p, c, truth)),
                             tuple(checks), time.perf_counter() - start)
    sizes = exact_sizes(p)
    exact, worst = exact_difference(p, c, sizes, prove=True)
    detail = {True: "the difference simplifies to 0", False: f"they differ by {worst:.1e} at a rational point",
              None: f"not simplified to 0; equal to 30 digits at two random rational points (<= {worst:.0e})"}[exact]
    checks.append(Verification("claimed gradient", "SymPy's exact derivative at explicit sizes", sizes,
                               float("nan"), exact, detail))
    for seed in _SEEDS:
        v, r = _numeric(p, c, seed)
        checks.append(v)
        reports.append(r)
    numeric = [v.ok for v in checks[1:]]
    if exact is None:  # undecided exactly: the numeric checks decide, and the row says so
        checks[0] = Verification(checks[0].what, checks[0].against, sizes, float("nan"), None, detail)
    if exact is False or False in numeric:
        verdict = "fail"
    elif all(ok is True for ok in numeric):
        verdict = "pass"
    else:
        verdict = "inconclusive"
    explanation = explain(p, c, truth) if verdict == "fail" else []
    if verdict == "fail" and not explanation:
        tested = ("a constant factor, a factor in the sizes, the two indices swapped, the sign"
                  if isinstance(c, IndexClaim) else
                  "a constant factor, a transpose, the sign, a missing sum, a function in place of its derivative")
        explanation = _diagnosis(reports) or [f"no single correction explains the difference (tested: {tested})"]
    return EquationCheck(expr, wrt, claimed, verdict, exact, shown, tuple(explanation), tuple(checks),
                         time.perf_counter() - start, tuple(reports))


def _read_claim(claimed: str, p: Problem) -> Claim:
    """The claim as an index form where it is written in one (∂f/∂w_i =, Σ, X_nd), else in the matrix language."""
    index = False
    try:
        if isinstance(claimed, str):
            claimed = without_matrix_lhs(claimed, p.variables, p.wrt)
            index = looks_like_index_form(claimed, p.variables)
        return parse_index_claim(claimed, p.variables, p.wrt) if index else parse_expression(claimed, p.variables)
    except ExpressionError as exc:
        raise ExpressionError(f"in the claimed {'index form' if index else 'gradient'}: {exc}") from None


def _diagnosis(reports: list[object]) -> list[str]:
    """The numeric checker's causes (its per-entry patterns: a slice, a shift, a missing term), when it found one."""
    out: list[str] = []
    for r in reports:
        for f in getattr(r, "findings", ()):
            if f.severity == "error" and f.kind != "unexplained" and f.message not in out:
                out.append(f.message)
    return out


__all__ = ["ShapeError", "check_equation", "explain"]
