"""Unicode where the terminal shows it, ASCII otherwise; one module decides, for both printers.

Every test passes the choice explicitly or fakes the stream's encoding, so that the outcome does
not depend on the terminal that runs the tests.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import sympy as sp

from derivcheck.language.parse import declarations, parse_expression
from derivcheck.language.printing import text
from derivcheck.language.printing import notation
from derivcheck.language.printing.sympy_forms import TextPrinter
from derivcheck.language.printing.notation import ASCII, UNICODE

VARIABLES = declarations({"X": "N x D", "w": "D", "y": "N", "lam": "scalar", "A": "D x D", "a": "N"})
# One expression that uses every glyph of the matrix language's text.
EVERY_GLYPH = "lam * sum(sigmoid(X @ w) * y) + norm2(w) + frobenius(X) + sum(w ** 2) + sum(a w^T) + trace(inv(A) @ inv(A).T)"


@pytest.mark.parametrize(("encoding", "unicode"), [("utf-8", True), ("UTF-16", True), ("ascii", False),
                                                   ("latin-1", False), ("cp1252", False), (None, True),
                                                   ("no-such-codec", False)])
def test_the_glyphs_are_those_the_stream_can_encode(encoding: str | None, unicode: bool) -> None:
    assert notation.for_stream(SimpleNamespace(encoding=encoding)).unicode is unicode


def test_stdout_decides_unless_a_caller_chose(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(io.BytesIO(), encoding="ascii"))
    assert notation.current() is ASCII
    with notation.use("unicode"):
        assert notation.current() is UNICODE
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(io.BytesIO(), encoding="utf-8"))
    assert notation.current() is UNICODE
    with notation.use(ASCII):
        assert notation.current() is ASCII


def test_unicode_text_uses_the_textbook_glyphs() -> None:
    e = parse_expression(EVERY_GLYPH, VARIABLES)
    printed = text(e, UNICODE)
    for glyph in ("λ", "σ(", "⊙", "‖w‖", "‖X‖_F", "w^∘2", "A⁻¹", "A⁻ᵀ", "a wᵀ"):
        assert glyph in printed, (glyph, printed)
    assert "^T" not in printed and "sigmoid" not in printed


def test_ascii_text_is_ascii_and_reads_back_to_the_same_text() -> None:
    e = parse_expression(EVERY_GLYPH, VARIABLES)
    printed = text(e, ASCII)
    assert printed.isascii() and "lam" in printed and "sigmoid(" in printed and "^-T" in printed
    assert text(parse_expression(printed, VARIABLES), ASCII) == printed
    assert text(parse_expression(printed, VARIABLES), UNICODE) == text(e, UNICODE)


def test_a_variable_named_sigma_is_not_the_sigmoid() -> None:
    """Both print as σ: the function touches its parenthesis, σ(x); the variable is a factor, σ (x - 1)."""
    variables = declarations({"sigma": "scalar", "x": "D"})
    e = parse_expression("sigma * (x - 1) + sigmoid(x) + sigmoid(sigma * x)", variables)
    printed = text(e, UNICODE)
    assert printed == "σ (x - 1) + σ(x) + σ(σ x)"
    assert text(parse_expression(printed, variables), UNICODE) == printed


def test_both_printers_take_the_same_glyphs_from_the_one_module() -> None:
    """The layer side's SymPy printer and the matrix language print a transpose, a Hadamard product and a ones
    vector alike, in each glyph set."""
    x, g = sp.MatrixSymbol("X", 3, 2), sp.MatrixSymbol("G", 3, 2)
    for glyphs in (UNICODE, ASCII):
        with notation.use(glyphs):
            layer = TextPrinter().doprint(sp.HadamardProduct(x, g).T * sp.OneMatrix(3, 1))
            language = text(parse_expression("(X * G).T @ ones(N)", declarations({"X": "N x D", "G": "N x D"})))
        assert glyphs.transpose in layer and glyphs.odot in layer and glyphs.ones(3) in layer
        assert glyphs.transpose in language and glyphs.odot in language and glyphs.ones("N") in language


def test_the_layer_side_in_ascii_has_no_unicode() -> None:
    n, p = sp.symbols("n p")
    x, gamma = sp.IndexedBase("x"), sp.Symbol("gamma")
    e = sp.Sum(x[n, p] ** 2 * gamma, (n, 0, 2)) + sp.sqrt(x[n, p])
    assert TextPrinter(glyphs=ASCII).doprint(e).isascii()
    assert "Σ_n" in TextPrinter(glyphs=UNICODE).doprint(e) and "γ" in TextPrinter(glyphs=UNICODE).doprint(e)


@pytest.mark.parametrize(("encoding", "expected", "unexpected"), [("utf-8", "∂f/∂w = Xᵀ (σ(X w) - y)", "^T"),
                                                                  ("ascii", "df/dw = X^T (sigmoid(X w) - y)", "ᵀ")])
def test_the_command_line_prints_what_its_terminal_shows(encoding: str, expected: str, unexpected: str) -> None:
    env = {**os.environ, "PYTHONIOENCODING": encoding}
    args = [sys.executable, "-m", "derivcheck", "derive-expr",
            "-sum(y * log(sigmoid(X @ w)) + (1 - y) * log(1 - sigmoid(X @ w)))", "--wrt", "w",
            "--let", "X: N x D", "--let", "w: D", "--let", "y: N"]
    out = subprocess.run(args, capture_output=True, timeout=120, env=env)
    stdout = out.stdout.decode(encoding)
    assert out.returncode == 0, out.stderr.decode()
    assert f"matrix form: {expected}" in stdout and unexpected not in stdout


@pytest.mark.parametrize("command", ["derive-expr", "check-eq"])
def test_the_help_lists_the_printed_notation_in_the_glyphs_of_its_terminal(command: str) -> None:
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    out = subprocess.run([sys.executable, "-m", "derivcheck", command, "--help"], capture_output=True, timeout=60,
                         env=env)
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    assert out.stdout.isascii() and b"a b^T: an outer one" in out.stdout and b"1_N: a ones vector" in out.stdout
