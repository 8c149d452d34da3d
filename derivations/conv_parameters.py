"""How many weights and biases a conv layer has, and why its bias gradient sums over batch and positions."""

from __future__ import annotations

import argparse
import sys

import numpy as np

import derivcheck as dc
from derivcheck.interfaces.derivation_scripts import Answer, run

QUESTION = ("How many weights and biases does a conv layer have (3x32x32 input, 32 filters of 5x5), and why is "
            "there one bias per output channel whose gradient sums the deltas over the batch and the positions?")


def counts(channels: int, filters: int, kernel: int) -> tuple[int, int]:
    return filters * channels * kernel * kernel, filters


def make(channels: int, filters: int, kernel: int):
    def build(a: Answer) -> None:
        weights, biases = counts(channels, filters, kernel)
        a.eq(r"\#W = F \cdot C \cdot k \cdot k, \quad \#b = F",
             "number of weights = F * C * k * k (filters x input channels x kernel); number of biases = F")
        a.code(f"F = {filters} filters, C = {channels} input channels, k = {kernel}: {filters}*{channels}*{kernel}*"
               f"{kernel} = {weights} weights and {biases} biases, {weights + biases} parameters in all")
        if (channels, filters, kernel) == (3, 32, 5):
            a.check("3x32x32 input, 32 filters of 5x5: 2400 weights + 32 biases = 2432", weights + biases == 2432,
                    f"{weights} + {biases}")
        a.say("The input's height and width do not appear: each filter is slid over every position with the same "
              "weights. One bias per filter is added at every position of that filter's output map, so its "
              "gradient collects every position of every sample:")
        a.eq(r"y_{nfhw} = b_f + \sum_{c,i,j} w_{fcij}\, x_{n,c,h+i,w+j}, \qquad "
             r"\frac{\partial E}{\partial b_f} = \sum_{n,h,w} g_{nfhw}",
             "y_nfhw = b_f + sum_cij w_fcij x_n,c,h+i,w+j;  dE/db_f = sum over n, h, w of g_nfhw")
        a.say("A separate bias per input channel would be redundant: b_fc would enter every output of filter f "
              "through the same sum, so only b_f = sum_c b_fc is identifiable (its gradient is the same for every c).")
        a.derivation("conv2d")
        rng = np.random.default_rng(0)
        x = rng.standard_normal((2, channels, 6, 6)) if channels <= 4 else rng.standard_normal((2, 2, 6, 6))
        c = x.shape[1]
        w = rng.standard_normal((3, c, 3, 3))
        b = rng.standard_normal(3)

        def conv(x, w, b):
            out = np.zeros((x.shape[0], w.shape[0], x.shape[2] - 2, x.shape[3] - 2))
            for i in range(3):
                for j in range(3):
                    out += np.einsum("nchw,fc->nfhw", x[:, :, i:i + out.shape[2], j:j + out.shape[3]], w[:, :, i, j])
            return out + b[None, :, None, None]

        def backward(g, x, w, b):
            dw = np.zeros_like(w)
            dx = np.zeros_like(x)
            for i in range(3):
                for j in range(3):
                    dw[:, :, i, j] = np.einsum("nfhw,nchw->fc", g, x[:, :, i:i + g.shape[2], j:j + g.shape[3]])
                    dx[:, :, i:i + g.shape[2], j:j + g.shape[3]] += np.einsum("nfhw,fc->nchw", g, w[:, :, i, j])
            return dx, dw, g.sum(axis=(0, 2, 3))

        a.gradient("db = sum of the deltas over batch and positions", dc.check_backward(conv, backward, (x, w, b)))
        a.gradient("db as a mean over positions fails", _per_batch(conv, backward, x, w, b),
                   expect="fail")

    return build


def _per_batch(conv, backward, x, w, b):
    def wrong(g, x, w, b):
        dx, dw, _ = backward(g, x, w, b)
        return dx, dw, g.sum(axis=(0, 2, 3)) / (g.shape[2] * g.shape[3])  # a mean over positions
    return dc.check_backward(conv, wrong, (x, w, b))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--filters", type=int, default=32)
    parser.add_argument("--kernel", type=int, default=5)
    ours, rest = parser.parse_known_args()
    sys.exit(run("conv_parameters", QUESTION, make(ours.channels, ours.filters, ours.kernel), rest))
