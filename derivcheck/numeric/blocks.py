"""A point or a direction in parameter space: one float64 array per parameter name.

The inner product ``<u, v>`` of two such vectors is said here once: a gradient check is
``<g, v>`` against the finite difference along ``v``.
"""

from __future__ import annotations

import numpy as np

Blocks = dict[str, np.ndarray]


def inner(g: Blocks, moves: Blocks) -> float:
    """``<g, moves>`` over the parameters ``moves`` touches (a direction may move only some)."""
    return float(sum(np.vdot(g[k], moves[k]) for k in moves))
