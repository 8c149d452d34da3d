"""Derivations as chains of named steps: the LSTM gate by gate, a two-layer net, planted defects."""

from __future__ import annotations

import numpy as np
import pytest

from derivcheck.language.declaration import Program
from derivcheck.symbolic.layer_chain import chain_vjp
from derivcheck.language.program import _Chain, derive_program
from derivcheck.catalog.registry import get_layer
from derivcheck.symbolic.presentation import render_derivation
from derivcheck.symbolic.verify import verify_layer
from derivcheck.language.printing import notation


@pytest.fixture(autouse=True)
def _unicode_notation():
    """The pinned texts are the Unicode notation, whatever the encoding of the terminal running the tests."""
    with notation.use("unicode"):
        yield


MLP = Program(
    steps=(("Z1", "X @ W1 + b1"), ("A1", "tanh(Z1)"), ("Z2", "A1 @ W2 + b2")),
    objective="-sum(T * log(softmax(Z2, axis=1))) / N",
    wrt=("W1", "b1", "W2", "b2"),
    shapes={"X": "N x D", "W1": "D x H", "b1": "H", "W2": "H x K", "b2": "K", "T": "N x K onehot"},
)


def test_two_layer_net_reads_as_backprop_with_deltas() -> None:
    d = derive_program(MLP)
    assert d.ok
    lines = {x.lhs.text: x.rhs.text for x in (*d.backward, *d.gradients)}
    assert lines["dZ2"] == "(softmax(Z2) - T) / N"
    assert lines["dA1"] == "dZ2 W2ᵀ"
    assert lines["dZ1"] == "dA1 ⊙ (1 - A1^∘2)"
    assert lines["df/dW1"] == "Xᵀ dZ1" and lines["df/db2"] == "dZ2ᵀ 1_N"


def test_lstm_step_is_derived_gate_by_gate_and_fits_on_a_page() -> None:
    out = render_derivation("lstm_step", "text")
    assert "dA_f    = dF ⊙ F ⊙ (1 - F)" in out
    assert "df/dC   = F ⊙ dC2" in out  # the forget gate's path to the previous cell state
    assert "52 of 52 lines agree with finite differences" in out
    assert len(out.splitlines()) < 60 and len(out) < 4000


def _forward_complex(x, h, c, w, u, b):
    m = h.shape[1]
    a = x @ w + h @ u + b
    sig = lambda z: 0.5 * (1 + np.tanh(0.5 * z))  # noqa: E731
    i, f, o, g = sig(a[:, :m]), sig(a[:, m:2 * m]), sig(a[:, 2 * m:3 * m]), np.tanh(a[:, 3 * m:])
    c2 = f * c + i * g
    return np.stack([o * np.tanh(c2), c2])


def test_lstm_chain_vjp_matches_the_complex_step_of_an_independent_forward() -> None:
    layer = get_layer("lstm_step")
    rng = np.random.default_rng(3)
    n, d, m = 3, 2, 2
    inputs = {"x": rng.standard_normal((n, d)), "h": rng.standard_normal((n, m)), "c": rng.standard_normal((n, m)),
              "w": rng.standard_normal((d, 4 * m)), "u": rng.standard_normal((m, 4 * m)), "b": rng.standard_normal(4 * m)}
    dy = rng.standard_normal((2, n, m))
    grads = chain_vjp(layer, inputs, dy)
    for name, value in inputs.items():
        direction = rng.standard_normal(value.shape)
        moved = {**inputs, name: value + 1e-30j * direction}
        exact = np.sum(dy * _forward_complex(**moved)).imag / 1e-30
        assert np.isclose(np.sum(grads[name] * direction), exact, rtol=1e-12), name


def test_verify_uses_the_chain_and_names_a_wrong_reference() -> None:
    v = verify_layer("lstm_step")
    assert v.ok and all("step-by-step derivation" in r.agreeing for r in v.rows)
    layer = get_layer("lstm_step")

    def wrong(dy, **kw):
        g = layer.backward(dy, **kw)
        g["u"] = g["u"] * 1.01
        return g

    bad = verify_layer("lstm_step", backward=lambda dy, x, h, c, w, u, b: wrong(dy, x=x, h=h, c=c, w=w, u=u, b=b))
    rows = {r.arg: r for r in bad.rows}
    assert rows["u"].disagreeing == ("reference backward",) and rows["w"].ok


