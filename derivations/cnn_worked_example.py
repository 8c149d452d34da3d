"""A worked CNN example with numbers: conv -> max-pool -> sigmoid -> fully connected, backward step by step."""

from __future__ import annotations

import numpy as np

import derivcheck as dc
from derivcheck.interfaces.derivation_scripts import Answer, main

QUESTION = ("A 5x5 input, a 2x2 convolution (stride 1, a 4x4 map), 2x2 max-pooling (stride 2, a 2x2 map), a "
            "sigmoid, and a fully connected layer of two units H1, H2 with deltas 0.25 and -0.15: what are the "
            "deltas at every layer, and the kernel's and bias's gradients?")

DELTA_H = np.array([0.25, -0.15])
W_FC = np.array([[0.61, 0.02], [0.82, -0.50], [0.96, 0.23], [-1.00, 0.17]])  # pooled units 11, 12, 21, 22 -> H1, H2
SIGMOID_OUT = np.array([0.58, 0.57, 0.65, 0.55])
KERNEL = np.array([[0.5, -0.2], [0.1, 0.3]])
BIAS = 0.1


def sigmoid(v):
    return 0.5 * (1 + np.tanh(0.5 * v))


def conv(x, k, b):
    return np.array([[np.sum(x[i:i + 2, j:j + 2] * k) for j in range(4)] for i in range(4)]) + b


def pool(y):
    return np.array([[y[2 * i:2 * i + 2, 2 * j:2 * j + 2].max() for j in range(2)] for i in range(2)])


def design_input() -> np.ndarray:
    """A 5x5 input whose conv map has, in each pooling window, its maximum at a chosen place with the logit of
    the given sigmoid output, and smaller values elsewhere (16 linear equations in 25 unknowns)."""
    logits = np.log(SIGMOID_OUT / (1 - SIGMOID_OUT)).reshape(2, 2)
    target = np.empty((4, 4))
    spots = {(0, 0): (1, 0), (0, 1): (0, 1), (1, 0): (1, 1), (1, 1): (0, 0)}  # arg-max inside each window
    steps = np.array([[-0.40, -0.25], [-0.55, -0.30]])
    for (i, j), (a, b) in spots.items():
        window = logits[i, j] + steps
        window[a, b] = logits[i, j]
        target[2 * i:2 * i + 2, 2 * j:2 * j + 2] = window
    rows, rhs = [], []
    for i in range(4):
        for j in range(4):
            row = np.zeros((5, 5))
            row[i:i + 2, j:j + 2] = KERNEL
            rows.append(row.ravel())
            rhs.append(target[i, j] - BIAS)
    x, *_ = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)
    return x.reshape(5, 5)


