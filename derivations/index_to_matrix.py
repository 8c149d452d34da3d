"""From index form to matrix form without guessing: differentials and trace identities."""

from __future__ import annotations

import sympy as sp

from derivcheck.interfaces.derivation_scripts import Answer, main

QUESTION = ("How does the index form dE/dW_ij = sum_n x_ni g_nj become the matrix form X^T G, without guessing "
            "where the transposes go?")


def explicit(shape: tuple[int, int], name: str) -> sp.Matrix:
    return sp.Matrix(*shape, lambda i, j: sp.Symbol(f"{name}{i + 1}{j + 1}", real=True))


def build(a: Answer) -> None:
    a.say("The method: write the differential dE = tr(G^T dZ), where G = dE/dZ has Z's shape (a scalar is its own "
          "trace, and tr(G^T dZ) = sum_ij g_ij dz_ij is the chain rule in index form). Expand dZ, move each "
          "differential to the right end with the trace identities, and read the gradient off dE = tr(M^T dX): "
          "then dE/dX = M.")
    a.eq(r"\operatorname{tr}(A B) = \operatorname{tr}(B A), \quad \operatorname{tr}(A^{\top}) = \operatorname{tr}(A), "
         r"\quad \operatorname{tr}(a^{\top} b) = a^{\top} b \text{ for vectors}",
         "identities used: tr(AB) = tr(BA) (cyclic), tr(A^T) = tr(A), and a scalar is its own trace")
    a.heading("Column vectors: z = W^T a + b, a' = f(z)")
    for latex, text in (
        (r"dE = g^{\top} dz = g^{\top} (dW^{\top} a + W^{\top} da + db)", "dE = g^T dz = g^T (dW^T a + W^T da + db)"),
        (r"g^{\top} dW^{\top} a = \operatorname{tr}(a\, g^{\top} dW^{\top}) = \operatorname{tr}(dW\, g\, a^{\top}) "
         r"= \operatorname{tr}\big((a\, g^{\top})^{\top} dW\big)",
         "g^T dW^T a = tr(a g^T dW^T) (cyclic) = tr(dW g a^T) (transpose) = tr((a g^T)^T dW)"),
        (r"g^{\top} W^{\top} da = (W g)^{\top} da", "g^T W^T da = (W g)^T da"),
        (r"\frac{\partial E}{\partial W} = a\, g^{\top}, \quad \frac{\partial E}{\partial a} = W g, \quad "
         r"\frac{\partial E}{\partial b} = g", "dE/dW = a g^T; dE/da = W g; dE/db = g"),
    ):
        a.eq(latex, text)
    a.heading("Rows are samples: Z = A W + 1 b^T")
    for latex, text in (
        (r"dE = \operatorname{tr}(G^{\top} dZ) = \operatorname{tr}(G^{\top} dA\, W) + \operatorname{tr}(G^{\top} A\, dW) "
         r"+ \operatorname{tr}(G^{\top} \mathbf{1}\, db^{\top})",
         "dE = tr(G^T dZ) = tr(G^T dA W) + tr(G^T A dW) + tr(G^T 1 db^T)"),
        (r"\operatorname{tr}(G^{\top} dA\, W) = \operatorname{tr}(W G^{\top} dA) = \operatorname{tr}\big((G W^{\top})^{\top} dA\big)",
         "tr(G^T dA W) = tr(W G^T dA) (cyclic) = tr((G W^T)^T dA)"),
        (r"\operatorname{tr}(G^{\top} A\, dW) = \operatorname{tr}\big((A^{\top} G)^{\top} dW\big), \quad "
         r"\operatorname{tr}(G^{\top} \mathbf{1}\, db^{\top}) = db^{\top} G^{\top} \mathbf{1} = (G^{\top}\mathbf{1})^{\top} db",
         "tr(G^T A dW) = tr((A^T G)^T dW); tr(G^T 1 db^T) = db^T G^T 1 = (G^T 1)^T db"),
        (r"\frac{\partial E}{\partial A} = G W^{\top}, \quad \frac{\partial E}{\partial W} = A^{\top} G, \quad "
         r"\frac{\partial E}{\partial b} = G^{\top} \mathbf{1}", "dE/dA = G W^T; dE/dW = A^T G; dE/db = G^T 1"),
    ):
        a.eq(latex, text)
    a.heading("The same expression, entry by entry")
    n, d, m = 3, 2, 4
    big_a, w, g = explicit((n, d), "a"), explicit((d, m), "w"), explicit((n, m), "g")
    b = sp.Matrix(m, 1, lambda i, _: sp.Symbol(f"b{i + 1}", real=True))
    z = big_a * w + sp.ones(n, 1) * b.T
    e = sum(g[i, j] * z[i, j] for i in range(n) for j in range(m))  # E's first-order part: tr(G^T Z)
    cases = {
        "dE/dA = G W^T": (sp.Matrix(n, d, lambda i, j: sp.diff(e, big_a[i, j])), g * w.T),
        "dE/dW = A^T G": (sp.Matrix(d, m, lambda i, j: sp.diff(e, w[i, j])), big_a.T * g),
        "dE/db = G^T 1": (sp.Matrix(m, 1, lambda i, _: sp.diff(e, b[i])), g.T * sp.ones(n, 1)),
    }
    for label, (index, matrix) in cases.items():
        same = (index - matrix).expand() == sp.zeros(*index.shape)
        a.check(f"{label}: differentiating every entry gives exactly the matrix expression", same,
                f"SymPy, N={n}, D={d}, M={m}, exact")
    a.say("And in index form, the entry of A^T G at (i, j) is sum_n a_ni g_nj: the index form and the matrix form are "
          "one expression, written two ways. The catalog's dense layer derives the same (and verifies it numerically):")
    a.derivation("dense")


if __name__ == "__main__":
    main("index_to_matrix", QUESTION, build)
