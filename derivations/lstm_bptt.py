"""An LSTM through time: one step gate by gate, backprop through T steps, truncated BPTT in fixed and sliding windows."""

from __future__ import annotations

import numpy as np

import derivcheck as dc
from derivcheck.interfaces.derivation_scripts import Answer, bound, main

QUESTION = ("What are the gradients of one LSTM step, gate by gate; how does backprop run through T steps; and "
            "how does truncated BPTT with windows of k steps (fixed or sliding) differ from the full gradient?")


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


def sliding_bptt(dys, caches, w, window):
    """Truncated BPTT with a sliding window: the loss at every step t is carried back exactly ``window`` steps
    (t, t-1, ..., t-window+1), wherever t falls, instead of to the start of a fixed window."""
    dw, db = np.zeros_like(w), np.zeros(w.shape[1])
    for t in range(dys.shape[1]):
        dh, dc = dys[:, t], np.zeros_like(dys[:, t])
        for s in range(t, max(-1, t - window), -1):
            _, dh, dc, gw, gb = step_backward(dh, dc, caches[s], w)
            dw, db = dw + gw, db + gb
    return dw, db


def _truncation_table(a: Answer, grad, sliding, steps: int) -> None:
    """The gap of both truncations to the full gradient, and what the table shows, said from its own numbers."""
    full = grad(None)
    ks = (1, 2, 3, 4, 6, steps)
    fixed = [float(np.linalg.norm(grad(k) - full) / np.linalg.norm(full)) for k in ks]
    slide = [float(np.linalg.norm(sliding(k) - full) / np.linalg.norm(full)) for k in ks]
    shown = lambda g: "exact" if g < 1e-12 else f"{g:.3f}"  # noqa: E731
    a.code("|dW_trunc - dW| / |dW|     fixed windows   sliding window\n"
           + "\n".join(f"k = {k:2d}                     {shown(f):>7}          {shown(s):>7}"
                       for k, f, s in zip(ks, fixed, slide)))
    a.check("both truncations equal the full gradient at k = T", fixed[-1] < 1e-12 and slide[-1] < 1e-12,
            f"fixed {bound(fixed[-1])}, sliding {bound(slide[-1])}")
    worse = [f"k={ks[i + 1]} ({fixed[i + 1]:.3f}) is worse than k={ks[i]} ({fixed[i]:.3f})"
             for i in range(len(ks) - 1) if fixed[i + 1] > fixed[i]]
    a.say("Fixed windows do not approach the full gradient steadily: "
          + ("; ".join(worse) if worse else "here each k is closer than the one before") + ". A cut at fixed "
          "boundaries gives step t a horizon of 1 to k steps depending on where t falls in its window, so a larger "
          "k can cut just before the steps that matter most. The sliding window carries every step back exactly k "
          "steps, so each larger k adds terms and removes none.")
    steady = all(slide[i + 1] <= slide[i] for i in range(len(ks) - 1))
    a.check("the sliding window's gap shrinks at every k of the table (as the table shows, not as a law: the "
            "added terms could cancel)", steady, ", ".join(f"k={k}: {shown(s)}" for k, s in zip(ks, slide)))


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
    _, caches = run(xs, h0, c0, w, b)
    _truncation_table(a, lambda k: grad(params, k)["w"], lambda k: sliding_bptt(dys, caches, w, k)[0], steps)
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
