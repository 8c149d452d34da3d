"""The results of a check as data: frozen dataclasses and nothing else.

A leaf module: it imports nothing from derivcheck, so the checker, the diagnosis and the
renderers all depend on it and never on each other through it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from derivcheck.language.declaration import Program


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
        from derivcheck.report.gradient import wrong_entry_text

        return wrong_entry_text(self)


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
    resolution: str = ""  # "interval", "separated" (coincident kinks), "off-kink formula wrong", "outside every piece"


@dataclass(frozen=True)
class DirectionCheck:
    """One directional comparison ``<g, v>`` against the finite difference along ``v``."""

    label: str  # "gradient", "random 1", "uniform", ...
    params: tuple[str, ...]  # the parameters that ``v`` moves
    analytic: float
    numeric: float
    tolerance: float
    step: float
    # "smooth", "refined" (a kink nearby or strong curvature: a shorter step), "kink", "jump", or "kinks" (in low
    # precision, kinks crowd the stencil and no shorter one was proven free of them: undecided)
    kind: str
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
    # Smallest error in any one entry this run could detect, as a fraction of the largest |entry| (nan: not measured)
    single_entry_floor: float = float("nan")


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
    # (loss, grad, params) as the check received them, so that report.plot() needs nothing more;
    # references, not copies, and never part of to_dict or JSON.
    plot_source: Any = field(default=None, repr=False, compare=False)
    line_blame: LineBlame | None = None  # on a failure: the first wrong line of the user's backward pass, and why

    @property
    def ok(self) -> bool:
        """True only for a pass."""
        return self.verdict == "pass"

    def __repr__(self) -> str:
        from derivcheck.report.gradient import console_text

        return console_text(self)

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

    def plot(self, loss: Any = None, grad: Any = None, params: Any = None, path: str | None = None,
             entry: Any = None) -> Any:
        """The step-size curve (random, or along ``entry``) and each parameter's error map, as a matplotlib
        figure; without ``loss, grad, params``, those the check received."""
        if loss is None and grad is None and params is None and self.plot_source is not None:
            loss, grad, params = self.plot_source
        return PLOTTERS["plot"](self, loss, grad, params, path=path, seed=self.seed, entry=entry)


@dataclass(frozen=True)
class PlotData:
    """What a plot of a check shows besides the report: the step-size curve and per-entry differences."""

    steps: Any  # step sizes along the curve's direction
    relative_errors: Any  # |central difference - analytic| / |analytic| at each step
    label: str  # "random direction" or "entry W[0, 1]"
    differences: dict[str, Any]  # parameter -> analytic minus entrywise numeric (small parameters only)
    # parameter -> the differences in units of each entry's tolerance (what the colour shows: |.| > 1 fails);
    # at a kink, the distance from the analytic value to the valid range of one-sided derivatives
    scaled: dict[str, Any] = field(default_factory=dict)
    kinks: dict[str, Any] = field(default_factory=dict)  # parameter -> boolean mask of entries at a kink
    kink_ranges: dict[str, Any] = field(default_factory=dict)  # parameter -> (low, high) arrays of valid values


# The computation behind GradientReport.plot belongs to the checker (derivcheck.checker.plots), which
# fills this table when it loads: the report stays a leaf that imports no algorithm.
PLOTTERS: dict[str, Callable[..., Any]] = {}



@dataclass(frozen=True)
class GradientVerification:
    """One row: one argument's gradient, the witnesses that agree, the largest difference."""

    layer: str
    arg: str
    agreeing: tuple[str, ...]
    disagreeing: tuple[str, ...]
    max_rel_error: float
    matrix_kind: str
    seconds: float
    message: str

    @property
    def ok(self) -> bool:
        return not self.disagreeing


@dataclass(frozen=True)
class LayerVerification:
    """All rows of one layer at one set of sizes."""

    layer: str
    sizes: dict[str, int]
    rows: tuple[GradientVerification, ...]
    derive_seconds: float
    seconds: float

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    def __str__(self) -> str:
        from derivcheck.report.verification import render_verification_text

        return render_verification_text([self], self.seconds)

    def __repr__(self) -> str:  # at the console: the table, not a dataclass dump
        return str(self)

    def _repr_markdown_(self) -> str:
        from derivcheck.report.verification import render_verification_markdown

        return render_verification_markdown([self])

    def _repr_html_(self) -> str:
        from derivcheck.report.verification import render_verification_html

        return render_verification_html([self])

    def _repr_latex_(self) -> str:
        from derivcheck.report.verification import render_verification_latex

        return render_verification_latex([self])


# --- the matrix language's results ---------------------------------------------------------------

def verdict_ok(verdict: str) -> bool | None:
    """A checker verdict as a Verification's ``ok``: True, False, or None (inconclusive: no power)."""
    return {"pass": True, "fail": False}.get(verdict)


@dataclass(frozen=True)
class Verification:
    """One comparison made in the run: what against what, at which sizes, how far apart."""

    what: str
    against: str
    sizes: dict[str, int]
    max_rel_error: float
    ok: bool | None  # None: inconclusive (the check had no power)
    detail: str = ""


