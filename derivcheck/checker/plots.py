"""Plots (the optional ``plot`` extra, matplotlib): the step-size curve and maps of the error.

The figure has one panel for the step-size V-curve (along a random direction, or along one
chosen entry) and one per parameter: for a parameter of at most ``HEATMAP_MAX_ENTRIES``
entries, a heat map of analytic minus numeric (central differences, one per entry) with
the report's wrong entries marked; for a larger one, the map of the wrong entries alone.
This module computes what the figure shows; ``report.plot`` draws it.

Examples
--------
>>> import numpy as np, derivcheck as dc
>>> from derivcheck.checker.plots import plot_check
>>> w = np.linspace(-1, 1, 6).reshape(2, 3)
>>> report = dc.check_gradient(lambda w: float(np.sum(w**3)), lambda w: 3 * w**2, w)
>>> figure = plot_check(report, lambda w: float(np.sum(w**3)), lambda w: 3 * w**2, w, entry=(0, 1))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from derivcheck.checker.parameters import Blocks, ParamSpace
from derivcheck.errors import InputError
from derivcheck.numeric.step_curve import step_curve
from derivcheck.report.plot import draw_check
from derivcheck.report.results import PLOTTERS, GradientReport, PlotData

# A heat map costs two loss calls per entry; above this size only the wrong entries are drawn.
HEATMAP_MAX_ENTRIES = 4096


def plot_check(report: GradientReport, loss: Callable[[Any], Any], grad: Callable[[Any], Any], params: Any,
               path: str | None = None, seed: int = 0, entry: Any = None) -> Any:
    """A figure: the step-size curve (random direction, or ``entry``) and each parameter's error map.

    ``entry`` is an index such as ``(0, 1)`` for a single array, or ``("W", (0, 1))`` for a
    dict or list of parameters.
    """
    space = ParamSpace.of(params)
    x = space.blocks(params)
    loss_at = lambda p: float(np.asarray(loss(space.to_user({k: v.copy() for k, v in p.items()}))))  # noqa: E731
    g = space.gradient_blocks(grad(space.to_user({k: v.copy() for k, v in x.items()})))
    moves, label = _curve_direction(space, x, entry, seed)
    analytic = float(sum(np.vdot(g[k], moves[k]) for k in moves))
    steps, rel = step_curve(loss_at, x, moves, analytic)
    differences = {p.name: g[p.name] - _entrywise_numeric(loss_at, x, p.name)
                   for p in report.params if len(p.shape) <= 2 and x[p.name].size <= HEATMAP_MAX_ENTRIES}
    return draw_check(report, PlotData(steps, rel, label, differences), path)


PLOTTERS["plot"] = plot_check  # GradientReport.plot draws through this entry


def _curve_direction(space: ParamSpace, x: Blocks, entry: Any, seed: int) -> tuple[Blocks, str]:
    """The direction of the V-curve: a random one, or the unit vector of one entry."""
    if entry is None:
        rng = np.random.default_rng(seed)
        moves = {k: rng.standard_normal(v.shape) * np.maximum(np.abs(v), 1.0) / np.sqrt(v.size) for k, v in x.items()}
        return moves, "random direction"
    name, index = _entry(space, entry)
    if len(index) != x[name].ndim or any(not 0 <= i < n for i, n in zip(index, x[name].shape)):
        raise InputError(f"entry {index} is not an index of {name!r}, whose shape is {x[name].shape}")
    move = np.zeros_like(x[name])
    move[index] = max(abs(float(x[name][index])), 1.0)
    return {name: move}, f"entry {name}[{', '.join(str(i) for i in index)}]"


def _entry(space: ParamSpace, entry: Any) -> tuple[str, tuple[int, ...]]:
    if len(space.names) == 1 and not (isinstance(entry, tuple) and entry and isinstance(entry[0], str)):
        index = (entry,) if isinstance(entry, (int, np.integer)) else entry
        return space.names[0], tuple(int(i) for i in index)
    if not (isinstance(entry, Sequence) and len(entry) == 2 and str(entry[0]) in space.names):
        raise InputError(f"entry must be (name, index) with a name among {list(space.names)}; got {entry!r}")
    index = (entry[1],) if isinstance(entry[1], (int, np.integer)) else entry[1]
    return str(entry[0]), tuple(int(i) for i in index)


def _entrywise_numeric(loss_at: Callable[[Blocks], float], x: Blocks, name: str) -> np.ndarray:
    """Central differences entry by entry, at the step that balances truncation and rounding."""
    base = x[name]
    out = np.empty(base.shape)
    for index in np.ndindex(base.shape):
        h = np.cbrt(np.finfo(np.float64).eps) * max(abs(float(base[index])), 1.0)
        up, down = base.copy(), base.copy()
        up[index] += h
        down[index] -= h
        out[index] = (loss_at({**x, name: up}) - loss_at({**x, name: down})) / (2 * h)
    return out


