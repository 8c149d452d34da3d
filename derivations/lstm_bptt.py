"""An LSTM through time: one step gate by gate, backprop through T steps, and truncated BPTT."""

from __future__ import annotations

import numpy as np

import derivcheck as dc
from derivcheck.interfaces.derivation_scripts import Answer, bound, main

QUESTION = ("What are the gradients of one LSTM step, gate by gate; how does backprop run through T steps; and "
            "how does truncated BPTT with windows of k steps differ from the full gradient?")


def sigmoid(v):
    return 0.5 * (1 + np.tanh(0.5 * v))


def step(x, h, c, w, b):
    """One step; w maps [x, h] to the four gates (i, f, o, g), stacked along the columns."""
    n = h.shape[1]
    z = np.concatenate([x, h], axis=1) @ w + b
    i, f, o, g = sigmoid(z[:, :n]), sigmoid(z[:, n:2 * n]), sigmoid(z[:, 2 * n:3 * n]), np.tanh(z[:, 3 * n:])
    c2 = f * c + i * g
    return o * np.tanh(c2), c2, (x, h, c, i, f, o, g, c2)


def step_backward(dh2, dc2, cache, w):
    x, h, c, i, f, o, g, c2 = cache
    dc = dc2 + dh2 * o * (1 - np.tanh(c2) ** 2)
    dz = np.concatenate([dc * g * i * (1 - i), dc * c * f * (1 - f), dh2 * np.tanh(c2) * o * (1 - o),
                         dc * i * (1 - g**2)], axis=1)
    xh = np.concatenate([x, h], axis=1)
    dxh = dz @ w.T
    return dxh[:, :x.shape[1]], dxh[:, x.shape[1]:], dc * f, xh.T @ dz, dz.sum(axis=0)


def run(xs, h, c, w, b, reset_every=None):
    caches, hs = [], []
    for t in range(xs.shape[1]):
        if reset_every and t and t % reset_every == 0:
            h, c = np.zeros_like(h), np.zeros_like(c)
        h, c, cache = step(xs[:, t], h, c, w, b)
        caches.append(cache)
        hs.append(h)
    return np.stack(hs, axis=1), caches


def bptt(dys, caches, w, window=None):
    """Gradients of sum(dys * hs); with ``window`` the gradient is carried back at most ``window`` steps from
    each window's end (truncated BPTT: the carried dh, dc are cut at window boundaries)."""
    dw, db = np.zeros_like(w), np.zeros(w.shape[1])
    dxs = np.zeros((dys.shape[0], dys.shape[1], caches[0][0].shape[1]))
    dh, dc = np.zeros_like(dys[:, 0]), np.zeros_like(dys[:, 0])
    for t in reversed(range(dys.shape[1])):
        if window and (t + 1) % window == 0:
            dh, dc = np.zeros_like(dh), np.zeros_like(dc)
        dx, dh, dc, gw, gb = step_backward(dys[:, t] + dh, dc, caches[t], w)
        dxs[:, t], dw, db = dx, dw + gw, db + gb
    return dxs, dw, db


