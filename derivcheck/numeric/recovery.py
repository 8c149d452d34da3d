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

from collections.abc import Sequence

import numpy as np

from derivcheck.numeric.blocks import CHUNK


# Entries are scored a chunk at a time: the scoring's temporaries are a few (directions x chunk) arrays,
# never a few (directions x entries) ones (gigabytes at 10^7 entries).


def one_sparse_candidates(columns: Sequence[np.ndarray], errors: np.ndarray, tolerances: np.ndarray,
                          limit: int) -> np.ndarray:
    """Flat indices whose column ``columns[:, i]`` explains ``errors`` with one factor, best first.

    ``columns`` has one row per direction (the direction, flattened over all entries): a 2-D array or a
    sequence of equally long 1-D arrays (views are read, never copied whole).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> v = rng.standard_normal((3, 100000))
    >>> e = 0.2 * v[:, 4242]
    >>> one_sparse_candidates(v, e, np.full(3, 1e-9), 5).tolist()
    [4242]
    """
    size = len(columns[0])
    found, scores = [], []
    for lo in range(0, size, CHUNK):
        block = np.stack([row[lo:lo + CHUNK] for row in columns])
        fits, misfit = _fitting(block, errors, tolerances)
        # Only a chunk's best ``limit`` can be among the best ``limit`` of all (ties stay in index order): with two
        # directions nearly every entry of 10^7 fits, and keeping them all would cost three times the parameter.
        best = _best(misfit, limit)
        found.append(fits[best] + lo)
        scores.append(misfit[best])
    fits, misfit = np.concatenate(found), np.concatenate(scores)
    return fits[np.argsort(misfit, kind="stable")][:limit]


def fits_at_least(columns: Sequence[np.ndarray], errors: np.ndarray, tolerances: np.ndarray, count: int) -> bool:
    """Whether at least ``count`` entries fit (``one_sparse_candidates`` would find that many), read only as far
    as needed: at 10^7 entries two directions fit hundreds of thousands, found in the first chunk.

    >>> v = np.random.default_rng(0).standard_normal((3, 100000))
    >>> fits_at_least(v, 0.2 * v[:, 4242], np.full(3, 1e-9), 1), fits_at_least(v, 0.2 * v[:, 4242], np.full(3, 1e-9), 2)
    (True, False)
    """
    found = 0
    for lo in range(0, len(columns[0]), CHUNK):
        found += len(_fitting(np.stack([row[lo:lo + CHUNK] for row in columns]), errors, tolerances)[0])
        if found >= count:
            return True
    return False


def _best(misfit: np.ndarray, limit: int) -> np.ndarray:
    """Positions of the ``limit`` smallest misfits, ties in index order (a stable sort's first ``limit``), found
    by partition: a chunk of 65,536 fitting entries is not sorted whole."""
    if misfit.size <= limit:
        return np.argsort(misfit, kind="stable")
    bar = np.partition(misfit, limit - 1)[limit - 1]
    within = np.flatnonzero(misfit <= bar)  # in index order; ties at the bar included
    return within[np.argsort(misfit[within], kind="stable")][:limit]


def _fitting(columns: np.ndarray, errors: np.ndarray, tolerances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The entries of one chunk whose column fits, and their misfits (read only where ``_may_fit``)."""
    kept = _may_fit(columns, errors, tolerances)
    if kept is None:
        return _fitting_all(columns, errors, tolerances)
    fits, misfit = _fitting_all(columns[:, kept], errors, tolerances)
    return kept[fits], misfit


# Slack on the bound of ``_may_fit``: its sums are rounded, and a borderline entry must not be dropped by that.
_MAY_FIT_SLACK = 1.0 + 1e-9


def _may_fit(columns: np.ndarray, errors: np.ndarray, tolerances: np.ndarray) -> np.ndarray | None:
    """A superset of the fitting entries from two directions alone (None with fewer): the factor an entry fits with
    is within ``tol_k / |c_k|`` of ``e_k / c_k`` along the direction ``k`` its error is seen best in, so along
    another, ``j``, a fitting entry has ``|e_j - c_j e_k / c_k| <= tol_j + tol_k |c_j / c_k|``. Two rows, not all
    of them: most of 10^7 entries are ruled out at a third of the cost."""
    if len(errors) < 2:
        return None
    k, j = np.argsort(-np.abs(errors) / tolerances)[:2]
    ck, cj = columns[k], columns[j]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = cj / ck
        bound = (tolerances[j] + tolerances[k] * np.abs(ratio)) * _MAY_FIT_SLACK
        possible = np.abs(errors[j] - errors[k] * ratio) <= bound
    return np.flatnonzero(possible | (ck == 0))


def _fitting_all(columns: np.ndarray, errors: np.ndarray, tolerances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The entries of one chunk whose column fits, and their misfits, read at every entry."""
    norm = np.einsum("ki,ki->i", columns, columns)
    safe = np.where(norm > 0, norm, 1.0)
    factor = (errors @ columns) / safe
    misfit = np.max(np.abs(errors[:, None] - columns * factor) / tolerances[:, None], axis=0)
    visible = np.max(np.abs(columns * factor) / tolerances[:, None], axis=0) > 1
    fits = np.flatnonzero((misfit <= 1) & visible & (norm > 0))
    return fits, misfit[fits]


def column(columns: Sequence[np.ndarray], flat: int) -> np.ndarray:
    """The directions' values at one entry."""
    return np.array([float(row[flat]) for row in columns])


def explains(column: np.ndarray, errors: np.ndarray, tolerances: np.ndarray, error: float, error_tol: float) -> bool:
    """Whether one entry's measured error accounts for every discrepancy."""
    return bool(np.all(np.abs(errors - error * column) <= tolerances + np.abs(column) * error_tol))
