"""Trees as text, LaTeX and NumPy source: textbook notation, vectors as columns.

``x @ A @ x`` reads ``xᵀ A x``; a sum over rows reads ``Gᵀ 1_N``; ``*`` between matrices is
the Hadamard product ``⊙``; a scalar divisor is written last, ``Xᵀ (P - T) / N``. The glyphs
(Unicode or ASCII, and the LaTeX macros) are those of :mod:`derivcheck.language.printing.notation`.

Every text printed here parses back (:func:`derivcheck.language.parse.parse_expression`) to a
tree of the same value that prints the same. Juxtaposition is the matrix product, and a scalar
times a matrix; ``aᵀ b`` is an inner product and ``a bᵀ`` an outer one; a ones vector carries its
length, ``1_N``, except where it is one term of a sum or product of its own shape, ``1 - σ(X w)``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import sympy as sp

from derivcheck.language.nodes import Node, broadcast
import derivcheck.language.printing.notation as notation
from derivcheck.language.printing.notation import Glyphs

GREEK = notation.GREEK_NAMES

# Operations printed as a function of their operand, by their own name.
_NAMED_OPS = ("softmax", "logsumexp", "trace", "det", "logdet", "diag")


def _axis_to_print(x: Node) -> int | None:
    """The axis of softmax or logsumexp where it is not the one the parser assumes without ``axis=``."""
    if x.op == "logsumexp":
        return x.attrs[0]
    if x.op == "softmax" and x.args[0].ndim > 1 and x.attrs[0] % x.args[0].ndim != x.args[0].ndim - 1:
        return x.attrs[0]
    return None


# A text that ends in an exponent: a transpose after it would read as part of the exponent.
_ENDS_IN_POWER = re.compile(r"(\^∘?-?[\d/]+|\*\*-?[\d/]+|[⁰¹²³⁴⁵⁶⁷⁸⁹]|\^\{[^}]*\})$")

# Precedence: a sum binds loosest, then products, then unary minus, then powers and atoms.
# _JUXT: a vector spread along an axis by a ones vector (s 1_Dᵀ, 1_N μᵀ), which binds tighter than ⊙ and ⊘ when read
# back, so that it needs no brackets as a Hadamard factor: softmax(X) ⊙ (G 1_K) 1_Kᵀ. A product of matrices or a
# sum over rows keeps its brackets there, ((X V) ⊙ G)ᵀ 1_N, where they are what a reader looks for.
_SUM, _PRODUCT, _JUXT, _NEG, _ATOM = 1, 2, 2.5, 3, 4


# One printing rule per operation, in a table filled by ``@_prints("op")`` on MathPrinter's methods.
_PRINT_RULES: dict[str, Callable[[MathPrinter, Node], tuple[str, int]]] = {}


def _prints(op: str) -> Callable[[Callable[..., tuple[str, int]]], Callable[..., tuple[str, int]]]:
    def register(rule: Callable[..., tuple[str, int]]) -> Callable[..., tuple[str, int]]:
        _PRINT_RULES[op] = rule
        return rule

    return register


class MathPrinter:
    """Text (``latex=False``, in ``glyphs``, by default those :func:`notation.current` decides) or LaTeX."""

    def __init__(self, latex: bool = False, glyphs: Glyphs | None = None) -> None:
        self.latex = latex
        self.g = glyphs if glyphs is not None else notation.current()

    # --- pieces that differ between text and LaTeX ---
    def name(self, s: str) -> str:
        if not self.latex:
            return self.g.name(s)  # Greek names as letters; X̂ as Xhat where the stream is ASCII
        if len(s) > 1 and s[0] == "d" and s[1].isupper():  # a sensitivity dZ: the gradient in step Z
            return rf"\bar{{{self.name(s[1:])}}}"  # an adjoint bar: a delta would read as a Kronecker delta
        if notation.latex_name_rule(s) is not None:  # X̂ is \hat{X}; onehot_t is onehot(t)
            return str(notation.latex_name_rule(s))
        if s in ("lam", "eps"):
            return str(notation.latex_greek(s))
        if s.lower() in GREEK and (s.islower() or s[1:].islower()):  # gamma, and the capital Gamma
            return "\\" + s
        head, _, tail = s.partition("_")
        if len(head) > 1 and not tail:
            return rf"\mathrm{{{s}}}"
        return s

    def T(self, s: str) -> str:  # noqa: N802
        return s + (notation.LATEX_TRANSPOSE if self.latex else self.g.transpose)

    def ones(self, size: object) -> str:
        """A ones vector of length ``size``: ``1_N``."""
        return rf"{notation.LATEX_ONE}_{{{size}}}" if self.latex else self.g.ones(size)

    def zeros(self, shape: tuple) -> str:
        """A zero vector or matrix with its shape, ``0_D``, ``0_{N×D}`` (``0_{N x D}`` in ASCII): a bare 0 reads as a
        number, as ``1_N`` says what a bare 1 would not."""
        if self.latex:
            times = r" \times "
            return rf"\mathbf{{0}}_{{{times.join(map(str, shape))}}}"
        if len(shape) == 1:
            return f"0_{shape[0]}"  # as the ones vector 1_N
        return "0_{" + ("×" if self.g.unicode else " x ").join(map(str, shape)) + "}"

    def tw(self, x: Node) -> str:
        """``x`` as the operand of a transpose: a power is parenthesized, (X^∘2)ᵀ."""
        s, prec = self.p(x)
        return self.paren(s) if prec < _ATOM or x.op == "pow" or _ENDS_IN_POWER.search(s) else s

    def fn(self, name: str, arg: str) -> str:
        if self.latex:
            if name == "sqrt":
                return rf"\sqrt{{{arg}}}"
            if name == "abs":
                return rf"\left|{arg}\right|"
            if name == "step":
                return rf"\mathbb{{1}}\left[{arg} > 0\right]"
            return rf"{notation.LATEX_FUNCTIONS.get(name, name)}\left({arg}\right)"
        if name == "abs":
            return f"|{arg}|"
        if name == "step":
            return f"1[{arg} > 0]"
        word = {"sigmoid": self.g.sigmoid, "sqrt": self.g.sqrt}.get(name) or notation.TEXT_FUNCTIONS.get(name, name)
        return f"{word}({arg})"

    def paren(self, s: str) -> str:
        return rf"\left({s}\right)" if self.latex else f"({s})"

    # --- the tree ---
    def __call__(self, x: Node) -> str:
        return self.p(x)[0]

    def p(self, x: Node) -> tuple[str, int]:
        op = x.op
        if op in _NAMED_OPS:
            return self.named(x)
        rule = _PRINT_RULES.get(op)
        if rule is None:
            raise ValueError(f"cannot print the operation {op!r}")
        return rule(self, x)

    def wrap(self, x: Node, level: int) -> str:
        s, prec = self.p(x)
        return self.paren(s) if prec < level else s

    def operand(self, t: Node, whole: Node) -> tuple[str, int]:
        """``t`` as a term or factor of the elementwise ``whole``: a ones vector of the whole's shape is ``1``
        (broadcasting gives it back), an axis kept for broadcasting is spread with a ones vector, ``s 1_Dᵀ``,
        inside a product too (broadcasting a product is the product of the broadcast factors)."""
        if t.op == "ones" and t.shape == whole.shape and _shaped_without_ones(whole):
            return "1", _ATOM
        spread = t.ndim == 2 and whole.ndim == 2 and t.shape != whole.shape
        if spread and t.op == "expand" and t.args[0].ndim:
            a, axis = t.args[0], t.attrs[0]
            if axis == 1:
                return f"{self.as_column(a)} {self.T(self.ones(whole.shape[1]))}", _JUXT
            return f"{self.ones(whole.shape[0])} {self.as_row(a)}", _JUXT
        if spread and t.op == "mul":
            return self.product(t, whole)
        return self.p(t)

    @_prints("var")
    def _var(self, x: Node) -> tuple[str, int]:
        return self.name(x.attrs[0]), _ATOM

    @_prints("dim")
    def _dim(self, x: Node) -> tuple[str, int]:
        return str(x.attrs[0]), _ATOM

    @_prints("const")
    def _const(self, x: Node) -> tuple[str, int]:
        v = x.attrs[0]
        if v.is_Rational and v.q != 1:
            if self.latex:
                return (rf"-\frac{{{-v.p}}}{{{v.q}}}" if v < 0 else rf"\frac{{{v.p}}}{{{v.q}}}"), _PRODUCT
            return str(v), _PRODUCT
        return str(v), (_ATOM if v >= 0 else _NEG)

    @_prints("ones")
    def _ones(self, x: Node) -> tuple[str, int]:
        if x.ndim == 2:
            return f"{self.ones(x.shape[0])} {self.T(self.ones(x.shape[1]))}", _JUXT
        return self.ones(x.shape[0]), _ATOM

    @_prints("identity")
    def _identity(self, x: Node) -> tuple[str, int]:
        return (rf"I_{{{x.shape[0]}}}" if self.latex else self.g.identity(x.shape[0])), _ATOM

    @_prints("add")
    def _add(self, x: Node) -> tuple[str, int]:
        out = ""
        for i, t in enumerate(x.args):
            if t.ndim == 1 and x.ndim == 2 and x.shape[1] == t.shape[0]:  # a row vector added to every row
                # X - 1_N μᵀ: the sign is read off the vector before it becomes a row, never after (a row of
                # -μ printed 1_N (-μ)ᵀ, and the minus taken off that cut the ones vector's 1).
                shown = _negated(t)
                s = f"{'-' if shown is not t else ''}{self.ones(x.shape[0])} {self.as_row(shown)}"
                prec = _NEG if shown is not t else _PRODUCT
            else:
                s, prec = self.operand(t, x)
            negative = s.startswith("-") and prec >= _NEG - 1
            if i == 0:
                out = s if prec >= _SUM else self.paren(s)
            elif negative:
                out += " - " + s[1:].lstrip()
            else:
                out += " + " + (s if prec > _SUM else self.paren(s))
        return out, _SUM

    @_prints("mul")
    def _mul(self, x: Node) -> tuple[str, int]:
        return self.product(x, x)

    def product(self, x: Node, whole: Node) -> tuple[str, int]:
        """The factors of ``x``, those of ``whole``'s shape spread to it (``whole`` is ``x`` or a sum it is in)."""
        coeff = sp.Integer(1)
        scalars, hadamard, denominators = [], [], []
        for f in _flat(x.args):
            if f.op == "const":
                coeff *= f.attrs[0]
            elif f.op == "pow" and f.args[0].op == "const" and f.attrs[0].is_Integer:  # 1/2, never 1 / 2
                coeff *= f.args[0].attrs[0] ** f.attrs[0]
            elif f.op == "pow" and f.attrs[0] < 0 and f.is_scalar:
                base = f.args[0]
                denominators.append(base if f.attrs[0] == -1 else Node("pow", (base,), (-f.attrs[0],), base.shape))
            elif f.ndim == 0:
                scalars.append(f)
            else:
                hadamard.append(f)
        hadamard = _without_ones(hadamard, x.shape)
        if coeff == 1 and not denominators and len(scalars) + len(hadamard) == 1:  # one factor left: itself
            return self.operand((scalars + hadamard)[0], whole)
        if not (scalars or hadamard or denominators):  # a number: 1/2, as a number prints
            return self.p(Node("const", (), (coeff,)))
        parts = [self.wrap(f, _ATOM if f.op in ("add", "mul") else _PRODUCT) for f in scalars]
        odot = f" {notation.LATEX_ODOT if self.latex else self.g.odot} "
        if hadamard:
            level = _JUXT if len(hadamard) > 1 else _PRODUCT
            had = odot.join(self._factor(f, whole, level) for f in hadamard)
            parts.append(had if len(hadamard) == 1 else (self.paren(had) if parts else had))
        sign, num, den = "", None, None
        if coeff.is_Rational:
            sign, num, den = ("-" if coeff < 0 else ""), abs(coeff.p), coeff.q
        else:
            parts.insert(0, str(coeff))
        if num not in (None, 1):
            parts.insert(0, str(num))
        body = " ".join(parts) if parts else "1"
        dens = ([str(den)] if den not in (None, 1) else []) + [self.wrap(d, _ATOM) for d in denominators]
        if dens:
            if self.latex:
                top = "1"
                if num not in (None, 1):  # 2/N, not (1/N) 2
                    parts.pop(0)
                    top = str(num)
                rest = " ".join(parts)
                body = rf"\frac{{{top}}}{{{' '.join(dens)}}} {rest}" if rest else rf"\frac{{{top}}}{{{' '.join(dens)}}}"
            else:
                body = f"{body} / " + (dens[0] if len(dens) == 1 else self.paren(" ".join(dens)))
        return sign + body, (_NEG if sign else _PRODUCT)

    def _factor(self, f: Node, whole: Node, level: float) -> str:
        s, prec = self.operand(f, whole)
        return self.paren(s) if prec < level or (prec == _NEG and level > _PRODUCT) else s  # never A ⊙ -B

    @_prints("pow")
    def _pow(self, x: Node) -> tuple[str, int]:
        p = x.attrs[0]
        base = self.tw(x.args[0])  # a power of a power is parenthesized: (x²)³, never x²³
        if p == -1 and not x.is_scalar:
            return f"1 {notation.LATEX_OSLASH if self.latex else self.g.oslash} {base}", _PRODUCT
        if self.latex:
            ring = "" if x.is_scalar else r"\circ "
            return f"{base}^{{{ring}{sp.latex(p)}}}", _ATOM
        if not x.is_scalar:
            return f"{base}{self.g.elementwise_power}{p}", _ATOM
        small = self.g.superscript(int(p)) if p.is_Integer else None
        return (f"{base}{small}" if small else f"{base}^{p}"), _ATOM

    @_prints("func")
    def _func(self, x: Node) -> tuple[str, int]:
        a = x.args[0]
        if x.attrs[0] == "step" and a.op == "mul" and a.args[0].op == "const" and a.args[0].attrs[0] == -1:
            inside = self.p(_negated(a))[0]  # step(-u) is 1[u < 0], as written by hand
            return (rf"\mathbb{{1}}\left[{inside} < 0\right]" if self.latex else f"1[{inside} < 0]"), _ATOM
        return self.fn(x.attrs[0], self.p(a)[0]), _ATOM

    def row(self, x: Node) -> str:
        """A vector on the left of a product, read as a row."""
        if x.op == "matmul" and x.args[0].ndim == 1:
            return self(x)
        return self.as_row(x)

    def as_column(self, x: Node, level: int = _ATOM) -> str:
        """A vector read as a column: ``x``, or ``(xᵀ A)ᵀ`` where it prints as a row."""
        return self.T(self.paren(self(x))) if reads_as_row(x) else self.wrap(x, level)

    def as_row(self, x: Node) -> str:
        """A vector read as a row: ``bᵀ``, or ``(2 xᵀ A)``, a product that is a row already."""
        return self.paren(self(x)) if reads_as_row(x) else self.T(self.tw(x))

    @_prints("matmul")
    def _matmul(self, x: Node) -> tuple[str, int]:
        a, b = x.args
        left = self.row(a) if a.ndim == 1 else self.wrap(a, _PRODUCT if a.op == "matmul" else _ATOM)
        chain = (b.op == "matmul" and b.args[0].ndim == 2) or (b.op in ("sum", "squeeze") and b.attrs[0] is not None
                                                                and b.args[0].ndim == 2)
        right = self.as_column(b, _PRODUCT if chain else _ATOM)  # A B x and A Xᵀ 1_N: a chain, left to right
        return f"{left} {right}", _PRODUCT

    @_prints("outer")
    def _outer(self, x: Node) -> tuple[str, int]:
        a, b = x.args
        # An N x 1 column is already a column, a 1 x D row already a row: s 1_Dᵀ, 1_N r.
        left = self.wrap(a.args[0], _ATOM) if _dropped(a, 1) else self.as_column(a)
        right = self.wrap(b.args[0], _ATOM) if _dropped(b, 0) else self.as_row(b)
        spread = any(v.op == "ones" or (v.op == "expand" and v.args[0].op == "ones") for v in (a, b))
        return f"{left} {right}", (_JUXT if spread else _PRODUCT)  # s 1_Dᵀ reads back as printed

    @_prints("T")
    def _T(self, x: Node) -> tuple[str, int]:  # noqa: N802
        a = x.args[0]
        if a.op == "inv":
            base = self.wrap(a.args[0], _ATOM)
            return (f"{base}^{{-\\top}}" if self.latex else base + self.g.inverse_transpose), _ATOM
        return self.T(self.tw(a)), _ATOM

    @_prints("inv")
    def _inv(self, x: Node) -> tuple[str, int]:
        base = self.wrap(x.args[0], _ATOM)
        return (f"{base}^{{-1}}" if self.latex else base + self.g.inverse), _ATOM

    @_prints("sum")
    def _sum(self, x: Node) -> tuple[str, int]:
        a, axis = x.args[0], x.attrs[0]
        if axis is None:
            return self.fn("sum", self(a)), _ATOM
        if a.ndim == 2 and axis == 0:
            return f"{self.T(self.tw(a))} {self.ones(a.shape[0])}", _PRODUCT
        if a.ndim == 2 and axis == 1:  # the product's last factor, as a matrix product would print it: A B 1_D
            return f"{self.wrap(a, _PRODUCT if a.op == 'matmul' else _ATOM)} {self.ones(a.shape[1])}", _PRODUCT
        return self.fn("sum", self(a)), _ATOM

    @_prints("expand")
    def _expand(self, x: Node) -> tuple[str, int]:
        a, axis = x.args[0], x.attrs[0]
        if a.ndim == 0:
            return self.p(a)
        if a.op == "squeeze" and a.args[0].shape == x.shape:  # an axis dropped and put back: the value itself
            return self.p(a.args[0])
        if axis == 1:  # a column kept as an N x 1 matrix (keepdims): its length-1 row of ones says so
            return f"{self.as_column(a)} {self.T(self.ones(1))}", _JUXT
        return f"{self.ones(1)} {self.as_row(a)}", _JUXT

    @_prints("squeeze")
    def _squeeze(self, x: Node) -> tuple[str, int]:
        """An N x 1 column (or a 1 x D row) read as a vector: its product with the one-entry ones vector."""
        a, axis = x.args[0], x.attrs[0]
        if a.ndim == 1:
            return self.fn("sum", self(a)), _ATOM
        column = self.wrap(a, _ATOM) if axis == 1 else self.T(self.tw(a))
        return f"{column} {self.ones(1)}", _PRODUCT

    @_prints("broadcast")
    def _broadcast(self, x: Node) -> tuple[str, int]:
        a = x.args[0]
        if a.op == "const" and a.attrs[0] == 0:
            return self.zeros(x.shape), _ATOM
        if a.ndim == 0:  # a scalar times a matrix (or vector) of ones: "1_N / N", "2 1_N 1_Dᵀ"
            ones = Node("ones", (), (), x.shape)
            return self.p(ones) if n_is_one(a) else self.p(Node("mul", (a, ones), (), x.shape))
        if x.ndim == 2 and a.ndim == 2 and a.shape[1] == 1:  # a column spread along the rows
            return f"{self.wrap(a, _ATOM)} {self.T(self.ones(x.shape[1]))}", _JUXT
        if x.ndim == 2 and a.ndim == 1:  # a row repeated down the rows
            return f"{self.ones(x.shape[0])} {self.as_row(a)}", _JUXT
        if x.ndim == 2 and a.ndim == 2 and a.shape[0] == 1:
            return f"{self.ones(x.shape[0])} {self.wrap(a, _ATOM)}", _JUXT
        return f"{self.wrap(a, _ATOM)} {self.ones(x.shape[0])}", _JUXT

    def named(self, x: Node) -> tuple[str, int]:
        """An operation printed as a named function of its one operand: softmax(Z), tr(A), log det(X)."""
        arg = self(x.args[0])
        if not self.latex and _axis_to_print(x) is not None:  # what the parser reads back, axis included
            arg = f"{arg}, axis={_axis_to_print(x)}"
        return self.fn(x.op, arg), _ATOM

    @_prints("norm")
    def _norm(self, x: Node) -> tuple[str, int]:
        a = x.args[0]
        frobenius = a.ndim != 1
        if self.latex:
            return rf"\left\lVert {self(a)} \right\rVert{'_F' if frobenius else ''}", _ATOM
        if not self.g.unicode:
            return f"{'frobenius' if frobenius else 'norm2'}({self(a)})", _ATOM
        return f"‖{self(a)}‖{'_F' if frobenius else ''}", _ATOM


