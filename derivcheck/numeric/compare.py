"""The one comparison of two arrays: the largest difference relative to their scale, with a named floor.

The floor says what "small" means where the values are near zero: ``ABSOLUTE_BELOW_ONE``
compares entries below 1 absolutely (formulas evaluated in float64 at unit-scale inputs);
``PURELY_RELATIVE`` compares at any scale (an answer expected to be exact in its own units).
"""

from __future__ import annotations

from typing import Any

import numpy as np

ABSOLUTE_BELOW_ONE = 1.0
PURELY_RELATIVE = 1e-300  # the scale never drops to zero, so an exact match of zeros is a gap of 0


def relative_gap(got: Any, want: Any, floor: float, *, both: bool = False) -> float:
    """``max|got - want| / max(max|want|, floor)``; with ``both``, the scale is the larger of the two arrays.

    Examples
    --------
    >>> relative_gap([1.0, 2.0], [1.0, 2.5], PURELY_RELATIVE)
    0.2
    >>> relative_gap([1e-3], [0.0], ABSOLUTE_BELOW_ONE)
    0.001
    """
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    scale = max(float(np.max(np.abs(want), initial=0.0)), floor)
    if both:
        scale = max(scale, float(np.max(np.abs(got), initial=0.0)))
    return float(np.max(np.abs(got - want), initial=0.0)) / scale
