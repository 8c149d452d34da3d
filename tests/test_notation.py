"""One textbook notation in text: every derivation of the catalog and of six user layers reads Σ, ⊙, ᵀ,
entries x_np (a vector's by one index), guards in words; no SymPy function names, no line over 200 characters."""

from __future__ import annotations

import re

import pytest
import sympy as sp

from derivcheck.catalog.registry import MODELS, list_layers
from derivcheck.language.printing.sympy_forms import TextPrinter, wrap_text
from derivcheck.symbolic.presentation import render_derivation
from derivcheck.language.printing import notation


@pytest.fixture(autouse=True)
def _unicode_notation():
    """The pinned texts are the Unicode notation, whatever the encoding of the terminal running the tests."""
    with notation.use("unicode"):
        yield


SYMPY_NAMES = ("Sum(", "Piecewise", "ITE(", "KroneckerDelta", "reduce_axis", "Max(", "Min(")
VECTOR_AS_COLUMN = re.compile(r"\[\w+, 0\]")  # b[m, 0]: a vector indexed as a one-column matrix
MAX_LINE = 200


def _problems(out: str) -> list[str]:
    found = [name for name in SYMPY_NAMES if name in out]
    found += VECTOR_AS_COLUMN.findall(out)
    found += [f"a line of {len(x)} characters" for x in out.splitlines() if len(x) > MAX_LINE]
    return found


def test_every_text_derivation_reads_like_a_textbook(user_layers: list[str]) -> None:
    names = [*list_layers(), *MODELS, *user_layers]
    bad = {name: p for name in names if (p := _problems(render_derivation(name, "text")))}
    assert bad == {}


def test_the_index_form_of_dense_is_the_textbook_one() -> None:
    out = render_derivation("dense", "text")
    assert "∂E/∂W_pq = Σ_n x_np g_nq" in out and "∂E/∂b_p = Σ_n g_np" in out and "∂E/∂X = G Wᵀ" in out


def test_a_windows_edges_are_stated_once_in_words() -> None:
    out = render_derivation("conv2d", "text")
    assert "where terms whose indices fall outside these ranges are 0: 0 ≤ " in out and "< KH" in out


def test_data_dependent_cases_are_iverson_brackets() -> None:
    assert "∂E/∂X_pq = g_pq [x_pq > 0]" in render_derivation("relu", "text")
    assert "[p = ids_n]" in render_derivation("embedding", "text")


def test_a_product_of_matrices_is_never_confused_with_a_hadamard_product() -> None:
    out = render_derivation("mlp2", "text")
    assert "G_z1 = G_a1 ⊙ σ(Z1) ⊙ (1 - σ(Z1))" in out and "G_a1 = G_z2 W2ᵀ" in out


def test_long_equations_break_before_a_sign_under_the_limit() -> None:
    x = sp.IndexedBase("x")
    n = sp.Symbol("n")
    line = "y = " + TextPrinter().doprint(sum(x[n, k] ** 2 for k in range(80)))
    lines = wrap_text(line)
    assert len(line) > MAX_LINE and all(len(x) <= MAX_LINE for x in lines)
    assert all(x.lstrip().startswith(("+", "-")) for x in lines[1:])
    assert "".join(x.strip() for x in lines).replace(" ", "") == line.replace(" ", "")


@pytest.mark.parametrize("order", [("unicode", "ascii"), ("ascii", "unicode")])
def test_a_step_by_step_derivation_follows_a_later_change_of_glyphs(order: tuple[str, str]) -> None:
    """A notebook that prints lstm_step, then switches notation.use(...), sees the new glyphs (they were cached)."""
    printed = {}
    for glyphs in order:
        with notation.use(glyphs):
            printed[glyphs] = render_derivation("lstm_step", "text")
    assert printed["ascii"].isascii() and "^T" in printed["ascii"]
    assert "ᵀ" in printed["unicode"] and "^T" not in printed["unicode"]


def test_no_index_form_sums_a_term_its_index_does_not_appear_in() -> None:
    """Σ_j 1 is N: a batch norm's differentiated mean left one in every term before sums were counted."""
    from derivcheck.symbolic.derive import derive
    from derivcheck.symbolic.index_form import _counted_sums

    def idle(expr: sp.Expr) -> list[sp.Sum]:
        return [s for s in expr.atoms(sp.Sum) if any(not s.function.has(lim[0]) for lim in s.limits)]

    j, k, n_ = sp.symbols("j k N", integer=True)
    x = sp.IndexedBase("x")
    planted = sp.Sum(1, (j, 0, n_ - 1)) * sp.Sum(x[k] * sp.Sum(2, (j, 0, n_ - 1)), (k, 0, n_ - 1))
    assert idle(planted) and not idle(_counted_sums(planted))
    assert sp.simplify(_counted_sums(planted) - n_ * sp.Sum(2 * n_ * x[k], (k, 0, n_ - 1))) == 0
    found = {}
    for name in list_layers():
        d = derive(name)
        for arg, g in d.gradients.items():
            if g.index is not None and idle(g.index.expr):
                found[f"{name}.{arg}"] = str(idle(g.index.expr)[0])
    assert found == {}
