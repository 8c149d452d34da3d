"""Group testing: find the few wrong entries of a large gradient by bisection.

The discrepancy ``e(S) = <g, v_S> - dL/dt(x + t v_S)`` of a directional check restricted to an
index set ``S`` is additive over disjoint sets, because both terms are linear in the
direction. So when ``S`` splits into halves ``L`` and ``R``, measuring ``e(L)`` also gives
``e(R) = e(S) - e(L)``: one measurement per level, and one wrong entry among ``N`` is found
with about ``log2 N`` directional checks instead of ``N`` coordinate checks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

# Beyond this many wrong entries the error is "spread", and listing entries stops helping.
MAX_LOCALIZED = 8
# An inferred discrepancy within this fraction of its (inflated) tolerance of the bar is
# ambiguous: it is measured rather than trusted.
_AMBIGUOUS = 1.0 / 3.0

Measure = Callable[[np.ndarray], tuple[float, float]]


@dataclass
class Localization:
    """What bisection found: wrong flat indices, and whether the search finished."""

    wrong: list[int] = field(default_factory=list)
    complete: bool = True
    spread: bool = False
    tests: int = 0


def bisect_wrong_entries(
    indices: np.ndarray,
    measure: Measure,
    root: tuple[float, float],
    max_tests: int,
) -> Localization:
    """Find the entries of ``indices`` that make the (failing) directional check fail.

    ``measure(S)`` returns ``(discrepancy, tolerance)`` of the check restricted to ``S``;
    ``root`` is that pair for the whole set. Single entries are always measured, so an
    inferred failure never becomes a reported entry.

    Examples
    --------
    >>> bad = {737: 1.0}
    >>> m = lambda s: (sum(bad.get(i, 0.0) for i in s.tolist()), 1e-3)
    >>> loc = bisect_wrong_entries(np.arange(1000), m, (1.0, 1e-3), 100)
    >>> loc.wrong, loc.complete, loc.tests <= 11
    ([737], True, True)
    """
    result = Localization()
    # (subset, discrepancy, tolerance, measured directly)
    stack: list[tuple[np.ndarray, float, float, bool]] = [(indices, root[0], root[1], True)]

    def run(s: np.ndarray) -> tuple[float, float]:
        result.tests += 1
        return measure(s)

    while stack:
        if len(result.wrong) >= MAX_LOCALIZED:
            result.complete, result.spread = False, True
            break
        if result.tests >= max_tests:
            result.complete = False
            break
        subset, err, tol, measured = stack.pop()
        if not measured and abs(err) <= tol * (1 + _AMBIGUOUS):
            err, tol = run(subset)
            measured = True
            if abs(err) <= tol:
                continue
        if len(subset) == 1:
            if not measured:
                err, tol = run(subset)
            if abs(err) > tol:
                result.wrong.append(int(subset[0]))
            else:
                result.spread = True  # the parent failed, yet no entry does on its own
            continue
        half = len(subset) // 2
        left, right = subset[:half], subset[half:]
        e_left, t_left = run(left)
        # Independent estimates: their uncertainties add in quadrature.
        e_right, t_right = err - e_left, math.hypot(tol, t_left)
        if abs(e_right) > t_right * (1 - _AMBIGUOUS):
            stack.append((right, e_right, t_right, False))
        if abs(e_left) > t_left:
            stack.append((left, e_left, t_left, True))
    result.wrong.sort()
    return result
