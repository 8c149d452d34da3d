"""Why is dE/db the sum over the batch of dE/dZ, and not the whole matrix?"""

from __future__ import annotations

import numpy as np

import derivcheck as dc
from derivcheck.interfaces.derivation_scripts import Answer, main

QUESTION = ("For Z = X W + 1 b^T, why is dE/db the sum over the batch axis of dE/dZ "
            "(np.sum(dZ, axis=0, keepdims=True)), and not the whole matrix?")


def build(a: Answer) -> None:
    a.say("Every sample n adds the same b to its row of Z: z_nj = sum_i x_ni w_ij + b_j. So b_j reaches the loss "
          "through N entries z_1j ... z_Nj, and the chain rule adds the N contributions. With G = dE/dZ (entries g_nj):")
    a.derivation("dense")
    a.eq(r"\frac{\partial E}{\partial b_{j}} = \sum_{n} \frac{\partial E}{\partial z_{nj}} "
         r"\frac{\partial z_{nj}}{\partial b_{j}} = \sum_{n} g_{nj} \cdot 1",
         "dE/db_j = sum_n (dE/dz_nj)(dz_nj/db_j) = sum_n g_nj")
    a.say("Per sample (N = 1) the sum has one term: dE/db = g, the delta itself. That is why the per-sample "
          "formula looks like 'the bias gradient is the delta', and why it must be summed for a batch.")
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((5, 3)), rng.standard_normal((3, 2)), np.zeros(2)
    t = rng.standard_normal((5, 2))
    dz = x @ w + b - t  # E = 0.5 * sum((Z - T)^2): dE/dZ = Z - T
    a.heading("What goes wrong with the whole matrix")
    a.code(f"dZ.shape = {dz.shape}; b.shape = {b.shape}\n"
           f"b - 0.1 * dZ has shape {(b - 0.1 * dz).shape}: b silently becomes one bias per sample (broadcasting)\n"
           f"b - 0.1 * dZ.sum(axis=0) has shape {(b - 0.1 * dz.sum(axis=0)).shape}")
    a.check("subtracting the whole matrix changes b's shape", (b - 0.1 * dz).shape == (5, 2), "(2,) -> (5, 2)")

    def loss(p):
        return 0.5 * float(np.sum((x @ p["w"] + p["b"] - t) ** 2))

    def grad(p, summed=True):
        d = x @ p["w"] + p["b"] - t
        return {"w": x.T @ d, "b": d.sum(axis=0) if summed else d}

    params = {"w": w, "b": b}
    a.gradient("the summed bias gradient", dc.check_gradient(loss, grad, params))
    try:
        dc.check_gradient(loss, lambda p: grad(p, summed=False), params)
        a.check("the whole matrix is refused", False, "no error")
    except dc.GradientShapeError as exc:
        a.check("the whole matrix is refused with a hint", "sum over axis 0" in str(exc), str(exc))
    a.heading("The classic slip dz2 = dh2 * (1 - dh2)")
    a.say("A sigmoid layer's backward must multiply the upstream gradient by s(1 - s) with s the layer's output; "
          "applying the formula to the upstream gradient itself is a common slip. The checker names it:")

    def sigmoid(z):
        return 0.5 * (1 + np.tanh(0.5 * z))

    z = rng.standard_normal((4, 3))
    slip = dc.check_backward(sigmoid, lambda dh, z: dh * (1 - dh), (z,))
    a.gradient("dz2 = dh2 * (1 - dh2) is caught", slip, expect="fail")
    a.check("and named as a derivative on the wrong quantity", any(f.kind == "wrong_quantity" for f in slip.findings),
            ", ".join(f.kind for f in slip.findings if f.severity == "error"))
    right = dc.check_backward(sigmoid, lambda dh, z: dh * sigmoid(z) * (1 - sigmoid(z)), (z,))
    a.gradient("dz2 = dh2 * s * (1 - s) passes", right)


if __name__ == "__main__":
    main("bias_gradient", QUESTION, build)
