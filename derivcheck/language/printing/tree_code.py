"""Matrix-language trees as NumPy source a person writes (``x.T @ (dy * s)``, ``(x - mu) / sigma``,
``dy.sum(axis=0)``), with the helpers (a stable sigmoid, softmax, ...) they call.

Parentheses are printed where Python's precedence needs them, and around a matrix product beside an
elementwise product (``(x @ w) * dy``): the two share one precedence level, and left-to-right order
alone would decide which is meant.
"""

from __future__ import annotations

import keyword
from collections.abc import Callable, Iterable
from typing import NamedTuple

import sympy as sp

from derivcheck.language.nodes import Node, broadcast


HELPERS = {
    "_sigmoid": "def _sigmoid(x):\n    return 0.5 * (1.0 + np.tanh(0.5 * x))  # no overflow, unlike 1 / (1 + exp(-x))",
    "_softplus": "def _softplus(x):\n    return np.logaddexp(0.0, x)  # log(1 + exp(x)) without overflow",
    "_softmax": "def _softmax(z, axis):\n    e = np.exp(z - np.max(z, axis=axis, keepdims=True))\n"
                "    return e / np.sum(e, axis=axis, keepdims=True)",
    "_logsumexp": "def _logsumexp(z, axis):\n    m = np.max(z, axis=axis, keepdims=True)\n"
                  "    out = np.log(np.sum(np.exp(z - m), axis=axis, keepdims=True)) + m\n"
                  "    return out.reshape(()) if axis is None else np.squeeze(out, axis=axis)",
    "_logdet": "def _logdet(a):\n    sign, value = np.linalg.slogdet(a)\n    return value if sign > 0 else np.nan",
}

# Python's precedence levels, loosest first (the language reference's table, the rows these printers use).
COMPARISON, SUM, PRODUCT, UNARY, POWER, ATOM = range(6)
_CALLS = {"trace": "np.trace", "det": "np.linalg.det", "inv": "np.linalg.inv", "diag": "np.diag",
          "norm": "np.linalg.norm"}
# Operations whose value is a Python number, not an array: no method or index may be applied to them.
_NUMBERS = ("const", "dim")


class Code(NamedTuple):
    """Printed source, the precedence level of its outermost operator, and that operator (``@``, ``*``)."""

    text: str
    level: int
    op: str = ""


def python_name(name: str) -> str:
    """A declared name as a Python identifier: a keyword gets a trailing underscore (``lambda`` -> ``lambda_``), as
    PEP 8 advises; a generated signature must use the same spelling.

    >>> python_name("lambda"), python_name("lam")
    ('lambda_', 'lam')
    """
    return f"{name}_" if keyword.iskeyword(name) else name


def declared_name(arg: str) -> str:
    """The declared name behind a generated argument (``lambda_`` -> ``lambda``): the inverse of :func:`python_name`.

    >>> declared_name("lambda_"), declared_name("z_")
    ('lambda', 'z_')
    """
    return arg[:-1] if arg.endswith("_") and keyword.iskeyword(arg[:-1]) else arg


def _atom(text: str) -> Code:
    return Code(text, ATOM)


