"""Batch norm's backward, with the mean and variance paths that hand derivations forget."""

from derivcheck.render import render_derivation

if __name__ == "__main__":
    print(render_derivation("batchnorm", "latex"))
