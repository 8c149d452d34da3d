"""Entry by entry: per-entry checks of a parameter, and its row, wrong entries and diagnosis.

Per-entry checks cost a ladder (four loss evaluations or more) per entry, so a check makes
them only where that is small against the model's cost: for every entry in ``mode="full"``,
and for a small parameter whose joint directions failed.
"""

from __future__ import annotations

import numpy as np

from derivcheck.checker.diagnosis import diagnose, known_finding, wrong_entries_finding
from derivcheck.checker.evidence import gather
from derivcheck.checker.joint import (block_floor, discontinuity_finding, expected_error, single_entry_floor,
                                      undecided_finding)
from derivcheck.numeric.directional import DirectionalTest, directional_test, entry_reading
from derivcheck.numeric.localize import MAX_LOCALIZED
from derivcheck.numeric.regenerated import LARGE_ENTRIES, Regenerated, unit_entry
from derivcheck.checker.outcome import ParamOutcome, Run
from derivcheck.report.results import Finding, ParamReport, WrongEntry
from derivcheck.numeric.tolerances import INCONCLUSIVE_FLOOR, entry_scale
from derivcheck.checker.parameters import flat_index

# A failing parameter gets per-entry checks up to this many entries (about 4 loss
# evaluations each); a larger one is localized by bisection instead.
ENTRY_CHECK_MAX_ENTRIES = 64


def unit(shape: tuple[int, ...], flat: int, scale: float) -> np.ndarray | Regenerated:
    """The direction of one entry, at its scale (made when read, for a large parameter: a whole array of zeros
    would be one more array of the parameter's size alive at every loss call)."""
    if int(np.prod(shape, dtype=np.int64)) >= LARGE_ENTRIES:
        return unit_entry(shape, flat, scale)
    v = np.zeros(int(np.prod(shape, dtype=np.int64)))
    v[flat] = scale
    return v.reshape(shape)


def entry_test(run: Run, name: str, flat: int) -> DirectionalTest:
    """The check of one entry (its kink, if any, is recorded)."""
    x = run.setup.x[name]
    scale = float(entry_scale(x.reshape(-1)[flat]))  # one entry's scale, not the whole array's
    moves = {name: unit(x.shape, flat, scale)}
    g, reading = run.setup.g, None
    if g.lean and (run.probe.grad_spread is None or name not in run.probe.grad_spread):
        # From the entries and root mean square kept of a gradient let go of: no fetch for a read entry.
        reading = entry_reading(run.probe, scale, float(g.entries(name, np.array([flat]))[0]), g.rms(name),
                                float(x.reshape(-1)[flat]))
    return run.record("", moves, directional_test(run.probe, g, moves, reading=reading), name,
                      flat_index(x.shape, flat))


def full_check(run: Run, name: str) -> ParamOutcome:
    """Every entry of ``name``, with its row and diagnosis."""
    x = run.setup.x[name]
    tests = [entry_test(run, name, i) for i in range(x.size)]
    return summarize(run, name, "full", np.arange(x.size), tests)


def summarize(run: Run, name: str, method: str, indices: np.ndarray, tests: list[DirectionalTest],
              localized: bool = False, extra_checked: int = 0) -> ParamOutcome:
    """Row, wrong entries and diagnosis from the per-entry tests at ``indices``."""
    s = run.setup
    x = s.x[name]
    scales = entry_scale(x.reshape(-1)[indices])
    analytic = s.g.entries(name, indices)
    numeric = np.array([t.derivative.value if t.decides else np.nan for t in tests]) / scales
    tol = np.array([t.tolerance for t in tests]) / scales
    own = np.array([t.own_tolerance for t in tests]) / scales  # the differences' power, without the user's rtol/atol
    # An entry along which the loss jumps has no derivative: it measures nothing, and its numbers are not shown.
    dist = np.array([t.distance if t.decides else 0.0 for t in tests]) / scales
    failed = np.array([not t.passed for t in tests])
    kinked = np.array([t.derivative.kink for t in tests])
    rel = dist / np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), np.finfo(float).tiny)
    worst = int(np.argmax(dist / np.maximum(tol, np.finfo(float).tiny))) if len(tests) else 0
    # A kink entry lets an error through as long as it stays in the valid range: an error is sure
    # to be seen, whatever its sign, once it exceeds the range's width plus the tolerance.
    width = np.array([abs(t.derivative.forward - t.derivative.backward) if t.derivative.kink else 0.0
                      for t in tests]) / scales
    seen = np.where(kinked, np.abs(analytic), np.abs(numeric))
    significant = seen > own + width
    floor = float(np.min((own + width)[significant] / seen[significant])) if significant.any() else float("inf")
    floor = min(floor, block_floor(run, name))  # the directions that moved it, ties unbroken, count too
    # An entry at a kink is judged as a subgradient (its valid range is listed with the kinks), and one whose
    # ladder stepped past a kink a hair away (1e-12) is as good as at it; the others must each have seen an
    # error of the expected size.
    near = np.array([t.derivative.kink or t.derivative.refined for t in tests], dtype=bool)
    single = _single_entry_floor(run, name, indices, np.where(near, 0.0, own))
    outcome = ParamOutcome(ParamReport(
        name, tuple(x.shape), str(s.space.dtypes[s.space.names.index(name)]), method, len(tests) + extra_checked,
        float(np.max(dist)) if len(dist) else 0.0, float(np.nanmax(rel)) if np.any(np.isfinite(rel)) else (np.nan if len(rel) else 0.0),
        flat_index(x.shape, int(indices[worst])) if len(tests) else None,
        float(analytic[worst]) if len(tests) else 0.0, float(numeric[worst]) if len(tests) else 0.0, floor, "pass",
        single_entry_floor=single))
    outcome.complete = localized or indices.size == x.size
    if failed.any():
        _fail(run, outcome, indices, tests, analytic, numeric, tol, failed, kinked, localized)
    else:
        _undecided(run, outcome, indices, tests, floor, single)
    return outcome