class CodePrinter:
    """NumPy source; each helper used is recorded so that it can be printed with the code.

    >>> from derivcheck.language import nodes as n
    >>> from derivcheck.language.nodes import Variable
    >>> x, w = n.var(Variable("x", ("N", "D"))), n.var(Variable("w", ("D", "M")))
    >>> CodePrinter()(n.mul(n.const(2), n.matmul(n.transpose(x), n.func("tanh", n.matmul(x, w)))))
    '2 * (x.T @ np.tanh(x @ w))'
    """

    def __init__(self) -> None:
        self.helpers: set[str] = set()
        self.dims: set[str] = set()

    def __call__(self, x: Node) -> str:
        if x.op == "broadcast":  # returned to the caller: a writable array, not a read-only view
            return f"{self.code(x).text}.copy()"
        return self.code(x).text

    def p(self, x: Node) -> str:
        return self.code(x).text

    def code(self, x: Node) -> Code:
        rule = _RULES.get(x.op)
        if rule is None:
            raise ValueError(f"no code for the operation {x.op!r}")
        return rule(self, x)

    def operand(self, x: Node, level: int, clarify: str = "") -> str:
        """``x`` printed where an operand of at least ``level`` is needed; a product whose operator is in
        ``clarify`` is parenthesised too (``@`` beside ``*``)."""
        c = self.code(x)
        return f"({c.text})" if c.level < level or (c.op and c.op in clarify) else c.text

    def postfix(self, x: Node) -> str:
        """``x`` where a method, attribute or index follows it."""
        return self.operand(x, ATOM)

    def shape(self, shape: Iterable[object]) -> str:
        items = []
        for d in shape:
            if isinstance(d, str):
                self.dims.add(d)
            items.append(str(d))
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"

    # --- elementwise arithmetic ---

    def add(self, x: Node) -> Code:
        terms = _unbroadcast(x)
        out = self.operand(terms[0], SUM)
        for t in terms[1:]:
            negated = _negation(t)
            if negated is None:
                out += " + " + self.operand(t, PRODUCT)
            else:
                out += " - " + self.operand(negated, PRODUCT)
        return Code(out, SUM, "+")

    def mul(self, x: Node) -> Code:
        coeff, top, bottom = _fraction(_unbroadcast(x))
        sign = "-" if coeff < 0 else ""
        coeff = abs(coeff)
        if coeff != 1:
            top = [*([Node("const", (), (coeff,))] if not coeff.is_Rational else []), *top]
            if coeff.is_Rational:
                top = ([Node("const", (), (sp.Integer(coeff.p),))] if coeff.p != 1 else []) + top
                bottom = ([Node("const", (), (sp.Integer(coeff.q),))] if coeff.q != 1 else []) + bottom
        many = len(top) + len(bottom) > 1
        if not top:
            numerator = "1"
        elif len(top) == 1 and not bottom:
            c = self.code(top[0])
            if not sign:
                return c
            return Code("-" + (c.text if c.level >= UNARY else f"({c.text})"), UNARY)
        else:
            first = self.operand(top[0], UNARY if sign else PRODUCT, "@/" if many else "")
            numerator = " * ".join([first, *[self.operand(t, UNARY, "@") for t in top[1:]]])
        if len(bottom) == 1:
            denominator = self.operand(bottom[0], UNARY, "@*/")
        elif bottom:
            denominator = "(" + " * ".join(self.operand(b, UNARY, "@") for b in bottom) + ")"
        out = sign + numerator + (f" / {denominator}" if bottom else "")
        return Code(out, PRODUCT, "/" if bottom else "*")

    def pow(self, x: Node) -> Code:
        e = x.attrs[0]
        if e < 0:
            return self.mul(Node("mul", (x,), (), x.shape))
        if e == sp.Rational(1, 2):
            return _atom(f"np.sqrt({self.p(x.args[0])})")
        base = self.postfix(x.args[0])
        exponent = str(e) if e.is_Integer else f"({e.p} / {e.q})" if e.is_Rational else repr(float(e))
        return Code(f"{base} ** {exponent}", POWER)

    def const(self, x: Node) -> Code:
        v = x.attrs[0]
        if v.is_Integer:
            return Code(str(int(v)), UNARY if v < 0 else ATOM)
        if v.is_Rational:
            return Code(f"{v.p} / {v.q}", PRODUCT, "/")
        return Code(repr(float(v)), UNARY if v < 0 else ATOM)

    def func(self, x: Node) -> Code:
        name, arg = x.attrs[0], x.args[0]
        if name in ("sigmoid", "softplus"):
            self.helpers.add("_" + name)
            return _atom(f"_{name}({self.p(arg)})")
        if name == "relu":
            return _atom(f"np.maximum({self.p(arg)}, 0.0)")
        if name == "step":
            negated = _negation(arg)
            compared = f"{self.p(arg)} > 0" if negated is None else f"{self.p(negated)} < 0"
            return _atom(f"({compared}).astype(float)")
        return _atom(f"np.{name}({self.p(arg)})")

    # --- products, reductions, shapes ---

    def matmul(self, x: Node) -> Code:
        a, b = x.args
        return Code(f"{self.operand(a, PRODUCT, '*/')} @ {self.operand(b, UNARY, '*/@')}", PRODUCT, "@")

    def total(self, x: Node) -> Code:
        axis, a = x.attrs[0], x.args[0]
        if a.op in _NUMBERS:
            return _atom(f"np.sum({self.p(a)})" if axis is None else f"np.sum({self.p(a)}, axis={axis})")
        return _atom(f"{self.postfix(a)}.sum()" if axis is None else f"{self.postfix(a)}.sum(axis={axis})")

    def expand(self, x: Node) -> Code:
        axis, a = x.attrs[0], x.args[0]
        if a.op in _NUMBERS:
            return _atom(f"np.expand_dims({self.p(a)}, {axis})")
        index = [":"] * len(x.shape)
        index[axis] = "None"
        return _atom(f"{self.postfix(a)}[{', '.join(index)}]")

    def squeeze(self, x: Node) -> Code:
        axis, a = x.attrs[0], x.args[0]
        index = [":"] * len(a.shape)
        index[axis] = "0"
        return _atom(f"{self.postfix(a)}[{', '.join(index)}]")

    def broadcast(self, x: Node) -> Code:
        return _atom(f"np.broadcast_to({self.p(x.args[0])}, {self.shape(x.shape)})")

    def helper(self, x: Node) -> Code:
        self.helpers.add("_" + x.op)
        axis = f", axis={x.attrs[0]}" if x.op in ("softmax", "logsumexp") else ""
        return _atom(f"_{x.op}({self.p(x.args[0])}{axis})")

    def dim(self, x: Node) -> Code:
        self.dims.add(x.attrs[0])
        return _atom(x.attrs[0])

    def identity(self, x: Node) -> Code:
        n = x.shape[0]
        if isinstance(n, str):
            self.dims.add(n)
        return _atom(f"np.eye({n})")