def n_is_one(x: Node) -> bool:
    return x.op == "const" and x.attrs[0] == 1


def _negated(x: Node) -> Node:
    """``u`` for ``x = -u`` (a product whose number is negative, that number's sign taken off); else ``x`` itself."""
    if x.op != "mul" or x.args[0].op != "const" or not x.args[0].attrs[0] < 0:
        return x
    c, rest = -x.args[0].attrs[0], x.args[1:]
    if c == 1:
        return rest[0] if len(rest) == 1 else Node("mul", rest, (), x.shape)
    return Node("mul", (Node("const", (), (c,), ()), *rest), (), x.shape)


def _ones_like(x: Node) -> bool:
    """Made of ones vectors and numbers only: it carries its shape only through its ones vectors."""
    return x.op == "ones" or (x.op in ("add", "mul") and all(_ones_like(a) or a.ndim == 0 for a in x.args))


def _shaped_without_ones(x: Node) -> bool:
    """The operands of ``x`` other than its ones vectors broadcast to its shape (so a ones term may print as 1)."""
    return len(_without_ones(list(x.args), x.shape)) < len(x.args)


def _without_ones(factors: list[Node], shape: tuple) -> list[Node]:
    """The factors without a ones matrix or vector where the others have the product's shape: times 1 is no factor."""
    rest = [f for f in factors if f.op != "ones"]
    if len(rest) == len(factors) or not any(not _ones_like(f) for f in rest):
        return factors
    try:
        kept: tuple = ()
        for f in rest:
            kept = broadcast(kept, f.shape)
    except ValueError:
        return factors
    return rest if kept == tuple(shape) else factors


def reads_as_row(x: Node) -> bool:
    """``x`` prints as a row (``xᵀ A``, ``2 xᵀ A / N``): the parser reads it as one."""
    if x.op == "matmul":
        return x.args[0].ndim == 1 and x.ndim == 1
    if x.op != "mul" or x.ndim != 1:
        return False
    vectors = _without_ones([f for f in _flat(x.args) if f.ndim], x.shape)
    return len(vectors) == 1 and reads_as_row(vectors[0])


def _dropped(x: Node, axis: int) -> bool:
    """``x`` is a matrix with its length-1 ``axis`` dropped."""
    return x.op == "squeeze" and x.attrs[0] == axis and x.args[0].ndim == 2


def _flat(args: tuple[Node, ...]) -> list[Node]:
    out: list[Node] = []
    for a in args:
        out.extend(_flat(a.args) if a.op == "mul" else [a])
    return out


def text(x: Node, glyphs: Glyphs | None = None) -> str:
    """``x`` in plain text: Unicode where the terminal shows it, else ASCII (``glyphs`` decides where given)."""
    return MathPrinter(latex=False, glyphs=glyphs)(x)


def latex(x: Node) -> str:
    """``x`` in LaTeX."""
    return MathPrinter(latex=True)(x)
