"""Layer declaration -> index form -> matrix form -> LaTeX and compiled NumPy functions."""
