"""2-D convolution (cross-correlation, as in the frameworks) with stride, zero padding and bias.

x: N x C x H x S (S is the width), w: F x C x KH x KW, b: F. The index form sums over
channels and kernel offsets; zero padding is a guard on the input's range, so the derived
input gradient is the full correlation with the flipped kernel, its kernel-range guard
derived by SymPy rather than written by hand.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from derivcheck.catalog.declarations import Arg, def_layer


def _windows(x, kh, kw, stride, pad):
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
    return xp, win  # win: N, C, OH, OS, KH, KW (a strided view: no copy)


def _forward(x, w, b, stride, pad):
    _, win = _windows(x, w.shape[2], w.shape[3], stride, pad)
    return np.einsum("ncijuv,fcuv->nfij", win, w, optimize=True) + b[None, :, None, None]


def _backward(dy, x, w, b, stride, pad):
    kh, kw = w.shape[2], w.shape[3]
    xp, win = _windows(x, kh, kw, stride, pad)
    oh, os_ = dy.shape[2], dy.shape[3]
    dw = np.einsum("ncijuv,nfij->fcuv", win, dy, optimize=True)
    db = dy.sum(axis=(0, 2, 3))
    # Each kernel offset (u, v) sends dy back through w[:, :, u, v] to a strided slice of the
    # padded input: a loop over the KH*KW offsets, never over pixels.
    dxp = np.zeros_like(xp, dtype=float)
    for u in range(kh):
        for v in range(kw):
            dxp[:, :, u : u + stride * oh : stride, v : v + stride * os_ : stride] += np.einsum(
                "nfij,fc->ncij", dy, w[:, :, u, v], optimize=True
            )
    dx = dxp[:, :, pad : pad + x.shape[2], pad : pad + x.shape[3]]
    return {"x": dx, "w": dw, "b": db}


def _index_form(s):
    n, f, i, j = s.out
    c, u, v = s.index("c"), s.index("u"), s.index("v")
    # Zero padding is the convention that x is 0 outside its range (see conventions): no
    # guard is needed in the forward, and the backward's kernel-range guard is derived.
    x = s.X[n, c, s.stride * i + u - s.pad, s.stride * j + v - s.pad]
    return s.total(s.W[f, c, u, v] * x, (c, s.C), (u, s.KH), (v, s.KW)) + s.b[f, 0]


conv2d = def_layer(
    "conv2d",
    inputs=(Arg("x", "N C H S"), Arg("w", "F C KH KW"), Arg("b", "F")),
    output="N F OH OS",
    forward=_forward,
    backward=_backward,
    index_form=_index_form,
    hyper={"stride": (1, 2), "pad": (0, 1)},
    shape_rules={
        "OH": lambda s: (s["H"] + 2 * s["pad"] - s["KH"]) // s["stride"] + 1,
        "OS": lambda s: (s["S"] + 2 * s["pad"] - s["KW"]) // s["stride"] + 1,
    },
    valid_sizes=lambda s: s["H"] + 2 * s["pad"] >= s["KH"] and s["S"] + 2 * s["pad"] >= s["KW"],
    max_side=3,
    question="Which kernel orientation does the conv backward use, and where does the bias gradient sum? "
    "(A conv layer with F filters of C x KH x KW has F*C*KH*KW weights and F biases.)",
    conventions=(
        "cross-correlation (no kernel flip in the forward), as in PyTorch and TensorFlow",
        "zero padding: entries of x outside 0..H-1 x 0..S-1 are 0",
    ),
)
