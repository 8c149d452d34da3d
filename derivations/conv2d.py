"""Which kernel orientation does the conv backward use, and how many weights and biases does a
conv layer have? The input gradient is the correlation with the flipped kernel."""

from derivcheck.render import render_derivation

if __name__ == "__main__":
    print(render_derivation("conv2d", "latex"))
