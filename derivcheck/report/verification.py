"""Rendering verification results (one row per layer gradient) and derivations."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from derivcheck.report.results import LayerVerification

_SHORT = {"index form": "index", "matrix form": "matrix", "finite differences": "fd", "reference backward": "reference"}


# The witnesses a layer's gradient is verified by, in the order a verification row lists them.
WITNESSES = ("index form", "matrix form", "finite differences", "reference backward")


def verification_rows(results: Sequence[LayerVerification]) -> list[dict[str, Any]]:
    """Plain dicts, one per gradient (what ``--json`` prints)."""
    rows = []
    for res in results:
        for r in res.rows:
            rows.append(
                {
                    "layer": r.layer,
                    "gradient": f"d{r.arg}",
                    "ok": r.ok,
                    "agreeing": list(r.agreeing),
                    "disagreeing": list(r.disagreeing),
                    "max_rel_error": r.max_rel_error,
                    "matrix_form": r.matrix_kind,
                    "sizes": res.sizes,
                    "derive_seconds": res.derive_seconds,
                    "seconds": r.seconds,
                    "message": r.message,
                }
            )
    return rows


def render_verification_text(results: Sequence[LayerVerification], total_seconds: float) -> str:
    """The verification table: witnesses agreeing, largest difference, time."""
    header = ("layer", "gradient", "witnesses agreeing", "max rel diff", "matrix form", "sizes", "time", "verdict")
    table = [header]
    for res in results:
        sizes = " ".join(f"{k}={v}" for k, v in res.sizes.items())
        for k, r in enumerate(res.rows):
            witnesses = "+".join(_SHORT.get(w, w) for w in r.agreeing) or "-"
            n_total = len(r.agreeing) + len([d for d in r.disagreeing if d in WITNESSES])
            table.append(
                (
                    r.layer if k == 0 else "",
                    f"d{r.arg}",
                    f"{len(r.agreeing)}/{max(n_total, len(r.agreeing))} {witnesses}",
                    f"{r.max_rel_error:.1e}",
                    r.matrix_kind,
                    sizes if k == 0 else "",
                    f"{(res.derive_seconds if k == 0 else 0) + r.seconds:.2f}s",
                    "ok" if r.ok else "DISAGREE: " + r.message,
                )
            )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    bad = sum(not r.ok for res in results for r in res.rows)
    total = sum(len(res.rows) for res in results)
    lines.append("")
    lines.append(
        f"{total - bad}/{total} gradients verified: index form, matrix form (where one exists), finite "
        f"differences and reference backward agree; {total_seconds:.1f} s" + (f"; {bad} DISAGREE" if bad else "")
    )
    return "\n".join(lines)


def render_verification_markdown(results: Sequence[LayerVerification]) -> str:
    """The verification rows as a Markdown table (what a notebook shows)."""
    lines = ["| layer | gradient | witnesses agreeing | max rel diff | matrix form | verdict |", "|---|---|---|---|---|---|"]
    for row in verification_rows(results):
        agreeing = "+".join(_SHORT.get(w, w) for w in row["agreeing"]) or "-"
        verdict = "ok" if row["ok"] else "DISAGREE: " + ", ".join(row["disagreeing"])
        lines.append(f"| {row['layer']} | {row['gradient']} | {agreeing} | {row['max_rel_error']:.1e} | "
                     f"{row['matrix_form']} | {verdict} |")
    return "\n".join(lines)


def render_verification_html(results: Sequence[LayerVerification]) -> str:
    """The verification rows as an HTML table; a disagreeing row is highlighted."""
    esc = html.escape
    head = "".join(f"<th>{c}</th>" for c in ("layer", "gradient", "witnesses agreeing", "max rel diff", "matrix form",
                                               "verdict"))
    body = []
    for row in verification_rows(results):
        agreeing = "+".join(_SHORT.get(w, w) for w in row["agreeing"]) or "-"
        verdict = "ok" if row["ok"] else "DISAGREE: " + ", ".join(row["disagreeing"])
        style = "" if row["ok"] else ' style="background:#fdd;font-weight:bold"'
        cells = (row["layer"], row["gradient"], agreeing, f"{row['max_rel_error']:.1e}", row["matrix_form"], verdict)
        body.append(f"<tr{style}>" + "".join(f"<td>{esc(str(c))}</td>" for c in cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render_verification_latex(results: Sequence[LayerVerification]) -> str:
    """The verification rows as a LaTeX array (what a notebook's LaTeX output shows)."""
    from derivcheck.report.gradient import latex_table

    rows = []
    for row in verification_rows(results):
        agreeing = "+".join(_SHORT.get(w, w) for w in row["agreeing"]) or "-"
        verdict = "ok" if row["ok"] else "DISAGREE: " + ", ".join(row["disagreeing"])
        rows.append((row["layer"], row["gradient"], agreeing, f"{row['max_rel_error']:.1e}", row["matrix_form"], verdict))
    columns = ("layer", "gradient", "witnesses agreeing", "max rel diff", "matrix form", "verdict")
    return "$$" + latex_table(columns, rows) + "$$"
