"""Matrix forms for layers SymPy's index -> matrix conversion leaves without one, read by the matrix language.

Every catalog layer either prints a matrix form verified in the run against its index form, or
says exactly why it has none. GLU, PReLU, weight norm and NLL with integer targets (declared here
as a user would) get forms that are pinned, and a form planted at twice its value is caught. The
truth is the index form evaluated entry by entry and each layer's own NumPy backward.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pytest
from conftest import layers_declared_by
from test_user_layers import normalization_backward
import sympy as sp

from derivcheck.catalog import registry
from derivcheck.catalog.extension import Arg, def_layer
from derivcheck.catalog.registry import list_layers
from derivcheck.language import nodes as n
from derivcheck.symbolic import presentation, verify
from derivcheck.symbolic.checked_code import form_check
from derivcheck.symbolic.derive import derive
from derivcheck.symbolic.verify import language_form_check as check
from derivcheck.symbolic.presentation import render_derivation
from derivcheck.symbolic.verify import verify_layer
from mathtext_check import parse_errors

_GLYPHS = {"⁻ᵀ": "^-T", "⁻¹": "^-1", "ᵀ": "^T"}


def plain(s: str) -> str:
    """Printed text with the transpose and inverse glyphs spelled ^T, ^-1 (the printer's choice of glyph)."""
    for glyph, ascii_ in _GLYPHS.items():
        s = s.replace(glyph, ascii_)
    return s


def _sigmoid(z):
    return 0.5 * (1 + np.tanh(0.5 * z))


def _glu_backward(dy, x, w, v, b, c):
    a, s = x @ w + b, _sigmoid(x @ v + c)
    da, dz = dy * s, dy * a * s * (1 - s)
    return {"x": da @ w.T + dz @ v.T, "w": x.T @ da, "v": x.T @ dz, "b": da.sum(0), "c": dz.sum(0)}


def _glu_index(s):
    n_, m = s.out
    k, j = s.index("k"), s.index("j")
    a = s.total(s.X[n_, k] * s.W[k, m], (k, s.D)) + s.b[m, 0]
    z = s.total(s.X[n_, j] * s.V[j, m], (j, s.D)) + s.c[m, 0]
    return a / (1 + sp.exp(-z))


def _prelu_index(s):
    n_, d = s.out
    return sp.Max(0, s.X[n_, d]) + s.a[d, 0] * sp.Min(0, s.X[n_, d])


def _weight_norm_backward(dy, x, v, g):
    norm = np.linalg.norm(v, axis=0)
    dw = x.T @ dy
    return {"x": dy @ (g * v / norm).T, "g": (dw * v).sum(0) / norm, "v": g / norm * (dw - v * (dw * v).sum(0) / norm**2)}


def _weight_norm_index(s):
    n_, m = s.out
    d, k = s.index("d"), s.index("k")
    return s.total(s.X[n_, d] * s.g[m, 0] * s.V[d, m] / sp.sqrt(s.total(s.V[k, m] ** 2, (k, s.D))), (d, s.D))


def _nll_index(s):
    n_, k = s.index("n"), s.index("k")
    return -s.total(sp.KroneckerDelta(s.t[n_, 0], k) * s.Y[n_, k], (n_, s.N), (k, s.K)) / s.N


def _nll_backward(dy, y, t):
    out = np.zeros_like(y)
    out[np.arange(len(t)), t] = -dy / len(t)
    return {"y": out}


def _declare() -> list[str]:
    return [layer.name for layer in (
        def_layer("mf_glu", inputs=(Arg("x", "N D"), Arg("w", "D M"), Arg("v", "D M"), Arg("b", "M"), Arg("c", "M")),
                  output="N M", forward=lambda x, w, v, b, c: (x @ w + b) * _sigmoid(x @ v + c),
                  backward=_glu_backward, index_form=_glu_index),
        def_layer("mf_prelu", inputs=(Arg("x", "N D", domain="away_from_zero"), Arg("a", "D")), output="N D",
                  forward=lambda x, a: np.maximum(x, 0) + a * np.minimum(x, 0),
                  backward=lambda dy, x, a: {"x": dy * np.where(x > 0, 1.0, a), "a": (dy * np.minimum(x, 0)).sum(axis=0)},
                  index_form=_prelu_index),
        def_layer("mf_weight_norm", inputs=(Arg("x", "N D"), Arg("v", "D M"), Arg("g", "M")), output="N M",
                  forward=lambda x, v, g: x @ (g * v / np.linalg.norm(v, axis=0)), backward=_weight_norm_backward,
                  index_form=_weight_norm_index),
        def_layer("mf_nll", inputs=(Arg("y", "N K"), Arg("t", "N", domain="index", differentiable=False, upper="K")),
                  output="", forward=lambda y, t: float(-y[np.arange(len(t)), t].mean()), backward=_nll_backward,
                  index_form=_nll_index),
    )]


@pytest.fixture(scope="module")
def layers() -> Iterator[list[str]]:
    yield from layers_declared_by(_declare)


PINNED = {
    ("mf_glu", "w"): "X^T (G ⊙ σ(X V + 1_N c^T))",
    ("mf_glu", "b"): "(G ⊙ σ(X V + 1_N c^T))^T 1_N",
    ("mf_glu", "x"): "(G ⊙ σ(X V + 1_N c^T) ⊙ (1 - σ(X V + 1_N c^T)) ⊙ (X W + 1_N b^T)) V^T + (G ⊙ σ(X V + 1_N c^T)) W^T",
    ("mf_prelu", "a"): "(G ⊙ X ⊙ 1[X < 0])^T 1_N",
    ("mf_prelu", "x"): "G ⊙ (a ⊙ 1[X < 0] + 1[X > 0])",
    ("mf_weight_norm", "x"): "(g ⊙ Ḡ ⊙ ((V^∘2)^T 1_D)^∘-1/2) V^T",
    ("mf_weight_norm", "g"): "(((X V) ⊙ Ḡ)^T 1_N) ⊙ ((V^∘2)^T 1_D)^∘-1/2",
    ("mf_nll", "y"): "-onehot(t) / N",
}


@pytest.mark.parametrize(("name", "arg"), list(PINNED), ids=[f"{k[0]}.{k[1]}" for k in PINNED])
def test_layers_without_a_sympy_matrix_form_get_one_from_the_matrix_language(layers: list[str], name: str,
                                                                             arg: str) -> None:
    text = render_derivation(name, "text")
    expected = PINNED[(name, arg)]
    lhs = next(line for line in text.splitlines() if line.startswith("  ∂E/∂") and plain(line).endswith(f"= {expected}"))
    block = text.split(lhs)[0].rstrip().splitlines()[-1]
    assert "matrix language's rules" in block and "verified against the index form" in block, block


@pytest.mark.parametrize("name", ["mf_glu", "mf_prelu", "mf_weight_norm", "mf_nll"])
def test_the_language_forms_are_the_matrix_form_witness_and_agree(layers: list[str], name: str) -> None:
    v = verify_layer(name, seed=3)
    assert v.ok, [(r.arg, r.message) for r in v.rows]
    assert all(r.matrix_kind == "language" and "matrix form" in r.agreeing for r in v.rows)


def test_the_weight_norm_direction_gradient_has_a_matrix_form(layers: list[str]) -> None:
    text = plain(render_derivation("mf_weight_norm", "text"))
    assert "∂E/∂V = g ⊙ ((V^∘2)^T 1_D)^∘-1/2 ⊙ (X^T Ḡ - (((X V) ⊙ Ḡ)^T 1_N) ⊙ V ⊙ (1 ⊘ ((V^∘2)^T 1_D)))" in text


def test_integer_targets_are_a_one_hot_matrix_defined_where_it_is_used(layers: list[str]) -> None:
    text = render_derivation("mf_nll", "text")
    assert "where onehot(t)_nk = [k = t_n]: the one-hot matrix of t" in text
    assert plain(render_derivation("embedding", "text")).count("∂E/∂W = onehot(ids)^T G") == 1
    assert r"\operatorname{onehot}(\mathrm{ids})" in render_derivation("embedding", "latex")


def _planted(name: str, arg: str):  # noqa: ANN202 - a Derivation with one language form at twice its value
    d = derive(name)
    g = d.gradients[arg]
    wrong = replace(g.language, node=n.mul(n.const(2), g.language.node))
    return replace(d, gradients={**d.gradients, arg: replace(g, language=wrong)})


def test_a_language_form_at_twice_the_index_form_is_a_disagreement(layers: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    planted = _planted("mf_prelu", "a")
    monkeypatch.setattr(verify, "derive", lambda layer: planted)
    v = verify_layer("mf_prelu", seed=3)
    row = next(r for r in v.rows if r.arg == "a")
    assert not v.ok and "matrix form" in row.disagreeing and "index form" in row.agreeing
    assert check(planted, "a") is not None and "differs from the index form" in check(planted, "a")
    monkeypatch.setattr(presentation, "derive", lambda layer: planted)
    text = render_derivation("mf_prelu", "text")
    assert "DEFECT: the matrix form derived here differs from the index form" in text
    assert "∂E/∂a = 2" not in text and presentation.matrix_latex(planted, planted.gradients["a"]) is None


def _catalog() -> list[str]:
    registry._load()
    return [name for name in list_layers() if registry.get_layer(name).chain is None]


@pytest.mark.parametrize("name", _catalog())
def test_every_catalog_gradient_has_a_verified_matrix_form_or_an_exact_reason(name: str) -> None:
    d = derive(name)
    text = render_derivation(name, "text")
    for arg, g in d.gradients.items():
        if g.matrix.kind != "none":
            assert form_check(d, arg).matrix is None, (name, arg)
        elif g.language is not None:
            assert check(d, arg) is None, (name, arg, check(d, arg))
        else:
            # The reason names what stops a matrix form: a tensor, or the entry or delta no matrix operation reads.
            assert g.matrix.note.startswith("no matrix form: "), (name, arg)
            if len(g.arg.letters) > 2:  # the axes it has, stated: dX of a convolution has N x C x H x S
                assert f"the gradient has {len(g.arg.letters)} axes ({' x '.join(g.arg.letters)})" in g.matrix.note
            assert "could not" not in g.matrix.note and "not an axis reduction" not in g.matrix.note
            assert g.matrix.note in text


def test_batch_norm_reads_in_its_statistics_names() -> None:
    text = plain(render_derivation("batchnorm", "text"))
    assert "  ∂E/∂X = γ ⊙ (1 ⊘ σ) ⊙ (G - (1_N (G^T 1_N)^T + ((G ⊙ X̂)^T 1_N) ⊙ X̂) / N)" in text
    assert "  ∂E/∂γ = (G ⊙ X̂)^T 1_N" in text
    for definition in ("μ = X^T 1_N / N", "σ = √(ε + ((X - 1_N μ^T)^∘2)^T 1_N / N)", "X̂ = (1 ⊘ σ) ⊙ (X - 1_N μ^T)"):
        assert f"  where {definition}" in text
    latex = render_derivation("batchnorm", "latex")
    assert r"\hat{X} = " in latex and "X̂" not in latex


def test_a_wrong_definition_of_a_named_statistic_is_caught() -> None:
    # The identities used to name μ, σ and X̂ (Σ_n x̂_nq = 0 among them) are checked with the names evaluated from
    # their definitions: σ defined at twice its value makes the form disagree with the index form.
    d = derive("batchnorm")
    g = d.gradients["x"]
    named = tuple((name, n.mul(n.const(2), node) if name == "sigma" else node) for name, node in g.language.named)
    wrong = replace(d, gradients={**d.gradients, "x": replace(g, language=replace(g.language, named=named))})
    assert check(d, "x") is None
    assert "differs from the index form" in check(wrong, "x")


def test_the_index_form_in_the_statistics_names_is_printed_and_checked() -> None:
    text = render_derivation("batchnorm", "text")
    assert "  ∂E/∂X_pq = (g_pq - (x̂_pq Σ_n x̂_nq g_nq + Σ_n g_nq)/N) γ_q/σ_q" in text
    assert "  ∂E/∂γ_p = Σ_n x̂_np g_np" in text
    d = derive("batchnorm")
    g = d.gradients["gamma"]
    wrong = replace(d, gradients={**d.gradients, "gamma": replace(g, language=replace(g.language, index=2 * g.language.index))})
    assert check(d, "gamma") is None
    assert "names whose index form differs" in check(wrong, "gamma")


# --- the law: reading an index form into the matrix language never changes its value ---

def _law_symbols():  # noqa: ANN202 - batch norm's symbols: a matrix X, a vector γ, the upstream G, sizes N and D
    built = derive("batchnorm").built
    p, q = built.free_indices(next(a for a in built.layer.inputs if a.name == "x"))
    return built, p, q


def _entries(draw, depth: int):  # noqa: ANN001, ANN202 - a Hypothesis draw
    from hypothesis import strategies as st

    built, p, q = _law_symbols()
    x, gamma, g = built.symbols["x"], built.symbols["gamma"], built.upstream
    size_n, size_d = built.sizes["N"], built.sizes["D"]
    k, m = sp.Symbol("k", integer=True, nonnegative=True), sp.Symbol("m", integer=True, nonnegative=True)
    leaves = [x[p, q], g[p, q], gamma[q, 0], sp.Integer(2),
              sp.Sum(x[k, q] * g[k, q], (k, 0, size_n - 1)),             # a column sum: 1ᵀ (X ⊙ G)
              sp.Sum(x[p, m] * gamma[m, 0], (m, 0, size_d - 1)),          # a product: X γ
              sp.Sum(g[p, m] * sp.Sum(x[k, m] * x[k, q], (k, 0, size_n - 1)), (m, 0, size_d - 1))]  # G Xᵀ X
    if depth == 0:
        return draw(st.sampled_from(leaves))
    a, b = _entries(draw, depth - 1), _entries(draw, depth - 1)
    how = draw(st.sampled_from(["add", "mul", "tanh", "exp", "relu", "bracket", "leaf"]))
    return {"add": lambda: a + b, "mul": lambda: a * b, "tanh": lambda: sp.tanh(a), "exp": lambda: sp.exp(a / 4),
            "relu": lambda: sp.Max(0, a), "bracket": lambda: sp.Piecewise((b, a > 0), (0, True)),
            "leaf": lambda: draw(st.sampled_from(leaves))}[how]()


def _index_values(built, p, q, expr, arrays, upstream, sizes):  # noqa: ANN001, ANN202
    symbols = [built.symbols["x"], built.symbols["gamma"], built.upstream, built.sizes["N"], built.sizes["D"]]
    fn = sp.lambdify([*symbols, p, q], expr, modules="math")
    args = [arrays["x"], arrays["gamma"].reshape(-1, 1), upstream, sizes["N"], sizes["D"]]
    out = np.empty((sizes["N"], sizes["D"]))
    for idx in np.ndindex(*out.shape):
        out[idx] = fn(*args, *idx)
    return out


def test_reading_an_index_form_never_changes_its_value() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from derivcheck.symbolic.language_form import LanguageFormError, read

    built, p, q = _law_symbols()

    @settings(deadline=None)
    @given(st.data(), st.integers(0, 2**16))
    def law(data, seed: int) -> None:  # noqa: ANN001
        expr = _entries(data.draw, 2)
        try:
            form = read(built, (p, q), ("N", "D"), expr)
        except LanguageFormError:
            return  # no matrix form: nothing is printed, so nothing can be wrong
        rng = np.random.default_rng(seed)
        sizes = {"N": 3, "D": 2}
        arrays = {"x": rng.standard_normal((3, 2)), "gamma": rng.standard_normal(2), "beta": rng.standard_normal(2)}
        upstream = rng.standard_normal((3, 2))
        want = _index_values(built, p, q, expr, arrays, upstream, sizes)
        got = form.values(built, arrays, upstream, sizes)
        assert np.allclose(got, want, rtol=1e-9, atol=1e-9 * max(1.0, float(np.max(np.abs(want))))), (expr, form.text())

    law()


@pytest.mark.parametrize("name", ["mf_glu", "mf_prelu", "mf_weight_norm", "mf_nll", "batchnorm", "embedding"])
def test_language_forms_print_as_code_that_runs_and_matches_the_hand_written_backward(layers: list[str],
                                                                                        name: str) -> None:
    from derivcheck.catalog.sampling import complete_sizes, output_shape, random_sizes, sample_inputs

    source = render_derivation(name, "code")
    namespace: dict = {}
    exec(compile(source, f"<{name} code>", "exec"), namespace)  # noqa: S102 - the printed text, as printed
    layer = registry.get_layer(name)
    rng = np.random.default_rng(7)
    sizes = complete_sizes(layer, random_sizes(layer, rng, low=2))
    arrays = sample_inputs(layer, sizes, rng)
    dy = rng.standard_normal(output_shape(layer, sizes)) if not layer.is_loss else 1.0
    truth = layer.call_backward(dy, arrays, sizes)
    for arg in (a.name for a in layer.differentiable):
        if derive(name).gradients[arg].language is not None:
            assert f"# d{arg}: the matrix language's form, verified against the index form" in source
        fn = namespace[f"grad_{arg}"]
        got = fn(*([] if layer.is_loss else [dy]), *[arrays[a.name] for a in layer.inputs], *layer.constants.values())
        assert np.allclose(got, truth[arg], rtol=1e-9, atol=1e-12), (name, arg)


# --- group norm: statistics over one axis of a rank-3 input, named as batch norm's are ---

def _groupnorm_forward(x, gamma, beta, eps):
    mu = x.mean(axis=2, keepdims=True)
    return gamma * (x - mu) / np.sqrt(x.var(axis=2, keepdims=True) + eps) + beta


def _groupnorm_backward(dy, x, gamma, beta, eps):
    return normalization_backward(dy, x, gamma, beta, eps, axis=2)


def _groupnorm_index(s):
    n_, g, k = s.out
    j, i = s.index("j"), s.index("i")
    mu = s.total(s.X[n_, g, j], (j, s.K)) / s.K
    var = s.total((s.X[n_, g, i] - s.total(s.X[n_, g, j], (j, s.K)) / s.K) ** 2, (i, s.K)) / s.K
    return s.GAMMA[g, k] * (s.X[n_, g, k] - mu) / sp.sqrt(var + s.eps) + s.BETA[g, k]


@pytest.fixture(scope="module")
def groupnorm() -> Iterator[str]:
    """Group norm as a user declares it: N samples, G groups of K values each, one γ and β per channel (G x K)."""
    registry._load()
    layer = def_layer("mf_groupnorm", inputs=(Arg("x", "N G K"), Arg("gamma", "G K"), Arg("beta", "G K")),
                      output="N G K", constants={"eps": 1e-5}, forward=_groupnorm_forward,
                      backward=_groupnorm_backward, index_form=_groupnorm_index)
    yield layer.name
    registry.LAYERS.pop(layer.name, None)


SYMPY_FUNCTION_NAMES = ("Sum(", "Piecewise", "ITE", "KroneckerDelta", "reduce_axis", "Max(")


def test_group_norm_reads_in_its_statistics_names(groupnorm: str) -> None:
    text = render_derivation(groupnorm, "text")
    named = [
        "  ∂E/∂X_pqr = (γ_qr ḡ_pqr - (x̂_pqr Σ_k x̂_pqk γ_qk ḡ_pqk + Σ_k γ_qk ḡ_pqk)/K)/σ_pq",
        "  ∂E/∂γ_pq = Σ_n x̂_npq ḡ_npq",
        "  where μ_ng = Σ_j x_ngj/K", "  where σ_ng = √(ε + Σ_j (x_ngj - μ_ng)²/K)", "  where x̂_ngk = (x_ngk - μ_ng)/σ_ng",
    ]
    lines = text.splitlines()
    assert all(line in lines for line in named), text
    assert text.count("in the names of its statistics, verified against the index form above:") == 2
    assert max(len(line) for line in lines) <= 200 and not any(f in text for f in SYMPY_FUNCTION_NAMES)
    latex = render_derivation(groupnorm, "latex")
    assert r"\hat{x}_{ngk} = \frac{x_{ngk} - \mu_{ng}}{\sigma_{ng}}" in latex.splitlines()
    assert [e for block in latex.splitlines() for e in parse_errors(block)] == []
    assert r"\sigma_{ng} = " in render_derivation(groupnorm, "markdown")
    assert verify_layer(groupnorm).ok


def test_a_wrong_statistic_in_group_norms_names_is_caught_and_not_shown(groupnorm: str) -> None:
    """σ defined at twice its value: the named form disagrees with the index form, and is reported, not printed."""
    d = derive(groupnorm)
    g = d.gradients["x"]
    twice = tuple(replace(s, value=2 * s.value) if str(s.symbol) == "sigma" else s for s in g.named.definitions)
    wrong = replace(d, gradients={**d.gradients, "x": replace(g, named=replace(g.named, definitions=twice))})
    assert verify.named_index_check(d, "x") is None
    assert "differs from the index form" in verify.named_index_check(wrong, "x")
    lines = presentation._named_text(wrong, wrong.gradients["x"])
    assert lines[0].startswith("  DEFECT: the index form in the names of its statistics differs") and len(lines) == 1
