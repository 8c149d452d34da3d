"""A corpus of hand-written backward passes in the styles people write them (cs231n layers with
``backward(dout, *inputs)``, from-scratch nets with ``loss(params)`` / ``grad(params)``).

Each correct case has a buggy twin, or several, with the cause planted on purpose and the
finding kind that names it. The truth is the forward itself (the checker differentiates it);
the corpus only says which bug was planted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Case:
    """One backward pass: ``kind`` "layer" is checked with check_backward, "loss" with check_gradient."""

    name: str
    style: str  # "layer" or "loss"
    forward: Callable[..., Any]  # layer: forward(*inputs); loss: loss(params)
    backward: Callable[..., Any]  # layer: backward(dout, *inputs); loss: grad(params)
    inputs: Any  # layer: tuple of arrays; loss: params
    cause: str | None = None  # the finding kind that names the planted bug (None: correct)
    allowed: tuple[str, ...] = ()  # other error kinds that are true of this bug


_RNG = np.random.default_rng(20261201)


def _r(*shape: int) -> np.ndarray:
    return _RNG.standard_normal(shape)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(0.5 * z))


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# --- activations --------------------------------------------------------------------------------------

X = _r(4, 5)


def sigmoid_fwd(x):
    return sigmoid(x)


def sigmoid_bwd(dout, x):
    s = sigmoid(x)
    return dout * s * (1 - s)


def relu_fwd(x):
    return np.maximum(x, 0)


def relu_bwd(dout, x):
    return dout * (x > 0)


def leaky_fwd(x):
    return np.where(x > 0, x, 0.01 * x)


def leaky_bwd(dout, x):
    return dout * np.where(x > 0, 1.0, 0.01)


def tanh_bwd(dout, x):
    return dout * (1 - np.tanh(x) ** 2)


def softmax_fwd(x):
    return softmax(x)


def softmax_bwd(dout, x):
    p = softmax(x)
    return p * (dout - np.sum(dout * p, axis=1, keepdims=True))


# --- dense and losses ---------------------------------------------------------------------------------

XD, WD, BD = _r(6, 4), _r(4, 3), _r(3)
WSQ = _r(4, 4)


def dense_fwd(x, w, b):
    return x @ w + b


def dense_bwd(dout, x, w, b):
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)


SCORES = _r(6, 4)
LABELS = np.array([0, 3, 1, 1, 2, 0])


def ce_fwd(scores, y):
    p = softmax(scores)
    return -np.mean(np.log(p[np.arange(len(y)), y]))


def ce_bwd(dout, scores, y):
    p = softmax(scores)
    p[np.arange(len(y)), y] -= 1
    return dout * p / len(y), None


def svm_fwd(scores, y):
    n = len(y)
    correct = scores[np.arange(n), y][:, None]
    margins = np.maximum(0, scores - correct + 1.0)
    margins[np.arange(n), y] = 0
    return margins.sum() / n


def svm_bwd(dout, scores, y, count_correct=True):
    n = len(y)
    correct = scores[np.arange(n), y][:, None]
    margins = scores - correct + 1.0
    margins[np.arange(n), y] = 0
    ds = (margins > 0).astype(float)
    if count_correct:
        ds[np.arange(n), y] = -ds.sum(axis=1)
    return dout * ds / n, None


# --- dropout, pooling, conv, upsampling -------------------------------------------------------------------

MASK = (_RNG.random((4, 5)) < 0.5).astype(float)
KEEP = 0.5


def dropout_fwd(x):
    return x * MASK / KEEP


def dropout_bwd(dout, x):
    return dout * MASK / KEEP


XP = _r(1, 2, 4, 4)
PAD = 1


def maxpool_fwd(x):
    xp = np.pad(x, ((0, 0), (0, 0), (PAD, PAD), (PAD, PAD)), constant_values=-np.inf)
    n, c, h, w = xp.shape
    return xp.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def maxpool_bwd(dout, x, crop_from_corner=False):
    xp = np.pad(x, ((0, 0), (0, 0), (PAD, PAD), (PAD, PAD)), constant_values=-np.inf)
    n, c, h, w = xp.shape
    dxp = np.zeros_like(xp)
    for i in range(h // 2):
        for j in range(w // 2):
            win = xp[:, :, 2 * i:2 * i + 2, 2 * j:2 * j + 2].reshape(n, c, 4)
            k = win.argmax(axis=2)
            for a in range(n):
                for b in range(c):
                    di, dj = divmod(int(k[a, b]), 2)
                    dxp[a, b, 2 * i + di, 2 * j + dj] += dout[a, b, i, j]
    hh, ww = x.shape[2:]
    if crop_from_corner:  # the bug: the crop taken from the padded array's corner
        return dxp[:, :, :hh, :ww]
    return dxp[:, :, PAD:PAD + hh, PAD:PAD + ww]


def avgpool_fwd(x):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5))


def avgpool_bwd(dout, x):
    return np.repeat(np.repeat(dout, 2, axis=2), 2, axis=3) / 4


XC, WC, BC = _r(2, 2, 5, 5), _r(2, 2, 3, 3), _r(2)


def _correlate(x, w):
    n, c, h, wd = x.shape
    f, _, k, _ = w.shape
    out = np.zeros((n, f, h - k + 1, wd - k + 1))
    for i in range(k):
        for j in range(k):
            out += np.einsum("nchw,fc->nfhw", x[:, :, i:i + h - k + 1, j:j + wd - k + 1], w[:, :, i, j])
    return out


def _correlate_grads(dout, x, w):
    n, c, h, wd = x.shape
    f, _, k, _ = w.shape
    oh, ow = h - k + 1, wd - k + 1
    dx, dw = np.zeros_like(x), np.zeros_like(w)
    for i in range(k):
        for j in range(k):
            dw[:, :, i, j] = np.einsum("nfhw,nchw->fc", dout, x[:, :, i:i + oh, j:j + ow])
            dx[:, :, i:i + oh, j:j + ow] += np.einsum("nfhw,fc->nchw", dout, w[:, :, i, j])
    return dx, dw


def conv_fwd(x, w, b):
    return _correlate(x, w) + b[None, :, None, None]


def conv_bwd(dout, x, w, b):
    dx, dw = _correlate_grads(dout, x, w)
    return dx, dw, dout.sum(axis=(0, 2, 3))


def trueconv_fwd(x, w, b):
    """A true convolution: the kernel flipped."""
    return _correlate(x, w[:, :, ::-1, ::-1]) + b[None, :, None, None]


def trueconv_bwd_unflipped(dout, x, w, b):
    dx, dw = _correlate_grads(dout, x, w[:, :, ::-1, ::-1])
    return dx, dw, dout.sum(axis=(0, 2, 3))  # the bug: dw is for the flipped kernel, not flipped back


XU = _r(1, 2, 3, 3)


def upsample_fwd(x):
    return np.repeat(np.repeat(x, 2, axis=2), 2, axis=3)


def upsample_bwd(dout, x, mean=False):
    n, c, h, w = x.shape
    blocks = dout.reshape(n, c, h, 2, w, 2)
    return blocks.mean(axis=(3, 5)) if mean else blocks.sum(axis=(3, 5))


# --- embedding ---------------------------------------------------------------------------------------

WE = _r(6, 3)
IDS = np.array([1, 4, 1, 0, 4, 4, 2])


def embed_fwd(w, ids):
    return w[ids]


def embed_bwd(dout, w, ids):
    dw = np.zeros_like(w)
    np.add.at(dw, ids, dout)
    return dw, None


def embed_bwd_fancy(dout, w, ids):
    dw = np.zeros_like(w)
    dw[ids] += dout  # the bug: a repeated id is counted once
    return dw, None


# --- normalisation and attention ------------------------------------------------------------------------

XB, GB, BB = _r(5, 3), _r(3), _r(3)
EPS = 1e-5


def bn_fwd(x, g, b):
    mu, var = x.mean(axis=0), x.var(axis=0)
    return g * (x - mu) / np.sqrt(var + EPS) + b


def bn_bwd(dout, x, g, b, partial=False):
    n = x.shape[0]
    mu, var = x.mean(axis=0), x.var(axis=0)
    std = np.sqrt(var + EPS)
    xhat = (x - mu) / std
    dxhat = dout * g
    if partial:  # the bug: the batch statistics' own dependence on x is forgotten
        dx = dxhat / std
    else:
        dx = (n * dxhat - dxhat.sum(axis=0) - xhat * np.sum(dxhat * xhat, axis=0)) / (n * std)
    return dx, np.sum(dout * xhat, axis=0), dout.sum(axis=0)


def ln_fwd(x, g, b):
    mu, var = x.mean(axis=1, keepdims=True), x.var(axis=1, keepdims=True)
    return g * (x - mu) / np.sqrt(var + EPS) + b


def ln_bwd(dout, x, g, b, dgamma_from_x=False):
    d = x.shape[1]
    mu, var = x.mean(axis=1, keepdims=True), x.var(axis=1, keepdims=True)
    std = np.sqrt(var + EPS)
    xhat = (x - mu) / std
    dxhat = dout * g
    dx = (d * dxhat - dxhat.sum(axis=1, keepdims=True) - xhat * np.sum(dxhat * xhat, axis=1, keepdims=True)) / (d * std)
    dg = np.sum(dout * (x if dgamma_from_x else xhat), axis=0)
    return dx, dg, dout.sum(axis=0)


QA, KA, VA = _r(4, 3), _r(4, 3), _r(4, 2)


def attn_fwd(q, k, v):
    return softmax(q @ k.T / np.sqrt(q.shape[1])) @ v


def attn_bwd(dout, q, k, v, dv_untransposed=False):
    s = 1 / np.sqrt(q.shape[1])
    p = softmax(q @ k.T * s)
    dv = (p @ dout) if dv_untransposed else (p.T @ dout)
    dp = dout @ v.T
    dz = p * (dp - np.sum(dp * p, axis=1, keepdims=True))
    return dz @ k * s, dz.T @ q * s, dv


# --- recurrent nets through time ---------------------------------------------------------------------------

XR, H0, WX, WH, BR = _r(2, 4, 3), _r(2, 3), 0.5 * _r(3, 3), 0.5 * _r(3, 3), _r(3)


def rnn_fwd(x, h0, wx, wh, b):
    h, out = h0, []
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t] @ wx + h @ wh + b)
        out.append(h)
    return np.stack(out, axis=1)


def rnn_bwd(dout, x, h0, wx, wh, b, carry=True):
    hs = rnn_fwd(x, h0, wx, wh, b)
    dx, dwx, dwh, db = np.zeros_like(x), np.zeros_like(wx), np.zeros_like(wh), np.zeros_like(b)
    dnext = np.zeros_like(h0)
    for t in reversed(range(x.shape[1])):
        prev = hs[:, t - 1] if t else h0
        dz = (dout[:, t] + dnext) * (1 - hs[:, t] ** 2)
        dx[:, t] = dz @ wx.T
        dwx += x[:, t].T @ dz
        dwh += prev.T @ dz
        db += dz.sum(axis=0)
        dnext = dz @ wh.T if carry else np.zeros_like(h0)  # the bug: nothing carried to earlier steps
    return dx, dnext, dwx, dwh, db


XL, HL, CL, WL, BL = _r(2, 3, 2), _r(2, 2), _r(2, 2), 0.5 * _r(4, 8), 0.5 * _r(8)


def _lstm_steps(x, h0, c0, w, b):
    h, c, cache = h0, c0, []
    hn = h0.shape[1]
    for t in range(x.shape[1]):
        z = np.concatenate([x[:, t], h], axis=1) @ w + b
        i, f, o, g = sigmoid(z[:, :hn]), sigmoid(z[:, hn:2 * hn]), sigmoid(z[:, 2 * hn:3 * hn]), np.tanh(z[:, 3 * hn:])
        cache.append((np.concatenate([x[:, t], h], axis=1), c, i, f, o, g))
        c = f * c + i * g
        h = o * np.tanh(c)
        cache[-1] += (c, h)
    return cache


def lstm_fwd(x, h0, c0, w, b):
    return np.stack([step[-1] for step in _lstm_steps(x, h0, c0, w, b)], axis=1)


def lstm_bwd(dout, x, h0, c0, w, b, carry_cell=True):
    steps = _lstm_steps(x, h0, c0, w, b)
    d = x.shape[2]
    dx, dw, db = np.zeros_like(x), np.zeros_like(w), np.zeros_like(b)
    dh_next, dc_next = np.zeros_like(h0), np.zeros_like(c0)
    for t in reversed(range(x.shape[1])):
        xh, c_prev, i, f, o, g, c, _ = steps[t]
        dh = dout[:, t] + dh_next
        dc = dc_next + dh * o * (1 - np.tanh(c) ** 2)
        dz = np.concatenate([dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dh * np.tanh(c) * o * (1 - o),
                             dc * i * (1 - g ** 2)], axis=1)
        dw += xh.T @ dz
        db += dz.sum(axis=0)
        dxh = dz @ w.T
        dx[:, t], dh_next = dxh[:, :d], dxh[:, d:]
        dc_next = dc * f if carry_cell else np.zeros_like(c0)  # the bug: the cell's gradient is not carried back
    return dx, dh_next, dc_next, dw, db


# --- from-scratch nets: loss(params) and grad(params) ----------------------------------------------------

XN, TN = _r(5, 3), _r(5, 2)
NET = {"W1": 0.7 * _r(3, 4), "b1": 0.1 * _r(4), "W2": 0.7 * _r(4, 2), "b2": 0.1 * _r(2)}


def net_loss(p):
    h = sigmoid(XN @ p["W1"] + p["b1"])
    out = sigmoid(h @ p["W2"] + p["b2"])
    return 0.5 * float(np.sum((out - TN) ** 2))


def net_grad(p, factor=1.0):
    h = sigmoid(XN @ p["W1"] + p["b1"])
    out = sigmoid(h @ p["W2"] + p["b2"])
    d2 = factor * (out - TN) * out * (1 - out)
    d1 = (d2 @ p["W2"].T) * h * (1 - h)
    return {"W1": XN.T @ d1, "b1": d1.sum(axis=0), "W2": h.T @ d2, "b2": d2.sum(axis=0)}


REG = 0.1
WR = _r(3, 2)


def ridge_loss(w):
    return float(np.sum((XN @ w - TN) ** 2) + 0.5 * REG * np.sum(w * w))


def ridge_grad(w, reg=True, sign=1.0):
    return sign * 2 * XN.T @ (XN @ w - TN) + (REG * w if reg else 0)


TWO = {"W1": 0.7 * _r(3, 4), "W2": 0.7 * _r(4, 2)}


def typo_loss(p):
    h = np.tanh(XN @ TWO["W1"])  # the bug: the module-level W1, not the parameter, is used
    return float(np.sum((h @ p["W2"] - TN) ** 2))


def typo_grad(p):
    h = np.tanh(XN @ p["W1"])
    r = 2 * (h @ p["W2"] - TN)
    return {"W1": XN.T @ ((r @ p["W2"].T) * (1 - h**2)), "W2": h.T @ r}


def typo_fixed_loss(p):
    h = np.tanh(XN @ p["W1"])
    return float(np.sum((h @ p["W2"] - TN) ** 2))


def _layer(name, fwd, bwd, inputs, cause=None, allowed=()):
    return Case(name, "layer", fwd, bwd, inputs, cause, allowed)


def _loss(name, loss, grad, params, cause=None, allowed=()):
    return Case(name, "loss", loss, grad, params, cause, allowed)


CORRECT = [
    _layer("sigmoid", sigmoid_fwd, sigmoid_bwd, (X,)),
    _layer("relu", relu_fwd, relu_bwd, (X,)),
    _layer("leaky_relu", leaky_fwd, leaky_bwd, (X,)),
    _layer("tanh", np.tanh, tanh_bwd, (X,)),
    _layer("softmax", softmax_fwd, softmax_bwd, (X,)),
    _layer("dense", dense_fwd, dense_bwd, (XD, WD, BD)),
    _layer("softmax_cross_entropy", ce_fwd, ce_bwd, (SCORES, LABELS)),
    _layer("svm_loss", svm_fwd, svm_bwd, (SCORES, LABELS)),
    _layer("dropout", dropout_fwd, dropout_bwd, (X,)),
    _layer("maxpool_padded", maxpool_fwd, maxpool_bwd, (XP,)),
    _layer("avgpool", avgpool_fwd, avgpool_bwd, (XP,)),
    _layer("conv", conv_fwd, conv_bwd, (XC, WC, BC)),
    _layer("upsample", upsample_fwd, upsample_bwd, (XU,)),
    _layer("embedding", embed_fwd, embed_bwd, (WE, IDS)),
    _layer("batchnorm", bn_fwd, bn_bwd, (XB, GB, BB)),
    _layer("layernorm", ln_fwd, ln_bwd, (XB, GB, BB)),
    _layer("attention", attn_fwd, attn_bwd, (QA, KA, VA)),
    _layer("rnn_bptt", rnn_fwd, rnn_bwd, (XR, H0, WX, WH, BR)),
    _layer("lstm_bptt", lstm_fwd, lstm_bwd, (XL, HL, CL, WL, BL)),
    _loss("two_layer_sigmoid_net", net_loss, net_grad, NET),
    _loss("ridge", ridge_loss, ridge_grad, WR),
    _loss("two_layer_tanh_net", typo_fixed_loss, typo_grad, TWO),
]


BUGGY = [
    _layer("sigmoid_derivative_of_the_error", sigmoid_fwd, lambda dout, x: dout * (1 - dout), (X,), "wrong_quantity"),
    _layer("sigmoid_derivative_of_the_preactivation", sigmoid_fwd, lambda dout, x: dout * x * (1 - x), (X,),
           "wrong_quantity"),
    _layer("tanh_derivative_of_the_input", np.tanh, lambda dout, x: dout * (1 - x**2), (X,), "wrong_quantity"),
    _layer("softmax_diagonal_jacobian", softmax_fwd, lambda dout, x: dout * softmax(x) * (1 - softmax(x)), (X,),
           "wrong_quantity"),
    _layer("relu_mask_from_dout", relu_fwd, lambda dout, x: dout * (dout > 0), (X,), "wrong_quantity"),
    _layer("dropout_mask_missing", dropout_fwd, lambda dout, x: dout / KEEP, (X,), "missing_mask"),
    _layer("dropout_no_rescale", dropout_fwd, lambda dout, x: dout * MASK, (X,), "scale"),
    _layer("maxpool_crop_from_corner", maxpool_fwd, lambda dout, x: maxpool_bwd(dout, x, True), (XP,), "shift"),
    _layer("conv_kernel_not_flipped_back", trueconv_fwd, trueconv_bwd_unflipped, (XC, WC, BC), "flip"),
    _layer("upsample_mean_not_sum", upsample_fwd, lambda dout, x: upsample_bwd(dout, x, True), (XU,), "scale"),
    _layer("embedding_fancy_index", embed_fwd, embed_bwd_fancy, (WE, IDS), "repeated_indices", ("batch_size_one",)),
    _layer("dense_bias_mean", dense_fwd, lambda d, x, w, b: (d @ w.T, x.T @ d, d.mean(axis=0)), (XD, WD, BD),
           "mean_vs_sum", ("batch_size_one",)),
    _layer("dense_square_transposed", dense_fwd, lambda d, x, w, b: (d @ w.T, (x.T @ d).T, d.sum(axis=0)),
           (_r(6, 4), WSQ, _r(4)), "transpose"),
    _layer("dense_bias_keepdims", dense_fwd, lambda d, x, w, b: (d @ w.T, x.T @ d, d.sum(axis=0, keepdims=True)),
           (XD, WD, BD), "shape:keepdims"),
    _layer("cross_entropy_not_averaged", ce_fwd, lambda d, s, y: (ce_bwd(d, s, y)[0] * len(y), None),
           (SCORES, LABELS), "scale"),
    _layer("cross_entropy_onehot_missing", ce_fwd, lambda d, s, y: (d * softmax(s) / len(y), None), (SCORES, LABELS),
           "at_labels"),
    _layer("svm_correct_class_not_counted", svm_fwd, lambda d, s, y: svm_bwd(d, s, y, False), (SCORES, LABELS),
           "at_labels", ("missing_path",)),
    _layer("rnn_no_gradient_through_time", rnn_fwd, lambda dy, *a: rnn_bwd(dy, *a, carry=False),
           (XR, H0, WX, WH, BR), "slice", ("zero",)),  # dh0 is never written: true of this bug
    _layer("lstm_cell_gradient_not_carried", lstm_fwd, lambda dy, *a: lstm_bwd(dy, *a, carry_cell=False),
           (XL, HL, CL, WL, BL), "slice", ("zero",)),  # nor dc0
    _loss("two_layer_net_missing_half", net_loss, lambda p: net_grad(p, 2.0), NET, "scale_all"),
    _loss("ridge_regulariser_missing", ridge_loss, lambda w: ridge_grad(w, reg=False), WR, "missing_term"),
    _loss("ridge_sign_flipped", ridge_loss, lambda w: -ridge_grad(w), WR, "sign"),
    _loss("forward_never_uses_W1", typo_loss, typo_grad, TWO, "loss_independent"),
    # No detector names these; what is known must still be true.
    _layer("batchnorm_statistics_forgotten", bn_fwd, lambda d, x, g, b: bn_bwd(d, x, g, b, True), (XB, GB, BB), None),
    _layer("layernorm_dgamma_from_x", ln_fwd, lambda d, x, g, b: ln_bwd(d, x, g, b, True), (XB, GB, BB), None),
    _layer("attention_dv_not_transposed", attn_fwd, lambda d, q, k, v: attn_bwd(d, q, k, v, True), (QA, KA, VA), None),
]

# Error kinds that state facts without naming a cause: never false, and never counted as naming one.
NEUTRAL = ("unexplained", "wrong_entries", "joint")
