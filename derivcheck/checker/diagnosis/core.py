"""Diagnosis as hypothesis tests: the evidence, the table of detectors, and the test itself.

A detector proposes hypotheses about one failing parameter. A hypothesis with a correction
(``corrected``: what the true gradient would be if the hypothesis held) is accepted only if
that correction agrees with every number the run measured: each entry checked one by one
(within its tolerance, or within its valid range at a kink) and each direction that moved
the parameter alone. A pattern hypothesis (no correction: "the errors sit exactly at the rows
of repeated ids") is accepted only on complete per-entry evidence, and must cover every
failing entry. Accepted hypotheses become findings with structured fields; the sentence is
rendered by the detector's own ``describe``, from those fields alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from derivcheck.report.results import Finding


@dataclass(frozen=True)
class Direction:
    """One directional comparison that moved this parameter alone: ``<g, move>`` against ``numeric``."""

    move: np.ndarray  # parameter-shaped
    numeric: float
    low: float  # valid range of <g, move> (equal to numeric off kinks)
    high: float
    tolerance: float


@dataclass(frozen=True)
class LayerContext:
    """What a layer check knows besides the parameter: its tensors by name (inputs, ``"y"`` the output,
    ``"dy"`` the upstream gradient) and its integer inputs (indices, labels)."""

    tensors: Mapping[str, np.ndarray]
    integers: Mapping[str, np.ndarray] = field(default_factory=dict)
    batch: int | None = None  # the length of the batch axis, where there is one


@dataclass
class Evidence:
    """What a detector sees of one failing parameter."""

    name: str
    analytic: np.ndarray  # the user's gradient, parameter-shaped, float64
    point: np.ndarray  # the parameter's value
    checked: np.ndarray  # flat indices with per-entry numbers
    numeric: np.ndarray  # numeric derivative at ``checked`` (the midpoint at a kink)
    low: np.ndarray  # valid range at ``checked``
    high: np.ndarray
    tolerance: np.ndarray
    failed: np.ndarray  # whether each checked entry failed its own test
    directions: list[Direction] = field(default_factory=list)
    context: LayerContext | None = None
    # A fresh direction moving only the entries of a mask (costs loss evaluations; None: not available).
    probe: Callable[[np.ndarray], Direction | None] | None = None
    subject: str = "gradient"  # what d<name> is: "gradient", or "Hessian-vector product" in a second-order check

    @property
    def complete(self) -> bool:
        """Every entry was checked on its own."""
        return self.checked.size == self.analytic.size

    @property
    def kinked(self) -> np.ndarray:
        return self.high > self.low

    def misfit(self, values: np.ndarray) -> np.ndarray:
        """Per checked entry: whether ``values`` (parameter-shaped) lies outside the measured range."""
        v = values.reshape(-1)[self.checked]
        return (v < self.low - self.tolerance) | (v > self.high + self.tolerance)

    @property
    def failing(self) -> np.ndarray:
        return self.failed

    def explains(self, corrected: np.ndarray, known: np.ndarray | None = None) -> bool:
        """Whether a hypothesised true gradient agrees with every number measured for this parameter
        (only on the entries ``known`` where the hypothesis says what the true value is), and among them
        with at least one that the analytic gradient failed."""
        if corrected.shape != self.analytic.shape or not np.all(np.isfinite(corrected)):
            return False
        where = np.ones(self.checked.size, bool) if known is None else known.reshape(-1)[self.checked]
        if self.misfit(corrected)[where].any():
            return False
        directions = self.directions if known is None else [d for d in self.directions if not np.any(d.move[~known])]
        if known is not None and not directions and self.probe is not None and not self.complete:
            fresh = self.probe(known)
            directions = [fresh] if fresh is not None else []
        # The hypothesis must account for the failure, not only agree with the numbers that passed: among the
        # numbers it is tested on, at least one failed with the analytic gradient (an entry or a direction).
        failure_tested = bool(self.failing[where].any())
        for d in directions:
            value = float(np.vdot(corrected, d.move))
            if value < d.low - d.tolerance or value > d.high + d.tolerance:
                return False
            analytic = float(np.vdot(self.analytic, d.move))
            failure_tested |= analytic < d.low - d.tolerance or analytic > d.high + d.tolerance
        return failure_tested

    def independent(self) -> np.ndarray:
        """Checked entries the loss does not depend on (zero within tolerance, no kink)."""
        return (np.abs(self.numeric) <= self.tolerance) & ~self.kinked


@dataclass(frozen=True)
class Hypothesis:
    """A proposed cause: its kind's fields, and the correction it implies (None for a pattern)."""

    kind: str
    corrected: np.ndarray | None = None
    entries: tuple[tuple[int, ...], ...] = ()
    factor: float | None = None
    axis: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    covers: np.ndarray | None = None  # pattern: the flat indices it accounts for
    known: np.ndarray | None = None  # a correction that holds only on these entries (a mask); None: on all


Finder = Callable[[Evidence], Iterable[Hypothesis]]
Describer = Callable[[str, Hypothesis], str]


@dataclass(frozen=True)
class Detector:
    """One entry of the table: a kind, its finder and its sentence."""

    kind: str
    find: Finder
    describe: Describer


DETECTORS: list[Detector] = []


def detector(kind: str, describe: Describer) -> Callable[[Finder], Finder]:
    """Register a detector: ``@detector("sign", describe=...)`` over a function of the evidence."""

    def register(find: Finder) -> Finder:
        DETECTORS.append(Detector(kind, find, describe))
        return find

    return register


def accepted(e: Evidence, h: Hypothesis) -> bool:
    """The test every hypothesis must pass before it is printed."""
    if h.corrected is not None:
        return e.explains(h.corrected, h.known)
    if h.covers is None or not e.complete:
        return False
    failing = set(e.checked[e.failing].tolist())
    return bool(failing) and failing <= set(np.asarray(h.covers).tolist())


def diagnose(e: Evidence) -> tuple[list[Finding], list[str]]:
    """The findings whose hypotheses explain the evidence (corrections first, then patterns), and the kinds
    that were tested here (a detector with nothing to propose, such as one that needs a layer's tensors, was not)."""
    corrections: list[Finding] = []
    patterns: list[Finding] = []
    tried: list[str] = []
    for d in DETECTORS:
        for k, h in enumerate(d.find(e)):
            if k == 0:
                tried.append(d.kind)  # only kinds that could be tested here count as ruled out
            if accepted(e, h):
                (corrections if h.corrected is not None else patterns).append(_finding(e, d, h))
                break
        if corrections:
            break  # one correction that explains every number is the answer; weaker ones would only repeat it
    return (corrections or patterns), tried


def _finding(e: Evidence, d: Detector, h: Hypothesis) -> Finding:
    detail = {**h.detail, "subject": e.subject}
    described = Hypothesis(h.kind, h.corrected, h.entries, h.factor, h.axis, detail, h.covers, h.known)
    return Finding(h.kind, d.describe(e.name, described), e.name, "error", h.entries, h.factor, h.axis, detail)
