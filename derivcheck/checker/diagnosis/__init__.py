"""Naming the cause of a wrong gradient: hypotheses tested against the numbers (``core``), the
table of detectors (``detectors``), degeneracies of the point that weaken a pass (``degenerate``),
and the hints for wrong shapes (``shapes``).
"""

from __future__ import annotations

import numpy as np

from derivcheck.checker.diagnosis import detectors as _detectors  # noqa: F401 - registers the table
from derivcheck.checker.diagnosis.core import DETECTORS, Direction, Evidence, Hypothesis, LayerContext, detector, diagnose
from derivcheck.checker.diagnosis.shapes import shape_hint
from derivcheck.report.gradient import format_index
from derivcheck.report.results import Finding

__all__ = ["DETECTORS", "Direction", "Evidence", "Hypothesis", "LayerContext", "detector", "diagnose", "explain",
           "shape_hint", "wrong_entries_finding", "known_finding"]


def explain(e: Evidence) -> list[Finding]:
    """The findings that explain a failing parameter, or, when none does, what is known about it."""
    findings, tried = diagnose(e)
    return findings or [known_finding(e, tried)]


def wrong_entries_finding(name: str, shape: tuple[int, ...], wrong: list[tuple[int, ...]], complete: bool) -> Finding:
    """A finding that lists localized wrong entries."""
    listed = ", ".join(format_index(name, i) for i in wrong[:5])
    more = "" if complete else " (search stopped: there may be more)"
    total = int(np.prod(shape))
    if len(wrong) == 1:
        msg = f"exactly one entry of d{name} is wrong: {listed} (out of {total}){more}."
    else:
        msg = f"{len(wrong)} entries of d{name} are wrong: {listed}{more}."
    return Finding("wrong_entries", msg, name, "error", tuple(tuple(i) for i in wrong))


def known_finding(e: Evidence, tried: list[str]) -> Finding:
    """No hypothesis explains the numbers: say which entries fail, how, and which causes were ruled out."""
    failing = e.checked[e.failing]
    ruled_out = ", ".join(k.replace("_", " ") for k in tried if k not in ("loss_independent", "zero"))
    if failing.size:
        a = e.analytic.reshape(-1)[failing]
        n = e.numeric[e.failing]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = a / n
        finite = ratios[np.isfinite(ratios)]
        spread = (f"; analytic/true ranges from {finite.min():.3g} to {finite.max():.3g}" if finite.size > 1 else "")
        where = ", ".join(format_index(e.name, tuple(int(i) for i in np.unravel_index(int(f), e.analytic.shape)))
                          for f in failing[:4])
        of = "every entry" if e.complete else "the sampled entries"
        known = (f"{failing.size} of {e.checked.size} entries checked fail ({of} checked: {where}"
                 f"{', ...' if failing.size > 4 else ''}){spread}")
    else:
        known = _passing_entries_known(e)
    return Finding("unexplained", f"d{e.name}: {known}. No single cause explains these numbers (ruled out: "
                                  f"{ruled_out}).", e.name, "error", _indices(e, failing))


def _passing_entries_known(e: Evidence) -> str:
    """What is known when directions fail but every entry checked alone is within its range: no cause, only facts."""
    checked, total, kinked = e.checked.size, e.analytic.size, int(e.kinked.sum())
    known = (f"it fails along directions, yet each of the {checked} entries checked one by one (of {total}) lies "
             f"within its own valid range")
    if kinked:
        known += (f"; {kinked} of them sit at kinks, where entries can each be valid alone and wrong together "
                  f"(the shares of a tie must add up to one upstream value)")
    if not e.complete:
        return known + f"; the error may sit in the {total - checked} entries not checked one by one"
    return known + "; so the error is below each entry's own tolerance and shows only in their sum"


def _indices(e: Evidence, flat: np.ndarray) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(int(i) for i in np.unravel_index(int(f), e.analytic.shape)) for f in flat[:64])
