"""Ground truth for max-pool ties and small conv nets (conv -> ReLU -> 2x2 max-pool -> dense -> softmax CE).

A tied max-pool on 100 integer images: each routing of a tie's gradient is valid exactly when it gives
each window's upstream value to its tied entries in non-negative shares adding up to one.

Two kinds of conv-net point, each for seeds 0..19:

* biases at 1e-9..1e-5 in magnitude, so that the pre-activations of the images' blank rows sit
  within a step of ReLU's kink: the loss is differentiable there, and its gradient comes from the
  complex step (``tests/kinky.py``), never from derivcheck;
* zero biases on integer images with blank rows and rows constant along the width: after the ReLU
  the pooling windows tie, at positive values (positions with identical patches, hence identical
  functions of the parameters) and at 0 (blank patches, whose pre-activation is exactly the bias 0).
  The loss is then a smooth function of the parameters and of ``relu(b_f)`` per channel, so its
  Clarke set is exact: every entry fixed except ``db_f``, which may take any value between the
  two pieces' (``b_f < 0`` and ``b_f > 0``), each piece's gradient taken by complex step a
  hair's breadth (1e-13) to that side of the kink.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

import derivcheck as dc
from tests.kinky import complex_step_gradient
from tests.test_verdicts import _pooled

SEEDS = range(20)
N, F, K, SIZE = 4, 2, 3, 6  # images, filters, classes, image side (3x3 conv -> 4x4 -> pooled 2x2)
NAMES = ("w", "b", "w2", "b2")
# A piece's gradient is taken this far to its side of the kink at b_f = 0: far enough that every branch
# follows that side, near enough that the gradient moves by nothing the comparison could see.
SIDE = 1e-13


def _images(rng: np.random.Generator, integer: bool) -> np.ndarray:
    """Half the rows blank (the top half in even images, the bottom half in odd ones); in integer images the
    other rows are constant along the width, so neighbouring positions have identical patches."""
    if integer:
        x = rng.integers(0, 3, (N, 1, SIZE, 1)).repeat(SIZE, axis=3).astype(float)
    else:
        x = rng.standard_normal((N, 1, SIZE, SIZE))
    for n in range(N):
        if n % 2 == 0:
            x[n, :, : SIZE // 2] = 0.0
        else:
            x[n, :, SIZE // 2 :] = 0.0
    return x


def _forward(x: np.ndarray, y: np.ndarray, p: dict) -> tuple:
    """Loss and the values the backward needs; runs on complex parameters, every branch on the real part."""
    patches = sliding_window_view(x, (3, 3), axis=(2, 3))  # (N, 1, 4, 4, 3, 3)
    z = np.einsum("ncijkl,fckl->nfij", patches, p["w"]) + p["b"][None, :, None, None]
    a = np.where(z.real > 0, z, 0 * z)
    windows = a.reshape(N, F, 2, 2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(N, F, 2, 2, 4)
    m = np.take_along_axis(windows, np.argmax(windows.real, axis=-1)[..., None], axis=-1)[..., 0]
    s = m.reshape(N, F * 4) @ p["w2"] + p["b2"]
    top = s.real.max(axis=1, keepdims=True)
    lse = top[:, 0] + np.log(np.sum(np.exp(s - top), axis=1))
    loss = np.mean(lse - s[np.arange(N), y])
    return loss, patches, z, windows, m, s


def _unwindow(w: np.ndarray) -> np.ndarray:
    return w.reshape(N, F, 2, 2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(N, F, 4, 4)


def _route(windows: np.ndarray, rule: str) -> np.ndarray:
    """Weights of each window's entries in its maximum's gradient."""
    ties = windows == windows.max(axis=-1, keepdims=True)
    if rule == "split":
        return ties / ties.sum(axis=-1, keepdims=True)
    if rule == "every tie":
        return ties.astype(float)
    first = np.argmax(ties, axis=-1) if rule == "first" else 3 - np.argmax(ties[..., ::-1], axis=-1)
    out = np.zeros(ties.shape)
    np.put_along_axis(out, first[..., None], 1.0, axis=-1)
    return out


def _backward(x: np.ndarray, y: np.ndarray, p: dict, rule: str = "first", at_zero: bool = False) -> dict:
    """The hand-written gradient: pooling routed by ``rule``, ReLU's derivative 1 at 0 when ``at_zero``."""
    _, patches, z, windows, m, s = _forward(x, y, p)
    e = np.exp(s - s.max(axis=1, keepdims=True))
    ds = e / e.sum(axis=1, keepdims=True)
    ds[np.arange(N), y] -= 1.0
    ds /= N
    h = m.reshape(N, F * 4)
    dm = (ds @ p["w2"].T).reshape(N, F, 2, 2)
    da = _unwindow(_route(windows, rule) * dm[..., None])
    dz = da * ((z >= 0) if at_zero else (z > 0))
    return {"w": np.einsum("ncijkl,nfij->fckl", patches, dz), "b": dz.sum(axis=(0, 2, 3)),
            "w2": h.T @ ds, "b2": ds.sum(axis=0)}


