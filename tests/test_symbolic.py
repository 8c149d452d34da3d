"""Printed equations, conventions and SymPy behaviours the derivation relies on."""

from __future__ import annotations

import json

import numpy as np
import pytest
import sympy as sp

from derivcheck.interfaces.cli import main
from derivcheck.catalog.declarations import Arg, def_layer
from derivcheck.catalog.registry import LAYERS, get_layer
from derivcheck.symbolic.presentation import render_derivation
from derivcheck.symbolic.build import build
from derivcheck.symbolic.compile import compile_index_form
from derivcheck.symbolic.derive import derive
from derivcheck.symbolic.index_form import contract


def test_dense_prints_index_and_matrix_form():
    latex = render_derivation("dense", "latex")
    assert r"\frac{\partial E}{\partial W_{pq}} = \sum_{n} x_{np}\,g_{nq}" in latex
    assert r"\frac{\partial E}{\partial W} = X^{\top}\,G" in latex
    assert r"\frac{\partial E}{\partial \mathbf{b}} = G^{\top}\,\mathbf{1}_{N}" in latex


def test_softmax_cross_entropy_gradient_is_derived_p_minus_t():
    d = derive("softmax_cross_entropy")
    g = d.gradients["z"].index.expr
    built = d.built
    Z, T = built.symbols["z"], built.symbols["t"]
    p, q = d.gradients["z"].index.free
    j = sp.Symbol("j", integer=True, nonnegative=True)
    softmax = sp.exp(Z[p, q]) / sp.Sum(sp.exp(Z[p, j]), (j, 0, built.sizes["K"] - 1))
    assert sp.simplify(g - (softmax - T[p, q]) / built.sizes["N"]) == 0
    latex = render_derivation("softmax_cross_entropy", "latex")
    assert r"\frac{e^{z_{pq}}}{\sum_{j} e^{z_{pj}}} - t_{pq}" in latex


def test_relu_derivative_at_zero_is_zero_not_one_half():
    d = derive("relu")
    fn = compile_index_form(d.built, d.gradients["x"].index)
    x = np.array([[-1.0, 0.0, 2.0]])
    assert fn({"x": x}, np.ones_like(x), {"N": 1, "D": 3}).tolist() == [[0.0, 0.0, 1.0]]
    # SymPy's own Max(x, 0) would say 1/2 at 0: the convention is enforced by the declaration.
    t = sp.Symbol("t")
    assert sp.diff(sp.Max(t, 0), t).subs(t, 0) == sp.Rational(1, 2)


def test_second_derivative_of_relu_is_zero_away_from_the_kink():
    t = sp.Symbol("t", real=True)
    relu = sp.Piecewise((t, t > 0), (0, True))
    second = sp.diff(relu, t, 2)
    assert [second.subs(t, v) for v in (-2, 3)] == [0, 0]


def test_guard_that_matters_survives_contraction():
    # y_n = sum_k w_k x_{n+k}: dE/dx_r keeps the range guard 0 <= r - n < K.
    n, k, r = sp.symbols("n k r", integer=True, nonnegative=True)
    N, K = sp.symbols("N K", integer=True, positive=True)
    x, w, g = sp.IndexedBase("x"), sp.IndexedBase("w"), sp.IndexedBase("g")
    y = sp.Sum(w[k] * x[n + k], (k, 0, K - 1))
    L = sp.Sum(g[n] * y, (n, 0, N - 1))
    result = contract(sp.diff(L, x[r]), {r: N + K - 1})
    assert result.has(sp.Piecewise)
    value = sp.lambdify([x, w, g, N, K, r], result, "math")
    xs, ws, gs = np.arange(6.0), np.array([1.0, 2.0]), np.array([1.0, 10.0, 100.0, 1000.0, 10000.0])
    # r = 0 sees only n = 0, k = 0: g0 w0 = 1.
    assert value(xs, ws, gs, 5, 2, 0) == 1.0
    assert value(xs, ws, gs, 5, 2, 2) == 10.0 * 2 + 100.0 * 1


def test_guard_restricting_a_free_index_to_a_block_survives():
    # y_n = sum_j w_{n, M + j} a_j reads only the second block of w's columns: dE/dw_pq is
    # zero for q < M, a guard on the free index alone that its range does not imply.
    n, j, p, q = sp.symbols("n j p q", integer=True, nonnegative=True)
    N, M = sp.symbols("N M", integer=True, positive=True)
    w, a, g = sp.IndexedBase("w"), sp.IndexedBase("a"), sp.IndexedBase("g")
    L = sp.Sum(g[n] * sp.Sum(w[n, M + j] * a[j], (j, 0, M - 1)), (n, 0, N - 1))
    result = contract(sp.diff(L, w[p, q]), {p: N, q: 2 * M})
    value = sp.lambdify([w, a, g, N, M, p, q], result, "math")
    ws, avals, gs = np.zeros((2, 6)), np.array([1.0, 2.0, 3.0]), np.array([5.0, 7.0])
    assert value(ws, avals, gs, 2, 3, 1, 0) == 0.0  # first block: no dependence
    assert value(ws, avals, gs, 2, 3, 1, 4) == 7.0 * 2.0  # second block, j = 1


