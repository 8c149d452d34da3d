"""The matrix language: derive any typed matrix expression, and check a hand-typed gradient equation.

``parse`` reads declarations and expressions safely; ``adjoint`` differentiates in reverse
mode; ``rewrite`` gives the textbook form; ``printing`` and ``index_notation`` write it out;
``derivation`` and ``equation`` verify everything they return in the same run.
"""
