"""Backprop through a chain of ReLUs, in closed form, and the formula asked about checked as written."""

from __future__ import annotations

import numpy as np
import sympy as sp

import derivcheck as dc
from derivcheck.interfaces.derivation_scripts import Answer, main

QUESTION = ("For y_hat = ReLU(w1 ReLU(w2 ReLU(w3 x))) and C = 1/2 (y - y_hat)^2, what is dC/dw_k for every k? "
            "And why is (y - ReLU(w1 x)) x wrong?")


def relu(v):
    return np.maximum(v, 0.0)


def build(a: Answer) -> None:
    x, y, w1, w2, w3 = sp.symbols("x y w1 w2 w3", real=True)
    h = sp.Function("H")  # the indicator 1[z > 0], ReLU's derivative (0 at 0 by convention)
    z3 = w3 * x
    a3 = sp.Max(z3, 0)
    z2 = w2 * a3
    a2 = sp.Max(z2, 0)
    z1 = w1 * a2
    yhat = sp.Max(z1, 0)
    a.say("Write z3 = w3 x, a3 = ReLU(z3), z2 = w2 a3, a2 = ReLU(z2), z1 = w1 a2, y_hat = ReLU(z1), and "
          "H(z) = 1[z > 0] for ReLU's derivative. The chain rule, one factor per step back:")
    e = sp.Symbol("e")  # y_hat - y
    grads = {
        "w1": e * h(z1) * a2,
        "w2": e * h(z1) * w1 * h(z2) * a3,
        "w3": e * h(z1) * w1 * h(z2) * w2 * h(z3) * x,
    }
    # Printed with the names given above (z1, a2, ...), not as nested Max(0, ...): xreplace matches outermost first.
    named = {z1: sp.Symbol("z1"), a2: sp.Symbol("a2"), z2: sp.Symbol("z2"), a3: sp.Symbol("a3"), z3: sp.Symbol("z3")}
    for k, g in grads.items():
        shown = (g / e).xreplace(named)
        a.eq(rf"\frac{{\partial C}}{{\partial {k[0]}_{k[1]}}} = (\hat{{y}} - y)\, " + sp.latex(shown),
             f"dC/d{k} = (y_hat - y) * {sp.sstr(shown)}")
    a.say("Every factor H(z) is 0 when its unit is off: then nothing below it learns from this sample. The sign "
          "comes from (y_hat - y): C = 1/2 (y - y_hat)^2 gives dC/dy_hat = y_hat - y, not y - y_hat.")
    point = {"w1": 0.9, "w2": 1.3, "w3": 0.7}
    xv, yv = 1.5, 0.2

    def value(p):
        return 0.5 * (yv - relu(p["w1"] * relu(p["w2"] * relu(p["w3"] * xv)))) ** 2

    flags = sp.symbols("H1 H2 H3")
    compiled = {k: sp.lambdify((x, w1, w2, w3, e, *flags), g.subs({h(z1): flags[0], h(z2): flags[1], h(z3): flags[2]}))
                for k, g in grads.items()}

    def closed_form(p):
        q3 = p["w3"] * xv
        q2 = p["w2"] * relu(q3)
        q1 = p["w1"] * relu(q2)
        on = [float(q > 0) for q in (q1, q2, q3)]
        return {k: float(f(xv, p["w1"], p["w2"], p["w3"], relu(q1) - yv, *on)) for k, f in compiled.items()}

    def as_arrays(fn):
        return lambda p: {k: np.asarray(v) for k, v in fn({k: float(v) for k, v in p.items()}).items()}

    params = {k: np.asarray(v) for k, v in point.items()}
    a.gradient("the closed form, at a point where every unit is on", dc.check_gradient(
        lambda p: value({k: float(v) for k, v in p.items()}), as_arrays(closed_form), params))
    exact = sp.diff(sp.Rational(1, 2) * (y - yhat) ** 2, w1).subs({x: xv, y: yv, **{sp.Symbol(k, real=True): v for k, v in point.items()}})
    a.check("SymPy's own derivative of C agrees at that point", abs(float(exact) - closed_form(point)["w1"]) < 1e-12, "dC/dw1")

    a.say("The formula asked about, dC/dw1 = (y - ReLU(w1 x)) x, is checked as written, for w1 alone (w2, w3 held "
          "at the same point): it is a formula for w1 only, so nothing is invented for the other weights.")
    others = {"w2": point["w2"], "w3": point["w3"]}

    def value_w1(w):
        return value({"w1": float(w), **others})

    asked = dc.check_gradient(value_w1, lambda w: np.asarray((yv - relu(float(w) * xv)) * xv), np.asarray(point["w1"]))
    a.gradient("dC/dw1 = (y - ReLU(w1 x)) x, as asked", asked, expect="fail")
    q2 = point["w2"] * relu(point["w3"] * xv)
    a2v, yhat_v = relu(q2), relu(point["w1"] * relu(q2))
    true_w1 = closed_form(point)["w1"]
    a.code(f"at w = {point}, x = {xv}, y = {yv}:\n"
           f"  asked:   (y - ReLU(w1 x)) x = {(yv - relu(point['w1'] * xv)) * xv:.4f}\n"
           f"  correct: (y_hat - y) H(z1) a2 = ({yhat_v:.4f} - {yv}) * 1 * {a2v:.4f} = {true_w1:.4f}")
    a.compare("the correct dC/dw1 is (y_hat - y) H(z1) a2, with y_hat the whole chain and a2 its input",
              true_w1, (yhat_v - yv) * float(point["w1"] * a2v > 0) * a2v, tol=1e-12)
    a.say("Two things differ. The sign: C = 1/2 (y - y_hat)^2 gives dC/dy_hat = y_hat - y, not y - y_hat. The "
          "input: w1 multiplies a2 = ReLU(w2 ReLU(w3 x)), not x, and y_hat is the output of the whole chain, not "
          "ReLU(w1 x); the formula asked about is the gradient of a one-layer net. Flipping the sign alone still fails:")
    flipped = dc.check_gradient(value_w1, lambda w: np.asarray((relu(float(w) * xv) - yv) * xv), np.asarray(point["w1"]))
    a.gradient("(ReLU(w1 x) - y) x, the sign fixed, the input not", flipped, expect="fail")
    off = {k: np.asarray(v) for k, v in {"w1": 0.9, "w2": -1.3, "w3": 0.7}.items()}
    a.gradient("the closed form where unit 2 is off (dC/dw1 = dC/dw2 = dC/dw3 = 0 there)", dc.check_gradient(
        lambda p: value({k: float(v) for k, v in p.items()}), as_arrays(closed_form), off))


if __name__ == "__main__":
    main("relu_chain", QUESTION, build)
