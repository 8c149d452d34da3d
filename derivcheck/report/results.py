"""The results of a check as data: frozen dataclasses and nothing else.

A leaf module: it imports nothing from derivcheck, so the checker, the diagnosis and the
renderers all depend on it and never on each other through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def format_index(name: str, index: tuple[int, ...]) -> str:
    """``dW[1, 2]``: how an entry of a gradient is written."""
    return f"d{name}[{', '.join(str(i) for i in index)}]" if index else f"d{name}"


@dataclass(frozen=True)
class Finding:
    """One conclusion as data; ``kind`` is a stable key such as ``"scale"``, ``message`` its rendering.

    The structured fields say what the message says: the parameter, the entries concerned,
    a factor, an axis, and anything else a kind needs in ``detail`` (a shift, a tensor's name).
    """

    kind: str
    message: str
    param: str | None = None
    severity: str = "error"  # "error" explains a failure, "warning" weakens a pass, "info" is context
    entries: tuple[tuple[int, ...], ...] = ()
    factor: float | None = None
    axis: int | None = None
    detail: dict[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class WrongEntry:
    """One localized wrong gradient entry."""

    param: str
    index: tuple[int, ...]
    analytic: float
    numeric: float

    def __str__(self) -> str:
        return f"{format_index(self.param, self.index)}: analytic {self.analytic:.6g}, numeric {self.numeric:.6g}"


@dataclass(frozen=True)
class Kink:
    """A non-differentiable point: the analytic value must be a valid subgradient there."""

    param: str | None  # None: along a direction shared by several parameters
    index: tuple[int, ...] | None  # None: along a direction, not one entry
    analytic: float
    left: float  # the lower end of the valid range (one-sided derivative, or the separated kinks' sum)
    right: float
    valid_subgradient: bool
    direction: str = ""  # which direction, for a kink met along one
    resolution: str = ""  # "interval", "separated" (coincident kinks) or "off-kink formula wrong"


@dataclass(frozen=True)
class DirectionCheck:
    """One directional comparison ``<g, v>`` against the finite difference along ``v``."""

    label: str  # "gradient", "random 1", "uniform", ...
    params: tuple[str, ...]  # the parameters that ``v`` moves
    analytic: float
    numeric: float
    tolerance: float
    step: float
    kind: str  # "smooth", "refined" (a kink nearby or strong curvature: a shorter step), "kink" or "jump"
    passed: bool


@dataclass(frozen=True)
class ParamReport:
    """One row of the report: how one parameter's gradient compares."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    method: str  # "full" (every entry), "joint" (directions shared by all parameters) or "directional"
    checked: int  # entries or directions compared
    max_abs_error: float  # nan where only directions shared with other parameters were compared
    max_rel_error: float
    worst_index: tuple[int, ...] | None
    analytic_at_worst: float
    numeric_at_worst: float
    detection_floor: float  # smallest uniform relative error this run could detect
    verdict: str
    reason: str = ""  # why a verdict is inconclusive


@dataclass(frozen=True)
class TaylorResult:
    """Tolerance-free second opinion: the remainder ``|L(x+ev) - L(x) - e v.g|`` versus ``e``."""

    epsilons: tuple[float, ...]
    remainders: tuple[float, ...]
    order: float | None  # fitted slope of log remainder vs log e over the usable points; 2 = correct
    usable: int
    note: str


@dataclass(frozen=True)
class Evaluations:
    """How many times the user's functions were called."""

    loss: int
    grad: int

    def __str__(self) -> str:
        return f"{self.loss} loss + {self.grad} gradient evaluations"


@dataclass(frozen=True)
class GradientReport:
    """The result of a gradient check: verdict, per-parameter rows, localized entries, diagnosis."""

    verdict: str  # "pass", "fail" or "inconclusive"
    params: tuple[ParamReport, ...]
    wrong_entries: dict[str, tuple[WrongEntry, ...]]
    kinks: tuple[Kink, ...]
    findings: tuple[Finding, ...]
    taylor: TaylorResult | None
    evaluations: Evaluations
    seconds: float
    seed: int
    evaluated_in: str
    title: str = "gradient check"
    directions: tuple[DirectionCheck, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True only for a pass."""
        return self.verdict == "pass"

    @property
    def diagnosis(self) -> list[str]:
        """The findings as plain-English sentences, most important first."""
        return [f.message for f in self.findings]

    # The renderings live in derivcheck.report.gradient; imported on use, so this module stays a leaf.
    def __str__(self) -> str:
        from derivcheck.report.gradient import render_text

        return render_text(self)

    def _repr_markdown_(self) -> str:
        from derivcheck.report.gradient import render_markdown

        return render_markdown(self)

    def _repr_html_(self) -> str:
        from derivcheck.report.gradient import render_html

        return render_html(self)

    def _repr_latex_(self) -> str:
        from derivcheck.report.gradient import render_latex

        return render_latex(self)

    def plot(self, loss: Any, grad: Any, params: Any, path: str | None = None, entry: Any = None) -> Any:
        """The step-size curve (random, or along ``entry``) and each parameter's error map, as a matplotlib figure."""
        from derivcheck.report.plot import plot_check

        return plot_check(self, loss, grad, params, path=path, seed=self.seed, entry=entry)
