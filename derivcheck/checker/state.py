"""Calls that reveal state: a gradient that depends on what was called before it, not on its argument.

One gradient call cannot show three common bugs of hand-written backward passes: a gradient
buffer that is never zeroed (each call adds to the last), a gradient computed from the cache
of the most recent forward (whatever point that forward was at), and a cache filled by the
first forward and never refreshed. Two more gradient calls do, after a loss call at a nearby
point y: one at y, then one at x again. (For a gradient let go of between reads, ``checker.held``,
the joint lines' last loss call, away from x, stands for the one at y: a last-forward cache then
holds that point's gradient at both calls.)

=================  ===============  ===============
bug                grad at y        grad at x again
=================  ===============  ===============
correct            g(y)             g(x)
accumulating       g(x) + g(y)      2 g(x) + g(y)
last forward       g(y)             g(y)
first forward      g(x)             g(x)
=================  ===============  ===============

Each result is kept as a print while the next call is made (``_Print``), and for a gradient let
go of between reads the one at x, when it repeats the first, is held as the gradient: at 10^7
entries, two gradients held at once with the point y would be three arrays of the parameters'
size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from derivcheck.checker.evaluation import Setup
from derivcheck.errors import NonFiniteError, UserFunctionError
from derivcheck.checker.joint import RANDOM_MIN_MAGNITUDE
from derivcheck.numeric.blocks import CHUNK, Blocks, max_abs_difference
from derivcheck.numeric.directional import Probe, directional_test, point_buffer
from derivcheck.numeric.kinks import shift_direction
from derivcheck.numeric.regenerated import LARGE_ENTRIES, Regenerated, random_signs
from derivcheck.numeric.tolerances import NONDETERMINISM_ULPS, largest_magnitude
from derivcheck.report.results import Finding

# The nearby point y moves every entry by up to this fraction of its scale: far enough that the
# gradient changes by much more than its rounding, near enough to stay in the loss's domain.
STATE_SHIFT = 1e-3
# Which fixed direction y lies along (the same for every seed), and the generator of a large block's.
_STATE_DIRECTION = 7
_STATE_SEED = 0x57A7E
_PRINT_DIRECTION = 8  # the stream of the directions a large gradient is projected on


def first_print(setup: Setup) -> _Print:
    """The print of the first gradient call's result, taken while it is held."""
    return _Reading(setup.x).print_of(setup.g.blocks)


def stateful_findings(setup: Setup, probe: Probe, first: _Print | None = None) -> list[Finding]:
    """Errors for a gradient that changes with the calls made before it; empty when it does not. ``first``: the
    first gradient's print (``first_print``), for a check made after the joint lines, whose last loss call was away
    from x (the forward a last-forward cache holds): no loss call at y is made, and y is written into the perturbed
    point's buffer."""
    fns, reading, after_lines = setup.fns, _Reading(setup.x), first is not None
    g = reading.print_of(setup.g.blocks) if first is None else first
    y = _nearby(setup.x, probe.work if after_lines else None)
    y_native = {k: y[k].astype(setup.native[k].dtype, copy=False) for k in y}
    try:
        if not after_lines:
            fns.loss_at(y)
        at_y_blocks: Blocks | None = fns.grad_at(y_native)
        at_y = reading.print_of(at_y_blocks)
        if not _identical(at_y, g):
            at_y_blocks = None  # only a first-forward suspect is read again: not held through the next call
        again_blocks = fns.grad_at(setup.native)
        again = reading.print_of(again_blocks)
    except (NonFiniteError, UserFunctionError):  # y left the loss's domain: nothing to compare
        return []
    setup.grad_repeats = _same(again, g, setup.eps_grad)
    if setup.grad_repeats:
        if setup.g.lean:
            setup.g.hold(again_blocks)
        del again_blocks
        if at_y_blocks is not None and _stale_at(probe, {k: v.copy() for k, v in y.items()}, at_y_blocks, setup):
            # A warning, not an error: a function returning one fixed array (a test's known gradient at x) behaves
            # the same, and it is right at x, the point checked.
            return [_finding("first_forward", "called at another point, it returned exactly the gradient of the "
                             "first point, which is wrong there: it reads a cache filled by the first forward pass "
                             "and never refreshed, or it returns a fixed array", "warning")]
        return []
    if _same(again, g, setup.eps_grad, plus=at_y):
        return [_finding("accumulating", "called again at the same point, it returned the first result plus its "
                         "result in between: a gradient buffer is added to and never zeroed (dW += ... without dW = 0 "
                         "first)")]
    if _same(again, at_y, setup.eps_grad):
        return [_finding("last_forward", "called at x right after the loss was called at another point, it "
                         "returned the gradient at that other point: it reads the cache of the most recent "
                         "forward pass instead of computing from its argument")]
    return [_finding("stateful", "called twice at the same point, it returned different gradients after a loss "
                     "call elsewhere: it depends on state left by earlier calls")]


