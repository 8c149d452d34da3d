"""Embedding lookup: y[n] = W[ids[n]]. The gradient scatter-adds rows: repeated ids accumulate."""

from __future__ import annotations

import numpy as np
import sympy as sp

from derivcheck.catalog.declarations import Arg, def_layer


def _backward(dy, ids, w):
    dw = np.zeros_like(w, dtype=float)
    # np.add.at accumulates over repeated ids; dw[ids] += dy would keep only the last one.
    np.add.at(dw, ids, dy)
    return {"w": dw}


def _index_form(s):
    n, d = s.out
    v = s.index("v")
    # Row ids[n] of W, written as a sum over the vocabulary with an indicator of the id.
    return s.total(sp.KroneckerDelta(s.ids[n, 0], v) * s.W[v, d], (v, s.V))


embedding = def_layer(
    "embedding",
    inputs=(Arg("ids", "N", domain="index", differentiable=False, upper="V"), Arg("w", "V D")),
    output="N D",
    forward=lambda ids, w: w[ids],
    backward=_backward,
    index_form=_index_form,
    question="Why must the embedding gradient use a scatter-add (np.add.at) when ids repeat?",
)
