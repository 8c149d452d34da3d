"""LaTeX checked by a real TeX-math parser: matplotlib's mathtext (the optional plot extra; pure Python, no TeX
installation). It rejects what breaks LaTeX too: unbalanced braces, double subscripts (``n_n_{pq}``), unknown
commands. A few layout commands of LaTeX and KaTeX that mathtext lacks are mapped to their mathtext cousins
first (``\\text`` -> ``\\mathrm``, ``cases`` -> its pieces, each parsed), so only they go unchecked."""

from __future__ import annotations

import re

import pytest

_mathtext = pytest.importorskip("matplotlib.mathtext", reason="the LaTeX check parses with matplotlib's mathtext")
_PARSER = _mathtext.MathTextParser("path")

# LaTeX/KaTeX commands mathtext does not know, and the mathtext command with the same grammar.
_COUSINS = {r"\boldsymbol": r"\mathbf", r"\operatorname": r"\mathrm", r"\mathrel": "", r"\bar": r"\overline",
            r"\top": "T", r"\oslash": r"\oslash", r"\lVert": r"\Vert", r"\rVert": r"\Vert",
            # sizing commands change a delimiter's height, never the grouping; \tfrac is \frac in text style
            r"\bigl": "", r"\bigr": "", r"\Bigl": "", r"\Bigr": "", r"\big": "", r"\Big": "", r"\tfrac": r"\frac"}


def _text_as_roman(s: str) -> str:
    """``\\text{for x}`` -> ``\\mathrm{for\\ x}``: the same group structure, in a font mathtext has."""
    return re.sub(r"\\text\{([^{}]*)\}", lambda m: r"\mathrm{" + m.group(1).replace(" ", r"\ ") + "}", s)


def _cases_inline(s: str) -> str:
    """``\\begin{cases} a & c \\\\ b & d \\end{cases}`` -> ``\\left\\{ a\\ c,\\ b\\ d \\right.``: the same grouping, inline."""
    def inline(m: re.Match) -> str:
        return r"\left\{" + m.group(1).replace("&", r"\ ").replace(r"\\", r",\ ") + r"\right."

    return re.sub(r"\\begin\{cases\}(.*?)\\end\{cases\}", inline, s)


def _matrix_rows(s: str) -> str:
    r"""``\begin{matrix} a & b \\ c & d \end{matrix}`` -> ``a\ b,\ c\ d``: each entry parsed in place."""
    return re.sub(r"\\begin\{[pb]?matrix\}(.*?)\\end\{[pb]?matrix\}",
                  lambda m: m.group(1).replace("&", r"\ ").replace(r"\\", r",\ "), s)


def _pieces(s: str) -> list[str]:
    """Each line of an aligned/gathered environment as an expression of its own."""
    s = re.sub(r"\\begin\{(aligned|gathered)\}|\\end\{(aligned|gathered)\}", " \\\\\\\\ ", s)
    return [p.replace("&", " ") for p in re.split(r"\\\\", s) if p.strip()]


def parse_errors(latex: str) -> list[str]:
    """Why ``latex`` does not parse as TeX math (empty when it does)."""
    s = _matrix_rows(_cases_inline(_text_as_roman(latex))).replace(r"\#", r"\sharp ")  # \#: an atom, as \sharp
    for cmd, cousin in _COUSINS.items():
        s = re.sub(re.escape(cmd) + r"(?![A-Za-z])", lambda _m, c=cousin: c, s)
    errors = []
    for piece in _pieces(s) if re.search(r"\\begin\{", s) else [s]:
        depth = 0
        for ch in piece.replace(r"\{", "").replace(r"\}", ""):  # \{ is a printed brace, not a group
            depth += {"{": 1, "}": -1}.get(ch, 0)
            if depth < 0:
                break
        if depth:
            errors.append(f"unbalanced braces in {piece[:80]!r}")
            continue
        try:
            _PARSER.parse(f"${piece}$")
        except Exception as exc:  # noqa: BLE001 - mathtext raises pyparsing's and ValueError
            errors.append(f"{str(exc).splitlines()[-1][:120]} in {piece[:120]!r}")
    return errors
