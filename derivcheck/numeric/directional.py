"""Directional tests on any NumPy function: ``<g, v>`` against the derivative of ``L(x + t v)``.

A direction ``v`` is a dict of arrays (a subset of the parameters' blocks). The step is
relative to each entry's scale (``v`` is scaled so that its largest entry equals the entry
scale) and grows where the loss's rounding noise is large against its slope. The
tolerance is the finite difference's own error estimate plus the rounding of the user's
gradient and of the step; kinks are judged as subgradients (see ``kinks``).
"""

from __future__ import annotations

import math
import weakref

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from derivcheck.errors import DerivcheckError
from derivcheck.numeric.blocks import CHUNK, Blocks, inner

from derivcheck.numeric.finite_diff import (Derivative, Memo, Phi, Slopes, central_difference, certified_difference,
                                           charged_noise, proven_again, scatter_noise, slope_residual, unmoved)
from derivcheck.numeric.hull import hull_distance
from derivcheck.numeric.precision import (LATTICE_MIN_DIFFERENCES, PRECISION_JUMP, lattice_spacing, observed_eps,
                                          spacing_of)
from derivcheck.numeric.regenerated import LARGE_ENTRIES, Regenerated, whole
from derivcheck.numeric.kinks import coincident_kink_interval, piece_slopes, routed_range, shift_direction
from derivcheck.numeric.tolerances import (
    ESTIMATE_SAFETY,
    GRADIENT_ROUNDOFF_ULPS,
    LADDER_RATIO,
    LOSS_ROUNDOFF_ULPS,
    LOW_PRECISION_EPS,
    MAX_RELATIVE_STEP,
    MAX_STEP_GROWTH,
    NOISE_MARGIN,
    ROUGH_SNR,
    SMOOTH_STEP_EXPONENT,
    STEP_EXPONENT,
    relative_step,
)

LossAt = Callable[[Blocks], float]
GradAt = Callable[[Blocks], Blocks]


@dataclass
class Probe:
    """The function and point under test, with what is known of its precision.

    ``noise`` is the absolute rounding noise of one loss evaluation; tests raise it when
    their differences measure more, so later tests start from the measured value.
    """

    loss_at: LossAt
    x: Blocks
    f0: float
    noise: float
    eps_eval: float
    eps_grad: float
    rtol: float = 0.0
    atol: float = 0.0
    grad_at: GradAt | None = None
    values: list[float] = field(default_factory=list)  # every loss value seen, for precision and dependence
    top: float = 0.0  # the largest |value| among them, kept as they come (a check may see 10^5 values)
    work: Blocks = field(default_factory=dict)  # the perturbed point of a large parameter, rewritten at each step
    # Until this many values are seen, each is read for its precision: values coarser than ``eps_eval`` void the
    # tests begun at it (CoarserPrecision), before a ladder spends its rungs on rounding it did not model.
    watch: int = 0
    fine_values: list[float] = field(default_factory=list)  # values at points whose moved entries float32 cannot hold
    kinked: bool = False  # some line through x met a kink at x: x is no point of differentiability
    # In float64 the noise model (a few ulps of the values) is trusted once a finer rung or a measured noise bore it
    # out; until then a FAIL read through one clean stencil is confirmed by the next rung (see ``_confirm_fail``).
    noise_confirmed: bool = False
    # The first nonzero differences from f0 and the power-of-two spacing they all lie on (0 once none does): a loss
    # computed as a difference of large terms changes in steps of their ulp (see ``model_noise``).
    changes: list[float] = field(default_factory=list)
    lattice: float = math.inf
    # Two points on one side of x along one line whose changes are not in proportion to their steps: what rounds
    # on a lattice does that, and exact arithmetic (a loss linear in integer data, a power-of-two step) does not.
    disproportionate: bool = False
    # The noise of a lattice found by walking out along a line whose stencil the loss did not move (``walk_out``),
    # and whether that walk was made (once per check: a loss that ignores its argument would repeat it per line).
    walked_noise: float = 0.0
    walked: bool = False
    # The user's gradient at x less the same code's at x in a finer precision (``gradient_spread``): its rounding,
    # charged along each direction exactly (``_roundings``).
    grad_spread: Blocks | None = None
    step_sums: dict[str, float] = field(default_factory=dict)  # each block's step rounding along dense lines through x

    def evaluate(self, point: Blocks) -> float:
        """The loss at ``point``, recorded."""
        value = self.loss_at(point)
        self.values.append(value)
        self.top = max(self.top, abs(value))
        if value != self.f0 and math.isfinite(value) and self.lattice > 0 and len(self.changes) < LATTICE_SAMPLE:
            change = value - self.f0  # exact: the values are close
            self.lattice = lattice_spacing(change, self.changes, self.eps_eval * max(abs(self.f0), self.top),
                                           self.lattice)
            self.changes.append(change)
        if len(self.values) <= self.watch:
            self._read_precision(point, value)
        return value

    def _read_precision(self, point: Blocks, value: float) -> None:
        """Raise CoarserPrecision once three values at fine points carry fewer bits than ``eps_eval`` allows. A
        value at a point whose moved entries float32 holds exactly (an entry moved by a power of two along a
        direction of zeros and ones) may be short by right (the max of a pooling window is 1 + 2^-17 there): no
        evidence."""
        if not any(_float32_cannot_hold_moved(np.ravel(point[k])[:CHUNK], np.ravel(self.x[k])[:CHUNK]) for k in point):
            return
        self.fine_values.append(value)
        seen = observed_eps(self.fine_values)
        if seen is not None and seen > PRECISION_JUMP * self.eps_eval:
            self.watch = 0
            raise CoarserPrecision(seen)


def _float32_cannot_hold_moved(point: np.ndarray, x: np.ndarray) -> bool:
    """Some entry that moved from ``x`` has more bits than float32 holds."""
    moved = point[point != x]
    return bool(np.any(moved != moved.astype(np.float32)))


class CoarserPrecision(Exception):
    """The loss values carry fewer bits than the precision the tests assumed (float32 work handed back as a
    float): the tests under way are void and start again at the precision read off the values."""


