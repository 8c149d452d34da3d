"""A two-layer sigmoid network with squared error, in sensitivities, and the factor of two."""

from __future__ import annotations

import numpy as np
import sympy as sp

import derivcheck as dc
from derivcheck.interfaces.derivation_scripts import Answer, bound, main

QUESTION = ("For an input-hidden-output sigmoid network with J = 1/2 ||t - z||^2, what are the sensitivities "
            "delta_k and delta_j and the weight gradients? Why is a gradient for J = sum (t - z)^2 / N off by a "
            "factor of two, and why must the weights not start equal?")


def sigmoid(v):
    return 0.5 * (1 + np.tanh(0.5 * v))


def build(a: Answer) -> None:
    d, h, c = 2, 3, 2
    x = sp.Matrix(sp.symbols(f"x1:{d + 1}", real=True))
    t = sp.Matrix(sp.symbols(f"t1:{c + 1}", real=True))
    wji = sp.Matrix(h, d, lambda j, i: sp.Symbol(f"w_{j + 1}{i + 1}", real=True))  # input -> hidden
    wkj = sp.Matrix(c, h, lambda k, j: sp.Symbol(f"v_{k + 1}{j + 1}", real=True))  # hidden -> output
    f = lambda u: 1 / (1 + sp.exp(-u))  # noqa: E731
    fp = lambda u: f(u) * (1 - f(u))  # noqa: E731
    net_j = wji * x
    y = net_j.applyfunc(f)
    net_k = wkj * y
    z = net_k.applyfunc(f)
    big_j = sp.Rational(1, 2) * sum((t[k] - z[k]) ** 2 for k in range(c))
    a.eq(r"J = \tfrac{1}{2} \lVert t - z \rVert^{2}, \quad y_j = f(\mathrm{net}_j),\ \mathrm{net}_j = \sum_i w_{ji} x_i, "
         r"\quad z_k = f(\mathrm{net}_k),\ \mathrm{net}_k = \sum_j w_{kj} y_j",
         "J = 1/2 ||t - z||^2, y_j = f(net_j), net_j = sum_i w_ji x_i, z_k = f(net_k), net_k = sum_j w_kj y_j")
    delta_k = [(z[k] - t[k]) * fp(net_k[k]) for k in range(c)]
    delta_j = [fp(net_j[j]) * sum(wkj[k, j] * delta_k[k] for k in range(c)) for j in range(h)]
    a.eq(r"\delta_k = (z_k - t_k)\, f'(\mathrm{net}_k), \quad \delta_j = f'(\mathrm{net}_j) \sum_k w_{kj} \delta_k, "
         r"\quad \frac{\partial J}{\partial w_{kj}} = \delta_k\, y_j, \quad \frac{\partial J}{\partial w_{ji}} = \delta_j\, x_i",
         "delta_k = (z_k - t_k) f'(net_k); delta_j = f'(net_j) sum_k w_kj delta_k; dJ/dw_kj = delta_k y_j; dJ/dw_ji = delta_j x_i")
    point = {s: v for s, v in zip([*x, *t, *wji, *wkj], np.random.default_rng(0).uniform(-1, 1, d + c + h * d + c * h))}
    diffs = [sp.diff(big_j, wkj[k, j]) - delta_k[k] * y[j] for k in range(c) for j in range(h)]
    diffs += [sp.diff(big_j, wji[j, i]) - delta_j[j] * x[i] for j in range(h) for i in range(d)]
    worst = max(abs(float(e.subs(point))) for e in diffs)
    a.check(f"SymPy's dJ/dw equals the sensitivity formulas ({len(diffs)} weights, {d}-{h}-{c})", worst < 1e-12,
            f"max |difference| at a random point {bound(worst)}")
    a.say("For a batch, rows are samples: Delta_2 = (Z - T) * Z * (1 - Z), dJ/dW2 = Y^T Delta_2, db2 = Delta_2^T 1, "
          "Delta_1 = (Delta_2 W2^T) * Y * (1 - Y), dJ/dW1 = X^T Delta_1, db1 = Delta_1^T 1. The catalog's mlp2 "
          "chains the same VJPs (with a mean squared error, hence its 2/(MN)):")
    from derivcheck.symbolic.presentation import render_derivation

    for line in render_derivation("mlp2", "latex").splitlines():
        a.eq(line, line)
    from derivcheck.symbolic.verify import verify_model

    v = verify_model("mlp2")
    for r in v.rows:
        a.check(f"mlp2 d{r.arg}: {' = '.join(r.agreeing)}", r.ok, f"max rel diff {bound(r.max_rel_error)}")
    a.heading("The factor of two")
    rng = np.random.default_rng(1)
    xs, ts = rng.standard_normal((6, 3)), rng.uniform(0, 1, (6, 2))
    params = {"W1": rng.standard_normal((3, 4)), "b1": rng.standard_normal(4), "W2": rng.standard_normal((4, 2)),
              "b2": rng.standard_normal(2)}

    def loss(p):  # J = sum (t - z)^2 / N
        hid = sigmoid(xs @ p["W1"] + p["b1"])
        return float(np.sum((ts - sigmoid(hid @ p["W2"] + p["b2"])) ** 2) / len(xs))

    def grad(p, two=2.0):
        hid = sigmoid(xs @ p["W1"] + p["b1"])
        out = sigmoid(hid @ p["W2"] + p["b2"])
        d2 = two * (out - ts) * out * (1 - out) / len(xs)
        d1 = (d2 @ p["W2"].T) * hid * (1 - hid)
        return {"W1": xs.T @ d1, "b1": d1.sum(0), "W2": hid.T @ d2, "b2": d2.sum(0)}

    a.say("Without the 1/2 in front, d(t - z)^2/dz = -2 (t - z): the exact gradient carries 2/N. Dropping the 2 "
          "(the 1/2 convention carried over to a loss that does not have it) halves every gradient:")
    a.gradient("the gradient with 2/N", dc.check_gradient(loss, grad, params))
    half = dc.check_gradient(loss, lambda p: grad(p, two=1.0), params)
    a.gradient("the gradient with 1/N", half, expect="fail")
    a.check("named: every parameter's gradient is half the true one", any(f.kind == "scale_all" and f.factor == 0.5
                                                                           for f in half.findings), "scale_all 0.5")
    a.heading("Equal initial weights")
    same = {"W1": np.full((3, 4), 0.3), "b1": np.zeros(4), "W2": np.full((4, 2), 0.3), "b2": np.zeros(2)}
    p = {k: v.copy() for k, v in same.items()}
    for _ in range(200):
        g = grad(p)
        p = {k: p[k] - 0.5 * g[k] for k in p}
    a.code(f"W1 after 200 steps from equal weights (its columns are the hidden units):\n{np.round(p['W1'], 4)}")
    a.check("the hidden units stay identical through training", bool(np.allclose(p["W1"], p["W1"][:, :1])),
            "every column of W1 equal")
    report = dc.check_gradient(loss, grad, same)
    a.check("and the checker warns that such a point hides bugs that treat the units alike",
            any(f.kind == "symmetric_point" for f in report.findings), "symmetric_point")
    a.say("Identical units receive identical gradients, so they never differ: the hidden layer acts as one unit. "
          "Random initialisation breaks the symmetry.")


if __name__ == "__main__":
    main("two_layer_sigmoid", QUESTION, build)
