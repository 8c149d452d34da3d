"""Coincident kinks: the valid range of a directional derivative where several kinks meet.

At a single kink the valid values of ``<g, v>`` (Clarke subgradients) are the interval
between the one-sided derivatives along ``v``. Where several kinks coincide (ReLUs of
integer-valued data at exactly 0, tied maxima in many pooling windows) their jumps can
have either sign, and the one-line interval ``[sum of left slopes, sum of right slopes]``
is narrower than the valid range, the sum of every kink's own interval
``[left + sum of negative jumps, left + sum of positive jumps]``.

Moving to a fixed nearby point separates the kinks along the line; a scan across them then
measures each jump, and the sums give the valid range. The nearby points come from a
fixed generator, not from the user's seed: the same input gets the same verdict.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from derivcheck.numeric.blocks import Blocks

from derivcheck.errors import NonFiniteError
from derivcheck.numeric.finite_diff import central_difference
from derivcheck.numeric.tolerances import ESTIMATE_SAFETY, entry_scale, largest_magnitude, scale_by_entry


# The scan covers +-SPAN steps in SPAN * 2 cells of one step each; the shift moves every
# entry by up to one step, so a kink moves by about a step times the ratio of its
# sensitivities to shift and direction (Cauchy-distributed: 96% land within 16).
_SPAN = 16
# Two separating shifts: a jump that two kinks cancel within one cell in one scan shows in the other.
_SHIFTS = 2
# The generator of the separating shifts; fixed, so that the verdict does not depend on the seed.
_SHIFT_SEED = 0x5EED


def shift_direction(x: Blocks, which: int) -> Blocks:
    """A fixed pseudo-random direction over every block, its largest entry at the entry scale."""
    rng = np.random.default_rng([_SHIFT_SEED, which])
    out = {}
    for name, v in x.items():
        z = rng.standard_normal(v.shape)
        z /= max(largest_magnitude(z), np.finfo(float).tiny)  # in place (same bits): no temporaries of x's size
        out[name] = scale_by_entry(z, v)
    return out


def coincident_kink_interval(
    evaluate: Callable[[Blocks], float], x: Blocks, moves: Blocks, step: float, noise: float,
    left: float | None = None, right: float | None = None,
) -> tuple[float, float] | None:
    """The union over the separating shifts of ``[base + negative jumps, base + positive jumps]``.

    ``left`` and ``right`` are the one-sided derivatives at ``x`` itself: the slopes beyond
    every kink. Kinks that the shift moved out of the scan show as the difference between
    them and the scan's end slopes, and are counted as one lump at each end. None when the
    kinks are too many to separate within the scan's budget of evaluations.

    Examples
    --------
    >>> import numpy as np
    >>> up, a = np.array([1.0, -1.0]), np.array([[1.0, 0.5], [-1.0, 0.5]])
    >>> loss = lambda p: float(np.sum(up * np.maximum(a @ p["w"], 0)))   # two ReLUs, both at 0
    >>> lo, hi = coincident_kink_interval(loss, {"w": np.zeros(2)}, {"w": np.array([1.0, 0.0])}, 1e-6, 1e-16)
    >>> round(lo, 6) + 0.0, round(hi, 6)   # the line alone gives [1, 1]; each ReLU may take any of [0, 1]
    (0.0, 2.0)
    """
    lows, highs = [], []
    for which in range(_SHIFTS):
        w = shift_direction(x, which)
        centre = {k: v + step * w[k] for k, v in x.items()}
        try:
            scan = _Scan(lambda t: evaluate(_along(centre, moves, t, x)), step, noise, left, right)
        except NonFiniteError:  # the scan left the loss's domain: the question stays open
            return None
        if not scan.resolved:
            return None
        slopes = scan.slopes()
        if left is not None and right is not None:
            slopes = np.concatenate([[left], slopes, [right]])
        jumps = np.diff(slopes)
        lows.append(float(slopes[0] + np.sum(np.minimum(jumps, 0))))
        highs.append(float(slopes[0] + np.sum(np.maximum(jumps, 0))))
    return min(lows), max(highs)


class _Scan:
    """Values along the shifted line on a grid that is refined wherever a cell holds a kink.

    A cell whose slope differs from both neighbours' holds a kink, perhaps several whose
    jumps of opposite sign would cancel: such cells are split, round after round, so that
    each kink ends up in a cell of its own.
    """

    def __init__(self, phi: Callable[[float], float], step: float, noise: float,
                 left: float | None, right: float | None) -> None:
        self.phi = phi
        self.points = {float(t): phi(float(t)) for t in step * np.arange(-_SPAN, _SPAN + 1)}
        # Where kinks are few among the cells the median second difference is the rounding noise;
        # where they are dense it is not, hence the cap (larger noise was measured by the ladder).
        second = np.diff(np.array([self.points[t] for t in sorted(self.points)]), 2)
        measured = float(np.median(np.abs(second))) / _MEDIAN_SECOND_DIFFERENCE
        self.noise = max(noise, min(measured, _NOISE_CAP * noise))
        span = _SPAN * step
        for _ in range(_EXTENSIONS):
            if 2 * span > _MAX_SPAN or not self._extend(span, left, right):
                break
            span *= 2
        self.resolved = True
        for _ in range(_REFINEMENTS):
            if len(self.points) > _BUDGET:
                self.resolved = False
                break
            if not self._refine():
                break

    def _extend(self, span: float, left: float | None, right: float | None) -> bool:
        """Widen the scan where its end slopes are not yet the slopes beyond every kink."""
        if left is None or right is None:
            return False
        s = self.slopes()
        slack = _BUMP_SNR * self.noise / span
        grow = [sign for sign, end, beyond in ((-1, s[0], left), (1, s[-1], right)) if abs(end - beyond) > slack + 1e-3 * abs(beyond)]
        for sign in grow:
            for t in span * (1 + np.arange(1, _SPAN + 1) / _SPAN):
                self.points[float(sign * t)] = self.phi(float(sign * t))
        return bool(grow)

    def slopes(self) -> np.ndarray:
        ts = np.array(sorted(self.points))
        fs = np.array([self.points[t] for t in ts])
        return np.diff(fs) / np.diff(ts)

    def _refine(self) -> bool:
        ts = sorted(self.points)
        s = self.slopes()
        split = False
        cells = []
        for i in range(1, len(s) - 1):
            slack = _BUMP_SNR * self.noise / (ts[i + 1] - ts[i])
            if abs(s[i] - s[i - 1]) > slack and abs(s[i] - s[i + 1]) > slack:
                cells.append(i)
        if len(self.points) + len(cells) * (_SPLIT - 1) > _BUDGET:
            self.resolved = False
            return False
        for i in cells:
            for t in np.linspace(ts[i], ts[i + 1], _SPLIT + 1)[1:-1]:
                self.points[float(t)] = self.phi(float(t))
        return bool(cells)


# A slope must differ from its neighbours' by this many noise units to mark a kink.
_BUMP_SNR = 8.0
# Median |second difference| of independent noise sigma: 0.6745 * sqrt(6) sigma.
_MEDIAN_SECOND_DIFFERENCE = 0.6745 * 6**0.5
# The scan's own noise estimate is trusted up to this many times the ladder's.
_NOISE_CAP = 16.0
# A scan stops at this many evaluations: kinks too many to separate leave the question open.
_BUDGET = 600
# A cell that hides two kinks is split into this many.
_SPLIT = 8
# At most this many rounds of splitting (cells 8**3 = 512 times finer).
_REFINEMENTS = 3
# At most this many doublings of the scan, for kinks that the shift moved far along the line,
# and never beyond this fraction of each entry's scale (the loss must stay near x).
_EXTENSIONS = 4
_MAX_SPAN = 0.05


def _along(centre: Blocks, moves: Blocks, t: float, x: Blocks) -> Blocks:
    point = dict(centre)
    for name, d in moves.items():
        point[name] = centre[name] + t * d
    return {k: v.astype(x[k].dtype, copy=False) for k, v in point.items()}


# Nearby points at which the pieces meeting at x are sampled: the two ends of the tested line and
# this many fixed pseudo-random directions (each reaches the piece of the cone it points into).
_PIECE_SHIFTS = 6
# A piece's slope is taken with a step this many times shorter than the distance to x, so that the
# stencil stays inside the piece's cone (the ladder steps over any kink nearer than that).
_PIECE_STEP_RATIO = 64.0


def routed_shifts(x: Blocks, g: Blocks, moves: Blocks) -> list[list[Blocks]]:
    """Pairs of nearby points the analytic gradient points to, tried in turn.

    First the entries ``g`` routes a gradient to moved up by their scale and the others down, and the
    opposite: where ``g`` is one vertex of the Clarke set (a tie's gradient routed to one entry, whichever
    it is; a kink's one-sided derivative) one of them lies in the piece whose gradient ``g`` claims to be,
    in every group of coincident kinks at once. Then the line's direction with its sign flipped where
    ``g`` is negative, and the opposite: where each kink's jump along an entry has the sign of its
    gradient (a maximum with a positive upstream value is convex, with a negative one concave) they reach
    the pieces of largest and smallest slope along ``moves``, whose span is the whole Clarke set seen
    along it. Any other piece reached is a piece too: the choice costs power at worst, never soundness.

    Examples
    --------
    >>> import numpy as np
    >>> pairs = routed_shifts({"w": np.array([2.0, 2.0, 1.0])}, {"w": np.array([0.0, 3.0, -1.0])}, {"w": np.ones(3)})
    >>> [[p["w"].tolist() for p in pair] for pair in pairs]
    [[[-2.0, 2.0, 1.0], [2.0, -2.0, -1.0]], [[1.0, 1.0, -1.0], [-1.0, -1.0, 1.0]]]
    """
    up, signed = {}, {}
    for name, v in x.items():
        gb = g.get(name, np.zeros(v.shape))
        up[name] = np.where(gb != 0, 1.0, -1.0) * entry_scale(v)
        signed[name] = np.where(gb < 0, -1.0, 1.0) * moves[name] if name in moves else np.zeros(v.shape)
    return [[up, _negated(up)], [signed, _negated(signed)]]


def _negated(blocks: Blocks) -> Blocks:
    return {k: -v for k, v in blocks.items()}


def piece_slopes(
    evaluate: Callable[[Blocks], float], x: Blocks, moves: Blocks, radius: float, noise: float,
    derivative: Callable[[Callable[[float], float], float, float, float], tuple[float, bool]],
    towards: list[Blocks] | None = None,
) -> np.ndarray:
    """Slopes along ``moves`` of the pieces that meet at ``x``: one-sided limits of the gradient.

    Each comes from a point at ``radius`` (in steps of the entry scale) from ``x`` along a
    separating direction: by default the ends of the line itself and fixed pseudo-random directions
    (the same for every seed), else ``towards``. ``derivative(phi, f0, step, noise)`` returns a slope
    and whether the stencil still saw a kink; such a point measures no single piece and is dropped.
    """
    if towards is None:
        towards = [moves, {k: -v for k, v in moves.items()}]
        towards += [shift_direction(x, 100 + which) for which in range(_PIECE_SHIFTS)]
    slopes = []
    for w in towards:
        centre = {k: (v + radius * w[k]).astype(v.dtype, copy=False) if k in w else v for k, v in x.items()}
        try:
            f0 = evaluate(centre)
            slope, kinked = derivative(lambda t: evaluate(_along(centre, moves, t, x)), f0,
                                       radius / _PIECE_STEP_RATIO, noise)
        except NonFiniteError:  # that side leaves the loss's domain: no piece there
            continue
        if not kinked:
            slopes.append(slope)
    return np.array(slopes)




# The stencil at a routed point steps this many times shorter than the distance to x: every entry was moved by
# up to the full distance, so tied entries are about that far apart, and a longer step keeps the rounding small
# against the slope (a kink nearer than that is stepped over by the ladder, or drops the point).
_ROUTED_STEP_RATIO = 4.0


def routed_range(evaluate: Callable[[Blocks], float], x: Blocks, g: Blocks, moves: Blocks, radius: float,
                 noise: float, sides: tuple[float, float], analytic: float, tol: float) -> tuple[float, float, bool]:
    """The span of the line's one-sided slopes ``sides`` and of the pieces at the points ``routed_shifts``
    gives, pair after pair until ``analytic`` lies in it within ``tol`` and the pieces' own error:
    (low, high, whether it does). Two to four points however many kinks coincide, where a scan across
    them costs evaluations in proportion to their number."""
    lo, hi, margin = min(sides), max(sides), tol
    for pair in routed_shifts(x, g, moves):
        for w in pair:
            piece = _piece_at(evaluate, x, moves, {k: radius * v for k, v in w.items()}, radius, noise)
            if piece is not None:
                # A piece's own error widens the span by at most the test's tolerance again: a stencil that
                # read kinks around its point as noise would otherwise widen it enough to admit anything.
                lo, hi, margin = min(lo, piece[0]), max(hi, piece[0]), max(margin, tol + min(piece[1], tol))
        if lo - margin <= analytic <= hi + margin:
            return lo, hi, True
    return lo, hi, False


def _piece_at(evaluate: Callable[[Blocks], float], x: Blocks, moves: Blocks, shift: Blocks, radius: float,
              noise: float) -> tuple[float, float] | None:
    """(slope, margin of its error estimate) along ``moves`` at ``x + shift``; None where the stencil sees a kink
    (the point is in no single piece: ties the routing left tied) or leaves the loss's domain."""
    centre = {k: (v + shift[k]).astype(v.dtype, copy=False) if k in shift else v for k, v in x.items()}
    try:
        # Two rungs agreeing on a kink end the descent: the point is in no single piece, and stepping past the
        # kink would cost evaluations to learn nothing.
        k = central_difference(lambda t: evaluate(_along(centre, moves, t, x)), evaluate(centre),
                               radius / _ROUTED_STEP_RATIO, noise, lambda kink: True)
    except NonFiniteError:
        return None
    return None if k.kink or k.jump else (k.value, ESTIMATE_SAFETY * k.error)
