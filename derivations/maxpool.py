"""How a gradient passes through max-pooling: FC -> pool, pool -> conv, overlapping windows, ties, batches."""

from __future__ import annotations

import numpy as np

import derivcheck as dc
from derivcheck.interfaces.derivation_scripts import Answer, main

QUESTION = ("How does the gradient pass through max-pooling: from a fully connected layer back to the pooled units, "
            "from the pooled units back to the conv map, with overlapping windows, with ties, in a mini-batch?")


def pool(x, k=2, s=2):
    """Max over k x k windows with stride s; x is (N, C, H, W)."""
    n, c, h, w = x.shape
    oh, ow = (h - k) // s + 1, (w - k) // s + 1
    out = np.empty((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = x[:, :, i * s:i * s + k, j * s:j * s + k].max(axis=(2, 3))
    return out


def pool_backward(dout, x, k=2, s=2, ties="first"):
    """Each window passes its delta to its arg-max (the first one at a tie), zeros elsewhere; windows add up."""
    dx = np.zeros_like(x)
    n, c, oh, ow = dout.shape
    for i in range(oh):
        for j in range(ow):
            win = x[:, :, i * s:i * s + k, j * s:j * s + k].reshape(n, c, k * k)
            if ties == "all":
                share = (win == win.max(axis=2, keepdims=True)).astype(float)
            elif ties == "split":
                share = (win == win.max(axis=2, keepdims=True)) / np.sum(win == win.max(axis=2, keepdims=True), axis=2, keepdims=True)
            else:
                share = np.eye(k * k)[win.argmax(axis=2)]
            dx[:, :, i * s:i * s + k, j * s:j * s + k] += (share * dout[:, :, i, j, None]).reshape(n, c, k, k)
    return dx


def build(a: Answer) -> None:
    a.eq(r"y_{ij} = \max_{(a,b) \in W_{ij}} x_{ab}, \qquad \frac{\partial E}{\partial x_{ab}} = "
         r"\sum_{(i,j):\ (a,b) = \arg\max W_{ij}} g_{ij}",
         "y_ij = max over window W_ij of x_ab;  dE/dx_ab = sum of g_ij over the windows whose arg-max is (a, b)")
    a.say("Only the arg-max of each window moves the output, with slope 1; every other entry has slope 0. So each "
          "pooled unit passes its delta to its arg-max position, zeros elsewhere, and windows that overlap add up.")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 1, 4, 4))
    w_fc = rng.standard_normal((4, 2))  # 4 pooled units (2 x 2) -> 2 hidden units
    delta_fc = np.array([0.25, -0.15])
    a.heading("From a fully connected layer back to the pooling layer")
    d_pooled = (w_fc @ delta_fc).reshape(2, 2)
    a.eq(r"g^{\mathrm{pool}}_{i} = \sum_{k} w_{ik}\, g^{\mathrm{fc}}_{k}", "g_pool_i = sum_k w_ik g_fc_k")
    a.code(f"deltas at the FC layer: {delta_fc.tolist()}\nthe pooled units' deltas, one per unit (not one value for "
           f"all):\n{np.round(d_pooled, 4)}")
    a.check("each pooled unit gets its own sum_k w_ik delta_k", len(set(np.round(d_pooled.ravel(), 12))) == 4, "4 values")
    a.heading("From the pooling layer back to the conv map")
    one = x[:1]
    dmap = pool_backward(d_pooled[None, None], one)
    a.code(f"conv map (one sample):\n{np.round(one[0, 0], 3)}\nits gradient: each pooled delta at its window's arg-max\n"
           f"{np.round(dmap[0, 0], 4)}")
    a.check("each window's delta lands on its arg-max alone", int(np.count_nonzero(dmap)) == 4, "4 non-zero entries")
    r = rng.standard_normal(pool(x).shape)
    a.gradient("the routed gradient, a batch of 2 (each sample through its own arg-max)",
               dc.check_gradient(lambda v: float(np.sum(r * pool(v))), lambda v: pool_backward(r, v), x))
    a.heading("Overlapping windows accumulate")
    r3 = rng.standard_normal(pool(x, 3, 1).shape)
    a.gradient("3 x 3 windows with stride 1: the deltas of overlapping windows add up",
               dc.check_gradient(lambda v: float(np.sum(r3 * pool(v, 3, 1))), lambda v: pool_backward(r3, v, 3, 1), x))
    a.heading("Ties")
    a.say("At a tie the max is not differentiable: its one-sided slopes differ. Any convex split of the delta among "
          "the tied maxima is a valid subgradient (the convention here: all of it to the first arg-max); routing the "
          "full delta to every tied entry is not, because moving them together would then count it twice.")
    t = np.array([[[[1.0, 1.0], [0.2, 0.3]]]])
    rt = np.array([[[[1.0]]]])
    for ties, expect in (("first", "pass"), ("split", "pass"), ("all", "fail")):
        a.gradient(f"a tied window, delta routed to {ties}", dc.check_gradient(
            lambda v: float(np.sum(rt * pool(v))), lambda v, ties=ties: pool_backward(rt, v, ties=ties), t), expect)


if __name__ == "__main__":
    main("maxpool", QUESTION, build)