def build(a: Answer) -> None:
    a.eq(r"[\,i\ f\ o\ g\,] = [x_t\ h_{t-1}]\,W + \mathbf{b}, \quad c_t = f \odot c_{t-1} + i \odot g, \quad "
         r"h_t = o \odot \tanh c_t",
         "[i f o g] = [x_t h_(t-1)] W + b (sigmoid for i, f, o; tanh for g); c_t = f * c_(t-1) + i * g; h_t = o * tanh(c_t)")
    a.say("The same step as derivcheck's lstm_step declares it, from primitives (one dense map per gate: W = "
          "[W_i W_f W_o W_g], likewise U and b), with f = <G_h, H2> + <G_c, C2> for the gradients G_h, G_c "
          "arriving at h_t and c_t. Derived step by step (dZ is the gradient of f in step Z):")
    from derivcheck.symbolic.layer_chain import chain_derivation

    derived = chain_derivation("lstm_step")
    for line in (*derived.forward, *derived.backward, *derived.gradients):
        a.eq(f"{line.lhs.latex} = {line.rhs.latex}", f"{line.lhs.text} = {line.rhs.text}")
    a.say("The same backward lines in index form (each checked entry by entry against its matrix form):")
    for line in (*derived.backward, *derived.gradients):
        a.eq(line.index.latex, line.index.text)
    a.check("every line of the gate-by-gate backward agrees with finite differences (its generated code, two "
            "random sizes), and every index form with its matrix form", derived.ok, f"{len(derived.checks)} checks")
    rng = np.random.default_rng(0)
    n, d, hdim, steps = 3, 2, 3, 12
    w, b = 0.6 * rng.standard_normal((d + hdim, 4 * hdim)), 0.1 * rng.standard_normal(4 * hdim)
    x, h0, c0 = rng.standard_normal((n, d)), rng.standard_normal((n, hdim)), rng.standard_normal((n, hdim))
    dh2, dc2 = rng.standard_normal((n, hdim)), rng.standard_normal((n, hdim))

    def one(x, h, c, w, b):
        h2, c2, _ = step(x, h, c, w, b)
        return np.concatenate([h2, c2], axis=1)

    def one_back(g, x, h, c, w, b):
        _, _, cache = step(x, h, c, w, b)
        dx, dh, dc, dw, db = step_backward(g[:, :hdim], g[:, hdim:], cache, w)
        return dx, dh, dc, dw, db

    a.gradient("one step, gate by gate (x, h, c, W, b)", dc.check_backward(one, one_back, (x, h0, c0, w, b)))
    xs, dys = rng.standard_normal((n, steps, d)), rng.standard_normal((n, steps, hdim))

    def loss(p):
        hs, _ = run(xs, h0, c0, p["w"], p["b"])
        return float(np.sum(dys * hs))

    def grad(p, window=None):
        _, caches = run(xs, h0, c0, p["w"], p["b"])
        _, dw, db = bptt(dys, caches, p["w"], window)
        return {"w": dw, "b": db}

    params = {"w": w, "b": b}
    a.gradient(f"backprop through all T = {steps} steps, W shared by every step (its gradient is the sum over t)",
               dc.check_gradient(loss, grad, params))
    a.heading("Truncated BPTT")
    full = grad(params)["w"]
    rows = []
    gaps = []
    for k in (1, 2, 3, 4, 6, 12):
        gap = float(np.linalg.norm(grad(params, k)["w"] - full) / np.linalg.norm(full))
        gaps.append(gap)
        rows.append(f"k = {k:2d}: |dW_trunc - dW| / |dW| = {gap:.3f}" if gap > 1e-12 else f"k = {k:2d}: exact")
    a.code("\n".join(rows))
    a.check("the truncated gradient approaches the full one as k grows, and equals it at k = T",
            gaps[-1] < 1e-12 and gaps[0] > gaps[3], f"k=1: {gaps[0]:.3f}, k=4: {gaps[3]:.3f}, k=T: {bound(gaps[-1])}")
    truncated = dc.check_gradient(loss, lambda p: grad(p, 3), params)
    a.gradient("truncated BPTT (k = 3) is not the gradient of the loss", truncated, expect="fail")
    a.say("Resetting the state between windows changes the loss itself: it is then a sum of independent windows, "
          "and the truncated gradient is its exact gradient.")

    def reset_loss(p):
        hs, _ = run(xs, h0, c0, p["w"], p["b"], reset_every=3)
        return float(np.sum(dys * hs))

    def reset_grad(p):
        _, caches = run(xs, h0, c0, p["w"], p["b"], reset_every=3)
        _, dw, db = bptt(dys, caches, p["w"], 3)
        return {"w": dw, "b": db}

    a.gradient("with the state reset every 3 steps, truncated BPTT (k = 3) is exact", dc.check_gradient(
        reset_loss, reset_grad, params))


if __name__ == "__main__":
    main("lstm_bptt", QUESTION, build)
