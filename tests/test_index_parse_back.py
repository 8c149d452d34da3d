"""Whatever index form derive-expr prints, check-eq reads back and judges right; a planted slip it judges wrong.

The law is tested on random typed trees (the index form of each, printed in Unicode or ASCII, read back
and evaluated entry by entry against NumPy evaluating the tree itself), and on the gradient derived for
every expression of the parse-back corpus, decided by check-eq exactly at sizes 2 and numerically. The
parser never sees the tree, only the printed text.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from derivcheck.errors import ExpressionError
from derivcheck.language import nodes as n
from derivcheck.language.derivation import Problem, derive_expression
from derivcheck.language.domain import draw_values
from derivcheck.language.equation import check_equation
from derivcheck.language.evaluate import evaluate
from derivcheck.language.index_claim import looks_like_index_form, parse_index_claim
from derivcheck.language.index_notation import IndexForm
from derivcheck.language.nodes import Node, Variable
from derivcheck.language.parse import declarations, parse_expression
from derivcheck.language.printing import latex, notation, text
from derivcheck.language.printing.index import IndexText, lhs_text
from derivcheck.language.printing.notation import ASCII, UNICODE, Glyphs
from tests.test_parse_back import _SHAPES, CORPUS, VARIABLES, _trees

GLYPHS = pytest.mark.parametrize("glyphs", [UNICODE, ASCII], ids=["unicode", "ascii"])
# The index form and the tree are two float64 evaluations of one formula, summed in different orders.
SAME_FORMULA_RTOL = 1e-9


def _printed(expr: str, wrt: str, shapes: dict, glyphs: Glyphs) -> str:
    with notation.use(glyphs):
        d = derive_expression(expr, wrt, shapes, exact=False)
    return f"{d.index_lhs.text} = {d.index_form.text}"


# --- the corpus: every printed index form is judged right by check-eq ---
@GLYPHS
@pytest.mark.parametrize(("expr", "wrt", "shapes"), CORPUS, ids=[f"{c[0][:30]} by {c[1]}" for c in CORPUS])
def test_every_printed_index_form_reads_back_with_the_gradients_value(expr: str, wrt: str, shapes: dict,
                                                                       glyphs: Glyphs) -> None:
    printed = _printed(expr, wrt, shapes, glyphs)
    assert printed.isascii() == (glyphs is ASCII) or printed.isascii()
    p = Problem(expr, wrt, shapes, None)
    claim = parse_index_claim(printed, p.variables, wrt)
    sizes, values = p.draw(5)
    truth = np.asarray(evaluate(p.gradient_of(p.forward), values, sizes), dtype=float)
    assert np.allclose(claim.values(values, sizes), truth, rtol=SAME_FORMULA_RTOL, atol=1e-12), printed


@pytest.mark.parametrize(("expr", "wrt", "shapes"), CORPUS, ids=[f"{c[0][:30]} by {c[1]}" for c in CORPUS])
def test_check_eq_judges_every_printed_index_form_right(expr: str, wrt: str, shapes: dict) -> None:
    """Exactly at sizes 2 (SymPy's derivative of the expanded scalar) and by finite differences at random sizes."""
    printed = _printed(expr, wrt, shapes, UNICODE)
    r = check_equation(expr, wrt, printed, shapes)
    assert r.verdict == "pass" and r.exact is not False, (printed, r.explanation)


@pytest.mark.parametrize("case", [CORPUS[2], CORPUS[4], CORPUS[-1]], ids=["vector", "matrix", "scalar"])
def test_the_left_side_may_be_left_out(case: tuple) -> None:
    """Without ∂f/∂W_ij =, the free indices are bound in alphabetical order: i, j as printed."""
    expr, wrt, shapes = case
    body = _printed(expr, wrt, shapes, UNICODE).split(" = ", 1)[1]
    assert check_equation(expr, wrt, body, shapes).verdict == "pass", body


# --- random typed trees: the index form of any tree reads back to the tree's value ---
_NAMES = set(VARIABLES) | {"N", "D", "Q"}


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(tree=st.sampled_from(_SHAPES).flatmap(lambda s: _trees(s, 3)), seed=st.integers(0, 2**16),
       unicode=st.booleans())
@example(  # a Σ over a broadcast axis: D times its summand, or the range of its letter would be unreadable
    tree=n.total(n.softmax(n.broadcast_to(n.var(VARIABLES["c"]), ("N", "D")), 0)), seed=0, unicode=False)
@example(tree=n.logsumexp(n.broadcast_to(n.func("abs", n.var(VARIABLES["c"])), ("N", "D")), 1), seed=0,
         unicode=False)  # |c[i, 0]| inside a call: a bar closes, and |exp(x)| is no exp(re(x))
@example(tree=n.total(n.broadcast_to(n.matmul(n.identity("D"), n.ones(("D",))), ("N", "D")), 1), seed=0,
         unicode=True)  # Σ_{k,d} [d = k]: k ranges as d, its Kronecker partner
def test_the_index_form_of_a_random_tree_reads_back(tree: Node, seed: int, unicode: bool) -> None:
    glyphs = UNICODE if unicode else ASCII
    sizes = {"N": 3, "D": 2}  # different sizes, so that a swapped index shows
    values = draw_values(VARIABLES, sizes, np.random.default_rng(seed))
    with np.errstate(all="ignore"):
        want = np.asarray(evaluate(tree, values, sizes), dtype=float)
    assume(np.all(np.isfinite(want)))
    variables = {**VARIABLES, "Q": Variable("Q", tree.shape)}  # the claim's entries are bound to Q's axes
    idx = IndexForm(tree, names=_NAMES)
    line = f"{lhs_text('Q', idx.free, variables, glyphs)} = {IndexText(idx.atoms, variables, glyphs, idx.free).doprint(idx.expr)}"
    assert line.isascii() or glyphs is UNICODE
    claim = parse_index_claim(line, variables, "Q")
    with np.errstate(all="ignore"):
        got = claim.values(values, sizes)
    assert np.allclose(got, want, rtol=SAME_FORMULA_RTOL, atol=1e-12), line


# --- planted slips: each judged wrong, and explained where one correction fits ---
LOGISTIC = ("sum(log(1 + exp(-y * (X @ w))))", "w", {"X": "N x D", "w": "D", "y": "N"})
PLANTED = [
    # a factor dropped: y_n inside σ
    (*LOGISTIC, "∂f/∂w_i = Σ_n (σ(Σ_d X_nd w_d) y_n - y_n) X_ni", None),
    # a factor dropped: the outer y_n
    (*LOGISTIC, "∂f/∂w_i = Σ_n (σ(y_n Σ_d X_nd w_d) - y_n) X_ni", None),
    # an index swapped in a square form: A_id for A_di
    ("x @ A @ x", "x", {"x": "D", "A": "D x D"}, "∂f/∂x_i = Σ_d (A_id + A_id) x_d", None),
    # the two free indices swapped (the transpose), typed in ASCII
    ("logdet(X)", "X", {"X": "D x D"}, "df/dX_ij = (X^-1)_ij", "the indices are swapped"),
    # a constant factor lost
    ("sum((X @ W - Y)**2)", "W", {"X": "N x D", "W": "D x M", "Y": "N x M"},
     "∂f/∂W_ij = Σ_n (-Y_nj + Σ_d W_dj X_nd) X_ni", "a constant factor is missing: the right gradient is 2 times"),
    # a size lost
    ("mean((X @ w - y)**2)", "w", {"X": "N x D", "w": "D", "y": "N"},
     "∂f/∂w_i = 2 Σ_n (-y_n + Σ_d w_d X_nd) X_ni", "a factor in the sizes is missing: the right gradient is 1/N"),
    # the sign
    ("sum(log(sigmoid(X @ w)))", "w", {"X": "N x D", "w": "D"}, "∂f/∂w_i = Σ_n (σ(Σ_d X_nd w_d) - 1) X_ni",
     "the sign is wrong"),
]


@pytest.mark.parametrize(("expr", "wrt", "shapes", "claim", "explained"), PLANTED,
                         ids=["y dropped in σ", "y dropped", "index swapped", "free indices swapped", "factor 2",
                              "1/N", "sign"])
def test_a_planted_wrong_index_form_is_judged_wrong(expr: str, wrt: str, shapes: dict, claim: str,
                                                    explained: str | None) -> None:
    r = check_equation(expr, wrt, claim, shapes)
    assert r.verdict == "fail" and r.exact is False, claim
    assert all(not c.ok for c in r.checks), [c.detail for c in r.checks]  # exact and both numeric checks see it
    if explained is not None:
        assert any(explained in x for x in r.explanation), r.explanation


# --- clear errors ---
XWY = {"X": "N x D", "w": "D", "y": "N"}
ERRORS = [
    ("∂f/∂w_i = Σ_n X_ni y_k", "index k is neither summed (no Σ_k before it) nor an index of the left side (i)"),
    ("Σ_n X_ni y_n X_nj", "the index form has 2 free indices (i, j) outside every Σ, but the gradient by w has one "
                          "per axis of w (a vector of length D): 1"),
    ("Σ_n Z_ni y_n", "Z is not a declared variable (declared: X, w, y; dimensions: D, N)"),
    ("Σ_n X_ni q", "'q' is neither a declared variable, an entry of one (such as X_nd), a dimension nor a function"),
    ("Σ_n X_n y_n", "X is N x D: its entries take 2 indices (N, D); X_n has 1"),
    ("Σ_n X y_n", "X is N x D: an index form writes its entries, X_ij (or X[i, j])"),
    ("Σ_n X_ni w_n", "index n runs over N in X_ni but over D in w_n"),
    ("Σ_d X_id y_i", "index i runs over D in the gradient by w (w is a vector of length D) but over N in X_id"),
    ("∂f/∂X_ij = Σ_n X_ni", "the left side differentiates by X, but the gradient asked for is by w (--wrt w)"),
    ("∂f/∂w_ij = Σ_n X_ni", "the left side gives w 2 indices; w is a vector of length D: it takes 1 (D)"),
    ("∂f/∂w_i = Σ_k X_ni", "Σ_k sums over k, but k indexes no entry in the sum, so its range is unknown"),
    ("Σ_n Σ_n X_ni", "Σ_n sums the index n, which is already in use here: give the sum a letter of its own"),
    ("Σ_w X_wi", "Σ_w: a summed index is a letter that names no variable or dimension"),
    ("Σ_n X_ni y_n +", "expected an entry, a number or '(', found the end of the index form"),
    ("Σ_n (X Z)_ni", "in (X Z): 'Z' is not declared"),
    ("Σ_n 1[X_ni] ", "an Iverson bracket reads 1[x > 0] or 1[x < 0]"),
    ("[i < 2] Σ_n X_ni", "a bracket of indices reads [i = j] (1 where i equals j, else 0)"),
    ("Σ_n X_ni^y_n", "an exponent is a number, x^2, or a parenthesized number, x^(-1/2)"),
    ("Σ_n X_ni # y_n", "unexpected character '#' in the index form"),
    ("∂f/∂(w)_i = Σ_n X_ni", "the left side reads ∂f/∂w_i (or df/dw_i); got '(w)_i'"),
    ("∂f/∂z_i = Σ_n X_ni", "'z_i' is not a declared variable (declared: X, w, y)"),
    ("Σ_n X_ni^(N)", "an exponent must be a number"),
    ("Σ_n X_ni n", "n is an index: it stands in the subscript of an entry (X_nd), never alone as a number"),
    ("Σ_n X[n, -1]", "an index is a letter or a whole number; got '-'"),
    ("Σ_n (X_ni", "the parenthesis at column 5 is never closed"),
    ("Σ_n σ(X_ni", "expected ')', found the end of the index form"),
    ("Σ_n sum(X, axis=1) X_ni", "sum(...) has shape N: only its entries, (sum(...))_ij, belong in an index form"),
    ("Σ_n X_ni/‖w", "the ‖ at column 10 is never closed"),
]


@pytest.mark.parametrize(("claim", "message"), ERRORS, ids=[e[1][:40] for e in ERRORS])
def test_a_malformed_index_form_is_a_clear_error(claim: str, message: str) -> None:
    with pytest.raises(ExpressionError) as err:
        check_equation("sum(log(1 + exp(-y * (X @ w))))", "w", claim, XWY)
    assert str(err.value).startswith("in the claimed index form: ") and message in str(err.value), str(err.value)
    assert "^" in str(err.value)  # the column is shown


def test_an_index_out_of_a_declared_length_and_repeated_left_indices_are_errors() -> None:
    vs = declarations({"c": "N x 1", "W": "D x D", "X": "N x D"})
    with pytest.raises(ExpressionError, match=r"index 1 is out of range in c \(length 1\)"):
        parse_index_claim("∂f/∂W_ij = Σ_n c[n, 1] X_ni", vs, "W")
    with pytest.raises(ExpressionError, match="the left side's indices must be distinct letters; got 'W_ii'"):
        parse_index_claim("∂f/∂W_ii = Σ_n X_ni", vs, "W")
    with pytest.raises(ExpressionError, match="the claimed index form must be a string; got int"):
        parse_index_claim(3, vs, "W")  # type: ignore[arg-type]


def test_an_index_form_of_a_square_inverse_reads_its_shape_from_the_tree() -> None:
    with pytest.raises(ExpressionError, match=r"\(A⁻¹\) has shape D x D: its entries take 2 indices, not 1"):
        parse_index_claim("Σ_d (A⁻¹)_d x_d", declarations({"A": "D x D", "x": "D"}), "x")


def test_a_name_with_an_underscore_keeps_its_entries_apart() -> None:
    """X_n_d is an entry of the vector X_n, X_nd one of the matrix X: a subscript never holds an underscore."""
    vs = declarations({"X": "N x D", "X_n": "D", "w": "D"})
    sizes = {"N": 3, "D": 2}
    values = draw_values(vs, sizes, np.random.default_rng(0))
    vector = parse_index_claim("∂f/∂w_d = X_n_d", vs, "w").values(values, sizes)
    matrix = parse_index_claim("∂f/∂w_d = Σ_n X_nd", vs, "w").values(values, sizes)
    assert np.allclose(vector, values["X_n"]) and np.allclose(matrix, values["X"].sum(axis=0))


# --- names: an index letter never collides with a declared name; brackets where a subscript could mislead ---
@pytest.mark.parametrize(("expr", "wrt", "shapes", "expected"), [
    ("sum(i * (X @ w))", "w", {"i": "N", "X": "N x D", "w": "D"}, "∂f/∂w_p = Σ_n X_np i_n"),
    ("sum(n * (X @ w))", "w", {"n": "scalar", "X": "N x D", "w": "D"}, "∂f/∂w_i = Σ_k n X_ki"),
    ("sum(W_1 * X)", "W_1", {"W_1": "N x D", "X": "N x D"}, "∂f/∂W_1[i, j] = X_ij"),
    ("sum(W * X)", "W", {"W": "N x D", "X": "N x D", "W_b": "D"}, "∂f/∂W[i, j] = X_ij"),
])
def test_index_letters_avoid_declared_names_and_the_form_reads_back(expr: str, wrt: str, shapes: dict,
                                                                   expected: str) -> None:
    printed = _printed(expr, wrt, shapes, UNICODE)
    assert printed == expected
    assert check_equation(expr, wrt, printed, shapes).verdict == "pass"


def test_the_index_form_is_the_textbook_one_in_unicode_and_ascii() -> None:
    """The brief's example: ∂, Σ and subscripts from the glyph table, juxtaposition, one index for a vector."""
    expr, wrt, shapes = LOGISTIC
    assert _printed(expr, wrt, shapes, UNICODE) == "∂f/∂w_i = Σ_n (σ(y_n Σ_d X_nd w_d) y_n - y_n) X_ni"
    assert _printed(expr, wrt, shapes, ASCII) == "df/dw_i = sum_n (sigmoid(y_n sum_d X_nd w_d) y_n - y_n) X_ni"


def test_an_index_form_is_told_from_a_matrix_claim() -> None:
    vs = declarations({**XWY, "X_b": "N x D", "mu": "D"})
    assert all(looks_like_index_form(t, vs) for t in ("Σ_n X_ni", "sum_n X_ni", "df/dw_i = 0", "X[n, i] y_n",
                                                      "∂f/∂w_i = Xᵀ y", "μ_d", "(X⁻¹)_ji", "[i = j] w_i"))
    assert not any(looks_like_index_form(t, vs) for t in ("Xᵀ (σ(X w) - y)", "X.T @ y", "sum(X, axis=0)",
                                                          "Xᵀ 1_N", "exp(w)", "(X_b - X)ᵀ y", "1[X > 0]"))


# --- zero matrices: printed with their shape, read back against the declarations ---
@pytest.mark.parametrize(("tree", "unicode_text", "ascii_text", "latex_text"), [
    (n.broadcast_to(n.const(0), ("D",)), "0_D", "0_D", r"\mathbf{0}_{D}"),
    (n.broadcast_to(n.const(0), ("N", "D")), "0_{N×D}", "0_{N x D}", r"\mathbf{0}_{N \times D}"),
])
def test_a_zero_matrix_prints_with_its_shape_and_reads_back(tree: Node, unicode_text: str, ascii_text: str,
                                                            latex_text: str) -> None:
    from tests.mathtext_check import parse_errors

    assert (text(tree, UNICODE), text(tree, ASCII), latex(tree)) == (unicode_text, ascii_text, latex_text)
    assert not parse_errors(latex_text)
    for printed in (unicode_text, ascii_text, unicode_text.replace("×", ",")):
        back = parse_expression(printed, VARIABLES)
        assert back == tree, printed


def test_a_zero_matrix_of_an_undeclared_or_wrong_shape_is_an_error() -> None:
    with pytest.raises(ExpressionError, match="0_{N×Q}: Q is not a dimension of any declared variable"):
        parse_expression("0_{N×Q}", VARIABLES)
    with pytest.raises(ExpressionError, match="a zero vector reads 0_D, a zero matrix 0_{N×D}"):
        parse_expression("0_{N×D×D}", VARIABLES)
    r = check_equation("sum(X @ W)", "W", "0_{N×M}", {"X": "N x D", "W": "D x M"})
    assert r.verdict == "fail" and "the claim has shape (N, M), but W has (D, M)" in r.explanation[-1]


def test_a_zero_hessian_vector_product_is_printed_with_its_shape() -> None:
    with notation.use("unicode"):
        d = derive_expression("sum(X @ W)", "W", {"X": "N x D", "W": "D x M"}, order=2)
    assert d.hvp.text == "0_{D×M}" and d.hvp.latex == r"\mathbf{0}_{D \times M}"


# --- the command line, in both glyph sets: derive-expr's index-form line typed back into check-eq ---
def _cli(args: list[str], encoding: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONIOENCODING": encoding}
    return subprocess.run([sys.executable, "-m", "derivcheck", *args], capture_output=True, text=True, timeout=120,
                          env=env, encoding=encoding)


@pytest.mark.parametrize("encoding", ["utf-8", "ascii"])
def test_the_printed_index_form_line_typed_into_check_eq_passes(encoding: str) -> None:
    expr, wrt, _ = LOGISTIC
    lets = ["--let", "X: N x D", "--let", "w: D", "--let", "y: N"]
    derived = _cli(["derive-expr", expr, "--wrt", wrt, *lets], encoding)
    assert derived.returncode == 0, derived.stderr
    printed = re.search(r"index form:  (.+)", derived.stdout).group(1)
    assert printed.startswith("∂f/∂w_i = Σ_n" if encoding == "utf-8" else "df/dw_i = sum_n"), printed
    checked = _cli(["check-eq", expr, printed, "--wrt", wrt, *lets], encoding)
    assert checked.returncode == 0 and checked.stdout.startswith("PASS"), checked.stdout + checked.stderr


def test_a_malformed_index_form_on_the_command_line_is_a_usage_error() -> None:
    out = _cli(["check-eq", LOGISTIC[0], "Σ_n X_ni y_k", "--wrt", "w", "--let", "X: N x D", "--let", "w: D",
                "--let", "y: N"], "utf-8")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "the index form has 2 free indices (i, k)" in out.stderr + out.stdout


# --- LaTeX: every index form of the corpus is TeX math ---
@pytest.mark.parametrize(("expr", "wrt", "shapes"), CORPUS, ids=[f"{c[0][:30]} by {c[1]}" for c in CORPUS])
def test_every_index_form_in_latex_parses_as_tex(expr: str, wrt: str, shapes: dict) -> None:
    from tests.mathtext_check import parse_errors

    d = derive_expression(expr, wrt, shapes, exact=False)
    equation = f"{d.index_lhs.latex} = {d.index_form.latex}"
    assert not parse_errors(equation), (equation, parse_errors(equation))
    assert not re.search(r"(?<!\\)lam(?!bda)", equation) and "_atom" not in equation, equation


def test_markdown_latex_and_json_carry_the_same_index_form() -> None:
    from tests.mathtext_check import parse_errors

    from derivcheck.report.language import derivation_latex, derivation_markdown

    expr, wrt, shapes = LOGISTIC
    with notation.use("unicode"):
        d = derive_expression(expr, wrt, shapes, exact=False)
    lhs, rhs = r"\frac{\partial f}{\partial w_{i}}", r"\sum_{n} \left(\sigma\left(y_{n} \sum_{d} X_{nd}\,w_{d}\right)"
    assert f"{lhs} = {rhs}" in derivation_markdown(d) and f"{lhs} &= {rhs}" in derivation_latex(d)
    assert not parse_errors(derivation_latex(d).strip("$"))
    data = d.to_dict()
    assert (data["index_lhs"]["text"], data["index_form"]["text"]) == ("∂f/∂w_i", "Σ_n (σ(y_n Σ_d X_nd w_d) y_n - y_n) X_ni")


@pytest.mark.parametrize("claim", [
    "∂f/∂W_{ij} = 2 Σ_n (Σ_d X_{nd} W_{d,j} - Y_{nj}) X_{ni}",  # braced subscripts, as in LaTeX
    "df/dW[i, j] = 2 sum_n (sum_d X[n, d] W[d, j] - Y[n, j]) X[n, i]",  # brackets throughout
    "∂f/∂W_ij = 2 Σ_n X_ni (Σ_d X_nd W_dj − Y_nj)",  # a Unicode minus, factors in another order
    "2 * sum_n X_ni * (sum_d X_nd * W_dj - Y_nj)",  # no left side, * between factors
])
def test_an_index_form_typed_by_hand_reads_in_any_of_its_spellings(claim: str) -> None:
    shapes = {"X": "N x D", "W": "D x M", "Y": "N x M"}
    assert check_equation("sum((X @ W - Y)**2)", "W", claim, shapes).verdict == "pass", claim


@pytest.mark.parametrize(("expr", "wrt", "shapes", "claim"), [
    ("norm2(x)", "x", {"x": "D"}, "∂f/∂x_i = x_i/‖x‖"),
    ("frobenius(X)", "X", {"X": "N x D"}, "X_ij/‖X‖_F"),
    ("frobenius(X)", "X", {"X": "N x D"}, "X_ij/frobenius(X)"),
    ("logdet(X)", "X", {"X": "D x D"}, "df/dX_ij = (X^-T)_ij"),
])
def test_a_norm_or_a_matrix_atom_reads_as_the_matrix_language_writes_it(expr: str, wrt: str, shapes: dict,
                                                                       claim: str) -> None:
    assert check_equation(expr, wrt, claim, shapes).verdict == "pass", claim
