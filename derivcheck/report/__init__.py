"""Results as data (``results``: frozen dataclasses, a leaf) and the renderers that write them out.

Renderers compute nothing: they read the fields of a result and format them.
"""

from derivcheck.report.gradient import render_html, render_markdown, render_text, to_dict
from derivcheck.report.results import (
    DirectionCheck,
    Evaluations,
    Finding,
    GradientReport,
    Kink,
    ParamReport,
    TaylorResult,
    WrongEntry,
)

__all__ = [
    "DirectionCheck",
    "Evaluations",
    "Finding",
    "GradientReport",
    "Kink",
    "ParamReport",
    "TaylorResult",
    "WrongEntry",
    "render_html",
    "render_markdown",
    "render_text",
    "to_dict",
]
