"""Why is the bias gradient a sum over the batch axis, and how does dE/dW_pq = sum_n x_np delta_nq
become dE/dW = X^T Delta? Prints the dense layer's derivation in LaTeX."""

from derivcheck.render import render_derivation

if __name__ == "__main__":
    print("% Y = X W + 1 b^T: every sample adds the same b, so b's gradient collects all rows of Delta.")
    print(render_derivation("dense", "latex"))