def _net(seed: int, integer: bool) -> tuple[np.ndarray, np.ndarray, dict]:
    rng = np.random.default_rng(seed)
    x = _images(rng, integer)
    y = rng.integers(0, K, N)
    p = {"w": rng.standard_normal((F, 1, 3, 3)) / 3, "b": np.zeros(F),
         "w2": rng.standard_normal((F * 4, K)), "b2": np.zeros(K)}
    if not integer:  # tiny biases, either sign: the blank rows' pre-activations sit within a step of 0
        for name, size in (("b", F), ("b2", K)):
            p[name] = rng.choice([-1.0, 1.0], size) * 10.0 ** rng.uniform(-9, -5, size)
    return x, y, p


def _loss(x: np.ndarray, y: np.ndarray):
    return lambda p: float(np.real(_forward(x, y, p)[0]))


def _truth(x: np.ndarray, y: np.ndarray, p: dict) -> dict:
    """The complex-step gradient of every parameter (exact off the kinks, to rounding)."""
    out = {}
    for name in NAMES:
        def of(v, name=name):
            return _forward(x, y, {**p, name: v})[0]
        out[name] = complex_step_gradient(of, p[name])
    return out


# --- tiny biases: differentiable, near ReLU's kink ---

@pytest.mark.parametrize("seed", SEEDS)
def test_a_conv_net_with_tiny_biases_never_fails_and_a_scaled_gradient_always_does(seed):
    x, y, p = _net(seed, integer=False)
    truth = _truth(x, y, p)
    hand = _backward(x, y, p)
    for name in NAMES:  # the hand-written backward is the complex step's gradient
        np.testing.assert_allclose(hand[name], truth[name], rtol=1e-9, atol=1e-12 * np.max(np.abs(truth[name])))
    loss = _loss(x, y)
    right = dc.check_gradient(loss, lambda q: _backward(x, y, q), p, seed=seed, trace=False)
    assert right.verdict == "pass", str(right)
    assert "precision" not in right.evaluated_in, str(right)  # a float64 loss without noise is read as one
    for wrong in (lambda q: {k: 1.5 * v for k, v in _backward(x, y, q).items()},
                  lambda q: {**_backward(x, y, q), "b": 2.0 * _backward(x, y, q)["b"]}):
        assert dc.check_gradient(loss, wrong, p, seed=seed, trace=False).verdict == "fail", seed


# --- zero biases on integer images: ties after the ReLU, and a kink at b = 0 ---

def _clarke(x: np.ndarray, y: np.ndarray, p: dict) -> tuple[dict, np.ndarray, np.ndarray]:
    """The exact Clarke set: the gradient every entry but db must equal, and db's interval [low, high]."""
    below = _truth(x, y, {**p, "b": p["b"] - SIDE})
    above = _truth(x, y, {**p, "b": p["b"] + SIDE})
    for name in ("w", "w2", "b2"):  # the two pieces differ in db alone
        np.testing.assert_allclose(below[name], above[name], rtol=1e-9, atol=1e-9)
    return below, np.minimum(below["b"], above["b"]), np.maximum(below["b"], above["b"])


def _distance(g: dict, fixed: dict, low: np.ndarray, high: np.ndarray) -> float:
    """How far g lies outside the Clarke set, relative to the largest gradient entry."""
    top = max(float(np.max(np.abs(v))) for v in fixed.values())
    gaps = [float(np.max(np.abs(g[k] - fixed[k]))) for k in ("w", "w2", "b2")]
    gaps.append(float(np.max(np.maximum(low - g["b"], g["b"] - high))))
    return max(max(gaps), 0.0) / top


RULES = {  # (routing among tied maxima, ReLU's derivative at 0 is 1)
    "first arg-max": ("first", False),
    "last arg-max": ("last", False),
    "split among ties": ("split", False),
    "every tie in full": ("every tie", False),
    "z >= 0 mask, first arg-max": ("first", True),
}
# Outside the Clarke set by more than this (relative to the largest entry) must never pass; inside, never fail.
OUTSIDE = 1e-2
INSIDE = 1e-9


