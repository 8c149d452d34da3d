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
    assert lines["∂f/∂W1"] == "Xᵀ dZ1" and lines["∂f/∂b2"] == "dZ2ᵀ 1_N"


def test_lstm_step_is_derived_gate_by_gate_and_fits_on_a_page() -> None:
    out = render_derivation("lstm_step", "text")
    assert "dA_f    = dF ⊙ F ⊙ (1 - F)" in out
    assert "∂f/∂C   = F ⊙ dC2" in out  # the forget gate's path to the previous cell state
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
    assert (lines["∂f/∂Q"], lines["∂f/∂K"], lines["∂f/∂V"]) == ("dS K", "dSᵀ Q", "Pᵀ dY")


def test_every_line_has_its_index_form_in_the_textbook_notation_read_back_in_the_run() -> None:
    """∂f/∂Q_ij for a gradient, dS_ij for a sensitivity; entries chained as the matrix product reads (dS K); in
    ASCII df/dQ_ij and sum_t. The run's check reads each printed line back, so a printed slip would be a defect."""
    from derivcheck.language.program import derive_steps

    steps = ["S = Q @ K.T", "P = softmax(S, axis=1)", "Y = P @ V"]
    d = derive_steps(steps, "sum(G * Y)", ["Q", "K", "V"], ATTENTION)
    index = [x.index.text for x in (*d.backward, *d.gradients)]
    assert index == ["dY_ij = G_ij", "dP_ij = Σ_d dY_id V_jd", "dS_ij = (dP_ij - Σ_t P_it dP_it) P_ij",
                     "∂f/∂Q_ij = Σ_t dS_it K_tj", "∂f/∂K_ij = Σ_n dS_ni Q_nj", "∂f/∂V_ij = Σ_n P_ni dY_nj"]
    assert d.gradients[0].index.latex == r"\frac{\partial f}{\partial Q_{ij}} = \sum_{t} \bar{S}_{it}\,K_{tj}"
    assert any(c.what == "index forms of every line" and c.ok for c in d.checks)
    with notation.use("ascii"):
        ascii_lines = [x.index.text for x in derive_steps(steps, "sum(G * Y)", ["Q"], ATTENTION).gradients]
    assert ascii_lines == ["df/dQ_ij = sum_t dS_it K_tj"]


def test_a_line_whose_index_form_does_not_read_back_is_a_defect(monkeypatch: pytest.MonkeyPatch) -> None:
    """A printer slip (a subscript lost) is caught by reading the printed text back, never shown."""
    import derivcheck.language.program as program

    real = program.IndexText.doprint
    monkeypatch.setattr(program.IndexText, "doprint", lambda self, e: real(self, e).replace("K_tj", "K_t"))
    d = program.derive_steps(["S = Q @ K.T", "P = softmax(S, axis=1)", "Y = P @ V"], "sum(G * Y)", ["Q"], ATTENTION)
    bad = [c for c in d.checks if c.what == "index forms of every line"]
    assert not d.ok and bad[0].ok is False and "K is T x E: its entries take 2 indices" in bad[0].detail


def test_a_gradient_that_is_zero_prints_as_a_zero_matrix_of_its_shape() -> None:
    """V is declared but unused: its gradient is 0_{D×M}, never a bare 0 that reads as a number; its code runs."""
    from derivcheck.language.program import derive_steps

    d = derive_steps(["Z = X @ W"], "sum(Z)", ["W", "V"], {"X": "N x D", "W": "D x M", "V": "D x M"})
    assert d.ok  # the generated code ran (it once read the size D before any line asked for it)
    zero = d.gradients[1]
    assert (zero.lhs.text, zero.rhs.text, zero.rhs.latex) == ("∂f/∂V", "0_{D×M}", r"\mathbf{0}_{D \times M}")
    assert zero.index.text == "∂f/∂V_ij = 0"
