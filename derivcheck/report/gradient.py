"""The gradient-check report and its text, Markdown, HTML and dict renderings."""

from __future__ import annotations

import html
import math
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the types' methods call these renderers: at run time this module reads fields only
    from derivcheck.report.results import GradientReport, Kink, LineBlame, TaylorResult, WrongEntry


def format_index(name: str, index: tuple[int, ...]) -> str:
    """``dW[1, 2]``: how an entry of a gradient is written."""
    return f"d{name}[{', '.join(str(i) for i in index)}]" if index else f"d{name}"


def wrong_entry_text(w: WrongEntry) -> str:
    """``dW[1, 2]: analytic 3, numeric 1.5``."""
    return f"{format_index(w.param, w.index)}: analytic {w.analytic:.6g}, numeric {w.numeric:.6g}"


# Entries listed per parameter in text; the report object keeps them all.
_LISTED = 5

_COLUMNS = ("param", "shape", "method", "max abs err", "max rel err", "worst entry", "analytic", "numeric", "floor",
            "1-entry", "verdict")


def _num(value: float, spec: str) -> str:
    return "-" if value != value else format(value, spec)  # nan: not measured for this row


def _rows(report: GradientReport) -> list[tuple[str, ...]]:
    rows = []
    for p in report.params:
        worst = format_index(p.name, p.worst_index) if p.worst_index is not None else "-"
        rows.append(
            (
                p.name,
                "x".join(map(str, p.shape)) or "scalar",
                f"{p.method}({p.checked})",
                _num(p.max_abs_error, ".2e"),
                _num(p.max_rel_error, ".2e"),
                worst,
                _num(p.analytic_at_worst, ".6g"),
                _num(p.numeric_at_worst, ".6g"),
                f"{p.detection_floor:.1e}",
                _num(p.single_entry_floor, ".1e"),
                p.verdict.upper(),
            )
        )
    return rows


_DIRECTION_COLUMNS = ("direction", "moves", "analytic", "numeric", "tolerance", "step", "seen", "verdict")


def _direction_rows(report: GradientReport) -> list[tuple[str, ...]]:
    return [
        (
            d.label,
            ", ".join(d.params) if len(d.params) <= 3 else f"{len(d.params)} parameters",
            f"{d.analytic:.9g}",
            "-" if d.kind == "jump" else f"{d.numeric:.9g}",
            f"{d.tolerance:.1e}",
            f"{d.step:.1e}",
            d.kind,
            "-" if d.kind in ("jump", "kinks") else ("ok" if d.passed else "FAIL"),  # these decide nothing
        )
        for d in report.directions
    ]


