"""ReLU's second derivative, the Hessian of a small ReLU network, and what a Newton step does there."""

from __future__ import annotations

import numpy as np
import sympy as sp

import derivcheck as dc
from derivcheck.interfaces.derivation_scripts import Answer, main
from derivcheck.symbolic.lower import lower

QUESTION = ("ReLU'' is 0 wherever it exists: does that make a ReLU network's Hessian zero, and what does it mean "
            "for second-order training (Newton's method)?")


def build(a: Answer) -> None:
    z = sp.Symbol("z", real=True)
    relu = lower(sp.Max(z, 0))
    d1, d2 = sp.diff(relu, z), sp.diff(relu, z, 2)
    a.eq(r"\operatorname{ReLU}(z) = " + sp.latex(relu) + r", \quad \operatorname{ReLU}'(z) = " + sp.latex(d1)
         + r", \quad \operatorname{ReLU}''(z) = " + sp.latex(d2) + r" \ (z \neq 0)",
         f"ReLU(z) = {sp.sstr(relu)}; ReLU'(z) = {sp.sstr(d1)}; ReLU''(z) = {sp.sstr(d2)} for z != 0")
    a.check("SymPy: ReLU'' = 0 on both sides of the kink", all(d2.subs(z, v) == 0 for v in (-2, -0.5, 0.5, 2)), "exact")
    from derivcheck.symbolic.second_order import second_order

    layer = second_order(dc.derive("relu"), "x")
    a.check("derivcheck derive relu --order 2: d2E/dx[p, q] dx[r, s] = 0 for the catalog's relu layer",
            layer.problem is None and layer.form.expr == 0, "verified against central differences of dE/dx")
    a.say("At z = 0 ReLU' jumps from 0 to 1, so ReLU'' does not exist there (a Dirac delta, in the sense of "
          "distributions); everywhere else it is 0. Yet the loss of a network is not linear in its weights:")
    x = sp.Matrix([1.0, -0.5])
    t = sp.Rational(1, 2)
    w = sp.Matrix(2, 2, sp.symbols("w11 w12 w21 w22", real=True))
    v = sp.Matrix(sp.symbols("v1 v2", real=True))
    hidden = (w * x).applyfunc(lambda e: lower(sp.Max(e, 0)))
    loss = sp.Rational(1, 2) * ((v.T * hidden)[0] - t) ** 2
    params = [*w, *v]
    a.eq(r"E = \tfrac{1}{2}\left(v^{\top} \operatorname{ReLU}(W x) - t\right)^{2}, \quad x = (1, -0.5), \ t = 1/2",
         "E = 1/2 (v^T ReLU(W x) - t)^2 with x = (1, -0.5), t = 1/2")
    point = dict(zip(params, [0.8, 0.3, -0.4, 0.9, 1.2, -0.7]))
    hess = sp.hessian(loss, params).subs(point)
    h = np.array(hess.evalf(), dtype=float)
    a.code("Hessian of E over (w11, w12, w21, w22, v1, v2), derived by SymPy, at the point:\n" + np.array2string(h, precision=4))
    eig = np.linalg.eigvalsh(h)
    a.code(f"eigenvalues: {np.round(eig, 4).tolist()}")
    a.check("the Hessian is not zero", bool(np.any(np.abs(h) > 1e-6)), f"max |H| {np.max(np.abs(h)):.3g}")
    a.check("and indefinite (eigenvalues of both signs)", bool(eig.min() < -1e-9 and eig.max() > 1e-9),
            f"min {eig.min():.3g}, max {eig.max():.3g}")
    a.say("The curvature comes from the products: v multiplies ReLU(W x), so d2E/dv dw is not zero, and "
          "(dE/dy)^2 terms give the Gauss-Newton part J^T J. Only the second derivative *through* the ReLU vanishes.")
    f_loss = sp.lambdify([params], loss)
    f_hess = sp.lambdify([params], sp.hessian(loss, params))
    f_grad = sp.lambdify([params], [sp.diff(loss, p) for p in params])
    p0 = np.array(list(point.values()))
    report = dc.check_hessian(lambda p: float(f_loss(p)), lambda p: np.array(f_hess(p), dtype=float), p0,
                              grad=lambda p: np.array(f_grad(p), dtype=float))
    a.gradient("the symbolic Hessian against finite differences of the gradient (check_hessian)", report)
    g = np.array(f_grad(p0), dtype=float)
    newton = -np.linalg.pinv(h) @ g  # the hidden unit that is off contributes zero rows: H is singular
    a.heading("A Newton step")
    a.say(f"H has rank {np.linalg.matrix_rank(h)} of {len(g)}: a unit that is off at this point (its pre-activation "
          f"is negative) contributes rows of zeros, so H cannot be inverted and the step uses its pseudo-inverse.")
    a.code(f"gradient g = {np.round(g, 4).tolist()}\nNewton step -pinv(H) g = {np.round(newton, 4).tolist()}\n"
           f"g . step = {float(g @ newton):.4g} ({'uphill' if g @ newton > 0 else 'downhill'} to first order)")
    a.say("With an indefinite Hessian the Newton step heads for the stationary point of the local quadratic model, "
          "which is a saddle, not a minimum: it can point uphill, and its length is set by the smallest |eigenvalue|. "
          "Second-order methods for ReLU networks therefore use a positive (semi)definite curvature, such as the "
          "Gauss-Newton matrix J^T J, or damp H + lambda I until it is positive definite.")
    damped = -np.linalg.solve(h + (abs(eig.min()) + 0.1) * np.eye(len(g)), g)
    e0, e_damped = float(f_loss(p0)), float(f_loss(p0 + 0.5 * damped))
    a.check("a damped step (H + lambda I positive definite) goes downhill", bool(g @ damped < 0 and e_damped < e0),
            f"E {e0:.4g} -> {e_damped:.4g}")


if __name__ == "__main__":
    main("relu_second_derivative", QUESTION, build)
