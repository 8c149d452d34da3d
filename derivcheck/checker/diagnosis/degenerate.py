"""Degeneracies of the checked point: warnings that weaken a pass, never errors.

A check at a symmetric point (identical rows or columns, from a constant initialisation)
cannot tell apart bugs that treat those units alike; a unit that receives no gradient at
all (a dead ReLU) has its formula untested. Each warning is read off the arrays themselves.
"""

from __future__ import annotations

import numpy as np

from derivcheck.report.results import Finding


def _identical_lines(a: np.ndarray) -> tuple[str, int] | None:
    if a.ndim != 2 or a.size < 4:
        return None
    if a.shape[0] > 1 and np.all(a == a[:1]) and np.any(a):
        return "rows", a.shape[0]
    if a.shape[1] > 1 and np.all(a == a[:, :1]) and np.any(a):
        return "columns", a.shape[1]
    return None


def symmetric_point(name: str, value: np.ndarray) -> Finding | None:
    """All rows (or all columns) of a parameter are identical."""
    found = _identical_lines(value)
    if found is None:
        return None
    lines, n = found
    return Finding(
        "symmetric_point", f"all {n} {lines} of {name} are identical (a constant or symmetric initialisation): "
        f"units that start alike get alike gradients, so a bug that treats them alike (a wrong index among them, "
        f"a sum where each needs its own term) cannot show. Check at a random point as well.", name, "warning",
        detail={"lines": lines})


def dead_units(name: str, shape: tuple[int, ...], dead: np.ndarray) -> Finding | None:
    """Columns of a passing 2-D gradient that are exactly zero while others are not (units that never fire); ``dead``
    are the indices of its zero columns (``zero_columns``)."""
    if len(shape) != 2 or shape[1] < 2:
        return None
    if dead.size == 0 or dead.size == shape[1]:
        return None
    cols = ", ".join(map(str, dead[:6])) + (" ..." if dead.size > 6 else "")
    return Finding(
        "dead_units", f"columns {cols} of d{name} are exactly zero, and so is the loss's dependence on them: those "
        f"units never fire at this point (dead ReLUs?), so the check says nothing about their part of the formula.",
        name, "warning", entries=tuple((int(c),) for c in dead), axis=1)


def zero_columns(gradient: np.ndarray) -> np.ndarray:
    """The indices of a 2-D gradient's columns that are exactly zero (none for another shape)."""
    if gradient.ndim != 2:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(~np.any(gradient, axis=0))
