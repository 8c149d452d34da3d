"""Six layers a user writes, one declaration each: GELU, layer norm, Huber, cosine similarity, attention,
a strided 1-D convolution. Each must verify four ways, and a deliberately wrong backward must be blamed."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import sympy as sp

from derivcheck.catalog import registry
from derivcheck.catalog.extension import Arg, def_layer
from derivcheck.language.printing import notation
from derivcheck.symbolic.verify import verify_layer

_C = np.sqrt(2 / np.pi)


def _gelu_backward(dy, x):
    t = np.tanh(_C * (x + 0.044715 * x**3))
    return {"x": dy * (0.5 * (1 + t) + 0.5 * x * (1 - t**2) * _C * (1 + 3 * 0.044715 * x**2))}


def normalization_backward(dy, x, gamma, beta, eps, axis=1):
    """The backward of a normalization over ``axis`` (layer norm: 1; a rank-3 group norm: 2), by hand."""
    mu = x.mean(axis=axis, keepdims=True)
    sigma = np.sqrt(x.var(axis=axis, keepdims=True) + eps)
    xhat = (x - mu) / sigma
    g = dy * gamma
    dx = (g - g.mean(axis=axis, keepdims=True) - xhat * (g * xhat).mean(axis=axis, keepdims=True)) / sigma
    return {"x": dx, "gamma": (dy * xhat).sum(axis=0), "beta": dy.sum(axis=0)}


def _layernorm_forward(x, gamma, beta, eps):
    mu = x.mean(axis=1, keepdims=True)
    return gamma * (x - mu) / np.sqrt(x.var(axis=1, keepdims=True) + eps) + beta


def _layernorm_index(s):
    n, d = s.out
    k, j = s.index("k"), s.index("j")
    mu = s.total(s.X[n, k], (k, s.D)) / s.D
    var = s.total((s.X[n, j] - s.total(s.X[n, k], (k, s.D)) / s.D) ** 2, (j, s.D)) / s.D
    return s.gamma[d, 0] * (s.X[n, d] - mu) / sp.sqrt(var + s.eps) + s.beta[d, 0]


def _huber(r, delta):
    return np.where(np.abs(r) <= delta, 0.5 * r**2, delta * (np.abs(r) - 0.5 * delta))


def _huber_index(s):
    n, m = s.index("n"), s.index("m")
    r = s.Y[n, m] - s.T[n, m]
    value = sp.Piecewise((r**2 / 2, sp.Abs(r) <= s.delta), (s.delta * (sp.Abs(r) - s.delta / 2), True))
    return s.total(value, (n, s.N), (m, s.M)) / s.N


def _cosine_forward(x, z):
    return np.sum(x * z, axis=1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(z, axis=1))


def _cosine_backward(dy, x, z):
    nx, nz = np.linalg.norm(x, axis=1, keepdims=True), np.linalg.norm(z, axis=1, keepdims=True)
    cos = _cosine_forward(x, z)[:, None]
    g = dy[:, None]
    return {"x": g * (z / (nx * nz) - cos * x / nx**2), "z": g * (x / (nx * nz) - cos * z / nz**2)}


def _cosine_index(s):
    (n,) = s.out
    d, e, k = s.index("d"), s.index("e"), s.index("k")
    dot = s.total(s.X[n, d] * s.Z[n, d], (d, s.D))
    return dot / (sp.sqrt(s.total(s.X[n, e] ** 2, (e, s.D))) * sp.sqrt(s.total(s.Z[n, k] ** 2, (k, s.D))))


def _softmax_rows(a):
    e = np.exp(a - a.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _attention_backward(dy, q, k, v):
    p = _softmax_rows(q @ k.T)
    dp = dy @ v.T
    ds = p * (dp - (dp * p).sum(axis=1, keepdims=True))
    return {"q": ds @ k, "k": ds.T @ q, "v": p.T @ dy}


def _attention_index(s):
    n, j = s.out
    t, u, e, f = s.index("t"), s.index("u"), s.index("e"), s.index("f")
    score = s.total(s.Q[n, e] * s.K[t, e], (e, s.E))
    norm = s.total(sp.exp(s.total(s.Q[n, f] * s.K[u, f], (f, s.E))), (u, s.T))
    return s.total(sp.exp(score) * s.V[t, j], (t, s.T)) / norm


def _conv1d_forward(x, w, b, stride):
    out = (x.shape[2] - w.shape[2]) // stride + 1
    cols = stride * np.arange(out)[:, None] + np.arange(w.shape[2])[None, :]  # (O, K) positions
    return np.einsum("ncok,fck->nfo", x[:, :, cols], w) + b[None, :, None]


def _conv1d_backward(dy, x, w, b, stride):
    out = dy.shape[2]
    cols = stride * np.arange(out)[:, None] + np.arange(w.shape[2])[None, :]
    dx = np.zeros_like(x, dtype=float)
    np.add.at(dx, (slice(None), slice(None), cols), np.einsum("nfo,fck->ncok", dy, w))
    return {"x": dx, "w": np.einsum("nfo,ncok->fck", dy, x[:, :, cols]), "b": dy.sum(axis=(0, 2))}


def _conv1d_index(s):
    n, f, i = s.out
    c, k = s.index("c"), s.index("k")
    return s.total(s.W[f, c, k] * s.X[n, c, s.stride * i + k], (c, s.C), (k, s.K)) + s.b[f, 0]


def _declare() -> list[str]:
    return [layer.name for layer in (
        def_layer("user_gelu", inputs=(Arg("x", "N D"),), output="N D",
                  forward=lambda x: 0.5 * x * (1 + np.tanh(_C * (x + 0.044715 * x**3))), backward=_gelu_backward,
                  index_form=lambda s: s.X[s.out] / 2 * (1 + sp.tanh(sp.sqrt(2 / sp.pi) * (s.X[s.out] + sp.Rational(44715, 10**6) * s.X[s.out] ** 3)))),
        def_layer("user_layernorm", inputs=(Arg("x", "N D"), Arg("gamma", "D"), Arg("beta", "D")), output="N D",
                  forward=_layernorm_forward, backward=normalization_backward, index_form=_layernorm_index,
                  constants={"eps": 1e-3}, valid_sizes=lambda s: s["D"] >= 2, max_side=3,
                  steps=("M = mean(X, axis=1, keepdims=True)", "Xc = X - M", "V = mean(Xc**2, axis=1, keepdims=True)",
                         "Y = gamma * Xc / sqrt(V + eps) + beta")),
        def_layer("user_huber", inputs=(Arg("y", "N M"), Arg("t", "N M", differentiable=False)), output="",
                  forward=lambda y, t, delta: float(np.sum(_huber(y - t, delta)) / y.shape[0]),
                  backward=lambda dy, y, t, delta: {"y": dy * np.clip(y - t, -delta, delta) / y.shape[0]},
                  index_form=_huber_index, constants={"delta": 0.5}),
        def_layer("user_cosine", inputs=(Arg("x", "N D"), Arg("z", "N D")), output="N",
                  forward=_cosine_forward, backward=_cosine_backward, index_form=_cosine_index, max_side=3,
                  steps=("P = sum(X * Z, axis=1)", "Y = P / (sqrt(sum(X * X, axis=1)) * sqrt(sum(Z * Z, axis=1)))")),
        def_layer("user_attention", inputs=(Arg("q", "N E"), Arg("k", "T E"), Arg("v", "T D")), output="N D",
                  forward=lambda q, k, v: _softmax_rows(q @ k.T) @ v, backward=_attention_backward,
                  index_form=_attention_index, max_side=3,
                  steps=("S = Q @ K.T", "P = softmax(S, axis=1)", "Y = P @ V")),
        def_layer("user_conv1d", inputs=(Arg("x", "N C L"), Arg("w", "F C K"), Arg("b", "F")), output="N F O",
                  forward=_conv1d_forward, backward=_conv1d_backward, index_form=_conv1d_index,
                  hyper={"stride": (1, 3)}, shape_rules={"O": lambda s: (s["L"] - s["K"]) // s["stride"] + 1},
                  valid_sizes=lambda s: s["L"] >= s["K"], max_side=3),
    )]


@pytest.fixture(scope="module")
def user_layers() -> Iterator[list[str]]:
    names = _declare()
    yield names
    for name in names:  # leave the catalog as it was for every other test
        registry.LAYERS.pop(name, None)
    from derivcheck.symbolic.derive import _derive

    _derive.cache_clear()


NAMES = ["user_gelu", "user_layernorm", "user_huber", "user_cosine", "user_attention", "user_conv1d"]


@pytest.mark.parametrize("name", NAMES)
def test_a_users_layer_verifies_four_ways(user_layers: list[str], name: str) -> None:
    v = verify_layer(name, seed=2)
    assert v.ok, [(r.arg, r.message) for r in v.rows]
    assert all({"index form", "reference backward", "finite differences"} <= set(r.agreeing) for r in v.rows)


@pytest.mark.parametrize("name", ["user_layernorm", "user_cosine", "user_attention"])
def test_matrix_forms_step_by_step_where_the_index_form_has_none(user_layers: list[str], name: str) -> None:
    v = verify_layer(name, seed=2)
    assert all("matrix form" in r.agreeing for r in v.rows), [(r.arg, r.agreeing) for r in v.rows]
    from derivcheck.symbolic.presentation import render_derivation

    out = render_derivation(name, "text")
    assert "matrix form, step by step" in out and "lines agree with finite differences" in out


@pytest.mark.parametrize(("glyphs", "transpose", "d"), [("unicode", "ᵀ", "∂"), ("ascii", "^T", "d")])
def test_attention_matrix_forms_are_the_textbook_ones(user_layers: list[str], glyphs: str, transpose: str,
                                                      d: str) -> None:
    from derivcheck.language.program import derive_program
    from derivcheck.symbolic.layer_chain import steps_program

    # The texts are printed when the derivation is made (and the catalog's is cached): derived here, in the
    # chosen glyphs, so that the pin does not depend on the encoding of the stream running the tests.
    with notation.use(glyphs):
        derived = derive_program(steps_program(registry.get_layer("user_attention")))
    lines = {x.lhs.text: x.rhs.text for x in derived.gradients}
    assert lines == {f"{d}f/{d}Q": "dS K", f"{d}f/{d}K": f"dS{transpose} Q", f"{d}f/{d}V": f"P{transpose} dY"}


@pytest.mark.parametrize("name", NAMES)
def test_a_wrong_backward_in_a_users_layer_is_blamed(user_layers: list[str], name: str) -> None:
    layer = registry.get_layer(name)

    def wrong(dy, **kw):
        return {k: 0.5 * g for k, g in layer.backward(dy, **kw).items()}

    v = verify_layer(name, seed=2, backward=wrong)
    assert not v.ok
    assert all("reference backward" in r.disagreeing and "index form" in r.agreeing for r in v.rows)


def test_a_new_domain_and_an_elementwise_layer_are_one_function_each() -> None:
    from derivcheck.catalog.extension import def_domain
    from derivcheck.catalog.registry import SAMPLERS
    from derivcheck.catalog.extension import def_elementwise

    @def_domain("user_near_one")
    def _near_one(shape, rng, sizes, arg):
        return rng.uniform(0.5, 1.5, shape)

    try:
        layer = def_elementwise("user_log", np.log, lambda x, y: 1 / x, lambda z, s: sp.log(z), domain="user_near_one")
        v = verify_layer("user_log", seed=3)
        assert v.ok and layer.inputs[0].domain == "user_near_one"
        with pytest.raises(ValueError, match="no domain .no_such_domain.; the domains are"):
            Arg("x", "N D", domain="no_such_domain")
    finally:
        registry.LAYERS.pop("user_log", None)
        SAMPLERS.pop("user_near_one", None)


def test_an_argument_named_like_a_dimension_gets_its_own_symbol() -> None:
    def index_form(s):
        j = s.index("j")
        return s.total(s.X[s.out[0], j] * s.k[j, s.out[1]], (j, s.K))  # s.K is the size, s.k the argument

    def_layer("user_kdim", inputs=(Arg("x", "N K"), Arg("k", "K M")), output="N M", forward=lambda x, k: x @ k,
              backward=lambda dy, x, k: {"x": dy @ k.T, "k": x.T @ dy}, index_form=index_form)
    try:
        v = verify_layer("user_kdim", seed=4)
        assert v.ok and {r.matrix_kind for r in v.rows} == {"matrix"}
    finally:
        registry.LAYERS.pop("user_kdim", None)
        from derivcheck.symbolic.derive import _derive

        _derive.cache_clear()
