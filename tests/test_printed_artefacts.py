"""Nothing printed unverified: the matrix forms, einsums and generated code that ``derive`` prints
are evaluated against the index form in the same run; a planted wrong one is caught."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import numpy as np
import sympy as sp

import derivcheck as dc
from derivcheck.render import _code, _text
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
    exec(source, ns)  # noqa: S102 - the code a user would copy
    g = np.random.default_rng(0).standard_normal((5, 3))
    assert ns["grad_b"](g, 5).shape == (3,)
    np.testing.assert_allclose(ns["grad_b"](g, 5), g.sum(axis=0))
    sig = checked_code(dc.derive("sigmoid"), "x")
    ns = {}
    exec(sig.source, ns)  # noqa: S102
    x = np.array([[-800.0, 0.0, 709.0, 710.0, 800.0]])
    out = ns["grad_x"](x, np.ones_like(x))
    assert np.all(np.isfinite(out)) and out[0, 1] == 0.25 and "_sigmoid" in sig.source and "def _sigmoid" in sig.source
    ce = checked_code(dc.derive("softmax_cross_entropy"), "z")
    assert "_rowmax" in ce.source and "def _rowmax" in ce.source


def test_every_printed_form_of_the_catalog_verifies_or_is_reported():
    from derivcheck.registry import list_layers

    for name in list_layers():
        if name.startswith("lstm"):
            continue  # slow to evaluate entry by entry; checked by derivcheck verify
        d = dc.derive(name)
        for arg, g in d.gradients.items():
            assert form_check(d, arg).matrix is None, (name, arg)


def test_verify_runs_the_rest_of_the_catalog_when_one_layer_breaks(monkeypatch, capsys):
    import derivcheck.verify as verify
    from derivcheck.cli import main

    real = verify.verify_layer

    def broken(name, **kw):
        if name == "relu":
            raise sp.PolynomialError("a construct SymPy cannot differentiate")
        return real(name, **kw)

    monkeypatch.setattr(verify, "verify_layer", broken)
    code = main(["verify", "relu", "sigmoid"])
    out = capsys.readouterr().out
    assert code == 1 and "could not be verified: PolynomialError" in out and "sigmoid" in out


def test_a_model_verifies_in_a_fresh_process_without_listing_the_catalog_first():
    run = subprocess.run([sys.executable, "-c", "from derivcheck.verify import verify_model; "
                          "print(verify_model('mlp2').ok)"], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == "True", run.stderr
