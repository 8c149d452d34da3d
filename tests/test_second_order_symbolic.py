"""derive --order 2: second derivatives in index form, verified against differences of the first."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import derivcheck as dc
from derivcheck.symbolic.second_order import _check, render_second_order, second_order


def test_relus_second_derivative_is_zero_and_softmaxs_is_its_jacobian():
    relu = second_order(dc.derive("relu"), "x")
    assert relu.problem is None and relu.form.expr == 0
    ce = second_order(dc.derive("softmax_cross_entropy"), "z")
    assert ce.problem is None and "KroneckerDelta(p, r)" in str(ce.form.expr)
    sig = second_order(dc.derive("sigmoid"), "x")
    assert sig.problem is None and "KroneckerDelta(q, s)" in str(sig.form.expr)


def test_a_wrong_second_derivative_is_caught_and_not_printed():
    d = dc.derive("tanh")
    right = second_order(d, "x")
    wrong = replace(right.form, expr=2 * right.form.expr)
    problem, _ = _check(d, "x", wrong)
    assert problem is not None and "central differences" in problem


def test_the_command_derives_the_second_order():
    out = subprocess.run([sys.executable, "-m", "derivcheck", "derive", "relu", "--order", "2"], capture_output=True,
                         text=True)
    assert out.returncode == 0 and "∂²E/∂X_pq ∂X_rs = 0" in out.stdout and "verified" in out.stdout
    latex = render_second_order("sigmoid", "latex")
    assert r"\frac{\partial^2 E}{\partial X_{pq}\, \partial X_{rs}}" in latex and r"\delta_{p r}" in latex
