"""What is the derivative of ReLU, and its second derivative? ReLU'(0) = 0 by convention."""

import sympy as sp

from derivcheck.render import render_derivation

if __name__ == "__main__":
    t = sp.Symbol("t", real=True)
    relu = sp.Piecewise((t, t > 0), (0, True))
    print(render_derivation("relu", "latex"))
    print(f"% ReLU''(t) = {sp.latex(sp.diff(relu, t, 2))} for t != 0 (a Dirac delta at 0 in the sense of distributions)")
