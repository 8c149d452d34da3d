"""Naming the usual hand-derivation mistakes from analytic/numeric pairs.

Each detector is registered with ``@mistake(kind)`` and looks at one parameter: the full
analytic gradient and numeric values at some entries (all entries for small parameters,
a random sample plus transposed partners for large ones). The first detector that
explains the data wins; detectors are ordered from the most to the least specific.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from derivcheck.report.gradient import Finding
from derivcheck.vspace import format_index


@dataclass(frozen=True)
class Evidence:
    """What a detector sees of one parameter."""

    name: str
    analytic: np.ndarray  # the user's gradient, full, parameter-shaped
    indices: np.ndarray  # flat indices where ``numeric`` is known
    numeric: np.ndarray  # finite-difference gradient at ``indices``
    tolerance: np.ndarray  # per-entry tolerance at ``indices``
    partner_numeric: dict[int, float]  # numeric value at the transposed index, where known

    @property
    def sampled_analytic(self) -> np.ndarray:
        return self.analytic.reshape(-1)[self.indices]

    def close(self, a: np.ndarray, n: np.ndarray, slack: float = 1.0) -> bool:
        return bool(np.all(np.abs(a - n) <= slack * self.tolerance))


Detector = Callable[[Evidence], Finding | None]
MISTAKES: list[tuple[str, Detector]] = []


def mistake(kind: str) -> Callable[[Detector], Detector]:
    """Register a detector for one kind of mistake."""

    def register(fn: Detector) -> Detector:
        MISTAKES.append((kind, fn))
        return fn

    return register


def diagnose(evidence: Evidence) -> list[Finding]:
    """The finding of the first detector that explains the evidence (or a generic one)."""
    for _kind, detect in MISTAKES:
        found = detect(evidence)
        if found is not None:
            return [found]
    return []


def _significant(e: Evidence) -> np.ndarray:
    return np.abs(e.numeric) > e.tolerance


@mistake("zero")
def _all_zero(e: Evidence) -> Finding | None:
    if np.any(e.analytic != 0) or not np.any(_significant(e)):
        return None
    return Finding(
        "zero",
        f"d{e.name} is all zeros but the loss does depend on {e.name} (numeric entries up to "
        f"{np.max(np.abs(e.numeric)):.3g}): the gradient is never written, or is overwritten by a "
        f"fresh zeros array / an assignment instead of +=.",
        e.name,
    )


# Ratios recognised as "a factor"; beyond this a count is not a plausible explanation.
_MAX_COUNT = 4096
# A ratio fit must hold to this relative precision to be called a constant factor.
_RATIO_PRECISION = 1e-3


def _constant_ratio(e: Evidence) -> float | None:
    sig = _significant(e)
    if sig.sum() < 1:
        return None
    n, a = e.numeric[sig], e.sampled_analytic[sig]
    c = float(np.dot(a, n) / np.dot(n, n))
    if not np.isfinite(c) or c == 0:
        return None
    if not e.close(e.sampled_analytic, c * e.numeric, slack=1.0 + abs(c)):
        return None
    return c


def _as_fraction(c: float) -> Fraction | None:
    f = Fraction(c).limit_denominator(_MAX_COUNT)
    if f not in (0, 1) and abs(float(f) - c) <= _RATIO_PRECISION * abs(c):
        if abs(f.numerator) == 1 or f.denominator == 1:
            return f
    return None


@mistake("sign")
def _sign(e: Evidence) -> Finding | None:
    c = _constant_ratio(e)
    if c is None or abs(c + 1) > _RATIO_PRECISION:
        return None
    return Finding(
        "sign",
        f"d{e.name} has the wrong sign (analytic = -numeric): a subtraction in the wrong order "
        f"(y - t versus t - y), or the descent step's minus sign put into the gradient.",
        e.name,
    )


@mistake("scale")
def _scale(e: Evidence) -> Finding | None:
    c = _constant_ratio(e)
    return None if c is None else scale_finding(e.name, c)


def scale_finding(name: str, c: float) -> Finding:
    """Name a constant factor between the analytic and the true gradient."""
    f = _as_fraction(abs(c))
    sign = " and the wrong sign" if c < 0 else ""
    if f == Fraction(1, 2):
        why = "missing factor 2 of the squared error? d/dz z^2 = 2z"
        head = "half the true gradient"
    elif f == 2:
        why = "the loss has a 1/2 (0.5 * sum(r**2)) that the gradient misses, or a term is counted twice"
        head = "twice the true gradient"
    elif f is not None and f.denominator == 1:
        k = f.numerator
        head = f"{k} times the true gradient"
        why = f"missing 1/N of a mean loss? (N = {k}: the batch size or number of averaged terms)"
    elif f is not None:
        k = f.denominator
        head = f"1/{k} of the true gradient"
        why = f"divided by N = {k} although the loss is a sum, or a sum over {k} terms (the batch axis?) is missing"
    elif abs(abs(c) - 1) < _RATIO_PRECISION:
        head = f"off by a uniform relative error of {abs(c) - 1:+.2g}"
        why = "a slightly wrong constant (an epsilon, a regularization weight, a rounded coefficient?)"
    else:
        head = f"{abs(c):.6g} times the true gradient"
        why = "a constant factor is wrong (a learning rate, a temperature or a regularization weight?)"
    return Finding("scale", f"d{name} is {head}{sign}: {why}.", name)


@mistake("transpose")
def _transposed(e: Evidence) -> Finding | None:
    a = e.analytic
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] < 2 or not e.partner_numeric:
        return None
    idx = [i for i in e.indices.tolist() if i in e.partner_numeric]
    if not idx:
        return None
    flat = a.reshape(-1)
    partner = np.array([e.partner_numeric[i] for i in idx])
    pos = {i: k for k, i in enumerate(e.indices.tolist())}
    tol = e.tolerance[[pos[i] for i in idx]]
    mine = flat[idx]
    if np.all(np.abs(mine - partner) <= tol) and not np.allclose(a, a.T):
        return Finding(
            "transpose",
            f"d{e.name} is transposed: analytic d{e.name}[i, j] equals the numeric d{e.name}[j, i]. "
            f"For Y = X @ W the gradient is X.T @ dY (shape of W), not dY.T @ X.",
            e.name,
        )
    return None


@mistake("first_sample_only")
def _first_row_only(e: Evidence) -> Finding | None:
    a = e.analytic
    if a.ndim < 2 or a.shape[0] < 2:
        return None
    rows = np.unravel_index(e.indices, a.shape)[0]
    ok = np.abs(e.sampled_analytic - e.numeric) <= e.tolerance
    if not np.any(rows == 0) or not np.any(rows > 0):
        return None
    if np.all(ok[rows == 0]) and not np.any(ok[(rows > 0) & _significant(e)]):
        return Finding(
            "first_sample_only",
            f"only row 0 of d{e.name} is right; rows 1.. are wrong: the gradient was computed for "
            f"the first sample (or time step) only - loop or sum over the whole batch axis.",
            e.name,
        )
    return None


@mistake("rows")
def _confined_to_lines(e: Evidence) -> Finding | None:
    a = e.analytic
    if a.ndim != 2 or e.indices.size < a.size:
        return None
    bad = ~(np.abs(e.sampled_analytic - e.numeric) <= e.tolerance)
    grid = np.zeros(a.size, dtype=bool)
    grid[e.indices[bad]] = True
    grid = grid.reshape(a.shape)
    bad_rows, bad_cols = np.flatnonzero(grid.any(1)), np.flatnonzero(grid.any(0))
    if grid.sum() < 2:
        return None
    if len(bad_rows) == 1 and a.shape[0] > 1:
        return Finding("rows", f"the errors in d{e.name} are confined to row {bad_rows[0]}.", e.name)
    if len(bad_cols) == 1 and a.shape[1] > 1:
        return Finding("rows", f"the errors in d{e.name} are confined to column {bad_cols[0]}.", e.name)
    return None


def wrong_entries_finding(name: str, shape: tuple[int, ...], wrong: list[tuple[int, ...]], complete: bool) -> Finding:
    """A finding that lists localized wrong entries."""
    listed = ", ".join(format_index(name, i) for i in wrong[:5])
    more = "" if complete else " (search stopped: there may be more)"
    total = int(np.prod(shape))
    if len(wrong) == 1:
        msg = f"exactly one entry of d{name} is wrong: {listed} (out of {total}){more}. An indexing slip or an off-by-one?"
    else:
        msg = f"{len(wrong)} entries of d{name} are wrong: {listed}{more}."
    return Finding("wrong_entries", msg, name)


def generic_finding(name: str, rel_error: float) -> Finding:
    """The fallback when no known mistake explains a failure."""
    return Finding(
        "unexplained",
        f"d{name} differs from the finite differences (max relative error {rel_error:.2g}) in a way that "
        f"is not a constant factor, sign, transpose or batch slip: re-derive this parameter's chain rule.",
        name,
    )


def shape_hint(got: tuple[int, ...], expected: tuple[int, ...]) -> str | None:
    """Why a gradient might have the wrong shape, or None."""
    if len(got) == len(expected) + 1 and tuple(got[1:]) == tuple(expected):
        return f"sum over axis 0 (the batch axis): d = dy.sum(axis=0) has shape {expected}"
    if len(got) == len(expected) + 1 and tuple(got[:-1]) == tuple(expected):
        return "sum over the last axis"
    if len(got) == 2 and len(expected) == 1 and got[1] == expected[0] and got[0] == 1:
        return "drop the leading axis of length 1 (keepdims=True?)"
    if len(got) == len(expected) == 2 and tuple(got) == tuple(expected[::-1]):
        return "the gradient is transposed: for Y = X @ W use X.T @ dY"
    if int(np.prod(got)) == int(np.prod(expected)):
        return f"same number of entries: reshape to {expected}?"
    return None
