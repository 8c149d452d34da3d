"""Losses with kinks at a known distance from the checked point, and an independent oracle.

Each loss is written so that it also runs on complex input, with every branch decided by
the real part (ReLU, |x|, hinge, clip, max, sort). The complex step
``Im L(x + i 1e-30 e_k) / 1e-30`` is then the exact derivative at any point that is not
exactly on a kink, to rounding: the truth for the near-kink cases, taken from nothing that
derivcheck computes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

_CS_STEP = 1e-30


def complex_step_gradient(loss: Callable[[np.ndarray], complex], x: np.ndarray) -> np.ndarray:
    """The exact gradient of a real-analytic-by-pieces loss away from its kinks."""
    flat = x.reshape(-1).astype(complex)
    out = np.empty(flat.size)
    for k in range(flat.size):
        z = flat.copy()
        z[k] += 1j * _CS_STEP
        out[k] = np.imag(loss(z.reshape(x.shape))) / _CS_STEP
    return out.reshape(x.shape)


def relu(z):
    return np.where(z.real > 0, z, 0 * z)


def leaky(z):
    return np.where(z.real > 0, z, 0.1 * z)


def cabs(z):
    return np.where(z.real >= 0, z, -z)


def clip(z, lo=-1.0, hi=1.0):
    return np.where(z.real < lo, lo + 0 * z, np.where(z.real > hi, hi + 0 * z, z))


def rowmax(z):
    idx = np.argmax(z.real, axis=1)
    return z[np.arange(z.shape[0]), idx]


def topk_sum(z, k):
    order = np.argsort(-z.real, axis=-1, kind="stable")[..., :k]
    return np.take_along_axis(z, order, axis=-1).sum(axis=-1)


@dataclass
class Kinked:
    """A loss of one parameter array with one kink planted at relative distance ``delta``."""

    name: str
    x: np.ndarray
    loss: Callable[[np.ndarray], complex]

    def real_loss(self, x: np.ndarray) -> float:
        return float(np.real(self.loss(x)))

    def truth(self) -> np.ndarray:
        return complex_step_gradient(self.loss, self.x)


def _weights(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.standard_normal(shape)


def relu_layer(delta: float, seed: int = 0, slope: Callable = relu, name: str = "relu") -> Kinked:
    """sum(u * act(x @ w)) over w, with pre-activation z[0, 0] placed at delta * scale."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((6, 4))
    w = rng.standard_normal((4, 3))
    u = rng.standard_normal((6, 3))
    z00 = x[0] @ w[:, 0]
    w[0, 0] += (delta * max(1.0, abs(z00)) - z00) / x[0, 0]  # z[0, 0] = delta (relative)
    return Kinked(name, w, lambda w: np.sum(u * slope(x @ w)))


def l1(delta: float, seed: int = 0) -> Kinked:
    rng = np.random.default_rng(seed)
    p = rng.standard_normal(8)
    p[3] = delta
    c = rng.standard_normal(8)
    return Kinked("abs", p, lambda p: np.sum(cabs(p)) + np.sum(c * p * p) / 2)


def hinge(delta: float, seed: int = 0) -> Kinked:
    """Multiclass SVM loss over the weights, with one margin at delta (relative)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((5, 4))
    w = rng.standard_normal((4, 3))
    y = rng.integers(0, 3, 5)
    j = (y[0] + 1) % 3
    m = x[0] @ w[:, j] - x[0] @ w[:, y[0]] + 1.0
    w[0, j] += (delta * max(1.0, abs(m)) - m) / x[0, 0]

    def loss(w):
        s = x @ w
        margins = s - s[np.arange(5), y][:, None] + 1.0
        mask = np.ones((5, 3))
        mask[np.arange(5), y] = 0
        return np.sum(relu(margins) * mask)

    return Kinked("hinge", w, loss)


def clipped(delta: float, seed: int = 0) -> Kinked:
    rng = np.random.default_rng(seed)
    p = rng.uniform(-2, 2, 7)
    p[2] = 1.0 + delta
    u = rng.standard_normal(7)
    return Kinked("clip", p, lambda p: np.sum(u * clip(p)) + np.sum(np.sin(p)) / 3)


def maxpool_runner_up(delta: float, seed: int = 0) -> Kinked:
    """Row maxima (a pooling window per row), one runner-up within delta of its maximum."""
    rng = np.random.default_rng(seed)
    p = rng.standard_normal((4, 4))
    top = np.argmax(p[0])
    other = (top + 1) % 4
    p[0, other] = p[0, top] - delta * max(1.0, abs(p[0, top]))
    u = rng.standard_normal(4)
    return Kinked("maxpool", p, lambda p: np.sum(u * rowmax(p)))


def topk(delta: float, seed: int = 0) -> Kinked:
    """Sum of the 2 largest per row; the 2nd and 3rd largest of row 0 within delta."""
    rng = np.random.default_rng(seed)
    p = rng.standard_normal((3, 5))
    order = np.argsort(-p[0])
    p[0, order[2]] = p[0, order[1]] - delta * max(1.0, abs(p[0, order[1]]))
    u = rng.standard_normal(3)
    return Kinked("topk", p, lambda p: np.sum(u * topk_sum(p, 2)))


NEAR_KINK_CASES = {
    "relu": relu_layer,
    "leaky_relu": lambda d, seed=0: relu_layer(d, seed, leaky, "leaky_relu"),
    "abs": l1,
    "hinge": hinge,
    "clip": clipped,
    "maxpool": maxpool_runner_up,
    "topk": topk,
}
