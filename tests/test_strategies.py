"""derivcheck.interfaces.strategies: arguments validated like hypothesis.extra.numpy, laws that hold, optional Hypothesis."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.extra import numpy as hnp

import derivcheck as dc

pytest_plugins = ["pytester"]
from derivcheck.catalog.registry import get_layer, list_layers
from derivcheck.interfaces.strategies import arrays, layer_inputs, layer_sizes


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: layer_sizes("dense", max_side=True), ["max_side", "True"]),
        (lambda: layer_sizes("dense", min_side=4, max_side=2), ["min_side <= max_side"]),
        (lambda: layer_sizes("dens"), ["'dens'", "did you mean 'dense'?"]),
        (lambda: layer_inputs(3), ["catalog name or a Layer", "int"]),
        (lambda: layer_inputs("mlp2"), ["is a model"]),
        (lambda: arrays((2, -1)), ["shape", "(2, -1)"]),
        (lambda: arrays("3"), ["shape", "'3'"]),
        (lambda: arrays(3, kinks="near"), ["kinks", "'near'"]),
        (lambda: arrays(3, dtype=int), ["dtype"]),
        (lambda: arrays(3, dtype="nosuch"), ["dtype", "'nosuch'"]),
        (lambda: arrays(3, scale=0.0), ["scale", "positive"]),
        (lambda: arrays(3, at=()), ["at", "kink points"]),
        (lambda: arrays(3, at=(np.inf,)), ["at", "finite"]),
    ],
)
def test_bad_arguments_are_refused_lazily_saying_what_was_expected_and_what_came(make, words):
    strategy = make()  # like hypothesis.extra.numpy: nothing raised until the strategy is used
    with pytest.raises(InvalidArgument) as info:
        strategy.validate()
    for w in words:
        assert w in str(info.value)


def test_an_unknown_layer_is_named_against_every_layer_of_the_catalog():
    with pytest.raises(InvalidArgument) as info:
        layer_sizes("nosuch").validate()
    assert all(name in str(info.value) for name in list_layers()) and f"{len(list_layers())} layers" in str(info.value)


@given(arrays([2, 3]), arrays(np.int64(4), dtype=np.float32, kinks="on", at=[np.float32(0.5), 1]),
       arrays(hnp.array_shapes(max_dims=4, max_side=3)))
def test_what_extra_numpy_accepts_is_accepted(a, b, c):
    assert a.shape == (2, 3) and a.dtype == np.float64
    assert b.shape == (4,) and b.dtype == np.float32 and np.any(np.isin(b, [0.5, 1.0]))
    assert 1 <= c.ndim <= 4 and np.all(np.abs(c) <= 3.0)


_PLANTED = """
import numpy as np
import derivcheck as dc
from hypothesis import given, settings
from derivcheck.interfaces.strategies import arrays

def loss(x):
    return float(np.sum(x ** 3))

def grad(x):  # planted: wrong where x > 1
    return np.where(x > 1, 2 * x ** 2, 3 * x ** 2)

@settings(max_examples=200, deadline=None, database=None, derandomize=True)
@given(arrays((2, 3), kinks="avoid"))
def test_cube(x):
    dc.assert_gradient(loss, grad, x)
"""


def test_a_planted_bug_shrinks_to_a_minimal_array_that_prints_and_reproduces(pytester: pytest.Pytester):
    pytester.makepyfile(test_planted=_PLANTED)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "build(" not in out and "lambda" not in out.split("x=array(")[1][:200]
    printed = "array(" + out.split("x=array(")[1].split("]])")[0] + "]])"
    x = eval(printed.replace("E  ", "").replace("\n", " "), {"array": np.array})  # pasted back, as a user would
    # Minimal: every entry the simplest off the kink (0 pushed out by the margin) but one just above 1.
    assert np.count_nonzero(x > 1) == 1 and np.allclose(x[x <= 1], 0.01) and float(x.max()) == 1 + 1 / 256
    bug = lambda x: np.where(x > 1, 2 * x ** 2, 3 * x ** 2)  # noqa: E731
    assert dc.check_gradient(lambda x: float(np.sum(x ** 3)), bug, x).verdict == "fail"


@given(arrays((5, 4), kinks="avoid", at=(0.0, 1.0), margin=0.05))
def test_avoid_keeps_every_entry_off_the_kinks(x):
    assert np.min(np.abs(x[..., None] - np.array([0.0, 1.0]))) >= 0.05 - 1e-12


@given(arrays(12, kinks="on"), st.sampled_from([0.0, 1.0, 0.5]))
def test_on_puts_entries_on_kinks_where_every_valid_relu_mask_passes(x, at_zero):
    assert np.any(x == 0)
    u = np.linspace(-1.0, 1.5, 12)

    def loss(x):
        return float(np.sum(u * np.maximum(x, 0)))

    report = dc.check_gradient(loss, lambda x: u * ((x > 0) + at_zero * (x == 0)), x)
    assert report.verdict == "pass", str(report)
    wrong = dc.check_gradient(loss, lambda x: u * ((x > 0) + 2.0 * (x == 0)), x)
    assert wrong.verdict == "fail"


@given(layer_inputs("dense", max_side=3))
def test_layer_inputs_fit_the_layer_by_name_or_object(drawn):
    sizes, inputs = drawn
    assert inputs["x"].shape == (sizes["N"], sizes["D"]) and inputs["w"].shape == (sizes["D"], sizes["M"])
    assert layer_sizes(get_layer("dense")) is not None


def test_without_hypothesis_the_import_says_how_to_get_it():
    code = "import sys; sys.modules['hypothesis'] = None; import derivcheck.interfaces.strategies"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0 and "pip install hypothesis" in result.stderr
