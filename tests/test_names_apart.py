"""Two declared names never print alike in one derivation.

``eps`` and ``epsilon`` are both ε; a matrix ``Gamma`` (its symbol GAMMA) and a vector ``gamma`` both γ; the
entries of a matrix ``G`` and of a vector ``g`` both g. Each pair is kept apart the same way in text, LaTeX
and Markdown (one of the names spelled out, or the matrix's entries written with its own letter), and the
generated code keeps the declared names. The layers are declared here as a user would; their own NumPy
backward is the truth the derivation is verified against.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np
import pytest
from conftest import layers_declared_by

from derivcheck.catalog import registry
from derivcheck.catalog.extension import Arg, def_layer
from derivcheck.language.printing import notation
from derivcheck.language.printing.notation import GREEK_TEXT, UNICODE, names_apart, printed_alike
from derivcheck.language.printing.sympy_forms import _entry_name, _matrix_name, text_entry_name, text_name
from derivcheck.symbolic.presentation import render_derivation
from derivcheck.symbolic.verify import verify_layer
from mathtext_check import parse_errors


def _eps_index(s):
    return s.X[s.out] / (s.epsilon[s.out[1], 0] ** 2 + s.eps)


def _matrix_times_vector(matrix: str):
    def index_form(s):
        n_, d = s.out
        k = s.index("k")
        return s.total(s.X[n_, k] * getattr(s, matrix)[k, d], (k, s.D)) * getattr(s, matrix.lower())[d, 0]

    return index_form


def _declare() -> list[str]:
    def product_backward(dy, x, m, v):
        return {"x": (dy * v) @ m.T, "m": x.T @ (dy * v), "v": (dy * (x @ m)).sum(axis=0)}

    return [layer.name for layer in (
        def_layer("na_eps", inputs=(Arg("x", "N D"), Arg("epsilon", "D")), output="N D", constants={"eps": 0.1},
                  forward=lambda x, epsilon, eps: x / (epsilon**2 + eps),
                  backward=lambda dy, x, epsilon, eps: {
                      "x": dy / (epsilon**2 + eps),
                      "epsilon": (-2 * dy * x * epsilon / (epsilon**2 + eps) ** 2).sum(axis=0)},
                  index_form=_eps_index),
        def_layer("na_gamma", inputs=(Arg("x", "N D"), Arg("Gamma", "D D"), Arg("gamma", "D")), output="N D",
                  forward=lambda x, Gamma, gamma: (x @ Gamma) * gamma,
                  backward=lambda dy, x, Gamma, gamma: dict(zip(("x", "Gamma", "gamma"),
                                                                product_backward(dy, x, Gamma, gamma).values())),
                  index_form=_matrix_times_vector("GAMMA")),
        def_layer("na_g", inputs=(Arg("x", "N D"), Arg("G", "D D"), Arg("g", "D")), output="N D",
                  forward=lambda x, G, g: (x @ G) * g,
                  backward=lambda dy, x, G, g: dict(zip(("x", "G", "g"), product_backward(dy, x, G, g).values())),
                  index_form=_matrix_times_vector("G")),
    )]


@pytest.fixture(scope="module")
def layers() -> Iterator[list[str]]:
    yield from layers_declared_by(_declare)


# Per layer: what the two names print as, in text and in LaTeX, and a line that shows both apart.
KEPT_APART = {
    "na_eps": (("eps", "ε_d"), (r"\mathrm{eps}", r"\epsilon_{d}"), "∂E/∂X = G ⊙ (1 ⊘ (eps + ε^∘2))"),
    "na_gamma": (("GAMMA_kd", "γ_d"), (r"\mathrm{GAMMA}_{kd}", r"\gamma_{d}"), "∂E/∂γ = (G ⊙ (X GAMMA))ᵀ 1_N"),
    "na_g": (("G_kd", "g_d"), ("G_{kd}", "g_{d}"), "∂E/∂g = ((X G) ⊙ Ḡ)ᵀ 1_N"),
}


@pytest.mark.parametrize("name", list(KEPT_APART))
def test_names_that_would_print_alike_are_kept_apart_in_every_format(layers: list[str], name: str) -> None:
    (text_a, text_b), (latex_a, latex_b), line = KEPT_APART[name]
    with notation.use("unicode"):
        text = render_derivation(name, "text")
        markdown = render_derivation(name, "markdown")
    forward = text.splitlines()[1]
    assert text_a in forward and text_b in forward, forward
    assert any(row.strip() == line for row in text.splitlines()), text
    latex = render_derivation(name, "latex")
    assert latex_a in latex.splitlines()[0] and latex_b in latex.splitlines()[0], latex
    assert latex_a in markdown and latex_b in markdown
    assert [e for block in latex.splitlines() for e in parse_errors(block)] == []


@pytest.mark.parametrize("name", list(KEPT_APART))
def test_the_layers_verify_and_their_code_keeps_the_declared_names(layers: list[str], name: str) -> None:
    assert verify_layer(name).ok
    source = render_derivation(name, "code")
    declared = [a.name for a in registry.get_layer(name).inputs]
    assert re.search(rf"def grad_x\(dy, {', '.join(declared)}", source), source
    namespace: dict = {}
    exec(compile(source, f"<derivcheck derive {name} --format code>", "exec"), namespace)  # noqa: S102 - as printed
    rng = np.random.default_rng(5)
    x, m, v = rng.standard_normal((4, 3)), rng.standard_normal((3, 3)), rng.uniform(0.5, 2.0, 3)
    args = (x, v, 0.1) if name == "na_eps" else (x, m, v)
    dy = rng.standard_normal((4, 3))
    want = registry.get_layer(name).backward(dy, *args)  # the layer's own NumPy backward
    assert np.allclose(namespace["grad_x"](dy, *args), want["x"], rtol=1e-10, atol=1e-12)


def _greek_groups() -> list[list[str]]:
    """Every set of names the glyph table prints as one letter: its spellings, and the upper case of each
    (a matrix argument gamma is the symbol GAMMA, printed γ)."""
    by_letter: dict[str, set[str]] = {}
    for name in GREEK_TEXT:
        for variant in {name, name.upper()}:
            by_letter.setdefault(UNICODE.greek(variant, fold_case=True), set()).add(variant)
    return [sorted(g) for g in by_letter.values() if len(g) > 1]


@pytest.mark.parametrize("group", _greek_groups(), ids=lambda g: "-".join(g))
def test_no_two_greek_spellings_print_alike_once_kept_apart(group: list[str]) -> None:
    """For every Greek name of the table: text, LaTeX names and LaTeX entries are distinct, one keeps the letter."""
    spelled = printed_alike(group)
    assert len(spelled) == len(group) - 1
    with names_apart(spelled):
        texts = {text_name(n, UNICODE) for n in group}
        entries = {text_entry_name(n, "g", UNICODE) for n in group}
        latex = {_matrix_name(n) for n in group}
        latex_entries = {_entry_name(n) for n in group}
    assert len(texts) == len(entries) == len(latex) == len(latex_entries) == len(group), (texts, latex)
    assert any(t in GREEK_TEXT.values() for t in texts)


def test_names_print_as_greek_outside_a_derivation_that_needs_them_apart() -> None:
    """Kept apart only where two collide: alone, eps is ε and GAMMA's entries are γ."""
    assert text_name("eps", UNICODE) == "ε" and text_entry_name("GAMMA", "g", UNICODE) == "γ"
    assert printed_alike(["eps", "gamma", "mu", "x"]) == frozenset()