@dataclass(frozen=True)
class Form:
    """One printed artefact in text and LaTeX (absent, with the reason, where none is shown)."""

    text: str | None
    latex: str | None
    note: str = ""


@dataclass(frozen=True)
class ExpressionDerivation:
    """The derivative of a typed expression: index form, matrix form, code, optional Hessian, and its checks."""

    expression: str
    wrt: str
    declarations: tuple[str, ...]
    order: int
    forward: Form
    index_lhs: Form
    index_form: Form
    gradient: Form  # the matrix form; see ``matrix_form``
    matrix_lhs: Form  # its left side, ∂f/∂w
    code: str | None
    hvp: Form | None
    hessian: Form | None
    checks: tuple[Verification, ...]
    seconds: float
    notes: tuple[str, ...] = ()

    @property
    def matrix_form(self) -> str | None:
        """The gradient in matrix notation (text), or None where it did not verify."""
        return self.gradient.text

    @property
    def ok(self) -> bool:
        """True when every comparison made in the run agreed."""
        return all(c.ok for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["matrix_form"] = self.matrix_form
        out["ok"] = self.ok
        return out

    def __str__(self) -> str:
        from derivcheck.report.language import derivation_text

        return derivation_text(self)

    def _repr_markdown_(self) -> str:
        from derivcheck.report.language import derivation_markdown

        return derivation_markdown(self)

    def _repr_latex_(self) -> str:
        from derivcheck.report.language import derivation_latex

        return derivation_latex(self)


@dataclass(frozen=True)
class EquationCheck:
    """Whether a hand-typed gradient is the gradient of an expression, and what explains a difference."""

    expression: str
    wrt: str
    claimed: str
    verdict: str  # "pass", "fail" or "inconclusive"
    exact: bool | None  # decided with exact arithmetic at small explicit sizes (None: not decidable there)
    truth: str | None  # the verified gradient, in matrix notation
    explanation: tuple[str, ...]
    checks: tuple[Verification, ...]
    seconds: float
    reports: tuple[Any, ...] = field(default=(), repr=False)  # the numeric checker's reports

    @property
    def ok(self) -> bool:
        """True when the claimed gradient is right."""
        return self.verdict == "pass"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("reports")
        out["ok"] = self.ok
        return out

    def __str__(self) -> str:
        from derivcheck.report.language import equation_text

        return equation_text(self)

    def _repr_markdown_(self) -> str:
        from derivcheck.report.language import equation_markdown

        return equation_markdown(self)

    def _repr_html_(self) -> str:
        from derivcheck.report.language import equation_html

        return equation_html(self)


@dataclass(frozen=True)
class Line:
    """One printed equation: its left-hand side and right-hand side."""

    lhs: Form
    rhs: Form
    index: Form | None = None  # the same right-hand side in index notation: one entry, with explicit sums


@dataclass(frozen=True)
class ProgramDerivation:
    """Forward and backward passes of a program, each backward line verified; ``code`` is the backward in NumPy."""

    program: Program
    forward: tuple[Line, ...]
    backward: tuple[Line, ...]
    gradients: tuple[Line, ...]
    code: str | None
    checks: tuple[Verification, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def __str__(self) -> str:
        from derivcheck.report.language import program_text

        return program_text(self)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["program"]["shapes"] = dict(self.program.shapes)
        out["ok"] = self.ok
        return out

    def _repr_latex_(self) -> str:
        from derivcheck.report.language import program_latex_lines

        return "$$\\begin{aligned}" + r" \\ ".join(x.replace(" = ", " &= ", 1) for x in program_latex_lines(self)) + "\\end{aligned}$$"


# --- the line of a backward pass that goes wrong ------------------------------------------------------

STATUSES = ("blamed", "no_line", "unreadable", "undecided")


@dataclass(frozen=True)
class LineBlame:
    """Where a hand-written backward pass goes wrong: the first wrong line, confirmed by repair, and its cause."""

    status: str  # one of STATUSES
    file: str | None = None
    line: int | None = None
    source: str | None = None
    variable: str | None = None
    step: tuple | None = None  # ((loop variable, value), ...) innermost first, or None
    function: str | None = None
    entries: tuple = ()  # ((index, yours, true), ...)
    cause: str | None = None
    cause_text: str | None = None
    corrected: str | None = None
    confirmed_by_repair: bool = False
    evaluations: int = 0
    seconds: float = 0.0
    reason: str | None = None
    wrong_params: tuple = ()
    details: dict = field(default_factory=dict)  # cause fields: factor, substitution, ...
    listing: tuple[tuple[int, str], ...] = ()  # (line number, text) of the source around the wrong line

    @property
    def blamed(self) -> bool:
        return self.status == "blamed"

    @property
    def location(self) -> str | None:
        return None if self.file is None else f"{self.file.replace(chr(92), '/').rsplit('/', 1)[-1]}:{self.line}"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["step"] = None if self.step is None else [list(s) for s in self.step]
        out["entries"] = [[list(i), y, t] for i, y, t in self.entries]
        out["wrong_params"] = list(self.wrong_params)
        out["listing"] = [list(x) for x in self.listing]
        out["details"] = {k: (v if isinstance(v, (int, float, str, type(None))) else str(v))
                          for k, v in self.details.items()}
        return out