# The resolutions of tests that decide nothing.
UNDECIDED = ("unresolved", "discontinuous", "kinks in the stencil")


@dataclass(frozen=True)
class DirectionalTest:
    """One comparison of the analytic and numeric directional derivative."""

    derivative: Derivative
    analytic: float
    tolerance: float
    passed: bool
    # How a kink was judged: "interval", "separated", "hull" (inside the hull of the pieces gathered
    # nearby), "off-kink formula wrong", or "unresolved" (too many coincident kinks to separate, and
    # outside the gathered pieces' hull:
    # the test decides nothing, counts for no power, and makes its parameter inconclusive);
    # "discontinuous": the loss jumps here, no derivative exists (decides nothing either); "kinks in the stencil":
    # in low precision, a disagreement through a stencil that no slopes proved free of kinks (nor does this).
    resolution: str = ""
    user: float = 0.0  # the part of ``tolerance`` that is the user's rtol/atol, not the finite differences' error

    @property
    def own_tolerance(self) -> float:
        """The finite differences' own tolerance: what sets this test's power (the user's part sets the verdict)."""
        return self.tolerance - self.user

    @property
    def decides(self) -> bool:
        """False where the test could judge nothing (unresolved coincident kinks, a discontinuity)."""
        return self.resolution not in UNDECIDED

    @property
    def signed_error(self) -> float:
        return self.derivative.signed_error(self.analytic)

    @property
    def distance(self) -> float:
        return self.derivative.distance(self.analytic)




def line(probe: Probe, x: Blocks, moves: Blocks, trace: list[tuple[float, float]] | None = None) -> Phi:
    """``t -> L(x + t v)``, staying in the evaluation dtype; every value is recorded (and traced)."""

    seen: list[tuple[float, float]] = []  # (t, change from f0) on this line through x

    def phi(t: float) -> float:
        value = probe.evaluate(moved(x, moves, t, probe.work))
        if trace is not None:
            trace.append((t, value))
        if x is probe.x and not probe.disproportionate and value != probe.f0:
            change = value - probe.f0
            probe.disproportionate = any(t * u > 0 and change * u != c * t for u, c in seen)
            seen.append((t, change))
        return value

    return phi


def moved(x: Blocks, moves: Blocks, t: float, work: Blocks | None = None) -> Blocks:
    """``x + t v`` in the evaluation dtype (the rounding of the step is charged in ``tolerance``).

    A large float64 block (LARGE_ENTRIES) is written into one buffer of ``work``, rewritten at each step, with the
    same bits as ``x + t * v``; the loss gets a read-only view of it, valid during its call. A regenerated direction
    is made chunk by chunk into that buffer at each step, never whole. A fresh point per
    evaluation would cost a temporary and a new array of the parameter's size, and at 10^7 entries a fresh array's
    first writes take about as long as a loss evaluation."""
    point = dict(x)
    for name, d in moves.items():
        base = x[name]
        if work is None or not _buffered(base):
            point[name] = (base + t * d).astype(base.dtype, copy=False)
            continue
        sparse = isinstance(d, Regenerated) and d.support is not None
        buffer = point[name] = point_buffer(work, name, base, keep=sparse)
        flat_b, flat_x = buffer.reshape(-1), base.reshape(-1)
        if sparse:
            _sparse_into(flat_b, base, d.support, t, work, name)
            continue
        for lo in range(0, flat_b.size, CHUNK):  # a chunk at a time: each entry read and written while in cache
            part = flat_b[lo:lo + CHUNK]
            if isinstance(d, Regenerated):  # made again into the point itself: no copy of the direction is kept
                d.chunk(lo, lo + CHUNK, part)
                part *= t
            else:
                np.multiply(d.reshape(-1)[lo:lo + CHUNK], t, out=part)
            part += flat_x[lo:lo + CHUNK]
    return point


def point_buffer(work: Blocks, name: str, base: np.ndarray, keep: bool = False) -> np.ndarray:
    """The buffer of ``work`` a block's perturbed point is written into (made at first use), to be rewritten whole
    (unless ``keep``: ``_sparse_into`` reads what it holds)."""
    buffer = work.get(name)
    if buffer is None or buffer.shape != base.shape:
        buffer = work[name] = np.empty_like(base)
        work.pop(_SPARSE + name, None)
    if not keep:
        work.pop(_SPARSE + name, None)
    return buffer


# The key in ``work`` of what a buffer last written by ``_sparse_into`` holds: (a weak reference to) the point x
# whose entries it holds but at a few, and those few; absent once the buffer was written whole.
_SPARSE = "\x00sparse "


def _sparse_into(flat_b: np.ndarray, base: np.ndarray, support: tuple[np.ndarray, np.ndarray], t: float,
                 work: Blocks, name: str) -> None:
    """``x + t v`` for a direction zero but at a few entries: where the buffer already holds this x's entries but at
    a few, those are put back, else x is copied in; then the support's entries are set, with the bits of
    ``v t + x``. An entry check at 10^7 entries then writes a few entries per evaluation, not the whole point (x's
    own -0.0 stays -0.0 where ``0 t + x`` would make it +0.0: the same number)."""
    flat_x, held = base.reshape(-1), work.get(_SPARSE + name)
    if held is not None and held[0]() is base:
        flat_b[held[1]] = flat_x[held[1]]
    else:
        np.copyto(flat_b, flat_x)
    where, values = support
    flat_b[where] = values * t + flat_x[where]
    work[_SPARSE + name] = (weakref.ref(base), where)  # type: ignore[assignment]


def model_noise(probe: Probe) -> float:
    """Rounding of one loss evaluation: a few ulps of the largest value seen, or of the lattice its changes lie on.

    A loss computed as a difference of large terms (a cross-entropy of 1e-11 as ``logsumexp(z) - z_y`` with ``z``
    of order 1) rounds at their ulp, 1e-16, not at its own, 1e-27: its values are full floats, but every change
    of them is a whole multiple of 2^-52 (``lattice_spacing``), and out of proportion to the steps that made them.
    Changes of a loss that rounds at its own ulp lie on no spacing far above it; those of exact arithmetic (|x| at
    integers, along a power-of-two step) lie on one but in proportion to their steps; a loss that jumps by whole
    units (a count) has a spacing of the order of its values: none of them changes the model."""
    return max(LOSS_ROUNDOFF_ULPS * probe.eps_eval * max(abs(probe.f0), probe.top), lattice_noise(probe))


