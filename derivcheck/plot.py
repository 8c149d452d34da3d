"""Plots (the optional ``plot`` extra, matplotlib): the step-size curve and a map of wrong entries.

Examples
--------
>>> import numpy as np, derivcheck as dc
>>> from derivcheck.plot import plot_check
>>> w = np.linspace(-1, 1, 6).reshape(2, 3)
>>> report = dc.check_gradient(lambda w: float(np.sum(w**3)), lambda w: 3 * w**2, w)
>>> figure = plot_check(report, lambda w: float(np.sum(w**3)), lambda w: 3 * w**2, w)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from derivcheck.errors import DerivcheckError
from derivcheck.numeric.step_curve import step_curve
from derivcheck.report.gradient import GradientReport
from derivcheck.vspace import ParamSpace


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ModuleNotFoundError as exc:
        raise DerivcheckError("plots need matplotlib: pip install 'derivcheck[plot]'") from exc
    return plt


def plot_check(report: GradientReport, loss: Callable[[Any], Any], grad: Callable[[Any], Any], params: Any,
               path: str | None = None, seed: int = 0) -> Any:
    """A figure: the step-size curve along a random direction, and a map of each parameter's wrong entries."""
    plt = _pyplot()
    space = ParamSpace.of(params)
    x = space.blocks(params)
    g = space.gradient_blocks(grad(space.to_user({k: v.copy() for k, v in x.items()})))
    rng = np.random.default_rng(seed)
    moves = {k: rng.standard_normal(v.shape) * np.maximum(np.abs(v), 1.0) / np.sqrt(v.size) for k, v in x.items()}
    analytic = float(sum(np.vdot(g[k], moves[k]) for k in moves))
    steps, rel = step_curve(lambda p: float(np.asarray(loss(space.to_user(p)))), x, moves, analytic)
    shown = [p for p in report.params if len(p.shape) <= 2]
    fig, axes = plt.subplots(1, 1 + len(shown), figsize=(4.5 * (1 + len(shown)), 3.6), squeeze=False)
    _draw_curve(axes[0][0], steps, rel, report)
    for ax, p in zip(axes[0][1:], shown):
        _draw_entries(ax, p, report.wrong_entries.get(p.name, ()))
    fig.suptitle(f"derivcheck: {report.verdict.upper()}")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def _draw_curve(ax: Any, steps: np.ndarray, rel: np.ndarray, report: GradientReport) -> None:
    ax.loglog(steps, np.maximum(rel, 1e-17), "o-", ms=3)
    used = [d.step for d in report.directions]
    if used:
        ax.axvline(min(used), color="grey", ls="--", lw=1, label="derivcheck's steps")
        ax.axvline(max(used), color="grey", ls="--", lw=1)
        ax.legend(loc="best", fontsize=8)
    ax.set_xlabel("step h (relative to each entry)")
    ax.set_ylabel("|central difference - <g, v>| / |<g, v>|")
    ax.set_title("step-size curve (random direction)")


def _draw_entries(ax: Any, p: Any, wrong: Any) -> None:
    rows, cols = (p.shape + (1, 1))[:2] if len(p.shape) == 2 else (1, int(np.prod(p.shape)) if p.shape else 1)
    grid = np.zeros((rows, cols))
    for e in wrong:
        r, c = (e.index if len(e.index) == 2 else (0, e.index[0] if e.index else 0))
        grid[r, c] = 1
    ax.imshow(grid, cmap="Reds", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    if wrong:
        title = f"d{p.name}: {len(wrong)} wrong entr{'y' if len(wrong) == 1 else 'ies'} ({p.verdict})"
    elif p.verdict == "fail":
        title = f"d{p.name}: the error is spread, not in a few entries (see the diagnosis)"
    else:
        title = f"d{p.name}: no wrong entry ({p.verdict})"
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("column")
    ax.set_ylabel("row")
