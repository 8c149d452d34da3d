"""Backpropagation through a 2-layer sigmoid net with mean squared error, one VJP per layer.
The factor 2 of d(y - t)^2/dy appears in Delta_{z2}: forgetting it halves every gradient."""

from derivcheck.render import render_derivation

if __name__ == "__main__":
    print(render_derivation("mlp2", "latex"))
