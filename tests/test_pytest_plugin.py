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
    gradcheck(loss, lambda w: np.tanh(w) * (1 - np.tanh(w) ** 2), W)

def test_unsummed_bias(gradcheck):
    gradcheck(lambda p: float(np.sum(p["b"] * W)), lambda p: {"b": W}, {"b": np.zeros(3)})

def test_own_bug(gradcheck):
    gradcheck(loss, lambda w: w.missing_attribute, W)

def test_layer(gradcheck):
    gradcheck.backward(lambda x: np.sin(x), lambda dy, x: dy * np.cos(x), (W,))
'''


def test_a_failure_shows_the_report_and_a_pass_is_silent(pytester: pytest.Pytester):
    pytester.makepyfile(test_user=_TESTS)
    result = pytester.runpytest()
    result.assert_outcomes(passed=2, failed=3)
    out = result.stdout.str()
    assert "derivcheck gradient check: FAIL" in out and "half the true gradient" in out
    # A wrong shape fails with derivcheck's message alone, without a chain of exceptions.
    assert "GradientShapeError: gradient for 'b' has shape (2, 3); expected (3,)" in out
    assert "During handling" not in out
    # An error inside the user's own function shows their line.
    assert "w.missing_attribute" in out and "AttributeError" in out
    assert "derivcheck/check.py" not in out and "pytest_plugin.py" not in out  # no frames of derivcheck


def test_ini_options_set_the_defaults(pytester: pytest.Pytester):
    pytester.makeini("[pytest]\nderivcheck_seed = 7\nderivcheck_mode = full\n")
    pytester.makepyfile(test_user=_TESTS)
    result = pytester.runpytest("-k", "missing_two")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "seed 7" in out and "full(6)" in out


def test_a_bad_ini_value_is_a_usage_error(pytester: pytest.Pytester):
    pytester.makeini("[pytest]\nderivcheck_seed = seven\n")
    pytester.makepyfile(test_user=_TESTS)
    result = pytester.runpytest("-k", "right")
    assert "derivcheck_seed" in result.stdout.str() + result.stderr.str()
    assert result.ret != 0
