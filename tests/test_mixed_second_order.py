"""derive --order 2 prints the mixed blocks d2E/da db, verified like the diagonal ones: a PReLU's only non-zero
block is d2E/dx da, and dense's d2E/dX dW is [q = r] g_ps."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pytest
import sympy as sp

import derivcheck as dc
from derivcheck.catalog import registry
from derivcheck.catalog.extension import Arg, def_layer
from derivcheck.symbolic.second_order import _check, render_second_order, second_order


def _prelu_index(s):
    n, d = s.out
    return sp.Max(0, s.X[n, d]) + s.a[d, 0] * sp.Min(0, s.X[n, d])


@pytest.fixture
def prelu() -> Iterator[str]:
    registry._load()
    def_layer("test_prelu", inputs=(Arg("x", "N D", domain="away_from_zero"), Arg("a", "D")), output="N D",
              forward=lambda x, a: np.maximum(x, 0) + a * np.minimum(x, 0),
              backward=lambda dy, x, a: {"x": dy * np.where(x > 0, 1.0, a), "a": (dy * np.minimum(x, 0)).sum(axis=0)},
              index_form=_prelu_index)
    yield "test_prelu"
    registry.LAYERS.pop("test_prelu")


def test_a_prelus_only_non_zero_block_is_the_mixed_one(prelu: str) -> None:
    d = dc.derive(prelu)
    xx, aa, xa = second_order(d, "x"), second_order(d, "a"), second_order(d, "x", "a")
    assert xx.form.expr == 0 and aa.form.expr == 0  # away from x = 0 both diagonal blocks vanish
    assert xa.problem is None and xa.form.expr != 0 and xa.other is not None and xa.other.name == "a"
    text = render_second_order(prelu)
    assert "∂²E/∂X_pq ∂a_r" in text and "DEFECT" not in text
    assert "in a, it matches central differences of dE/dx" in text


def test_a_wrong_mixed_block_is_caught() -> None:
    d = dc.derive("dense")
    right = second_order(d, "x", "w")
    assert right.problem is None and str(right.form.expr) != "0"
    problem, _ = _check(d, "x", replace(right.form, expr=2 * right.form.expr), "w")
    assert problem is not None and "central differences" in problem


def test_a_prelus_slope_gradient_reads_simply_and_says_exactly_why_it_has_no_matrix_form(prelu: str) -> None:
    from derivcheck.symbolic.presentation import render_derivation

    text = render_derivation(prelu, "text")
    assert "∂E/∂a_p = Σ_n x_np g_np [x_np < 0]" in text, text  # (x < 0 and x > 0) or x < 0, absorbed
    assert "not an axis reduction" not in text
    slope = text.split("∂E/∂a_p", 1)[1]  # it has a matrix form now (a column sum), verified in the run
    assert "matrix form (the matrix language's rules read from the index form), verified" in slope.splitlines()[1]
