"""Plots (the optional ``plot`` extra, matplotlib): the step-size curve and maps of the error.

The figure has one panel for the step-size V-curve (along a random direction, or along one
chosen entry) and one per parameter: for a parameter of at most ``HEATMAP_MAX_ENTRIES``
entries, a heat map of analytic minus numeric (central differences, one per entry) with
the report's wrong entries marked; for a larger one, the map of the wrong entries alone.

Examples
--------
>>> import numpy as np, derivcheck as dc
>>> from derivcheck.report.plot import plot_check
>>> w = np.linspace(-1, 1, 6).reshape(2, 3)
>>> report = dc.check_gradient(lambda w: float(np.sum(w**3)), lambda w: 3 * w**2, w)
>>> figure = plot_check(report, lambda w: float(np.sum(w**3)), lambda w: 3 * w**2, w, entry=(0, 1))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from derivcheck.errors import DerivcheckError, InputError
from derivcheck.numeric.step_curve import step_curve
from derivcheck.report.results import GradientReport, ParamReport, WrongEntry
from derivcheck.checker.parameters import Blocks, ParamSpace

# A heat map costs two loss calls per entry; above this size only the wrong entries are drawn.
HEATMAP_MAX_ENTRIES = 4096


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ModuleNotFoundError as exc:
        raise DerivcheckError("plots need matplotlib: pip install 'derivcheck[plot]'") from exc
    return plt


def plot_check(report: GradientReport, loss: Callable[[Any], Any], grad: Callable[[Any], Any], params: Any,
               path: str | None = None, seed: int = 0, entry: Any = None) -> Any:
    """A figure: the step-size curve (random direction, or ``entry``) and each parameter's error map.

    ``entry`` is an index such as ``(0, 1)`` for a single array, or ``("W", (0, 1))`` for a
    dict or list of parameters.
    """
    plt = _pyplot()
    space = ParamSpace.of(params)
    x = space.blocks(params)
    loss_at = lambda p: float(np.asarray(loss(space.to_user({k: v.copy() for k, v in p.items()}))))  # noqa: E731
    g = space.gradient_blocks(grad(space.to_user({k: v.copy() for k, v in x.items()})))
    moves, label = _curve_direction(space, x, entry, seed)
    analytic = float(sum(np.vdot(g[k], moves[k]) for k in moves))
    steps, rel = step_curve(loss_at, x, moves, analytic)
    shown = [p for p in report.params if len(p.shape) <= 2]
    fig, axes = plt.subplots(1, 1 + len(shown), figsize=(4.8 * (1 + len(shown)), 3.8), squeeze=False)
    _draw_curve(axes[0][0], steps, rel, report, label)
    for ax, p in zip(axes[0][1:], shown):
        wrong = report.wrong_entries.get(p.name, ())
        if x[p.name].size <= HEATMAP_MAX_ENTRIES:
            difference = g[p.name] - _entrywise_numeric(loss_at, x, p.name)
            _draw_heatmap(fig, ax, p, difference, wrong)
        else:
            _draw_entries(ax, p, wrong)
    fig.suptitle(f"derivcheck: {report.verdict.upper()}")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


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


def _grid(shape: tuple[int, ...]) -> tuple[int, int]:
    return (shape[0], shape[1]) if len(shape) == 2 else (1, int(np.prod(shape)) if shape else 1)


def _cell(index: tuple[int, ...]) -> tuple[int, int]:
    return (index[0], index[1]) if len(index) == 2 else (0, index[0] if index else 0)


def _draw_curve(ax: Any, steps: np.ndarray, rel: np.ndarray, report: GradientReport, label: str) -> None:
    ax.loglog(steps, np.maximum(rel, 1e-17), "o-", ms=3)
    used = [d.step for d in report.directions]
    if used and label == "random direction":
        ax.axvline(min(used), color="grey", ls="--", lw=1, label="derivcheck's steps")
        ax.axvline(max(used), color="grey", ls="--", lw=1)
        ax.legend(loc="best", fontsize=8)
    ax.set_xlabel("step h (relative to each entry)")
    ax.set_ylabel("|central difference - analytic| / |analytic|")
    ax.set_title(f"step-size curve ({label})", fontsize=9)


def _draw_heatmap(fig: Any, ax: Any, p: ParamReport, difference: np.ndarray, wrong: Sequence[WrongEntry]) -> None:
    grid = difference.reshape(_grid(p.shape))
    bound = float(np.max(np.abs(grid))) or 1.0
    image = ax.imshow(grid, cmap="RdBu_r", vmin=-bound, vmax=bound, aspect="auto", interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    for e in wrong:
        r, c = _cell(e.index)
        ax.plot(c, r, marker="x", color="black", ms=8, mew=2)
    ax.set_xlim(-0.5, grid.shape[1] - 0.5)  # the marks must not widen the image's frame
    ax.set_ylim(grid.shape[0] - 0.5, -0.5)
    _integer_ticks(ax)
    ax.set_title(f"d{p.name}: analytic - numeric, max {bound:.1e} ({p.verdict}"
                 + (f", {len(wrong)} wrong marked x)" if wrong else ")"), fontsize=9)
    ax.set_xlabel("column")
    ax.set_ylabel("row")


def _integer_ticks(ax: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def _draw_entries(ax: Any, p: ParamReport, wrong: Sequence[WrongEntry]) -> None:
    grid = np.zeros(_grid(p.shape))
    for e in wrong:
        grid[_cell(e.index)] = 1
    ax.imshow(grid, cmap="Reds", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    _integer_ticks(ax)
    if wrong:
        title = f"d{p.name}: {len(wrong)} wrong entr{'y' if len(wrong) == 1 else 'ies'} ({p.verdict})"
    elif p.verdict == "fail":
        title = f"d{p.name}: the error is spread, not in a few entries (see the diagnosis)"
    else:
        title = f"d{p.name}: no wrong entry ({p.verdict})"
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("column")
    ax.set_ylabel("row")
