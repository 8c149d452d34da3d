"""Backprop through a chain of ReLUs, in closed form, and the learner's own formulas checked as written, each one.

The learner names the weights from the output down: y_hat = ReLU(w1 ReLU(w2 ReLU(w3 x))), so w3 meets x first.
They write one formula per depth (a 1-, 2- and 3-layer net), and then the three together to update every weight
of the 3-layer net. Each is checked by finite differences of C in the net it was written for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import sympy as sp

import derivcheck as dc
from derivcheck.interfaces.derivation_scripts import Answer, main
from derivcheck.language.printing.sympy_forms import TextPrinter

QUESTION = ("For y_hat = ReLU(w1 ReLU(w2 ReLU(w3 x))) and C = 1/2 (y - y_hat)^2, what is dC/dw_k for every k? "
            "Are my formulas right: dC/dw1 = (y - ReLU(w1 x)) x, dC/dw2 = (y - ReLU(w1 ReLU(w2 x))) w1 x, "
            "dC/dw3 = (y - y_hat) w1 w2 x (using ReLU(w1 ReLU(w2 x)) = w1 w2 x for x > 0)?")

POINT = {"w1": 0.9, "w2": 1.3, "w3": 0.7}  # every unit on at x = 1.5
X, Y = 1.5, 0.2
UNIT_2_OFF = {"w1": 0.9, "w2": -1.3, "w3": 0.7}


def relu(v):
    return np.maximum(v, 0.0)


def forward(w: dict[str, float], depth: int, x: float = X) -> list[float]:
    """The pre-activations z_depth, ..., z_1 of a chain of ``depth`` ReLU units (w_depth meets x first)."""
    zs, a = [], x
    for k in range(depth, 0, -1):
        zs.append(w[f"w{k}"] * a)
        a = relu(zs[-1])
    return zs[::-1]  # z1 first: z1 = w1 a2 is the output unit's


def cost(w: dict[str, float], depth: int) -> float:
    return 0.5 * (Y - relu(forward(w, depth)[0])) ** 2


def closed_form(w: dict[str, float], depth: int) -> dict[str, float]:
    """dC/dw_k by the chain rule, one factor per step back: (y_hat - y) H(z1) w1 H(z2) ... H(z_k) a_(k+1)."""
    zs = forward(w, depth)
    inputs = [relu(z) for z in zs[1:]] + [X]  # what w_k multiplies: a_(k+1), and x for the first layer
    delta, out = (relu(zs[0]) - Y), {}
    for k in range(1, depth + 1):
        delta *= float(zs[k - 1] > 0)
        out[f"w{k}"] = delta * inputs[k - 1]
        delta *= w[f"w{k}"]
    return out


def derive_closed_form(a: Answer) -> None:
    """The chain rule for the 3-layer net, printed with the intermediates named, and SymPy's derivative as a check."""
    x, y, w1, w2, w3, e = sp.symbols("x y w1 w2 w3 e", real=True)  # e = y_hat - y
    h = sp.Function("H")  # the indicator 1[z > 0], ReLU's derivative (0 at 0 by convention)
    z3 = w3 * x
    a3 = sp.Max(z3, 0)
    z2 = w2 * a3
    a2 = sp.Max(z2, 0)
    z1 = w1 * a2
    a.say("Write z3 = w3 x, a3 = ReLU(z3), z2 = w2 a3, a2 = ReLU(z2), z1 = w1 a2, y_hat = ReLU(z1), and "
          "H(z) = 1[z > 0] for ReLU's derivative. The chain rule, one factor per step back:")
    grads = {"w1": e * h(z1) * a2, "w2": e * h(z1) * w1 * h(z2) * a3, "w3": e * h(z1) * w1 * h(z2) * w2 * h(z3) * x}
    # Printed with the names given above (z1, a2, ...), not as nested Max(0, ...): xreplace matches outermost first.
    named = {z1: sp.Symbol("z1"), a2: sp.Symbol("a2"), z2: sp.Symbol("z2"), a3: sp.Symbol("a3"), z3: sp.Symbol("z3")}
    for k, g in grads.items():
        shown = (g / e).xreplace(named)
        a.eq(rf"\frac{{\partial C}}{{\partial {k[0]}_{k[1]}}} = (\hat{{y}} - y)\, " + sp.latex(shown),
             f"dC/d{k} = (y_hat - y) {TextPrinter().doprint(shown)}")
    a.say("Every factor H(z) is 0 when its unit is off: then nothing below it learns from this sample. The sign "
          "comes from (y_hat - y): C = 1/2 (y - y_hat)^2 gives dC/dy_hat = y_hat - y, not y - y_hat.")
    exact = sp.diff((y - sp.Max(z1, 0)) ** 2 / 2, w1).subs({x: X, y: Y, w1: POINT["w1"], w2: POINT["w2"], w3: POINT["w3"]})
    a.check("SymPy's own derivative of C agrees with the chain rule at the point", abs(float(exact) - closed_form(POINT, 3)["w1"]) < 1e-12, "dC/dw1")


