"""Fully connected layer over a batch: Y = X W + 1 b^T."""

from __future__ import annotations

import sympy as sp

from derivcheck.catalog.declarations import Arg, def_layer


def _forward(x, w, b):
    return x @ w + b


def _backward(dy, x, w, b):
    # Matrix Cookbook (69)-(71); the bias gradient sums the rows of dy: b is added to every sample.
    return {"x": dy @ w.T, "w": x.T @ dy, "b": dy.sum(axis=0)}


def _index_form(s):
    n, m = s.out
    d = s.index("d")
    return s.total(s.X[n, d] * s.W[d, m], (d, s.D)) + s.b[m, 0]


dense = def_layer(
    "dense",
    inputs=(Arg("x", "N D"), Arg("w", "D M"), Arg("b", "M")),
    output="N M",
    forward=_forward,
    backward=_backward,
    index_form=_index_form,
    matrix_forward=lambda s: s.X * s.W + sp.OneMatrix(s.N, 1) * s.b.T,
    question="Why is the bias gradient a sum over the batch axis? How does dE/dW_pq = sum_n x_np delta_nq become X^T Delta?",
    reference="Matrix Cookbook (69)-(71)",
)