def _undecided(run: Run, outcome: ParamOutcome, indices: np.ndarray, tests: list[DirectionalTest], floor: float,
               single: float) -> None:
    """A parameter whose entry checks all passed: inconclusive, with its reason said in the diagnosis, where some
    entry decided nothing (coincident kinks, a jump) or a full check fell short of the power a pass needs."""
    name = outcome.report.name
    x = run.setup.x[name]
    jumps = [int(indices[k]) for k, t in enumerate(tests) if t.resolution == "discontinuous"]
    undecided = [int(indices[k]) for k, t in enumerate(tests) if t.resolution == "unresolved"]
    full = outcome.report.method == "full" and run.setup.g.top(name) > 0
    if undecided:
        entries = tuple(flat_index(x.shape, i) for i in undecided)
        reason = (f"at {len(undecided)} entr{'y' if len(undecided) == 1 else 'ies'} of {name} ({', '.join(map(str, entries[:3]))}"
                  f"{' ...' if len(entries) > 3 else ''}) kinks coincide too many to separate, and the analytic value lies "
                  f"outside the hull of the pieces gathered nearby: undecided, not a pass")
        finding = undecided_finding(name, reason, entries)
    elif jumps:
        entries = tuple(flat_index(x.shape, i) for i in jumps)
        reason = (f"the loss jumps along {len(jumps)} entr{'y' if len(jumps) == 1 else 'ies'} of {name} "
                  f"({', '.join(map(str, entries[:3]))}{' ...' if len(entries) > 3 else ''}): no derivative exists there")
        finding = discontinuity_finding(name, entries)
    elif full and floor > INCONCLUSIVE_FLOOR:
        reason = f"the smallest relative error the entry checks could see in d{name} is {floor:.1e}"
        finding = Finding("noise", f"inconclusive for {name}: {reason}, above the {INCONCLUSIVE_FLOOR:.0e} a pass "
                                   f"needs.", name, "warning")
    elif full and single > expected_error(run, name):
        reason = (f"one wrong entry of d{name} would have been seen only above {single:.1e} of its largest entry, "
                  f"more than the {expected_error(run, name):.0e} expected")
        finding = Finding("noise", f"inconclusive for {name}: {reason}.", name, "warning")
    else:
        return
    outcome.report = with_changes(outcome.report, verdict="inconclusive", reason=reason)
    outcome.findings.append(finding)


def _single_entry_floor(run: Run, name: str, indices: np.ndarray, seen_above: np.ndarray) -> float:
    """Every entry checked alone: the largest of their own floors, as a fraction of the largest |entry|; else
    what the directions that moved ``name`` saw."""
    top = run.setup.g.top(name)
    if len(indices) == run.setup.x[name].size and len(indices) and top > 0:
        return float(np.max(seen_above)) / top
    return single_entry_floor(run, name)


def _fail(run: Run, outcome: ParamOutcome, indices: np.ndarray, tests: list[DirectionalTest], analytic: np.ndarray,
          numeric: np.ndarray, tol: np.ndarray, failed: np.ndarray, kinked: np.ndarray, localized: bool) -> None:
    name = outcome.report.name
    x = run.setup.x[name]
    outcome.report = with_changes(outcome.report, verdict="fail")
    bad = np.flatnonzero(failed)
    order = bad[np.argsort(-(np.abs(analytic[bad] - numeric[bad]) / np.maximum(tol[bad], np.finfo(float).tiny)))]
    if localized or len(bad) <= min(MAX_LOCALIZED, max(1, x.size // 2)):
        outcome.wrong = [WrongEntry(name, flat_index(x.shape, int(indices[k])), float(analytic[k]), float(numeric[k]))
                         for k in order]
    if localized or kinked[bad].all():  # failures at kinks alone are explained with the kinks
        return
    evidence = gather(run, name, indices, tests)
    findings, tried = diagnose(evidence)
    if not findings and len(bad) <= 8 and x.size > 8 * len(bad):
        findings = [wrong_entries_finding(name, x.shape, [w.index for w in outcome.wrong], True)]
    outcome.findings.extend(findings or [known_finding(evidence, tried)])


def with_changes(r: ParamReport, **changes: object) -> ParamReport:
    """A copy of a row with some fields changed."""
    return ParamReport(**{**r.__dict__, **changes})


def joint_only_finding(name: str, label: str, kinks: bool) -> Finding:
    """Every entry passes alone, yet a direction moving several entries together fails."""
    why = (" At ties and coincident kinks, the entries' values must add up to one valid subgradient: a tied "
           "maximum's gradient goes to one entry (or is split), not copied to every tied entry or dropped."
           if kinks else " The errors are too small per entry to show alone, yet add up.")
    return Finding(
        "joint",
        f"every entry of d{name} passes on its own, but the {label} direction, which moves the entries together, "
        f"fails.{why}", name)