# A lattice at most this fraction of the loss's values is rounding; a coarser one is the loss's own steps.
LATTICE_FRACTION = 2.0**-10
# The lattice is read off this many first nonzero changes of the loss: enough to show it, and a bounded cost.
LATTICE_SAMPLE = 64


def lattice_noise(probe: Probe) -> float:
    """A few spacings of the lattice the loss's changes lie on; 0 where they lie on none (see ``model_noise``)."""
    on_lattice = (probe.disproportionate and len(probe.changes) >= LATTICE_MIN_DIFFERENCES
                  and 0 < probe.lattice <= LATTICE_FRACTION * max(abs(probe.f0), probe.top))
    return max(LOSS_ROUNDOFF_ULPS * probe.lattice if on_lattice else 0.0, probe.walked_noise)


# A walk out along a line doubles its step at most this many times (to 65,536 times the step: 40% of every entry's
# scale in float64; a sure prediction's cross-entropy, rounded to 0, first moves at 5-10%), and stops once a change
# is this many times the smallest it saw: enough to tell a slope 1.5% off from the analytic one, while the curvature
# over so short a step stays far below one spacing.
WALK_DOUBLINGS = 16
WALK_SPAN = 64
# The fewest changes that show a lattice, and that a slope test fits.
WALK_CHANGES = 2
# A slope explains a walk's change to this many spacings: a mean of terms that each round on the lattice (the
# cross-entropy of 6 sure predictions, -log of a sigmoid rounded near 1) is off by up to half a spacing per term.
WALK_EXPLAINED = 4.0


def walk_out(probe: Probe, phi: Phi, f0: float, step: float, x: Blocks, moves: Blocks, analytic: float) -> None:
    """A stencil whose points all gave f0 along a line the analytic gradient says the loss moves along: is the loss
    flat there, or does it round too coarsely to move at this step (a loss of 1e-12 computed from terms of order 1
    rounds at 2e-16, and a slope of 1e-12 moves it by less at a step of 6e-6)? Walked out at doubling steps (not
    recorded: a dead unit's flatness is still read off the values), the second is a hypothesis the changes must bear
    out: they lie on one lattice far above the values' ulp (or, on none the search reads, their smallest change is
    far above it: ``_coarsest_step``), and the analytic slope (with the curvature that fits best) explains them, or
    the loss grows too fast from its first change on for any slope to be tested there. The probe's walked noise is
    then that step's; a wrong slope, or a dead unit's once it wakes, leaves a part linear in t. A loss that never
    moved is judged by ``_never_moved``. Once per check."""
    if probe.walked or x is not probe.x or not unmoved(phi, f0, step):
        return
    probe.walked = True
    changes: list[tuple[float, float]] = []
    t = step
    for _ in range(WALK_DOUBLINGS):
        t *= 2.0
        try:
            value = probe.loss_at(moved(x, moves, t, probe.work))
        except DerivcheckError:  # left the loss's domain: no evidence further out
            break
        if value == 0.0 != f0:  # at its floor (a sure prediction's p rounded to 1): no slope further out
            break
        if value != f0:
            changes.append((t, value - f0))
            if abs(value - f0) >= WALK_SPAN * min(abs(c) for _, c in changes):
                break
    if len(changes) < WALK_CHANGES:  # flat out to the last step before its one change, if any
        _never_moved(probe, f0, changes[0][0] / 2 if changes else t, analytic)
        return
    values = [abs(f0), probe.top, *(abs(f0 + c) for _, c in changes)]  # a loss of 0 has no ulp of its own
    ulp = probe.eps_eval * max(values)
    spacing = spacing_of((c for _, c in changes), ulp)
    if spacing == 0:
        spacing = _coarsest_step(changes, ulp)
    if 0 < spacing < math.inf and _slope_test(changes, analytic, spacing) is not False:
        probe.walked_noise = LOSS_ROUNDOFF_ULPS * spacing


# A walk's smallest change this many ulps of the values or more, on no lattice the search reads, is taken as the
# step the loss rounds in, for the slope test to bear out or refute.
_COARSE_ULPS = 256.0


def _coarsest_step(changes: list[tuple[float, float]], ulp: float) -> float:
    """The smallest change of a walk, where it is far above the values' ulp (0 elsewhere): the rounding step of a
    loss on a lattice no power-of-two search reads (-log p with p on float32's grid near 1 moves in steps of 2^-23
    stretched by 1/p). A dead unit that wakes further out changes by anything, and its slope is not the analytic
    one: the slope test refutes it."""
    smallest = min(abs(c) for _, c in changes)
    return smallest if smallest >= _COARSE_ULPS * ulp else 0.0


def _never_moved(probe: Probe, f0: float, t: float, analytic: float) -> None:
    """A walk along which the loss never moved, out to ``t``: a flat loss, or one that rounds too coarsely for the
    analytic slope to move it anywhere. Only a slope that would have moved terms of order one (or of the loss's
    values) by more than their rounding over the walk tells them apart: a smaller one is undecided, and the walk's
    noise is that rounding. A cross-entropy of a sure prediction is exactly 0, computed from logits of order 30 as
    logsumexp(z) - z_y, with a gradient of 1e-16; a dead unit's wrong gradient of 1e-10 would move it by 4e-11."""
    rounding = LOSS_ROUNDOFF_ULPS * probe.eps_eval * max(1.0, abs(f0), probe.top)
    if abs(analytic) * t < rounding:
        probe.walked_noise = rounding


