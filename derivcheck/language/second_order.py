"""Second order: the Hessian-vector product as the gradient of ``<v, grad f>``, and the Hessian when it is a matrix.

``H v`` is derived for any ``wrt``; for a vector ``wrt`` the Hessian is read off ``H v``
when it is linear in ``v`` through products and elementwise scalings (``X^T (s ⊙ X v)``
is ``X^T diag(s) X``). ``H v`` is checked against finite differences of the verified
gradient, and the Hessian against ``H v`` at a random ``v``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from derivcheck.language import nodes as n
from derivcheck.language.adjoint import gradient
from derivcheck.language.evaluate import evaluate
from derivcheck.language.nodes import Node, Variable
from derivcheck.language.printing import latex, text
from derivcheck.report.results import Form, Verification, verdict_ok
from derivcheck.language.printing.tree_code import declared_name
from derivcheck.language.rewrite import simplify

_AGREE = 1e-9


def linear_operator(e: Node, v: str) -> Node | None:
    """The matrix M with ``e = M v``, or None where ``e`` is not of that form."""
    if e.op == "var" and e.attrs[0] == v:
        return n.identity(e.shape[0])
    if not e.depends_on(v):
        return None
    if e.op == "matmul" and not e.args[0].depends_on(v) and e.args[0].ndim == 2:
        inner = linear_operator(e.args[1], v)
        return None if inner is None else n.matmul(e.args[0], inner)
    if e.op == "add":
        parts = [linear_operator(t, v) for t in e.args]
        return None if any(p is None for p in parts) else n.add(*parts)  # type: ignore[arg-type]
    if e.op == "mul":
        dependent = [f for f in e.args if f.depends_on(v)]
        if len(dependent) != 1:
            return None
        inner = linear_operator(dependent[0], v)
        if inner is None:
            return None
        scale = [f for f in e.args if not f.depends_on(v)]
        scalars = [f for f in scale if f.ndim == 0]
        vectors = [f for f in scale if f.ndim == 1]
        if len(scalars) + len(vectors) != len(scale):
            return None
        op = inner if not vectors else n.matmul(n.diag(vectors[0] if len(vectors) == 1 else n.mul(*vectors)), inner)
        return n.mul(*scalars, op) if scalars else op
    return None


def derive_second_order(p: Any, g: Node, code: Any) -> tuple[Form | None, Form | None, list[Verification], list[str]]:
    from derivcheck.checker.second_order import check_hvp

    names = ("V", "U", "v", "u", "Z_") if p.var.ndim == 2 else ("v", "u", "V", "U", "z_")
    name = next(c for c in names if c not in p.variables)
    vv = Variable(name, p.var.shape)
    variables = {**p.variables, name: vv}
    inner = n.total(n.mul(n.var(vv), g)) if g.ndim else n.mul(n.var(vv), g)
    hv = simplify(gradient(inner, p.var), variables, free=p.wrt)
    hv = n.broadcast_to(hv, p.var.shape) if hv.shape != p.var.shape else hv
    sizes, values = p.draw(31)
    args = [declared_name(a) for a in code.__code__.co_varnames[: code.__code__.co_argcount]]

    def grad(w: np.ndarray) -> np.ndarray:
        env = {**values, p.wrt: w}
        return np.asarray(code(*[env[a] for a in args]), dtype=float)

    def hvp(w: np.ndarray, v: np.ndarray) -> np.ndarray:
        return np.asarray(evaluate(hv, {**values, p.wrt: w, name: v}, sizes), dtype=float)

    w0 = np.asarray(values[p.wrt], dtype=float)
    report = check_hvp(grad, hvp, w0, seed=7, mode="full")
    row = report.params[0]
    ok = verdict_ok(report.verdict)
    checks = [Verification("Hessian-vector product", "finite differences of the verified gradient", sizes,
                           float(row.max_rel_error), ok, row.reason or report.verdict)]
    notes: list[str] = []
    hv_form = Form(text(hv), latex(hv), f"{name} is any {'matrix' if p.var.ndim == 2 else 'vector'} of the shape of {p.wrt}") if ok else \
        Form(None, None, "DEFECT, not shown: the Hessian-vector product disagrees with finite differences")
    hessian = None
    if p.var.ndim == 1:
        m = linear_operator(hv, name)
        if m is None and hv.op == "broadcast" and n.is_const(hv.args[0], 0):  # f is linear in w: H is 0_{D×D}
            m = n.broadcast_to(n.const(0), (p.var.shape[0], p.var.shape[0]))
        if m is None:
            notes.append("no matrix form of the Hessian was found; the Hessian-vector product stands")
        else:
            m = simplify(m, variables, free=p.wrt)
            v = np.random.default_rng(3).standard_normal(w0.shape)
            h = np.asarray(evaluate(m, values, sizes), dtype=float)
            err = max(float(np.max(np.abs(h @ v - hvp(w0, v)))) / max(float(np.max(np.abs(hvp(w0, v)))), 1e-300),
                      float(np.max(np.abs(h - h.T))) / max(float(np.max(np.abs(h))), 1e-300))
            agree = err <= _AGREE
            checks.append(Verification("Hessian", "the verified Hessian-vector product (and symmetry)", sizes, err, agree))
            hessian = Form(text(m), latex(m)) if agree and ok else Form(None, None, "DEFECT, not shown")
    elif p.var.ndim == 2:
        notes.append(f"the Hessian by a matrix {p.wrt} has four indices; the Hessian-vector product is shown")
    return hv_form, hessian, checks, notes
