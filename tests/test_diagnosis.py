"""Diagnosis: every detector names its planted bug and claims none of the near misses; the corpus
of realistic backward passes gets its real cause named, and no false finding anywhere."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import derivcheck as dc
from derivcheck.checker.diagnosis import DETECTORS
from derivcheck.errors import GradientShapeError

from backprop_corpus import BUGGY, CORRECT, NEUTRAL, Case, sigmoid


def _run(case: Case):
    try:
        if case.style == "layer":
            return dc.check_backward(case.forward, case.backward, case.inputs)
        return dc.check_gradient(case.forward, case.backward, case.inputs)
    except GradientShapeError as exc:
        return exc


def errors(report: dc.GradientReport) -> list[str]:
    return [f.kind for f in report.findings if f.severity == "error"]


@pytest.mark.parametrize("case", CORRECT, ids=lambda c: c.name)
def test_a_correct_backward_passes_with_no_error_finding(case):
    report = _run(case)
    assert report.verdict == "pass" and errors(report) == [], str(report)


def _named(case: Case, result) -> bool:
    if isinstance(result, GradientShapeError):
        return case.cause == "shape:keepdims" and "keepdims=True" in str(result)
    return case.cause in errors(result)


@pytest.mark.parametrize("case", BUGGY, ids=lambda c: c.name)
def test_a_buggy_backward_fails_and_no_finding_is_false(case):
    result = _run(case)
    if isinstance(result, GradientShapeError):
        assert case.cause.startswith("shape:"), str(result)
        return
    assert result.verdict == "fail", str(result)
    true_kinds = {case.cause, *case.allowed, *NEUTRAL}
    assert set(errors(result)) <= true_kinds, str(result)
    if case.cause is not None:
        assert case.cause in errors(result), str(result)


def test_the_real_cause_is_named_for_at_least_85_percent_of_the_corpus():
    assert len(BUGGY) >= 20 and len(CORRECT) >= 20
    named = [c.name for c in BUGGY if _named(c, _run(c))]
    assert len(named) / len(BUGGY) >= 0.85, sorted(set(c.name for c in BUGGY) - set(named))


# --- each detector: its planted bug, and near misses it must not claim ------------------------------------

RNG = np.random.default_rng(7)
W = RNG.standard_normal((4, 5))


def _cube(w):
    return float(np.sum(w**3))


def _cube_grad(w):
    return 3 * w**2


def _kinds(loss, grad, params, **kw) -> list[str]:
    return errors(dc.check_gradient(loss, grad, params, **kw))


def test_sign_and_scale_are_named_only_when_the_factor_fits_every_entry():
    assert _kinds(_cube, lambda w: -_cube_grad(w), W) == ["sign"]
    assert _kinds(_cube, lambda w: -0.9 * _cube_grad(w), W) == ["scale"]
    # Two of five entries wrong: no factor explains the three right ones too (once "0.81 times").
    b = np.array([0.3, -1.2, 0.8, 2.0, -0.5])

    def two_wrong(b):
        g = _cube_grad(b)
        g[[1, 3]] *= 0.5
        return g

    report = dc.check_gradient(_cube, two_wrong, b)
    assert "scale" not in errors(report) and report.verdict == "fail"
    assert {e.index for e in report.wrong_entries["params"]} == {(1,), (3,)}


@settings(max_examples=15, deadline=None)
@given(c=st.floats(0.05, 20.0).filter(lambda c: abs(c - 1) > 0.01), negative=st.booleans())
def test_any_constant_factor_is_named_with_its_value(c, negative):
    c = -c if negative else c
    report = dc.check_gradient(_cube, lambda w: c * _cube_grad(w), W)
    found = [f for f in report.findings if f.kind in ("scale", "sign")]
    assert found and found[0].factor == pytest.approx(c, rel=1e-3), str(report)


def test_a_failure_at_kinks_is_not_called_a_constant_factor():
    # Max-pool routing a tie's gradient to every tied maximum (once "1.0106 times the true gradient").
    x = np.array([[1.0, 1.0, 0.3], [0.2, 2.0, 2.0]])

    def loss(x):
        return float(np.sum(np.max(x, axis=1) * np.array([1.5, -0.7])))

    def every_tie(x):
        return (x == x.max(axis=1, keepdims=True)) * np.array([[1.5], [-0.7]])

    report = dc.check_gradient(loss, every_tie, x)
    assert report.verdict == "fail" and "scale" not in errors(report), str(report)


def test_a_shared_factor_is_blamed_on_the_loss_only_when_every_parameter_fails_with_it():
    p = {"a": RNG.standard_normal(3), "b": RNG.standard_normal(4)}
    loss = lambda p: float(np.sum(p["a"] ** 3) + np.sum(np.sin(p["b"])))  # noqa: E731
    both = dc.check_gradient(loss, lambda p: {"a": 0.3 * 3 * p["a"] ** 2, "b": 0.3 * np.cos(p["b"])}, p)
    assert errors(both)[0] == "scale_all" and both.findings[0].factor == pytest.approx(0.3)
    one = dc.check_gradient(loss, lambda p: {"a": 0.3 * 3 * p["a"] ** 2, "b": np.cos(p["b"])}, p)
    assert "scale_all" not in errors(one) and "scale" in errors(one)  # once "every parameter's gradient is 0.30"


def test_mean_versus_sum_needs_the_batch_size():
    x, w, b = RNG.standard_normal((6, 3)), RNG.standard_normal((3, 2)), RNG.standard_normal(2)
    fwd = lambda x, w, b: x @ w + b  # noqa: E731
    by_five = dc.check_backward(fwd, lambda d, x, w, b: (d @ w.T, x.T @ d, d.sum(axis=0) / 5), (x, w, b))
    assert "mean_vs_sum" not in errors(by_five) and "scale" in errors(by_five)


def test_transpose_is_named_only_when_it_explains_every_entry():
    w = RNG.standard_normal((4, 4))
    x = RNG.standard_normal((5, 4))
    loss = lambda w: float(np.sum(np.tanh(x @ w)))  # noqa: E731
    true = lambda w: x.T @ (1 - np.tanh(x @ w) ** 2)  # noqa: E731
    assert _kinds(loss, lambda w: true(w).T, w) == ["transpose"]

    def transposed_and_off(w):
        g = true(w).T
        g[0, 1] += 0.5
        return g

    assert "transpose" not in _kinds(loss, transposed_and_off, w)


def test_flip_and_shift_are_named_only_when_they_explain_the_numbers():
    k = RNG.standard_normal((2, 3, 3))
    r = RNG.standard_normal((2, 3, 3))
    loss = lambda k: float(np.sum(r * np.sin(k)))  # noqa: E731
    true = lambda k: r * np.cos(k)  # noqa: E731
    assert _kinds(loss, lambda k: true(k)[:, ::-1, ::-1], k) == ["flip"]
    assert "flip" not in _kinds(loss, lambda k: 2 * true(k)[:, ::-1, ::-1], k)
    img = RNG.standard_normal((2, 6, 6))
    s = RNG.standard_normal((2, 6, 6))
    loss2 = lambda a: float(np.sum(s * a**2))  # noqa: E731

    def shifted(a):
        g = np.zeros_like(a)
        g[:, 1:, :] = (2 * s * a)[:, :-1, :]  # every position moved down one row
        return g

    found = dc.check_gradient(loss2, shifted, img)
    shift = [f for f in found.findings if f.kind == "shift"]
    assert shift and shift[0].detail["offsets"] == [1, 0], str(found)

    def shifted_and_off(a):
        g = shifted(a)
        g[0, 3, 3] += 1.0
        return g

    assert "shift" not in _kinds(loss2, shifted_and_off, img)


def test_a_missing_term_must_be_proportional_to_the_parameter():
    x, t = RNG.standard_normal((6, 3)), RNG.standard_normal(6)
    w = RNG.standard_normal(3)
    loss = lambda w: float(np.sum((x @ w - t) ** 2) + 0.05 * np.sum(w**2))  # noqa: E731
    data = lambda w: 2 * x.T @ (x @ w - t)  # noqa: E731
    found = dc.check_gradient(loss, data, w)
    assert errors(found) == ["missing_term"] and found.findings[0].factor == pytest.approx(0.1)
    cubic = lambda w: float(np.sum((x @ w - t) ** 2) + 0.05 * np.sum(w**4))  # noqa: E731
    assert "missing_term" not in _kinds(cubic, data, w)


def test_support_mismatches_a_missing_mask_and_a_missing_path():
    x = RNG.standard_normal(8)
    mask = np.array([1, 0, 1, 1, 0, 0, 1, 0.0])
    loss = lambda x: float(np.sum(mask * x**3))  # noqa: E731
    report = dc.check_gradient(loss, lambda x: 3 * x**2, x)
    assert errors(report) == ["missing_mask"] and report.findings[0].detail["count"] == 4
    uneven = lambda x: 3 * x**2 * (1 + 0.3 * np.arange(8))  # noqa: E731 - wrong on the support too, unevenly
    assert "missing_mask" not in _kinds(loss, uneven, x)
    two = lambda x: float(np.sum(x[:5] ** 2) + np.sum(x[5:] ** 3))  # noqa: E731
    first_part = lambda x: np.concatenate([2 * x[:5], np.zeros(3)])  # noqa: E731
    assert errors(dc.check_gradient(two, first_part, x)) == ["missing_path"]
    small = lambda x: np.concatenate([2 * x[:5], 1e-3 * x[5:]])  # noqa: E731
    assert "missing_path" not in _kinds(two, small, x)


def test_a_loss_independent_of_a_parameter_is_named_and_a_weak_dependence_is_not():
    p = {"a": RNG.standard_normal(3), "b": RNG.standard_normal(3)}
    loss = lambda p: float(np.sum(p["b"] ** 2))  # noqa: E731
    report = dc.check_gradient(loss, lambda p: {"a": np.cos(p["a"]), "b": 2 * p["b"]}, p)
    assert errors(report) == ["loss_independent"] and report.findings[0].param == "a"
    weak = lambda p: float(np.sum(p["b"] ** 2) + 1e-3 * np.sum(np.sin(p["a"])))  # noqa: E731
    assert "loss_independent" not in _kinds(weak, lambda p: {"a": np.cos(p["a"]), "b": 2 * p["b"]}, p)


def test_a_derivative_on_the_wrong_quantity_needs_an_exact_match():
    x = RNG.standard_normal((3, 4))
    scaled = dc.check_backward(sigmoid, lambda dy, x: 1.5 * dy * sigmoid(x) * (1 - sigmoid(x)), (x,))
    assert errors(scaled) == ["scale"]
    off = dc.check_backward(sigmoid, lambda dy, x: dy * x * (1 - x) + 1e-3, (x,))
    assert "wrong_quantity" not in errors(off)


def test_label_and_repeated_index_patterns_must_cover_every_failing_entry():
    from backprop_corpus import LABELS, SCORES, ce_bwd, ce_fwd, embed_fwd

    def labels_and_one_more(d, s, y):
        g = ce_bwd(d, s, y)[0] * 1.0
        g[np.arange(len(y)), y] += 0.1
        g[0, (y[0] + 1) % 4] += 0.1
        return g, None

    assert "at_labels" not in errors(dc.check_backward(ce_fwd, labels_and_one_more, (SCORES, LABELS)))
    w, ids = RNG.standard_normal((6, 3)), np.array([0, 2, 4, 5])  # no id repeats

    def one_bad_row(d, w, ids):
        g = np.zeros_like(w)
        np.add.at(g, ids, d)
        g[2] *= 2
        return g, None

    assert "repeated_indices" not in errors(dc.check_backward(embed_fwd, one_bad_row, (w, ids)))


def test_errors_spread_over_slices_are_not_called_a_slice():
    x = RNG.standard_normal((3, 4))
    loss = lambda x: float(np.sum(np.sin(x)))  # noqa: E731

    def scattered(x):
        g = np.cos(x)
        g[0, 0] += 1
        g[1, 2] += 1
        g[2, 1] -= 1
        return g

    assert not {"slice", "first_sample_only"} & set(_kinds(loss, scattered, x))


def test_unexplained_says_what_is_known_and_lists_only_causes_it_could_test():
    x = RNG.standard_normal((3, 4))
    report = dc.check_gradient(lambda x: float(np.sum(np.sin(x))), lambda x: np.cos(x) + 0.1 * x**2, x)
    finding = next(f for f in report.findings if f.kind == "unexplained")
    assert "12 of 12 entries checked fail" in finding.message and "ruled out: sign" in finding.message
    assert "wrong quantity" not in finding.message  # needs a layer's tensors: not tested, so not "ruled out"
    assert len(finding.entries) == 12


def test_a_gradient_already_summed_with_keepdims_is_not_told_to_sum_again():
    x, w, b = RNG.standard_normal((6, 3)), RNG.standard_normal((3, 2)), RNG.standard_normal(2)
    with pytest.raises(GradientShapeError, match="keepdims=True") as info:
        dc.check_backward(lambda x, w, b: x @ w + b, lambda d, x, w, b: (d @ w.T, x.T @ d, d.sum(0, keepdims=True)),
                          (x, w, b))
    assert "sum over axis 0" not in str(info.value)


def test_the_readme_lists_every_diagnosis_kind():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("### Diagnoses")[1].split("\n## ")[0]
    listed = set(re.findall(r"^- `(\w+)`", section, flags=re.M))
    kinds = {d.kind for d in DETECTORS} | {"first_sample_only", "scale_all", "wrong_entries", "unexplained",
                                           "symmetric_point", "dead_units", "batch_size_one", "ignores_dy",
                                           "kink_invalid", "joint", "discontinuous", "hessian_entries",
                                           "hessian_asymmetric"}
    assert listed == kinds


def test_a_backward_that_ignores_dy_is_named():
    x = RNG.standard_normal((3, 4))
    report = dc.check_backward(np.sin, lambda dy, x: np.cos(x), (x,))
    assert report.verdict == "fail" and "ignores_dy" in errors(report)
    assert "ignores_dy" not in errors(dc.check_backward(np.sin, lambda dy, x: 2 * dy * np.cos(x), (x,)))


def test_entries_that_pass_alone_but_fail_together_are_named_joint():
    x = np.array([1.0, 1.0, 0.3])  # a tie: each entry alone may take the whole gradient, not both at once
    loss = lambda x: float(np.max(x))  # noqa: E731
    report = dc.check_gradient(loss, lambda x: (x == x.max()).astype(float), x)
    assert report.verdict == "fail" and "joint" in errors(report), str(report)
    info = [f for f in dc.check_gradient(loss, lambda x: np.array([1.0, 0, 0]), x).findings if f.kind == "kink"]
    assert info and info[0].severity == "info"


def test_no_factor_is_claimed_for_a_single_entry():
    w = np.array([0.7])
    report = dc.check_gradient(lambda w: float(np.sum(w**3)), lambda w: 1.5 * w**2, w)
    assert report.verdict == "fail" and not {"scale", "missing_term", "mean_vs_sum"} & set(errors(report))


def test_a_direction_across_a_jump_is_not_evidence_for_any_hypothesis():
    from derivcheck.checker.evidence import _as_direction
    from derivcheck.numeric.directional import DirectionalTest
    from derivcheck.numeric.finite_diff import Derivative

    jump = Derivative(1e5, float("inf"), 3e5, -1.0, False, 1e-6, 8, jump=True)
    assert _as_direction(np.ones(3), DirectionalTest(jump, 0.0, float("inf"), True, "discontinuous")) is None
    smooth = Derivative(2.0, 1e-10, 2.0, 2.0, False, 1e-6, 4)
    assert _as_direction(np.ones(3), DirectionalTest(smooth, 2.0, 1e-9, True)) is not None
