"""Losses: scalar outputs, so their derivations have no upstream gradient (E itself)."""

from __future__ import annotations

import numpy as np
import sympy as sp

from derivcheck.catalog.declarations import Arg, def_layer


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _ce_forward(z, t):
    zs = z - z.max(axis=-1, keepdims=True)
    logp = zs - np.log(np.exp(zs).sum(axis=-1, keepdims=True))
    return -np.sum(t * logp) / z.shape[0]


def _ce_index(s):
    n, k, j = s.index("n"), s.index("k"), s.index("j")
    log_p = s.Z[n, k] - sp.log(s.total(sp.exp(s.Z[n, j]), (j, s.K)))
    return -s.total(s.T[n, k] * log_p, (n, s.N), (k, s.K)) / s.N


softmax_cross_entropy = def_layer(
    "softmax_cross_entropy",
    inputs=(Arg("z", "N K"), Arg("t", "N K", domain="probability_rows", differentiable=False)),
    output="",
    forward=_ce_forward,
    backward=lambda dy, z, t: {"z": dy * (_softmax(z) - t) / z.shape[0]},
    index_form=_ce_index,
    row_sums_to_one=("t",),
    question="What is the gradient of softmax + cross-entropy, and why is it p - y?",
    conventions=("targets t are one-hot or probability rows: sum_k t_nk = 1 (used in the derivation)",),
)


def _squared_error_index(scale):
    def index_form(s):
        n, m = s.index("n"), s.index("m")
        return scale(s) * s.total((s.Y[n, m] - s.T[n, m]) ** 2, (n, s.N), (m, s.M))

    return index_form


mse = def_layer(
    "mse",
    inputs=(Arg("y", "N M"), Arg("t", "N M", differentiable=False)),
    output="",
    forward=lambda y, t: np.mean((y - t) ** 2),
    backward=lambda dy, y, t: {"y": dy * 2 * (y - t) / y.size},
    index_form=_squared_error_index(lambda s: 1 / (s.N * s.M)),
    question="Why is my gradient off by a factor of two? (d/dy (y - t)^2 = 2 (y - t))",
)

half_sse = def_layer(
    "half_sse",
    inputs=(Arg("y", "N M"), Arg("t", "N M", differentiable=False)),
    output="",
    forward=lambda y, t: 0.5 * np.sum((y - t) ** 2),
    backward=lambda dy, y, t: {"y": dy * (y - t)},
    index_form=_squared_error_index(lambda s: sp.Rational(1, 2)),
    question="Why do textbooks put 1/2 in front of the squared error?",
)


def _bce_index(s):
    n, m = s.index("n"), s.index("m")
    p, t = s.P[n, m], s.T[n, m]
    return -s.total(t * sp.log(p) + (1 - t) * sp.log(1 - p), (n, s.N), (m, s.M)) / s.N


binary_cross_entropy = def_layer(
    "binary_cross_entropy",
    inputs=(Arg("p", "N M", domain="unit_interval"), Arg("t", "N M", domain="binary", differentiable=False)),
    output="",
    forward=lambda p, t: -np.sum(t * np.log(p) + (1 - t) * np.log(1 - p)) / p.shape[0],
    backward=lambda dy, p, t: {"p": dy * (p - t) / (p * (1 - p)) / p.shape[0]},
    index_form=_bce_index,
    question="What is the gradient of binary cross-entropy with respect to the predicted probability?",
)


def _bce_logits_index(s):
    n, m = s.index("n"), s.index("m")
    z, t = s.Z[n, m], s.T[n, m]
    return s.total(sp.log(1 + sp.exp(z)) - t * z, (n, s.N), (m, s.M)) / s.N


binary_cross_entropy_with_logits = def_layer(
    "binary_cross_entropy_with_logits",
    inputs=(Arg("z", "N M"), Arg("t", "N M", domain="binary", differentiable=False)),
    output="",
    # log(1 + e^z) - t z, computed without overflow.
    forward=lambda z, t: np.sum(np.logaddexp(0, z) - t * z) / z.shape[0],
    backward=lambda dy, z, t: {"z": dy * (1 / (1 + np.exp(-z)) - t) / z.shape[0]},
    index_form=_bce_logits_index,
    question="Why does sigmoid + binary cross-entropy collapse to sigma(z) - t?",
)