@dataclass(frozen=True)
class _Print:
    """What is kept of one gradient call: a small block as it is; a large one's largest magnitude and projection on
    a fixed random direction, every entry of which moves by 3/4 to 1 (two gradients that differ by more than
    rounding differ there too, but for an exact cancellation of probability zero; two with the same bits have the
    same projection, summed in the same order)."""

    arrays: Blocks
    tops: dict[str, float]
    projections: dict[str, float]
    lengths: dict[str, float]  # a bound on |r|_1 of each projection's direction: it bounds a difference's projection


class _Reading:
    """Prints of gradients at the parameters' shapes, all projected on the same directions."""

    def __init__(self, x: Blocks) -> None:
        rng = np.random.default_rng([_STATE_SEED, _PRINT_DIRECTION])
        # Unscaled (every entry's scale taken as 1): no pass over x at each print, and |r|_1 is at most the size.
        self.directions = {k: random_signs(np.broadcast_to(0.0, v.shape), rng, RANDOM_MIN_MAGNITUDE)
                           for k, v in x.items() if v.size >= LARGE_ENTRIES}
        self.lengths = {k: float(r.size) for k, r in self.directions.items()}

    def print_of(self, blocks: Blocks) -> _Print:
        large = self.directions
        read = {k: _projected(blocks[k].reshape(-1), r) for k, r in large.items()}
        return _Print({k: v.copy() for k, v in blocks.items() if k not in large}, {k: t for k, (t, _) in read.items()},
                      {k: p for k, (_, p) in read.items()}, self.lengths)


def _projected(g: np.ndarray, r: Regenerated) -> tuple[float, float]:
    """``max |g|`` and ``<g, r>``, in one pass over ``g`` (three passes of 10^7 entries were 30 ms a print)."""
    top, dot = 0.0, 0.0
    for lo, part in r.chunks():
        gc = g[lo:lo + part.size]
        top = max(top, float(np.max(gc)), -float(np.min(gc)))
        dot += float(np.einsum("i,i->", gc, part))
    return top, dot


def _nearby(x: Blocks, work: Blocks | None = None) -> Blocks:
    """The point y: x moved by STATE_SHIFT along a fixed direction (random signs for a large block: drawing 10^7
    Gaussians takes as long as a loss evaluation), a large float64 block written into the perturbed point's
    buffer of ``work`` where one is given (idle between lines: one array of its size fewer)."""
    y = shift_direction({k: v for k, v in x.items() if v.size < LARGE_ENTRIES}, _STATE_DIRECTION)
    rng = np.random.default_rng([_STATE_SEED, _STATE_DIRECTION])
    for k, v in x.items():
        if v.size >= LARGE_ENTRIES:
            r = random_signs(v, rng, 0.0)
            y[k] = point_buffer(work, k, v) if work is not None and v.dtype == np.float64 else np.empty(v.shape)
            flat = y[k].reshape(-1)
            for lo in range(0, r.size, CHUNK):
                r.chunk(lo, lo + CHUNK, flat[lo:lo + CHUNK])
    for k, v in x.items():  # in place: no temporary of the parameters' size
        y[k] *= STATE_SHIFT
        y[k] += v
        y[k] = y[k].astype(v.dtype, copy=False)
    return y


def _stale_at(probe: Probe, y: Blocks, g_y: Blocks, setup: Setup) -> bool:
    """Whether ``g_y`` fails a directional test at ``y`` (a linear loss's gradient is the same everywhere)."""
    w = shift_direction(setup.x, _STATE_DIRECTION + 1)
    t = directional_test(probe, g_y, w, x=y, f0=probe.evaluate(y), separate_kinks=False)
    return t.decides and not t.passed and not t.derivative.kink


def _same(a: _Print, b: _Print, eps: float, plus: _Print | None = None) -> bool:
    """``a`` equals ``b`` (plus ``plus``) to within rounding, block by block (a large block along its projection,
    within the rounding every entry may carry)."""
    tiny = np.finfo(float).tiny
    for k, v in b.arrays.items():
        other = v if plus is None else v + plus.arrays[k]
        if max_abs_difference(a.arrays[k], other) > NONDETERMINISM_ULPS * eps * (largest_magnitude(other) + tiny):
            return False
    for k, p in b.projections.items():
        top = b.tops[k] + (0.0 if plus is None else plus.tops[k])
        other = p + (0.0 if plus is None else plus.projections[k])
        if abs(a.projections[k] - other) > NONDETERMINISM_ULPS * eps * (top + tiny) * b.lengths[k]:
            return False
    return True


def _identical(a: _Print, b: _Print) -> bool:
    """The same bits (a large block: the same projection), and not all zero."""
    return (all(np.array_equal(a.arrays[k], v) for k, v in b.arrays.items()) and a.projections == b.projections
            and (any(np.any(v) for v in b.arrays.values()) or any(t > 0 for t in b.tops.values())))


def _finding(kind: str, what: str, severity: str = "error") -> Finding:
    return Finding("stateful_gradient", f"the gradient depends on earlier calls: {what}.", None, severity,
                   detail={"state": kind})
