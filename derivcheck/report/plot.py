"""Drawing a gradient check (the optional ``plot`` extra, matplotlib): the figure from the report and
the numbers ``derivcheck.checker.plots`` computed for it. Nothing here evaluates a function."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from derivcheck.errors import DerivcheckError

if TYPE_CHECKING:
    from derivcheck.report.results import GradientReport, ParamReport, PlotData, WrongEntry


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ModuleNotFoundError as exc:
        raise DerivcheckError("plots need matplotlib: pip install 'derivcheck[plot]'") from exc
    return plt


def draw_check(report: GradientReport, data: PlotData, path: str | None = None) -> Any:
    """The figure: the step-size curve, then each parameter's error map (or its wrong entries)."""
    plt = _pyplot()
    shown = [p for p in report.params if len(p.shape) <= 2]
    fig, axes = plt.subplots(1, 1 + len(shown), figsize=(4.8 * (1 + len(shown)), 3.8), squeeze=False)
    _draw_curve(axes[0][0], data.steps, data.relative_errors, report, data.label)
    for ax, p in zip(axes[0][1:], shown):
        wrong = report.wrong_entries.get(p.name, ())
        if p.name in data.differences:
            _draw_heatmap(fig, ax, p, data.differences[p.name], wrong)
        else:
            _draw_entries(ax, p, wrong)
    fig.suptitle(f"derivcheck: {report.verdict.upper()}")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


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
