"""What a derivation or an equation check of the matrix language found (plain data)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


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
