"""When a joint direction fails: which parameter, which entries, and why.

First the cheapest explanation: one wrong entry, found from the failing directions alone
(``numeric.recovery``) and confirmed by checking that entry. Otherwise each parameter is
tested alone along the failing direction; a failing small parameter gets per-entry checks,
a large one is bisected (``numeric.localize``), with a sample of entries for the diagnosis.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from derivcheck.checker.diagnosis import explain, wrong_entries_finding
from derivcheck.checker.evidence import gather
from derivcheck.checker.held import HeldGradient
from derivcheck.checker.entries import (
    ENTRY_CHECK_MAX_ENTRIES,
    entry_test,
    full_check,
    joint_only_finding,
    summarize,
    with_changes,
)
from derivcheck.checker.joint import LOCALIZATION_LINES, localization_direction
from derivcheck.numeric.regenerated import LARGE_ENTRIES, Regenerated, concatenated, whole
from derivcheck.numeric.directional import Blocks, LineReading, directional_test, read_line
from derivcheck.numeric.localize import bisect_wrong_entries
from derivcheck.numeric.recovery import column, explains, fits_at_least, one_sparse_candidates
from derivcheck.checker.outcome import ParamOutcome, Run, Tested
from derivcheck.numeric.tolerances import entry_scale
from derivcheck.checker.parameters import flat_index

# Bisection stops after this many subset tests per parameter (about 20 levels for 10^6 entries).
LOCALIZATION_MAX_TESTS = 48
# Entries sampled to diagnose a spread error in a large parameter (plus transposed partners).
DIAGNOSIS_SAMPLES = 12
# Candidates for "one wrong entry" checked one by one, and extra random directions to narrow them.
_CANDIDATES = 3
_EXTRA_DIRECTIONS = LOCALIZATION_LINES
# Where none of the first candidates is the wrong entry and the parameters have LARGE_ENTRIES or more in all, more
# directions, up to this many added in all, narrow them once more: the alternative is bisection (about a hundred
# loss evaluations, its subsets whole arrays). A wrong entry seen at 15 times its tolerance leaves about 24,000 of
# 10^7 entries fitting four directions, and each more divides them by about 7.
_EXTRA_DIRECTIONS_LARGE = 8


def failing_outcomes(run: Run) -> tuple[dict[str, ParamOutcome], bool]:
    """Outcomes of the implicated parameters, and whether one wrong entry explains every failure."""
    single = _one_wrong_entry(run)
    if single is not None:
        return single, True
    failing = [t for t in run.tested if not t.test.passed]
    names = _implicated(run, failing)
    return {name: examine(run, name, root) for name, root in names.items()}, False


def _implicated(run: Run, failing: list[Tested]) -> dict[str, Tested]:
    """The parameters that fail alone along a failing direction (all of them if none does)."""
    found: dict[str, Tested] = {}
    for t in sorted(failing, key=lambda t: -t.test.distance / max(t.test.tolerance, np.finfo(float).tiny)):
        if len(t.moves) == 1:
            found.setdefault(next(iter(t.moves)), t)
            continue
        g = run.setup.g
        # A gradient let go of between reads is read along every block's line at once (one fetch for them all).
        readings = {name: read_line(run.probe, g, {name: v}) if g.lean else None for name, v in t.moves.items()}
        for name, v in t.moves.items():
            if name in found:
                continue
            alone = run.record(f"{t.label}, {name} only", {name: v},
                               directional_test(run.probe, g, {name: v}, reading=readings[name]))
            if not alone.passed:
                found[name] = run.tested[-1]
        if found:
            break
    if not found:
        t = failing[0]
        found = {name: t for name in t.moves}
    return found


def examine(run: Run, name: str, root: Tested) -> ParamOutcome:
    """One parameter that fails along ``root``: per-entry checks if small, bisection if large."""
    size = run.setup.x[name].size
    if run.mode == "full" or (run.mode == "auto" and size <= ENTRY_CHECK_MAX_ENTRIES):
        outcome = run_full(run, name)
        if outcome.report.verdict != "fail":
            outcome.report = with_changes(outcome.report, verdict="fail")
            outcome.findings.append(joint_only_finding(name, root.label, bool(run.kinks)))
        return outcome
    return _bisect(run, name, root)


def run_full(run: Run, name: str) -> ParamOutcome:
    """Per-entry checks of one parameter, at most once per check."""
    if name not in run.full:
        if run.setup.fns.progress is not None:
            run.setup.fns.progress.stage = f"checking {name} entry by entry"
        run.full[name] = full_check(run, name)
    return run.full[name]


def _one_wrong_entry(run: Run) -> dict[str, ParamOutcome] | None:
    """A single wrong entry that accounts for every failing direction, confirmed by its own check. Where the first
    candidates are not it and the parameters are large, more directions narrow the candidates once more (see
    _EXTRA_DIRECTIONS_LARGE) before bisection is left to find it."""
    s = run.setup
    sizes = [v.size for v in s.x.values()]
    if sum(sizes) < 2 or any(t.test.derivative.kink for t in run.tested):
        return None
    tests = [t for t in run.tested if "only" not in t.label]
    extras, tried = _extra_lines(run), set()
    for most in (_EXTRA_DIRECTIONS, _EXTRA_DIRECTIONS_LARGE)[:1 if sum(sizes) < LARGE_ENTRIES else 2]:
        fit = _narrowed(run, tests, extras, most)
        if fit is None:
            return None
        candidates = [int(f) for f in fit[3] if int(f) not in tried][:_CANDIDATES]
        found = _confirmed_entry(run, fit[:3], candidates, len(tests))
        if found is not None:
            return found
        tried.update(candidates)
    return None


def _narrowed(run: Run, tests: list[Tested], extras: Iterator[tuple[Blocks, LineReading | None]],
              most: int) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray] | None:
    """The directions' columns, errors and tolerances, and the entries that fit them best, after adding directions
    (to ``tests``, up to ``most`` added in all) while more than a few fit; None where none fits or a direction
    meets a kink."""
    s, names = run.setup, list(run.setup.x)
    first = len([t for t in run.tested if "only" not in t.label and "(localization)" not in t.label])
    while True:
        columns = [_flat(t, names, s.x) for t in tests]
        errors = np.array([t.test.signed_error for t in tests])
        tols = np.array([t.test.tolerance for t in tests])
        # Too many candidates means one more direction, whichever they are: counting stops at the first few.
        if len(tests) - first >= most or not fits_at_least(columns, errors, tols, _CANDIDATES + 1):
            # More than one round's worth: a second round checks the best ones the first did not.
            candidates = one_sparse_candidates(columns, errors, tols, 4 * _CANDIDATES)
            return None if len(candidates) == 0 else (columns, errors, tols, candidates)
        moves, reading = next(extras)
        run.record(f"random {len(tests)} (localization)", moves,
                   directional_test(run.probe, s.g, moves, reading=reading))
        tests.append(run.tested[-1])
        if run.tested[-1].test.derivative.kink:
            return None


def _confirmed_entry(run: Run, fit: tuple[list[np.ndarray], np.ndarray, np.ndarray], candidates: list[int],
                     directions: int) -> dict[str, ParamOutcome] | None:
    """The first candidate (flat over all blocks) whose own check fails and explains every direction's error."""
    s = run.setup
    names, columns, errors, tols = list(s.x), *fit
    offsets = np.cumsum([0, *[v.size for v in s.x.values()]])
    _read_entries(s.g, names, offsets, np.array(candidates, dtype=np.int64))
    for flat in candidates:
        block = int(np.searchsorted(offsets, flat, side="right") - 1)
        name, local = names[block], int(flat - offsets[block])
        t = entry_test(run, name, local)
        scale = float(entry_scale(s.x[name].reshape(-1)[local]))
        if not t.passed and explains(column(columns, flat), errors, tols, t.signed_error / scale, t.tolerance / scale):
            outcome = summarize(run, name, "directional", np.array([local]), [t], localized=True,
                                extra_checked=directions)
            outcome.findings = [wrong_entries_finding(name, s.x[name].shape, [flat_index(s.x[name].shape, local)], True)]
            return {name: outcome}
    return None


