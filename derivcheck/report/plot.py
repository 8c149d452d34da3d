"""Drawing a gradient check (the optional ``plot`` extra, matplotlib): the figure from the report and
the numbers ``derivcheck.checker.plots`` computed for it. Nothing here evaluates a function.

The figure is a ``matplotlib.figure.Figure`` made directly: pyplot is never imported and the backend
is never switched, so a notebook's own inline plots carry on as before. In a notebook the returned
figure displays itself; ``path`` also saves it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from derivcheck.errors import DerivcheckError

if TYPE_CHECKING:
    from derivcheck.report.results import GradientReport, ParamReport, PlotData, WrongEntry

# The colour runs over +-COLOUR_LIMIT tolerances: an entry at its tolerance is half-saturated, a pass pale.
COLOUR_LIMIT = 2.0


def _figure(width: float, height: float) -> Any:
    try:
        from matplotlib.figure import Figure
    except ModuleNotFoundError as exc:
        raise DerivcheckError("plots need matplotlib: pip install 'derivcheck[plot]'") from exc
    return Figure(figsize=(width, height))


def draw_check(report: GradientReport, data: PlotData, path: str | None = None) -> Any:
    """The figure: the step-size curve, then each parameter's error map (or its wrong entries)."""
    fig = _figure(4.8 * (1 + len(report.params)), 4.0)
    axes = fig.subplots(1, 1 + len(report.params), squeeze=False)[0]
    _draw_curve(axes[0], data.steps, data.relative_errors, report, data.label)
    for ax, p in zip(axes[1:], report.params):
        wrong = report.wrong_entries.get(p.name, ())
        if p.name in data.differences:
            _draw_heatmap(fig, ax, p, data, wrong)
        else:
            _draw_entries(ax, p, wrong)
    fig.suptitle(f"derivcheck: {report.verdict.upper()}")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def _grid(shape: tuple[int, ...]) -> tuple[int, int]:
    """Rows and columns of the map: axis 0 by the other axes flattened (C order); a vector is one row."""
    if len(shape) >= 2:
        return shape[0], int(np.prod(shape[1:]))
    return 1, int(np.prod(shape)) if shape else 1


def _cell(index: tuple[int, ...], shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) >= 2:
        return index[0], int(np.ravel_multi_index(index[1:], shape[1:]))
    return 0, (index[0] if index else 0)


def layout_note(shape: tuple[int, ...]) -> str:
    """How an n-D parameter is laid out on the map, said on the figure."""
    if len(shape) <= 2:
        return ""
    rest = "x".join(str(s) for s in shape[1:])
    return f"\nrows: axis 0; columns: axes 1-{len(shape) - 1} ({rest}) flattened in C order"


def _draw_curve(ax: Any, steps: np.ndarray, rel: np.ndarray, report: GradientReport, label: str) -> None:
    ax.loglog(steps, np.maximum(rel, 1e-17), "o-", ms=3)
    used = [d.step for d in report.directions]
    if used and label == "random direction":
        ax.axvline(min(used), color="grey", ls="--", lw=1, label="derivcheck's steps")
        ax.axvline(max(used), color="grey", ls="--", lw=1)
        ax.legend(loc="best", fontsize=8)
    ax.set_xlabel("step h (relative to each entry)")
    ax.set_ylabel("|central difference - analytic| / |analytic|")
    title = f"step-size curve ({label})"
    if report.kinks:
        title += (f"\n{len(report.kinks)} kink(s) met: a central difference across one is no derivative;"
                  f"\nthe verdict judges subgradients")
    ax.set_title(title, fontsize=9)


def _draw_heatmap(fig: Any, ax: Any, p: ParamReport, data: PlotData, wrong: Sequence[WrongEntry]) -> None:
    rows_cols = _grid(p.shape)
    difference = np.asarray(data.differences[p.name]).reshape(rows_cols)
    scaled = data.scaled.get(p.name)
    grid = np.asarray(scaled).reshape(rows_cols) if scaled is not None else difference
    limit = COLOUR_LIMIT if scaled is not None else (float(np.max(np.abs(grid))) or 1.0)
    image = ax.imshow(grid, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto", interpolation="nearest")
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    bar.set_label("(analytic - numeric) / tolerance" if scaled is not None else "analytic - numeric", fontsize=8)
    for e in wrong:
        r, c = _cell(e.index, p.shape)
        ax.plot(c, r, marker="x", color="black", ms=8, mew=2)
    kinks = data.kinks.get(p.name)
    at_kinks = int(np.count_nonzero(kinks)) if kinks is not None else 0
    if at_kinks:
        r, c = np.nonzero(np.asarray(kinks).reshape(rows_cols))
        ax.scatter(c, r, s=60, facecolors="none", edgecolors="dimgrey", linewidths=1.2)
    ax.set_xlim(-0.5, rows_cols[1] - 0.5)  # the marks must not widen the image's frame
    ax.set_ylim(rows_cols[0] - 0.5, -0.5)
    _integer_ticks(ax)
    bound = float(np.max(np.abs(difference))) if difference.size else 0.0
    title = f"d{p.name}: analytic - numeric, max {bound:.1e} ({p.verdict}"
    title += f", {len(wrong)} wrong marked x)" if wrong else ")"
    if at_kinks:
        title += f"\no: {at_kinks} at a kink, judged by the distance to its valid range"
    ax.set_title(title + layout_note(p.shape), fontsize=9)
    ax.set_xlabel("column" if len(p.shape) <= 2 else "axes 1.. (flattened)")
    ax.set_ylabel("row" if len(p.shape) >= 2 else "")


def _integer_ticks(ax: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def _draw_entries(ax: Any, p: ParamReport, wrong: Sequence[WrongEntry]) -> None:
    grid = np.zeros(_grid(p.shape))
    for e in wrong:
        grid[_cell(e.index, p.shape)] = 1
    ax.imshow(grid, cmap="Reds", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    _integer_ticks(ax)
    if wrong:
        title = f"d{p.name}: {len(wrong)} wrong entr{'y' if len(wrong) == 1 else 'ies'} ({p.verdict})"
    elif p.verdict == "fail":
        title = f"d{p.name}: the error is spread, not in a few entries (see the diagnosis)"
    else:
        title = f"d{p.name}: no wrong entry ({p.verdict})"
    ax.set_title(title + layout_note(p.shape), fontsize=9)
    ax.set_xlabel("column" if len(p.shape) <= 2 else "axes 1.. (flattened)")
    ax.set_ylabel("row" if len(p.shape) >= 2 else "")
