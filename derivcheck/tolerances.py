"""Where every tolerance comes from: machine epsilon, the step rule and the error model.

No tolerance in derivcheck is a bare literal: each is a multiple of an estimated error,
and the multiples below say why they have the size they have.
"""

from __future__ import annotations

import numpy as np

# The central difference has truncation ~h^2 f'''/6 and roundoff ~eps|f|/h; h ~ eps^(1/3)
# balances them (the rule scipy's approx_derivative uses), per entry times max(|x|, 1).
STEP_EXPONENT = 1.0 / 3.0

# An error estimate is one realisation of the noise and a leading-order truncation term;
# a factor 4 puts a correct gradient below the bar with a margin of about two standard
# deviations of a noisy estimate, while a 1e-6 relative error in float64 stays well above it.
ESTIMATE_SAFETY = 4.0

# A user's backward adds one rounding per operation; 2**5 ulps of the gradient's own
# magnitude covers chains of a few dozen operations without hiding real errors.
GRADIENT_ROUNDOFF_ULPS = 32.0

# A loss summed pairwise (NumPy) rounds by about one ulp of its value; it is charged two,
# and more whenever the measured noise (third differences) or a second call shows more.
LOSS_ROUNDOFF_ULPS = 2.0

# One-sided derivatives that differ by more than this many noise units are a kink.
KINK_SNR = 16.0

# A kink seen at step h is re-examined at h / KINK_REFINE: a kink exactly at x persists, one
# merely near x disappears, and the smaller step then gives an honest smooth estimate.
KINK_REFINE = 64.0

# Two calls of the loss at the same point may differ by a few ulps (threaded BLAS sums);
# more than this many ulps means the function itself is random.
NONDETERMINISM_ULPS = 1e3

# A check whose detection floor (smallest detectable relative error) is above 5% cannot
# tell a correct gradient from a visibly wrong one: it is inconclusive, not a pass. (A
# float32 loss of size |f| resolves gradient entries g only to about eps32*|f|/(h*|g|).)
INCONCLUSIVE_FLOOR = 5e-2


def machine_eps(dtype: np.dtype | type) -> float:
    """Unit roundoff of a floating dtype (float64 for anything not floating)."""
    dt = np.dtype(dtype)
    return float(np.finfo(dt).eps) if np.issubdtype(dt, np.floating) else float(np.finfo(np.float64).eps)


def relative_step(eps: float) -> float:
    """The central-difference step, relative to an entry's scale, for a given unit roundoff."""
    return float(eps**STEP_EXPONENT)


def entry_scale(x: np.ndarray) -> np.ndarray:
    """Per-entry length scale: the step is relative for large entries, absolute near zero."""
    return np.maximum(np.abs(x), 1.0)