def _slope_test(changes: list[tuple[float, float]], analytic: float, spacing: float) -> bool | None:
    """Whether the analytic slope, with the curvature that fits best, explains each change to WALK_EXPLAINED
    spacings (True), leaves a part of them linear in t (False: the walk refutes it), or cannot be tested (None:
    the loss grows faster than any curvature from its first change on, as a sure prediction's cross-entropy does,
    0 at x and then 2, 17.5 and 665 spacings over three doublings).

    A loss of 1e-13 curves by a spacing at 4% of every entry. A wrong slope leaves a part linear in t, which no
    multiple of t^2 takes away over the doublings, and the curvature fitted to it overshoots the last change. A
    faster growth leaves the last change beyond the fit, on the fit's side: that change is set aside, and the fit
    made again on the ones before, while two or more are left."""
    while len(changes) >= WALK_CHANGES:
        left = [c - analytic * t for t, c in changes]
        curvature = sum(r * t * t for r, (t, _) in zip(left, changes)) / max(sum(t**4 for t, _ in changes),
                                                                             math.ulp(0.0))
        fits = [curvature * t * t for t, _ in changes]
        if all(abs(r - f) <= WALK_EXPLAINED * spacing for r, f in zip(left, fits)):
            return True
        if not (fits[-1] != 0 and (left[-1] - fits[-1]) * fits[-1] > 0):
            return False
        changes = changes[:-1]
    return None


def step_for(probe: Probe, slope: float, smooth: bool = False) -> float:
    """eps^(1/3), grown by the cube root of noise over slope when the loss is noisy for its slope.

    ``smooth``: the stencil will be proven smooth or refined (``certify``), so it starts where the Richardson
    value's O(h^4) truncation balances the rounding, eps^(1/5): in float32 four times the usual step, and a
    quarter of the usual noise in the tolerance."""
    base = relative_step(probe.eps_eval, SMOOTH_STEP_EXPONENT if smooth else STEP_EXPONENT)
    scale = probe.eps_eval * abs(slope)
    if probe.noise >= MAX_STEP_GROWTH**3 * scale:
        growth = MAX_STEP_GROWTH
    else:
        growth = max(probe.noise / scale, 1.0) ** (1 / 3)
    return float(min(base * growth, MAX_RELATIVE_STEP))


def tolerance(probe: Probe, d: Derivative, moves: Blocks, g: Blocks, x: Blocks) -> float:
    """Allowed |analytic - numeric| for one directional derivative, from the error estimate."""
    return _tolerance(probe, d, moves, _roundings(probe, moves, g, x))


def _tolerance(probe: Probe, d: Derivative, moves: Blocks, roundings: tuple[float, float]) -> float:
    grad_round, step_round = roundings
    return float(ESTIMATE_SAFETY * d.error + grad_round + step_round / d.step + user_tolerance(probe, d, moves))


def _tolerance_of(probe: Probe, moves: Blocks, roundings: tuple[float, float]) -> Callable[[Derivative], float]:
    """``tolerance`` along one line, its roundings summed once, before the line's loss calls: they depend on the line
    alone, at 10^7 entries each sum is a pass over three arrays (25 ms), asked at every rung, and a large gradient
    is let go of during the loss calls (``checker.held``): read before them, it is not fetched again."""

    def tolerance_of(d: Derivative) -> float:
        return _tolerance(probe, d, moves, roundings)

    return tolerance_of


def _roundings(probe: Probe, moves: Blocks, g: Blocks, x: Blocks | None) -> tuple[float, float]:
    """The rounding of ``<g, v>`` from the user's gradient, and the step's rounding times the step (0 without
    ``x``), one pass over the entries."""
    return _line_sums(probe, moves, g, x)[1]


def _line_sums(probe: Probe, moves: Blocks, g: Blocks, x: Blocks | None) -> tuple[float, tuple[float, float]]:
    """``<g, v>`` and ``_roundings``, in one pass over each block (a regenerated direction is made once for both)."""
    dots = []
    grad_round = 0.0
    step_round = 0.0
    spread = 0.0  # the measured rounding of the gradient along v, where there is one
    for name, v in moves.items():
        # Along a direction with no zero entry the step's sum is the same for every line through x: summed once.
        kept = x is probe.x and isinstance(v, Regenerated) and v.dense
        known = probe.step_sums.get(name) if kept else None
        dot, rounds = _block_sums(v.reshape(-1), g[name].reshape(-1), None if x is None else x[name].reshape(-1), known)
        if kept:
            probe.step_sums[name] = rounds[1]
        dots.append(dot)
        grad_round += rounds[0]
        step_round += rounds[1]
        if probe.grad_spread is not None and name in probe.grad_spread:
            spread += float(np.vdot(probe.grad_spread[name].reshape(-1), v.reshape(-1)))
    return float(sum(dots)), _charged(probe, grad_round, step_round, spread)


def _charged(probe: Probe, grad_round: float, step_round: float, spread: float) -> tuple[float, float]:
    return (GRADIENT_ROUNDOFF_ULPS * probe.eps_grad * float(np.sqrt(grad_round)) + abs(spread),
            2 * probe.eps_eval * float(np.sqrt(step_round)))


def _block_sums(v: np.ndarray | Regenerated, g: np.ndarray, x: np.ndarray | None,
                step_sum: float | None = None) -> tuple[float, tuple[float, float]]:
    """``<g, v>`` (with the bits of ``inner``), ``sum (v (|g| + rms g))^2`` (the gradient's rounding along v) and
    ``sum (|x| g [v != 0])^2`` (the step's; 0 without ``x``; ``step_sum`` where it is known) over one flat block."""
    rms = root_mean_square(g)
    regenerated = isinstance(v, Regenerated)
    dot = 0 if regenerated else np.vdot(g, v)
    grad_round, step_round = 0.0, 0.0
    parts = v.chunks() if regenerated else ((lo, v[lo:lo + CHUNK]) for lo in range(0, v.size, CHUNK))
    dense = regenerated and v.dense  # no entry of v is 0: the step's mask is all ones
    for lo, vc in parts:
        gc = g[lo:lo + vc.size]
        if regenerated:
            dot += np.einsum("i,i->", gc, vc)
        moved = np.abs(gc)
        moved += rms
        moved *= vc
        grad_round += float(np.einsum("i,i->", moved, moved))
        if x is not None and step_sum is None:
            step = np.abs(x[lo:lo + vc.size])
            step *= gc
            if not dense:
                step *= vc != 0
            step_round += float(np.einsum("i,i->", step, step))
    return float(dot), (grad_round, step_round if step_sum is None else step_sum)


