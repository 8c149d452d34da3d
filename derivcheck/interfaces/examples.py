"""Built-in examples: the classic hand-derivation bugs, each planted in a small network.

``derivcheck demo`` runs them; the README shows their reports.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Example:
    """A loss, a hand-written gradient (correct or with a planted bug) and parameters."""

    name: str
    question: str
    loss: Callable[[Any], float]
    grad: Callable[[Any], Any]
    params: dict[str, np.ndarray]


def _two_layer_sigmoid(seed: int = 0) -> tuple[Callable, Callable, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    n, d, h, m = 8, 5, 4, 3
    x, t = rng.standard_normal((n, d)), rng.standard_normal((n, m))
    params = {
        "w1": rng.standard_normal((d, h)) / 2, "b1": rng.standard_normal(h) / 4,
        "w2": rng.standard_normal((h, m)) / 2, "b2": rng.standard_normal(m) / 4,
    }

    def forward(p):
        a = 1 / (1 + np.exp(-(x @ p["w1"] + p["b1"])))
        return a, a @ p["w2"] + p["b2"]

    def loss(p):  # mean squared error over the batch
        return float(np.sum((forward(p)[1] - t) ** 2) / n)

    def grad(p, factor=2.0):
        a, y = forward(p)
        dy = factor * (y - t) / n
        da = dy @ p["w2"].T
        dz = da * a * (1 - a)
        return {"w1": x.T @ dz, "b1": dz.sum(0), "w2": a.T @ dy, "b2": dy.sum(0)}

    return loss, grad, params


def catalog() -> list[Example]:
    """The examples, in the order the demo prints them."""
    loss, grad, params = _two_layer_sigmoid()

    def missing_two(p):
        return grad(p, factor=1.0)

    def one_slip(p):
        g = grad(p)
        g["w1"][3, 1] *= -1
        return g

    def transposed(p):
        g = grad(p)
        g["w2"] = g["w2"].reshape(g["w2"].shape[::-1])
        return g

    rng = np.random.default_rng(1)
    logits = {"z": rng.standard_normal((6, 4))}
    labels = rng.integers(0, 4, 6)
    onehot = np.eye(4)[labels]

    def ce(p):
        z = p["z"] - p["z"].max(1, keepdims=True)
        return float(-np.sum(onehot * (z - np.log(np.exp(z).sum(1, keepdims=True)))) / 6)

    def ce_grad_sum(p):  # forgets the 1/N of the mean
        e = np.exp(p["z"] - p["z"].max(1, keepdims=True))
        return {"z": e / e.sum(1, keepdims=True) - onehot}

    return [
        Example("mlp-correct", "a correct two-layer sigmoid net", loss, grad, params),
        Example("mlp-factor-two", "why is my 2-layer sigmoid net's gradient off by a factor of two?", loss, missing_two, params),
        Example("mlp-one-entry", "one wrong entry in a weight matrix", loss, one_slip, params),
        Example("softmax-ce-mean", "softmax + cross-entropy, mean over the batch", ce, ce_grad_sum, logits),
        Example("mlp-bias-shape", "a reshaped (transposed) weight gradient", loss, transposed, params),
    ]
