"""The matrix language: parsing, derivation in textbook form, in-run verification, equation checks.

Truth comes from outside derivcheck: gradients written by hand in NumPy and the complex step
of the expression written directly in NumPy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import derivcheck as dc
from derivcheck.errors import ExpressionError
from derivcheck.language.derivation import Problem, _run_source
from derivcheck.language.printing import notation


@pytest.fixture(autouse=True)
def _unicode_notation():
    """The pinned texts are the Unicode notation, whatever the encoding of the terminal running the tests."""
    with notation.use("unicode"):
        yield


LSQ = {"X": "N x D", "W": "D x M", "Y": "N x M"}
LOGISTIC = "-sum(y * log(sigmoid(X @ w)) + (1 - y) * log(1 - sigmoid(X @ w)))"
LOGISTIC_SHAPES = {"X": "N x D", "w": "D", "y": "N"}

TEXTBOOK = [
    ("sum((X @ W - Y)**2)", "W", LSQ, "2 Xᵀ (X W - Y)"),
    ("x @ A @ x", "x", {"x": "D", "A": "D x D"}, "(A + Aᵀ) x"),
    ("x.T @ A @ x", "x", {"x": "D", "A": "D x D symmetric"}, "2 A x"),
    ("logdet(X)", "X", {"X": "D x D"}, "X⁻ᵀ"),
    ("log(det(X))", "X", {"X": "D x D"}, "X⁻ᵀ"),
    ("-sum(T * log(softmax(X @ W, axis=1))) / N", "W", {"X": "N x D", "W": "D x K", "T": "N x K onehot"},
     "Xᵀ (softmax(X W) - T) / N"),
    ("trace(X.T @ A @ X)", "X", {"X": "D x M", "A": "D x D"}, "(A + Aᵀ) X"),
    (LOGISTIC, "w", LOGISTIC_SHAPES, "Xᵀ (σ(X w) - y)"),
    ("(x - mu) @ inv(S) @ (x - mu)", "x", {"x": "D", "mu": "D", "S": "D x D spd"}, "2 S⁻¹ (x - μ)"),
    ("(x - mu) @ inv(S) @ (x - mu)", "x", {"x": "D", "mu": "D", "S": "D x D"}, "(S⁻¹ + S⁻ᵀ) (x - μ)"),
    ("sum((X @ W + b - Y)**2) / 2", "b", {**LSQ, "b": "M"}, "(X W + 1_N bᵀ - Y)ᵀ 1_N"),
]


@pytest.mark.parametrize(("expr", "wrt", "shapes", "expected"), TEXTBOOK, ids=[t[0][:30] for t in TEXTBOOK])
def test_textbook_matrix_forms_verified(expr: str, wrt: str, shapes: dict, expected: str) -> None:
    d = dc.derive_expression(expr, wrt, shapes)
    assert d.matrix_form == expected
    assert d.ok and all(c.ok for c in d.checks)
    kinds = {c.against for c in d.checks}
    assert any("finite differences" in k for k in kinds) and any("entry by entry" in k for k in kinds)


def test_hessians_of_quadratic_and_logistic() -> None:
    q = dc.derive_expression("x @ A @ x", "x", {"x": "D", "A": "D x D"}, order=2)
    assert q.hessian is not None and q.hessian.text == "A + Aᵀ"
    lg = dc.derive_expression(LOGISTIC, "w", LOGISTIC_SHAPES, order=2)
    assert lg.hessian is not None and lg.hessian.text == "Xᵀ diag(σ(X w) ⊙ (1 - σ(X w))) X"
    assert lg.hvp is not None and lg.hvp.text is not None and lg.ok


def test_a_loss_linear_in_a_vector_has_the_zero_hessian_with_its_shape() -> None:
    d = dc.derive_expression("sum(X @ w) + 3 * sum(w)", "w", {"X": "N x D", "w": "D"}, order=2)
    assert d.hvp is not None and d.hvp.text == "0_D"
    assert d.hessian is not None and d.hessian.text == "0_{D×D}" and d.ok
    assert any(c.what == "Hessian" and c.ok for c in d.checks) and not d.notes


def test_matrix_variable_gets_hvp_and_says_why_no_hessian() -> None:
    d = dc.derive_expression("sum((X @ W - Y)**2)", "W", LSQ, order=2)
    assert d.hvp is not None and d.hvp.text == "2 Xᵀ X V"
    assert d.hessian is None and any("four indices" in note for note in d.notes)


def _complex_step(f, w: np.ndarray) -> np.ndarray:
    h = 1e-30
    out = np.zeros(w.shape)
    for idx in np.ndindex(*w.shape):
        z = w.astype(complex)
        z[idx] += 1j * h
        out[idx] = f(z).imag / h
    return out


def test_generated_code_matches_complex_step_of_numpy_logistic() -> None:
    d = dc.derive_expression(LOGISTIC, "w", LOGISTIC_SHAPES)
    grad = _run_source(d.code, "grad_w")
    rng = np.random.default_rng(0)
    X, w, y = rng.standard_normal((7, 3)), rng.standard_normal(3), rng.integers(0, 2, 7).astype(float)

    def loss(w):
        s = 1 / (1 + np.exp(-(X @ w)))
        return -np.sum(y * np.log(s) + (1 - y) * np.log(1 - s))

    np.testing.assert_allclose(grad(X, w, y), _complex_step(loss, w), rtol=1e-12)
    assert "def _sigmoid" in d.code  # the helper the code calls is printed with it


FUNCS = {"exp": np.exp, "tanh": np.tanh, "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
         "softplus": lambda z: np.log(1 + np.exp(z)), "square": lambda z: z**2}


@settings(deadline=None)
@given(f=st.sampled_from(sorted(FUNCS)), g=st.sampled_from(sorted(FUNCS)), ridge=st.booleans(),
       transpose=st.booleans())
def test_random_compositions_agree_with_complex_step(f: str, g: str, ridge: bool, transpose: bool) -> None:
    def typed(name: str, arg: str) -> str:
        return f"({arg})**2" if name == "square" else f"{name}({arg})"

    inner = "X @ W.T" if transpose else "X @ W"
    wshape = "M x D" if transpose else "D x M"
    expr = f"sum(G * {typed(f, typed(g, inner))})" + (" + 0.5 * sum(W**2)" if ridge else "")
    d = dc.derive_expression(expr, "W", {"X": "N x D", "W": wshape, "G": "N x M"}, exact=False)
    assert d.ok, str(d)
    grad = _run_source(d.code, "grad_W")
    rng = np.random.default_rng(1)
    X, G = 0.5 * rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    W = 0.5 * rng.standard_normal((2, 3) if transpose else (3, 2))

    def loss(W):
        z = X @ (W.T if transpose else W)
        return np.sum(G * FUNCS[f](FUNCS[g](z))) + (0.5 * np.sum(W**2) if ridge else 0)

    args = grad.__code__.co_varnames[: grad.__code__.co_argcount]
    values = {"X": X, "W": W, "G": G}
    np.testing.assert_allclose(grad(*[values[a] for a in args]), _complex_step(loss, W), rtol=1e-9, atol=1e-12)


def test_a_wrong_derivation_is_a_defect_never_an_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    from derivcheck.language import nodes as n

    real = Problem.gradient_of

    def planted(self, f):  # a rewrite bug: the factor 2 lost
        g = real(self, f)
        return n.mul(n.const(0.5), g)

    monkeypatch.setattr(Problem, "gradient_of", planted)
    d = dc.derive_expression("sum((X @ W - Y)**2)", "W", LSQ)
    assert not d.ok
    assert d.matrix_form is None and d.code is None and d.index_form.text is None
    assert d.gradient.note.startswith("DEFECT, not shown")
    assert "DEFECT" in str(d)


# --- equations ---

def test_right_equation_passes_exactly_and_numerically() -> None:
    r = dc.check_equation("sum((X @ W - Y)**2)", "W", "2 * X.T @ (X @ W - Y)", LSQ)
    assert r.ok and r.exact is True
    assert r.checks[0].detail == "the difference simplifies to 0"


def test_logistic_gradient_typed_by_hand_passes() -> None:
    r = dc.check_equation(LOGISTIC, "w", "X.T @ (sigmoid(X @ w) - y)", LOGISTIC_SHAPES)
    assert r.verdict == "pass" and r.truth == "Xᵀ (σ(X w) - y)"


@pytest.mark.parametrize(("claimed", "phrase"), [
    ("X.T @ (X @ W - Y)", "the right gradient is 2 times the claim"),
    ("-2 * X.T @ (X @ W - Y)", "the sign is wrong"),
])
def test_wrong_equation_is_explained(claimed: str, phrase: str) -> None:
    r = dc.check_equation("sum((X @ W - Y)**2)", "W", claimed, LSQ)
    assert r.verdict == "fail" and r.exact is False
    assert any(phrase in e for e in r.explanation), r.explanation


def test_function_in_place_of_its_derivative_is_named() -> None:
    shapes = {"X": "N x D", "W": "D x M", "G": "N x M"}
    r = dc.check_equation("sum(G * sigmoid(X @ W))", "W", "X.T @ (sigmoid(X @ W) * G)", shapes)
    assert r.verdict == "fail"
    assert any("stands where its derivative belongs" in e and "σ(X W) ⊙ (1 - σ(X W))" in e for e in r.explanation)


def test_missing_sum_and_transpose_are_named() -> None:
    shapes = {"X": "N x D", "W": "D x M", "b": "M", "G": "N x M"}
    r = dc.check_equation("sum(G * tanh(X @ W + b))", "b", "G * (1 - tanh(X @ W + b)**2)", shapes)
    assert r.verdict == "fail" and any("a sum is missing" in e and "axis 0" in e for e in r.explanation)
    t = dc.check_equation("sum(G * (X @ W))", "W", "G.T @ X", {"X": "N x D", "W": "D x M", "G": "N x M"})
    assert t.verdict == "fail" and any("transpose" in e for e in t.explanation)


def test_unexplained_difference_claims_no_cause() -> None:
    r = dc.check_equation("sum((X @ w - y)**2)", "w", "2 * X.T @ (X @ w - y) + 1", {"X": "N x D", "w": "D", "y": "N"})
    assert r.verdict == "fail"
    assert r.explanation == ("no single correction explains the difference (tested: a constant factor, a transpose, "
                             "the sign, a missing sum, a function in place of its derivative)",)


def test_the_checkers_diagnosis_explains_a_missing_regularisation_term() -> None:
    r = dc.check_equation("sum((X @ W - Y)**2) + sum(W**2)", "W", "2 * X.T @ (X @ W - Y)", LSQ)
    assert r.verdict == "fail" and any(e.startswith("dW misses a term 2 * W") for e in r.explanation)


# --- errors ---

@pytest.mark.parametrize(("expr", "shapes", "message", "column"), [
    ("sum(foo(X))", {"X": "N x D"}, "unknown function 'foo'", 5),
    ("sum(X @ Q)", {"X": "N x D"}, "'Q' is not declared", 9),
    ("sum(X @ X)", {"X": "N x D"}, "inner dimensions D and N differ", 7),
    ("sum(X", {"X": "N x D"}, "never closed", 6),
    ("sum(X) $ 2", {"X": "N x D"}, "unexpected character '$'", 8),
    ("sum(X, axis=2)", {"X": "N x D"}, "axis=2 is out of range", 1),
    ("X ** Y", {"X": "N x D", "Y": "N x D"}, "exponent must be a number", 6),
    ("trace(X)", {"X": "N x D"}, "needs a square matrix", 1),
])
def test_parser_errors_name_the_position(expr: str, shapes: dict, message: str, column: int) -> None:
    with pytest.raises(ExpressionError) as info:
        dc.derive_expression(expr, "X", shapes)
    assert message in str(info.value)
    assert info.value.position == column - 1
    assert f"at column {column}" in str(info.value)


@pytest.mark.parametrize(("expr", "wrt", "shapes", "message"), [
    ("X @ W", "W", {"X": "N x D", "W": "D x M"}, "needs a scalar"),
    ("sum(X)", "W", {"X": "N x D"}, "wrt='W' is not a declared variable"),
    ("sum(X)", "X", {"X": "N x D symmetric"}, "is not square"),
    ("sum(X)", "X", {"X": "N x D blue"}, "'blue' is neither a dimension nor one of the properties"),
    ("sum(X)", "X", {"X": "N x D x K"}, "has 3 dimensions"),
    ("sum(X * N)", "X", {"X": "N x D", "N": "scalar"}, "both a variable and a dimension"),
    ("sum(log(X))", "X", {"X": "N x D"}, "not finite at random values"),
])
def test_declaration_and_problem_errors(expr: str, wrt: str, shapes: dict, message: str) -> None:
    with pytest.raises(ExpressionError) as info:
        dc.derive_expression(expr, wrt, shapes)
    assert message in str(info.value)


def test_positive_domain_makes_log_finite() -> None:
    d = dc.derive_expression("sum(log(X))", "X", {"X": "N x D positive"})
    assert d.ok and d.matrix_form == "1 ⊘ X"


# --- the commands ---

def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}  # the Unicode notation, whatever the terminal
    return subprocess.run([sys.executable, "-m", "derivcheck", *args], capture_output=True, text=True, timeout=120, env=env)


def test_cli_derive_expr_and_check_eq() -> None:
    out = _cli("derive-expr", "x @ A @ x", "--wrt", "x", "--let", "x: D", "--let", "A: D x D symmetric", "--order", "2")
    assert out.returncode == 0, out.stderr
    assert "matrix form: ∂f/∂x = 2 A x" in out.stdout and "Hessian: H = 2 A" in out.stdout
    js = _cli("derive-expr", "logdet(X)", "--wrt", "X", "--let", "X: D x D", "--json")
    payload = json.loads(js.stdout)
    assert payload["schema"] == "derivcheck.expression/1" and payload["matrix_form"] == "X⁻ᵀ" and payload["ok"]
    code = _cli("derive-expr", "logdet(X)", "--wrt", "X", "--let", "X: D x D", "--format", "code")
    assert "def grad_X(X):" in code.stdout and "np.linalg.inv(X).T" in code.stdout
    bad = _cli("check-eq", "sum(G * (X @ W))", "G.T @ X", "--wrt", "W", "--let", "X: N x D", "--let", "W: D x M",
               "--let", "G: N x M")
    assert bad.returncode == 1 and bad.stdout.startswith("FAIL")
    err = _cli("derive-expr", "sum(X @ Q)", "--wrt", "X", "--let", "X: N x D")
    assert err.returncode == 2 and "at column 9" in err.stderr and "Traceback" not in err.stderr


def test_readme_examples_of_the_matrix_language_are_real() -> None:
    import doctest
    import re
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("## Derive any matrix expression", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) >= 2
    test = doctest.DocTestParser().get_doctest("\n".join(blocks), {}, "README", "README.md", 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.failures == 0 and runner.tries >= 4


EVERY_CONSTRUCT = [
    ("det(X)", "X", {"X": "D x D"}, "det(X) X⁻ᵀ"),
    ("trace(A) + sum(X)", "A", {"A": "D x D", "X": "N x D"}, "I_D"),
    ("norm2(x)", "x", {"x": "D"}, "x / ‖x‖"),
    ("frobenius(X)", "X", {"X": "N x D"}, "X / ‖X‖_F"),
    ("sum(diag(A) * x)", "A", {"x": "D", "A": "D x D"}, "diag(x)"),
    ("mean((X @ w - y)**2)", "w", {"X": "N x D", "w": "D", "y": "N"}, "2 Xᵀ (X w - y) / N"),
    ("ones(N) @ exp(X @ w)", "w", {"X": "N x D", "w": "D"}, "Xᵀ exp(X w)"),
    ("sum(G * relu(X @ W))", "W", {"X": "N x D", "W": "D x M", "G": "N x M"}, "Xᵀ (G ⊙ 1[X W > 0])"),
    ("sum(abs(X @ w - y))", "w", {"X": "N x D", "w": "D", "y": "N"}, "Xᵀ sign(X w - y)"),
    ("trace(inv(X))", "X", {"X": "D x D"}, "-X⁻ᵀ X⁻ᵀ"),
    ("sum(log(sum(exp(Z), axis=1)))", "Z", {"Z": "N x K"}, "softmax(Z)"),
    ("sum(G * (X @ W.T))", "W", {"X": "N x D", "W": "M x D", "G": "N x M"}, "Gᵀ X"),
    ("sum(softplus(X @ w))", "w", {"X": "N x D", "w": "D"}, "Xᵀ σ(X w)"),
    ("sum(G * (X @ inv(A)))", "A", {"X": "N x D", "A": "D x D", "G": "N x D"}, "-A⁻ᵀ Xᵀ G A⁻ᵀ"),
    ("lam * sum(W**2) / 2", "lam", {"W": "D x M", "lam": "scalar"}, "sum(W^∘2) / 2"),
    ("sum(sum(X * X, axis=1) ** 0.5)", "X", {"X": "N x D"}, None),
    ("sum(G * softmax(Z, axis=0))", "Z", {"G": "N x K", "Z": "N x K"}, None),
    ("sum(G * tanh(X @ W + b))", "b", {"X": "N x D", "W": "D x M", "b": "M", "G": "N x M"}, None),
    ("sum(diag(x) @ A)", "x", {"x": "D", "A": "D x D"}, None),
]


@pytest.mark.parametrize(("expr", "wrt", "shapes", "expected"), EVERY_CONSTRUCT, ids=[c[0][:28] for c in EVERY_CONSTRUCT])
def test_every_construct_derives_and_verifies(expr: str, wrt: str, shapes: dict, expected: str | None) -> None:
    d = dc.derive_expression(expr, wrt, shapes, order=2)
    assert d.ok, str(d)  # includes SymPy's exact derivative at sizes 2, independent of the adjoint rules
    if expected is not None:
        assert d.matrix_form == expected
    assert d.hvp is not None and d.hvp.text is not None


WIDE = {"X": "N x D", "W": "D x M", "w": "D", "b": "M", "A": "D x D", "S": "D x D spd", "x": "D", "G": "N x M",
        "lam": "scalar", "P": "N x D positive", "T": "N x M onehot", "y": "N"}
BREADTH = [
    ("sum(G * softmax(X @ W, axis=0))", "X"), ("-sum(T * log(softmax(X @ W + b, axis=1)))", "b"),
    ("logdet(S + A @ A.T)", "A"), ("x @ inv(S + A.T @ A) @ x", "S"), ("sum(diag(w) @ A)", "w"),
    ("sum((X - mean(X, axis=0, keepdims=True))**2)", "X"), ("sum((X @ W).T @ G)", "W"), ("mean(X @ w)", "w"),
    ("norm2(X @ w - y) ** 2", "X"), ("frobenius(X @ A - X) ** 2", "X"), ("sum(softplus(-y * (X @ w)))", "w"),
    ("trace(inv(A) @ S)", "A"), ("w @ (A + A.T) @ x", "A"), ("sum(X @ A @ X.T)", "X"),
    ("sum(G * ((X @ W) / (1 + sum((X @ W) ** 2, axis=1, keepdims=True))))", "W"),
]


@pytest.mark.parametrize(("expr", "wrt"), BREADTH, ids=[f"{e[:24]}-{w}" for e, w in BREADTH])
def test_breadth_of_the_language_derives_and_verifies_to_second_order(expr: str, wrt: str) -> None:
    d = dc.derive_expression(expr, wrt, WIDE, order=2)
    assert d.ok, str(d)
    assert d.code is not None and d.hvp is not None and d.hvp.text is not None


def test_a_scalar_claim_gets_no_factor_that_one_number_would_fit() -> None:
    r = dc.check_equation("lam * sum(W**2)", "lam", "sum(W)", {"W": "D x M", "lam": "scalar"})
    assert r.verdict == "fail" and not any(e.startswith("a constant factor is missing") for e in r.explanation)
    right = dc.check_equation("lam * sum(W**2)", "lam", "sum(W**2)", {"W": "D x M", "lam": "scalar"})
    assert right.ok


def test_a_missing_one_over_n_is_named_in_the_sizes_not_as_a_number_seen_at_one_size():
    from derivcheck.language.equation import check_equation

    e = check_equation("mean((X @ w - y)**2)", "w", "2 * X.T @ (X @ w - y)", {"X": "N x D", "w": "D", "y": "N"})
    assert not e.ok
    assert any("1/N times the claim" in x for x in e.explanation), e.explanation
    assert not any(" 4 times" in x or " 5 times" in x for x in e.explanation)


def test_an_equation_check_displays_in_a_notebook_and_no_table_cell_reads_nan():
    import derivcheck as dc
    from derivcheck.language.equation import check_equation

    e = check_equation("sum(X @ w)", "w", "X.T @ ones(N)", {"X": "N x D", "w": "D"})
    md, page = e._repr_markdown_(), e._repr_html_()
    assert e.ok and md.startswith("PASS") and "| claimed gradient |" in md and "<table>" in page and "PASS" in page
    d = dc.derive_expression("x @ A @ x", "x", {"x": "D", "A": "D x D symmetric"})
    assert "nan" not in d._repr_markdown_() and "nan" not in md


@pytest.mark.parametrize(("expr", "wrt", "decl"), [("log(sum(exp(X)))", "X", "X: 1000 x 10"),
                                                   ("logdet(X)", "X", "X: 6 x 6 spd"), ("norm2(x)", "x", "x: 100000")])
def test_sizes_typed_as_numbers_are_derived_as_symbols_and_checked_at_the_numbers(expr, wrt, decl):
    import derivcheck as dc

    d = dc.derive_expression(expr, wrt, lets=[decl])
    typed = {int(t) for t in decl.replace("spd", "").split(":")[1].split("x")}
    assert d.ok and any(set(c.sizes.values()) == typed for c in d.checks if c.against.startswith("finite"))
    assert all(max(c.sizes.values()) <= 6 for c in d.checks if c.against.startswith("SymPy"))  # never expanded big


def test_what_derive_expr_prints_with_logsumexp_parses_back():
    import derivcheck as dc
    from derivcheck.language.equation import check_equation

    d = dc.derive_expression("log(sum(exp(X)))", "X", {"X": "N x D"})
    assert "logsumexp" in d.matrix_form
    assert check_equation("log(sum(exp(X)))", "X", d.matrix_form.replace(" ", " "), {"X": "N x D"}).ok
    f = dc.derive_expression("sum(logsumexp(X, axis=1))", "X", {"X": "N x D"})
    assert f.forward.text == "sum(logsumexp(X, axis=1))"


def test_several_wrt_without_steps_print_every_gradient_as_one_verified_backward() -> None:
    lets = ["--let", "X: N x D", "--let", "W: D x M", "--let", "a: M", "--let", "b: M"]
    out = _cli("derive-expr", "sum((X @ W + a) * b)", "--wrt", "W,a,b", *lets)
    assert out.returncode == 0, out.stderr
    assert "∂f/∂a = N b" in out.stdout and "6 of 6 lines agree" in out.stdout and "backward (" not in out.stdout
    code = _cli("derive-expr", "sum((X @ W + a) * b)", "--wrt", "W,a,b", "--format", "code", *lets)
    namespace: dict = {}
    exec(code.stdout, namespace)  # noqa: S102 - the printed code, run as printed
    rng = np.random.default_rng(0)
    x, w, a, b = rng.standard_normal((5, 3)), rng.standard_normal((3, 4)), rng.standard_normal(4), rng.standard_normal(4)
    got = namespace["backward"](w, x, a, b)
    np.testing.assert_allclose(got["W"], x.T @ np.tile(b, (5, 1)))  # closed form, by hand
    np.testing.assert_allclose(got["a"], 5 * b)
    np.testing.assert_allclose(got["b"], (x @ w + a).sum(axis=0))
    second = _cli("derive-expr", "sum((X @ W + a) * b)", "--wrt", "W,a", "--order", "2", *lets)
    assert second.returncode == 2 and "--order 2 is for one expression by one variable" in second.stderr


def test_names_that_print_alike_are_kept_apart_and_a_keyword_name_gets_valid_code() -> None:
    shapes = {"w": "D", "lam": "scalar", "lambda": "scalar"}
    f = "lam * sum(w**2) + lambda * sum(w)"
    with notation.use(notation.UNICODE):
        d = dc.derive_expression(f, "w", shapes)
        assert d.ok and d.matrix_form == "λ + 2 lam w" and "2 lam w_i + λ" in d.index_form.text
        assert r"\mathrm{lam}" in d.gradient.latex and r"\lambda" in d.gradient.latex
        assert dc.check_equation(f, "w", d.matrix_form, shapes).verdict == "pass"  # printed, read back
        assert dc.check_equation(f, "w", "2 λ w + lam", shapes).verdict == "fail"  # λ is lambda here
    namespace: dict = {}
    exec(d.code, namespace)  # noqa: S102 - the printed code: lambda is spelled lambda_
    w = np.array([1.0, -2.0, 0.5])
    np.testing.assert_allclose(namespace["grad_w"](lam=0.3, lambda_=2.0, w=w), 2.0 + 2 * 0.3 * w)
    steps = dc.derive_steps(["Z = w * 2"], f.replace("w", "Z"), ["w"], shapes)
    assert steps.ok and "lambda_" in steps.code
