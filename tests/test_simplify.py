"""Simplification in the matrix language: textbook forms printed exactly, and a law that no rewrite changes a value.

The law's truth is the tree as built, evaluated before any rewrite (plain NumPy on the unsimplified
tree), at random values: never a form derivcheck printed.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import derivcheck as dc
from derivcheck.language import nodes as n
from derivcheck.language.adjoint import gradient
from derivcheck.language.evaluate import evaluate
from derivcheck.language.nodes import Node, Variable
from derivcheck.language.rewrite import fuse, simplify

# The printer's glyphs for a transpose and an inverse (ᵀ or ^T, ⁻¹ or ^-1) are the printer's choice; the pins below
# hold everything else exactly.
_GLYPHS = {"⁻ᵀ": "^-T", "⁻¹": "^-1", "ᵀ": "^T"}


def plain(s: str | None) -> str | None:
    """Printed text with the transpose and inverse glyphs spelled ^T, ^-1, ^-T."""
    if s is None:
        return None
    for glyph, ascii_ in _GLYPHS.items():
        s = s.replace(glyph, ascii_)
    return s


SQUARE = {"X": "N x N"}
SOFTPLUS = {"X": "N x D", "w": "D"}
LOGISTIC = "sum(y * log(sigmoid(X @ w)) + (1 - y) * log(1 - sigmoid(X @ w)))"

GRADIENTS = [
    ("logdet(X @ X.T)", "X", SQUARE, "2 (X X^T)^-1 X"),
    ("logdet(X.T @ X)", "X", {"X": "N x D"}, "2 X (X^T X)^-1"),
    ("log(det(X @ X.T + A @ A.T))", "X", {"X": "D x N", "A": "D x D"}, "2 (A A^T + X X^T)^-1 X"),
    ("x @ inv(A + A.T) @ x", "x", {"x": "D", "A": "D x D"}, "2 (A + A^T)^-1 x"),
    ("x @ B.T @ S @ B @ x", "x", {"x": "D", "B": "M x D", "S": "M x M symmetric"}, "2 B^T S B x"),
    ("sum(log(1 + exp(X @ w)))", "w", SOFTPLUS, "X^T σ(X w)"),
    ("sum(softplus(X @ w))", "w", SOFTPLUS, "X^T σ(X w)"),
    ("logsumexp(X @ w)", "w", SOFTPLUS, "X^T softmax(X w)"),
    ("sum(logsumexp(X @ W, axis=1))", "W", {"X": "N x D", "W": "D x K"}, "X^T softmax(X W)"),
    ("sum(y * log(1 / (1 + exp(-(X @ w)))))", "w", {**SOFTPLUS, "y": "N"}, "X^T (y ⊙ (1 - σ(X w)))"),
]


@pytest.mark.parametrize(("expr", "wrt", "shapes", "expected"), GRADIENTS, ids=[g[0] for g in GRADIENTS])
def test_symmetric_products_and_softplus_print_as_textbooks_do(expr: str, wrt: str, shapes: dict, expected: str) -> None:
    d = dc.derive_expression(expr, wrt, shapes)
    assert plain(d.matrix_form) == expected
    assert d.ok and all(c.ok for c in d.checks)


HESSIANS = [
    ("sum(log(1 + exp(X @ w)))", SOFTPLUS, "X^T diag(σ(X w) ⊙ (1 - σ(X w))) X"),
    ("sum(softplus(X @ w))", SOFTPLUS, "X^T diag(σ(X w) ⊙ (1 - σ(X w))) X"),
    (LOGISTIC, {**SOFTPLUS, "y": "N"}, "-X^T diag(σ(X w) ⊙ (1 - σ(X w))) X"),
]


@pytest.mark.parametrize(("expr", "shapes", "expected"), HESSIANS, ids=[h[0] for h in HESSIANS])
def test_softplus_and_logistic_hessians_are_the_textbook_ones(expr: str, shapes: dict, expected: str) -> None:
    d = dc.derive_expression(expr, "w", shapes, order=2)
    assert d.hessian is not None and plain(d.hessian.text) == expected
    assert d.ok and all(c.ok for c in d.checks)
    assert any(c.what == "Hessian" and c.ok for c in d.checks)


def test_a_matrix_that_is_not_symmetric_keeps_its_transpose() -> None:
    # X A X^T is not symmetric for a general A: the rule must not fire on it.
    d = dc.derive_expression("logdet(X @ A @ X.T)", "X", {"X": "N x N", "A": "N x N spd"})
    assert d.ok and plain(d.matrix_form) == "2 (X A X^T)^-1 X A"
    d = dc.derive_expression("logdet(X @ A @ X.T)", "X", {"X": "N x N", "A": "N x N"})
    assert d.ok and "^-T" in plain(d.matrix_form)


# --- the law: a rewrite never changes a value ---

VARIABLES = {"X": Variable("X", ("D", "D")), "A": Variable("A", ("D", "D")),
             "S": Variable("S", ("D", "D"), frozenset({"symmetric"})), "x": Variable("x", ("D",))}
LEAVES = [n.var(VARIABLES[k]) for k in ("X", "A", "S")] + [n.identity("D")]


def _square(depth: int) -> st.SearchStrategy[Node]:
    leaf = st.sampled_from(LEAVES)
    if depth == 0:
        return leaf
    sub = _square(depth - 1)
    return st.one_of(
        leaf,
        sub.map(n.transpose),
        st.tuples(sub, sub).map(lambda ab: n.matmul(*ab)),
        st.tuples(sub, sub).map(lambda ab: n.add(*ab)),
        st.tuples(sub, sub).map(lambda ab: n.mul(*ab)),
        st.tuples(st.sampled_from([-2, -1, 0.5, 3]), sub).map(lambda cs: n.mul(n.const(cs[0]), cs[1])),
        st.tuples(st.sampled_from(["tanh", "sigmoid", "exp", "softplus"]), sub).map(lambda fa: n.func(*fa)),
        sub.map(lambda a: n.add(n.matmul(a, n.transpose(a)), n.identity("D"))),  # symmetric, positive definite
        sub.map(lambda a: n.inv(n.add(n.matmul(a, n.transpose(a)), n.identity("D")))),
    )


def _scalar(m: Node, how: str) -> Node:
    x = n.var(VARIABLES["x"])
    if how == "sum":
        return n.total(m)
    if how == "trace":
        return n.trace(m)
    if how == "quadratic":
        return n.matmul(x, n.matmul(m, x))
    return n.logdet(n.add(n.matmul(m, n.transpose(m)), n.identity("D")))


def _values(seed: int) -> tuple[dict[str, int], dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    d = 3
    s = rng.standard_normal((d, d)) * 0.5
    values = {"X": rng.standard_normal((d, d)) * 0.5, "A": rng.standard_normal((d, d)) * 0.5, "S": s + s.T,
              "x": rng.standard_normal(d)}
    return {"D": d}, values


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1.0))


# Two evaluations of one value in float64 by different trees (products regrouped, inverses moved): rounding only.
_SAME_VALUE = 1e-9


@given(_square(2), st.sampled_from(["sum", "trace", "quadratic", "logdet"]), st.integers(0, 2**16))
def test_simplification_never_changes_a_value(m: Node, how: str, seed: int) -> None:
    f = _scalar(m, how)
    sizes, values = _values(seed)
    before = evaluate(f, values, sizes)
    after = evaluate(simplify(f, VARIABLES), values, sizes)
    if np.isfinite(before):
        assert _rel(after, before) <= _SAME_VALUE


@given(_square(2), st.sampled_from(["sum", "trace", "quadratic", "logdet"]), st.sampled_from(["X", "x"]),
       st.integers(0, 2**16))
def test_a_simplified_gradient_has_the_value_of_the_raw_adjoint(m: Node, how: str, wrt: str, seed: int) -> None:
    f = _scalar(m, how)
    var = n.var(VARIABLES[wrt])
    raw = gradient(fuse(f), var) if f.depends_on(wrt) else None
    if raw is None:
        return
    sizes, values = _values(seed)
    before = evaluate(raw, values, sizes)
    after = evaluate(simplify(raw, VARIABLES, free=wrt), values, sizes)
    if np.all(np.isfinite(before)):
        assert _rel(after, before) <= _SAME_VALUE


def test_the_law_can_fail() -> None:
    # A wrong rewrite is seen by the comparison the law makes: (X^T)^T read as X^T differs at these values.
    sizes, values = _values(0)
    x = n.var(VARIABLES["X"])
    assert _rel(evaluate(n.transpose(x), values, sizes), evaluate(x, values, sizes)) > _SAME_VALUE


# --- σ and softmax named in the readings of layers' index forms (symbolic/named_functions) ---

from derivcheck.symbolic.named_functions import named_functions  # noqa: E402 - the section's subject

_Z_SHAPES = {"vector": ("D",), "matrix": ("N", "D")}
_NAMED_SIZES = {"N": 3, "D": 4}


def _exp_quotients(z: Node, a: Node, which: str) -> Node:
    """A product of exponentials in ``z`` that one of the rules names, times a factor ``a`` it leaves alone."""
    e = n.func("exp", z)
    one_plus = n.add(n.const(1), e)
    if which == "logistic":
        return n.mul(a, e, n.power(one_plus, -2))
    if which == "sigmoid":
        return n.mul(e, a, n.power(one_plus, -1))
    if which == "exp times 1 - sigmoid":
        return n.mul(a, e, n.sub(n.const(1), n.func("sigmoid", z)))
    axis = z.ndim - 1
    reciprocal = n.power(n.total(e, None if z.ndim == 1 else axis), -1)
    if which == "softmax":
        return n.mul(a, e, reciprocal if z.ndim == 1 else n.expand(reciprocal, axis))
    summed = n.total(n.mul(a, e), None if z.ndim == 1 else axis)  # "normalised sum"
    return n.mul(summed, reciprocal)


@given(shape=st.sampled_from(list(_Z_SHAPES)), scale=st.floats(0.1, 3.0), seed=st.integers(0, 2**16),
       which=st.sampled_from(["logistic", "sigmoid", "exp times 1 - sigmoid", "softmax", "normalised sum"]))
def test_naming_sigma_and_softmax_never_changes_a_value(shape: str, scale: float, seed: int, which: str) -> None:
    """Each rule fires on its pattern (the exponentials are gone) and keeps the value, on random inputs."""
    z_var, a_var = Variable("Z", _Z_SHAPES[shape]), Variable("A", _Z_SHAPES[shape])
    z = n.mul(n.const(sp_rational(scale)), n.add(n.var(z_var), n.func("tanh", n.var(a_var))))
    before = _exp_quotients(z, n.var(a_var), which)
    after = named_functions(before)
    rng = np.random.default_rng(seed)
    values = {name: rng.standard_normal(tuple(_NAMED_SIZES[d] for d in v.shape)) for name, v in
              (("Z", z_var), ("A", a_var))}
    want = evaluate(before, values, _NAMED_SIZES)
    assert not _has_exp(after), after
    assert np.allclose(evaluate(after, values, _NAMED_SIZES), want, rtol=1e-12, atol=1e-12)


def sp_rational(x: float):  # noqa: ANN201 - a SymPy rational near x: the tree's constants are exact
    import sympy as sp

    return sp.Rational(round(x * 8), 8) or sp.Rational(1, 8)


def _has_exp(x: Node) -> bool:
    return (x.op == "func" and x.attrs[0] == "exp") or any(_has_exp(a) for a in x.args)


def test_naming_leaves_other_exponentials_alone() -> None:
    """exp(z) beside 1 + exp(y) of another y, or beside a sum over the other axis, is no σ and no softmax."""
    z, y = (n.var(Variable(name, ("D", "D"))) for name in "ZY")  # square: row sums laid out down the columns fit
    not_logistic = n.mul(n.func("exp", z), n.power(n.add(n.const(1), n.func("exp", y)), -1))
    wrong_axis = n.mul(n.func("exp", z), n.expand(n.power(n.total(n.func("exp", z), 1), -1), 0))
    assert named_functions(not_logistic) == not_logistic
    assert named_functions(wrong_axis) == wrong_axis


# Layers whose gradients SymPy holds as exponential quotients: the matrix language's reading is printed instead.
READINGS = [("sigmoid", "∂E/∂X = G ⊙ σ(X) ⊙ (1 - σ(X))"), ("softplus", "∂E/∂X = G ⊙ σ(X)"),
            ("softmax_cross_entropy", "∂E/∂Z = (softmax(Z) - T) / N"),
            ("binary_cross_entropy_with_logits", "∂E/∂Z = (σ(Z) - T) / N"), ("half_sse", "∂E/∂Y = Y - T"),
            ("log_softmax", "∂E/∂X = G - softmax(X) ⊙ (G 1_K) 1_Kᵀ"),
            ("softmax", "∂E/∂X = softmax(X) ⊙ (G - ((G ⊙ softmax(X)) 1_K) 1_Kᵀ)")]


@pytest.mark.parametrize(("name", "line"), READINGS, ids=[r[0] for r in READINGS])
def test_a_layer_prints_sigma_and_softmax_where_sympy_held_exponentials(name: str, line: str) -> None:
    from derivcheck.language.printing import notation
    from derivcheck.symbolic.presentation import render_derivation

    with notation.use("unicode"):
        lines = render_derivation(name, "text").splitlines()
    at = lines.index(f"  {line}")
    assert lines[at - 1] == "  matrix form (the matrix language's rules read from the index form), verified against the index form:"
