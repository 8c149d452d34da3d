"""The Taylor remainder test: a tolerance-free second opinion on a gradient.

Along a direction ``v`` the remainder ``r(e) = |L(x + e v) - L(x) - e <g, v>|`` shrinks like
``e**2`` when ``g`` is the gradient and like ``e`` when it is not, whatever the scale of the
loss; the observed order is the slope of ``log r`` against ``log e``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from derivcheck.report.results import TaylorResult

# Remainders this many noise units above the rounding floor are usable for the fit.
USABLE_SNR = 30.0
# Fit the order on the first (largest) usable steps: the smaller ones of a refined ladder sit
# ever closer to the rounding floor.
FIT_POINTS = 4
# The note for an order near 1 without kinks: a claim about the gradient, made only where a comparison backs it.
WRONG_NOTE = "the gradient is wrong along the test direction"
# What an order near 1 says where no comparison backs it (the check did not fail): no verdict.
NOT_A_VERDICT_NOTE = ("order near 1 along the test direction, as a wrong gradient gives, yet no comparison found the "
                      "gradient wrong (see the rows): this order is not a verdict")


def taylor_test(
    points: list[tuple[float, float]], f0: float, slope: float, noise: float, kinks_seen: bool
) -> TaylorResult:
    """Observed convergence order of the first-order Taylor remainder from values ``(e, L(x + e v))``.

    The points are those a directional check already evaluated, so the test costs nothing.

    Examples
    --------
    >>> import math
    >>> pts = [(e, math.exp(1 + e)) for e in (1e-3, 5e-4, -1e-3, -5e-4)]
    >>> round(taylor_test(pts, math.e, math.e, 1e-16, False).order)
    2
    >>> round(taylor_test(pts, math.e, 1.1 * math.e, 1e-16, False).order)
    1
    """
    pts = sorted({abs(e): (e, f) for e, f in points if e != 0}.values(), key=lambda p: -abs(p[0]))
    epsilons = tuple(float(e) for e, _ in pts)
    remainders = tuple(float(abs(f - f0 - e * slope)) for e, f in pts)
    usable = [(abs(e), r) for e, r in zip(epsilons, remainders) if r > USABLE_SNR * noise]
    order = None
    if len({e for e, _ in usable}) >= 2:
        fit = usable[:FIT_POINTS]
        order = float(np.polyfit(np.log([p[0] for p in fit]), np.log([p[1] for p in fit]), 1)[0])
    if order is None:
        note = "remainder at rounding level: the loss is linear along the test direction, or too noisy for this test"
    elif order > 1.7:
        note = "consistent with a correct gradient along the test direction (an error in few entries may not show)"
    elif kinks_seen:
        note = "order 1 is expected here: the test direction crosses a non-differentiable point"
    elif order < 1.3:
        note = WRONG_NOTE
    else:
        note = "between orders 1 and 2: a small gradient error or strong curvature"
    return TaylorResult(epsilons, remainders, order, len(usable), note)
