"""Text, Markdown and LaTeX of expression derivations and equation checks (they compute nothing)."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from derivcheck.report.results import EquationCheck, ExpressionDerivation, ProgramDerivation, Verification


def _sizes(s: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in s.items()) or "scalars"


def _check_line(c: Verification) -> str:
    mark = {True: "ok  ", False: "FAIL", None: "??  "}[c.ok]
    err = "" if c.max_rel_error != c.max_rel_error else f", max rel error {c.max_rel_error:.1e}"
    detail = f" ({c.detail})" if c.detail and c.detail not in ("pass",) else ""
    return f"  {mark} {c.what} vs {c.against} [{_sizes(c.sizes)}]{err}{detail}"


def derivation_text(d: ExpressionDerivation) -> str:
    lines = [f"f = {d.forward.text}", "  where " + "; ".join(d.declarations), ""]
    if d.gradient.text is None:
        lines.append(f"{d.matrix_lhs.text}: {d.gradient.note}")
    else:
        lines.append(f"index form:  {d.index_lhs.text} = {d.index_form.text}")
        lines.append(f"matrix form: {d.matrix_lhs.text} = {d.gradient.text}")
    if d.order == 2:
        if d.hvp is not None and d.hvp.text is not None:
            lines.append(f"Hessian-vector product: H v = {d.hvp.text}   ({d.hvp.note})")
        if d.hessian is not None and d.hessian.text is not None:
            lines.append(f"Hessian: H = {d.hessian.text}")
        lines.extend(f"note: {n}" for n in d.notes)
    lines.append("")
    lines.append(f"verified in this run ({d.seconds:.2f} s):")
    lines.extend(_check_line(c) for c in d.checks)
    return "\n".join(lines)


def derivation_latex(d: ExpressionDerivation) -> str:
    rows = [f"f &= {d.forward.latex}"]
    if d.gradient.latex is not None:
        rows.append(f"{d.index_lhs.latex} &= {d.index_form.latex}")
        rows.append(f"{d.matrix_lhs.latex} &= {d.gradient.latex}")
    if d.hvp is not None and d.hvp.latex is not None:
        rows.append(f"H v &= {d.hvp.latex}")
    if d.hessian is not None and d.hessian.latex is not None:
        rows.append(f"H &= {d.hessian.latex}")
    return "$$\\begin{aligned}" + r" \\ ".join(rows) + "\\end{aligned}$$"


def derivation_markdown(d: ExpressionDerivation) -> str:
    out = [f"**f** = `{d.forward.text}` with {', '.join(f'`{x}`' for x in d.declarations)}", ""]
    if d.gradient.latex is None:
        out.append(f"**{d.matrix_lhs.text}**: {d.gradient.note}")
    else:
        out += ["$$", f"{d.index_lhs.latex} = {d.index_form.latex}", "$$", "", "$$",
                f"{d.matrix_lhs.latex} = {d.gradient.latex}", "$$"]
    if d.hvp is not None and d.hvp.latex is not None:
        out += ["", "$$", f"H v = {d.hvp.latex}", "$$"]
    if d.hessian is not None and d.hessian.latex is not None:
        out += ["", "$$", f"H = {d.hessian.latex}", "$$"]
    return "\n".join(out + ["", *_checks_table(d.checks)])


def _error_cell(c: Verification) -> str:
    """The measured relative error, or what decided the row where none was measured (an exact comparison)."""
    return f"{c.max_rel_error:.1e}" if c.max_rel_error == c.max_rel_error else (c.detail or "exact")


def _checks_table(checks: tuple[Verification, ...]) -> list[str]:
    out = ["| checked | against | sizes | max rel error | |", "|---|---|---|---|---|"]
    for c in checks:
        mark = {True: "ok", False: "**FAIL**", None: "inconclusive"}[c.ok]
        out.append(f"| {c.what} | {c.against} | {_sizes(c.sizes)} | {_error_cell(c)} | {mark} |")
    return out


def equation_markdown(e: EquationCheck) -> str:
    """An equation check in Markdown: the verdict, the verified gradient, the explanations, the checks' table."""
    verdict = {"pass": "PASS", "fail": "**FAIL**", "inconclusive": "INCONCLUSIVE"}[e.verdict]
    out = [f"{verdict}: is `{e.claimed}` the gradient of `{e.expression}` by `{e.wrt}`?", ""]
    if e.truth is not None:
        out += [f"the gradient is: `{e.truth}`", ""]
    out += [f"- {x}" for x in e.explanation]
    return "\n".join([*out, "", *_checks_table(e.checks)])


