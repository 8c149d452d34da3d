"""Typed matrix expressions against their textbook gradients (the kinds of example matrixcalculus.org shows).

For each: the textbook answer, derivcheck's verified matrix form, whether the two agree
(derivcheck's generated code against the textbook formula written directly in NumPy, at
random sizes), and the derivation time with SymPy's cache cleared (target: at most 2 s).

Run: python benchmarks/bench_expressions.py
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sympy.core.cache import clear_cache

from derivcheck.language.derivation import _run_source, derive_expression

TARGET_SECONDS = 2.0


def _sig(z: Any) -> Any:
    return 1 / (1 + np.exp(-z))


def _softmax(z: Any) -> Any:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class Case:
    name: str
    expr: str
    wrt: str
    shapes: dict[str, str]
    textbook: str
    formula: Callable[..., Any]  # the textbook gradient in NumPy, from the values by name
    order: int = 1


CASES = [
    Case("quadratic form", "x @ A @ x", "x", {"x": "D", "A": "D x D"}, "(A + A^T) x",
         lambda x, A, **_: (A + A.T) @ x, order=2),
    Case("symmetric quadratic form", "x @ A @ x", "x", {"x": "D", "A": "D x D symmetric"}, "2 A x",
         lambda x, A, **_: 2 * A @ x, order=2),
    Case("least squares", "sum((X @ W - Y)**2)", "W", {"X": "N x D", "W": "D x M", "Y": "N x M"}, "2 X^T (X W - Y)",
         lambda X, W, Y, **_: 2 * X.T @ (X @ W - Y)),
    Case("ridge", "sum((X @ w - y)**2) + lam * sum(w**2)", "w", {"X": "N x D", "w": "D", "y": "N", "lam": "scalar"},
         "2 X^T (X w - y) + 2 λ w", lambda X, w, y, lam, **_: 2 * X.T @ (X @ w - y) + 2 * lam * w, order=2),
    Case("logistic regression", "-sum(y * log(sigmoid(X @ w)) + (1 - y) * log(1 - sigmoid(X @ w)))", "w",
         {"X": "N x D", "w": "D", "y": "N"}, "X^T (σ(X w) - y)", lambda X, w, y, **_: X.T @ (_sig(X @ w) - y), order=2),
    Case("softmax regression", "-sum(T * log(softmax(X @ W, axis=1))) / N", "W",
         {"X": "N x D", "W": "D x K", "T": "N x K onehot"}, "X^T (P - T) / N",
         lambda X, W, T, **_: X.T @ (_softmax(X @ W) - T) / X.shape[0]),
    Case("trace of X^T A X", "trace(X.T @ A @ X)", "X", {"X": "D x M", "A": "D x D"}, "(A + A^T) X",
         lambda X, A, **_: (A + A.T) @ X),
    Case("log det", "logdet(X)", "X", {"X": "D x D"}, "X^-T", lambda X, **_: np.linalg.inv(X).T),
    # Sizes typed as numbers: derived as symbols, evaluated at the numbers (never expanded entry by entry).
    Case("log-sum-exp, X: 1000 x 10", "log(sum(exp(X)))", "X", {"X": "1000 x 10"}, "exp(X - logsumexp(X))",
         lambda X, **_: np.exp(X - np.log(np.sum(np.exp(X))))),
    Case("log det, X: 6 x 6", "logdet(X)", "X", {"X": "6 x 6 spd"}, "X^-T", lambda X, **_: np.linalg.inv(X).T),
    Case("norm, x: 100000", "norm2(x)", "x", {"x": "100000"}, "x / ‖x‖", lambda x, **_: x / np.linalg.norm(x)),
    Case("Mahalanobis distance", "(x - mu) @ inv(S) @ (x - mu)", "x", {"x": "D", "mu": "D", "S": "D x D spd"},
         "2 S^-1 (x - μ)", lambda x, mu, S, **_: 2 * np.linalg.solve(S, x - mu)),
]


def _values_at(p: Any, seed: int) -> dict[str, Any]:
    """Values at the sizes typed as numbers."""
    from derivcheck.language.domain import draw_values

    return draw_values(p.variables, p.fixed, np.random.default_rng(seed))


def _agree(case: Case, d: Any) -> bool:
    from derivcheck.language.derivation import Problem

    p = Problem(case.expr, case.wrt, case.shapes, None)
    fn = _run_source(d.code, f"grad_{case.wrt}")
    args = fn.__code__.co_varnames[: fn.__code__.co_argcount]
    for seed in (1, 2, 3):
        _, values = p.draw(seed) if not p.fixed else (None, _values_at(p, seed))
        ours = fn(*[values[a] for a in args])
        theirs = case.formula(**values)
        if not np.allclose(ours, theirs, rtol=1e-10, atol=1e-12):
            return False
    return True


def main() -> int:
    rows, worst, bad = [], 0.0, 0
    for case in CASES:
        clear_cache()
        t0 = time.perf_counter()
        d = derive_expression(case.expr, case.wrt, case.shapes, order=case.order)
        seconds = time.perf_counter() - t0
        agree = d.ok and d.code is not None and _agree(case, d)
        bad += not agree
        worst = max(worst, seconds)
        hessian = f"  H = {d.hessian.text}" if d.hessian is not None and d.hessian.text else ""
        rows.append((case.name, case.textbook, (d.matrix_form or "DEFECT") + hessian, "yes" if agree else "NO",
                     f"{seconds:.2f}"))
    widths = [max(len(r[i]) for r in rows + [("case", "textbook", "derivcheck", "agree", "s")]) for i in range(5)]
    head = ("case", "textbook", "derivcheck (verified)", "agree", "s")
    print("  ".join(h.ljust(w) for h, w in zip(head, widths)))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    print(f"\nslowest derivation: {worst:.2f} s = {worst / TARGET_SECONDS:.2f} x the {TARGET_SECONDS:.0f} s target; "
          f"{len(CASES) - bad}/{len(CASES)} agree with the textbook")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
