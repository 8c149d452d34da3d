"""A safe reader for the matrix language: no ``eval``, no ``sympify`` of user text.

Declarations: ``X: N x D``, ``A: D x D symmetric``, ``w: D``, ``lam: scalar``. Properties:
``symmetric``, ``spd`` (symmetric positive definite), ``positive`` (entrywise), ``simplex``
(each row sums to one, e.g. one-hot targets; ``onehot`` is accepted as a synonym).
Expressions: ``@ * / + - **``, ``.T``, ``sum(e)``, ``sum(e, axis=k[, keepdims=True])``, ``mean``,
``exp log tanh sigmoid relu softplus sqrt abs``, ``softmax(e, axis=k)``, ``trace det logdet
inv diag norm2 frobenius``, numbers, ``ones(N)`` and the dimension names themselves.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from derivcheck.errors import ExpressionError
from derivcheck.language import nodes as n
from derivcheck.language.nodes import Node, ShapeError, Variable

PROPERTIES = {"symmetric": "symmetric", "spd": "spd", "positive": "positive", "simplex": "simplex",
              "onehot": "simplex", "stochastic": "simplex"}
_MATRIX_FUNCTIONS: dict[str, Callable[[Node], Node]] = {
    "trace": n.trace, "tr": n.trace, "det": n.det, "logdet": n.logdet, "inv": n.inv, "diag": n.diag,
    "norm2": n.norm2, "frobenius": n.frobenius,
}
_AXIS_FUNCTIONS = ("sum", "mean", "softmax", "logsumexp")  # logsumexp: printed by derive-expr, so it parses back
KNOWN_FUNCTIONS = sorted({*n.ELEMENTWISE, *_MATRIX_FUNCTIONS, *_AXIS_FUNCTIONS, "ones"} - {"step", "sign"})

_TOKEN = re.compile(r"\s*(?:(?P<num>\d+\.\d*|\.\d+|\d+)|(?P<name>[A-Za-z_][A-Za-z_0-9]*)|(?P<op>\*\*|[-+*/@(),=.']))")


@dataclass(frozen=True)
class Token:
    kind: str  # "num", "name", "op", "end"
    text: str
    pos: int


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
        out.append(Token(kind, m.group(kind), m.start(kind)))
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


class _Parser:
    def __init__(self, text: str, variables: Mapping[str, Variable]) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.variables = variables
        self.dims = {d for v in variables.values() for d in v.shape if isinstance(d, str)}

    # --- token helpers ---
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def take(self, text: str | None = None) -> Token:
        t = self.tok
        if text is not None and t.text != text:
            found = f"{t.text!r}" if t.kind != "end" else "the end of the expression"
            raise ExpressionError(f"expected {text!r}, found {found}", self.text, t.pos)
        self.i += 1
        return t

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
        return e

    def sum_(self) -> Node:
        e = self.product()
        while self.tok.text in ("+", "-") and self.tok.kind == "op":
            op = self.take()
            rhs = self.product()
            e = self.checked(op.pos, lambda e=e, rhs=rhs, o=op.text: n.add(e, rhs) if o == "+" else n.sub(e, rhs))
        return e

    def product(self) -> Node:
        e = self.unary()
        while self.tok.text in ("*", "/", "@") and self.tok.kind == "op":
            op = self.take()
            rhs = self.unary()
            build = {"*": n.mul, "/": n.div, "@": n.matmul}[op.text]
            e = self.checked(op.pos, lambda e=e, rhs=rhs, b=build: b(e, rhs))
        return e

    def unary(self) -> Node:
        if self.tok.text in ("-", "+") and self.tok.kind == "op":
            op = self.take()
            e = self.unary()
            return n.neg(e) if op.text == "-" else e
        return self.power()

    def power(self) -> Node:
        base = self.postfix()
        if self.tok.text == "**":
            op = self.take()
            sign = -1 if self.tok.text == "-" else 1
            if self.tok.text in ("-", "+"):
                self.take()
            t = self.tok
            if t.kind != "num":
                raise self.error("an exponent must be a number (elementwise power)", t.pos)
            self.take()
            return self.checked(op.pos, lambda: n.power(base, sign * _number(t.text)))
        return base

    def postfix(self) -> Node:
        e = self.atom()
        while True:
            if self.tok.text == "'":
                self.take()
                e = n.transpose(e)
            elif self.tok.text == "." and self.tokens[self.i + 1].text == "T":
                self.take()
                self.take()
                e = n.transpose(e)
            elif self.tok.text == ".":
                raise self.error("after '.', only T (transpose) is known", self.tok.pos)
            else:
                return e

    def atom(self) -> Node:
        t = self.tok
        if t.kind == "num":
            self.take()
            return n.const(_number(t.text))
        if t.text == "(":
            self.take()
            e = self.sum_()
            if self.tok.kind == "end":
                raise self.error(f"the parenthesis at column {t.pos + 1} is never closed", self.tok.pos)
            self.take(")")
            return e
        if t.kind == "name":
            self.take()
            if self.tok.text == "(":
                return self.call(t)
            return self.name(t)
        found = repr(t.text) if t.kind != "end" else "the end of the expression"
        raise self.error(f"expected a name, a number or '(', found {found}", t.pos)

    def name(self, t: Token) -> Node:
        if t.text in self.variables:
            return n.var(self.variables[t.text])
        if t.text in self.dims:
            return n.dim(t.text)
        if t.text in KNOWN_FUNCTIONS:
            raise self.error(f"{t.text} is a function: write {t.text}(...)", t.pos)
        raise self.error(f"{t.text!r} is not declared; declare it, e.g. --let '{t.text}: N x D' "
                         f"(declared: {', '.join(sorted(self.variables)) or 'nothing'})", t.pos)

    def call(self, t: Token) -> Node:
        self.take("(")
        args: list[Node] = []
        axis: int | None = None
        keepdims = False
        dims: list[object] = []
        while self.tok.text != ")":
            if self.tok.kind == "end":
                raise self.error(f"the parenthesis of {t.text}( at column {t.pos + 1} is never closed", self.tok.pos)
            if args or dims or axis is not None or keepdims:
                self.take(",")
            if self.tok.kind == "name" and self.tokens[self.i + 1].text == "=":
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
                args.append(self.sum_())
        self.take(")")
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
