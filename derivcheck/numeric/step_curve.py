"""The classic step-size curve: how a plain central difference's error depends on the step.

Too large a step and truncation (or a kink) dominates; too small and rounding does; a
correct gradient shows a V whose floor is the best a plain difference can do, a wrong one a
plateau at its relative error. Data only: ``derivcheck.report.plot`` draws it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from derivcheck.numeric.blocks import Blocks


def step_curve(loss_at: Callable[[Blocks], float], x: Blocks, moves: Blocks, analytic: float,
               steps: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Relative discrepancy ``|D(h) - <g, v>| / |<g, v>|`` of the central difference at each step.

    Examples
    --------
    >>> x = {"w": np.array([0.5, -1.0])}
    >>> h, rel = step_curve(lambda p: float(np.sum(np.sin(p["w"]))), x, {"w": np.ones(2)}, float(np.sum(np.cos(x["w"]))))
    >>> bool(rel.min() < 1e-9), bool(rel[0] > 1e-4)
    (True, True)
    """
    steps = np.logspace(-1, -13, 25) if steps is None else np.asarray(steps, dtype=float)
    scale = max(abs(analytic), np.finfo(float).tiny)
    out = []
    for h in steps:
        up = {k: (v + h * moves[k]) if k in moves else v for k, v in x.items()}
        down = {k: (v - h * moves[k]) if k in moves else v for k, v in x.items()}
        out.append(abs((loss_at(up) - loss_at(down)) / (2 * h) - analytic) / scale)
    return steps, np.array(out)
