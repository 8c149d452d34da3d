"""Flatten: a feature map (N, C, H, S) as rows of length F = C H S, so that a dense layer can follow a pool."""

from __future__ import annotations

import sympy as sp

from derivcheck.catalog.declarations import Arg, def_layer


def _flatten_index(s):
    n, j = s.out
    c, h, w = s.index("c"), s.index("h"), s.index("w")
    # Row-major (C order): entry (c, h, w) of a sample is column c H S + h S + w.
    column = c * s.H * s.S + h * s.S + w
    return s.total(s.X[n, c, h, w] * sp.KroneckerDelta(column, j), (w, s.S), (h, s.H), (c, s.C))


flatten = def_layer(
    "flatten",
    inputs=(Arg("x", "N C H S"),),
    output="N F",
    forward=lambda x: x.reshape(x.shape[0], -1),
    backward=lambda dy, x: {"x": dy.reshape(x.shape)},
    index_form=_flatten_index,
    shape_rules={"F": lambda s: s["C"] * s["H"] * s["S"]},
    max_side=3,
    question="How does the gradient get from a dense layer back into a pooled feature map?",
    conventions=("row-major (C order) flattening: entry (c, h, w) of a sample is column c*H*S + h*S + w, so the "
                 "gradient is G reshaped to the map's shape",),
)
