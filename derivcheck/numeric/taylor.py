"""The Taylor remainder test: a tolerance-free second opinion on a gradient.

Along a direction ``v`` the remainder ``r(e) = |L(x + e v) - L(x) - e <g, v>|`` shrinks like
``e**2`` when ``g`` is the gradient and like ``e`` when it is not, whatever the scale of the
loss; the observed order is the slope of ``log r`` against ``log e``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from derivcheck.report.gradient import TaylorResult

# Remainders this many noise units above the rounding floor are usable for the fit.
USABLE_SNR = 30.0
LADDER = tuple(1e-2 * 2.0**-k for k in range(8))
# Fit the asymptotic order on the smallest usable epsilons.
FIT_POINTS = 4


def taylor_test(
    phi: Callable[[float], float], f0: float, slope: float, noise: float, kinks_seen: bool
) -> TaylorResult:
    """Observed convergence order of the first-order Taylor remainder of ``phi`` at 0.

    Examples
    --------
    >>> import math
    >>> t = taylor_test(math.exp, 1.0, 1.0, 1e-16, False)
    >>> round(t.order)
    2
    >>> round(taylor_test(math.exp, 1.0, 1.1, 1e-16, False).order)
    1
    """
    remainders = []
    for e in LADDER:
        remainders.append(abs(phi(e) - f0 - e * slope))
    floor = USABLE_SNR * noise
    usable = [(e, r) for e, r in zip(LADDER, remainders) if r > floor]
    order = None
    if len(usable) >= 3:
        pts = usable[-FIT_POINTS:]
        le, lr = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
        order = float(np.polyfit(le, lr, 1)[0])
    if order is None:
        note = "remainder at rounding level: the loss is linear along the test direction, or too noisy for this test"
    elif order > 1.7:
        note = "consistent with a correct gradient"
    elif kinks_seen:
        note = "order 1 is expected here: the test direction crosses a non-differentiable point"
    elif order < 1.3:
        note = "the gradient is wrong along the test direction"
    else:
        note = "between orders 1 and 2: a small gradient error or strong curvature"
    return TaylorResult(tuple(LADDER), tuple(float(r) for r in remainders), order, len(usable), note)
