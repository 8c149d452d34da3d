"""Nothing printed unverified: the matrix forms, einsums and generated code that ``derive`` prints
are evaluated against the index form in the same run; a planted wrong one is caught."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import numpy as np
import sympy as sp

import derivcheck as dc
from derivcheck.symbolic.presentation import _code, _text
from derivcheck.symbolic.checked_code import checked_code, form_check


def _planted(layer: str, arg: str, **matrix_changes):
    d = dc.derive(layer)
    g = d.gradients[arg]
    wrong = replace(g, matrix=replace(g.matrix, **matrix_changes))
    return replace(d, gradients={**d.gradients, arg: wrong})


def test_a_wrong_matrix_form_is_reported_as_a_defect_and_not_shown():
    right = dc.derive("dense")
    assert form_check(right, "w").matrix is None
    w = right.gradients["w"]
    wrong = _planted("dense", "w", expr=2 * w.matrix.expr)
    assert "differs from the index form" in form_check(wrong, "w").matrix
    text = _text(wrong)
    assert "DEFECT: the matrix form derived here differs" in text and "dE/dw = 2*X.T*G" not in text
    assert wrong.matrix_latex(wrong.gradients["w"]) is None  # LaTeX, Markdown and HTML show no answer either
    code = _code(wrong)
    assert "# dw: DEFECT, not shown: the generated code differs from the index form" in code
    assert "def grad_w" not in code


def test_a_wrong_einsum_is_never_printed():
    d = dc.derive("global_avgpool")
    assert d.gradients["x"].matrix.einsum  # SymPy's einsum for it drops the pooled axes
    assert "has shape" in form_check(d, "x").einsum
    assert "einsum" not in _text(d)
    conv = dc.derive("conv2d")
    assert form_check(conv, "b").einsum is None and "einsum, verified against the index form" in _text(conv)


def test_generated_code_returns_the_parameters_shape_and_is_numerically_safe():
    d = dc.derive("dense")
    source = checked_code(d, "b").source
    ns: dict = {}
    exec("import numpy as np\n" + source, ns)  # noqa: S102 - the code a user would copy, under the block's one import
    g = np.random.default_rng(0).standard_normal((5, 3))
    x, w, b = np.ones((5, 4)), np.ones((4, 3)), np.ones(3)
    assert ns["grad_b"](g, x, w, b).shape == (3,)
    np.testing.assert_allclose(ns["grad_b"](g, x, w, b), g.sum(axis=0))
    sig = checked_code(dc.derive("sigmoid"), "x")
    ns = {}
    exec("import numpy as np\n" + sig.source, ns)  # noqa: S102
    x = np.array([[-800.0, 0.0, 709.0, 710.0, 800.0]])
    out = ns["grad_x"](np.ones_like(x), x)
    assert np.all(np.isfinite(out)) and out[0, 1] == 0.25 and "_sigmoid" in sig.source and "def _sigmoid" in sig.source
    ce = checked_code(dc.derive("softmax_cross_entropy"), "z")
    assert "_rowmax" in ce.source and "def _rowmax" in ce.source


def test_every_printed_form_of_the_catalog_verifies_or_is_reported():
    from derivcheck.catalog.registry import list_layers

    for name in list_layers():
        if name.startswith("lstm"):
            continue  # slow to evaluate entry by entry; checked by derivcheck verify
        d = dc.derive(name)
        for arg, g in d.gradients.items():
            assert form_check(d, arg).matrix is None, (name, arg)


def test_verify_runs_the_rest_of_the_catalog_when_one_layer_breaks(monkeypatch, capsys):
    import derivcheck.symbolic.verify as verify
    from derivcheck.interfaces.cli import main

    real = verify.verify_layer

    def broken(name, **kw):
        if name == "relu":
            raise sp.PolynomialError("a construct SymPy cannot differentiate")
        return real(name, **kw)

    monkeypatch.setattr(verify, "verify_layer", broken)
    code = main(["verify", "relu", "sigmoid", "--jobs", "1"])
    out = capsys.readouterr().out
    assert code == 1 and "could not be verified: PolynomialError" in out and "sigmoid" in out


def test_a_model_verifies_in_a_fresh_process_without_listing_the_catalog_first():
    run = subprocess.run([sys.executable, "-c", "from derivcheck.symbolic.verify import verify_model; "
                          "print(verify_model('mlp2').ok)"], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == "True", run.stderr


def test_greek_names_print_as_greek_and_the_upstream_gradient_is_not_a_kronecker_delta():
    latex = "\n".join(dc.derive("batchnorm").latex_lines())
    assert r"\gamma_{d}" in latex and r"\beta_{d}" in latex and r"\boldsymbol{\beta}" in latex
    assert "g^{amma}" not in latex and "b^{eta}" not in latex and r"\epsilon" in latex
    assert r"\delta" not in latex and r"\Delta" not in latex and "g_{pq}" in latex


def _user_layer(name, f, df, sym):
    from derivcheck.catalog.declarations import Arg, def_layer
    from derivcheck.catalog.registry import LAYERS

    if name not in LAYERS:
        def_layer(name, inputs=(Arg("x", "N D"),), output="N D", forward=lambda x: f(x), backward=lambda dy, x: {"x": dy * df(x)},
                  index_form=lambda s: sym(s.X[s.out[0], s.out[1]]))
    return name


def test_abs_max_min_sign_and_heaviside_derive_with_the_projects_conventions():
    from derivcheck.symbolic.compile import compiled_gradient

    layers = {
        _user_layer("user_abs", np.abs, np.sign, sp.Abs): np.sign,
        _user_layer("user_relu", lambda x: np.maximum(x, 0), lambda x: (x > 0) * 1.0, lambda z: sp.Max(z, 0)):
            lambda x: (x > 0) * 1.0,
        _user_layer("user_clip", lambda x: np.clip(x, -1, 1), lambda x: ((x > -1) & (x < 1)) * 1.0,
                    lambda z: sp.Min(sp.Max(z, -1), 1)): lambda x: ((x > -1) & (x < 1)) * 1.0,
        _user_layer("user_step", lambda x: x * (x > 0), lambda x: (x > 0) * 1.0, lambda z: z * sp.Heaviside(z)):
            lambda x: (x > 0) * 1.0,
    }
    x = np.array([[-2.0, -1.0, 0.0, 1.0, 2.0]])
    g = np.ones_like(x)
    for name, truth in layers.items():
        assert dc.verify_layer(name).ok, name
        index = compiled_gradient(name, "x", "index")({"x": x}, g, {"N": 1, "D": 5})
        np.testing.assert_array_equal(index, truth(x), err_msg=name)  # ReLU'(0) = 0, |x|'(0) = 0, ...
        checked = checked_code(dc.derive(name), "x")
        assert checked.source is not None and "DEFECT" not in checked.note, name
        ns: dict = {}
        exec("import numpy as np\n" + checked.source, ns)  # noqa: S102
        np.testing.assert_array_equal(ns["grad_x"](g, x), truth(x), err_msg=name)


def test_constructs_that_cannot_be_differentiated_get_an_error_naming_them():
    import pytest

    name = _user_layer("user_product", lambda x: np.prod(x, axis=1, keepdims=True) + 0 * x, lambda x: x,
                       lambda z: sp.Product(z, (sp.Symbol("k", integer=True), 0, 2)))
    with pytest.raises(dc.InputError, match="Product"):
        dc.derive(name)


def test_a_summation_index_named_like_a_free_index_cannot_collide():
    from derivcheck.catalog.declarations import Arg, def_layer
    from derivcheck.catalog.registry import LAYERS

    if "user_sum_over_p" not in LAYERS:
        def_layer("user_sum_over_p", inputs=(Arg("x", "N D"), Arg("w", "D M")), output="N M",
                  forward=lambda x, w: x @ w, backward=lambda dy, x, w: {"x": dy @ w.T, "w": x.T @ dy},
                  index_form=lambda s: s.total(s.X[s.out[0], s.index("p")] * s.W[s.index("p"), s.out[1]],
                                               (s.index("p"), s.D)))
    result = dc.verify_layer("user_sum_over_p")
    assert result.ok, [(r.arg, r.message) for r in result.rows]
    d = dc.derive("user_sum_over_p")
    assert d.gradients["w"].matrix.kind == "matrix" and str(d.gradients["w"].matrix.expr) == "X.T*G"


def test_the_printed_reference_backward_comes_with_every_helper_it_calls():
    text = _text(dc.derive("maxpool2d"))
    printed = text.split("with the helpers it calls:")[1]
    for helper in ("def _first_argmax", "def _scatter", "def _windows", "def _max_backward"):
        assert helper in printed, helper


def test_a_weight_shared_through_time_is_written_as_a_sum_of_its_contributions():
    from derivcheck.symbolic.presentation import render_derivation

    lines = render_derivation("rnn3", "latex").splitlines()
    wx = [ln for ln in lines if ln.startswith(r"\frac{\partial E}{\partial WX}")]
    assert len(wx) == 3 and " = " in wx[0] and all(r"\mathrel{+}=" in ln for ln in wx[1:])
    assert r"\text{wx is shared by 3 steps: its gradient is the sum of the 3 contributions above}" in lines


def test_every_opaque_function_in_a_derivation_is_defined_where_it_is_used():
    from derivcheck.catalog.registry import get_layer, list_layers
    from derivcheck.symbolic.presentation import render_derivation

    with_functions = [n for n in list_layers() if get_layer(n).functions]
    assert with_functions  # max-pooling's winner indicator at least
    for name in with_functions:
        for fmt in ("text", "latex", "markdown"):
            out = render_derivation(name, fmt)
            for fn in get_layer(name).functions:
                if fn in out:
                    assert f"where {fn}(" in out, (name, fmt, fn)
