"""Directional finite differences that tell rounding noise, curvature and kinks apart.

Everything here works on a scalar function of one variable ``phi(t) = L(x + t v)``. At each
rung of a step ladder ``h_k = h_0 / LADDER_RATIO**k`` the five-point stencil
``{-h, -h/2, 0, h/2, h}`` gives

* central differences ``D(h)``, ``D(h/2)`` and Richardson ``R = (4 D(h/2) - D(h)) / 3``;
* one-sided Richardson derivatives ``F = 2 F(h/2) - F(h)`` (forward) and ``B`` (backward),
  with the curvature term removed;
* the fourth difference ``Q = phi(-h) - 4 phi(-h/2) + 6 phi(0) - 4 phi(h/2) + phi(h)``,
  which is exactly ``-h (F - B)``: the jump between the one-sided derivatives, times ``h``.

How ``Q`` scales with the step says what the stencil sees. Rounding noise keeps it constant
(about ``sqrt(70) sigma``); a kink inside the stencil makes it shrink like ``h`` (``|Q| =
jump * h`` at an exact kink) until the step is shorter than the distance to the kink, where
it drops to the noise; smooth curvature makes it shrink like ``h**4``. So a rough stencil is
refined: a kink *near* ``t = 0`` is stepped over, a kink *at* ``t = 0`` is recognised by
``Q`` shrinking in proportion to ``h`` rung after rung, and noise larger than modelled is
measured from ``Q`` itself, at the scale of the steps that are used, never from a probe that
a kink can pollute.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from derivcheck.numeric.precision import coarse_spacing
from derivcheck.numeric.tolerances import ESTIMATE_SAFETY, LADDER_RATIO, MAX_RUNGS, NOISE_MARGIN, ROUGH_SNR

Phi = Callable[[float], float]
# h -> (the slopes phi' at -h, -h/2, 0, h/2, h; the rounding of one of them).
Slopes = Callable[[float], tuple[tuple[float, float, float, float, float], float]]

# Noise amplification of each estimate, for independent noise sigma per evaluation.
_Q_NOISE = math.sqrt(70.0)  # 1 + 16 + 36 + 16 + 1
_RICHARDSON_NOISE = 2.0  # R = (4 D(h/2) - D(h))/3  ->  about 2 sigma / h
_ONE_SIDED_NOISE = 5.1  # (4 phi(h/2) - phi(h) - 3 phi(0)) / h  ->  sqrt(26) sigma / h
_SECOND_DIFFERENCE_ROUNDING = 10.0  # S(h) - 4 S(h/2) from five rounded slopes  ->  sqrt(6 + 16 * 6) rounding
# Q shrinks by LADDER_RATIO per rung at a kink and stays put for noise: a ratio above this
# half-way mark (on a log scale) reads as noise.
_NOISE_RATIO = 1.0 / math.sqrt(LADDER_RATIO)
# Jumps from two rungs of an exact kink agree to within this fraction (curvature, noise).
_JUMP_AGREEMENT = 0.25
# A discontinuity: D(h/2) - D(h) at least this fraction of D(h), a jump this many times the noise, and
# the difference growing by LADDER_RATIO per rung to this fraction.
_JUMP_HINT = 1e-3
_JUMP_SNR = 1e3
_JUMP_SAME = 0.05
# A jump must look like one down to steps this fraction of the first (a kink closer to 0 than
# that, about 1e-13 relative, is indistinguishable from a jump).
JUMP_DEPTH = 1e-8


@dataclass(frozen=True)
class Derivative:
    """A finite-difference derivative with its error estimate and what the stencil saw.

    ``kink`` is a non-differentiable point at ``t = 0`` (``forward`` and ``backward`` are
    then the one-sided derivatives); ``refined`` says that the first stencil was rough (a
    kink within the first step, or strong curvature) and a shorter step gave the value;
    ``noise`` is the rounding noise per evaluation that was used.
    """

    value: float
    error: float
    forward: float
    backward: float
    kink: bool
    step: float
    evaluations: int
    refined: bool = False
    noise: float = 0.0
    jump: bool = False  # phi is discontinuous at 0: no derivative exists, the value means nothing
    # The noise was measured from rough rungs while the finest rung, all points equal to f0, could not tell noise
    # from kinks at several distances: an upper bound for this line, not a property of the loss elsewhere.
    unproven_noise: bool = False
    # The first stencil was proven free of kinks by the slopes at its points (``slopes``): no finer rung was needed.
    certified: bool = False
    residual: float = 0.0  # a proven stencil's |S(h) - 4 S(h/2)| (see ``certified_difference``)
    residual_rounding: float = 0.0  # what the slopes' own rounding can put into ``residual``

    def admits(self, analytic: float, tolerance: float) -> bool:
        """Whether ``analytic`` agrees: close to ``value``, or between the one-sided values at a kink."""
        return self.distance(analytic) <= tolerance

    def distance(self, analytic: float) -> float:
        """How far ``analytic`` lies from what the differences allow (0 inside a kink's interval)."""
        if self.kink:
            lo, hi = min(self.forward, self.backward), max(self.forward, self.backward)
            return max(lo - analytic, analytic - hi, 0.0)
        return abs(analytic - self.value)

    def signed_error(self, analytic: float) -> float:
        """Analytic minus numeric, zero inside a kink's interval."""
        if self.kink:
            return math.copysign(self.distance(analytic), analytic - self.value)
        return analytic - self.value


class Memo:
    """``phi`` with each ``t`` evaluated once (``f0`` at 0); ``evaluations`` counts the points besides 0.

    >>> calls = []
    >>> at = Memo(lambda t: calls.append(t) or 2 * t, 0.0)
    >>> at(1.0), at(1.0), at.evaluations, calls
    (2.0, 2.0, 1, [1.0])
    """

    def __init__(self, phi: Phi, f0: float) -> None:
        self._phi = phi
        self._cache = {0.0: f0}

    def __call__(self, t: float) -> float:
        if t not in self._cache:
            self._cache[t] = self._phi(t)
        return self._cache[t]

    @property
    def evaluations(self) -> int:
        return len(self._cache) - 1


@dataclass(frozen=True)
class _Rung:
    h: float
    central: float  # Richardson
    truncation: float  # |D(h/2) - D(h)| / 3
    forward: float
    backward: float
    side_truncation: float  # O(h) terms left in the one-sided estimates
    q: float  # fourth difference
    d1: float = 0.0  # central differences at h and h/2
    d2: float = 0.0


def _rung(phi: Phi, f0: float, h: float) -> _Rung:
    fp, fm, fp2, fm2 = phi(h), phi(-h), phi(h / 2), phi(-h / 2)
    d1, d2 = (fp - fm) / (2 * h), (fp2 - fm2) / h
    forward = 2 * (fp2 - f0) / (h / 2) - (fp - f0) / h
    backward = 2 * (f0 - fm2) / (h / 2) - (f0 - fm) / h
    side = abs((fp2 - f0) / (h / 2) - (fp - f0) / h) + abs((f0 - fm2) / (h / 2) - (f0 - fm) / h)
    q = fm - 4 * fm2 + 6 * f0 - 4 * fp2 + fp
    return _Rung(h, (4 * d2 - d1) / 3, abs(d2 - d1) / 3, forward, backward, side, q, d1, d2)


def _smooth(r: _Rung, noise: float, evaluations: int, near: bool) -> Derivative:
    # |Q|/(2h) is what a kink too small to be classified could shift the central value by.
    error = r.truncation + abs(r.q) / (2 * r.h) + _RICHARDSON_NOISE * noise / r.h
    return Derivative(r.central, error, r.forward, r.backward, False, r.h, evaluations, near, noise)


def _kink(r: _Rung, finer: _Rung, noise: float, evaluations: int) -> Derivative:
    """One-sided derivatives from the coarser rung (least noise); their error from the two rungs' disagreement."""
    error = max(abs(r.forward - finer.forward), abs(r.backward - finer.backward)) + _ONE_SIDED_NOISE * noise / finer.h
    return Derivative(r.central, error, r.forward, r.backward, True, r.h, evaluations, False, noise)


def central_difference(phi: Phi, f0: float, step: float, noise: float,
                       settled: Callable[[Derivative], bool] | None = None, confirm: bool = False,
                       costly: bool = False) -> Derivative:
    """Derivative of ``phi`` at 0 with an error estimate; steps over near kinks, recognises kinks at 0.

    ``noise`` is the modelled absolute rounding noise of one evaluation of ``phi``; where the
    differences show more, the measured value is used (and returned in ``noise``).
    ``settled(kink)`` may end the descent as soon as two rungs agree on a kink at 0 (a
    caller whose value is one of the one-sided derivatives needs no finer step).
    ``confirm`` compares a clean first stencil with the next rung and adds what they disagree
    by to the error: in low precision the step is wide and the noise high, so many kinks can
    sit inside a stencil that still looks clean, their effects on the derivative adding up
    while their fourth differences cancel, and the Richardson estimate alone undercounts.
    ``costly``: each evaluation is costly (a loss over millions of entries, which sums as many
    terms and rounds far above two ulps): a rough first rung asks the finest rung first, whose
    Q is a sample of the noise itself, before the next (four evaluations fewer where it is noise,
    four more where a kink at 0 made the first rung rough).

    Examples
    --------
    >>> import math
    >>> d = central_difference(math.sin, 0.0, 1e-3, 1e-16)
    >>> abs(d.value - 1.0) < 1e-12, d.kink, d.evaluations
    (True, False, 4)
    >>> d = central_difference(abs, 0.0, 1e-3, 1e-16)
    >>> d.kink, d.backward, d.forward
    (True, -1.0, 1.0)
    >>> near = central_difference(lambda t: max(t - 1e-9, 0.0), 0.0, 1e-5, 1e-17)
    >>> near.kink, near.refined, abs(near.value) < 1e-6
    (False, True, True)
    """
    at = Memo(phi, f0)
    rungs = [_rung(at, f0, step)]
    if _may_jump(rungs[0], noise):
        jump = _jump_descent(at, f0, rungs[0], noise)  # evaluations cached: the descent below reuses them
        if jump is not None:
            return _discontinuous(jump, noise, at.evaluations)
    while True:
        threshold = ROUGH_SNR * _Q_NOISE * noise
        if abs(rungs[-1].q) <= threshold:
            stalled = _stalled(at, f0, rungs)
            if stalled > noise:  # the clean rung did not move the loss: its rounding is what the rougher ones showed
                return _again(at, f0, step, stalled, settled, proven=False)
            if confirm and len(rungs) == 1:
                return _confirmed(rungs[0], _rung(at, f0, step / LADDER_RATIO), noise, at.evaluations)
            return _settle(rungs, noise, at.evaluations)
        # Noise larger than modelled: the ladder runs again with it (at least doubled: the recursion ends).
        measured = _noise_shown(at, f0, step, rungs, noise, threshold, costly)
        if measured is not None:
            return _again(at, f0, step, max(2 * noise, measured[0]), settled, measured[1])
        if len(rungs) >= 2 and _agree(rungs[-2], rungs[-1], noise):
            kink = _kink(rungs[-2], rungs[-1], noise, at.evaluations)
            # A kink at 0 leaves the one-sided estimates an error that shrinks with the step; a kink
            # just beside 0 leaves one of order jump * distance / h, which grows: only the first settles.
            shrinking = rungs[-1].side_truncation < rungs[-2].side_truncation
            if settled is not None and shrinking and settled(kink):
                return kink
        if len(rungs) > MAX_RUNGS:
            return _coarsest_kink(rungs, noise, at.evaluations)
        rungs.append(_rung(at, f0, rungs[-1].h / LADDER_RATIO))


# Where ``scatter_noise`` reads a stencil between its points, as fractions of its step: none of them a simple ratio
# of the others or of the stencil's +-1/2, +-1 (a loss that rounds on a lattice along a line moves by whole
# multiples of one spacing at points in simple ratios just as often as a linear one does).
_BETWEEN = (-0.8944271909999159, -0.30901699437494745, 0.4472135954999579, 0.8660254037844386)
# The degree of the polynomial fitted to the nine values: a stencil proven clean leaves no more curvature.
_SCATTER_DEGREE = 4


def scatter_noise(phi: Phi, f0: float, h: float) -> float:
    """The noise per value that a smooth fit leaves at a stencil's five points and four more between them.

    A loss that rounds on a lattice far above its own ulp (a cross-entropy of 2e-4, -log p with p on float64's
    grid near 1) gives stencils whose points lie in proportion by chance, one time in four or so: a fourth
    difference of exactly zero, read as a clean stencil at a noise model 2,000 times too small. Points in no
    simple ratio to the stencil's show the rounding (a third of a spacing, rms); a smooth loss leaves them its
    own rounding. Four evaluations.

    >>> import math
    >>> lattice = lambda t: round((1e-3 + 0.7 * t) / 2.0**-52) * 2.0**-52  # rounds on 2^-52, far above its ulp
    >>> 0.1 < scatter_noise(lattice, lattice(0.0), 1e-8) / 2.0**-52 < 1.0
    True
    >>> scatter_noise(math.sin, 0.0, 1e-3) < 1e-16
    True
    """
    ts = [0.0, h, -h, h / 2, -h / 2, *(c * h for c in _BETWEEN)]
    changes = [phi(t) - f0 for t in ts]
    s = [t / h for t in ts]  # on [-1, 1]: a well-conditioned fit
    fit = np.polynomial.polynomial.polyfit(s, changes, _SCATTER_DEGREE)
    left = np.asarray(changes) - np.polynomial.polynomial.polyval(s, fit)
    return float(np.sqrt(np.sum(left**2) / (len(ts) - _SCATTER_DEGREE - 1)))


def charged_noise(d: Derivative, noise: float) -> Derivative:
    """``d`` with a noise per value measured after it was read charged to its error, as the ladder charges its own."""
    extra = max(noise - d.noise, 0.0)
    return replace(d, error=d.error + _RICHARDSON_NOISE * extra / d.step, noise=max(d.noise, noise))


def _again(at: Memo, f0: float, step: float, noise: float, settled: Callable[[Derivative], bool] | None,
           proven: bool) -> Derivative:
    """The ladder run again at a noise the rungs showed (their points reused), counting every evaluation made."""
    again = central_difference(at, f0, step, noise, settled)
    return replace(again, evaluations=at.evaluations, unproven_noise=again.unproven_noise or not proven)


def unmoved(phi: Phi, f0: float, h: float) -> bool:
    """Every point of the stencil at ``h`` gave exactly f0 (the points are cached where ``phi`` is a Memo)."""
    return all(phi(t) == f0 for t in (h, -h, h / 2, -h / 2))


def _stalled(at: Phi, f0: float, rungs: list[_Rung]) -> float:
    """Half the lattice spacing the loss rounds to, where the last rung's points all gave f0 while the rungs before
    moved it by a few whole spacings of a power of two far above the modelled noise (a loss of 1e-11 computed from
    terms of order 1 moves in steps of 2^-52: 1 or 2 of them at h, none at h/8); else 0. A loss flat for a while
    along the line (a kink beyond which every unit is dead) stalls too, but its changes lie on no such spacing."""
    if len(rungs) < 2 or not unmoved(at, f0, rungs[-1].h):
        return 0.0
    changes = [at(t) - f0 for r in rungs[:-1] for t in (r.h, -r.h, r.h / 2, -r.h / 2)]  # cached: no new evaluation
    return coarse_spacing(changes) / 2


def _measured_noise(at: Phi, f0: float, step: float, rungs: list[_Rung], noise: float,
                    threshold: float) -> tuple[float, bool] | None:
    """The noise per evaluation that the last rungs show, and whether the finest rung proved it; None where kinks
    explain them. Q did not shrink with the step as a kink at 0 would, and the finest step is rough too."""
    if not _noise_like(rungs[-2], rungs[-1], noise):
        return None
    finest = _finest_rough(at, f0, step, threshold)
    if finest is None:
        return None
    # A finest rung whose points all gave f0 proves nothing (a loss flat on one side of a kink, a float32 loss
    # that does not see so short a step): there, only two rungs' Q of a similar size count as noise.
    resolved = finest.d1 != 0 or finest.d2 != 0
    if not resolved and abs(rungs[-1].q) <= _NOISE_RATIO * abs(rungs[-2].q):
        return None
    other = finest if resolved else rungs[-2]
    from_q = math.sqrt((rungs[-1].q ** 2 + other.q ** 2) / 2) / _Q_NOISE
    return NOISE_MARGIN * max(from_q, _spread(finest) if resolved else 0.0), resolved


def _noise_shown(at: Phi, f0: float, step: float, rungs: list[_Rung], noise: float, threshold: float,
                 costly: bool) -> tuple[float, bool] | None:
    """The noise the rough rungs show (``_measured_noise``), or on a costly line the finest rung's alone, asked
    right after a rough first rung (``_finest_noise``); None where kinks explain them as well."""
    if len(rungs) >= 2:
        return _measured_noise(at, f0, step, rungs, noise, threshold)
    return _finest_noise(at, f0, step, threshold) if costly else None


def _finest_noise(at: Phi, f0: float, step: float, threshold: float) -> tuple[float, bool] | None:
    """The noise per evaluation the finest rung shows where it is rough and resolved (its points moved); None
    where it is clean (a kink at 0 made the first rung rough: the ladder goes on) or its points all gave f0."""
    finest = _finest_rough(at, f0, step, threshold)
    if finest is None or (finest.d1 == 0 and finest.d2 == 0):
        return None
    return NOISE_MARGIN * max(abs(finest.q) / _Q_NOISE, _spread(finest)), True


def _noise_like(coarse: _Rung, fine: _Rung, noise: float) -> bool:
    """Two rough rungs whose Q did not shrink as a kink at 0 makes it (by the ladder ratio, sign kept): worth the
    finest rung's four evaluations to tell noise from kinks at several distances. Asked from the second rung on,
    so a noisy loss is measured after three rungs (twelve evaluations) whatever its Q's happen to be, instead of
    waiting, rung by rung, for two consecutive Q's of a similar size."""
    return abs(fine.q) > _NOISE_RATIO * abs(coarse.q) or not _agree(coarse, fine, noise)


def _finest_rough(at: Phi, f0: float, step: float, threshold: float) -> _Rung | None:
    """The ladder's finest rung if it is rough at the modelled noise, else the rung above it if that one is (four
    evaluations more where the finest is clean), else None.

    Clean there, a Q that did not shrink from one rung to the next came from kinks at several distances inside
    the stencil (tiny biases put ReLUs' kinks at 1e-9 and 1e-7 from x), whose Q rises and falls as the step
    passes them, not from noise, which no step escapes. Rough there, its Q is a sample of the noise itself. The
    descent reaches that rung at the latest (its evaluations are cached). A rung whose points all gave f0 is
    never clean, and proves nothing either: the caller decides."""
    # So short a step leaves no curvature in D(h/2) - D(h), and a kink at 0 none either: what it shows is noise. A
    # loss that rounds on a lattice (log(1 + 1e-6) at 1e-16) gives a fourth difference of exactly zero there about
    # one time in five, while D(h/2) and D(h) differ by 10%. Where it moves by a few steps of a lattice, its two
    # sides can round alike, in proportion to the step, with both zero (a loss of 1e-3 computed from terms of order
    # 1, moved by 4 and 8 steps of 2^-52): the rung above it, as far below any kink but rough, shows the noise then.
    for depth in (MAX_RUNGS, MAX_RUNGS - 1):
        fine = _rung(at, f0, step / LADDER_RATIO**depth)
        clean = abs(fine.q) <= threshold and _spread(fine) <= threshold / _Q_NOISE and (fine.d1 != 0 or fine.d2 != 0)
        if not clean:
            return fine
    return None


# The noise of h (D(h/2) - D(h)) = (f(h/2) - f(-h/2)) - (f(h) - f(-h)) / 2, in units of one value's noise.
_D_NOISE = math.sqrt(2.5)


def _spread(r: _Rung) -> float:
    """The noise per value that D(h/2) - D(h) shows at a rung too short for curvature."""
    return abs(r.d2 - r.d1) * r.h / _D_NOISE


def _may_jump(r: _Rung, noise: float) -> bool:
    """D(h/2) - D(h) large against D and against the noise: worth one finer rung to see whether phi jumps at 0."""
    e = r.d2 - r.d1
    return abs(e) > _JUMP_HINT * abs(r.d1) and 2 * r.h * abs(e) > _JUMP_SNR * max(noise, 0.0)


def _jump_descent(at: Phi, f0: float, first: _Rung, noise: float) -> _Rung | None:
    """The finest rung, if D(h/2) - D(h) grows like 1/h from the first step down to JUMP_DEPTH of it.

    A kink at a distance d from 0 looks like a jump of size (its slope change) * d while the
    step is longer than d, and stops looking like one below; a true jump never stops.
    """
    r = first
    while r.h > JUMP_DEPTH * first.h:
        finer = _rung(at, f0, r.h / LADDER_RATIO)
        if not _jumps(r, finer, noise):
            return None
        r = finer
    return r


def _jumps(coarse: _Rung, fine: _Rung, noise: float) -> bool:
    """phi jumps at 0: D(h/2) - D(h) grows like 1/h from one rung to the next.

    A jump J at 0 adds J / (2h) to D(h) (for any split of J between the sides), so
    D(h/2) - D(h) = J / (2h) exactly, and LADDER_RATIO times that one rung finer; a
    derivative makes it shrink like h^2, a kink keeps it about constant, noise scatters it.
    The fourth difference cannot tell: for an odd jump (sign(t)) it is zero.
    """
    e0, e1 = coarse.d2 - coarse.d1, fine.d2 - fine.d1
    return _may_jump(coarse, noise) and abs(e1 - LADDER_RATIO * e0) <= _JUMP_SAME * abs(LADDER_RATIO * e0)


def _discontinuous(r: _Rung, noise: float, evaluations: int) -> Derivative:
    return Derivative(r.central, math.inf, r.forward, r.backward, False, r.h, evaluations, False, noise, jump=True)


def certified_difference(phi: Phi, f0: float, step: float, noise: float, slopes: Slopes) -> Derivative | str:
    """The Richardson value of one stencil at ``step``, proven free of kinks by ``slopes(h)`` (the derivatives of
    ``phi`` at its five points, from the gradient under test, and the rounding of one); else why not: "kinks"
    (the slopes jump inside the stencil), "noise" (the values scatter beyond the modelled rounding) or "jump"
    (the loss itself jumps). The caller then runs the ladder from its own step: a wide stencil that crosses
    kinks is no start for it (a ReLU net's kinks at 2% of every entry hide from the fourth difference and from
    the next rung).

    With ``G`` the slopes at ``-h, -h/2, 0, h/2, h``, the second differences ``S(h) = G(h) - 2G(0) + G(-h)`` and
    ``S(h/2)`` follow ``h^2`` on a smooth line, so ``|S(h) - 4 S(h/2)|`` is ``h^4 f^(5) / 16`` there: thirty times
    the Richardson value's truncation. A kink at a distance ``s`` with ``h/2 < |s| < h`` puts its jump ``J``
    into ``S(h)`` alone and shifts the Richardson value by at most ``J / 12``; with ``0 < |s| < h/2`` it puts
    ``J`` into both, ``3 J`` into the residual, and shifts the value by at most ``J / 2``: a sixth of the
    residual bounds what one kink and the truncation could shift, however the stencil's own fourth
    difference cancels. The slopes' third difference ``T`` predicts the curvature in the fourth difference,
    ``Q = h T / 4``: what ``Q`` shows beyond it is rounding, which must be within the modelled noise (and
    is charged where it exceeds it). A loss that jumps inside the stencil makes ``D(h/2) - D(h)`` grow like
    ``1/h``, which the slopes' ``-S(h)/8`` does not explain. None of these tests moves with an error of the
    gradient that is smooth along the line beyond that error's share of the curvature, so the proof, and
    the power its tighter tolerance claims, stand for a wrong gradient too; one whose slopes jump where the
    loss has no kink is not proven.

    Examples
    --------
    >>> import math
    >>> slopes = lambda h: ((math.cos(-h), math.cos(-h / 2), 1.0, math.cos(h / 2), math.cos(h)), 1e-16)
    >>> d = certified_difference(math.sin, 0.0, 2e-2, 1e-16, slopes)
    >>> abs(d.value - 1.0) < 1e-9, d.certified, d.step, d.evaluations  # curvature above the rounding: halved twice
    (True, True, 0.005, 8)
    >>> kinked = lambda h: ((-1.0, -1.0, 1.0, 1.0, 1.0), 1e-16)  # |t - 1e-3|: a kink inside the stencil
    >>> certified_difference(lambda t: abs(t - 1e-3), 1e-3, 2e-2, 1e-16, kinked)
    'kinks'
    """
    at = Memo(phi, f0)
    best = _proven(_rung(at, f0, step), noise, slopes)
    # Halving the step doubles the rounding's share and divides the curvature's by 16: worth two more loss and
    # two more gradient calls where the curvature's share is over four times the rest (a direction over thousands
    # of entries), which halving at least halves; nearer balance it would gain little.
    while isinstance(best, Derivative) and at.evaluations < _MOST_HALVED and (
            _curvature_share(best) > _HALVE_ABOVE * (best.error - _curvature_share(best))):
        finer = _proven(_rung(at, f0, best.step / 2), noise, slopes)
        if isinstance(finer, str) or finer.error >= best.error:
            break
        best = finer
    return best if isinstance(best, str) else replace(best, evaluations=at.evaluations)


# At most two halvings: 4 + 2 + 2 points besides f0.
_MOST_HALVED = 8
_HALVE_ABOVE = 4.0


def _curvature_share(d: Derivative) -> float:
    """What a proven stencil's error charges for kinks and truncation: a sixth of the slopes' residual."""
    return (d.residual + d.residual_rounding) / 6


def slope_residual(values: tuple[float, float, float, float, float], rounding: float) -> tuple[float, float, float]:
    """``|S(h) - 4 S(h/2)|`` of the slopes at a stencil's five points (``slopes(h)``), the rounding it may carry, and
    ``S(h)``."""
    gm, gm2, g0, gp2, gp = values
    s_h, s_h2 = gp - 2 * g0 + gm, gp2 - 2 * g0 + gm2
    return abs(s_h - 4 * s_h2), _SECOND_DIFFERENCE_ROUNDING * rounding, s_h


def _proven(r: _Rung, noise: float, slopes: Slopes) -> Derivative | str:
    """The rung's certified derivative, or why it is not proven."""
    values, rounding = slopes(r.h)
    gm, gm2, g0, gp2, gp = values
    measured, rounded, s_h = slope_residual(values, rounding)
    residual = measured + rounded
    if _RICHARDSON_NOISE * noise / r.h + residual / 6 > _smooth(r, noise, 4, False).error:
        return "kinks"  # or curvature so strong that the unproven estimate is as tight
    q_gap = abs(r.q - r.h * (gp - 2 * gp2 + 2 * gm2 - gm) / 4)
    if q_gap > ROUGH_SNR * _Q_NOISE * noise + r.h * rounding:
        return "noise"
    if _may_jump(r, noise) and abs((r.d2 - r.d1) + s_h / 8) > abs(r.d2 - r.d1) / 2:
        return "jump"
    charged = _RICHARDSON_NOISE * max(noise, q_gap / _Q_NOISE) / r.h + residual / 6
    return Derivative(r.central, charged, r.forward, r.backward, False, r.h, 4, False, noise, certified=True,
                      residual=measured, residual_rounding=rounded)


# A proven disagreement stands where half the step proves it again and the slopes' residual shrank at least this
# many times (curvature's shrinks 16-fold; a kink's stays put or drops out).
_CURVATURE_SHRINK = 4.0


def proven_again(phi: Phi, f0: float, d: Derivative, noise: float, slopes: Slopes) -> bool:
    """Whether a proven stencil is proven again at half its step, with a value that agrees within both errors.

    One kink puts a fixed share of its jump into the slopes' residual, so a sixth of it bounds the shift; several
    kinks can cancel there while their shifts add (a ReLU net's, at 1% of every entry). At half the step the
    residual of a smooth line shrinks 16-fold, while the kinks that stay inside keep theirs and those that drop
    out change the value: a proof that held by cancellation does not hold up. A residual at the rounding's level
    has nothing to shrink. A proven stencil that disagrees with the gradient keeps its verdict only where this
    holds (its value and tolerance stand: the half step confirms the value, at twice the rounding).
    """
    finer = _proven(_rung(phi, f0, d.step / 2), noise, slopes)
    if isinstance(finer, str):
        return False
    small = d.residual <= d.residual_rounding or d.residual / 6 <= _RICHARDSON_NOISE * noise / d.step
    if not small and finer.residual * _CURVATURE_SHRINK > d.residual + d.residual_rounding:
        return False
    return abs(finer.value - d.value) <= ESTIMATE_SAFETY * (finer.error + d.error)


def _confirmed(first: _Rung, finer: _Rung, noise: float, evaluations: int) -> Derivative:
    coarse, fine = _smooth(first, noise, evaluations, False), _smooth(finer, noise, evaluations, False)
    return replace(coarse, error=coarse.error + abs(coarse.value - fine.value))


def _settle(rungs: list[_Rung], noise: float, evaluations: int) -> Derivative:
    """The last rung is clean: smooth there, unless the rough rungs before it agreed on a kink at 0."""
    last = rungs[-1]
    if len(rungs) == 1:
        return _smooth(last, noise, evaluations, False)
    if len(rungs) >= 3 and _agree(rungs[-3], rungs[-2], noise):
        return _coarsest_kink(rungs[:-1], noise, evaluations)
    # One rough rung, then a clean one: a kink stepped over, or curvature. If it was a kink at 0
    # whose jump faded into the noise, |Q|/(2h) in the error still covers half that jump.
    rough = rungs[-2]
    if abs(rough.q) <= LADDER_RATIO * ROUGH_SNR * _Q_NOISE * noise:
        # Barely rough, and the next rung clean by chance: rounding noise a few times the model (a loss that is a
        # small difference of large terms) explains it as well as a kink does. Charge that noise at the short step.
        # A kink stepped over explains it too: the charge stays with this line.
        charged = max(noise, abs(rough.q) / _Q_NOISE)
        return replace(_smooth(last, charged, evaluations, True), unproven_noise=charged > noise)
    return _smooth(last, noise, evaluations, True)


def _coarsest_kink(rungs: list[_Rung], noise: float, evaluations: int) -> Derivative:
    """The kink seen by the coarsest pair of agreeing rungs: least noise, no other kink nearer."""
    for r, finer in zip(rungs, rungs[1:]):
        if _agree(r, finer, noise):
            return _kink(r, finer, noise, evaluations)
    return _kink(rungs[-2], rungs[-1], noise, evaluations)


def _agree(coarse: _Rung, fine: _Rung, noise: float) -> bool:
    """Two rungs see the same jump (it does not shrink with the step): a kink at 0 or closer than the finer step."""
    jump = coarse.q / coarse.h
    return abs(fine.q / fine.h - jump) <= _JUMP_AGREEMENT * abs(jump) + _Q_NOISE * noise / fine.h