def root_mean_square(g: np.ndarray) -> float:
    """The root mean square of a flat block, as ``_block_sums`` charges it."""
    return float(np.sqrt(np.vdot(g, g) / max(g.size, 1)))


def entry_reading(probe: Probe, scale: float, g_i: float, rms: float, x_i: float) -> LineReading:
    """The reading of the line along one entry of a block (``scale`` there, 0 elsewhere) without a pass over the
    block: the same numbers as ``read_line`` (its sums are of zeros and one term), from that entry of the gradient
    and the block's root mean square (no measured spread: ``grad_spread`` is for small parameters)."""
    moved = scale * (abs(g_i) + rms)
    step = abs(x_i) * g_i
    return LineReading(g_i * scale, _charged(probe, moved * moved, step * step, 0.0))


def user_tolerance(probe: Probe, d: Derivative, moves: Blocks) -> float:
    """What the user's ``rtol`` and ``atol`` allow along ``moves`` (per entry, so atol scales with |v|_1)."""
    if not probe.atol:  # |v|_1 is a pass over every entry: 10 ms at 10^7, for each tolerance asked
        return probe.rtol * abs(d.value)
    return probe.atol * sum(_l1(v) for v in moves.values()) + probe.rtol * abs(d.value)


def _l1(v: np.ndarray | Regenerated) -> float:
    """``|v|_1``, chunk by chunk for a regenerated direction."""
    if isinstance(v, Regenerated):
        return float(sum(np.sum(np.abs(part)) for _, part in v.chunks()))
    return float(np.sum(np.abs(v)))


@dataclass(frozen=True)
class LineReading:
    """What a line through x reads of the gradient before its loss calls: ``<g, v>`` and the roundings of it and of
    the step (``_roundings``). Read for several lines at once, a gradient let go of during loss calls
    (``checker.held``) is fetched once for all of them."""

    analytic: float
    roundings: tuple[float, float]


def read_line(probe: Probe, g: Blocks, moves: Blocks) -> LineReading:
    """The reading of the line through ``probe.x`` along ``moves``."""
    moves = _readable(probe, moves)
    return LineReading(*_line_sums(probe, moves, g, probe.x))


def directional_test(probe: Probe, g: Blocks, moves: Blocks, *, x: Blocks | None = None, f0: float | None = None,
                     separate_kinks: bool = True, trace: list[tuple[float, float]] | None = None,
                     certify: bool = False, reading: LineReading | None = None) -> DirectionalTest:
    """Compare ``<g, v>`` with the difference quotient along ``v``; kinks are judged as subgradients.

    ``certify``: in low precision, a stencil is proven free of kinks by the user's gradient at its points (four
    gradient calls, ``certified_difference``) instead of by a finer rung, whose rounding would set the tolerance.
    ``reading``: the line's ``read_line``, read earlier (a line through ``probe.x`` only).

    Examples
    --------
    >>> import numpy as np
    >>> x = {"w": np.array([0.3, -1.2])}
    >>> probe = Probe(lambda p: float(np.sum(np.sin(p["w"]))), x, float(np.sum(np.sin(x["w"]))), 1e-16, 2.2e-16, 2.2e-16)
    >>> directional_test(probe, {"w": np.cos(x["w"])}, {"w": np.array([1.0, 0.5])}).passed
    True
    >>> directional_test(probe, {"w": 1.01 * np.cos(x["w"])}, {"w": np.array([1.0, 0.5])}).passed
    False
    """
    moves = _readable(probe, moves)
    if reading is None:
        reading = LineReading(*_line_sums(probe, moves, g, probe.x if x is None else x))
    test = _judge(probe, g, moves, probe.x if x is None else x, probe.f0 if f0 is None else f0, separate_kinks, trace,
                  certify, reading)
    if not (probe.rtol or probe.atol) or not math.isfinite(test.tolerance):
        return test
    return replace(test, user=user_tolerance(probe, test.derivative, moves))


def _readable(probe: Probe, moves: Blocks) -> Blocks:
    """The direction as the stencil reads it: a regenerated block that ``moved`` writes into the point buffer stays
    regenerated (a whole copy would be one more array of 10^7 entries alive at every loss call); any other is
    made whole once per test."""
    return {k: v if isinstance(v, Regenerated) and _buffered(probe.x[k]) else whole(v) for k, v in moves.items()}


def _buffered(base: np.ndarray) -> bool:
    """Whether ``moved`` writes this block's perturbed point into a reused buffer."""
    return base.dtype == np.float64 and base.size >= LARGE_ENTRIES


