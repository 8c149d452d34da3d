"""The blamed line reaches every place a user looks: the text report, the notebook's HTML (the source with
the wrong line marked), Markdown, JSON and a failing pytest assertion; it costs nothing on a pass."""

from __future__ import annotations

import json

import numpy as np
import pytest

import derivcheck as dc
from derivcheck.report import to_dict

RNG = np.random.default_rng(0)
X, T = RNG.standard_normal((4, 3)), RNG.standard_normal((4, 2))
PARAMS = {"W1": RNG.standard_normal((3, 5)), "b1": np.zeros(5), "W2": RNG.standard_normal((5, 2)), "b2": np.zeros(2)}


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def loss(p):
    h1 = sigmoid(X @ p["W1"] + p["b1"])
    h2 = sigmoid(h1 @ p["W2"] + p["b2"])
    return 0.5 * np.sum((h2 - T) ** 2)


def grad(p, slip=True):
    h1 = sigmoid(X @ p["W1"] + p["b1"])
    h2 = sigmoid(h1 @ p["W2"] + p["b2"])
    dh2 = h2 - T
    dz2 = dh2 * (1 - dh2) if slip else dh2 * h2 * (1 - h2)
    dz1 = (dz2 @ p["W2"].T) * h1 * (1 - h1)
    return {"W1": X.T @ dz1, "b1": dz1.sum(axis=0), "W2": h1.T @ dz2, "b2": dz2.sum(axis=0)}


@pytest.fixture(scope="module")
def report():
    return dc.check_gradient(loss, grad, PARAMS)


def test_the_bias_question_gets_its_wrong_line_and_the_corrected_expression(report):
    b = report.line_blame
    assert report.verdict == "fail" and b is not None and b.status == "blamed"
    assert b.source == "dz2 = dh2 * (1 - dh2) if slip else dh2 * h2 * (1 - h2)" and b.variable == "dz2"
    assert b.corrected is not None and "h2 * (1 - h2)" in b.corrected and b.cause == "wrong_quantity"
    assert b.file.endswith("test_line_report.py") and b.function == "grad"


def test_the_text_and_markdown_reports_show_the_line_and_its_cost(report):
    text = str(report)
    assert "wrong line: test_line_report.py:" in text and "corrected:" in text and "cost:" in text
    assert "dz2 = dh2 * (1 - dh2)" in report._repr_markdown_()


def test_the_html_marks_the_wrong_line_among_its_neighbours(report):
    page = report._repr_html_()
    marked = [line for line in page.splitlines() if "<span" in line and "dz2 = dh2 * (1 - dh2)" in line]
    assert marked and "dh2 = h2 - T" in page  # the line before it is shown, unmarked


def test_json_carries_file_line_source_variable_and_cause(report):
    blob = json.loads(json.dumps(to_dict(report)))
    b = blob["line_blame"]
    assert {"file", "line", "source", "variable", "cause"} <= set(b)
    assert b["variable"] == "dz2" and b["cause"] == "wrong_quantity" and isinstance(b["line"], int)


def test_a_pass_traces_nothing_and_trace_false_skips_it():
    passing = dc.check_gradient(loss, lambda p: grad(p, slip=False), PARAMS)
    assert passing.verdict == "pass" and passing.line_blame is None
    skipped = dc.check_gradient(loss, grad, PARAMS, trace=False)
    assert skipped.verdict == "fail" and skipped.line_blame is None


def test_code_that_cannot_be_read_is_said_in_one_line_and_the_findings_stay():
    namespace = {"np": np}
    exec("def g(w):\n    return 3 * w\n", namespace)  # noqa: S102 - code with no source file, on purpose
    report = dc.check_gradient(lambda w: float(np.sum(w**2)), namespace["g"], np.arange(1.0, 4.0))
    assert report.verdict == "fail" and report.findings
    b = report.line_blame
    assert b is not None and b.status in ("unreadable", "no_line") and b.reason and "\n" not in b.reason


def test_a_failing_assertion_in_pytest_shows_the_line(report):
    with pytest.raises(dc.GradientMismatch) as caught:
        dc.assert_gradient(loss, grad, PARAMS)
    assert "dz2 = dh2 * (1 - dh2)" in str(caught.value)


W0 = RNG.standard_normal((3, 2))
REG = 0.3


def ridge_loss(w):
    return 0.5 * np.sum((X @ w - T) ** 2) + 0.5 * REG * np.sum(w**2)


def ridge_grad_overwrites(w):
    g = X.T @ (X @ w - T) + REG * w
    g[1, 0] *= -1  # the slip: an in-place edit of a gradient that was right
    return g


def ridge_grad_in_place_term(w, slip=False):
    g = X.T @ (X @ w - T)
    g += (2 if slip else 1) * REG * w  # an in-place update that belongs there (twice the term when slipping)
    return g


def test_an_in_place_overwrite_of_a_right_value_is_named_with_deleting_the_line_as_the_fix():
    b = dc.check_gradient(ridge_loss, ridge_grad_overwrites, W0).line_blame
    assert b.status == "blamed" and b.cause == "inplace_overwrite" and b.corrected == "(delete the line)"
    assert b.source == "g[1, 0] *= -1"


def test_a_needed_in_place_update_is_not_called_an_overwrite():
    assert dc.check_gradient(ridge_loss, ridge_grad_in_place_term, W0).line_blame is None  # right: nothing traced
    b = dc.check_gradient(ridge_loss, lambda w: ridge_grad_in_place_term(w, slip=True), W0).line_blame
    assert b.status == "blamed" and b.cause != "inplace_overwrite", b


def test_the_short_summary_of_a_failing_test_names_the_line(report):
    from derivcheck.report.gradient import summary_line

    line = summary_line(report)
    assert "test_line_report.py:" in line and "dz2 = dh2 * (1 - dh2)" in line and "corrected:" in line


def grad_names_say_nothing(p):
    u = sigmoid(X @ p["W1"] + p["b1"])
    v = sigmoid(u @ p["W2"] + p["b2"])
    m = u * (1 - u)  # a local derivative, not an adjoint: never blamed
    wt = p["W2"].T  # a transposed weight, not an adjoint either
    q = v - T
    s = q * (1 - q)  # the slip, under a name that hints at nothing
    r = (s @ wt) * m
    return {"W1": X.T @ r, "b1": r.sum(axis=0), "W2": u.T @ s, "b2": s.sum(axis=0)}


def test_the_line_is_found_by_value_when_names_say_nothing_and_helpers_are_not_blamed():
    b = dc.check_gradient(loss, grad_names_say_nothing, PARAMS).line_blame
    assert b.status == "blamed" and b.variable == "s" and b.source.startswith("s = q * (1 - q)"), b
    assert b.corrected is not None and b.corrected.startswith("s = q * v * (1 - v)"), b.corrected
