"""The precision the loss is really evaluated in, read off the values it returns.

A float32 computation handed back as a Python ``float`` (what ``tensor.item()`` gives) has
the type of float64 and the rounding of float32: its values carry at most 24 significant
bits. The number of significant bits actually used by a handful of loss values tells the
working precision, whatever the returned type says; the noise that cancellation adds on
top (a loss like ``1e8 + f``) is measured by the finite differences themselves.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

# (significant bits, unit roundoff): bfloat16, float16, float32, float64.
_FORMATS = ((8, 2.0**-7), (11, 2.0**-10), (24, 2.0**-23), (53, 2.0**-52))
# Fewer distinct values than this say nothing: one value may be a round number by chance.
_MIN_VALUES = 3
# Observed precision this many times coarser than assumed changes the step (float32 values
# returned as float64 are 2**29 times coarser; a few ulps of slack are not).
PRECISION_JUMP = 16.0


def significant_bits(value: float) -> int:
    """How many leading mantissa bits ``value`` uses (1 for powers of two, 53 at most).

    Examples
    --------
    >>> significant_bits(0.5), significant_bits(0.75), significant_bits(1 / 3)
    (1, 2, 53)
    >>> import numpy as np
    >>> significant_bits(float(np.float32(0.1)))
    24
    """
    if value == 0 or not math.isfinite(value):
        return 0
    mantissa = int(math.frexp(abs(value))[0] * 2.0**53)
    return 53 - ((mantissa & -mantissa).bit_length() - 1)


def observed_eps(values: Iterable[float]) -> float | None:
    """Unit roundoff of the narrowest format that holds every value; None when too few values.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> observed_eps(float(np.float32(v)) for v in rng.standard_normal(5)) == 2.0**-23
    True
    >>> observed_eps(rng.standard_normal(5)) == 2.0**-52
    True
    """
    distinct = {v for v in values if v != 0 and math.isfinite(v)}
    if len(distinct) < _MIN_VALUES:
        return None
    bits = max(significant_bits(v) for v in distinct)
    return next(eps for width, eps in _FORMATS if bits <= width)
