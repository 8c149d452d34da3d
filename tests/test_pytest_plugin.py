"""The pytest plugin, run the way users run it (pytester): zero configuration, ini defaults."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

_TESTS = '''
import numpy as np

W = np.linspace(-1.0, 1.0, 6).reshape(2, 3)

def loss(w):
    return float(np.sum(np.tanh(w) ** 2))

def test_right(gradcheck):
    gradcheck(loss, lambda w: 2 * np.tanh(w) * (1 - np.tanh(w) ** 2), W)

def test_missing_two(gradcheck):
    half = lambda w: np.tanh(w) * (1 - np.tanh(w) ** 2)
    gradcheck(loss, half, W)  # the user's failing line

def test_unsummed_bias(gradcheck):
    gradcheck(lambda p: float(np.sum(p["b"] * W)), lambda p: {"b": W}, {"b": np.zeros(3)})

def test_own_bug(gradcheck):
    gradcheck(loss, lambda w: w.missing_attribute, W)

def test_layer(gradcheck):
    gradcheck.backward(lambda x: np.sin(x), lambda dy, x: dy * np.cos(x), (W,))
'''


def test_a_failure_shows_the_users_line_the_report_and_a_summary_with_parameter_and_cause(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("COLUMNS", "200")  # a wide terminal: the summary line is not cut
    pytester.makepyfile(test_user=_TESTS)
    result = pytester.runpytest("-rf")
    result.assert_outcomes(passed=2, failed=3)
    out = result.stdout.str()
    assert "derivcheck gradient check: FAIL" in out and "half the true gradient" in out
    # pytest's ">" marks the user's own line, as for a plain assert.
    result.stdout.fnmatch_lines([">*gradcheck(loss, half, W)  # the user's failing line"])
    # The short summary names the parameter and the cause.
    result.stdout.fnmatch_lines(["FAILED test_user.py::test_missing_two - AssertionError: dparams FAIL (scale): dparams is half the true gradient*"])
    # A wrong shape fails with derivcheck's message alone, without a chain of exceptions.
    assert "GradientShapeError: gradient for 'b' has shape (2, 3); expected (3,)" in out
    assert "During handling" not in out
    # An error inside the user's own function shows their line.
    assert "w.missing_attribute" in out and "AttributeError" in out
    assert "derivcheck/checker" not in out and "pytest_plugin.py" not in out  # no frames of derivcheck


def test_the_fixture_works_inside_given(pytester: pytest.Pytester):
    pytester.makepyfile(test_given='''
import numpy as np
from hypothesis import given, settings, strategies as st

@settings(max_examples=5, deadline=None, database=None)
@given(st.floats(0.5, 2))
def test_right(gradcheck, a):
    gradcheck(lambda w: float(np.sum(np.sin(a * w))), lambda w: a * np.cos(a * w), np.linspace(-1, 1, 4))

@settings(max_examples=5, deadline=None, database=None)
@given(st.floats(0.5, 2))
def test_wrong(gradcheck, a):
    gradcheck(lambda w: float(np.sum(np.sin(a * w))), lambda w: np.cos(a * w), np.linspace(-1, 1, 4))
''')
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert "FailedHealthCheck" not in out and "function_scoped_fixture" not in out
    # Hypothesis's own report of the shrunk example is attached to the failure.
    assert ("Falsifying example" in out or "Failing test case" in out) and "a=2.0" in out
    assert "derivcheck gradient check: FAIL" in out and "gradcheck=gradcheck()" in out


def test_ini_options_set_the_defaults(pytester: pytest.Pytester):
    pytester.makeini("[pytest]\nderivcheck_seed = 7\nderivcheck_mode = full\n")
    pytester.makepyfile(test_user=_TESTS)
    result = pytester.runpytest("-k", "missing_two")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "seed 7" in out and "full(6)" in out


@pytest.mark.parametrize(("line", "words"), [
    ("derivcheck_seed = seven", ["derivcheck_seed", "'seven'", "an integer"]),
    ("derivcheck_rtol = abc", ["derivcheck_rtol", "'abc'", "a number"]),
    ("derivcheck_mode = fulll", ["derivcheck_mode", "'fulll'", "auto, full, directional"]),
])
def test_a_bad_ini_value_is_one_usage_error_at_startup(pytester: pytest.Pytester, line, words):
    pytester.makeini(f"[pytest]\n{line}\n")
    pytester.makepyfile(test_user=_TESTS)
    result = pytester.runpytest()
    err = result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert all(w in err for w in words), err
    assert "passed" not in result.stdout.str() and "failed" not in result.stdout.str()  # no test ran
    assert len(err.strip().splitlines()) <= 3 and "def " not in err  # one message, no plugin source


def test_a_pass_with_a_caveat_is_a_python_warning_in_pytests_summary(pytester: pytest.Pytester):
    # Entries far below the finite-difference step pass with a warning (step_scale).
    pytester.makepyfile(test_warn='''
import warnings
import numpy as np
import derivcheck as dc
from derivcheck.errors import DerivcheckWarning

W = np.array([1e-7, 2e-7, -3e-7])

def test_warned(gradcheck):
    report = gradcheck(lambda w: float(np.sum(np.cos(w))), lambda w: -np.sin(w), W)
    assert [f for f in report.findings if f.severity == "warning"], report.findings
''')
    result = pytester.runpytest("-W", "default")
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    assert "warnings summary" in out and "DerivcheckWarning" in out and "smaller than the finite-difference step" in out
