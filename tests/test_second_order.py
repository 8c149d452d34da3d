"""Second order: Hessian-vector products and small Hessians, with truth from closed forms."""

from __future__ import annotations

import numpy as np
import pytest

import derivcheck as dc

RNG = np.random.default_rng(11)
X, T = RNG.standard_normal((6, 3)), RNG.standard_normal(6)
W = RNG.standard_normal(3)


def loss(w):
    return float(np.sum((np.tanh(X @ w) - T) ** 2))


def grad(w):
    z = X @ w
    return X.T @ (2 * (np.tanh(z) - T) * (1 - np.tanh(z) ** 2))


def hessian(w):
    th = np.tanh(X @ w)
    s = 1 - th**2
    return X.T @ ((2 * s * s - 4 * (th - T) * th * s)[:, None] * X)


def test_a_correct_hvp_passes_and_planted_bugs_are_caught_and_named():
    assert dc.check_hvp(grad, lambda w, v: hessian(w) @ v, W).verdict == "pass"
    half = dc.check_hvp(grad, lambda w, v: 0.5 * hessian(w) @ v, W)
    assert half.verdict == "fail" and half.findings[0].kind == "scale" and half.findings[0].factor == pytest.approx(0.5)
    gauss_newton = dc.check_hvp(grad, lambda w, v: X.T @ ((2 * (1 - np.tanh(X @ w) ** 2) ** 2) * (X @ v)), W)
    assert gauss_newton.verdict == "fail"  # the Gauss-Newton product drops the residual's curvature term
    assert any(f.kind == "second_order" for f in half.findings)


def test_an_hvp_entry_is_localized_in_a_large_problem():
    n = 3000
    a = RNG.standard_normal(n)

    def wrong(w, v):
        hv = 6 * a * w * v  # loss = sum(a w^3)
        hv[1234] *= 1.5
        return hv

    w = RNG.standard_normal(n)
    report = dc.check_hvp(lambda w: 3 * a * w**2, wrong, w)
    assert report.verdict == "fail" and [e.index for e in report.wrong_entries["params"]] == [(1234,)]
    assert report.evaluations.loss < 100


def test_relu_kinks_of_the_gradient_are_judged_as_subgradients_and_jumps_are_inconclusive():
    x = np.array([0.0, 1.0, -2.0, 0.5])
    relu = lambda x: np.maximum(x, 0)  # noqa: E731 - the gradient of 0.5 * sum(relu(x)**2)
    assert dc.check_hvp(relu, lambda x, v: (x > 0) * v, x).verdict == "pass"
    assert dc.check_hvp(relu, lambda x, v: (x >= 0) * v, x).verdict == "pass"  # ReLU''s other side: also valid
    assert dc.check_hvp(relu, lambda x, v: 2 * (x > 0) * v, x).verdict == "fail"
    # The gradient of sum(relu(x)) is a step: at x = 0 it jumps, and no Hessian exists there.
    step = dc.check_hvp(lambda x: (x > 0).astype(float), lambda x, v: np.zeros_like(x), x)
    assert step.verdict == "inconclusive" and any(f.kind == "discontinuous" for f in step.findings)
    assert dc.check_hvp(lambda x: (x > 0).astype(float), lambda x, v: np.zeros_like(x), x + 0.25).verdict == "pass"


def test_a_small_hessian_is_checked_for_symmetry_and_its_wrong_entries_localized():
    assert dc.check_hessian(loss, hessian, W).verdict == "pass"
    assert dc.check_hessian(loss, hessian, W, grad=grad).verdict == "pass"

    def symmetric_slip(w):
        h = hessian(w).copy()
        h[0, 2] += 0.5
        h[2, 0] += 0.5
        return h

    report = dc.check_hessian(loss, symmetric_slip, W)
    assert report.verdict == "fail" and report.findings[0].kind == "hessian_entries"
    assert {e.index for e in report.wrong_entries["hessian"]} == {(0, 2), (2, 0)}

    def one_sided(w):
        h = hessian(w).copy()
        h[0, 1] += 1.0
        return h

    report = dc.check_hessian(loss, one_sided, W, grad=grad)
    kinds = [f.kind for f in report.findings if f.severity == "error"]
    assert report.verdict == "fail" and "hessian_asymmetric" in kinds
    assert (0, 1) in {e.index for e in report.wrong_entries["hessian"]}


def test_second_order_inputs_get_clear_errors():
    with pytest.raises(dc.InputError, match=r"expected \(3, 3\)"):
        dc.check_hessian(loss, lambda w: np.ones((2, 2)), W)
    with pytest.raises(dc.InputError, match="small problems"):
        dc.check_hessian(lambda w: 0.0, lambda w: 0, np.ones(500))
    with pytest.raises(dc.UnknownOptionError, match="vector"):
        dc.check_hvp(grad, lambda w, v: v, W, v=np.ones(3))
    with pytest.raises(dc.InputError, match="vector must have"):
        dc.check_hvp(grad, lambda w, v: v, W, vector=np.ones(4))
