"""Whole-network backward passes with one planted slip each, for ``blame_lines``.

Each network takes ``bug``: True runs the slip, False its correct twin. The truth of a case is
the planted line (a substring of its source), the variable it assigns and the kind of slip; it
comes from here, never from derivcheck. Styles: flat functions recomputing the forward, a
cs231n-style class whose ``loss(X, y)`` returns ``(loss, grads)``, layer function pairs
``forward -> (out, cache)`` / ``backward(dout, cache)``, recurrent loops over time, and stateful
layer objects with ``forward``/``backward`` methods. Sizes stay small (3-10).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class LineCase:
    name: str
    style: str
    loss: Callable[[Any], float]
    grad: Callable[[Any], Any]
    params: Any
    line: str | None  # a substring of the planted line's source; None: a correct twin
    variable: str | None
    cause: str | None  # the slip's kind


_RNG = np.random.default_rng(20261219)


def _r(*shape: int) -> np.ndarray:
    return _RNG.standard_normal(shape)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# --- flat functions (forum style) -----------------------------------------------------------------

X = _r(5, 3)
Y = _RNG.random((5, 2))
LABELS = np.array([0, 2, 1, 2, 0, 1])
X6 = _r(6, 3)
P2 = {"W1": _r(3, 4), "b1": _r(4), "W2": _r(4, 2), "b2": _r(2)}


def two_layer_sigmoid(p, bug, variant):
    z1 = X @ p["W1"] + p["b1"]
    h1 = sigmoid(z1)
    z2 = h1 @ p["W2"] + p["b2"]
    h2 = sigmoid(z2)
    loss = 0.5 * np.sum((h2 - Y) ** 2)
    if bug is None:
        return loss
    dh2 = h2 - Y
    if bug and variant == "error":
        dz2 = dh2 * (1 - dh2)
    elif bug and variant == "preact":
        dz2 = dh2 * z2 * (1 - z2)
    else:
        dz2 = dh2 * h2 * (1 - h2)
    dW2 = h1.T @ dz2
    db2 = dz2.sum(axis=0)
    dh1 = dz2 @ p["W2"].T
    dz1 = dh1 * h1 * (1 - h1)
    return {"W1": X.T @ dz1, "b1": dz1.sum(axis=0), "W2": dW2, "b2": db2}


P3 = {"W1": _r(3, 4), "W2": _r(4, 4), "W3": _r(4, 2)}


def three_layer_sigmoid(p, bug):
    h1 = sigmoid(X @ p["W1"])
    h2 = sigmoid(h1 @ p["W2"])
    h3 = sigmoid(h2 @ p["W3"])
    if bug is None:
        return np.sum((h3 - Y) ** 2)
    if bug:
        dh3 = h3 - Y
    else:
        dh3 = 2 * (h3 - Y)
    dz3 = dh3 * h3 * (1 - h3)
    dh2 = dz3 @ p["W3"].T
    dz2 = dh2 * h2 * (1 - h2)
    dh1 = dz2 @ p["W2"].T
    dz1 = dh1 * h1 * (1 - h1)
    return {"W1": X.T @ dz1, "W2": h1.T @ dz2, "W3": h2.T @ dz3}


XOR_X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_Y = np.array([[0.0], [1.0], [1.0], [0.0]])
PX = {"W1": _r(2, 3), "b1": _r(3), "W2": _r(3, 1), "b2": _r(1)}


def xor_net(p, bug):
    z1 = XOR_X @ p["W1"] + p["b1"]
    a1 = sigmoid(z1)
    z2 = a1 @ p["W2"] + p["b2"]
    a2 = sigmoid(z2)
    if bug is None:
        return 0.5 * np.sum((a2 - XOR_Y) ** 2)
    delta2 = (a2 - XOR_Y) * a2 * (1 - a2)
    err1 = delta2 @ p["W2"].T
    if bug:
        delta1 = err1
    else:
        delta1 = err1 * a1 * (1 - a1)
    return {"W1": XOR_X.T @ delta1, "b1": delta1.sum(axis=0), "W2": a1.T @ delta2, "b2": delta2.sum(axis=0)}


PR = {"W1": _r(3, 5), "W2": _r(5, 3)}


def relu_softmax(p, bug, variant, reg=0.1):
    N = X6.shape[0]
    W1, W2 = p["W1"], p["W2"]
    z1 = X6 @ W1
    h1 = np.maximum(z1, 0)
    scores = h1 @ W2
    probs = softmax(scores)
    loss = -np.mean(np.log(probs[np.arange(N), LABELS])) + 0.5 * reg * np.sum(W2 * W2)
    if bug is None:
        return loss
    onehot = np.eye(3)[LABELS]
    if bug and variant == "no_1_over_n":
        dscores = probs - onehot
    else:
        dscores = (probs - onehot) / N
    if bug and variant == "no_reg":
        dW2 = h1.T @ dscores
    else:
        dW2 = h1.T @ dscores + reg * W2
    dh1 = dscores @ W2.T
    if bug and variant == "forgot_relu":
        dz1 = dh1
    else:
        dz1 = dh1 * (z1 > 0)
    return {"W1": X6.T @ dz1, "W2": dW2}


PT = {"W1": _r(3, 4), "W2": _r(4, 4)}


def tanh_square(p, bug, variant):
    z1 = X @ p["W1"]
    a1 = np.tanh(z1)
    z2 = a1 @ p["W2"]
    if bug is None:
        return 0.5 * np.sum(z2 ** 2)
    dz2 = z2
    if bug and variant == "transpose":
        da1 = dz2 @ p["W2"]
    else:
        da1 = dz2 @ p["W2"].T
    if bug and variant == "preact":
        dz1 = da1 * (1 - z1 ** 2)
    else:
        dz1 = da1 * (1 - a1 ** 2)
    return {"W1": X.T @ dz1, "W2": a1.T @ dz2}


PS = {"W": _r(3, 3)}
TEMPERATURE = 2.5


def temperature_softmax(p, bug):
    N = X6.shape[0]
    T = TEMPERATURE
    z = X6 @ p["W"]
    probs = softmax(z / T)
    if bug is None:
        return -np.mean(np.log(probs[np.arange(N), LABELS]))
    onehot = np.eye(3)[LABELS]
    if bug:
        dz = (probs - onehot) / N
    else:
        dz = (probs - onehot) / (N * T)
    return {"W": X6.T @ dz}


XL = _r(7, 3)
YL = _r(7)
PL = {"w": _r(3, 1)}


def broadcast_loss(p, bug):
    m = XL.shape[0]
    yhat = XL @ p["w"]
    if bug is None:
        return np.mean((yhat[:, 0] - YL) ** 2)
    if bug:
        dyhat = 2 * (yhat - YL) / m
    else:
        dyhat = 2 * (yhat - YL[:, None]) / m
    return {"w": XL.T @ dyhat}


CLASS_WEIGHTS = np.array([0.5, 2.0, 1.5])
PW = {"W": _r(3, 3)}


def weighted_softmax(p, bug):
    N = X6.shape[0]
    y = LABELS
    cw = CLASS_WEIGHTS
    z = X6 @ p["W"]
    probs = softmax(z)
    if bug is None:
        return -np.sum(cw[y] * np.log(probs[np.arange(N), y])) / N
    onehot = np.eye(3)[y]
    if bug:
        dz = (probs - onehot) * cw / N
    else:
        dz = (probs - onehot) * cw[y][:, None] / N
    return {"W": X6.T @ dz}


PG = {"W1": _r(3, 4), "W2": _r(4, 2)}


def gelu_net(p, bug):
    c = np.sqrt(2 / np.pi)
    z = X @ p["W1"]
    h = 0.5 * z * (1 + np.tanh(c * (z + 0.044715 * z ** 3)))
    out = h @ p["W2"]
    if bug is None:
        return 0.5 * np.sum((out - Y) ** 2)
    dout = out - Y
    dh = dout @ p["W2"].T
    if bug:
        s = 1 / (1 + np.exp(-1.702 * z))
        dz = dh * (s + 1.702 * z * s * (1 - s))
    else:
        t = np.tanh(c * (z + 0.044715 * z ** 3))
        dz = dh * (0.5 * (1 + t) + 0.5 * z * (1 - t ** 2) * c * (1 + 3 * 0.044715 * z ** 2))
    return {"W1": X.T @ dz, "W2": h.T @ dout}


PM = {"W": _r(3, 3)}


def softmax_mse(p, bug):
    z = X6 @ p["W"]
    s = softmax(z)
    target = np.eye(3)[LABELS]
    if bug is None:
        return 0.5 * np.sum((s - target) ** 2)
    ds = s - target
    if bug:
        dz = ds * s * (1 - s)
    else:
        dz = s * (ds - (ds * s).sum(axis=1, keepdims=True))
    return {"W": X6.T @ dz}


IDS = np.array([1, 3, 1, 0, 3])
TARGET_E = _r(5, 2)
PE = {"E": _r(4, 3), "W": _r(3, 2)}


def embedding(p, bug):
    e = p["E"][IDS]
    out = e @ p["W"]
    if bug is None:
        return 0.5 * np.sum((out - TARGET_E) ** 2)
    dout = out - TARGET_E
    de = dout @ p["W"].T
    dE = np.zeros_like(p["E"])
    if bug:
        dE[IDS] += de
    else:
        np.add.at(dE, IDS, de)
    return {"E": dE, "W": e.T @ dout}


def _flat(name, function, params, line, variable, cause, **kw):
    return [
        LineCase(name, "flat", lambda p: function(p, None, **kw), lambda p: function(p, True, **kw),
                 params, line, variable, cause),
        LineCase(name + "/twin", "flat", lambda p: function(p, None, **kw), lambda p: function(p, False, **kw),
                 params, None, None, None),
    ]


FLAT = [
    *_flat("two-layer sigmoid, sigma' of the error", two_layer_sigmoid, P2, "dz2 = dh2 * (1 - dh2)", "dz2",
           "wrong_quantity", variant="error"),
    *_flat("two-layer sigmoid, sigma' of the pre-activation", two_layer_sigmoid, P2, "dz2 = dh2 * z2 * (1 - z2)",
           "dz2", "wrong_quantity", variant="preact"),
    *_flat("3-layer sigmoid, squared error without its 2", three_layer_sigmoid, P3, "dh3 = h3 - Y", "dh3",
           "constant_factor"),
    *_flat("XOR, forgotten sigma'", xor_net, PX, "delta1 = err1", "delta1", "missing_derivative"),
    *_flat("ReLU net, softmax without 1/N", relu_softmax, PR, "dscores = probs - onehot", "dscores",
           "constant_factor", variant="no_1_over_n"),
    *_flat("ReLU net, missing L2 term", relu_softmax, PR, "dW2 = h1.T @ dscores", "dW2", "missing_term",
           variant="no_reg"),
    *_flat("ReLU net, derivative forgotten on one layer", relu_softmax, PR, "dz1 = dh1", "dz1",
           "missing_derivative", variant="forgot_relu"),
    *_flat("tanh net, tanh' of the pre-activation", tanh_square, PT, "dz1 = da1 * (1 - z1 ** 2)", "dz1",
           "wrong_quantity", variant="preact"),
    *_flat("tanh net, untransposed weight", tanh_square, PT, 'da1 = dz2 @ p["W2"]', "da1", "transposition",
           variant="transpose"),
    # By value, dz is the right adjoint of softmax's argument z / T; the first wrong line is the one that
    # carries it to W without the chain rule's 1/T.
    *_flat("temperature softmax without 1/T", temperature_softmax, PS, 'return {"W": X6.T @ dz}', "<return>['W']",
           "constant_factor"),
    *_flat("loss broadcasting (m,) - (m,1)", broadcast_loss, PL, "dyhat = 2 * (yhat - YL) / m", "dyhat",
           "broadcast"),
    *_flat("class weights per column", weighted_softmax, PW, "dz = (probs - onehot) * cw / N", "dz",
           "per_sample_weights"),
    *_flat("GELU backward of another approximation", gelu_net, PG, "dz = dh * (s + 1.702", "dz", "wrong_formula"),
    *_flat("softmax backward with the Jacobian diagonal only", softmax_mse, PM, "dz = ds * s * (1 - s)", "dz",
           "softmax_diagonal"),
    *_flat("embedding, repeated id counted once", embedding, PE, "dE[IDS] += de", "dE", "repeated_index"),
]


# --- a cs231n-style class: loss(X, y) returns (loss, grads) -----------------------------------------

XC = _r(6, 4)
YC = np.array([0, 1, 2, 1, 0, 2])
PC = {"W1": _r(4, 5), "b1": _r(5), "W2": _r(5, 3), "b2": _r(3)}


class TwoLayerNet:
    def __init__(self, bug=None, reg=0.1):
        self.params = {}
        self.bug = bug
        self.reg = reg

    def loss_with(self, params, X, y):
        self.params = params
        return self.loss(X, y)

    def loss(self, X, y):
        W1, b1 = self.params["W1"], self.params["b1"]
        W2, b2 = self.params["W2"], self.params["b2"]
        N = X.shape[0]
        hidden_pre = X @ W1 + b1
        hidden = np.maximum(0, hidden_pre)
        scores = hidden @ W2 + b2
        probs = softmax(scores)
        loss = -np.log(probs[np.arange(N), y]).mean() + 0.5 * self.reg * (np.sum(W1 * W1) + np.sum(W2 * W2))
        grads = {}
        dscores = probs.copy()
        dscores[np.arange(N), y] -= 1
        if self.bug != "no_1_over_n":
            dscores /= N
        grads["W2"] = hidden.T @ dscores + self.reg * W2
        grads["b2"] = dscores.sum(axis=0)
        dhidden = dscores @ W2.T
        if self.bug == "mask":
            dpre = dhidden * (dhidden > 0)
        else:
            dpre = dhidden * (hidden_pre > 0)
        if self.bug == "no_reg":
            grads["W1"] = X.T @ dpre
        else:
            grads["W1"] = X.T @ dpre + self.reg * W1
        grads["b1"] = dpre.sum(axis=0)
        return loss, grads


def _class_case(name, bug, line, variable, cause):
    out = []
    for planted in (bug, None):
        net = TwoLayerNet(planted)
        out.append(LineCase(name if planted else name + "/twin", "class",
                            lambda p, net=net: net.loss_with(p, XC, YC)[0],
                            lambda p, net=net: net.loss_with(p, XC, YC)[1], PC,
                            line if planted else None, variable if planted else None, cause if planted else None))
    return out


CLASS = [
    *_class_case("cs231n net, missing 1/N", "no_1_over_n", "dscores[np.arange(N), y] -= 1", "dscores",
                 "constant_factor"),
    *_class_case("cs231n net, ReLU mask of the gradient", "mask", "dpre = dhidden * (dhidden > 0)", "dpre",
                 "wrong_mask"),
    *_class_case("cs231n net, missing L2 term", "no_reg", 'grads["W1"] = X.T @ dpre', "grads['W1']",
                 "missing_term"),
]


# --- layer function pairs: forward -> (out, cache), backward(dout, cache) ------------------------------

XA = _r(6, 3)
TA = _r(6, 4)
PA = {"W1": _r(3, 4), "b1": _r(4), "W2": _r(4, 4), "b2": _r(4)}


def affine_forward(x, w, b):
    out = x @ w + b
    return out, (x, w, b)


def affine_backward(dout, cache, bug=None):
    x, w, b = cache
    if bug == "transpose":
        dx = dout @ w
    else:
        dx = dout @ w.T
    dw = x.T @ dout
    if bug == "mean":
        db = dout.mean(axis=0)
    else:
        db = dout.sum(axis=0)
    return dx, dw, db


def relu_forward(x):
    out = np.maximum(0, x)
    return out, x


def relu_backward(dout, cache, bug=None):
    x = cache
    if bug == "mask":
        dx = dout * (dout > 0)
    else:
        dx = dout * (x > 0)
    return dx


def sigmoid_forward(x):
    out = sigmoid(x)
    return out, (x, out)


def sigmoid_backward(dout, cache, bug=None):
    x, out = cache
    if bug == "input":
        dx = dout * x * (1 - x)
    else:
        dx = dout * out * (1 - out)
    return dx


def mse_loss(pred, target):
    diff = pred - target
    loss = 0.5 * np.sum(diff ** 2) / pred.shape[0]
    dpred = diff / pred.shape[0]
    return loss, dpred


def layered_model(p, bug, where, activation):
    forward, backward = (relu_forward, relu_backward) if activation == "relu" else (sigmoid_forward, sigmoid_backward)
    h, c1 = affine_forward(XA, p["W1"], p["b1"])
    a, c2 = forward(h)
    out, c3 = affine_forward(a, p["W2"], p["b2"])
    loss, dout = mse_loss(out, TA)
    da, dW2, db2 = affine_backward(dout, c3, bug if where == "affine2" else None)
    dh = backward(da, c2, bug if where == "activation" else None)
    dx, dW1, db1 = affine_backward(dh, c1, None)
    return loss, {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}


def _layer_case(name, bug, where, activation, line, variable, cause):
    return [LineCase(n, "layers", lambda p: layered_model(p, None, where, activation)[0],
                     lambda p, b=b: layered_model(p, b, where, activation)[1], PA, ln, v, c)
            for n, b, ln, v, c in ((name, bug, line, variable, cause), (name + "/twin", None, None, None, None))]


# A small CNN: conv -> (relu) -> max-pool -> dense, with loops as people write them.

XI = _r(2, 1, 5, 5)
TI = _r(2, 2)
PI = {"K": _r(2, 1, 2, 2), "W": _r(8, 2)}
XJ = _r(1, 1, 4, 4)
PJ = {"K1": _r(1, 1, 2, 2), "K2": _r(2, 1, 2, 2), "W": _r(8, 2)}


def conv_forward(x, w):
    N, C, H, W = x.shape
    F, _, kh, kw = w.shape
    out = np.zeros((N, F, H - kh + 1, W - kw + 1))
    for i in range(H - kh + 1):
        for j in range(W - kw + 1):
            out[:, :, i, j] = np.einsum("nchw,fchw->nf", x[:, :, i:i + kh, j:j + kw], w)
    return out, (x, w)


def conv_backward(dout, cache, bug=None):
    x, w = cache
    N, C, H, W = x.shape
    F, _, kh, kw = w.shape
    dx = np.zeros_like(x)
    dw = np.zeros_like(w)
    for i in range(H - kh + 1):
        for j in range(W - kw + 1):
            if bug == "flip":
                dx[:, :, i:i + kh, j:j + kw] += np.einsum("nf,fchw->nchw", dout[:, :, i, j], w[:, :, ::-1, ::-1])
            else:
                dx[:, :, i:i + kh, j:j + kw] += np.einsum("nf,fchw->nchw", dout[:, :, i, j], w)
            dw += np.einsum("nf,nchw->fchw", dout[:, :, i, j], x[:, :, i:i + kh, j:j + kw])
    return dx, dw


def maxpool_forward(x, k=2):
    N, C, H, W = x.shape
    out = x.reshape(N, C, H // k, k, W // k, k).max(axis=(3, 5))
    return out, (x, k)


def maxpool_backward(dout, cache, bug=None):
    x, k = cache
    N, C, H, W = x.shape
    dx = np.zeros_like(x)
    for i in range(H // k):
        for j in range(W // k):
            win = x[:, :, i * k:(i + 1) * k, j * k:(j + 1) * k]
            mask = win == win.max(axis=(2, 3), keepdims=True)
            if bug == "average":
                dx[:, :, i * k:(i + 1) * k, j * k:(j + 1) * k] += dout[:, :, i, j][:, :, None, None] / (k * k)
            elif bug == "swap":
                dx[:, :, i * k:(i + 1) * k, j * k:(j + 1) * k] += mask * dout[:, :, j, i][:, :, None, None]
            else:
                dx[:, :, i * k:(i + 1) * k, j * k:(j + 1) * k] += mask * dout[:, :, i, j][:, :, None, None]
    return dx


def avgpool_forward(x, k=2):
    N, C, H, W = x.shape
    return x.reshape(N, C, H // k, k, W // k, k).mean(axis=(3, 5)), (x, k)


def avgpool_backward(dout, cache, bug=None):
    x, k = cache
    N, C, H, W = x.shape
    dx = np.zeros_like(x)
    for i in range(H // k):
        for j in range(W // k):
            if bug == "copy":
                dx[:, :, i * k:(i + 1) * k, j * k:(j + 1) * k] += dout[:, :, i, j][:, :, None, None]
            else:
                dx[:, :, i * k:(i + 1) * k, j * k:(j + 1) * k] += dout[:, :, i, j][:, :, None, None] / (k * k)
    return dx


def small_cnn(p, bug, pool):
    pool_forward, pool_backward = (maxpool_forward, maxpool_backward) if pool == "max" else \
        (avgpool_forward, avgpool_backward)
    c, cc = conv_forward(XI, p["K"])
    a = np.tanh(c)
    s, sc = pool_forward(a)
    flat = s.reshape(s.shape[0], -1)
    out = flat @ p["W"]
    loss = 0.5 * np.sum((out - TI) ** 2)
    dout = out - TI
    dW = flat.T @ dout
    ds = (dout @ p["W"].T).reshape(s.shape)
    da = pool_backward(ds, sc, bug)
    dc = da * (1 - a ** 2)
    _, dK = conv_backward(dc, cc)
    return loss, {"K": dK, "W": dW}


def two_conv_net(p, bug):
    c1, cc1 = conv_forward(XJ, p["K1"])
    a1 = np.tanh(c1)
    c2, cc2 = conv_forward(a1, p["K2"])
    flat = c2.reshape(c2.shape[0], -1)
    out = flat @ p["W"]
    loss = 0.5 * np.sum(out ** 2)
    dout = out
    dc2 = (dout @ p["W"].T).reshape(c2.shape)
    da1, dK2 = conv_backward(dc2, cc2, bug)
    dc1 = da1 * (1 - a1 ** 2)
    _, dK1 = conv_backward(dc1, cc1)
    return loss, {"K1": dK1, "K2": dK2, "W": flat.T @ dout}


XU = _r(2, 1, 3, 3)
MU = _r(2, 1, 6, 6)
PU = {"A": _r(3, 3)}


def upsample_net(p, bug):
    h = np.tanh(XU @ p["A"])
    up = h.repeat(2, axis=2).repeat(2, axis=3)
    loss = 0.5 * np.sum((up * MU) ** 2)
    dup = up * MU ** 2
    if bug:
        dh = dup[:, :, ::2, ::2]
    else:
        dh = dup.reshape(2, 1, 3, 2, 3, 2).sum(axis=(3, 5))
    dz = dh * (1 - h ** 2)
    dA = np.einsum("ncij,ncik->jk", XU, dz)
    return loss, {"A": dA}


def _pair(name, style, model, params, bug, line, variable, cause, **kw):
    return [LineCase(n, style, lambda p: model(p, None, **kw)[0], lambda p, b=b: model(p, b, **kw)[1], params, ln, v, c)
            for n, b, ln, v, c in ((name, bug, line, variable, cause), (name + "/twin", None, None, None, None))]


LAYERS = [
    *_layer_case("affine backward, untransposed weight", "transpose", "affine2", "relu", "dx = dout @ w", "dx",
                 "transposition"),
    *_layer_case("affine backward, bias averaged over the batch", "mean", "affine2", "relu",
                 "db = dout.mean(axis=0)", "db", "constant_factor"),
    *_layer_case("relu backward, mask of the gradient", "mask", "activation", "relu", "dx = dout * (dout > 0)",
                 "dx", "wrong_mask"),
    *_layer_case("sigmoid backward, sigma' of the input", "input", "activation", "sigmoid",
                 "dx = dout * x * (1 - x)", "dx", "wrong_quantity"),
    *_pair("small CNN, delta averaged over the pooling window", "layers", small_cnn, PI, "average",
           "dout[:, :, i, j][:, :, None, None] / (k * k)", "dx", "pool_routing", pool="max"),
    *_pair("max-pool backward, height and width swapped", "layers", small_cnn, PI, "swap",
           "mask * dout[:, :, j, i]", "dx", "swapped_axes", pool="max"),
    *_pair("avg-pool backward, gradient copied over the window", "layers", small_cnn, PI, "copy",
           "+= dout[:, :, i, j][:, :, None, None]", "dx", "constant_factor", pool="avg"),
    *_pair("conv input gradient with a flipped kernel", "layers", two_conv_net, PJ, "flip",
           "w[:, :, ::-1, ::-1]", "dx", "flipped_kernel"),
    *_pair("upsampling backward, one entry per block", "layers", upsample_net, PU, True,
           "dh = dup[:, :, ::2, ::2]", "dh", "missing_block_sum"),
]


# --- recurrent loops over time steps (BPTT) ----------------------------------------------------------

T_STEPS, NB, HID, DIN = 3, 2, 3, 2
XS = _r(T_STEPS, NB, DIN)
TS = _r(T_STEPS, NB, HID)
H0 = np.zeros((NB, HID))
PRNN = {"Wx": _r(DIN, HID) * 0.7, "Wh": _r(HID, HID) * 0.5, "b": _r(HID) * 0.3}


def rnn(p, bug):
    Wx, Wh, b = p["Wx"], p["Wh"], p["b"]
    h = H0
    loss = 0.0
    cache = []
    for t in range(T_STEPS):
        a = XS[t] @ Wx + h @ Wh + b
        h_next = np.tanh(a)
        cache.append((h, a, h_next))
        loss += 0.5 * np.sum((h_next - TS[t]) ** 2)
        h = h_next
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)
    dh_next = np.zeros_like(H0)
    for t in reversed(range(T_STEPS)):
        h_prev, a, h_t = cache[t]
        dh = dh_next + (h_t - TS[t])
        if bug == "preact":
            da = dh * (1 - a ** 2)
        else:
            da = dh * (1 - h_t ** 2)
        dWx += XS[t].T @ da
        if bug == "overwrite":
            dWh = h_prev.T @ da
        else:
            dWh += h_prev.T @ da
        db += da.sum(axis=0)
        dh_next = da @ Wh.T
    return loss, {"Wx": dWx, "Wh": dWh, "b": db}


PLSTM = {"Wx": _r(DIN, 4 * HID) * 0.5, "Wh": _r(HID, 4 * HID) * 0.5}


def lstm(p, bug):
    Wx, Wh = p["Wx"], p["Wh"]
    H = HID
    h, c = H0, H0
    loss = 0.0
    cache = []
    for t in range(T_STEPS):
        z = XS[t] @ Wx + h @ Wh
        i, f, o = sigmoid(z[:, :H]), sigmoid(z[:, H:2 * H]), sigmoid(z[:, 2 * H:3 * H])
        g = np.tanh(z[:, 3 * H:])
        c_next = f * c + i * g
        tc = np.tanh(c_next)
        h_next = o * tc
        cache.append((h, c, i, f, o, g, tc, h_next))
        loss += 0.5 * np.sum((h_next - TS[t]) ** 2)
        h, c = h_next, c_next
    dWx, dWh = np.zeros_like(Wx), np.zeros_like(Wh)
    dh_next, dc_next = np.zeros_like(H0), np.zeros_like(H0)
    for t in reversed(range(T_STEPS)):
        h_prev, c_prev, i, f, o, g, tc, h_t = cache[t]
        dh = dh_next + (h_t - TS[t])
        if bug:
            dc = (dh * o + dc_next) * (1 - tc ** 2)
        else:
            dc = dh * o * (1 - tc ** 2) + dc_next
        do = dh * tc
        dz = np.hstack([dc * g * i * (1 - i), dc * c_prev * f * (1 - f), do * o * (1 - o), dc * i * (1 - g ** 2)])
        dWx += XS[t].T @ dz
        dWh += h_prev.T @ dz
        dh_next = dz @ Wh.T
        dc_next = dc * f
    return loss, {"Wx": dWx, "Wh": dWh}


RECURRENT = [
    *_pair("RNN, tanh' of the pre-activation at every step", "recurrent", rnn, PRNN, "preact",
           "da = dh * (1 - a ** 2)", "da", "wrong_quantity"),
    *_pair("RNN, weight gradient overwritten each step", "recurrent", rnn, PRNN, "overwrite",
           "dWh = h_prev.T @ da", "dWh", "missing_sum"),
    *_pair("LSTM, cell gradient added after the tanh derivative", "recurrent", lstm, PLSTM, True,
           "dc = (dh * o + dc_next) * (1 - tc ** 2)", "dc", "misplaced_term"),
]
# The step where each recurrent slip first shows (the backward runs t = T-1 first).
FIRST_STEP = {RECURRENT[0].name: T_STEPS - 1, RECURRENT[4].name: T_STEPS - 2}


# --- stateful layer objects with forward/backward methods (numpy-ml / tinynn style) -------------------

XO = _r(5, 3)
TO = _r(5, 3)
PO = {"W1": _r(3, 4), "W2": _r(4, 3)}


class Dense:
    def __init__(self, bug=None):
        self.bug = bug
        self.grads = {}

    def forward(self, x, w):
        self.x = x
        self.w = w
        return x @ w

    def backward(self, dout):
        x, w = self.x, self.w
        if self.bug == "batch":
            self.grads["w"] = x.T @ dout / x.shape[0]
        else:
            self.grads["w"] = x.T @ dout
        dx = dout @ w.T
        return dx


class Tanh:
    def __init__(self, bug=None):
        self.bug = bug

    def forward(self, x):
        self.x = x
        self.y = np.tanh(x)
        return self.y

    def backward(self, dout):
        x, y = self.x, self.y
        if self.bug == "input":
            dx = dout * (1 - x ** 2)
        else:
            dx = dout * (1 - y ** 2)
        return dx


class MeanSquaredError:
    def __init__(self, bug=None):
        self.bug = bug

    def forward(self, pred, target):
        self.diff = pred - target
        return np.mean(self.diff ** 2)

    def backward(self):
        diff = self.diff
        if self.bug == "two":
            grad = diff / diff.size
        else:
            grad = 2 * diff / diff.size
        return grad


class Sequential:
    def __init__(self, bug=None, where=None):
        pick = lambda name: bug if where == name else None  # noqa: E731
        self.layers = [Dense(pick("dense1")), Tanh(pick("tanh")), Dense(pick("dense2"))]
        self.loss_fn = MeanSquaredError(pick("mse"))

    def loss(self, params):
        h = self.layers[0].forward(XO, params["W1"])
        a = self.layers[1].forward(h)
        out = self.layers[2].forward(a, params["W2"])
        return self.loss_fn.forward(out, TO)

    def grad(self, params):
        self.loss(params)
        dout = self.loss_fn.backward()
        da = self.layers[2].backward(dout)
        dh = self.layers[1].backward(da)
        self.layers[0].backward(dh)
        return {"W1": self.layers[0].grads["w"], "W2": self.layers[2].grads["w"]}


def _object_case(name, bug, where, line, variable, cause):
    out = []
    for planted in (bug, None):
        net = Sequential(planted, where)
        out.append(LineCase(name if planted else name + "/twin", "objects", lambda p, net=net: net.loss(p),
                            lambda p, net=net: net.grad(p), PO, line if planted else None,
                            variable if planted else None, cause if planted else None))
    return out


OBJECTS = [
    *_object_case("Dense layer object, weight gradient averaged over the batch", "batch", "dense1",
                  'self.grads["w"] = x.T @ dout / x.shape[0]', "self.grads['w']", "constant_factor"),
    *_object_case("Tanh layer object, tanh' of the input", "input", "tanh", "dx = dout * (1 - x ** 2)", "dx",
                  "wrong_quantity"),
    *_object_case("MSE object, gradient without its 2", "two", "mse", "grad = diff / diff.size", "grad",
                  "constant_factor"),
]

CASES = FLAT + CLASS + LAYERS + RECURRENT + OBJECTS
BUGGY = [c for c in CASES if c.line is not None]
TWINS = [c for c in CASES if c.line is None]