def _read_entries(g: HeldGradient, names: list[str], offsets: np.ndarray, flats: np.ndarray) -> None:
    """Read the gradient at the candidates (flat over all blocks) at once: a gradient let go of during loss calls
    is then fetched once for all their checks."""
    blocks = np.searchsorted(offsets, flats, side="right") - 1
    for b in set(blocks.tolist()):
        g.entries(names[b], np.asarray(flats[blocks == b] - offsets[b]))


def _extra_lines(run: Run) -> Iterator[tuple[Blocks, LineReading | None]]:
    """The extra localization directions, each drawn when asked for; a gradient let go of during loss calls is read
    along all of them at once, before the first is tested (one fetch, not one per line)."""
    s, p = run.setup, run.probe
    if not s.g.lean:
        while True:
            yield {k: localization_direction(v, run.rng) for k, v in s.x.items()}, None
    if run.spare and run.spare_read_at == (p.eps_eval, p.eps_grad) and p.grad_spread is None:
        yield from run.spare  # drawn and read with the joint lines
    while True:  # more, read a few at a time (one fetch each time)
        lines = [{k: localization_direction(v, run.rng) for k, v in s.x.items()} for _ in range(_EXTRA_DIRECTIONS)]
        yield from [(moves, read_line(p, s.g, moves)) for moves in lines]


