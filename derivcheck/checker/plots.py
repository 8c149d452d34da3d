"""Plots (the optional ``plot`` extra, matplotlib): the step-size curve and maps of the error.

The figure has one panel for the step-size V-curve (along a random direction, or along one
chosen entry) and one per parameter, whatever its number of dimensions (axis 0 as rows, the
other axes flattened in C order as columns): for a parameter of at most ``HEATMAP_MAX_ENTRIES``
entries, a heat map of analytic minus numeric in units of each entry's tolerance (so rounding
noise is pale and a wrong entry dark) with the report's wrong entries marked, and entries at a
kink judged, as the verdict judges them, by their distance to the valid range of one-sided
derivatives; for a larger one, the map of the wrong entries alone. This module computes what the
figure shows; ``derivcheck.report.plot`` draws it.

Examples
--------
>>> import numpy as np, derivcheck as dc
>>> from derivcheck.checker.plots import plot_check
>>> w = np.linspace(-1, 1, 6).reshape(2, 3)
>>> report = dc.check_gradient(lambda w: float(np.sum(w**3)), lambda w: 3 * w**2, w)
>>> figure = plot_check(report, lambda w: float(np.sum(w**3)), lambda w: 3 * w**2, w, entry=(0, 1))
>>> figure_again = report.plot()  # from the report alone
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from derivcheck.checker.parameters import Blocks, ParamSpace
from derivcheck.errors import InputError
from derivcheck.numeric.step_curve import step_curve
from derivcheck.report.plot import draw_check
from derivcheck.report.results import PLOTTERS, GradientReport, PlotData

# A heat map costs four loss calls per entry; above this size only the wrong entries are drawn.
HEATMAP_MAX_ENTRIES = 4096
# A kink inside the stencil keeps the gap between the one-sided differences as the step halves (a jump);
# smooth curvature halves it. Above this ratio of the gaps at h/2 and h, the entry is at a kink.
KINK_GAP_RATIO = 0.75
# The gap must also stand above rounding: this many times the rounding error of a one-sided difference.
KINK_NOISE_FACTOR = 100.0
# An entry's tolerance: this many times its error estimate (the change between steps h and h/2, which
# bounds the truncation of the finer one, plus the rounding error of the central difference).
ENTRY_TOLERANCE_FACTOR = 10.0


def plot_check(report: GradientReport, loss: Callable[[Any], Any], grad: Callable[[Any], Any], params: Any,
               path: str | None = None, seed: int = 0, entry: Any = None) -> Any:
    """A figure: the step-size curve (random direction, or ``entry``) and each parameter's error map.

    ``entry`` is an index such as ``(0, 1)`` for a single array, or ``("W", (0, 1))`` for a
    dict or list of parameters.
    """
    if loss is None or grad is None or params is None:
        raise InputError("plot needs loss, grad and params: pass them, or plot a report made by check_gradient "
                         "in this session (it keeps them)")
    space = ParamSpace.of(params)
    x = space.blocks(params)
    loss_at = lambda p: float(np.asarray(loss(space.to_user({k: v.copy() for k, v in p.items()}))))  # noqa: E731
    g = space.gradient_blocks(grad(space.to_user({k: v.copy() for k, v in x.items()})))
    moves, label = _curve_direction(space, x, entry, seed)
    analytic = float(sum(np.vdot(g[k], moves[k]) for k in moves))
    steps, rel = step_curve(loss_at, x, moves, analytic)
    f0 = loss_at(x)
    floors = {p.name: p.detection_floor for p in report.params}
    maps = {name: _entry_map(loss_at, x, name, g[name], f0, floors.get(name, 0.0))
            for name in space.names if x[name].size <= HEATMAP_MAX_ENTRIES}
    return draw_check(report, PlotData(
        steps, rel, label, {k: m.difference for k, m in maps.items()}, {k: m.scaled for k, m in maps.items()},
        {k: m.kink for k, m in maps.items()}, {k: (m.low, m.high) for k, m in maps.items()}), path)


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


@dataclass(frozen=True)
class _EntryMap:
    """One parameter's entrywise comparison: what its heat map shows."""

    difference: np.ndarray  # analytic - numeric; at a kink, analytic minus the nearest valid value
    scaled: np.ndarray  # difference / tolerance: |.| > 1 is outside what this comparison can resolve
    kink: np.ndarray  # entries at a kink
    low: np.ndarray  # the valid range at a kink (the one-sided derivatives); the numeric value elsewhere
    high: np.ndarray


def _entry_map(loss_at: Callable[[Blocks], float], x: Blocks, name: str, analytic: np.ndarray, f0: float,
               floor: float) -> _EntryMap:
    """Central and one-sided differences entry by entry at steps h and h/2, where h balances truncation and rounding."""
    base = x[name]
    eps = np.finfo(np.float64).eps
    shape = base.shape
    numeric, low, high, tolerance = (np.empty(shape) for _ in range(4))
    kink = np.zeros(shape, dtype=bool)
    for index in np.ndindex(shape):
        h = np.cbrt(eps) * max(abs(float(base[index])), 1.0)
        at = {s: _moved(x, name, index, s) for s in (h, -h, h / 2, -h / 2)}
        values = {s: loss_at(p) for s, p in at.items()}
        central = lambda s: (values[s] - values[-s]) / (2 * s)  # noqa: E731
        gap = lambda s: (values[s] - 2 * f0 + values[-s]) / s  # forward minus backward one-sided difference  # noqa: E731
        rounding = eps * max(abs(f0), 1e-300) / (h / 2)
        jumped = abs(gap(h / 2)) > KINK_GAP_RATIO * abs(gap(h)) and abs(gap(h / 2)) > KINK_NOISE_FACTOR * rounding
        forward, backward = (values[h / 2] - f0) / (h / 2), (f0 - values[-h / 2]) / (h / 2)
        numeric[index] = central(h / 2)
        kink[index] = jumped
        low[index], high[index] = (min(forward, backward), max(forward, backward)) if jumped else (numeric[index],) * 2
        tolerance[index] = ENTRY_TOLERANCE_FACTOR * (abs(central(h) - central(h / 2)) + rounding)
    relative = floor if np.isfinite(floor) else 0.0
    tolerance = np.maximum(tolerance + relative * np.abs(analytic), np.finfo(np.float64).tiny)
    difference = analytic - np.clip(analytic, low, high)
    return _EntryMap(difference, difference / tolerance, kink, low, high)


def _moved(x: Blocks, name: str, index: tuple[int, ...], step: float) -> Blocks:
    moved = x[name].copy()
    moved[index] += step
    return {**x, name: moved}
