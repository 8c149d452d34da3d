"""The numeric half of ``benchmarks/bench_readability.py`` over the whole catalog: each textbook formula written
down there agrees with the layer's reference backward at random sizes and inputs, so a wrong table entry or a wrong
catalog gradient fails here (both planted below). The printed text is compared by the benchmark as a report only
(the notation is being changed); here only the normalisation and the reading of a printed block are tested, on text
written in the test."""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from derivcheck.catalog.registry import get_layer, list_layers

_PATH = pathlib.Path(__file__).parent.parent / "benchmarks" / "bench_readability.py"
_SPEC = importlib.util.spec_from_file_location("bench_readability", _PATH)
bench = importlib.util.module_from_spec(_SPEC)
sys.modules["bench_readability"] = bench  # dataclasses look their module up by name
_SPEC.loader.exec_module(bench)
_PACKAGE = pathlib.Path(bench.get_layer.__code__.co_filename).parent  # derivcheck/catalog


def _catalog() -> list[str]:
    """The catalog's own layers (a test may have registered user layers of its own beside them)."""
    return [n for n in list_layers() if pathlib.Path(get_layer(n).source).is_relative_to(_PACKAGE)]


def test_every_catalog_layer_has_a_textbook_form_for_each_of_its_gradients() -> None:
    missing = [(name, a.name) for name in _catalog() for a in get_layer(name).differentiable
               if a.name not in bench.TEXTBOOK.get(name, {})]
    assert missing == []


@pytest.mark.parametrize("name", _catalog())
@given(seed=st.integers(0, 2**32 - 1))
def test_the_textbook_formula_agrees_with_the_reference_backward(name: str, seed: int) -> None:
    rows = bench.numeric_agreement(name, seeds=(seed,))
    assert [(r.arg, r.gap) for r in rows if not r.ok] == [], rows[0].sizes


def _wrong(name: str, arg: str, formula) -> dict:  # noqa: ANN001 - a NumPy formula
    return {**bench.TEXTBOOK, name: {**bench.TEXTBOOK[name], arg: bench.Textbook("planted", formula)}}


@pytest.mark.parametrize(("name", "arg", "formula"), [
    ("dense", "b", lambda g, **_: g.mean(axis=0)),  # a mean where the batch sums
    ("dense", "x", lambda g, w, x, **_: g @ w.T[:, ::-1]),  # columns of W in the wrong order
    ("softmax_cross_entropy", "z", lambda z, t, **_: bench._softmax(z) - t),  # the 1/N of the mean forgotten
    ("batchnorm", "x", lambda g, gamma, x, eps, **_: gamma * g / np.sqrt(x.var(axis=0) + eps)),  # no mean, no var path
    ("maxpool2d", "x", lambda g, x, kernel, stride, **_: bench._pool_dx(  # a window's g to every entry
        g, x, kernel, stride, lambda win, gg: np.broadcast_to(gg[..., None, None], win.shape))),
])
def test_a_wrong_textbook_entry_fails(name: str, arg: str, formula) -> None:  # noqa: ANN001
    rows = {r.arg: r for r in bench.numeric_agreement(name, table=_wrong(name, arg, formula))}
    assert not rows[arg].ok and all(r.ok for a, r in rows.items() if a != arg)


def test_a_wrong_catalog_gradient_fails() -> None:
    layer = get_layer("conv2d")

    def backward(dy, x, w, b, stride, pad):  # noqa: ANN001, ANN202 - the kernel not flipped in dx
        out = layer.backward(dy, x, w, b, stride, pad)
        flipped = layer.backward(dy, x, w[:, :, ::-1, ::-1], b, stride, pad)["x"]
        return {**out, "x": flipped}

    rows = {r.arg: r for r in bench.numeric_agreement("conv2d", backward=backward)}
    assert not rows["x"].ok and rows["w"].ok and rows["b"].ok


def test_the_text_comparison_normalises_notation_only() -> None:
    norm = bench.normalise
    assert norm("G W^T") == norm("G  Wᵀ") == norm("G Wᵀ")
    assert norm("G * exp(X)") == norm("G ⊙ exp(X)") and norm("(Y − T) / N") == norm("(Y - T)/N")
    assert norm("X^T G") != norm("G X^T") and norm("G Wᵀ") != norm("Wᵀ G")
    assert norm("Gᵀ 1_N") == norm("Gᵀ 1") and norm("(G 1_K) 1_Kᵀ") == norm("(G 1) 1ᵀ")  # a ones vector's length
    assert norm("Gᵀ 1_N") != norm("Gᵀ 1_N x") and norm("x_1_N") != norm("x_1")  # only a ones vector loses it
    book = bench.Textbook("Σ_n g_n", lambda g, **_: g.sum(axis=0), also=("Gᵀ 1",))
    assert bench.text_verdict(book, bench.Printed("Σ_n g_np", "G^T 1", None)) == "textbook"
    assert bench.text_verdict(book, bench.Printed("Σ_n g_np", "1^T G", None)) == "different"
    assert bench.text_verdict(book, bench.Printed("Σ_{n,i} g_npi", None, "a tensor of rank 3")) == "none"


def test_a_printed_block_is_read_as_index_form_matrix_form_and_reason() -> None:
    text = "\n".join([
        "dense: (x[N D]) -> N M", "", "∂E/∂X_pq = Σ_m w_qm g_pm",
        "  matrix form (SymPy's index -> array -> matrix conversion), verified against the index form:",
        "  ∂E/∂X = G W^T", "", "∂E/∂W_pq = Σ_n x_np g_nq", "      + 0",
        "  no clean matrix form (a reason); the index form is the statement",
        "  vectorized NumPy: the reference backward below, verified against this index form", "", "footer"])
    blocks = [bench._read_block(b) for b in bench._blocks(text.splitlines())]
    assert [(b.index, b.matrix, b.reason) for b in blocks] == [
        ("Σ_m w_qm g_pm", "G W^T", None),
        ("Σ_n x_np g_nq + 0", None, "no clean matrix form (a reason); the index form is the statement")]


@pytest.mark.parametrize("name", ["sigmoid", "softmax", "log_softmax", "dense"])
def test_the_printed_matrix_form_is_the_one_compared(name: str) -> None:
    """Where the matrix language's reading is printed in place of SymPy's form, that reading is what is evaluated."""
    rows = bench.numeric_agreement(name, bench.shown_matrix_form, seeds=(1,))
    assert all(r.ok and r.matrix_gap is not None for r in rows), rows
