"""Central differences with Richardson extrapolation, an error estimate and kink detection.

Everything here works on a scalar function of one variable ``phi(t) = L(x + t v)``: a
coordinate check uses ``v = e_i``, a directional check a random ``v``. The derivative at
``t = 0`` is estimated from steps ``h`` and ``h/2``:

* ``D(h) = (phi(h) - phi(-h)) / 2h``; Richardson ``R = (4 D(h/2) - D(h)) / 3``;
* the truncation error is estimated by ``|D(h/2) - D(h)| / 3`` and the roundoff by the
  loss noise ``sigma`` over ``h``;
* the jump between one-sided derivatives, ``J(h) = (phi(h) - 2 phi(0) + phi(-h)) / h``,
  shrinks like ``h`` for a smooth function and stays put at a kink, so
  ``2 J(h/2) - J(h)`` measures the kink with the curvature removed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from derivcheck.tolerances import KINK_REFINE, KINK_SNR

Phi = Callable[[float], float]

# Noise amplification of each estimate, for i.i.d. noise sigma per evaluation.
_RICHARDSON_NOISE = 2.0  # R = (4 D(h/2) - D(h))/3  ->  about 2 sigma / h
_JUMP_NOISE = 10.0  # 2 J(h/2) - J(h)  ->  about 10 sigma / h
_ONE_SIDED_NOISE = 4.0  # 2 F(h/2) - F(h)  ->  about 4 sigma / h


@dataclass(frozen=True)
class Derivative:
    """A finite-difference derivative with its error estimate and one-sided values."""

    value: float
    error: float
    forward: float
    backward: float
    kink: bool
    step: float
    evaluations: int

    def admits(self, analytic: float, tolerance: float) -> bool:
        """Whether ``analytic`` agrees: close to ``value``, or between the one-sided values at a kink."""
        if self.kink:
            lo, hi = min(self.forward, self.backward), max(self.forward, self.backward)
            return lo - tolerance <= analytic <= hi + tolerance
        return abs(analytic - self.value) <= tolerance

    def distance(self, analytic: float) -> float:
        """How far ``analytic`` lies from what the differences allow (0 inside a kink's interval)."""
        if self.kink:
            lo, hi = min(self.forward, self.backward), max(self.forward, self.backward)
            return max(lo - analytic, analytic - hi, 0.0)
        return abs(analytic - self.value)


def central_difference(phi: Phi, f0: float, step: float, noise: float) -> Derivative:
    """Derivative of ``phi`` at 0 with error estimate; re-examines kinks at a smaller step.

    ``noise`` is the absolute rounding noise of one evaluation of ``phi``.

    Examples
    --------
    >>> import math
    >>> d = central_difference(math.sin, 0.0, 1e-3, 1e-16)
    >>> abs(d.value - 1.0) < 1e-12, d.kink
    (True, False)
    >>> d = central_difference(abs, 0.0, 1e-3, 1e-16)
    >>> d.kink, d.backward, d.forward
    (True, -1.0, 1.0)
    """
    first = _differences(phi, f0, step, noise)
    if not first.kink:
        return first
    refined = _differences(phi, f0, step / KINK_REFINE, noise)
    return Derivative(
        refined.value,
        refined.error,
        refined.forward,
        refined.backward,
        refined.kink,
        refined.step,
        first.evaluations + refined.evaluations,
    )


def _differences(phi: Phi, f0: float, h: float, noise: float) -> Derivative:
    fp, fm = phi(h), phi(-h)
    fp2, fm2 = phi(h / 2), phi(-h / 2)
    d1 = (fp - fm) / (2 * h)
    d2 = (fp2 - fm2) / h
    value = (4 * d2 - d1) / 3
    error = abs(d2 - d1) / 3 + _RICHARDSON_NOISE * noise / h
    jump = 2 * (fp2 - 2 * f0 + fm2) / (h / 2) - (fp - 2 * f0 + fm) / h
    kink = abs(jump) > KINK_SNR * _JUMP_NOISE * noise / h
    # One-sided Richardson 2 F(h/2) - F(h) removes the O(h) curvature term.
    forward = 2 * (fp2 - f0) / (h / 2) - (fp - f0) / h
    backward = 2 * (f0 - fm2) / (h / 2) - (f0 - fm) / h
    if kink:
        side_error = abs((fp2 - f0) / (h / 2) - (fp - f0) / h) + abs((f0 - fm2) / (h / 2) - (f0 - fm) / h)
        error = side_error + _ONE_SIDED_NOISE * noise / h
    return Derivative(value, error, forward, backward, kink, h, 4)