def build(a: Answer) -> None:
    x = design_input()
    y = conv(x, KERNEL, BIAS)
    s = sigmoid(pool(y)).ravel()
    a.code(f"input x (5x5, chosen so that the pooled sigmoid outputs are the given ones):\n{np.round(x, 4)}\n"
           f"kernel:\n{KERNEL}\nbias: {BIAS}\nconv map (4x4):\n{np.round(y, 4)}\n"
           f"pooled sigmoid outputs (11, 12, 21, 22): {np.round(s, 4).tolist()}")
    a.compare("the pooled sigmoid outputs are 0.58, 0.57, 0.65, 0.55", s, SIGMOID_OUT, 1e-12)
    a.heading("1. Deltas at the sigmoid layer")
    a.eq(r"g^{s}_{u} = \sum_{k} w_{uk}\, \delta_{k}, \qquad g^{z}_{u} = g^{s}_{u}\, s_u (1 - s_u)",
         "g_s_u = sum_k w_uk delta_k (from H1, H2); g_z_u = g_s_u * s_u (1 - s_u) (through the sigmoid)")
    g_s = W_FC @ DELTA_H
    g_z = g_s * SIGMOID_OUT * (1 - SIGMOID_OUT)
    a.code("unit  sum_k w_uk delta_k                      s(1 - s)   delta before the sigmoid\n" + "\n".join(
        f" {u}   {W_FC[i, 0]:+.2f}*0.25 {W_FC[i, 1]:+.2f}*(-0.15) = {g_s[i]:+.4f}   {SIGMOID_OUT[i] * (1 - SIGMOID_OUT[i]):.4f}"
        f"     {g_z[i]:+.6f}" for i, u in enumerate(("11", "12", "21", "22"))))
    a.heading("2. The 4x4 delta at the conv output, through the pooling arg-max")
    g_y = np.zeros((4, 4))
    for u, (i, j) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        window = y[2 * i:2 * i + 2, 2 * j:2 * j + 2]
        r, c = np.unravel_index(np.argmax(window), (2, 2))
        g_y[2 * i + r, 2 * j + c] = g_z[u]
    a.code(f"each pooled delta goes to its window's arg-max, zeros elsewhere:\n{np.round(g_y, 6)}")
    a.heading("3. The kernel's and the bias's gradients")
    a.eq(r"\frac{\partial E}{\partial k_{ab}} = \sum_{i,j} g^{y}_{ij}\, x_{i+a,\,j+b}, \qquad "
         r"\frac{\partial E}{\partial b} = \sum_{i,j} g^{y}_{ij}",
         "dE/dk_ab = sum_ij g_y_ij x_(i+a, j+b);  dE/db = sum_ij g_y_ij")
    dk = np.array([[np.sum(g_y * x[a_:a_ + 4, b_:b_ + 4]) for b_ in range(2)] for a_ in range(2)])
    db = float(g_y.sum())
    a.code(f"dE/dk =\n{np.round(dk, 6)}\ndE/db = {db:.6f}")
    a.heading("4. The whole chain, by finite differences on the same network")
    a.say("E is taken linear in H with the given deltas (E = 0.25 H1 - 0.15 H2), so dE/dH1 = 0.25 and dE/dH2 = -0.15 "
          "exactly as given; derivcheck differentiates the whole network numerically and compares.")

    def loss(p):
        h = sigmoid(pool(conv(p["x"], p["k"], p["b"]))).ravel() @ W_FC
        return float(h @ DELTA_H)

    def grad(p):
        dx = np.zeros((5, 5))
        for i in range(4):
            for j in range(4):
                dx[i:i + 2, j:j + 2] += g_y[i, j] * p["k"]
        return {"x": dx, "k": dk, "b": np.asarray(db)}

    a.gradient("dE/dk, dE/db and dE/dx of the whole chain", dc.check_gradient(
        loss, grad, {"x": x, "k": KERNEL.copy(), "b": np.asarray(BIAS)}))
    catalog_chain(a, x, g_y, dk, db)


def catalog_chain(a: Answer, x: np.ndarray, g_y: np.ndarray, dk: np.ndarray, db: float) -> None:
    """The same network from derivcheck's catalog layers: every named delta from Sequential.deltas."""
    from derivcheck.catalog.compose import Sequential, Step

    a.heading("5. The same network from catalog layers")
    net = Sequential("worked_cnn", steps=(
        Step("conv2d", {"x": "x", "w": "k", "b": "kb"}, "y", hyper={"stride": 1, "pad": 0}),
        Step("maxpool2d", {"x": "y"}, "p", hyper={"kernel": 2, "stride": 2}),
        Step("sigmoid", {"x": "p"}, "s"),
        Step("flatten", {"x": "s"}, "u"),
        Step("dense", {"x": "u", "w": "w", "b": "c"}, "h"),
        Step("half_sse", {"y": "h", "t": "t"}, "E"),
    ), inputs={"x": "N C H S", "k": "F C KH KW", "kb": "F", "w": "P M", "c": "M", "t": "N M"}, fixed=("x", "t"))
    values = {"x": x[None, None], "k": KERNEL[None, None].copy(), "kb": np.array([BIAS]), "w": W_FC.copy(),
              "c": np.zeros(2)}
    # A squared error whose target sits at H minus the given deltas has exactly those deltas: dE/dH = H - t.
    h = net.forward_values({**values, "t": np.zeros((1, 2))})["h"]
    values["t"] = h - DELTA_H[None]
    deltas = net.deltas(values)
    a.say("conv2d (stride 1, no padding) -> maxpool2d (2x2, stride 2) -> sigmoid -> flatten -> dense -> half_sse, "
          "with the target t = H - (0.25, -0.15) so that dE/dH is the given deltas. Sequential.deltas gives the "
          "gradient in every named value:")
    a.code(f"G_h = {np.round(deltas['h'], 6).tolist()}\nG_u (flattened pool, = sum_k w_uk delta_k) = "
           f"{np.round(deltas['u'], 6).tolist()}\nG_y (4x4, at the conv output):\n{np.round(deltas['y'][0, 0], 6)}")
    a.compare("the catalog chain's delta at the conv output is the one computed by hand above", deltas["y"][0, 0], g_y, 1e-12)
    a.compare("and so are the kernel's and the bias's gradients", np.concatenate([deltas["k"].ravel(), deltas["kb"]]),
              np.concatenate([dk.ravel(), [db]]), 1e-12)


if __name__ == "__main__":
    main("cnn_worked_example", QUESTION, build)
