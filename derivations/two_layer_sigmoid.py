"""A two-layer sigmoid network with squared error, in sensitivities, and the factor of two."""

from __future__ import annotations

import numpy as np
import sympy as sp

import derivcheck as dc
from derivcheck.catalog.compose import Sequential, Step
from derivcheck.interfaces.derivation_scripts import Answer, bound, main
from derivcheck.symbolic.models import chained_latex, chained_text
from derivcheck.symbolic.presentation import printed_reading
from derivcheck.symbolic.verify import verify_model

QUESTION = ("For an input-hidden-output sigmoid network with J = 1/2 ||t - z||^2, what are the sensitivities "
            "delta_k and delta_j and the weight gradients? Why is a gradient for J = sum (t - z)^2 / N off by a "
            "factor of two, and why must the weights not start equal?")


def sigmoid(v):
    return 0.5 * (1 + np.tanh(0.5 * v))


def _hadamard_step(a: Answer) -> None:
    """Why the tensor form's delta step is an elementwise product G ⊙ f'(Z), derived on a symbolic 2 x 3 block."""
    a.heading("The f'(z) ⊙ step, derived")
    a.say("A = f(Z) entry by entry, so dA_mj/dZ_nk = f'(Z_nk) when (m, j) = (n, k) and 0 otherwise: the Jacobian of "
          "an elementwise map is diagonal. The chain rule's sum over (m, j) then keeps one term, which is why the "
          "delta step is an elementwise product and not a matrix product:")
    a.eq(r"\frac{\partial E}{\partial Z_{nk}} = \sum_{m,j} \frac{\partial E}{\partial A_{mj}} "
         r"\frac{\partial A_{mj}}{\partial Z_{nk}} = \sum_{m,j} G_{mj}\, f'(Z_{mj})\, \delta_{mn} \delta_{jk} "
         r"= G_{nk}\, f'(Z_{nk}), \qquad \frac{\partial E}{\partial Z} = G \odot f'(Z)",
         "∂E/∂Z_nk = Σ_mj G_mj ∂A_mj/∂Z_nk = Σ_mj G_mj f'(Z_mj) [m = n][j = k] = G_nk f'(Z_nk);  ∂E/∂Z = G ⊙ f'(Z)")
    z = sp.Matrix(2, 3, lambda i, j: sp.Symbol(f"z_{i}{j}", real=True))
    g = sp.Matrix(2, 3, lambda i, j: sp.Symbol(f"g_{i}{j}", real=True))
    sig = z.applyfunc(lambda u: 1 / (1 + sp.exp(-u)))
    jac = sp.Matrix(6, 6, lambda r, c: sp.diff(sig[r // 3, r % 3], z[c // 3, c % 3]))
    off = [jac[r, c] for r in range(6) for c in range(6) if r != c]
    a.check("the Jacobian of σ on a 2 x 3 block is diagonal (exactly, 30 off-diagonal entries)",
            all(sp.simplify(e) == 0 for e in off), "SymPy, exact")
    chain = (g.reshape(1, 6) * jac).reshape(2, 3)
    hadamard = g.multiply_elementwise(sig.applyfunc(lambda s: s * (1 - s)))
    a.check("Σ_mj G_mj ∂A_mj/∂Z_nk equals G ⊙ σ(Z) ⊙ (1 - σ(Z)) at every entry (σ'(z) = σ(z)(1 - σ(z)))",
            all(sp.simplify(e) == 0 for e in chain - hadamard), "SymPy, exact, 6 entries")
    a.say("With the sigmoid, f'(net) = f(net)(1 - f(net)) = Z ⊙ (1 - Z) in terms of the layer's own output, which "
          "is the factor the chain below writes in terms of the pre-activation Z2 = net_k.")


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
    _hadamard_step(a)
    a.say("For a batch, rows are samples. The same network, sigmoid output and J = 1/2 ||T - Z||^2 included, "
          "as a chain of catalog layers, derived one VJP per step and verified four ways:")
    net = Sequential("sigmoid_net", (
        Step("dense", {"x": "x", "w": "w1", "b": "b1"}, "z1"), Step("sigmoid", {"x": "z1"}, "y"),
        Step("dense", {"x": "y", "w": "w2", "b": "b2"}, "z2"), Step("sigmoid", {"x": "z2"}, "z"),
        Step("half_sse", {"y": "z", "t": "t"}, "J")),
        inputs={"x": "N D", "w1": "D H", "b1": "H", "w2": "H M", "b2": "M", "t": "N M"}, fixed=("x", "t"),
        question="the input-hidden-output sigmoid network of this question, over a batch")
    for latex, text in zip(chained_latex(net, printed_reading), chained_text(net, printed_reading), strict=True):
        a.eq(latex, text)
    for r in verify_model(net).rows:
        a.check(f"sigmoid_net d{r.arg}: {' = '.join(r.agreeing)}", r.ok, f"max rel diff {bound(r.max_rel_error)}")
    a.say("The catalog's mlp2 is a different network: a linear output layer and a mean squared error, hence no "
          "f'(net_k) factor and a 2/(NM) in its first delta.")
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