def as_arrays(fn: Callable[[dict[str, float]], dict[str, float]]) -> Callable[..., dict[str, np.ndarray]]:
    return lambda p: {k: np.asarray(v) for k, v in fn({k: float(v) for k, v in p.items()}).items()}


def check_closed_forms(a: Answer) -> None:
    """The closed form against finite differences of C, for the nets of depth 1, 2 and 3 (each formula below is
    compared with it), and where a unit is off."""
    for depth in (1, 2, 3):
        point = {f"w{k}": POINT[f"w{k}"] for k in range(1, depth + 1)}
        a.gradient(f"the chain rule's dC/dw_k, {depth}-layer net, every unit on", dc.check_gradient(
            lambda p, d=depth: cost({k: float(v) for k, v in p.items()}, d), as_arrays(lambda w, d=depth: closed_form(w, d)),
            {k: np.asarray(v) for k, v in point.items()}))
    a.gradient("the chain rule's dC/dw_k, 3-layer net, unit 2 off (w2 = -1.3: every dC/dw_k is 0)", dc.check_gradient(
        lambda p: cost({k: float(v) for k, v in p.items()}, 3), as_arrays(lambda w: closed_form(w, 3)),
        {k: np.asarray(v) for k, v in UNIT_2_OFF.items()}))


@dataclass(frozen=True)
class Formula:
    """One of the learner's formulas, in the net it was written for."""

    net: str
    depth: int
    weight: str
    text: str
    tex: str  # the net and the formula in LaTeX
    value: Callable[[dict[str, float]], float]
    right_up_to_sign: bool  # what the check shows once the sign is flipped
    why: str


def _y_hat(w: dict[str, float], depth: int) -> float:
    return float(relu(forward(w, depth)[0]))


FORMULAS = (
    Formula("1-layer net y_hat = ReLU(w1 x)", 1, "w1", "(y - ReLU(w1 x)) x",
            r"\hat{y} = \mathrm{ReLU}(w_1 x):\quad \frac{\partial C}{\partial w_1} = (y - \mathrm{ReLU}(w_1 x))\, x",
            lambda w: (Y - _y_hat(w, 1)) * X, True, "the one-layer gradient, sign aside"),
    Formula("2-layer net y_hat = ReLU(w1 ReLU(w2 x))", 2, "w2", "(y - ReLU(w1 ReLU(w2 x))) w1 x",
            r"\hat{y} = \mathrm{ReLU}(w_1 \mathrm{ReLU}(w_2 x)):\quad \frac{\partial C}{\partial w_2} = "
            r"(y - \mathrm{ReLU}(w_1 \mathrm{ReLU}(w_2 x)))\, w_1 x",
            lambda w: (Y - _y_hat(w, 2)) * w["w1"] * X, True, "H(z1) = H(z2) = 1 here, so w1 H(z1) H(z2) x = w1 x"),
    Formula("3-layer net", 3, "w3", "(y - y_hat) w1 w2 x",
            r"\text{3 layers}:\quad \frac{\partial C}{\partial w_3} = (y - \hat{y})\, w_1 w_2 x",
            lambda w: (Y - _y_hat(w, 3)) * w["w1"] * w["w2"] * X, True, "every H(z) = 1 here"),
    Formula("3-layer net, all three updated", 3, "w1", "(y - ReLU(w1 x)) x",
            r"\text{3 layers, all updated}:\quad \frac{\partial C}{\partial w_1} = (y - \mathrm{ReLU}(w_1 x))\, x",
            lambda w: (Y - _y_hat(w, 1)) * X, False,
            "w1 multiplies a2 = ReLU(w2 ReLU(w3 x)), not x, and y_hat is the whole chain's output, not ReLU(w1 x)"),
    Formula("3-layer net, all three updated", 3, "w2", "(y - ReLU(w1 ReLU(w2 x))) w1 x",
            r"\text{3 layers, all updated}:\quad \frac{\partial C}{\partial w_2} = "
            r"(y - \mathrm{ReLU}(w_1 \mathrm{ReLU}(w_2 x)))\, w_1 x",
            lambda w: (Y - _y_hat(w, 2)) * w["w1"] * X, False,
            "w2 multiplies a3 = ReLU(w3 x), not x, and y_hat is the 3-layer output, not ReLU(w1 ReLU(w2 x))"),
)


