"""Elementwise activations: y = f(x) entry by entry, so the VJP is dy * f'(x)."""

from __future__ import annotations

import numpy as np
import sympy as sp

from derivcheck.catalog.declarations import def_elementwise


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


sigmoid = def_elementwise(
    "sigmoid",
    lambda x: _sigmoid(x),
    lambda x, y: y * (1 - y),
    lambda z, s: 1 / (1 + sp.exp(-z)),
    question="Why is sigma'(z) = sigma(z)(1 - sigma(z))?",
)

tanh = def_elementwise("tanh", lambda x: np.tanh(x), lambda x, y: 1 - y**2, lambda z, s: sp.tanh(z))

# ReLU'(0) = 0 by convention, as in the frameworks; SymPy's Max(x, 0) would give Heaviside(0) = 1/2.
# Inputs keep away from 0 here; the checker's kink handling is tested at exactly 0 separately.
relu = def_elementwise(
    "relu",
    lambda x: np.maximum(x, 0),
    lambda x, y: (x > 0).astype(float),
    lambda z, s: sp.Piecewise((z, z > 0), (0, True)),
    domain="away_from_zero",
    question="What is the derivative (and second derivative) of ReLU?",
    conventions=("ReLU'(0) = 0 (frameworks' convention; any value in [0, 1] is a valid subgradient)",),
)

leaky_relu = def_elementwise(
    "leaky_relu",
    lambda x, alpha: np.where(x > 0, x, alpha * x),
    lambda x, y, alpha: np.where(x > 0, 1.0, alpha),
    lambda z, s: sp.Piecewise((z, z > 0), (s.alpha * z, True)),
    domain="away_from_zero",
    constants={"alpha": 0.01},
    conventions=("leaky ReLU'(0) = alpha",),
)

elu = def_elementwise(
    "elu",
    lambda x, alpha: np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0))),
    lambda x, y, alpha: np.where(x > 0, 1.0, alpha * np.exp(np.minimum(x, 0))),
    lambda z, s: sp.Piecewise((z, z > 0), (s.alpha * (sp.exp(z) - 1), True)),
    domain="away_from_zero",
    constants={"alpha": 1.0},
    conventions=("ELU'(0) = alpha (the left derivative; equal to the right one when alpha = 1)",),
)

softplus = def_elementwise(
    "softplus",
    lambda x: np.logaddexp(0, x),
    lambda x, y: _sigmoid(x),
    lambda z, s: sp.log(1 + sp.exp(z)),
    question="Why is the derivative of softplus the sigmoid?",
)