def _judge(probe: Probe, g: Blocks, moves: Blocks, x: Blocks, f0: float, separate_kinks: bool,
           trace: list[tuple[float, float]] | None, certify: bool, reading: LineReading) -> DirectionalTest:
    analytic = reading.analytic
    probe.noise = max(probe.noise, model_noise(probe))
    tolerance_of = _tolerance_of(probe, moves, reading.roundings)

    def at_an_end(k: Derivative) -> bool:  # a one-sided derivative: a limiting gradient, no finer step needed
        tol = tolerance_of(k)
        return min(abs(analytic - k.forward), abs(analytic - k.backward)) <= tol

    low = probe.eps_eval > LOW_PRECISION_EPS
    phi = Memo(line(probe, x, moves, trace), f0)  # a proof at half the step reuses the points at h/2
    slopes = stencil_slopes(probe, g, moves, x, analytic) if certify and low else None
    proven = None if slopes is None else certified_difference(phi, f0, step_for(probe, analytic, True), probe.noise,
                                                              slopes)
    if isinstance(proven, Derivative) and not proven.admits(analytic, tolerance_of(proven)):
        assert slopes is not None
        proven = proven if proven_again(phi, f0, proven, probe.noise, slopes) else "kinks"  # a FAIL is proven twice
    d = proven if isinstance(proven, Derivative) else _ladder(probe, phi, f0, analytic, x, moves, at_an_end,
                                                              tolerance_of)
    if d.jump:  # a discontinuous loss has no derivative here: the test decides nothing
        return DirectionalTest(d, analytic, math.inf, True, "discontinuous")
    if d.kink and x is probe.x:
        probe.kinked = True
    # Noise proven at the finest rung is the loss's own, and later tests start from it. Noise that kinks explain
    # as well stays with this line in low precision, where a later line's clean first stencil is confirmed by
    # the next rung, which shows noise above the model there itself (a ReLU net's kinks would otherwise widen
    # every later test); in float64 nothing confirms a clean stencil, and the charge is carried.
    noise = probe.noise
    probe.noise = max(probe.noise, d.noise)
    tol = tolerance_of(d)
    if d.unproven_noise and low:
        probe.noise = noise
    if d.admits(analytic, tol):
        return DirectionalTest(d, analytic, tol, True, "interval" if d.kink else "")
    if proven in ("kinks", "noise") and not d.kink:
        assert slopes is not None
        return _finer_certified(probe, phi, f0, d, analytic, slopes, tolerance_of, tol, noise)
    if not (d.kink and separate_kinks):
        failed = DirectionalTest(d, analytic, tol, False)
        return inside_a_kink_set(probe, g, moves, failed) if separate_kinks and x is probe.x else failed
    return _coincident(probe, g, {k: whole(v) for k, v in moves.items()}, x, d, analytic, tol)


def _ladder(probe: Probe, phi: Phi, f0: float, analytic: float, x: Blocks, moves: Blocks,
            at_an_end: Callable[[Derivative], bool], tolerance_of: Callable[[Derivative], float]) -> Derivative:
    """The step ladder's derivative along a line no slopes proved smooth, read again at the lattice the loss rounds
    on where this line's own values (or a walk out along it) showed one, and a float64 FAIL confirmed."""
    low = probe.eps_eval > LOW_PRECISION_EPS
    costly = not low and sum(v.size for v in moves.values()) >= LARGE_ENTRIES
    d = central_difference(phi, f0, step_for(probe, analytic), probe.noise, at_an_end, low, costly)
    if analytic:
        walk_out(probe, phi, f0, d.step, x, moves, analytic)
    if lattice_noise(probe) > probe.noise:
        # This line's own values showed the loss rounding on a lattice (``model_noise``): read them again at its
        # spacing, from the step that spacing calls for (the points already taken are reused).
        probe.noise = lattice_noise(probe)
        d = central_difference(phi, f0, step_for(probe, analytic), probe.noise, at_an_end, low)
    if low:
        return _read_at_scatter(probe, phi, f0, d, analytic, at_an_end, tolerance_of) if (
            _plain(d) and not d.admits(analytic, tolerance_of(d))) else d
    return _confirm_fail(probe, phi, f0, d, analytic, at_an_end, tolerance_of)


def _plain(d: Derivative) -> bool:
    """Read through a stencil judged by its tolerance alone: no kink, no jump, no proof by the gradient's slopes."""
    return not (d.kink or d.jump or d.certified)


def _confirm_fail(probe: Probe, phi: Phi, f0: float, d: Derivative, analytic: float,
                  at_an_end: Callable[[Derivative], bool], tolerance_of: Callable[[Derivative], float]) -> Derivative:
    """A float64 disagreement read through one clean stencil (the first, or the first clean one below rough rungs),
    before the noise model was borne out: the next rung confirms it, and what the two disagree by joins the error
    (four more evaluations, on a failure only). A loss whose rounding is set by terms far larger than its value (a
    cross-entropy near 0: log(1 + 1e-6) rounds at 1e-16, not at an ulp of 1e-6) rounds on a lattice: one
    stencil's fourth difference is exactly zero about one time in five, and its tolerance came out 1,000 times too
    tight. Agreement bears the model out for the rest of the check, as a measured noise does; from then on only a
    FAIL within MARGINAL tolerances is confirmed. A FAIL the next rung confirms is read between the stencil's
    points as well (four more evaluations): the next rung's points are in simple ratios to the first's, and on a
    lattice they can be clean by the same chance."""
    if d.noise > model_noise(probe) and not d.unproven_noise:
        probe.noise_confirmed = True  # measured at the finest rung: later tests start from it
    # One clean stencil: the first, or the first clean one below rough rungs (read as kinks stepped over; the
    # rounding of a loss of 3e-5 computed from terms of order 1 makes rungs rough and leaves a later one clean by
    # chance as well, and its value is then off by that rounding over a step many times shorter).
    tol = tolerance_of(d)
    if not _plain(d) or d.admits(analytic, tol) or (probe.noise_confirmed and not d.admits(analytic, MARGINAL * tol)):
        return d
    confirmed = central_difference(phi, f0, d.step, probe.noise, at_an_end, confirm=True)
    if confirmed.admits(analytic, tolerance_of(confirmed)):
        probe.noise_confirmed = probe.noise_confirmed or confirmed.error <= ESTIMATE_SAFETY * d.error
        return confirmed
    return _read_at_scatter(probe, phi, f0, confirmed, analytic, at_an_end, tolerance_of)


def _read_at_scatter(probe: Probe, phi: Phi, f0: float, d: Derivative, analytic: float,
                     at_an_end: Callable[[Derivative], bool],
                     tolerance_of: Callable[[Derivative], float]) -> Derivative:
    """A FAIL read through a plain stencil (in float64, one the next rung confirmed, whose agreement says nothing of
    the noise on a lattice: at h and h/8 the points are in ratios of two, and clean by the same chance; in lower
    precision, any): the values between the stencil's points say whether the noise model holds there. Where
    they scatter beyond the model by enough to explain the FAIL, the line is read again at that noise, from the
    step it calls for, and later lines start from it. Where they scatter within it, the FAIL stands and the model
    is borne out. Else the FAIL stands (a gradient 5% off, read where the noise is 1e-6 of it) and later lines
    start from the model still, confirming their FAILs the same way: the noise of a loss that rounds more the
    further it moves (least squares at its minimum) would read as kinks at their wider steps."""
    try:
        scatter = scatter_noise(phi, f0, d.step)
    except DerivcheckError:  # a point between left the loss's domain: the confirmed value stands
        return d
    if scatter <= ROUGH_SNR * probe.noise:
        probe.noise_confirmed = True
        return d
    charged = charged_noise(d, NOISE_MARGIN * scatter)
    if not charged.admits(analytic, tolerance_of(charged)):
        return d
    probe.noise, probe.noise_confirmed = charged.noise, True
    return central_difference(phi, f0, step_for(probe, analytic), probe.noise, at_an_end)


