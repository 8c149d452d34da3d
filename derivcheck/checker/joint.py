"""Directions shared by every parameter, and what a passing set of them proves per parameter.

Three kinds of direction cover all parameters at once, one evaluation ladder each:

* ``gradient``: each block along the user's own gradient. ``<g, v>`` is then as large as
  it can be, so a wrong scale in any block shows at its most visible (not where the gradient
  is let go of between its reads, ``checker.held``: one more random direction instead);
* ``random``: random signs times magnitudes drawn from [3/4, 1] of each entry's scale. The draw is
  continuous, so it sees any error pattern whatever its shape (as Gaussian entries would), and no
  entry moves by less than three quarters of its scale, so the same direction gives power against one wrong
  entry anywhere (the smallest of 10^6 Gaussian entries is about 1e-6 of the largest);
* ``uniform``: every entry moves by its own scale. Entries that are tied (the maxima of a
  pooling window, equal values under a sort) stay tied, so the loss is smooth along it
  where the other directions cross kinks, and the tied entries' gradients must add up to
  the one true slope: routing a tie's gradient to every tied entry, or to none, fails.

A block's detection floor is the smallest uniform relative error in it that some passing
direction would have seen: ``tolerance / |<g_b, v_b>|``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import repeat

import numpy as np

from derivcheck.numeric.blocks import inner
from derivcheck.numeric.directional import Blocks, LineReading, directional_test, inside_a_kink_set, read_line
from derivcheck.numeric.regenerated import LARGE_ENTRIES, Regenerated, along_gradient, min_abs, random_signs
from derivcheck.checker.outcome import ParamOutcome, Run
from derivcheck.report.gradient import format_index
from derivcheck.report.results import Finding, ParamReport
from derivcheck.numeric.tolerances import (ESTIMATE_SAFETY, GRADIENT_ROUNDOFF_ULPS, INCONCLUSIVE_FLOOR, LOW_PRECISION_EPS,
                                           entry_scale, largest_magnitude, scale_by_entry)


def planned_directions(x: Blocks, g: Blocks, rng: np.random.Generator, randoms: int,
                       gradient: bool = True) -> Iterator[tuple[str, Blocks]]:
    """The gradient (if ``gradient``) and random directions over all blocks (largest entry at the entry scale), each
    made when it is asked for (and a large block's when read: at 10^7 entries each is the parameters' size)."""
    along = {k: gradient_direction(x[k], g[k]) for k in x} if gradient else {}
    along = {k: v for k, v in along.items() if v is not None}
    if along:
        yield "gradient", along
    for i in range(randoms):
        yield (f"random {i + 1}" if randoms > 1 else "random"), {k: kept_signs(v, rng) for k, v in x.items()}


def gradient_direction(x: np.ndarray, g: np.ndarray) -> np.ndarray | Regenerated | None:
    """The user's gradient scaled to the entry scale (made from ``g`` when read, for a large parameter); None when
    it is zero."""
    top = largest_magnitude(g)
    if top == 0:
        return None
    return along_gradient(x, g, top) if x.size >= LARGE_ENTRIES else scale_by_entry(g / top, x)


def kept_signs(x: np.ndarray, rng: np.random.Generator) -> np.ndarray | Regenerated:
    """``sign_direction``; for a large parameter, the same law regenerated from the generator's state when read."""
    return random_signs(x, rng, RANDOM_MIN_MAGNITUDE) if x.size >= LARGE_ENTRIES else sign_direction(x, rng)


def localization_direction(x: np.ndarray, rng: np.random.Generator) -> np.ndarray | Regenerated:
    """A direction kept for localization: Gaussian, or for a large parameter random signs regenerated when read
    (as continuous, and PCG64 jumps to any chunk of them; a Gaussian draw cannot be jumped into)."""
    return random_signs(x, rng, RANDOM_MIN_MAGNITUDE) if x.size >= LARGE_ENTRIES else random_direction(x, rng)


