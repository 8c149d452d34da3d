"""One wrong entry among millions, from a handful of directional checks.

The discrepancy of a smooth directional check is linear in the direction:
``e(v) = <g - grad L, v>``. If a single entry ``i`` is wrong by ``eps``, every direction
``v_k`` sees ``e_k = eps * v_k[i]``: the vector of discrepancies is proportional to the
column ``(v_1[i], ..., v_K[i])``. With Gaussian directions two columns are almost never
proportional, so the entries whose column fits the discrepancies (to within the
tolerances) are the only candidates. A candidate is then checked on its own, and accepted
only if its measured error explains every discrepancy.
"""

from __future__ import annotations

import numpy as np


def one_sparse_candidates(columns: np.ndarray, errors: np.ndarray, tolerances: np.ndarray, limit: int) -> np.ndarray:
    """Flat indices whose column ``columns[:, i]`` explains ``errors`` with one factor, best first.

    ``columns`` has one row per direction (the direction, flattened over all entries).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> v = rng.standard_normal((3, 100000))
    >>> e = 0.2 * v[:, 4242]
    >>> one_sparse_candidates(v, e, np.full(3, 1e-9), 5).tolist()
    [4242]
    """
    norm = np.einsum("ki,ki->i", columns, columns)
    safe = np.where(norm > 0, norm, 1.0)
    factor = (errors @ columns) / safe
    misfit = np.max(np.abs(errors[:, None] - columns * factor) / tolerances[:, None], axis=0)
    visible = np.max(np.abs(columns * factor) / tolerances[:, None], axis=0) > 1
    fits = np.flatnonzero((misfit <= 1) & visible & (norm > 0))
    return fits[np.argsort(misfit[fits])][:limit]


def explains(column: np.ndarray, errors: np.ndarray, tolerances: np.ndarray, error: float, error_tol: float) -> bool:
    """Whether one entry's measured error accounts for every discrepancy."""
    return bool(np.all(np.abs(errors - error * column) <= tolerances + np.abs(column) * error_tol))