def test_a_wrong_backward_line_is_a_defect_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    from derivcheck.language import nodes as n

    real = _Chain.sensitivity

    def planted(self, target, after):
        g = real(self, target, after)
        return n.mul(n.const(2), g) if target == "A1" and g is not None else g  # a forgotten 1/2 somewhere

    monkeypatch.setattr(_Chain, "sensitivity", planted)
    d = derive_program(MLP)
    assert not d.ok and d.code is None
    assert all(x.rhs.text is None and x.rhs.note.startswith("DEFECT") for x in d.backward)
    assert any(c.what == "dA1" and c.ok is False for c in d.checks)


def test_a_value_read_by_two_steps_gets_one_summed_delta() -> None:
    lines = render_derivation("lstm3", "latex").splitlines()
    s2 = [line for line in lines if line.startswith("G_{s2}")]
    assert len(s2) == 2 and s2[1].startswith(r"G_{s2} \mathrel{+}=")
    assert any("s2 is read by 2 steps" in line for line in lines)
    assert not any("g_{qr}" in line for line in lines)  # the upstream entries are named by their matrix


ATTENTION = {"Q": "N x E", "K": "T x E", "V": "T x D", "G": "N x D"}


def test_attention_reads_like_the_textbook() -> None:
    from derivcheck.language.program import derive_steps

    d = derive_steps(["S = Q @ K.T", "P = softmax(S, axis=1)", "Y = P @ V"], "sum(G * Y)", ["Q", "K", "V"], ATTENTION)
    assert d.ok
    lines = {x.lhs.text: x.rhs.text for x in (*d.backward, *d.gradients)}
    assert lines["dP"] == "dY Vᵀ" and lines["dS"] == "P ⊙ (dP - ((dP ⊙ P) 1_T) 1_Tᵀ)"
    assert (lines["df/dQ"], lines["df/dK"], lines["df/dV"]) == ("dS K", "dSᵀ Q", "Pᵀ dY")


def test_layer_norm_with_keepdims_steps_verifies() -> None:
    from derivcheck.language.program import derive_steps

    d = derive_steps(["M = mean(X, axis=1, keepdims=True)", "Xc = X - M", "V = mean(Xc**2, axis=1, keepdims=True)",
                      "R = (V + 0.00001)**-0.5", "Y = Xc * R * gamma + beta"], "sum(G * Y)", ["X", "gamma", "beta"],
                     {"X": "N x D", "gamma": "D", "beta": "D", "G": "N x D"})
    assert d.ok
    lines = {x.lhs.text: x.rhs.text for x in d.gradients}
    assert lines["df/dgamma"] == "(R ⊙ Xc ⊙ dY)ᵀ 1_N" and lines["df/dbeta"] == "dYᵀ 1_N"


@pytest.mark.parametrize(("steps", "message"), [
    (["S Q @ K.T"], "a step reads NAME = EXPRESSION"),
    (["Q = K"], "reuses a declared name"),
    (["S = sum(Q, keepdims=True)"], "keepdims=True needs sum(..., axis=k)"),
    (["S = sum(Q, axis=0, keepdims=maybe)"], "keepdims= must be True or False"),
])
def test_step_errors(steps, message) -> None:
    from derivcheck.errors import ExpressionError
    from derivcheck.language.program import derive_steps

    with pytest.raises(ExpressionError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        derive_steps(steps, "sum(G * (Q @ K.T @ V))", ["Q"], ATTENTION)


def test_cli_derive_expr_with_steps() -> None:
    import os
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "derivcheck", "derive-expr", "sum(G * Y)", "--step", "S = Q @ K.T",
                          "--step", "P = softmax(S, axis=1)", "--step", "Y = P @ V", "--wrt", "Q,K,V",
                          *[x for k, v in ATTENTION.items() for x in ("--let", f"{k}: {v}")]],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    assert out.returncode == 0, out.stderr
    assert "df/dK = dSᵀ Q" in out.stdout and "12 of 12 lines agree" in out.stdout