_RULES: dict[str, Callable[[CodePrinter, Node], Code]] = {
    "var": lambda cp, x: _atom(python_name(x.attrs[0])),
    "dim": CodePrinter.dim,
    "const": CodePrinter.const,
    "ones": lambda cp, x: _atom(f"np.ones({cp.shape(x.shape)})"),
    "identity": CodePrinter.identity,
    "add": CodePrinter.add,
    "mul": CodePrinter.mul,
    "pow": CodePrinter.pow,
    "func": CodePrinter.func,
    "matmul": CodePrinter.matmul,
    "outer": lambda cp, x: _atom(f"np.outer({cp.p(x.args[0])}, {cp.p(x.args[1])})"),
    "T": lambda cp, x: _atom(f"{cp.postfix(x.args[0])}.T"),
    "sum": CodePrinter.total,
    "expand": CodePrinter.expand,
    "squeeze": CodePrinter.squeeze,
    "broadcast": CodePrinter.broadcast,
    "softmax": CodePrinter.helper,
    "logsumexp": CodePrinter.helper,
    "logdet": CodePrinter.helper,
    **{op: (lambda call: lambda cp, x: _atom(f"{call}({cp.p(x.args[0])})"))(call) for op, call in _CALLS.items()},
}


def _unbroadcast(x: Node) -> list[Node]:
    """The operands of an elementwise sum or product, each explicit broadcast dropped where NumPy's own
    broadcasting of the operands gives the same shape (``x - mu``, not ``x - np.broadcast_to(mu, (N, D))``)."""
    args = list(x.args)
    for i, a in enumerate(args):
        narrow = _narrowed(a)
        if narrow is None:
            continue
        trial = [*args[:i], narrow, *args[i + 1:]]
        if _broadcast_shape(trial) == x.shape:
            args = trial
    return args


def _narrowed(x: Node) -> Node | None:
    """``x`` without its explicit broadcasts (a broadcast, or an elementwise operation of one), or None."""
    if x.op == "broadcast":
        return x.args[0]
    if x.op not in ("mul", "add", "pow", "func"):
        return None
    args = [_narrowed(a) or a for a in x.args]
    return None if args == list(x.args) else Node(x.op, tuple(args), x.attrs, _broadcast_shape(args))


def _broadcast_shape(nodes: list[Node]) -> tuple:
    shape: tuple = ()
    for t in nodes:
        shape = broadcast(shape, t.shape)
    return shape


def _negation(x: Node) -> Node | None:
    """``-x`` as a tree without the minus sign, if ``x`` is a negative constant or has a negative coefficient."""
    if x.op == "const" and x.attrs[0] < 0:
        return Node("const", (), (-x.attrs[0],))
    if x.op != "mul":
        return None
    coeff = sp.Mul(*[a.attrs[0] for a in x.args if a.op == "const"])
    if coeff >= 0:
        return None
    rest = [a for a in x.args if a.op != "const"]
    if coeff != -1:
        rest = [Node("const", (), (-coeff,)), *rest]
    if not rest:
        return Node("const", (), (sp.Integer(1),))
    return rest[0] if len(rest) == 1 else Node("mul", tuple(rest), (), x.shape)


def _fraction(factors: list[Node]) -> tuple[sp.Expr, list[Node], list[Node]]:
    """A product split into its constant coefficient, its numerator and its denominator (negative powers)."""
    coeff: sp.Expr = sp.Integer(1)
    top: list[Node] = []
    bottom: list[Node] = []
    pending = list(factors)
    while pending:
        f = pending.pop(0)
        if f.op == "mul":
            pending = [*f.args, *pending]
        elif f.op == "const":
            coeff *= f.attrs[0]
        elif f.op == "pow" and f.attrs[0] < 0:
            e = -f.attrs[0]
            bottom.append(f.args[0] if e == 1 else Node("pow", f.args, (e,), f.shape))
        else:
            top.append(f)
    return coeff, top, bottom
