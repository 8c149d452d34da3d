"""The precision the loss is really evaluated in, read off the values it returns.

A float32 computation handed back as a Python ``float`` (what ``tensor.item()`` gives) has
the type of float64 and the rounding of float32: its values carry at most 24 significant
bits. The number of significant bits actually used by a handful of loss values tells the
working precision, whatever the returned type says; the noise that cancellation adds on
top (a loss like ``1e8 + f``) is measured by the finite differences themselves.

A loss computed as a difference of large terms (a cross-entropy of 1e-11 as ``logsumexp(z) - z_y``
with ``z`` of order 1) rounds at their ulp, 1e-16, not at its own, 1e-27. Its values are still
full floats, but their differences all lie on one spacing, the large terms' ulp (times the slope of
whatever maps them to the loss): ``lattice_spacing`` reads it off them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

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


# Fewer nonzero differences than this lie on a spacing by chance too often to be taken for a lattice.
LATTICE_MIN_DIFFERENCES = 4
# A spacing counts only if it is this many times coarser than the values' own ulp: a difference that rounds at that
# ulp lies on such a spacing one time in 64 (four of them, one time in 17 million).
LATTICE_MARGIN = 64.0
# A difference lies on a spacing if it is within this fraction of the spacing of one of its multiples (a lattice
# seen through a slope of 1 - 6e-12, as a log near 1 maps it, stays on it for 100,000 multiples).
_ON_LATTICE = 1e-6


def lattice_spacing(new: float, earlier: Sequence[float], resolution: float, spacing: float = math.inf) -> float:
    """The coarsest power of two, at most ``spacing``, that ``new`` and every ``earlier`` difference lie on (each
    near a whole multiple of it); 0 once no spacing LATTICE_MARGIN times above ``resolution`` (the values' own
    ulp) holds them. Fed the differences one at a time from ``inf`` (``earlier`` all lie on ``spacing``), it
    returns the spacing they all share.

    Examples
    --------
    >>> q = 2.0**-52 * (1 - 6e-12)  # the lattice of 1 + 1e-11, seen through log's slope near 1
    >>> s, seen = math.inf, []
    >>> for d in (11 * q, -11 * q, 6 * q, -6 * q, q, 2 * q):
    ...     s = lattice_spacing(d, seen, 1e-27, s)
    ...     seen.append(d)
    >>> s == 2.0**-52, lattice_spacing(0.3e-16, seen, 1e-27, s)
    (True, 0.0)
    """
    if new == 0 or not math.isfinite(new):
        return spacing
    spacing = min(spacing, _power_at_most(abs(new), _ON_LATTICE))
    checking: Sequence[float] = [new]
    while spacing > LATTICE_MARGIN * resolution:
        if _all_on(checking, spacing, _ON_LATTICE):
            if checking is not earlier:
                checking = earlier  # the new difference fits: the earlier ones must fit the spacing too
                continue
            return spacing
        spacing /= 2
        checking = [new, *earlier]
    return 0.0


def spacing_of(differences: Iterable[float], resolution: float) -> float:
    """``lattice_spacing`` fed ``differences`` one at a time: the spacing they all lie on, 0 where none (``inf`` for
    no nonzero difference). Where no power of two holds them, a power of two divided by a batch's odd factor does (a
    mean over a batch of 3 divides a lattice of 2^-52 by 3).

    Examples
    --------
    >>> q = 2.0**-52 / 3
    >>> spacing_of([q, 3 * q, 6 * q, 13 * q], 1e-30) == q, spacing_of([1.3e-16, 2.9e-16, 3.1e-16, 7.7e-16], 1e-30)
    (True, 0.0)
    """
    seen = list(differences)
    for odd in range(1, _MOST_ODD + 1, 2):  # a power of two first (odd = 1), then over each odd factor
        spacing = _power_of_two_spacing([odd * d for d in seen], odd * resolution) / odd
        if spacing != 0:
            return spacing
    return 0.0


# The largest odd factor of a batch whose mean's lattice ``spacing_of`` reads (a batch of 100 has 25).
_MOST_ODD = 127


def _power_of_two_spacing(differences: Sequence[float], resolution: float) -> float:
    """The power of two every difference lies on, far above ``resolution``: 0 where none, inf for no nonzero one."""
    spacing, seen = math.inf, []
    for d in differences:
        spacing = lattice_spacing(d, seen, resolution, spacing)
        seen.append(d)
    return spacing


def _power_at_most(size: float, within: float) -> float:
    """The largest power of two at most ``size``, or just above it by ``within`` (a multiple 1 - 6e-12 counts)."""
    return 2.0 ** math.floor(math.log2(size) + within)


def _all_on(values: Iterable[float], spacing: float, within: float) -> bool:
    """Every value within ``within`` of the spacing of a whole multiple of it."""
    return all(abs(d / spacing - round(d / spacing)) <= within for d in values)


# A stalled ladder's changes count as a lattice's when each is at most this many spacings: a change of a loss that
# rounds at its own ulp lies that near a small multiple of a power of two about one time in 4,000.
_FEW_SPACINGS = 64


def coarse_spacing(changes: Sequence[float]) -> float:
    """The power of two that every nonzero change is a small whole multiple of (at most 64 of it, each within 1e-6
    of the spacing); 0 when fewer than two changes or none holds them.

    Examples
    --------
    >>> q = 2.0**-52 * (1 - 6e-12)
    >>> coarse_spacing([q, 0.0, 2 * q, -3 * q]) == 2.0**-52, coarse_spacing([1.3e-16, 2.9e-16])
    (True, 0.0)
    """
    nonzero = [d for d in changes if d != 0 and math.isfinite(d)]
    if len(nonzero) < 2:
        return 0.0
    spacing = _power_at_most(min(abs(d) for d in nonzero), _ON_LATTICE)
    while max(abs(d) for d in nonzero) <= _FEW_SPACINGS * spacing * (1 + _ON_LATTICE):
        if _all_on(nonzero, spacing, _ON_LATTICE):
            return spacing
        spacing /= 2
    return 0.0


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
