"""The one printing module: every notation derivcheck prints, from one table of glyphs.

``notation`` owns the glyphs (Unicode or ASCII text, LaTeX macros). The printers all read it, so text,
LaTeX and code cannot drift apart: ``sympy_forms`` prints a layer's SymPy index and matrix forms as
text and LaTeX, ``sympy_code`` its matrix forms as NumPy; ``trees`` prints matrix-language trees as
text and LaTeX, ``tree_code`` as NumPy; ``index`` prints the index forms of typed expressions.
"""

from derivcheck.language.printing import notation
from derivcheck.language.printing.tree_code import HELPERS, CodePrinter
from derivcheck.language.printing.trees import MathPrinter, latex, text

__all__ = ["HELPERS", "CodePrinter", "MathPrinter", "latex", "notation", "text"]
