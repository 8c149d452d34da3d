"""Whether a vector lies in the convex hull of a few others: the exact test of a Clarke subgradient.

Where kinks coincide, the valid gradients (the Clarke subdifferential) are the convex hull
of the gradients of the pieces that meet at the point. ``hull_distance`` measures how far a
vector lies from the hull of given points with a small non-negative least-squares program
(Lawson and Hanson's active-set method, written out here so that numpy is all it needs).
"""

from __future__ import annotations

import numpy as np

# The constraint sum(weights) = 1 enters as one more least-squares row, weighted this many times
# the points' own size: its residual is then negligible against any distance that matters.
_SUM_WEIGHT = 1e3
# Lawson-Hanson finishes in at most a few times as many steps as there are points.
_MAX_ITERATIONS_PER_POINT = 3


def nnls(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``argmin ||a x - b||`` over ``x >= 0`` (Lawson-Hanson active set).

    Examples
    --------
    >>> import numpy as np
    >>> x = nnls(np.eye(2), np.array([1.0, -2.0]))
    >>> x.tolist()
    [1.0, 0.0]
    """
    m, n = a.shape
    x = np.zeros(n)
    passive = np.zeros(n, dtype=bool)
    tiny = 10 * np.finfo(float).eps * max(1.0, float(np.max(np.abs(a), initial=0.0))) * max(m, n)
    for _ in range(_MAX_ITERATIONS_PER_POINT * n + 1):
        w = a.T @ (b - a @ x)
        if passive.all() or np.max(np.where(passive, -np.inf, w)) <= tiny:
            break
        passive[int(np.argmax(np.where(passive, -np.inf, w)))] = True
        while True:
            z = np.zeros(n)
            z[passive] = np.linalg.lstsq(a[:, passive], b, rcond=None)[0]
            if np.all(z[passive] > 0):
                x = z
                break
            # Step back to the boundary and drop the variables that reached zero.
            blocked = passive & (z <= 0)
            alpha = float(np.min(x[blocked] / (x[blocked] - z[blocked])))
            x = x + alpha * (z - x)
            passive &= x > tiny
            x[~passive] = 0.0
    return x


def hull_distance(points: np.ndarray, target: np.ndarray) -> float:
    """Euclidean distance from ``target`` to the convex hull of the rows of ``points``.

    Examples
    --------
    >>> import numpy as np
    >>> square = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> hull_distance(square, np.array([0.5, 0.5])) < 1e-12, round(hull_distance(square, np.array([2.0, 0.5])), 9)
    (True, 1.0)
    """
    pts = np.atleast_2d(np.asarray(points, dtype=float))
    t = np.asarray(target, dtype=float).reshape(-1)
    weight = _SUM_WEIGHT * max(1.0, float(np.max(np.abs(pts))), float(np.max(np.abs(t), initial=0.0)))
    a = np.vstack([pts.T, np.full((1, len(pts)), weight)])
    b = np.concatenate([t, [weight]])
    lam = nnls(a, b)
    lam = lam / max(float(lam.sum()), np.finfo(float).tiny)
    return float(np.linalg.norm(pts.T @ lam - t))
