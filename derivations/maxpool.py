"""How a gradient passes through max-pooling: FC -> pool, pool -> conv, pool -> next conv, overlapping windows, ties, batches."""

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


def conv(p, k):
    """Valid 2-D correlation of each map of p (N, 1, H, W) with the kernel k (a, b): the next conv layer."""
    n, _, h, w = p.shape
    out = np.zeros((n, 1, h - k.shape[0] + 1, w - k.shape[1] + 1))
    for u in range(k.shape[0]):
        for v in range(k.shape[1]):
            out += k[u, v] * p[:, :, u:u + out.shape[2], v:v + out.shape[3]]
    return out


def conv_backward(g, p, k, combine="add"):
    """dE/dp: every conv output that read p_ab sends back k_uv g_ij; ``combine`` says how the contributions meet."""
    parts = np.zeros((k.size, *p.shape)) if combine == "add" else np.ones((k.size, *p.shape))
    for idx, (u, v) in enumerate(np.ndindex(*k.shape)):
        parts[idx, :, :, u:u + g.shape[2], v:v + g.shape[3]] = k[u, v] * g
    return parts.sum(axis=0) if combine == "add" else parts.prod(axis=0)


def shared_routing(dout, x, how):
    """The learner's idea: one arg-max per window for the whole batch (sample 0's, or that of the batch mean)."""
    model = x[:1] if how == "shared" else x.mean(axis=0, keepdims=True)
    return np.concatenate([pool_backward(dout[n:n + 1], model) for n in range(len(x))])


def _next_conv(a: Answer, rng: np.random.Generator) -> None:
    a.heading("Max-pool followed by a conv layer: add or multiply?")
    a.say("When the pooled map P feeds the next conv layer (y_ij = sum_uv k_uv p_(i+u)(j+v)), a pooled unit p_ab is "
          "read by every output whose window covers it. The chain rule adds one term per such output, so the "
          "contributions add: the delta at p_ab is a sum (a full correlation with the flipped kernel), never a product. "
          "Max-pool then routes that sum to the arg-max of window ab, as before.")
    a.eq(r"\frac{\partial E}{\partial p_{ab}} = \sum_{u,v} k_{uv}\, g_{a-u,\,b-v}, \qquad "
         r"\frac{\partial E}{\partial x} = \mathrm{route}_{\arg\max}\Big(\frac{\partial E}{\partial P}\Big)",
         "∂E/∂p_ab = Σ_uv k_uv g_(a-u)(b-v)   (a sum over the conv outputs that read p_ab); "
         "∂E/∂x = each window's ∂E/∂p_ab at its arg-max")
    x = rng.standard_normal((2, 1, 8, 8))
    k = rng.standard_normal((2, 2))
    r = rng.standard_normal(conv(pool(x), k).shape)
    loss = lambda v: float(np.sum(r * conv(pool(v), k)))  # noqa: E731 - one line, the composed forward
    for combine, expect in (("add", "pass"), ("multiply", "fail")):
        a.gradient(f"x -> max-pool -> conv, the conv's contributions to each pooled unit combined by {combine}",
                   dc.check_gradient(loss, lambda v, c=combine: pool_backward(conv_backward(r, pool(v), k, c), v), x),
                   expect)


def _own_argmax(a: Answer, rng: np.random.Generator) -> None:
    a.heading("Why each sample of a batch routes through its own arg-max")
    a.say("The batch loss is a sum of per-sample losses, E = sum_n E_n, and E_n depends on sample n's inputs alone. "
          "So dE/dx_n = dE_n/dx_n, which is routed by the windows of x_n: sample n's arg-max, not another sample's. "
          "One arg-max for the whole batch (sample 0's, or that of the batch mean) sends a delta to an entry that "
          "did not win in its own sample, where the slope is 0.")
    x = rng.standard_normal((2, 1, 4, 4))
    r = rng.standard_normal(pool(x).shape)
    first = [np.argmax(x[n, 0, :2, :2]) for n in range(2)]
    a.check("the two samples' arg-maxes differ in a window (so the question has teeth)", first[0] != first[1],
            f"window (0, 0): sample 0 at {first[0]}, sample 1 at {first[1]} (flattened 2 x 2)")
    loss = lambda v: float(np.sum(r * pool(v)))  # noqa: E731
    a.gradient("each sample routed through its own arg-max", dc.check_gradient(loss, lambda v: pool_backward(r, v), x))
    for how in ("shared", "averaged"):
        a.gradient(f"one {how} arg-max for the whole batch (the learner's idea)",
                   dc.check_gradient(loss, lambda v, h=how: shared_routing(r, v, h), x), "fail")


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
    _own_argmax(a, rng)
    _next_conv(a, rng)
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
