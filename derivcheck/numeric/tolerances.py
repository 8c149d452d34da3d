"""Where every tolerance comes from: machine epsilon, the step rule and the error model.

No tolerance in derivcheck is a bare literal: each is a multiple of an estimated error,
and the multiples below say why they have the size they have.
"""

from __future__ import annotations

import numpy as np

from derivcheck.numeric.blocks import CHUNK

# The central difference has truncation ~h^2 f'''/6 and roundoff ~eps|f|/h; h ~ eps^(1/3)
# balances them (the rule scipy's approx_derivative uses), per entry times max(|x|, 1).
STEP_EXPONENT = 1.0 / 3.0
# A stencil proven smooth is read through Richardson's value, whose truncation is O(h^4): h ~ eps^(1/5)
# balances it against the rounding eps|f|/h.
SMOOTH_STEP_EXPONENT = 1.0 / 5.0

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

# A five-point stencil whose fourth difference exceeds its rounding noise this many times
# is not a cubic plus noise: a kink or strong curvature lies inside it. Four standard
# deviations: a false "rough" costs one more rung, never a verdict.
ROUGH_SNR = 4.0

# A rough stencil is refined by this factor per rung: a kink at distance d from x is stepped
# over within log_8(h/d) rungs, and a kink at x is recognised by the fourth difference
# shrinking eightfold per rung.
LADDER_RATIO = 8.0

# At most this many refinements (a step 8**8, about 1.7e7, times shorter: 3.6e-13 from the
# float64 step). The ladder usually stops earlier, once an exact kink would fade into the
# noise at the next rung; a kink closer than the last rung is a kink at x.
MAX_RUNGS = 8

# Noise measured from one or two fourth differences is a small sample: it is taken twice
# over before it sets a tolerance.
NOISE_MARGIN = 2.0

# A direction probes the loss with a step of eps^(1/3) times this factor at most, for losses
# whose rounding noise is large against their slope (an offset 1e8 + f, a float32 loss).
MAX_STEP_GROWTH = 32.0

# Below this precision (float32 and coarser) the step, eps^(1/3), is half a percent of every
# entry: a ReLU net's kinks crowd into the stencil, each too small to see against the noise,
# together large. There a clean first stencil is confirmed by the next rung.
LOW_PRECISION_EPS = 1e-10

# No step moves an entry by more than this fraction of its scale.
MAX_RELATIVE_STEP = 2e-2

# Two calls of the loss at the same point may differ by a few ulps (threaded BLAS sums);
# more than this many ulps means the function itself is random.
NONDETERMINISM_ULPS = 1e3

# A check that could not have seen a 1% relative error in a parameter cannot tell a correct
# gradient from a visibly wrong one: it is inconclusive for that parameter, not a pass.
INCONCLUSIVE_FLOOR = 1e-2


def machine_eps(dtype: np.dtype | type) -> float:
    """Unit roundoff of a floating dtype (float64 for anything not floating)."""
    dt = np.dtype(dtype)
    return float(np.finfo(dt).eps) if np.issubdtype(dt, np.floating) else float(np.finfo(np.float64).eps)


def relative_step(eps: float, exponent: float = STEP_EXPONENT) -> float:
    """The central-difference step, relative to an entry's scale, for a given unit roundoff."""
    return float(eps**exponent)


def entry_scale(x: np.ndarray) -> np.ndarray:
    """Per-entry length scale: the step is relative for large entries, absolute near zero."""
    return np.maximum(np.abs(x), 1.0)




def scale_by_entry(z: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``z *= entry_scale(x)`` in place, without a temporary of ``x``'s size; returns ``z``."""
    flat_z, flat_x = z.reshape(-1), np.asarray(x).reshape(-1)
    for lo in range(0, flat_z.size, CHUNK):
        flat_z[lo:lo + CHUNK] *= entry_scale(flat_x[lo:lo + CHUNK])
    return z


def largest_magnitude(z: np.ndarray) -> float:
    """max |z| without a temporary |z| (0 for an empty array)."""
    return max(float(np.max(z, initial=0.0)), -float(np.min(z, initial=0.0)))
