"""A point or a direction in parameter space: one float64 array per parameter name.

The inner product ``<u, v>`` of two such vectors is said here once: a gradient check is
``<g, v>`` against the finite difference along ``v``.
"""

from __future__ import annotations

import numpy as np

Blocks = dict[str, np.ndarray]


def inner(g: Blocks, moves: Blocks) -> float:
    """``<g, moves>`` over the parameters ``moves`` touches (a direction may move only some)."""
    return float(sum(_vdot(g[k], moves[k]) for k in moves))


def _vdot(g: np.ndarray, v: np.ndarray) -> float:
    """``<g, v>``; a direction made chunk by chunk (``numeric.regenerated``, which has ``chunks``) is read so, with
    no whole copy."""
    if not hasattr(v, "chunks"):
        return float(np.vdot(g, v))
    flat = g.reshape(-1)
    # einsum, not BLAS: a threaded BLAS call per chunk waits for its threads, milliseconds on a busy machine.
    return float(sum(np.einsum("i,i->", flat[lo:lo + part.size], part) for lo, part in v.chunks()))


# Large arrays are compared, scaled, scored and made this many entries at a time, everywhere in numeric/: the
# temporaries are a chunk's, never a parameter's (80 MB at 10^7 entries).
CHUNK = 1 << 16


def max_abs_difference(a: np.ndarray, b: np.ndarray, factor: float = 1.0) -> float:
    """``max |a - factor * b|`` without a temporary of the arrays' size (0 for empty arrays).

    >>> max_abs_difference(np.array([1.0, 4.0]), np.array([1.0, 2.0]), 2.0)
    1.0
    """
    flat_a, flat_b = np.asarray(a).reshape(-1), np.asarray(b).reshape(-1)
    return max((float(np.max(np.abs(flat_a[lo:lo + CHUNK] - factor * flat_b[lo:lo + CHUNK])))
                for lo in range(0, flat_a.size, CHUNK)), default=0.0)
