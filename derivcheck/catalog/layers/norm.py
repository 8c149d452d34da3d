"""Batch normalization in training mode: statistics over the batch axis, then gamma and beta."""

from __future__ import annotations

import numpy as np
import sympy as sp

from derivcheck.catalog.declarations import Arg, def_layer


def _forward(x, gamma, beta, eps):
    mu = x.mean(axis=0)
    var = x.var(axis=0)
    return gamma * (x - mu) / np.sqrt(var + eps) + beta


def _backward(dy, x, gamma, beta, eps):
    # Ioffe & Szegedy (2015), with the mean and variance paths folded together:
    # dx = gamma / sigma * (dy - mean(dy) - xhat * mean(dy * xhat)).
    mu = x.mean(axis=0)
    sigma = np.sqrt(x.var(axis=0) + eps)
    xhat = (x - mu) / sigma
    dxhat = dy * gamma
    dx = (dxhat - dxhat.mean(axis=0) - xhat * (dxhat * xhat).mean(axis=0)) / sigma
    return {"x": dx, "gamma": (dy * xhat).sum(axis=0), "beta": dy.sum(axis=0)}


def _index_form(s):
    n, d = s.out
    k, j = s.index("k"), s.index("j")
    mu = s.total(s.X[k, d], (k, s.N)) / s.N
    mu_j = s.total(s.X[k, d], (k, s.N)) / s.N
    var = s.total((s.X[j, d] - mu_j) ** 2, (j, s.N)) / s.N
    return s.gamma[d, 0] * (s.X[n, d] - mu) / sp.sqrt(var + s.eps) + s.beta[d, 0]


batchnorm = def_layer(
    "batchnorm",
    inputs=(Arg("x", "N D"), Arg("gamma", "D"), Arg("beta", "D")),
    output="N D",
    forward=_forward,
    backward=_backward,
    index_form=_index_form,
    constants={"eps": 1e-3},
    question="Batch norm's backward: where do the mean and variance paths go?",
    valid_sizes=lambda s: s["N"] >= 2,
    steps=("M = mean(X, axis=0, keepdims=True)", "Xc = X - M", "V = mean(Xc**2, axis=0, keepdims=True)",
           "Xh = Xc / sqrt(V + eps)", "Y = gamma * Xh + beta"),
)