# A FAIL within this many tolerances is confirmed by the next rung even where the noise model was borne out: one
# measured noise is one sample, and a loss's rounding can grow with the step (a least-squares loss at its minimum,
# 3e-18, computed from residuals of products of order 1: its rounding is that of the residuals, which grow with
# the distance from x) and leave a disagreement of 1.05 tolerances on a correct gradient.
MARGINAL = 4.0


# A low-precision stencil that disagrees and that the slopes could not prove smooth is retried this many rungs
# finer (each LADDER_RATIO shorter, its rounding as many times larger) before the test is left undecided.
CERTIFY_DESCENT = 2


def _finer_certified(probe: Probe, phi: Phi, f0: float, d: Derivative, analytic: float, slopes: Slopes,
                     tolerance_of: Callable[[Derivative], float], tol: float, modelled: float) -> DirectionalTest:
    """A low-precision disagreement read through a stencil near kinks the slopes saw (the first, wider one jumped):
    kinks crowding it can shift its value past what its error estimate sees (a ReLU net's, at a step of 1% of
    every entry). Finer stencils are tried until one is proven free of them. A proven FAIL stands; a proven
    pass overturns the FAIL where it is as precise or contradicts the kinked value, else (a noisier stencil that
    agrees with it, as in float16) the FAIL stands. None proven, and kinks still in the finest: the test decides
    nothing (the parameter is then checked entry by entry, or stays inconclusive): no pass, and no false FAIL."""
    h, why = d.step, "kinks"
    for _ in range(CERTIFY_DESCENT):
        h /= LADDER_RATIO
        proven = certified_difference(phi, f0, h, probe.noise, slopes)
        if isinstance(proven, Derivative):
            fine_tol = tolerance_of(proven)
            if not proven.admits(analytic, fine_tol):
                return DirectionalTest(proven, analytic, fine_tol, False)
            # The better measurement decides: the proven one where it is as precise (the kinked one's error never
            # counted its kinks), or where it contradicts the kinked value (which they then shifted).
            if proven.error <= d.error or abs(proven.value - d.value) > ESTIMATE_SAFETY * (proven.error + d.error):
                return DirectionalTest(proven, analytic, fine_tol, True)
            return _kinked_fail(probe, phi, f0, d, analytic, slopes, tolerance_of, tol)
        why = proven
    if why == "jump" or d.noise > modelled:  # a jump, or rounding the ladder measured beyond the model: its verdict
        return DirectionalTest(d, analytic, tol, False)
    return DirectionalTest(d, analytic, tol, True, "kinks in the stencil")


def _kinked_fail(probe: Probe, phi: Phi, f0: float, d: Derivative, analytic: float, slopes: Slopes,
                 tolerance_of: Callable[[Derivative], float], tol: float) -> DirectionalTest:
    """A FAIL read through the ladder's stencil, where a noisier proven one agrees with the analytic value. The
    slopes at the ladder's own stencil (its loss values are at hand: four gradient calls) decide what it is worth:
    kinks they see above their rounding, enough to explain the disagreement (a sixth of their residual bounds one
    kink's shift), leave the test undecided, as the ladder's error estimate never counted them (a float32 ReLU
    net's line crosses dozens within 0.2% of every entry). A stencil they prove free of kinks decides by its
    proven value. Else the FAIL stands: slopes rough only to their own rounding (a float16 gradient's) explain
    nothing."""
    measured, rounded, _ = slope_residual(*slopes(d.step))
    if measured > rounded and measured / 6 >= abs(analytic - d.value) - tol:
        return DirectionalTest(d, analytic, tol, True, "kinks in the stencil")
    at_ladder = certified_difference(phi, f0, d.step, probe.noise, slopes)
    if isinstance(at_ladder, Derivative):
        proven_tol = tolerance_of(at_ladder)
        return DirectionalTest(at_ladder, analytic, proven_tol, at_ladder.admits(analytic, proven_tol))
    return DirectionalTest(d, analytic, tol, False)


def stencil_slopes(probe: Probe, g: Blocks, moves: Blocks, x: Blocks, analytic: float) -> Slopes | None:
    """The user's directional derivatives at ``-h, -h/2, 0, h/2, h`` along ``moves`` and the rounding of one
    (four gradient calls); None without a gradient function."""
    if probe.grad_at is None:
        return None
    grad_at = probe.grad_at

    seen: dict[float, float] = {0.0: analytic}  # a halved stencil shares two points with the wider one

    def slope(t: float) -> float:
        if t not in seen:
            seen[t] = inner(grad_at(moved(x, moves, t, probe.work)), moves)
        return seen[t]

    def slopes(h: float) -> tuple[tuple[float, float, float, float, float], float]:
        return (slope(-h), slope(-h / 2), analytic, slope(h / 2), slope(h)), rounding

    rounding = _roundings(probe, moves, g, None)[0]  # as ``tolerance`` charges it
    return slopes


def _coincident(probe: Probe, g: Blocks, moves: Blocks, x: Blocks, d: Derivative, analytic: float, tol: float) -> DirectionalTest:
    """Outside the one-line interval: several kinks may coincide. Separate them, and check the
    formula just off the kink, where the loss is differentiable."""
    # First the pieces the analytic gradient points to: two points, however many kinks coincide.
    sides = (d.backward, d.forward)
    lo, hi, inside = routed_range(probe.evaluate, x, g, moves, d.step, probe.noise, sides, analytic, tol)
    if inside:
        return _off_kink(probe, moves, x, d, analytic, tol, lo, hi, "hull")
    span = coincident_kink_interval(probe.evaluate, x, moves, d.step, probe.noise, d.backward, d.forward)
    if span is None:
        return _clarke_hull(probe, g, moves, x, d, analytic, tol)
    lo, hi = min(span[0], d.forward, d.backward), max(span[1], d.forward, d.backward)
    if not lo - tol <= analytic <= hi + tol:
        return DirectionalTest(d, analytic, tol, False, "separated")
    return _off_kink(probe, moves, x, d, analytic, tol, lo, hi, "separated")