def _table(columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    allrows = [columns, *rows]
    widths = [max(len(r[i]) for r in allrows) for i in range(len(columns))]
    lines = []
    for k, r in enumerate(allrows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def _kink_line(k: Kink) -> str:
    if k.index is not None and k.param is not None:
        where = format_index(k.param, k.index)
    else:
        where = f"along the {k.direction} direction" if k.direction else "along a direction"
    ok = "valid subgradient" if k.valid_subgradient else "NOT a valid subgradient"
    if k.resolution == "unresolved":
        ok = "undecided: too many coincident kinks to separate along it"
    how = {"separated": " (coincident kinks, separated)", "off-kink formula wrong": " (wrong just off the kink)",
           "outside every piece": " (every nearby point probed found one of these two slopes, none this value)"}.get(k.resolution, "")
    return f"  {where}: analytic {k.analytic:.6g}, valid range [{k.left:.6g}, {k.right:.6g}]: {ok}{how}"


def _headline(report: GradientReport) -> str:
    return (
        f"derivcheck {report.title}: {report.verdict.upper()}  "
        f"({report.evaluations}, {report.seconds:.2f} s, evaluated in {report.evaluated_in}, seed {report.seed})"
    )


def _taylor_line(t: TaylorResult) -> str:
    order = f"{t.order:.2f}" if t.order is not None else "n/a"
    return f"Taylor remainder test: observed order {order} (2 = correct gradient, 1 = wrong) - {t.note}"


def summary_line(report: GradientReport) -> str:
    """One line for a test summary: the verdict, the parameters that did not pass and the first cause."""
    failing = [f"d{p.name}" for p in report.params if p.verdict != "pass"]
    causes = [f for f in report.findings if f.severity == "error"] or list(report.findings)
    where = ", ".join(failing) or report.title
    cause = f"({causes[0].kind}): {causes[0].message}" if causes else "(no cause found): see the table"
    b = report.line_blame
    if b is not None and b.status == "blamed":  # the wrong line says more than any whole-gradient finding
        cause = f"at {b.location}: {b.source} ({b.cause or 'cause not named'})" + (
            f", corrected: {b.corrected}" if b.corrected else "")
    # Most telling first: a terminal-wide summary cuts the end off.
    return f"{where} {report.verdict.upper()} {cause}".replace("\n", " ")


# Parameter rows a report shows at the console before "... more"; print(report) shows everything.
_CONSOLE_ROWS = 8


def console_text(report: GradientReport) -> str:
    """What a report shows at the console (``repr``): the headline, the parameter table's first rows and the
    first cause; ``print(report)`` shows the whole report."""
    table = _table(_COLUMNS, _rows(report))
    lines = [_headline(report), "", *table[:2 + _CONSOLE_ROWS]]
    if len(table) > 2 + _CONSOLE_ROWS:
        lines.append(f"... and {len(table) - 2 - _CONSOLE_ROWS} more parameters")
    causes = [f for f in report.findings if f.severity == "error"]
    if causes:
        lines += ["", f"diagnosis: {causes[0].message}"]
    return "\n".join(lines + ["(print(report) shows the directions, entries and the whole diagnosis)"])


def render_text(report: GradientReport) -> str:
    """A fixed-width table followed by the directions, localized entries, kinks and the diagnosis."""
    lines = [_headline(report), "", *_table(_COLUMNS, _rows(report))]
    if report.line_blame is not None:
        lines += ["", render_line_blame(report.line_blame)]
    if report.directions:
        lines += ["", *_table(_DIRECTION_COLUMNS, _direction_rows(report))]
    for name, entries in report.wrong_entries.items():
        if entries:
            lines.append("")
            lines.append(f"wrong entries in {name}:")
            lines.extend(f"  {e}" for e in entries[:_LISTED])
            if len(entries) > _LISTED:
                lines.append(f"  ... and {len(entries) - _LISTED} more")
    if report.kinks:
        lines.append("")
        lines.append(f"non-differentiable points: {len(report.kinks)} (the analytic value must be a valid subgradient)")
        lines.extend(_kink_line(k) for k in report.kinks[:5])
    if report.taylor is not None:
        lines.append("")
        lines.append(_taylor_line(report.taylor))
    if report.findings:
        lines.append("")
        lines.append("diagnosis:")
        lines.extend(f"  - {f.message}" for f in report.findings)
    return "\n".join(lines)


def render_markdown(report: GradientReport) -> str:
    """A Markdown table with the same content as the text rendering."""
    lines = [f"**{_headline(report)}**", "", "| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    lines += ["| " + " | ".join(r) + " |" for r in _rows(report)]
    if report.directions:
        lines += ["", "| " + " | ".join(_DIRECTION_COLUMNS) + " |", "|" + "---|" * len(_DIRECTION_COLUMNS)]
        lines += ["| " + " | ".join(r) + " |" for r in _direction_rows(report)]
    entries = [e for es in report.wrong_entries.values() for e in es]
    if entries:
        lines += ["", "Wrong entries:", *[f"- `{e}`" for e in entries]]
    if report.kinks:
        lines += ["", f"Non-differentiable points: {len(report.kinks)}", *[f"- {_kink_line(k).strip()}" for k in report.kinks[:5]]]
    if report.taylor is not None:
        lines += ["", _taylor_line(report.taylor)]
    if report.findings:
        lines += ["", "Diagnosis:", *[f"- {f.message}" for f in report.findings]]
    if report.line_blame is not None:
        lines += ["", "The line that goes wrong:", "", "```", render_line_blame(report.line_blame), "```"]
    return "\n".join(lines)


_BAD = ' style="background:#fdd;color:#900;font-weight:bold"'


def _html_table(columns: tuple[str, ...], rows: list[tuple[str, ...]], bad: list[bool]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(f"<tr{_BAD if b else ''}>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                   for r, b in zip(rows, bad))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(report: GradientReport) -> str:
    """An HTML table for notebooks; failing rows, failing directions and the wrong entries are highlighted."""
    esc = html.escape
    parts = [f"<p><b>{esc(_headline(report))}</b></p>",
             _html_table(_COLUMNS, _rows(report), [p.verdict == "fail" for p in report.params])]
    if report.directions:
        parts.append(_html_table(_DIRECTION_COLUMNS, _direction_rows(report), [not d.passed for d in report.directions]))
    entries = [e for es in report.wrong_entries.values() for e in es]
    if entries:
        rows = [(format_index(e.param, e.index), f"{e.analytic:.6g}", f"{e.numeric:.6g}") for e in entries]
        parts.append("<p>Wrong entries:</p>" + _html_table(("entry", "analytic", "numeric"), rows, [True] * len(rows)))
    if report.kinks:
        parts.append(f"<p>Non-differentiable points: {len(report.kinks)}</p><ul>"
                     + "".join(f"<li>{esc(_kink_line(k).strip())}</li>" for k in report.kinks[:5]) + "</ul>")
    if report.taylor is not None:
        parts.append(f"<p>{esc(_taylor_line(report.taylor))}</p>")
    if report.findings:
        parts.append("<p>Diagnosis:</p><ul>" + "".join(f"<li>{esc(f.message)}</li>" for f in report.findings) + "</ul>")
    if report.line_blame is not None:
        parts.append(_line_blame_html(report.line_blame))
    return "\n".join(parts)


def _line_blame_html(b: LineBlame) -> str:
    """The backward's source around the wrong line, that line marked, then the text of the blame."""
    esc = html.escape
    listing = "".join(
        f"<span{_BAD}>{n:>5}  {esc(text)}</span>\n" if n == b.line else f"{n:>5}  {esc(text)}\n"
        for n, text in b.listing)
    code = f"<pre>{listing}</pre>" if listing else ""
    return f"<p>The line that goes wrong:</p>{code}<pre>{esc(render_line_blame(b))}</pre>"


def latex_table(columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """A table as a MathJax ``array`` (notebooks' LaTeX output has no ``tabular``), every cell as text."""
    def cell(c: str) -> str:
        escaped = "".join("\\" + ch if ch in "#$%&_{}" else ch for ch in c).replace("^", "\\^{}")
        return "\\text{" + escaped + "}"

    lines = [" & ".join(cell(c) for c in columns) + " \\\\ \\hline"]
    lines += [" & ".join(cell(c) for c in r) + " \\\\" for r in rows]
    return "\\begin{array}{" + "l" * len(columns) + "}" + " ".join(lines) + "\\end{array}"


def render_latex(report: GradientReport) -> str:
    """The verdict and the parameter rows as LaTeX (the diagnosis lines as text rows below)."""
    body = latex_table(_COLUMNS, _rows(report))
    notes = [f.message for f in report.findings]
    if notes:
        body += " \\\\ " + latex_table(("diagnosis",), [(m,) for m in notes])
    return "$$\\begin{gathered}" + latex_table((_headline(report),), []) + " \\\\ " + body + "\\end{gathered}$$"


SCHEMA = "derivcheck.gradient-report/1"


def to_dict(report: GradientReport) -> dict[str, Any]:
    """A JSON-ready dict of the whole report: strict JSON (an infinite floor or an unmeasured
    error is null), with a schema name."""
    out = asdict(replace(report, plot_source=None))  # the functions behind report.plot() are not data
    out.pop("plot_source")
    out["ok"] = report.ok
    out["diagnosis"] = report.diagnosis
    out["wrong_entries"] = {k: [asdict(e) for e in v] for k, v in report.wrong_entries.items()}
    out["line_blame"] = report.line_blame.to_dict() if report.line_blame is not None else None
    return {"schema": SCHEMA, **strict_json(out)}


def strict_json(value: Any) -> Any:
    """``value`` with every non-finite float replaced by null, so that it is strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


def render_line_blame(b: LineBlame) -> str:
    """The wrong line, yours against the true values, the cause and the corrected line, and what it cost."""
    cost = f"cost: {b.evaluations} loss/gradient evaluations, {b.seconds:.2f} s"
    if b.status != "blamed":
        return f"no line blamed ({b.status}): {b.reason}\n{cost}"
    where = f"wrong line: {b.location} in {b.function}: {b.source}"
    if b.step:
        where += "  (first wrong at " + ", ".join(f"{n} = {v}" for n, v in b.step) + ")"
    lines = [where, f"  {b.variable} is wrong; yours vs true:"]
    for index, yours, true in b.entries:
        lines.append(f"    {b.variable}{list(index)}: yours {yours:.6g}, true {true:.6g}")
    confirm = "replacing it by the true values repairs the parameter gradients it feeds" if b.confirmed_by_repair \
        else "not confirmed by repair"
    lines.append(f"  {confirm}")
    if b.details.get("unmeasured_inputs"):
        lines.append(f"  it reads {b.details['unmeasured_inputs']}, which could not be measured on its own; the "
                     f"corrected line reproduces the true values from it as computed")
    if b.cause is None:
        lines.append(f"  cause: not named ({b.cause_text})" if b.cause_text else "  cause: not named")
    else:
        lines.append(f"  cause: {b.cause_text}")
    if b.corrected:
        lines.append(f"  corrected: {b.corrected}")
    lines.append(cost)
    return "\n".join(lines)
