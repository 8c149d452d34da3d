"""How does a gradient pass through max-pooling, and what about ties? It is routed to the
window's first arg-max; at a tie any convex split of dy is a valid subgradient."""

from derivcheck.render import render_derivation

if __name__ == "__main__":
    print(render_derivation("maxpool2d", "latex"))