def _html_row(c: Verification) -> str:
    style = ' style="background:#fdecea"' if c.ok is False else ""
    mark = {True: "ok", False: "FAIL", None: "inconclusive"}[c.ok]
    cells = (c.what, c.against, _sizes(c.sizes), _error_cell(c), mark)
    return f"<tr{style}>" + "".join(f"<td>{html.escape(x)}</td>" for x in cells) + "</tr>"


def equation_html(e: EquationCheck) -> str:
    """An equation check as HTML (a notebook's display): failing rows highlighted."""
    esc = html.escape
    verdict = {"pass": "PASS", "fail": "FAIL", "inconclusive": "INCONCLUSIVE"}[e.verdict]
    color = {"pass": "#2e7d32", "fail": "#c62828", "inconclusive": "#ef6c00"}[e.verdict]
    parts = [f'<p><b style="color:{color}">{verdict}</b>: is <code>{esc(e.claimed)}</code> the gradient of '
             f"<code>{esc(e.expression)}</code> by <code>{esc(e.wrt)}</code>?</p>"]
    if e.truth is not None:
        parts.append(f"<p>the gradient is: <code>{esc(e.truth)}</code></p>")
    if e.explanation:
        parts.append("<ul>" + "".join(f"<li>{esc(x)}</li>" for x in e.explanation) + "</ul>")
    rows = "".join(_html_row(c) for c in e.checks)
    parts.append("<table><tr><th>checked</th><th>against</th><th>sizes</th><th>max rel error</th><th></th></tr>"
                 f"{rows}</table>")
    return "\n".join(parts)


def equation_text(e: EquationCheck) -> str:
    verdict = {"pass": "PASS", "fail": "FAIL", "inconclusive": "INCONCLUSIVE"}[e.verdict]
    lines = [f"{verdict}: is  {e.claimed}  the gradient of  {e.expression}  by {e.wrt}?"]
    if e.exact is not None:
        lines.append("  exact arithmetic at sizes 2: " + ("equal" if e.exact else "different"))
    if e.truth is not None:
        lines.append(f"  the gradient is: {e.truth}")
    lines.extend(f"  - {x}" for x in e.explanation)
    lines.append(f"checked in this run ({e.seconds:.2f} s):")
    lines.extend(_check_line(c) for c in e.checks)
    return "\n".join(lines)


def program_text(d: ProgramDerivation) -> str:
    """Forward steps, then the backward pass line by line, then what was verified."""
    width = max(len(x.lhs.text or "") for x in (*d.forward, *d.backward, *d.gradients))
    lines = ["forward:"]
    lines += [f"  {x.lhs.text.ljust(width)} = {x.rhs.text}" for x in d.forward]
    if d.backward:
        lines.append("backward (d<name> is the gradient of f in that step's value):")
    lines += [f"  {x.lhs.text.ljust(width)} = {x.rhs.text if x.rhs.text is not None else x.rhs.note}" for x in d.backward]
    lines.append("gradients:")
    lines += [f"  {x.lhs.text.ljust(width)} = {x.rhs.text if x.rhs.text is not None else x.rhs.note}" for x in d.gradients]
    bad = [c for c in d.checks if not c.ok]
    per_line = [c for c in d.checks if c.against.startswith("finite differences")]
    worst = max((c.max_rel_error for c in per_line if c.max_rel_error == c.max_rel_error), default=float("nan"))
    lines.append("")
    err = f"; max rel error {worst:.1e}" if worst == worst else "; random directions, each with the power to see the error"
    agree = sum(1 for c in per_line if c.ok)
    index = [c for c in d.checks if c not in per_line]
    lines.append(f"verified in this run ({d.seconds:.2f} s): {agree} of {len(per_line)} lines agree with finite "
                 f"differences (generated backward code{err})")
    if index and all(c.ok for c in index):
        lines.append("  and the index form of every line agrees with its matrix form, entry by entry")
    lines.extend(_check_line(c) for c in bad)
    return "\n".join(lines)


def program_latex_lines(d: ProgramDerivation) -> list[str]:
    """One LaTeX equation per forward step, per backward step and per gradient."""
    return [f"{x.lhs.latex} = {x.rhs.latex if x.rhs.latex is not None else x.rhs.note}"
            for x in (*d.forward, *d.backward, *d.gradients)]