def inside_a_kink_set(probe: Probe, g: Blocks, moves: Blocks, test: DirectionalTest) -> DirectionalTest:
    """A failed test along a line smooth at x, judged again where x is a kink along another line: the line may lie
    inside the kink set (min(w1, w2) - min(w1, -w2) along w1 at 0, flat there), where its slope is only part of
    the Clarke set's projection; the pieces met nearby decide. Any other test is returned as it is. Tests made
    before x was known to be a kink are passed here again once the joint directions are done."""
    if test.passed or test.derivative.kink or test.derivative.jump or not probe.kinked or test.resolution:
        return test
    again = _clarke_hull(probe, g, {k: whole(v) for k, v in moves.items()}, probe.x, test.derivative, test.analytic,
                         test.tolerance)
    return replace(again, user=test.user)


def _clarke_hull(probe: Probe, g: Blocks, moves: Blocks, x: Blocks, d: Derivative, analytic: float,
                 tol: float) -> DirectionalTest:
    """Kinks too many to separate on a line: gather the pieces that meet at x as one-sided limits from
    nearby points, and test whether the analytic value lies in their convex hull (the Clarke set seen
    along ``moves``). Inside: valid. Outside: undecided, which makes a parameter checked entry by entry
    inconclusive, never a pass."""

    def slope(phi: Phi, f0: float, step: float, noise: float) -> tuple[float, bool]:
        k = central_difference(phi, f0, step, noise)
        return k.value, k.kink or k.jump

    pieces = piece_slopes(probe.evaluate, x, moves, d.step, probe.noise, slope)
    measured = np.concatenate([[d.backward, d.forward], pieces])
    lo, hi = float(np.min(measured)), float(np.max(measured))
    if len(pieces) and hull_distance(pieces[:, None], np.array([analytic])) <= tol:
        return _off_kink(probe, moves, x, d, analytic, tol, lo, hi, "hull")
    widened = Derivative(d.value, d.error, hi, lo, True, d.step, d.evaluations, False, d.noise)
    spread = tol + drift(pieces, d)
    if only_the_line_pieces(pieces, d, analytic) and not lo - spread <= analytic <= hi + spread:
        return DirectionalTest(widened, analytic, tol, False, "outside every piece")
    # Outside the gathered pieces is no proof of a wrong value: a piece that no nearby point reached (the one a
    # tie routed to its first entry lies in) may hold it. The question stays open, and open is not a pass.
    return DirectionalTest(widened, analytic, tol, True, "unresolved")


# Pieces gathered nearby that all sit this close (as a fraction of the kink's jump) to one of the line's own
# one-sided derivatives are the line's two pieces again: its kinks do not combine with others'.
LINE_PIECE_AGREEMENT = 0.01
# At least this many nearby points must have measured a piece before the line's pieces are taken as all there is.
LINE_PIECE_MIN_POINTS = 6


def drift(pieces: np.ndarray, d: Derivative) -> float:
    """How far the pieces gathered nearby lie from the nearer of the line's one-sided derivatives (the smooth
    part's change over the distance to those points)."""
    return float(np.max(np.minimum(np.abs(pieces - d.backward), np.abs(pieces - d.forward)), initial=0.0))


def only_the_line_pieces(pieces: np.ndarray, d: Derivative, analytic: float) -> bool:
    """Every nearby point, in fixed directions that move every entry, found one of the line's own two slopes:
    the Clarke set seen along the line is the interval between them (a separable kink, like |w_i| in an
    elastic net), and a value outside it by more than the tolerance is outside every piece measured.
    Where kinks combine (|a + b| - |b| along a), nearby points find other slopes, and this never holds.
    A line smooth at x has one slope: every nearby point must find it, to that fraction of the gap to the
    analytic value (tied maxima moved together stay tied: every point finds the line's slope again)."""
    jump = abs(d.forward - d.backward) if d.kink else abs(analytic - d.value)
    agreement = LINE_PIECE_AGREEMENT * jump
    return len(pieces) >= LINE_PIECE_MIN_POINTS and agreement > 0 and drift(pieces, d) <= agreement


def _off_kink(probe: Probe, moves: Blocks, x: Blocks, d: Derivative, analytic: float, tol: float, lo: float,
              hi: float, how: str) -> DirectionalTest:
    """A valid subgradient at x: the formula must still be right just off the kink, where the loss is smooth."""
    if probe.grad_at is not None:
        shifted = shifted_point(x, d.step)
        noise = probe.noise
        off = directional_test(probe, probe.grad_at(shifted), moves, x=shifted, f0=probe.evaluate(shifted), separate_kinks=False)
        # Kinks scattered around the shifted point (hundreds of ties broken at random) keep a stencil rough at
        # every rung, which reads as noise there: the loss's own rounding is what it was, and a value read
        # through such a stencil proves nothing wrong.
        probe.noise = noise
        clean = off.derivative.noise <= max(noise, model_noise(probe))
        if not off.passed and not off.derivative.kink and clean:
            return DirectionalTest(d, analytic, tol, False, "off-kink formula wrong")
    widened = Derivative(d.value, d.error, hi, lo, True, d.step, d.evaluations, False, d.noise)
    return DirectionalTest(widened, analytic, tol, True, how)


def shifted_point(x: Blocks, step: float, which: int = 0) -> Blocks:
    """A fixed nearby point (same input, same point, whatever the seed): off any coincident kink."""
    w = shift_direction(x, which)
    return {k: (v + step * w[k]).astype(v.dtype, copy=False) for k, v in x.items()}
