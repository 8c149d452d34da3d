"""Results as data (frozen dataclasses) and the functions that render them."""

from derivcheck.report.gradient import (
    Evaluations,
    Finding,
    GradientReport,
    DirectionCheck,
    Kink,
    ParamReport,
    TaylorResult,
    WrongEntry,
    render_html,
    render_markdown,
    render_text,
    to_dict,
)

__all__ = [
    "Evaluations",
    "Finding",
    "GradientReport",
    "DirectionCheck",
    "Kink",
    "ParamReport",
    "TaylorResult",
    "WrongEntry",
    "render_html",
    "render_markdown",
    "render_text",
    "to_dict",
]
