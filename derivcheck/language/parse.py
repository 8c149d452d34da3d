"""A safe reader for the matrix language: no ``eval``, no ``sympify`` of user text.

Declarations: ``X: N x D``, ``A: D x D symmetric``, ``w: D``, ``lam: scalar``. Properties:
``symmetric``, ``spd`` (symmetric positive definite), ``positive`` (entrywise), ``simplex``
(each row sums to one, e.g. one-hot targets; ``onehot`` is accepted as a synonym).
Expressions: ``@ * / + - **``, ``.T``, ``sum(e)``, ``sum(e, axis=k[, keepdims=True])``, ``mean``,
``exp log tanh sigmoid relu softplus sqrt abs sign``, ``softmax(e, axis=k)``, ``logsumexp``,
``trace det logdet inv diag norm2 frobenius``, numbers, ``ones(N)`` and the dimension names.

Everything the printer writes reads back, in Unicode or ASCII (``notation.notation_help`` says how).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from derivcheck.errors import ExpressionError
from derivcheck.language import nodes as n
from derivcheck.language.nodes import Node, ShapeError, Variable
from derivcheck.language.printing.notation import UNICODE, read_superscript

PROPERTIES = {"symmetric": "symmetric", "spd": "spd", "positive": "positive", "simplex": "simplex",
              "onehot": "simplex", "stochastic": "simplex"}
_MATRIX_FUNCTIONS: dict[str, Callable[[Node], Node]] = {
    "trace": n.trace, "tr": n.trace, "det": n.det, "logdet": n.logdet, "inv": n.inv, "diag": n.diag,
    "norm2": n.norm2, "frobenius": n.frobenius,
}
_AXIS_FUNCTIONS = ("sum", "mean", "softmax", "logsumexp")  # logsumexp: printed by derive-expr, so it parses back
KNOWN_FUNCTIONS = sorted({*n.ELEMENTWISE, *_MATRIX_FUNCTIONS, *_AXIS_FUNCTIONS, "ones"} - {"step"})

# A ones vector with its length (1_N), a zero vector or matrix with its shape (0_D, 0_{N×D}), a Greek letter, superscripts (X⁻¹, x²) and the notation's operators.
_TOKEN = re.compile(r"\s*(?:(?P<ones>1_(?:[A-Za-z][A-Za-z0-9]*|\d+))"
                    r"|(?P<zeros>0_(?:\{[^}]*\}|[A-Za-z][A-Za-z0-9]*|\d+))|(?P<num>\d+\.\d*|\.\d+|\d+)"
                    r"|(?P<name>[A-Za-z_][A-Za-z_0-9]*|[\u0391-\u03a9\u03b1-\u03c9\u221a])"
                    r"|(?P<sup>\u207b\u1d40|\u1d40|\u207b?[\u2070\u00b9\u00b2\u00b3\u2074-\u2079]+)"
                    r"|(?P<op>\*\*|[-+*/@(),=.'^\u2299\u2298\u2218\u2016|\[\]<>]))")
_PRODUCT_OPS = {"*": "mul", "\u2299": "mul", "/": "div", "\u2298": "div", "@": "matmul"}


@dataclass(frozen=True)
class Token:
    kind: str  # "num", "name", "ones", "sup", "op", "end"
    text: str
    pos: int
    end: int = -1


def tokenize(text: str) -> list[Token]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            bad = len(text) - len(text[pos:].lstrip())
            raise ExpressionError(f"unexpected character {text[bad]!r}", text, bad)
        kind = m.lastgroup or "op"
        word = "sqrt" if m.group(kind) == "\u221a" else m.group(kind)  # √(x): the square root as printed
        out.append(Token(kind, word, m.start(kind), m.end(kind)))
        pos = m.end()
    out.append(Token("end", "", len(text)))
    return out


def parse_declaration(name: str | None, text: str) -> Variable:
    """``"X: N x D symmetric"`` (or ``name="X"`` and ``"N x D symmetric"``) as a :class:`Variable`."""
    full = text if name is None else f"{name}: {text}"
    head, colon, rest = full.partition(":")
    label = head.strip()
    if not colon or not re.fullmatch(r"[A-Za-z_][A-Za-z_0-9]*", label):
        raise ExpressionError(f"a declaration reads NAME: SHAPE [PROPERTIES], e.g. 'X: N x D'; got {full!r}")
    words = rest.replace("×", " x ").replace(",", " x ").split()
    dims: list[object] = []
    props: set[str] = set()
    expect_dim = True
    dim_next = True  # a dimension comes first or after an 'x'
    for w in words:
        lw = w.lower()
        if lw in PROPERTIES:
            props.add(PROPERTIES[lw])
            dim_next = False
        elif lw == "scalar":
            expect_dim = dim_next = False
        elif lw == "x" and dims:
            dim_next = True
        elif dim_next and (re.fullmatch(r"[A-Za-z_][A-Za-z_0-9]*", w) or w.isdigit()):
            dims.append(int(w) if w.isdigit() else w)
            dim_next = False
        else:
            raise ExpressionError(f"in the declaration of {label}: {w!r} is neither a dimension nor one of the "
                                  f"properties {', '.join(sorted(PROPERTIES))}")
    if not expect_dim and dims:
        raise ExpressionError(f"{label} is declared 'scalar' and also given dimensions {dims}")
    if len(dims) > 2:
        raise ExpressionError(f"{label} has {len(dims)} dimensions; the language has scalars, vectors and matrices")
    if "symmetric" in props or "spd" in props:
        if len(dims) != 2 or dims[0] != dims[1]:
            raise ExpressionError(f"{label} is declared symmetric but its shape {' x '.join(map(str, dims))} is not square")
    if "simplex" in props and not dims:
        raise ExpressionError(f"{label} is declared simplex (rows sum to one) but is a scalar")
    return Variable(label, tuple(dims), frozenset(props))


def declarations(shapes: Mapping[str, str] | None = None, lets: list[str] | None = None) -> dict[str, Variable]:
    """The variables of a ``shapes`` mapping and ``--let`` strings, checked for clashes."""
    out: dict[str, Variable] = {}
    items = [(k, v) for k, v in (shapes or {}).items()] + [(None, t) for t in (lets or [])]
    for name, text in items:
        if not isinstance(text, str):
            raise ExpressionError(f"shapes[{name!r}] must be a string such as 'N x D'; got {type(text).__name__}")
        v = parse_declaration(name, text)
        if v.name in out and out[v.name] != v:
            raise ExpressionError(f"{v.name} is declared twice: {out[v.name].declaration()!r} and {v.declaration()!r}")
        out[v.name] = v
    dims = {d for v in out.values() for d in v.shape if isinstance(d, str)}
    clash = dims & set(out)
    if clash:
        raise ExpressionError(f"{', '.join(sorted(clash))} is both a variable and a dimension name")
    return out


def _row(a: Node) -> Node:
    """A vector read as a row (``aᵀ``): a mark the parser alone uses, removed before any node is built on it."""
    return Node("row", (a,), (), a.shape)


def _plain(a: Node) -> Node:
    return a.args[0] if a.op == "row" else a


def _times(a: Node, b: Node) -> Node:
    """``a * b``, two numbers folded into one (``1/2`` reads back as the number it was printed from)."""
    a, b = _plain(a), _plain(b)
    if a.op == "const" and b.op == "const":
        return n.const(a.attrs[0] * b.attrs[0])
    return n.mul(a, b)


def _over(a: Node, b: Node) -> Node:
    a, b = _plain(a), _plain(b)
    if a.op == "const" and b.op == "const" and b.attrs[0] != 0:
        return n.const(a.attrs[0] / b.attrs[0])
    return n.div(a, b)


def _negate(a: Node) -> Node:
    a = _plain(a)
    return n.const(-a.attrs[0]) if a.op == "const" else n.neg(a)


class _Parser:
    def __init__(self, text: str, variables: Mapping[str, Variable]) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.variables = variables
        self.dims = {d for v in variables.values() for d in v.shape if isinstance(d, str)}
        self.printed: dict[str, list[str]] = {}  # a Greek letter -> the declared names printed as it (lam: λ)
        for name in variables:
            shown = UNICODE.greek(name)
            if shown != name:
                self.printed.setdefault(shown, []).append(name)
        self.inside: list[str] = []  # the open |...| and ‖...‖, innermost last

    # --- token helpers ---
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def ahead(self, k: int = 1) -> Token:
        return self.tokens[min(self.i + k, len(self.tokens) - 1)]

    def take(self, text: str | None = None) -> Token:
        t = self.tok
        if text is not None and t.text != text:
            found = f"{t.text!r}" if t.kind != "end" else "the end of the expression"
            raise ExpressionError(f"expected {text!r}, found {found}", self.text, t.pos)
        self.i += 1
        return t

    def adjacent(self) -> bool:
        """The current token touches the one before it (``σ(`` is a call, ``x (`` a product)."""
        return self.i > 0 and self.tokens[self.i - 1].end == self.tok.pos

    def error(self, message: str, pos: int) -> ExpressionError:
        return ExpressionError(message, self.text, pos)

    def checked(self, pos: int, build: Callable[[], Node]) -> Node:
        try:
            return build()
        except ShapeError as exc:
            raise self.error(str(exc), pos) from None

    # --- grammar ---
    def parse(self) -> Node:
        if self.tok.kind == "end":
            raise self.error("the expression is empty", 0)
        e = self.sum_()
        if self.tok.kind != "end":
            raise self.error(f"unexpected {self.tok.text!r}", self.tok.pos)
        return _plain(e)

    def sum_(self) -> Node:
        e = self.term()
        while self.tok.text in ("+", "-") and self.tok.kind == "op":
            op = self.take()
            rhs = _plain(self.term())
            e = self.checked(op.pos, lambda e=_plain(e), rhs=rhs, o=op.text: n.add(e, rhs if o == "+" else _negate(rhs)))
        return e

    def term(self) -> Node:
        """A product with an optional sign, which negates the whole product: ``-Xᵀ G / N``."""
        return self.with_sign(self.product)

    def with_sign(self, rest: Callable[[], Node]) -> Node:
        """What ``rest`` reads, after any leading signs, which negate it."""
        if self.tok.text in ("-", "+") and self.tok.kind == "op":
            op = self.take()
            e = self.with_sign(rest)
            return _negate(e) if op.text == "-" else e
        return rest()

    def product(self) -> Node:
        e = self.juxtaposed()
        while self.tok.text in _PRODUCT_OPS and self.tok.kind == "op":
            op = self.take()
            rhs = self.signed()
            build = {"mul": _times, "div": _over, "matmul": lambda a, b: n.matmul(_plain(a), _plain(b))}
            row = (e.op == "row" and rhs.ndim == 0) or (rhs.op == "row" and e.ndim == 0 and op.text != "@")
            e = self.checked(op.pos, lambda e=e, rhs=rhs, b=build[_PRODUCT_OPS[op.text]]: b(e, rhs))
            e = _row(e) if row else e  # a row times or over a number is still a row: xᵀ A / N
        return e

    def signed(self) -> Node:
        """An operand after ``*``, ``/``, ``@``: it may carry its own sign (``2 * -x``)."""
        return self.with_sign(self.juxtaposed)

    def starts_factor(self) -> bool:
        t = self.tok
        if t.kind in ("num", "name", "ones", "zeros"):
            return not (t.kind == "name" and t.text == "_F")
        if t.text in ("|", "\u2016"):  # opens a norm or an absolute value unless it closes the one open
            return t.text not in self.inside
        return t.text == "("

    def juxtaposed(self) -> Node:
        """Factors written side by side: the scalars multiply, the rest are a matrix product, left to right."""
        start = self.tok.pos
        factors = [self.postfix()]
        while self.starts_factor():
            factors.append(self.postfix())
        if len(factors) == 1:
            return factors[0]
        return self.checked(start, lambda: self.combine(factors, start))

    def combine(self, factors: list[Node], pos: int) -> Node:
        """Left to right; a product that comes out a number (``wᵀ w``) joins the scalars, as a number would."""
        scalars: list[Node] = []
        out: Node | None = None
        for f in factors:
            if f.ndim == 0:
                scalars.append(_plain(f))
                continue
            out = f if out is None else self.side_by_side(out, f, pos)
            if out.ndim == 0:
                scalars.append(out)
                out = None
        if not scalars:
            return out
        coefficient = scalars[0]
        for s in scalars[1:]:
            coefficient = _times(coefficient, s)
        if out is None:
            return coefficient
        product = n.mul(coefficient, _plain(out))
        return _row(product) if out.op == "row" else product

    def side_by_side(self, left: Node, right: Node, pos: int) -> Node:
        """``A x``, ``xᵀ A``, ``aᵀ b`` (a number), ``a bᵀ`` (a matrix), ``s 1_Dᵀ`` for an N x 1 column ``s``."""
        a, b = _plain(left), _plain(right)
        row_a, row_b = left.op == "row", right.op == "row"
        if a.ndim == 1 and row_a:
            if row_b:
                raise ShapeError("two rows side by side (aᵀ bᵀ) are no product; write aᵀ b or a bᵀ")
            return _row(n.matmul(a, b)) if b.ndim == 2 else n.matmul(a, b)
        if a.ndim == 1:
            if row_b:
                return n.outer(a, b)
            if b.ndim == 2 and b.shape[0] == 1:  # 1_N r for a 1 x D row r: r repeated down N rows
                return n.outer(a, n.squeeze(b, 0))
            raise ShapeError(f"a column vector of shape {n.show_shape(a.shape)} times shape {n.show_shape(b.shape)}: "
                             "write aᵀ b for an inner product, a bᵀ for an outer one")
        if row_b:
            if a.shape[1] != 1:
                raise ShapeError(f"a matrix of shape {n.show_shape(a.shape)} times a row: only an N x 1 column can "
                                 "be spread along a row, s 1_Dᵀ")
            return n.outer(n.squeeze(a, 1), b)
        return n.matmul(a, b)

    def postfix(self) -> Node:
        e = self.atom()
        while True:
            t = self.tok
            if t.text == "'" or (t.text == "." and self.ahead().text == "T") or t.text == "\u1d40":
                self.take()
                if t.text == ".":
                    self.take()
                e = self.transposed(e)
            elif t.text == ".":
                raise self.error("after '.', only T (transpose) is known", t.pos)
            elif t.kind == "sup":
                self.take()
                e = self.superscript(e, t)
            elif t.text == "^":
                self.take()
                e = self.caret(e, t)
            elif t.text == "**":
                self.take()
                exponent = self.exponent()
                e = self.checked(t.pos, lambda e=e, p=exponent: n.power(_plain(e), p))
            else:
                return e

    def transposed(self, e: Node) -> Node:
        if e.op == "row":
            return e.args[0]
        return _row(e) if e.ndim == 1 else n.transpose(e)

    def inverse(self, e: Node, pos: int) -> Node:
        """``^-1``: the inverse of a square matrix, the reciprocal of anything else (entrywise)."""
        e = _plain(e)
        if e.ndim == 2 and e.shape[0] == e.shape[1]:
            return self.checked(pos, lambda: n.inv(e))
        return n.power(e, -1)

    def superscript(self, e: Node, t: Token) -> Node:
        if t.text == "\u207b\u1d40":
            return self.checked(t.pos, lambda: n.transpose(n.inv(_plain(e))))
        power = read_superscript(t.text)
        return self.inverse(e, t.pos) if power == -1 else n.power(_plain(e), power)

    def caret(self, e: Node, t: Token) -> Node:
        """``^T``, ``^-T``, ``^-1``, ``^∘k`` (entrywise) and ``^k`` (every power is entrywise: no matrix powers)."""
        if self.tok.text == "T":
            self.take()
            return self.transposed(e)
        if self.tok.text == "-" and self.ahead().text == "T":
            self.take()
            self.take()
            return self.checked(t.pos, lambda: n.transpose(n.inv(_plain(e))))
        ring = self.tok.text == "\u2218"
        if ring:
            self.take()
        exponent = self.exponent()
        if exponent == -1 and not ring:
            return self.inverse(e, t.pos)
        return n.power(_plain(e), exponent)

    def exponent(self) -> object:
        """A number with its sign, or a fraction written without spaces, ``-3/2``."""
        sign = -1 if self.tok.text == "-" else 1
        if self.tok.text in ("-", "+"):
            self.take()
        t = self.tok
        if t.kind != "num":
            raise self.error("an exponent must be a number (elementwise power)", t.pos)
        self.take()
        value = _number(t.text)
        if self.tok.text == "/" and self.adjacent() and self.ahead().kind == "num" and self.ahead().pos == self.tok.end:
            self.take()
            value = value / _number(self.take().text)
        return sign * value

    def atom(self) -> Node:
        t = self.tok
        if t.kind == "num":
            self.take()
            if t.text == "1" and self.tok.text == "[" and self.adjacent():
                return self.iverson()
            return n.const(_number(t.text))
        if t.kind == "ones":
            self.take()
            return n.ones((self.size(t.text[2:], t),))
        if t.kind == "zeros":
            self.take()
            return self.zeros(t)
        if t.text == "(":
            self.take()
            saved, self.inside = self.inside, []
            e = self.sum_()
            self.inside = saved
            if self.tok.kind == "end":
                raise self.error(f"the parenthesis at column {t.pos + 1} is never closed", self.tok.pos)
            self.take(")")
            return e
        if t.text in ("|", "\u2016"):
            return self.bars(t)
        if t.kind == "name":
            self.take()
            return self.named(t)
        found = repr(t.text) if t.kind != "end" else "the end of the expression"
        raise self.error(f"expected a name, a number or '(', found {found}", t.pos)

    def size(self, text: str, t: Token) -> object:
        if text.isdigit():
            return int(text)
        if text not in self.dims:
            raise self.error(f"{t.text}: {text} is not a dimension of any declared variable "
                             f"(dimensions: {', '.join(sorted(self.dims)) or 'none'})", t.pos)
        return text

    def zeros(self, t: Token) -> Node:
        """``0_D``, ``0_{N×D}`` (``0_{N x D}``, ``0_{N,D}``): zeros of a declared shape, as derive-expr prints them."""
        inner = t.text[2:]
        parts = re.split(r"\s*(?:\u00d7|,|\s+x\s+)\s*", inner[1:-1].strip()) if inner.startswith("{") else [inner]
        if not 1 <= len(parts) <= 2 or not all(parts):
            raise self.error(f"{t.text}: a zero vector reads 0_D, a zero matrix 0_{{N\u00d7D}} (or 0_{{N x D}})", t.pos)
        return n.broadcast_to(n.const(0), tuple(self.size(p, t) for p in parts))

    def iverson(self) -> Node:
        """``1[x > 0]``: the step function; ``1[x < 0]`` is the step of -x."""
        self.take("[")
        e = _plain(self.sum_())
        relation = self.tok.text
        if relation not in (">", "<"):
            raise self.error("an Iverson bracket reads 1[x > 0] or 1[x < 0]", self.tok.pos)
        self.take()
        zero = self.take()
        if zero.text != "0":
            raise self.error("an Iverson bracket reads 1[x > 0] or 1[x < 0]", zero.pos)
        self.take("]")
        return n.func("step", e if relation == ">" else n.neg(e))

    def bars(self, t: Token) -> Node:
        """``|x|`` (abs), ``‖x‖`` (the Euclidean norm), ``‖X‖_F`` (the Frobenius norm)."""
        self.take()
        self.inside.append(t.text)
        e = _plain(self.sum_())
        self.inside.pop()
        if self.tok.text != t.text:
            raise self.error(f"the {t.text} at column {t.pos + 1} is never closed", self.tok.pos)
        self.take()
        if t.text == "|":
            return n.func("abs", e)
        if self.tok.text == "_F" and self.adjacent():
            self.take()
        return self.checked(t.pos, lambda: n.norm2(e) if e.ndim == 1 else n.frobenius(e))

    def named(self, t: Token) -> Node:
        if t.text == "\u03c3" and self.tok.text == "(" and self.adjacent():  # σ(z); a variable sigma prints σ (z)
            return self.call(Token("name", "sigmoid", t.pos, t.end))
        if t.text in self.variables:
            return n.var(self.variables[t.text])
        if t.text in self.printed:
            if len(self.printed[t.text]) > 1:
                raise self.error(f"{t.text} could be any of {', '.join(self.printed[t.text])}: write the name", t.pos)
            return n.var(self.variables[self.printed[t.text][0]])
        if t.text in self.dims:
            return n.dim(t.text)
        if t.text == "log" and self.tok.text == "det":  # log det(A), as printed
            self.take()
            return self.call(Token("name", "logdet", t.pos, t.end))
        if t.text.startswith("I_") and (t.text[2:].isdigit() or t.text[2:] in self.dims):
            return n.identity(self.size(t.text[2:], t))
        if self.tok.text == "(":
            return self.call(t)
        return self.name(t)

    def name(self, t: Token) -> Node:
        if t.text in KNOWN_FUNCTIONS:
            raise self.error(f"{t.text} is a function: write {t.text}(...)", t.pos)
        raise self.error(f"{t.text!r} is not declared; declare it, e.g. --let '{t.text}: N x D' "
                         f"(declared: {', '.join(sorted(self.variables)) or 'nothing'})", t.pos)

    def call(self, t: Token) -> Node:
        self.take("(")
        saved, self.inside = self.inside, []
        args: list[Node] = []
        axis: int | None = None
        keepdims = False
        dims: list[object] = []
        while self.tok.text != ")":
            if self.tok.kind == "end":
                raise self.error(f"the parenthesis of {t.text}( at column {t.pos + 1} is never closed", self.tok.pos)
            if args or dims or axis is not None or keepdims:
                self.take(",")
            if self.tok.kind == "name" and self.ahead().text == "=":
                key = self.take()
                if key.text not in ("axis", "keepdims"):
                    raise self.error(f"{t.text}() takes no keyword {key.text!r} (only axis= and keepdims=)", key.pos)
                self.take("=")
                if key.text == "keepdims":
                    flag = self.take()
                    if flag.text not in ("True", "False"):
                        raise self.error("keepdims= must be True or False", flag.pos)
                    keepdims = flag.text == "True"
                    continue
                sign = -1 if self.tok.text == "-" else 1
                if sign < 0:
                    self.take()
                k = self.tok
                if k.kind != "num" or not k.text.isdigit():
                    raise self.error("axis= must be an integer", k.pos)
                self.take()
                axis = sign * int(k.text)
            elif t.text == "ones":
                d = self.take()
                if d.kind == "num" and d.text.isdigit():
                    dims.append(int(d.text))
                elif d.kind == "name" and d.text in self.dims:
                    dims.append(d.text)
                else:
                    raise self.error(f"ones() takes dimension names or integers; {d.text!r} is neither", d.pos)
            else:
                args.append(_plain(self.sum_()))
        self.take(")")
        self.inside = saved
        out = self.apply(t, args, axis, dims)
        if keepdims:
            if t.text not in ("sum", "mean") or axis is None:
                raise self.error("keepdims=True needs sum(..., axis=k) or mean(..., axis=k)", t.pos)
            out = n.expand(out, axis % args[0].ndim)  # the reduced axis kept with length 1, as in NumPy
        return out

    def apply(self, t: Token, args: list[Node], axis: int | None, dims: list[object]) -> Node:
        name = t.text
        if name == "ones":
            if not dims or len(dims) > 2:
                raise self.error("ones() takes one or two dimensions, e.g. ones(N)", t.pos)
            return n.ones(tuple(dims))
        if name not in KNOWN_FUNCTIONS:
            raise self.error(f"unknown function {name!r}; known: {', '.join(KNOWN_FUNCTIONS)}", t.pos)
        if len(args) != 1:
            raise self.error(f"{name}() takes one expression, got {len(args)}", t.pos)
        if axis is not None and name not in _AXIS_FUNCTIONS:
            raise self.error(f"{name}() takes no axis=", t.pos)
        a = args[0]
        if name == "softmax":
            if axis is None:
                axis = -1 if a.ndim else 0
            return self.checked(t.pos, lambda: n.softmax(a, axis))
        if name == "sum":
            return self.checked(t.pos, lambda: n.total(a, axis))
        if name == "logsumexp":
            return self.checked(t.pos, lambda: n.logsumexp(a, None if axis is None else axis % a.ndim))
        if name == "mean":
            def mean() -> Node:
                s = n.total(a, axis)
                count = n.size_of(a.shape) if axis is None else n.size_of((a.shape[axis % a.ndim],))
                return n.div(s, count)
            return self.checked(t.pos, mean)
        if name in _MATRIX_FUNCTIONS:
            return self.checked(t.pos, lambda: _MATRIX_FUNCTIONS[name](a))
        return n.func(name, a)


def _number(text: str) -> object:
    import sympy as sp

    return sp.Rational(text) if "." in text else sp.Integer(text)


def parse_expression(text: str, variables: Mapping[str, Variable]) -> Node:
    """The tree of ``text``; an :class:`ExpressionError` names the position of a bad token."""
    if not isinstance(text, str):
        raise ExpressionError(f"the expression must be a string; got {type(text).__name__}")
    return _Parser(text, variables).parse()