def _is_zero(e):
    return e == 0 or isinstance(e, sp.ZeroMatrix)


class TestSympySilentZeros:
    """SymPy 1.14 matrix calculus returns 0 for these; an upgrade that changes them is noticed."""

    def setup_method(self):
        N, D = sp.symbols("N D", integer=True, positive=True)
        self.A = sp.MatrixSymbol("A", N, D)
        self.X = sp.MatrixSymbol("X", D, D)

    def test_sum_of_traces(self):
        X = self.X
        assert _is_zero(sp.diff(sp.Trace(X.T * X) / 2 + sp.Trace(X * X) / 2, X))
        assert not _is_zero(sp.diff(sp.Trace(X.T * X) / 2, X))  # each term alone is right

    def test_log_of_trace(self):
        X = self.X
        assert _is_zero(sp.diff(sp.log(sp.Trace(X.T * X)), X))

    def test_derivcheck_ignores_a_silent_zero(self):
        from derivcheck.symbolic.derive import _trace_check

        name = "silent_zero_probe"
        layer = def_layer(
            name,
            inputs=(Arg("x", "N D"),),
            output="N D",
            forward=lambda x: 2 * x,
            backward=lambda dy, x: {"x": 2 * dy},
            index_form=lambda s: 2 * s.X[s.out],
            matrix_forward=lambda s: sp.ZeroMatrix(s.N, s.D),
        )
        try:
            trace, note = _trace_check(build(layer), layer.inputs[0])
            assert trace is None and "0" in note
        finally:
            del LAYERS[name]


def test_cli_list_derive_verify(capsys):
    assert main(["list"]) == 0
    assert "softmax_cross_entropy" in capsys.readouterr().out
    for fmt in ("text", "latex", "markdown", "code"):
        assert main(["derive", "dense", "--format", fmt]) == 0
        assert capsys.readouterr().out.strip()
    assert main(["derive", "mlp2"]) == 0
    assert "G_z1 = G_a1 ⊙" in capsys.readouterr().out  # text, never LaTeX, in the text format
    assert main(["verify", "dense", "tanh", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [r["gradient"] for r in rows] == ["dx", "dw", "db", "dx"] and all(r["ok"] for r in rows)
    assert main(["verify", "no_such_layer"]) == 2


def test_generated_code_runs_and_matches_reference():
    code = render_derivation("dense", "code")
    namespace: dict = {}
    exec(code, namespace)  # noqa: S102 - the code derivcheck generated
    rng = np.random.default_rng(0)
    x, g = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    w, b = rng.standard_normal((3, 2)), rng.standard_normal(2)
    assert np.allclose(namespace["grad_w"](g, x, w, b), x.T @ g)  # called like the layer's backward(dy, x, w, b)


def test_cli_verify_exits_1_on_a_mutant_layer(capsys):
    name = "mutant_dense_transposed_dx"
    dense = get_layer("dense")

    def wrong(dy, x, w, b):
        grads = dense.backward(dy, x, w, b)
        grads["w"] = grads["w"] * (1 + 1e-3)
        return grads

    def_layer(name, inputs=dense.inputs, output=dense.output, forward=dense.forward, backward=wrong, index_form=dense.index_form)
    try:
        assert main(["verify", name]) == 1
        out = capsys.readouterr().out
        assert "DISAGREE" in out and "reference backward" in out
    finally:
        del LAYERS[name]


def test_unknown_layer_error_lists_known_names():
    from derivcheck.errors import InputError

    with pytest.raises(InputError, match="known layers: .*dense"):
        get_layer("densee")


def test_a_models_chain_prints_each_layer_gradient_as_the_layers_own_derivation_does() -> None:
    from derivcheck.language.printing import notation
    from derivcheck.symbolic.presentation import render_derivation

    with notation.use(notation.UNICODE):
        model = render_derivation("mlp2", "text")
        layer = render_derivation("sigmoid", "text")
    assert "∂E/∂X = G ⊙ σ(X) ⊙ (1 - σ(X))" in layer  # the layer's verified reading
    assert "G_z1 = G_a1 ⊙ σ(Z1) ⊙ (1 - σ(Z1))" in model and "exp(" not in model  # the same, in the model's names
    latex = render_derivation("mlp2", "latex")
    assert r"G_{z1} = G_{a1} \odot \sigma\left(Z_{1}\right) \odot \left(1 - \sigma\left(Z_{1}\right)\right)" in latex