@pytest.mark.parametrize("rule", sorted(RULES))
def test_zero_bias_conv_nets_with_ties_judged_as_their_clarke_sets_say(rule):
    routing, at_zero = RULES[rule]
    outside = kinks = 0
    for seed in SEEDS:
        x, y, p = _net(seed, integer=True)
        fixed, low, high = _clarke(x, y, p)
        kinks += bool(np.any(high > low))
        grad = lambda q: _backward(x, y, q, routing, at_zero)  # noqa: E731
        gap = _distance(grad(p), fixed, low, high)
        report = dc.check_gradient(_loss(x, y), grad, p, seed=seed, trace=False)
        if gap <= INSIDE:
            assert report.verdict == "pass", (seed, str(report))
        elif gap > OUTSIDE:
            outside += 1
            assert report.verdict != "pass", (seed, gap, str(report))
    assert kinks >= 15  # the points do sit on the kink
    # The wrong rules are outside the Clarke set at many points, not only in principle (the z >= 0 mask only where
    # the windows it routes through a blank patch do not happen to add up to a valid share of db).
    assert outside >= {"every tie in full": 15, "z >= 0 mask, first arg-max": 6}.get(rule, 0), outside
    if rule not in ("every tie in full", "z >= 0 mask, first arg-max"):
        assert outside == 0


# --- a max-pool on 100 integer images, ties in hundreds of windows ---

# What a correct routing may cost (the figure bench_trust.py prints for seed 0): a pass is decided from the pieces
# the routing points to, not entry by entry.
POOL_BUDGET = 500


def _to_a_non_max(x: np.ndarray, dy: np.ndarray):
    """Each window's upstream value routed to its smallest entry where that is below the maximum: no subgradient."""
    maps = x.shape[0]

    def grad(a: np.ndarray) -> np.ndarray:
        w = a.reshape(maps, 1, 2, 2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(maps, 1, 2, 2, 4)
        low = np.where(w.min(axis=-1) < w.max(axis=-1), np.argmin(w, axis=-1), np.argmax(w, axis=-1))
        out = np.zeros(w.shape)
        np.put_along_axis(out, low[..., None], dy[..., None], axis=-1)
        return out.reshape(maps, 1, 2, 2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(a.shape)

    return grad


@pytest.mark.parametrize("seed", SEEDS)
def test_a_tied_max_pool_on_100_images_passes_every_valid_routing_cheaply_and_fails_the_others(seed):
    x, loss, grads, has_ties = _pooled(seed, 100)
    assert has_ties
    for name in ("first", "last", "split"):
        report = dc.check_gradient(loss, grads[name], x, seed=seed, trace=False)
        assert report.verdict == "pass", (name, str(report))
        assert report.evaluations.loss <= POOL_BUDGET, (name, report.evaluations)
    # First-max routing gives each window's upstream value to one entry: its window sums are the upstream values.
    upstream = grads["first"](x).reshape(100, 1, 2, 2, 2, 2).sum(axis=(3, 5))
    non_max = _to_a_non_max(x, upstream)
    below = x < x.reshape(100, 1, 2, 2, 2, 2).max(axis=(3, 5)).repeat(2, axis=2).repeat(2, axis=3)
    assert np.any(non_max(x)[below] != 0)  # a non-maximum gets a gradient: outside every window's hull
    for wrong in (grads["every tie"], non_max):
        assert dc.check_gradient(loss, wrong, x, seed=seed, trace=False).verdict == "fail", seed


def _overshooting(x: np.ndarray, first):
    """Where a window ties, 1.5 times its upstream value to the first tied entry and -0.5 times to the second:
    the shares add up to one, so the uniform direction cannot see it, but -0.5 is no share of a maximum."""
    maps = x.shape[0]

    def windows(a: np.ndarray) -> np.ndarray:
        return a.reshape(maps, 1, 2, 2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(maps, 1, 2, 2, 4)

    def grad(a: np.ndarray) -> np.ndarray:
        w, g = windows(a), windows(first(a))
        ties = w == w.max(axis=-1, keepdims=True)
        order = np.argsort(~ties, axis=-1, kind="stable")
        shares = np.zeros(w.shape)
        np.put_along_axis(shares, order[..., :1], 1.5, axis=-1)
        np.put_along_axis(shares, order[..., 1:2], -0.5, axis=-1)
        out = np.where((ties.sum(axis=-1) > 1)[..., None], shares * g.sum(axis=-1, keepdims=True), g)
        return out.reshape(maps, 1, 2, 2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(a.shape)

    return grad


def test_an_overshooting_tie_never_passes_when_the_entries_are_not_checked_one_by_one():
    for seed in SEEDS:
        x, loss, grads, _ = _pooled(seed, 100)
        report = dc.check_gradient(loss, _overshooting(x, grads["first"]), x, seed=seed, mode="directional", trace=False)
        assert report.verdict != "pass", seed
        assert report.verdict == "fail" or "undecided" in report.params[0].reason, str(report)
