"""Recurrent cells: a tanh RNN step and an LSTM step (gates i, f, o and candidate g).

The LSTM's four gates share combined weights, W: D x 4M and U: M x 4M with the gates in
the order i, f, o, g along the columns; its output stacks the new hidden and cell states,
y[0] = h' and y[1] = c', so that one layer carries both paths (the forget gate's path
runs through the cell state).
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from derivcheck.language.declaration import LayerChain, Program
from derivcheck.catalog.declarations import Arg, def_layer


def _rnn_forward(x, h, wx, wh, b):
    return np.tanh(x @ wx + h @ wh + b)


def _rnn_backward(dy, x, h, wx, wh, b):
    dz = dy * (1 - _rnn_forward(x, h, wx, wh, b) ** 2)
    return {"x": dz @ wx.T, "h": dz @ wh.T, "wx": x.T @ dz, "wh": h.T @ dz, "b": dz.sum(axis=0)}


def _rnn_index(s):
    n, m = s.out
    d, k = s.index("d"), s.index("k")
    z = s.total(s.X[n, d] * s.WX[d, m], (d, s.D)) + s.total(s.H[n, k] * s.WH[k, m], (k, s.M)) + s.b[m, 0]
    return sp.tanh(z)


rnn_step = def_layer(
    "rnn_step",
    inputs=(Arg("x", "N D"), Arg("h", "N M"), Arg("wx", "D M"), Arg("wh", "M M"), Arg("b", "M")),
    output="N M",
    forward=_rnn_forward,
    backward=_rnn_backward,
    index_form=_rnn_index,
    matrix_forward=lambda s: (s.X * s.WX + s.H * s.WH + sp.OneMatrix(s.N, 1) * s.b.T).applyfunc(sp.tanh),
    max_side=3,
    question="Backprop through one tanh RNN step: h' = tanh(x Wx + h Wh + b).",
)


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _lstm_gates(x, h, w, u, b):
    m = h.shape[1]
    a = x @ w + h @ u + b
    i, f, o = _sigmoid(a[:, :m]), _sigmoid(a[:, m : 2 * m]), _sigmoid(a[:, 2 * m : 3 * m])
    g = np.tanh(a[:, 3 * m :])
    return i, f, o, g


def _lstm_forward(x, h, c, w, u, b):
    i, f, o, g = _lstm_gates(x, h, w, u, b)
    c2 = f * c + i * g
    return np.stack([o * np.tanh(c2), c2])


def _lstm_backward(dy, x, h, c, w, u, b):
    # Hochreiter & Schmidhuber (1997); the cell state receives dh' through tanh and its own dc'.
    i, f, o, g = _lstm_gates(x, h, w, u, b)
    c2 = f * c + i * g
    t = np.tanh(c2)
    dh2, dc2 = dy[0], dy[1]
    dc = dc2 + dh2 * o * (1 - t**2)
    da = np.concatenate([dc * g * i * (1 - i), dc * c * f * (1 - f), dh2 * t * o * (1 - o), dc * i * (1 - g**2)], axis=1)
    return {"x": da @ w.T, "h": da @ u.T, "c": dc * f, "w": x.T @ da, "u": h.T @ da, "b": da.sum(axis=0)}


def _lstm_index(s):
    part, n, j = s.out
    d, k = s.index("d"), s.index("k")

    def gate(block):
        col = block * s.M + j
        return s.total(s.X[n, d] * s.W[d, col], (d, s.D)) + s.total(s.H[n, k] * s.U[k, col], (k, s.M)) + s.b[col, 0]

    def sig(z):
        return 1 / (1 + sp.exp(-z))

    c2 = sig(gate(1)) * s.C[n, j] + sig(gate(0)) * sp.tanh(gate(3))
    h2 = sig(gate(2)) * sp.tanh(c2)
    return sp.KroneckerDelta(part, 0) * h2 + sp.KroneckerDelta(part, 1) * c2


_GATES = ("i", "f", "o", "g")
# The same step from primitives: dense maps per gate, sigmoid/tanh, Hadamard products.
_LSTM_CHAIN = LayerChain(
    Program(
        steps=(
            *[(f"A_{g}", f"X @ W_{g} + H @ U_{g} + b_{g}") for g in _GATES],
            ("I", "sigmoid(A_i)"), ("F", "sigmoid(A_f)"), ("O", "sigmoid(A_o)"), ("Gt", "tanh(A_g)"),
            ("C2", "F * C + I * Gt"), ("T2", "tanh(C2)"), ("H2", "O * T2"),
        ),
        objective="sum(G_h * H2) + sum(G_c * C2)",
        wrt=("X", "H", "C", *[f"{p}_{g}" for g in _GATES for p in ("W", "U", "b")]),
        shapes={"X": "N x D", "H": "N x M", "C": "N x M", "G_h": "N x M", "G_c": "N x M",
                **{f"W_{g}": "D x M" for g in _GATES}, **{f"U_{g}": "M x M" for g in _GATES},
                **{f"b_{g}": "M" for g in _GATES}},
    ),
    arguments={"x": ("X",), "h": ("H",), "c": ("C",), "w": tuple(f"W_{g}" for g in _GATES),
               "u": tuple(f"U_{g}" for g in _GATES), "b": tuple(f"b_{g}" for g in _GATES)},
    upstream=("G_h", "G_c"),
    notes=("W = [W_i W_f W_o W_g], U and b likewise: the gates are blocks of columns, and so are their gradients",
           "f = <G_h, H2> + <G_c, C2>: G_h and G_c are the gradients arriving at h' and c'"),
)

lstm_step = def_layer(
    "lstm_step",
    inputs=(Arg("x", "N D"), Arg("h", "N M"), Arg("c", "N M"), Arg("w", "D Q"), Arg("u", "M Q"), Arg("b", "Q")),
    output="L N M",
    forward=_lstm_forward,
    backward=_lstm_backward,
    index_form=_lstm_index,
    sizes={"L": 2},
    shape_rules={"Q": lambda s: 4 * s["M"]},
    max_side=3,
    question="Backprop through an LSTM step: where does the forget gate's gradient come from?",
    conventions=("gates along the columns of W, U, b in the order i, f, o, g; y[0] = h', y[1] = c'",),
    chain=_LSTM_CHAIN,
)
