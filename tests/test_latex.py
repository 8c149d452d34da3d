"""Every LaTeX block derivcheck prints parses as TeX math (matplotlib's mathtext: see tests/mathtext_check.py for
why that parser), for the whole catalog, six user layers and names that collide with the notation's own letters."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from derivcheck.catalog import registry
from derivcheck.catalog.extension import Arg, def_layer
from derivcheck.catalog.registry import MODELS, list_layers
from derivcheck.language.printing import notation
from derivcheck.symbolic.presentation import render_derivation
from derivcheck.symbolic.verify import verify_layer

import test_user_layers
from mathtext_check import parse_errors


@pytest.fixture(scope="module")
def user_layers() -> Iterator[list[str]]:
    names = test_user_layers._declare() + _colliding_layers()
    yield names
    for name in names:
        registry.LAYERS.pop(name, None)
    from derivcheck.symbolic.derive import _derive

    _derive.cache_clear()


def _colliding_layers() -> list[str]:
    """An argument n beside the batch size N, a gain g beside the upstream gradient's g, a dimension named G."""
    return [layer.name for layer in (
        def_layer("user_times_n", inputs=(Arg("x", "N D"), Arg("n", "N D")), output="N D", forward=lambda x, n: x * n,
                  backward=lambda dy, x, n: {"x": dy * n, "n": dy * x}, index_form=lambda s: s.X[s.out] * s.n[s.out]),
        def_layer("user_gain_g", inputs=(Arg("x", "N D"), Arg("g", "D")), output="N D", forward=lambda x, g: x * g,
                  backward=lambda dy, x, g: {"x": dy * g, "g": (dy * x).sum(axis=0)},
                  index_form=lambda s: s.X[s.out] * s.g[s.out[1], 0]),
        def_layer("user_dim_g", inputs=(Arg("x", "N G"),), output="N G", forward=lambda x: 2 * x,
                  backward=lambda dy, x: {"x": 2 * dy}, index_form=lambda s: 2 * s.X[s.out]),
    )]


def test_the_checker_rejects_what_latex_rejects() -> None:
    assert parse_errors("n_n_{pq}") and parse_errors(r"\frac{a}{b") and parse_errors(r"\nosuchcommand x")
    assert parse_errors(r"\frac{\partial E}{\partial W_{pq}} = \sum_{n} x_{np}\,g_{nq}") == []


def test_every_display_equation_of_the_derivation_scripts_parses() -> None:
    """docs/derivations.md collects every script's output (a test keeps it fresh): step programs such as the LSTM's
    name entries of subscripted matrices, W_i, whose own subscript must not meet the entry's (W_i_{jl})."""
    from pathlib import Path

    docs = (Path(__file__).parent.parent / "docs" / "derivations.md").read_text(encoding="utf-8")
    blocks = docs.split("$$")[1::2]
    assert len(blocks) > 100 and any("{W_i}_{" in b for b in blocks)
    assert {b.strip()[:60]: parse_errors(b.strip())[:1] for b in blocks if parse_errors(b.strip())} == {}


def test_a_subscripted_name_takes_an_entry_subscript_in_braces() -> None:
    from derivcheck.language.program import derive_steps

    d = derive_steps(["Z_i = X @ W_i"], "sum(G * Z_i)", ["W_i"], lets=["X: N x D", "W_i: D x M", "G: N x M"])
    rows = [x.index.latex for x in d.gradients]
    assert rows and all(parse_errors(r) == [] for r in rows), rows
    assert parse_errors(r"\frac{\partial f}{\partial W_i_{ij}}")  # the checker sees the double subscript


def test_every_latex_block_parses(user_layers: list[str]) -> None:
    bad = {}
    for name in [*list_layers(), *MODELS, *user_layers]:
        for fmt in ("latex", "markdown"):
            out = render_derivation(name, fmt)
            blocks = out.splitlines() if fmt == "latex" else out.split("$$")[1::2]
            errors = [e for block in blocks for e in parse_errors(block.strip())]
            if errors:
                bad[f"{name} ({fmt})"] = errors[:2]
    assert bad == {}


def test_colliding_names_are_renamed_in_every_format(user_layers: list[str]) -> None:
    with notation.use("unicode"):  # the pinned text is the Unicode notation, whatever the tests' terminal encodes
        text, latex = render_derivation("user_times_n", "text"), render_derivation("user_times_n", "latex")
        assert "ñ_pq g_pq" in text and "∂E/∂Ñ = G ⊙ X" in text and r"\tilde{n}_{pq}" in latex and "n_n" not in latex
        text, latex = render_derivation("user_gain_g", "text"), render_derivation("user_gain_g", "latex")
        assert "x_np ḡ_np" in text and r"\bar{g}_{np}" in latex and "Ḡ = ∂E/∂y" in text
        text, latex = render_derivation("user_dim_g", "text"), render_derivation("user_dim_g", "latex")
        assert "2 ḡ_pq" in text and "g_g" not in latex and r"\bar{G}" in latex
    with notation.use("ascii"):  # the same renaming, spelled in ASCII
        text = render_derivation("user_gain_g", "text")
        assert "x_np gbar_np" in text and "Gbar = dE/dy" in text and text.isascii()
        text = render_derivation("user_times_n", "text")
        assert "n~_pq g_pq" in text and "dE/dN~ = G * X" in text and text.isascii()


@pytest.mark.parametrize("name", ["user_times_n", "user_gain_g", "user_dim_g"])
def test_colliding_names_verify_four_ways(user_layers: list[str], name: str) -> None:
    v = verify_layer(name, seed=1)
    assert v.ok and all({"index form", "reference backward", "finite differences"} <= set(r.agreeing) for r in v.rows)
    namespace: dict = {}
    exec(render_derivation(name, "code"), namespace)  # noqa: S102 - runs as printed
    x = np.random.default_rng(0).standard_normal((3, 2))
    if name == "user_dim_g":
        np.testing.assert_allclose(namespace["grad_x"](x, x), 2 * x)


def test_a_hat_and_a_one_hot_are_rules_of_the_latex_printers() -> None:
    """X̂ is \\hat{X} and onehot_t is \\operatorname{onehot}(t) in both LaTeX printers, whatever calls them."""
    import sympy as sp

    from derivcheck.language import nodes as n
    from derivcheck.language.nodes import Variable
    from derivcheck.language.printing import latex
    from derivcheck.language.printing.sympy_forms import DerivationPrinter

    # X̂ is a name the statistics reader gives (no user can declare it); onehot_t one the one-hot reader gives.
    v = {name: Variable(name, shape) for name, shape in
         (("X\u0302", ("N", "D")), ("onehot_t", ("N", "K")), ("onehot_ids", ("N", "V")), ("G", ("N", "D")))}
    assert latex(n.mul(n.var(v["X\u0302"]), n.var(v["G"]))) == r"\hat{X} \odot G"
    assert latex(n.var(v["onehot_t"])) == r"\operatorname{onehot}(t)"
    assert latex(n.var(v["onehot_ids"])) == r"\operatorname{onehot}(\mathrm{ids})"
    hat = sp.MatrixSymbol("X\u0302", sp.Symbol("N"), sp.Symbol("D"))
    p, q = sp.symbols("p q")
    assert DerivationPrinter().doprint(hat[p, q]) == r"\hat{x}_{pq}" and DerivationPrinter().doprint(hat) == r"\hat{X}"
    for block in (r"\hat{X} \odot G", r"\operatorname{onehot}(\mathrm{ids})^{\top} G", r"\hat{x}_{pq}"):
        assert parse_errors(block) == []