# Random directions added to the failing ones to find one wrong entry among them (``attribution``).
LOCALIZATION_LINES = 2
# A direction for single-entry power has random signs times magnitudes drawn from [RANDOM_MIN_MAGNITUDE, 1]
# of the entry scale. The draw is continuous, so no error pattern cancels out with positive probability (as
# with Gaussian entries), and no entry moves by less than three quarters of its scale, so one wrong entry anywhere
# shifts <g, v> by at least 3/4 of its error: the smallest of 10^7 Gaussian entries is 1e-7 of the largest. Three
# quarters, not a half: the single-entry floor is the tolerance over this minimum, and a float32 net's tolerance,
# set by its loss's rounding, then reaches 1% in the shared direction instead of after two or three more.
# Magnitudes still spread over a quarter of the scale: exact cancellation keeps probability zero.
RANDOM_MIN_MAGNITUDE = 0.75
# Extra directions a parameter may spend on single-entry power: one over the whole parameter, then the
# entries split at random in 2 and 4 parts (1 + 2 + 4), each part's tolerance free of the rest's rounding.
ENTRY_POWER_PROBES = 7


# The signs are drawn this many at a time: the same stream as one draw of the whole size, without its temporary.
_SIGN_CHUNK = 1 << 16


def sign_direction(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random signs times magnitudes in [RANDOM_MIN_MAGNITUDE, 1] of each entry's scale."""
    z = rng.uniform(RANDOM_MIN_MAGNITUDE, 1.0, x.shape)
    flat = z.reshape(-1)
    for lo in range(0, flat.size, _SIGN_CHUNK):
        part = flat[lo:lo + _SIGN_CHUNK]
        part[rng.random(part.size) < 0.5] *= -1.0
    return scale_by_entry(z, x)


def random_direction(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian entries scaled so that the largest is at the entry scale."""
    z = rng.standard_normal(x.shape)
    z /= max(largest_magnitude(z), np.finfo(float).tiny)
    return scale_by_entry(z, x)


def run_joint(run: Run, randoms: int) -> None:
    """Test the joint directions (results land in ``run.tested``); the uniform one only where kinks
    sit at x, since it exists to keep ties unbroken."""
    s = run.setup
    # A gradient let go of during loss calls (10^7 entries) has one more random direction instead of the gradient
    # direction: that direction, or any copy of its size, would be held through every loss call along it, and a
    # random direction's power there (a uniform error of 1e-9 at 10^7 entries) leaves nothing to gain. Its signs
    # alone would be small enough to keep, but along them a loss's odd derivatives can add up entry by entry
    # (sum c sin(w) curves by sum |g| there), and the ladder read that curvature as noise: 17 more evaluations.
    planned: Iterable[tuple[str, Blocks]] = planned_directions(s.x, s.g, run.rng, randoms + s.g.lean,
                                                               gradient=not s.g.lean)
    readings: Iterable[LineReading | None] = repeat(None)  # each line reads the gradient itself, when it comes
    if s.g.lean:  # the lines read it at once, with the localization lines a failure would need: one fetch
        planned = list(planned)
        readings = [read_line(run.probe, s.g, moves) for _, moves in planned]
        spare = [{k: localization_direction(v, run.rng) for k, v in s.x.items()} for _ in range(LOCALIZATION_LINES)]
        run.spare = [(moves, read_line(run.probe, s.g, moves)) for moves in spare]
        run.spare_read_at = (run.probe.eps_eval, run.probe.eps_grad)
    for (label, moves), reading in zip(planned, readings):
        trace: list[tuple[float, float]] = []
        run.record(label, moves, directional_test(run.probe, s.g, moves, trace=trace, certify=True, reading=reading),
                   trace=trace)
    if run.kinks:  # every entry by its own scale: tied entries stay tied
        moves = {k: entry_scale(v) for k, v in s.x.items()}
        trace = []
        run.record("uniform", moves, directional_test(run.probe, s.g, moves, trace=trace, certify=True), trace=trace)
    # A line tested before any other met a kink at x was judged as if x were a point of differentiability.
    for k, t in enumerate(list(run.tested)):
        again = inside_a_kink_set(run.probe, s.g, t.moves, t.test)
        if again is not t.test:
            run.rejudge(k, again)


def certified_smooth(run: Run, name: str) -> bool:
    """Every joint direction that moved ``name`` had its stencil proven smooth by the gradient at its ends: no
    kink hides in it, and its tolerance is the loss's rounding, not a finer rung's."""
    moved = [t for t in run.tested if name in t.moves]
    return bool(moved) and all(t.test.derivative.certified for t in moved)


def reference_slope(run: Run) -> float:
    """The largest directional derivative seen: the yardstick for a parameter whose gradient is zero."""
    return max((max(abs(t.test.analytic), abs(t.test.derivative.value)) for t in run.tested), default=0.0)


def block_floor(run: Run, name: str, explained: bool = False) -> float:
    """Smallest uniform relative error in ``name`` that some passing direction would have seen.

    ``explained``: the failing directions are accounted for by a wrong entry elsewhere, so
    what is left of them passes too.
    """
    floors = []
    for t in run.tested:
        if name in t.moves and (t.test.passed or explained) and t.test.decides:
            g, v = run.setup.g[name], t.moves[name]
            c = abs(inner({name: g}, {name: v}))  # chunk by chunk for a regenerated direction
            if c > 0:
                floors.append(t.test.own_tolerance / c)
    return min(floors, default=float("inf"))


def single_entry_floor(run: Run, name: str, explained: bool = False) -> float:
    """Smallest error in any one entry of ``d{name}``, as a fraction of its largest entry, that some passing
    direction would have seen: ``tolerance / (min_i |v_i| max |g|)``."""
    top = run.setup.g.top(name)
    floors = []
    for t in run.tested:
        if name in t.moves and (t.test.passed or explained) and t.test.decides and top > 0:
            low = min_abs(t.moves[name])
            if low > 0:
                floors.append(t.test.own_tolerance / (low * top))
    return min(floors, default=float("inf"))


def expected_error(run: Run, name: str) -> float:
    """The single-entry error a pass must have been able to see: the user's rtol/atol, else 1%."""
    p = run.probe
    if not (p.rtol or p.atol):
        return INCONCLUSIVE_FLOOR
    top = run.setup.g.top(name)
    return max(p.rtol, p.atol / top if top > 0 else 0.0)


def entry_power(run: Run, name: str, target: float, certify: bool = False) -> tuple[float, bool]:
    """Directions restricted to ``name``, then to random parts of it, until one wrong entry of ``target`` times
    the largest would show; (the single-entry floor reached, whether a direction failed)."""
    s = run.setup
    x, top = s.x[name], largest_magnitude(s.g[name])
    best, parts, spent = float("inf"), 1, 0
    while best > target and spent + parts <= ENTRY_POWER_PROBES and parts <= x.size:
        v = sign_direction(x, run.rng)
        which = run.rng.integers(0, parts, x.shape, dtype=np.int16) if parts > 1 else None
        worst = 0.0
        for k in range(parts):
            if which is not None and not np.any(which == k):
                continue  # a part that drew no entry (13 entries in 4 parts): nothing to move, nothing to see
            v_k = v if which is None else np.where(which == k, v, 0.0)
            label = f"signs, {name} only" if which is None else f"signs, {name} part {k + 1}/{parts}"
            t = run.record(label, {name: v_k}, directional_test(run.probe, s.g, {name: v_k}, certify=certify))
            if not t.passed:
                return best, True
            low = float(np.min(np.abs(v))) if which is None else float(np.min(np.abs(v[which == k]), initial=np.inf))
            worst = max(worst, t.own_tolerance / (low * top) if t.decides else float("inf"))
        best, spent, parts = min(best, worst), spent + parts, 2 * parts
    return best, False


def passing_block(run: Run, name: str, explained: bool = False) -> ParamOutcome | None:
    """The row of a parameter the joint directions passed; None when a closer look fails it."""
    s = run.setup
    floor = block_floor(run, name, explained)
    if floor > INCONCLUSIVE_FLOOR and len(s.x) > 1:
        # Other blocks' rounding and curvature widen a joint tolerance: look at this block alone.
        v = gradient_direction(s.x[name], s.g[name])
        if v is not None:
            t = run.record(f"gradient, {name} only", {name: v},
                           directional_test(run.probe, s.g, {name: v}, certify=True))
            if not t.passed:
                return None
            floor = min(floor, block_floor(run, name, explained))
    if zero_to_rounding(run, name):
        return _zero_gradient_block(run, name)
    if floor > INCONCLUSIVE_FLOOR:
        reason = (f"the smallest relative error this run could see in d{name} is {floor:.1e}: the loss's rounding "
                  f"noise swamps {name}'s effect on it")
        return ParamOutcome(joint_row(run, name, floor, "inconclusive", reason), [], [_noise_finding(name, floor)])
    single, target = single_entry_floor(run, name, explained), expected_error(run, name)
    # In low precision a direction over part of a parameter has a small slope against the noise: its step grows
    # wide, a ReLU net's kinks crowd into it past what the error estimate sees, and a correct gradient can fail
    # there; nor could so noisy a direction see one wrong entry of 1%. Such a parameter stays inconclusive,
    # unless the slopes at its stencils prove them free of kinks (as they did the joint directions').
    smooth = run.probe.eps_eval > LOW_PRECISION_EPS and certified_smooth(run, name)
    if single > target and (run.probe.eps_eval <= LOW_PRECISION_EPS or smooth):
        reached, failed = entry_power(run, name, target, certify=smooth)
        if failed:
            return None
        single = min(single, reached)
    if single > target:
        reason = (f"one wrong entry of d{name} would have been seen only above {single:.1e} of its largest entry, "
                  f"more than the {target:.0e} expected")
        return ParamOutcome(joint_row(run, name, floor, "inconclusive", reason, single), [], [Finding(
            "noise", f"inconclusive for {name}: {reason}; the directions' rounding noise hides a single entry's "
                     f"error. Evaluate the loss in float64, or check {name} with mode='full'.", name, "warning")])
    return ParamOutcome(joint_row(run, name, floor, "pass", single=single))


def discontinuous_block(run: Run, name: str) -> ParamOutcome:
    """A parameter along whose directions the loss jumps: there is no derivative to compare with."""
    reason = (f"the loss is discontinuous at this point along a direction that moves {name} (it jumps, like a step "
              f"function or an argmax): no derivative exists there, so none can be checked")
    return ParamOutcome(joint_row(run, name, float("inf"), "inconclusive", reason), [], [discontinuity_finding(name)])


def undecided_block(run: Run, name: str) -> ParamOutcome:
    """A parameter moved by a direction through coincident kinks that was decided neither way, and checked no
    closer (too large, or ``mode="directional"``): undecided, which is not a pass."""
    test = next(t for t in run.tested if name in t.moves and not t.test.decides)
    if test.test.resolution == "kinks in the stencil":
        why = (f"along the {test.label} direction the loss's low precision needs a step that crosses kinks, which "
               f"shift its finite differences past their error estimate, and no stencil the gradient's slopes proved "
               f"free of them, down to steps where rounding swamps the slope, settled the comparison")
    else:
        why = (f"along the {test.label} direction kinks coincide too many to separate, and the analytic value lies "
               f"outside the hull of the pieces gathered nearby")
    reason = (f"{why}: undecided, not a pass"
              + (" (mode='auto' checks a parameter of this size entry by entry)" if run.mode == "directional" else ""))
    return ParamOutcome(joint_row(run, name, block_floor(run, name), "inconclusive", reason), [],
                        [undecided_finding(name, reason)])


def undecided_finding(name: str, reason: str, entries: tuple[tuple[int, ...], ...] = ()) -> Finding:
    """Why a parameter's check decided nothing: the row's reason, said in the diagnosis."""
    return Finding("undecided", f"inconclusive for {name}: {reason}.", name, "warning", entries)


def discontinuity_finding(name: str, entries: tuple[tuple[int, ...], ...] = ()) -> Finding:
    """What a jump in the loss means for the check."""
    where = f" (at {', '.join(format_index(name, e) for e in entries[:4])}{' ...' if len(entries) > 4 else ''})" if entries else ""
    return Finding(
        "discontinuous",
        f"the loss jumps at this point when {name} moves{where}: the finite differences grow like 1/step instead of "
        f"settling, so no derivative exists there (a hard threshold, an argmax, a ReLU's derivative inside a gradient "
        f"that is itself differentiated). Check at a point off the jump.", name, "warning", entries)


def zero_to_rounding(run: Run, name: str) -> bool:
    """d{name} is zero, or within the rounding of the largest gradient entry of the check (a bias before a
    normalisation gets 1e-17 where the other gradients are of order 1)."""
    g = run.setup.g
    top = max(largest_magnitude(v) for v in g.values())
    return largest_magnitude(g[name]) <= GRADIENT_ROUNDOFF_ULPS * run.probe.eps_grad * top


def _zero_gradient_block(run: Run, name: str) -> ParamOutcome | None:
    """d{name} is exactly zero: the numeric derivative must be zero too, to a useful precision."""
    s = run.setup
    v = random_direction(s.x[name], run.rng)
    trace: list[tuple[float, float]] = []
    t = run.record(f"random, {name} only", {name: v}, directional_test(run.probe, s.g, {name: v}, trace=trace), trace=trace)
    if not t.passed:
        return None
    # A zero gradient at a stationary point of a curved loss (sum(cos w) at 0): the secant slopes over the
    # steps taken are the scale of the gradients one step away, a yardstick the tolerance is measured on.
    secants = [abs(value - s.f0) / abs(t_) for t_, value in trace if t_ != 0]
    reference = max(reference_slope(run), max(secants, default=0.0))
    flat = all(value == s.f0 for _, value in trace)  # exactly constant along name: truly zero
    if flat or (reference > 0 and t.tolerance <= INCONCLUSIVE_FLOOR * reference):
        floor = 0.0 if flat else t.tolerance / reference
        if flat or all(abs(value - s.f0) <= ESTIMATE_SAFETY * run.probe.noise for _, value in trace):
            return ParamOutcome(joint_row(run, name, floor, "pass", single=floor), [], [Finding(
                "vacuous",
                f"the loss does not change with {name} here (a bias before a normalisation?): it stays within its "
                f"rounding whichever way {name} moves, and d{name} is zero to rounding, as it must be.",
                name, "info", detail={"flat": True})])
        return ParamOutcome(joint_row(run, name, floor, "pass", single=floor / RANDOM_MIN_MAGNITUDE), [], [Finding(
            "vacuous",
            f"d{name} is zero here and the numeric derivative along {name} is zero too (|numeric| "
            f"{abs(t.derivative.value):.1e} <= tolerance {t.tolerance:.1e}): this check cannot see a wrong formula "
            f"for {name} (dead ReLUs? zero-initialized weights? an input that does not reach the loss?).",
            name, "warning")])
    reason = (f"d{name} and the numeric derivative along {name} are both zero, and nothing else in this check sets "
              f"a scale to compare them on")
    return ParamOutcome(joint_row(run, name, float("inf"), "inconclusive", reason), [], [Finding(
        "vacuous", f"inconclusive for {name}: {reason}; check at a point where the gradient is not zero.", name, "warning")])


def _noise_finding(name: str, floor: float) -> Finding:
    return Finding(
        "noise",
        f"inconclusive for {name}: the finite differences are too noisy to decide (the smallest relative error this "
        f"run could see is {floor:.1e}, above {INCONCLUSIVE_FLOOR:.0e}). Evaluate the loss in float64, avoid a loss "
        f"that is a difference of large numbers (an offset like 1e8 + f), or rescale {name}.",
        name, "warning")


def joint_row(run: Run, name: str, floor: float, verdict: str, reason: str = "", single: float = float("nan")) -> ParamReport:
    """The row of a parameter judged by shared directions only: no per-entry errors to show."""
    s = run.setup
    shared = [t for t in run.tested if name in t.moves]
    nan = float("nan")
    return ParamReport(name, tuple(s.x[name].shape), str(s.space.dtypes[s.space.names.index(name)]),
                       "joint", len(shared), nan, nan, None, nan, nan, floor, verdict, reason, single)
