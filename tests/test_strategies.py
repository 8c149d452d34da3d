"""derivcheck.interfaces.strategies: arguments validated like hypothesis.extra.numpy, laws that hold, optional Hypothesis."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

import derivcheck as dc
from derivcheck.catalog.registry import get_layer
from derivcheck.interfaces.strategies import arrays, layer_inputs, layer_sizes


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: layer_sizes("dense", max_side=True), ["max_side", "True"]),
        (lambda: layer_sizes("dense", min_side=4, max_side=2), ["min_side <= max_side"]),
        (lambda: layer_sizes("nosuch"), ["nosuch", "dense"]),
        (lambda: layer_inputs(3), ["catalog name or a Layer", "int"]),
        (lambda: arrays((2, -1)), ["shape", "(2, -1)"]),
        (lambda: arrays(3, kinks="near"), ["kinks", "'near'"]),
        (lambda: arrays(3, dtype=int), ["dtype"]),
        (lambda: arrays(3, scale=0.0), ["scale", "positive"]),
        (lambda: arrays(3, at=()), ["at", "kink points"]),
    ],
)
def test_bad_arguments_say_what_was_expected_and_what_came(make, words):
    with pytest.raises(InvalidArgument) as info:
        make()
    for w in words:
        assert w in str(info.value)


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
