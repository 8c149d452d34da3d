"""Softmax and log-softmax over the last axis of a batch."""

from __future__ import annotations

import numpy as np
import sympy as sp

from derivcheck.catalog.declarations import Arg, def_layer


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _softmax_index(s):
    n, k = s.out
    j = s.index("j")
    return sp.exp(s.X[n, k]) / s.total(sp.exp(s.X[n, j]), (j, s.K))


def _log_softmax_index(s):
    n, k = s.out
    j = s.index("j")
    return s.X[n, k] - sp.log(s.total(sp.exp(s.X[n, j]), (j, s.K)))


softmax = def_layer(
    "softmax",
    inputs=(Arg("x", "N K"),),
    output="N K",
    forward=_softmax,
    # dx = y * (dy - sum_k dy_k y_k): the Jacobian diag(y) - y y^T applied to dy, row by row.
    backward=lambda dy, x: {"x": (y := _softmax(x)) * (dy - (dy * y).sum(axis=-1, keepdims=True))},
    index_form=_softmax_index,
    question="What is the softmax Jacobian, and why does its VJP need a row sum?",
)

log_softmax = def_layer(
    "log_softmax",
    inputs=(Arg("x", "N K"),),
    output="N K",
    forward=lambda x: x - x.max(axis=-1, keepdims=True) - np.log(np.exp(x - x.max(axis=-1, keepdims=True)).sum(axis=-1, keepdims=True)),
    backward=lambda dy, x: {"x": dy - _softmax(x) * dy.sum(axis=-1, keepdims=True)},
    index_form=_log_softmax_index,
)
