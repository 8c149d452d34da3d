"""Name the line where a hand-written backward pass goes wrong, and why (issue 19).

``blame_lines(loss, grad, params)`` traces the user's own forward and backward code, measures
the true adjoint of each forward array by finite differences, matches the backward's arrays to
them by value, blames the first line whose result is wrong while everything it reads is right,
confirms it by repairing that one value, and names the cause only when a corrected line
reproduces the true values entry by entry. Self-contained: standard library and numpy only.
"""

from __future__ import annotations

import linecache
import warnings
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from derivcheck.checker.lines.engine import blame_lines
from derivcheck.report.gradient import render_line_blame
from derivcheck.report.results import LineBlame

__all__ = ["LineBlame", "blame_lines", "render_line_blame", "trace_failure"]


def trace_failure(loss: Callable[[Any], Any], grad: Callable[[Any], Any], params: Any, seed: int,
                  failed: tuple[str, ...] = (), focus: tuple = ()) -> LineBlame:
    """``blame_lines`` for a check that failed ``failed``; whatever the user's code does under tracing, a result,
    never a crash."""
    try:
        # Perturbed re-runs overflow and divide where the user's point never does: numpy's warnings there are
        # about our probes, not the user's code, and the check already reported what it saw at the point.
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            blame = blame_lines(loss, grad, params, seed=seed, failed=failed, focus=focus)
    except Exception as exc:  # noqa: BLE001 - tracing is a second opinion: its failure must not hide the check's report
        return LineBlame("unreadable", reason=f"tracing your code stopped: {type(exc).__name__}: {exc}")
    if blame.file is None or blame.line is None:
        return blame
    return replace(blame, listing=_listing(blame.file, blame.line))


# Lines of source shown on each side of the wrong line (HTML and notebooks mark it among them).
LISTING_CONTEXT = 6


def _listing(file: str, line: int) -> tuple[tuple[int, str], ...]:
    """The source around ``line``, as it was read for the trace (linecache also holds notebook cells)."""
    lines = linecache.getlines(file)
    first, last = max(1, line - LISTING_CONTEXT), min(len(lines), line + LISTING_CONTEXT)
    return tuple((n, lines[n - 1].rstrip("\n")) for n in range(first, last + 1))
