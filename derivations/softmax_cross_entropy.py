"""The softmax Jacobian, softmax + cross-entropy, and why only the full Jacobian gives p - y."""

from __future__ import annotations

import numpy as np
import sympy as sp

import derivcheck as dc
from derivcheck.interfaces.derivation_scripts import Answer, main

QUESTION = ("What is the softmax Jacobian, why is d(cross-entropy)/d(logits) = p - y ((P - Y)/N for a batch "
            "mean), and why does using only the Jacobian's diagonal give a wrong gradient?")


def build(a: Answer) -> None:
    k = 3
    z = sp.symbols(f"z1:{k + 1}", real=True)
    y = sp.symbols(f"y1:{k + 1}", nonnegative=True)
    denom = sum(sp.exp(zi) for zi in z)
    p = [sp.exp(zi) / denom for zi in z]
    jac = sp.Matrix(k, k, lambda i, j: sp.simplify(sp.diff(p[i], z[j])))
    ps = sp.symbols(f"p1:{k + 1}", positive=True)
    in_p = jac.applyfunc(lambda e: sp.simplify(e.subs({sp.exp(zi) / denom: pi for zi, pi in zip(z, ps)})))
    expected = sp.diag(*ps) - sp.Matrix(ps) * sp.Matrix(ps).T
    as_p = sp.simplify(jac - expected.subs({pi: pe for pi, pe in zip(ps, p)}))
    a.say("Softmax p_i = exp(z_i) / sum_j exp(z_j). Differentiating each p_i by each z_j (SymPy, K = 3):")
    a.eq(r"\frac{\partial p_i}{\partial z_j} = p_i (\delta_{ij} - p_j), \qquad "
         r"J = \operatorname{diag}(p) - p\,p^{\top} = " + sp.latex(expected),
         "dp_i/dz_j = p_i (delta_ij - p_j): J = diag(p) - p p^T")
    a.check("the SymPy Jacobian equals diag(p) - p p^T", as_p == sp.zeros(k, k), "exact, K = 3")
    loss = -sum(yi * sp.log(pi) for yi, pi in zip(y, p))
    grad = [sp.simplify(sp.diff(loss, zi)) for zi in z]
    onehot = [sp.simplify(g.subs(y[2], 1 - y[0] - y[1]) - (pe - ye).subs(y[2], 1 - y[0] - y[1]))
              for g, pe, ye in zip(grad, p, y)]
    a.say("Cross-entropy L = -sum_i y_i log p_i with target rows that sum to 1. The chain rule through the full "
          "Jacobian, dL/dz_j = sum_i (-y_i / p_i) p_i (delta_ij - p_j) = -y_j + p_j sum_i y_i:")
    a.eq(r"\frac{\partial L}{\partial z_j} = p_j - y_j, \qquad \frac{\partial E}{\partial Z} = \frac{P - Y}{N} "
         r"\text{ for } E = \frac{1}{N} \sum_n L_n", "dL/dz = p - y; for the batch mean E, dE/dZ = (P - Y) / N")
    a.check("SymPy's dL/dz_j is p_j - y_j once the targets sum to 1", all(sp.simplify(e) == 0 for e in onehot), "exact")
    a.say("Stable form: log p_i = z_i - logsumexp(z), with logsumexp(z) = m + log sum_j exp(z_j - m), m = max_j z_j, "
          "so no exp overflows; the gradient is unchanged because p is invariant to the shift.")
    zz = np.array([[1000.0, 1001.0, 999.0]])
    m = zz.max(axis=1, keepdims=True)
    stable = zz - (m + np.log(np.exp(zz - m).sum(axis=1, keepdims=True)))
    with np.errstate(all="ignore"):
        naive = np.log(np.exp(zz) / np.exp(zz).sum(axis=1, keepdims=True))
    a.check("log-softmax at logits near 1000: stable is finite, naive is not",
            bool(np.all(np.isfinite(stable)) and not np.all(np.isfinite(naive))), f"stable {np.round(stable, 4).tolist()}")
    a.heading("The catalog's derivation")
    a.derivation("softmax_cross_entropy")
    a.heading("Softmax as an activation: the full Jacobian, or only its diagonal")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 5))

    def softmax(v):
        e = np.exp(v - v.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def full(dy, v):
        s = softmax(v)
        return s * (dy - np.sum(dy * s, axis=1, keepdims=True))  # dy J, row by row

    a.say("Multiplying the upstream gradient by the full Jacobian, dy J = p * (dy - sum(dy * p)), is right; "
          "multiplied into cross-entropy's -y/p it gives p - y again. Only the diagonal, dy * p * (1 - p), is not:")
    a.gradient("softmax backward with the full Jacobian", dc.check_backward(softmax, full, (x,)))
    diag = dc.check_backward(softmax, lambda dy, v: dy * softmax(v) * (1 - softmax(v)), (x,))
    a.gradient("softmax backward with only the diagonal", diag, expect="fail")
    a.check("named as the diagonal of the softmax Jacobian",
            any(f.kind == "wrong_quantity" and f.detail.get("softmax") for f in diag.findings), "wrong_quantity")


if __name__ == "__main__":
    main("softmax_cross_entropy", QUESTION, build)