def _check_alone(f: Formula, grad: Callable[[dict[str, float]], float], point: dict[str, float]) -> dc.GradientReport:
    """check_gradient of C in f's net, for f's weight alone (the others held at the point)."""
    def value(v):
        return cost({**point, f.weight: float(v)}, f.depth)

    return dc.check_gradient(value, lambda v: np.asarray(grad({**point, f.weight: float(v)})), np.asarray(point[f.weight]))


def check_learner(a: Answer) -> None:
    """Each of the learner's formulas as written (the sign makes every one fail), then with the sign flipped."""
    a.say(f"The learner's formulas, each checked as written in the net it was written for, for its own weight alone "
          f"(the other weights held at the point), at w = {POINT}, x = {X}, y = {Y}, where every unit is on. "
          "In the last two, the learner updates w1 and w2 of the 3-layer net with the formulas of the 1- and 2-layer "
          "nets (their dC/dw3 is the third formula, the same net).")
    for f in FORMULAS:
        point = {f"w{k}": POINT[f"w{k}"] for k in range(1, f.depth + 1)}
        ours, true = f.value(point), closed_form(point, f.depth)[f.weight]
        a.eq(f.tex, f"{f.net}: dC/d{f.weight} = {f.text}")
        a.code(f"  as written: {ours:+.4f}   sign flipped: {-ours:+.4f}   true dC/d{f.weight}: {true:+.4f}   "
               f"(y_hat of this net = {_y_hat(point, f.depth):.4f})")
        a.gradient(f"{f.net}: dC/d{f.weight} = {f.text}, as written", _check_alone(f, f.value, point), expect="fail")
        flipped = _check_alone(f, lambda w, f=f: -f.value(w), point)
        a.gradient(f"{f.net}: dC/d{f.weight} = -({f.text}), the sign flipped", flipped,
                   expect="pass" if f.right_up_to_sign else "fail")
        a.say(f"With the sign flipped it is {'right' if f.right_up_to_sign else 'still wrong'}: {f.why}.")


def check_all_on_assumption(a: Answer) -> None:
    """ReLU(w1 ReLU(w2 x)) = w1 w2 x holds only while every unit is on: the third formula where unit 2 is off."""
    f = FORMULAS[2]
    ours, true = -f.value(UNIT_2_OFF), closed_form(UNIT_2_OFF, 3)[f.weight]
    a.say("The step ReLU(w1 ReLU(w2 x)) = w1 w2 x holds only while every unit is on (x > 0 is not enough: each "
          f"w_k must keep its unit on too). At w = {UNIT_2_OFF}, unit 2 is off: z2 = w2 a3 < 0, so H(z2) = 0 and "
          "nothing reaches w3, but the formula, even with its sign flipped, still moves it:")
    a.code(f"  -({f.text}) = {ours:+.4f}   true dC/dw3 = (y_hat - y) H(z1) w1 H(z2) w2 H(z3) x = {true:+.4f}")
    # C is flat in w3 there, so the true value is the chain rule's 0, checked against finite differences above
    # (the unit-2-off check); the formula is wrong by its whole value.
    a.check(f"3-layer net, unit 2 off: dC/dw3 = -({f.text}) is wrong", true == 0.0 and abs(ours) > 0.1,
            f"{ours:+.4f} where the verified dC/dw3 is {true:+.4f}")


def build(a: Answer) -> None:
    derive_closed_form(a)
    check_closed_forms(a)
    check_learner(a)
    check_all_on_assumption(a)
    a.say("So: every formula has the sign of (y - y_hat) where C = 1/2 (y - y_hat)^2 gives (y_hat - y); the three "
          "per-depth formulas are otherwise right while every unit is on, since then each H(z) is 1; and w1, w2 of "
          "the 3-layer net need that net's y_hat and their own inputs a2, a3, as the chain rule above says.")


if __name__ == "__main__":
    main("relu_chain", QUESTION, build)
