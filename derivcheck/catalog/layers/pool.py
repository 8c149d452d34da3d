"""Pooling over square windows with a stride (windows may overlap), and global average pooling."""

from __future__ import annotations

import numpy as np
import sympy as sp
from numpy.lib.stride_tricks import sliding_window_view

from derivcheck.catalog.declarations import Arg, def_layer

_POOL_SHAPES = {
    "OH": lambda s: (s["H"] - s["kernel"]) // s["stride"] + 1,
    "OS": lambda s: (s["S"] - s["kernel"]) // s["stride"] + 1,
}


def _valid(s):
    return s["H"] >= s["kernel"] and s["S"] >= s["kernel"]


# Square windows with a stride, no padding: shared by max- and average-pooling.
_WINDOWS = {
    "inputs": (Arg("x", "N C H S"),),
    "output": "N C OH OS",
    "hyper": {"kernel": (2, 3), "stride": (1, 2)},
    "shape_rules": _POOL_SHAPES,
    "valid_sizes": _valid,
    "max_side": 4,
}


def _windows(x, kernel, stride):
    return sliding_window_view(x, (kernel, kernel), axis=(2, 3))[:, :, ::stride, ::stride]


def _scatter(dx, dy, rows, cols):
    # np.add.at accumulates where overlapping windows pick the same input pixel.
    n, c = np.indices(dy.shape[:2])
    np.add.at(dx, (n[:, :, None, None], c[:, :, None, None], rows, cols), dy)


def _first_argmax(x, kernel, stride):
    win = _windows(x, kernel, stride)
    flat = win.reshape(*win.shape[:4], kernel * kernel)
    return flat.argmax(axis=-1)  # ties: the first position in row-major window order


def _max_forward(x, kernel, stride):
    return _windows(x, kernel, stride).max(axis=(-2, -1))


def _max_backward(dy, x, kernel, stride):
    arg = _first_argmax(x, kernel, stride)
    oh, os_ = dy.shape[2], dy.shape[3]
    rows = stride * np.arange(oh)[:, None] + arg // kernel
    cols = stride * np.arange(os_)[None, :] + arg % kernel
    dx = np.zeros_like(x, dtype=float)
    _scatter(dx, dy, rows, cols)
    return {"x": dx}


def _winner_numeric(arrays, sizes):
    arg = _first_argmax(np.asarray(arrays["x"], dtype=float), int(sizes["kernel"]), int(sizes["stride"]))
    k = int(sizes["kernel"])
    return lambda n, c, i, j, u, v: 1.0 if arg[n, c, i, j] == u * k + v else 0.0


def _max_index_form(s):
    n, c, i, j = s.out
    u, v = s.index("u"), s.index("v")
    # winner(...) = 1 for the window's first arg-max, else 0: piecewise constant in x, so
    # its derivative is 0 wherever the maximum is unique, and the gradient is routed.
    winner = sp.Function("winner")(n, c, i, j, u, v)
    return s.total(winner * s.X[n, c, s.stride * i + u, s.stride * j + v], (u, s.kernel), (v, s.kernel))


maxpool2d = def_layer(
    "maxpool2d",
    forward=_max_forward,
    backward=_max_backward,
    index_form=_max_index_form,
    **_WINDOWS,
    functions={"winner": _winner_numeric},
    definitions={"winner": "winner(n, c, i, j, u, v) = 1 if (u, v) is the first arg-max (row-major) of window (i, j) "
                           "of x[n, c], else 0"},
    question="How does the gradient pass through max-pooling, and what about ties?",
    conventions=(
        "the gradient goes to the first arg-max of each window (row-major order); at exact ties any "
        "convex combination of the tied positions is a valid subgradient, and derivcheck's checker accepts any",
    ),
)


def _avg_backward(dy, x, kernel, stride):
    oh, os_ = dy.shape[2], dy.shape[3]
    dx = np.zeros_like(x, dtype=float)
    share = dy / (kernel * kernel)
    for u in range(kernel):  # a loop over kernel offsets, never over pixels
        for v in range(kernel):
            dx[:, :, u : u + stride * oh : stride, v : v + stride * os_ : stride] += share
    return {"x": dx}


def _avg_index_form(s):
    n, c, i, j = s.out
    u, v = s.index("u"), s.index("v")
    return s.total(s.X[n, c, s.stride * i + u, s.stride * j + v], (u, s.kernel), (v, s.kernel)) / s.kernel**2


avgpool2d = def_layer(
    "avgpool2d",
    forward=lambda x, kernel, stride: _windows(x, kernel, stride).mean(axis=(-2, -1)),
    backward=_avg_backward,
    index_form=_avg_index_form,
    **_WINDOWS,
)


global_avgpool = def_layer(
    "global_avgpool",
    inputs=(Arg("x", "N C H S"),),
    output="N C",
    forward=lambda x: x.mean(axis=(2, 3)),
    backward=lambda dy, x: {"x": np.broadcast_to(dy[:, :, None, None], x.shape) / (x.shape[2] * x.shape[3])},
    index_form=lambda s: s.total(s.X[s.out[0], s.out[1], s.index("h"), s.index("w")], (s.index("h"), s.H), (s.index("w"), s.S)) / (s.H * s.S),
    max_side=4,
)