def _flat(t: Tested, names: list[str], x: dict[str, np.ndarray]) -> np.ndarray:
    """A direction flattened over every block (a view where it moves the only block: no copy of 10^7 entries)."""
    if len(names) == 1 and names[0] in t.moves:
        return t.moves[names[0]].reshape(-1)
    parts = [t.moves[k].reshape(-1) if k in t.moves else x[k].size for k in names]
    if any(isinstance(p, Regenerated) for p in parts):  # made when read: no copy of the parameters' size
        return concatenated(parts)
    return np.concatenate([np.zeros(p) if isinstance(p, int) else p for p in parts])


def _bisect(run: Run, name: str, root: Tested) -> ParamOutcome:
    """Bisection over the entries of a large parameter, then a sample of entries for the diagnosis."""
    s = run.setup
    x = s.x[name]
    # Bisection reads the gradient between every pair of loss calls: a gradient let go of between reads is held from
    # here on (one fetch, not one per level; the whole direction and subsets below are as large anyway).
    s.g.lean, s.fns.before_call = False, None
    flat_v = whole(root.moves[name]).reshape(-1)

    def measure(subset: np.ndarray) -> tuple[float, float]:
        mv = np.zeros(x.size)
        mv[subset] = flat_v[subset]
        t = directional_test(run.probe, s.g, {name: mv.reshape(x.shape)})
        return t.signed_error, t.tolerance

    loc = bisect_wrong_entries(np.arange(x.size), measure, (root.test.signed_error, root.test.tolerance),
                               LOCALIZATION_MAX_TESTS)
    checked = {i: entry_test(run, name, i) for i in loc.wrong}
    few = loc.complete and not loc.spread and len(loc.wrong) > 0
    if not few:
        sample = run.rng.choice(x.size, size=min(DIAGNOSIS_SAMPLES, x.size), replace=False)
        extra = {int(i) for i in sample}
        if x.ndim == 2 and x.shape[0] == x.shape[1]:
            extra |= {int(np.ravel_multi_index(flat_index(x.shape, i)[::-1], x.shape)) for i in sample}
        for i in sorted(extra - checked.keys()):
            checked[i] = entry_test(run, name, i)
    order = np.array(sorted(checked))
    outcome = summarize(run, name, "directional", order, [checked[int(i)] for i in order], localized=few,
                        extra_checked=loc.tests + 1)
    if few:
        outcome.findings = [wrong_entries_finding(name, x.shape, [flat_index(x.shape, i) for i in loc.wrong], True)]
    elif outcome.report.verdict != "fail":
        outcome.report = with_changes(outcome.report, verdict="fail")
        outcome.findings = explain(gather(run, name, order, [checked[int(i)] for i in order]))
    return outcome
