"""Batch norm's backward: the mean and variance paths that hand derivations forget."""

from __future__ import annotations

import numpy as np

import derivcheck as dc
from derivcheck.interfaces.derivation_scripts import Answer, main

QUESTION = ("What is batch norm's backward, and what goes wrong when the batch statistics' own dependence on x "
            "is forgotten?")


def build(a: Answer) -> None:
    a.say("x_hat = (x - mu) / sigma with mu and sigma computed from the same batch: every x_nd moves mu_d and "
          "sigma_d, and through them every x_hat_kd. Folding the three paths together:")
    a.eq(r"\frac{\partial E}{\partial X} = \frac{1}{\sigma} \odot \left(\hat{G} - \overline{\hat{G}} - \hat{X} "
         r"\odot \overline{\hat{G} \odot \hat{X}}\right), \quad \hat{G} = G \odot \gamma",
         "dX = (Ghat - mean_n(Ghat) - Xhat * mean_n(Ghat * Xhat)) / sigma, with Ghat = G * gamma")
    a.derivation("batchnorm")
    rng = np.random.default_rng(0)
    x, g, b = rng.standard_normal((6, 3)), rng.standard_normal(3), rng.standard_normal(3)

    def fwd(x, g, b):
        return g * (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5) + b

    def bwd(dy, x, g, b, paths=True):
        s = np.sqrt(x.var(0) + 1e-5)
        xh = (x - x.mean(0)) / s
        gh = dy * g
        dx = (gh - gh.mean(0) - xh * (gh * xh).mean(0)) / s if paths else gh / s
        return dx, (dy * xh).sum(0), dy.sum(0)

    a.gradient("the folded backward", dc.check_backward(fwd, bwd, (x, g, b)))
    a.gradient("dx = G * gamma / sigma alone (mean and variance paths forgotten)",
               dc.check_backward(fwd, lambda *args: bwd(*args, paths=False), (x, g, b)), expect="fail")


if __name__ == "__main__":
    main("batchnorm", QUESTION, build)
