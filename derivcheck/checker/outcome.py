"""The working records of one check, shared by its stages (the report types are in ``report``)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from derivcheck.checker.diagnosis import LayerContext
from derivcheck.checker.evaluation import Setup
from derivcheck.numeric.directional import Blocks, DirectionalTest, LineReading, Probe
from derivcheck.report.results import DirectionCheck, Finding, Kink, ParamReport, WrongEntry


@dataclass
class Tested:
    """A direction and its test; ``label`` names it in the report."""

    label: str
    moves: Blocks
    test: DirectionalTest
    trace: list[tuple[float, float]] = field(default_factory=list)  # (t, L(x + t v)) as evaluated

    def as_check(self) -> DirectionCheck:
        d = self.test.derivative
        kind = "jump" if d.jump else ("kink" if d.kink else ("refined" if d.refined else "smooth"))
        if self.test.resolution == "kinks in the stencil":
            kind = "kinks"  # decides nothing: shown like a jump
        return DirectionCheck(self.label, tuple(self.moves), self.test.analytic, d.value, self.test.tolerance,
                              d.step, kind, self.test.passed)


@dataclass
class ParamOutcome:
    """One parameter's row, its localized wrong entries and its findings."""

    report: ParamReport
    wrong: list[WrongEntry] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    # ``wrong`` names every wrong entry (each entry checked, or the search complete), not a sample's failures: the
    # other entries are known right.
    complete: bool = False


@dataclass
class Run:
    """Everything a check accumulates: the setup, the probe, the tests made and the kinks met."""

    setup: Setup
    probe: Probe
    rng: np.random.Generator
    mode: str
    tested: list[Tested] = field(default_factory=list)
    kinks: list[Kink] = field(default_factory=list)
    full: dict[str, ParamOutcome] = field(default_factory=dict)  # per-entry checks made, by parameter
    context: LayerContext | None = None  # a layer check's tensors, for the diagnosis
    # Localization lines drawn and read with the joint ones, where the gradient is let go of during loss calls (one
    # fetch for all), with the precisions they were read at: a reading is stale once those change.
    spare: list[tuple[Blocks, LineReading]] = field(default_factory=list)
    spare_read_at: tuple[float, float] = (0.0, 0.0)

    def record(self, label: str, moves: Blocks, test: DirectionalTest, param: str | None = None,
               index: tuple[int, ...] | None = None, trace: list[tuple[float, float]] | None = None) -> DirectionalTest:
        """Keep a test (and its kink) for the report."""
        if index is None:
            self.tested.append(Tested(label, moves, test, trace or []))
        self._note_kink(label, test, param, index)
        return test

    def rejudge(self, k: int, test: DirectionalTest) -> None:
        """Replace the ``k``-th direction's test with a second judgement of it (and note its kink)."""
        self.tested[k] = replace(self.tested[k], test=test)
        self._note_kink(self.tested[k].label, test, None, None)

    def _note_kink(self, label: str, test: DirectionalTest, param: str | None, index: tuple[int, ...] | None) -> None:
        d = test.derivative
        if d.kink:
            lo, hi = min(d.forward, d.backward), max(d.forward, d.backward)
            valid = test.passed and test.resolution != "unresolved"
            self.kinks.append(Kink(param, index, test.analytic, lo, hi, valid, label if index is None else "",
                                   test.resolution))
