"""XOR with a 2-2-1 sigmoid network: capacity is not the problem, training is."""

from __future__ import annotations

import numpy as np

import derivcheck as dc
from derivcheck.interfaces.derivation_scripts import Answer, main

QUESTION = ("Can a 2-2-1 sigmoid network compute XOR, and how often does training find such weights "
            "with 2, 3 or 4 hidden units, or with two hidden layers (2-2-2-1)?")

X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
T = np.array([0.0, 1.0, 1.0, 0.0])
SEEDS, EPOCHS, RATE = 100, 4000, 2.0


def sigmoid(z):
    return 0.5 * (1 + np.tanh(0.5 * z))


def forward(ws, x):
    """Layers as (W, b) pairs, batched over seeds: W is (S, fan_in, fan_out)."""
    acts = [np.broadcast_to(x, (ws[0][0].shape[0], *x.shape))]
    for w, b in ws:
        acts.append(sigmoid(acts[-1] @ w + b[:, None, :]))
    return acts


def grads(ws, acts):
    """Cross-entropy over the 4 patterns: dE/dz at the output is (y - t)."""
    delta = acts[-1] - T[None, :, None]
    out = []
    for i in reversed(range(len(ws))):
        w, _ = ws[i]
        out.append((acts[i].transpose(0, 2, 1) @ delta, delta.sum(axis=1)))
        if i:
            delta = (delta @ w.transpose(0, 2, 1)) * acts[i] * (1 - acts[i])
    return out[::-1]


def train(sizes, seeds=SEEDS):
    rng = np.random.default_rng(0)
    ws = [(rng.standard_normal((seeds, a, b)), np.zeros((seeds, b))) for a, b in zip(sizes, sizes[1:])]
    for _ in range(EPOCHS):
        acts = forward(ws, X)
        ws = [(w - RATE * gw / 4, b - RATE * gb / 4) for (w, b), (gw, gb) in zip(ws, grads(ws, acts))]
    out = forward(ws, X)[-1][:, :, 0]
    return float(np.mean(np.all(np.abs(out - T) < 0.5, axis=1))), ws


def build(a: Answer) -> None:
    a.say("XOR is not linearly separable, so it needs a hidden layer; two hidden units are enough. Explicit weights: "
          "h1 = sigmoid(20 x1 + 20 x2 - 10) (an OR), h2 = sigmoid(-20 x1 - 20 x2 + 30) (a NAND), "
          "y = sigmoid(20 h1 + 20 h2 - 30) (their AND).")
    w1 = np.array([[20.0, -20.0], [20.0, -20.0]])
    b1 = np.array([-10.0, 30.0])
    w2 = np.array([[20.0], [20.0]])
    b2 = np.array([-30.0])
    y = sigmoid(sigmoid(X @ w1 + b1) @ w2 + b2)[:, 0]
    a.code("x1 x2 -> y\n" + "\n".join(f" {int(p[0])}  {int(p[1])} -> {v:.5f}" for p, v in zip(X, y)))
    a.check("the explicit 2-2-1 weights compute XOR", bool(np.all(np.abs(y - T) < 1e-4)), f"max error {np.max(np.abs(y - T)):.1e}")
    a.heading(f"Training from {SEEDS} seeds ({EPOCHS} full-batch steps, rate {RATE}, cross-entropy)")
    rows = []
    for sizes in ((2, 2, 1), (2, 3, 1), (2, 4, 1), (2, 2, 2, 1)):
        rate, _ = train(sizes)
        rows.append(f"{'-'.join(map(str, sizes)):8s} converged from {rate:.0%} of the seeds")
    a.code("\n".join(rows))
    a.say("With two hidden units a sizeable share of starts ends in a local minimum or on a plateau where one "
          "hidden unit saturates; more hidden units give gradient descent more ways down. Capacity is the same "
          "(2 units suffice); what changes is how often training finds it.")
    _, ws = train((2, 2, 1), seeds=1)
    params = {"W1": ws[0][0][0], "b1": ws[0][1][0], "W2": ws[1][0][0], "b2": ws[1][1][0]}

    def loss(p):
        y = sigmoid(sigmoid(X @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"])[:, 0]
        return float(-np.sum(T * np.log(y) + (1 - T) * np.log(1 - y)))

    def grad(p):
        net = [(p["W1"][None], p["b1"][None]), (p["W2"][None], p["b2"][None])]
        (gw1, gb1), (gw2, gb2) = grads(net, forward(net, X))
        return {"W1": gw1[0], "b1": gb1[0], "W2": gw2[0], "b2": gb2[0]}

    a.gradient("the training gradients (the backward used above) at a trained 2-2-1 net",
               dc.check_gradient(loss, grad, params))
    rng = np.random.default_rng(1)
    start = {k: rng.standard_normal(v.shape) for k, v in params.items()}
    a.gradient("and at a random starting point", dc.check_gradient(loss, grad, start))


if __name__ == "__main__":
    main("xor", QUESTION, build)
