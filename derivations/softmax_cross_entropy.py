"""What is the softmax + cross-entropy gradient? Derived (not typed): (p - t) / N."""

from derivcheck.render import render_derivation

if __name__ == "__main__":
    print("% Mean cross-entropy of softmax(z) against targets t whose rows sum to 1.")
    print(render_derivation("softmax_cross_entropy", "latex"))
