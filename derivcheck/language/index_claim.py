"""A gradient typed in index notation, read back: ``∂f/∂w_i = Σ_n (σ(y_n Σ_d X_nd w_d) y_n - y_n) X_ni``.

What ``derive-expr`` prints as an index form, and what a person writes by hand, in Unicode or ASCII
(``df/dw_i = sum_n ...``). An entry is a declared name with one index letter per axis, ``X_nd``, or
with brackets, ``X[n, d]``, or braces, ``X_{nd}``; an inverse, a determinant or a norm is written
in the matrix language, ``(X⁻¹)_ji``, ``det(X)``, ``‖x‖``. ``Σ_k`` (``sum_k``) sums the rest of its product over ``k``, whose range is
read off the entries it indexes. The indices outside every Σ are the entries of the gradient: in the
order of the left side ``∂f/∂W_ij =`` where it is typed, else in alphabetical order, bound to the
axes of the variable differentiated by. No ``eval``, no ``sympify`` of user text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp

from derivcheck.errors import ExpressionError
from derivcheck.language import nodes as n
from derivcheck.language.evaluate import SYMPY, evaluate
from derivcheck.language.index_notation import entries, exact_entries, size_symbol
from derivcheck.language.nodes import Node, Variable
from derivcheck.language.parse import parse_expression
from derivcheck.language.printing import text
from derivcheck.language.printing.notation import UNICODE, read_superscript
from derivcheck.language.scalar_algebra import SYMPY_FUNCTIONS

_GREEK = "\u0391-\u03a1\u03a3-\u03a9\u03b1-\u03c9"
_TOKEN = re.compile(
    r"\s*(?:(?P<sum>(?:\u03a3|sum)_(?:\{[^}]*\}|[A-Za-z][A-Za-z0-9]*))"
    r"|(?P<num>\d+\.\d*|\.\d+|\d+)"
    r"|(?P<name>(?:[A-Za-z][A-Za-z0-9]*|[" + _GREEK + r"])(?:_[A-Za-z0-9]+)*)"
    r"|(?P<sub>_(?:\{[^}]*\}|[A-Za-z]+))"
    r"|(?P<sup>[\u207b\u2070\u00b9\u00b2\u00b3\u2074-\u2079]+)"
    r"|(?P<op>\*\*|<=|>=|!=|[-+*/()\[\],=<>^|\u00b7\u2212\u221a\u2299\u2298\u2264\u2265\u2260])"
    r"|(?P<other>\S))")  # any other character: the matrix language's own (Aᵀ) inside (...)_ij, else an error
# A left side: ∂f/∂w_i =, df/dW[i, j] =, ∂f/∂λ = (the objective's letter is free: f, E, L).
_LHS = re.compile(r"^\s*(?:\u2202|d)\s*[A-Za-z]\s*/\s*(?:\u2202|d)\s*(?P<entry>[^=]+?)\s*=(?!=)")
# Functions of a matrix, read by the matrix language: their value is a number (a scalar atom).
_MATRIX_CALLS = ("det", "logdet", "tr", "trace", "norm2", "frobenius", "sum", "mean", "logsumexp")
_FUNCTIONS = {**SYMPY_FUNCTIONS, "σ": SYMPY_FUNCTIONS["sigmoid"], "√": sp.sqrt}


@dataclass(frozen=True)
class Tok:
    kind: str
    text: str
    pos: int
    end: int


def _tokenize(text: str) -> list[Tok]:
    out, pos = [], 0
    while text[pos:].strip():
        m = _TOKEN.match(text, pos)
        assert m is not None  # the last alternative matches any character
        kind = m.lastgroup or "op"
        word = m.group(kind)
        out.append(Tok(kind, "-" if word == "\u2212" else word, m.start(kind), m.end(kind)))
        pos = m.end()
    out.append(Tok("end", "", len(text), len(text)))
    return out


@dataclass
class IndexClaim:
    """A parsed index form: one entry of the claimed gradient, its free indices and the trees of its atoms."""

    text: str
    expr: sp.Expr
    free: tuple[sp.Symbol, ...]
    shape: tuple[Any, ...]
    atoms: dict[sp.Basic, Node] = field(default_factory=dict)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def values(self, values: Mapping[str, Any], sizes: Mapping[str, int]) -> np.ndarray:
        """Every entry in floating point at these sizes."""
        shape = tuple(d if isinstance(d, int) else sizes[d] for d in self.shape)
        return entries(self.expr, self.free, shape, self.atoms, values, sizes, lambda x: evaluate(x, values, sizes))

    def exact(self, values: Mapping[str, Any], sizes: Mapping[str, int]) -> np.ndarray:
        """Every entry exactly, ``values`` holding SymPy entries."""
        shape = tuple(d if isinstance(d, int) else sizes[d] for d in self.shape)
        out = exact_entries(self.expr, self.free, shape, self.atoms, values, sizes,
                            lambda x: evaluate(x, values, sizes, SYMPY))
        return out if shape else out[()]

    def transposed(self) -> IndexClaim:
        """The claim with its two free indices swapped: the transpose, for a square gradient."""
        return IndexClaim(self.text, self.expr, tuple(reversed(self.free)), self.shape, self.atoms)

    def negated(self) -> IndexClaim:
        return IndexClaim(self.text, -self.expr, self.free, self.shape, self.atoms)


def without_matrix_lhs(text: str, variables: Mapping[str, Variable], wrt: str) -> str:
    """``text`` without a left side that names a whole variable (``∂f/∂W =``, ``df/dλ =``), as derive-expr prints a
    matrix form; a left side naming another declared variable than ``wrt`` is an error.

    Examples
    --------
    >>> from derivcheck.language.parse import declarations
    >>> without_matrix_lhs("∂f/∂W = 2 Xᵀ (X W - Y)", declarations({"X": "N x D", "W": "D x K", "Y": "N x K"}), "W")
    '2 Xᵀ (X W - Y)'
    """
    m = _LHS.match(text)
    if not m:
        return text
    spelled = {UNICODE.greek(k): k for k in variables} | {k: k for k in variables}
    name = spelled.get(m.group("entry").strip())
    if name is None:
        return text  # an entry such as W_ij: the index form's own left side
    if name != wrt:
        raise ExpressionError(f"the left side differentiates by {name}, but the gradient asked for is by {wrt} "
                              f"(--wrt {wrt})", text, m.start("entry"))
    return text[m.end():].lstrip()


def looks_like_index_form(text: str, variables: Mapping[str, Variable]) -> bool:
    """Is ``text`` written in index notation (a left side ∂f/∂w_i =, a Σ, or an entry such as X_nd, X[n, d] or
    (X⁻¹)_ji)?"""
    if _LHS.match(text) or re.search(r"(?:\u03a3|\bsum)_|\)(?:_[A-Za-z{]|\[)|\[\s*\w+\s*(?:=|!=|\u2260)\s*\w+\s*\]", text):
        return True
    greek = {UNICODE.greek(k): k for k in variables if UNICODE.greek(k) != k}
    for m in re.finditer(r"(?<![A-Za-z0-9_])(?:[A-Za-z][A-Za-z0-9]*|[" + _GREEK + r"])(?:_[A-Za-z0-9]+)*(\[)?", text):
        word = m.group(0).rstrip("[")
        whole = greek.get(word, word)
        if whole in variables:  # a declared name (W_b), an entry only when brackets follow: X[n, d]
            if m.group(1) and variables[whole].shape:
                return True
            continue
        for cut in [k.start() for k in re.finditer("_", word)]:
            head, sub = greek.get(word[:cut], word[:cut]), word[cut + 1:]
            if head in variables and variables[head].shape and sub.isalpha():
                return True
    return False


def parse_index_claim(text: str, variables: Mapping[str, Variable], wrt: str) -> IndexClaim:
    """The index form ``text`` as the gradient by ``wrt``: entries bound to ``wrt``'s axes, every index checked.

    Examples
    --------
    >>> vs = {"X": Variable("X", ("N", "D")), "w": Variable("w", ("D",)), "y": Variable("y", ("N",))}
    >>> c = parse_index_claim("∂f/∂w_i = Σ_n (σ(Σ_d X_nd w_d) - y_n) X_ni", vs, "w")
    >>> [str(i) for i in c.free], c.shape
    (['i'], ('D',))
    """
    if not isinstance(text, str):
        raise ExpressionError(f"the claimed index form must be a string; got {type(text).__name__}")
    lhs = _LHS.match(text)
    body = text[lhs.end():] if lhs else text
    offset = lhs.end() if lhs else 0
    reader = _Reader(body, text, offset, variables)
    declared = reader.left_side(lhs.group("entry"), lhs.start("entry"), wrt) if lhs else None
    expr = reader.parse(declared)
    return reader.bind(expr, declared, wrt)


class _Reader:
    """Recursive descent over the tokens; ``scope`` holds the indices of the Σ's open here, innermost last."""

    def __init__(self, body: str, whole: str, offset: int, variables: Mapping[str, Variable]) -> None:
        self.body, self.whole, self.offset = body, whole, offset
        self.tokens = _tokenize(body)
        self.i = 0
        self.variables = variables
        self.dims = {d for v in variables.values() for d in v.shape if isinstance(d, str)}
        self.greek = {UNICODE.greek(k): k for k in variables if UNICODE.greek(k) != k}
        self.scope: list[sp.Symbol] = []
        self.ranges: dict[sp.Symbol, list[tuple[Any, str, int]]] = {}  # index -> (dimension, where, column)
        self.summed: dict[sp.Symbol, sp.Symbol] = {}  # index -> its placeholder range
        self.loose: dict[sp.Symbol, int] = {}  # indices outside every Σ -> where first seen
        self.atoms: dict[sp.Basic, Node] = {}
        self.declared: tuple[sp.Symbol, ...] | None = None
        self.links: list[tuple[Any, Any]] = []  # indices a Kronecker bracket [k = d] makes equal
        self.bars = 0  # the |...| open here (inside the innermost parenthesis): a | then closes, never opens

    # --- tokens ---
    @property
    def tok(self) -> Tok:
        return self.tokens[self.i]

    def take(self, text: str | None = None) -> Tok:
        t = self.tok
        if text is not None and t.text != text:
            found = repr(t.text) if t.kind != "end" else "the end of the index form"
            raise self.error(f"expected {text!r}, found {found}", t.pos)
        self.i += 1
        return t

    def adjacent(self) -> bool:
        return self.i > 0 and self.tokens[self.i - 1].end == self.tok.pos

    def error(self, message: str, pos: int) -> ExpressionError:
        return ExpressionError(message, self.whole, pos + self.offset)

    # --- the left side ---
    def left_side(self, entry: str, pos: int, wrt: str) -> tuple[sp.Symbol, ...]:
        sub = _Reader(entry, self.whole, pos, self.variables)
        t = sub.take()
        if t.kind != "name":
            raise self.error(f"the left side reads ∂f/∂{wrt}_i (or df/d{wrt}_i); got {entry.strip()!r}", pos)
        name, letters = sub.split_entry(t, allow_scalar=True)
        if not letters:
            letters = sub.written_indices()
        if name != wrt:
            raise self.error(f"the left side differentiates by {name}, but the gradient asked for is by {wrt} "
                             f"(--wrt {wrt})", pos)
        v = self.variables[wrt]
        if len(letters) != len(v.shape):
            want = "no index" if not v.shape else f"{len(v.shape)} ({_axes(v)})"
            raise self.error(f"the left side gives {wrt} {len(letters)} indices; {wrt} is {_shape(v)}: it takes {want}",
                             pos)
        out = tuple(k if isinstance(k, sp.Symbol) else None for k in letters)
        if None in out or len(set(out)) != len(out):
            raise self.error(f"the left side's indices must be distinct letters; got {entry.strip()!r}", pos)
        return out  # type: ignore[return-value]

    # --- grammar ---
    def parse(self, declared: tuple[sp.Symbol, ...] | None) -> sp.Expr:
        self.declared = declared
        if self.tok.kind == "end":
            raise self.error("the index form is empty", 0)
        e = self.sum_()
        if self.tok.kind != "end":
            what = "character" if self.tok.kind == "other" else ""
            raise self.error(f"unexpected {what + ' ' if what else ''}{self.tok.text!r} in the index form", self.tok.pos)
        return e

    def sum_(self) -> sp.Expr:
        e = self.term()
        while self.tok.kind == "op" and self.tok.text in ("+", "-"):
            op = self.take()
            rhs = self.term()
            e = e + rhs if op.text == "+" else e - rhs
        return e

    def term(self) -> sp.Expr:
        if self.tok.kind == "op" and self.tok.text in ("+", "-"):
            op = self.take()
            e = self.term()
            return -e if op.text == "-" else e
        return self.product()

    def starts_factor(self) -> bool:
        t = self.tok
        return t.kind in ("num", "name", "sum") or t.text in ("(", "[", "\u221a", "\u2016") or (t.text == "|" and not self.bars)

    def product(self) -> sp.Expr:
        """Factors side by side or joined by * · ⊙ / ⊘; a Σ takes the rest of the product as its body."""
        e = self.factor()
        while True:
            t = self.tok
            if t.kind == "op" and t.text in ("*", "\u00b7", "\u2299", "/", "\u2298"):
                self.take()
                if self.tok.kind == "op" and self.tok.text in ("-", "+"):  # a * -b
                    sign = -1 if self.take().text == "-" else 1
                else:
                    sign = 1
                rhs = sign * self.factor()
                e = e / rhs if t.text in ("/", "\u2298") else e * rhs
            elif self.starts_factor():
                e = e * self.factor()
            else:
                return e

    def factor(self) -> sp.Expr:
        if self.tok.kind == "sum":
            return self.sigma()
        return self.power()

    def sigma(self) -> sp.Expr:
        t = self.take()
        head = t.text.split("_", 1)[1]
        names = [x.strip() for x in head.strip("{}").split(",")] if head.startswith("{") else [head]
        ks = []
        for name in names:
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", name) or name in self.variables or name in self.dims:
                raise self.error(f"Σ_{name}: a summed index is a letter that names no variable or dimension", t.pos)
            k = sp.Symbol(name, integer=True)
            if k in self.scope or k in self.loose or (self.declared and k in self.declared):
                raise self.error(f"Σ_{name} sums the index {name}, which is already in use here: give the sum "
                                 "a letter of its own", t.pos)
            ks.append(k)
        self.scope.extend(ks)
        if self.tok.kind == "op" and self.tok.text in ("-", "+"):
            body = self.term()
        else:
            body = self.product()
        del self.scope[-len(ks):]
        for k in ks:
            named = [d for d in self.dims if d.lower() == k.name]  # Σ_d of no entry of d: over D, as textbooks read it
            if not self.ranges.get(k) and len(named) == 1:
                self.ranges[k] = [(named[0], f"Σ_{k} (the dimension {named[0]})", t.pos)]
        for k in ks:
            partner = next((b for a, b in self.links if a == k and self.ranges.get(b)), None)  # [k = d]: as d
            if not self.ranges.get(k) and partner is not None:
                self.ranges[k] = [(d, f"[{k} = {partner}] and {w}", pos) for d, w, pos in self.ranges[partner][:1]]
            if not self.ranges.get(k):
                raise self.error(f"Σ_{k} sums over {k}, but {k} indexes no entry in the sum, so its range is unknown "
                                 f"(write the entries it runs over, e.g. Σ_{k} x_{k})", t.pos)
        for k in ks:  # Σ_{k,d}: k the inner sum, as SymPy lists the limits
            upper = self.summed.setdefault(k, sp.Symbol(f"_range_{k.name}", positive=True, integer=True))
            body = sp.Sum(body, (k, 0, upper - 1))
            self.ranges.setdefault(k, [])
            self.loose.pop(k, None)
        return body

    def power(self) -> sp.Expr:
        e = self.atom()
        while True:
            t = self.tok
            if t.kind == "sup":
                self.take()
                e = e ** read_superscript(t.text)
            elif t.text in ("^", "**"):
                self.take()
                e = e ** self.exponent()
            else:
                return e

    def exponent(self) -> sp.Expr:
        if self.tok.text == "(":
            self.take()
            e = self.sum_()
            self.take(")")
        else:
            sign = -1 if self.tok.text == "-" else 1
            if self.tok.text in ("-", "+"):
                self.take()
            t = self.take()
            if t.kind != "num":
                raise self.error("an exponent is a number, x^2, or a parenthesized number, x^(-1/2)", t.pos)
            e = sign * _number(t.text)
        if e.free_symbols:
            raise self.error("an exponent must be a number", self.tok.pos)
        return e

    def atom(self) -> sp.Expr:
        t = self.tok
        if t.kind == "num":
            self.take()
            if t.text == "1" and self.tok.text == "[" and self.adjacent():
                return self.iverson()
            return _number(t.text)
        if t.text == "(":
            return self.group()
        if t.text == "[":
            return self.kronecker()
        if t.text == "|":
            self.take()
            self.bars += 1
            e = self.sum_()
            self.bars -= 1
            self.take("|")
            return sp.Abs(e)
        if t.text == "\u221a":
            self.take()
            return sp.sqrt(self.power())
        if t.text == "\u2016":
            return self.norm()
        if t.kind == "name":
            return self.named()
        if t.kind == "other":
            raise self.error(f"unexpected character {t.text!r} in the index form", t.pos)
        found = repr(t.text) if t.kind != "end" else "the end of the index form"
        raise self.error(f"expected an entry, a number or '(', found {found}", t.pos)

    def group(self) -> sp.Expr:
        """``( ... )``: a scalar subexpression, or a matrix in the matrix language when indices follow, (X⁻¹)_ji."""
        open_ = self.take("(")
        depth, j = 1, self.i
        while depth and self.tokens[j].kind != "end":
            depth += {"(": 1, ")": -1}.get(self.tokens[j].text, 0)
            j += 1
        if depth:
            raise self.error(f"the parenthesis at column {open_.pos + self.offset + 1} is never closed", len(self.body))
        after = self.tokens[j]
        indexed = after.kind == "sub" or (after.text == "[" and after.pos == self.tokens[j - 1].end)
        if not indexed:
            return self.inner(")")
        inner = self.body[open_.end:self.tokens[j - 1].pos]
        node = self.matrix(inner, open_.end)
        self.i = j
        letters = self.subscript(self.take()) if after.kind == "sub" else self.bracket_indices()
        return self.entry_of_atom(node, letters, open_.pos)

    def matrix(self, inner: str, pos: int) -> Node:
        try:
            return parse_expression(inner, self.variables)
        except ExpressionError as exc:
            raise self.error(f"in ({inner.strip()}): {str(exc).splitlines()[0]}", pos) from None

    def entry_of_atom(self, node: Node, letters: list[Any], pos: int) -> sp.Expr:
        if len(letters) != node.ndim:
            raise self.error(f"({text(node)}) has shape {_dims(node.shape)}: its entries take {node.ndim} "
                             f"indices, not {len(letters)}", pos)
        if node.ndim == 0:
            return self.atom_symbol(node)
        base = next((b for b, x in self.atoms.items() if x == node), None)
        if base is None:
            base = sp.IndexedBase(f"_atom{len(self.atoms)}")
            self.atoms[base] = node
        self.use(letters, node.shape, f"({text(node)})", pos)
        return base[tuple(letters)]

    def atom_symbol(self, node: Node) -> sp.Expr:
        held = next((b for b, x in self.atoms.items() if x == node), None)
        if held is None:
            held = sp.Symbol(f"_atom{len(self.atoms)}")
            self.atoms[held] = node
        return held

    def norm(self) -> sp.Expr:
        """``‖x‖``, ``‖X‖_F``: a norm of the matrix language, kept whole as an atom."""
        open_ = self.take()
        j = next((k for k in range(self.i, len(self.tokens)) if self.tokens[k].text == "\u2016"), None)
        if j is None:
            raise self.error(f"the \u2016 at column {open_.pos + self.offset + 1} is never closed", len(self.body))
        end = self.tokens[j].end
        if self.tokens[j + 1].text == "_F" and self.tokens[j + 1].pos == end:
            j, end = j + 1, self.tokens[j + 1].end
        node = self.matrix(self.body[open_.pos:end], open_.pos)
        self.i = j + 1
        return self.atom_symbol(node)

    def iverson(self) -> sp.Expr:
        """``1[x > 0]``, ``1[x < 0]``: the step function."""
        self.take("[")
        e = self.sum_()
        rel = self.take()
        zero = self.take()
        if rel.text not in (">", "<") or zero.text != "0":
            raise self.error("an Iverson bracket reads 1[x > 0] or 1[x < 0]", rel.pos)
        self.take("]")
        return SYMPY_FUNCTIONS["step"](e if rel.text == ">" else -e)

    def kronecker(self) -> sp.Expr:
        """``[i = j]``: 1 where the two indices are equal (a Kronecker delta)."""
        start = self.take("[")
        a = self.index_value()
        rel = self.take()
        if rel.text not in ("=", "!=", "\u2260"):
            raise self.error("a bracket of indices reads [i = j] (1 where i equals j, else 0)", start.pos)
        b = self.index_value()
        self.take("]")
        self.use([a, b], (None, None), f"[{a} = {b}]", start.pos)
        self.links += [(a, b), (b, a)]
        delta = sp.KroneckerDelta(a, b)
        return delta if rel.text == "=" else 1 - delta

    def index_value(self) -> Any:
        t = self.take()
        if t.kind == "num" and t.text.isdigit():
            return sp.Integer(int(t.text))
        if t.kind == "name" and re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", t.text) and t.text not in self.variables:
            return sp.Symbol(t.text, integer=True)
        raise self.error(f"an index is a letter or a whole number; got {t.text!r}", t.pos)

    def written_indices(self) -> list[Any]:
        """Indices written after a name as brackets, X[n, d], or as a braced subscript, X_{nd}, X_{n,d}."""
        if self.tok.text == "[" and self.adjacent():
            return self.bracket_indices()
        if self.tok.kind == "sub" and self.adjacent():
            return self.subscript(self.take())
        return []

    def bracket_indices(self) -> list[Any]:
        self.take("[")
        out = [self.index_value()]
        while self.tok.text == ",":
            self.take()
            out.append(self.index_value())
        self.take("]")
        return out

    def subscript(self, t: Tok) -> list[Any]:
        letters = t.text[1:].strip("{}")
        parts = [x.strip() for x in letters.split(",")] if "," in letters else list(letters)
        return [sp.Symbol(x, integer=True) for x in parts]

    def split_entry(self, t: Tok, allow_scalar: bool = False) -> tuple[str, list[Any]]:
        """A name token as (declared name, its subscript letters): ``X_nd`` -> (X, [n, d]); ``W_1`` -> (W_1, [])."""
        word = t.text
        whole = self.greek.get(word, word)
        if whole in self.variables:
            return whole, []
        options = []
        for cut in [m.start() for m in re.finditer("_", word)]:
            head, sub = word[:cut], word[cut + 1:]
            name = self.greek.get(head, head)
            if name in self.variables and self.variables[name].shape and sub.isalpha():
                options.append((name, [sp.Symbol(c, integer=True) for c in sub]))
        if options:  # one at most: a subscript has no underscore, so X_n_d is an entry of X_n, X_nd one of X
            return options[0]
        if allow_scalar:
            raise self.error(f"{word!r} is not a declared variable (declared: {', '.join(sorted(self.variables))})",
                             t.pos)
        return "", []

    def named(self) -> sp.Expr:
        t = self.take()
        word = t.text
        if word == "log" and self.tok.text == "det":  # log det(X), as printed
            det = self.take()
            return self.matrix_call("logdet", t.pos, det)
        if word in _MATRIX_CALLS and self.tok.text == "(":
            return self.matrix_call(word, t.pos, t)
        if word in ("\u03c3", "sigmoid") and self.tok.text == "(" and self.adjacent():
            return self.call(SYMPY_FUNCTIONS["sigmoid"])
        if word in _FUNCTIONS and self.tok.text == "(" and word not in self.variables:
            return self.call(_FUNCTIONS[word])
        if word in self.dims:
            return size_symbol(word)
        name, letters = self.split_entry(t)
        if not name:
            return self.unknown(t)
        v = self.variables[name]
        if not letters and v.shape:
            letters = self.written_indices()
            if not letters:
                sub = "".join(chr(ord("i") + k) for k in range(len(v.shape)))
                raise self.error(f"{word} is {_shape(v)}: an index form writes its entries, {word}_{sub} "
                                 f"(or {word}[{', '.join(sub)}])", t.pos)
        if len(letters) != len(v.shape):
            raise self.error(f"{name} is {_shape(v)}: its entries take {len(v.shape)} indices ({_axes(v)}); "
                             f"{word} has {len(letters)}", t.pos)
        if not v.shape:
            return sp.Symbol(name, real=True)
        self.use(letters, v.shape, word, t.pos)
        return sp.IndexedBase(name, real=True)[tuple(letters)]

    def unknown(self, t: Tok) -> sp.Expr:
        declared = ", ".join(sorted(self.variables)) or "nothing"
        dims = ", ".join(sorted(self.dims)) or "none"
        k = sp.Symbol(t.text, integer=True)
        if k in self.scope or k in self.loose or (self.declared and k in self.declared):
            raise self.error(f"{t.text} is an index: it stands in the subscript of an entry (X_{t.text}d), never "
                             "alone as a number", t.pos)
        head = t.text.split("_", 1)[0]
        what = f"{head} is not a declared variable" if "_" in t.text else \
            f"{t.text!r} is neither a declared variable, an entry of one (such as X_nd), a dimension nor a function"
        raise self.error(f"{what} (declared: {declared}; dimensions: {dims})", t.pos)

    def call(self, f: Any) -> sp.Expr:
        self.take("(")
        return f(self.inner(")"))

    def inner(self, close: str) -> sp.Expr:
        """The expression up to ``close``: bars opened outside neither open nor close inside."""
        saved, self.bars = self.bars, 0
        e = self.sum_()
        self.bars = saved
        self.take(close)
        return e

    def matrix_call(self, word: str, pos: int, name_tok: Tok) -> sp.Expr:
        """``det(X)``, ``log det(X)``, ``tr(A)``: a number of the matrix language, kept whole as an atom."""
        open_ = self.take("(")
        depth, j = 1, self.i
        while depth and self.tokens[j].kind != "end":
            depth += {"(": 1, ")": -1}.get(self.tokens[j].text, 0)
            j += 1
        inner = self.body[open_.end:self.tokens[j - 1].pos]
        node = self.matrix(f"{word}({inner})", pos)
        self.i = j
        if node.ndim:
            raise self.error(f"{word}(...) has shape {_dims(node.shape)}: only its entries, ({word}(...))_ij, "
                             "belong in an index form", pos)
        return self.atom_symbol(node)

    # --- indices ---
    def use(self, letters: list[Any], shape: tuple[Any, ...], where: str, pos: int) -> None:
        """Record which dimension each index letter runs over; an index outside every Σ is free."""
        for k, d in zip(letters, shape):
            if not isinstance(k, sp.Symbol):
                if d is not None and isinstance(d, int) and not 0 <= int(k) < d:
                    raise self.error(f"index {k} is out of range in {where} (length {d})", pos)
                continue
            if d is not None:
                self.ranges.setdefault(k, []).append((d, where, pos))
            if k not in self.scope:
                self.loose.setdefault(k, pos)

    def bind(self, expr: sp.Expr, declared: tuple[sp.Symbol, ...] | None, wrt: str) -> IndexClaim:
        v = self.variables[wrt]
        loose = sorted(self.loose, key=lambda s: s.name)
        if declared is not None:
            extra = [k for k in loose if k not in declared]
            if extra:
                k = extra[0]
                raise self.error(f"index {k} is neither summed (no Σ_{k} before it) nor an index of the left side "
                                 f"({', '.join(map(str, declared))})", self.loose[k])
            free = declared
        else:
            if len(loose) != len(v.shape):
                found = f"{len(loose)} free indices ({', '.join(map(str, loose))})" if loose else "no free index"
                sub = "".join(chr(ord("i") + k) for k in range(len(v.shape)))
                raise self.error(f"the index form has {found} outside every Σ, but the gradient by {wrt} has one per "
                                 f"axis of {wrt} ({_shape(v)}): {len(v.shape)}; write each entry's indices, or bind "
                                 f"them with the left side, ∂f/∂{wrt}{'_' + sub if sub else ''} = ...",
                                 self.loose[loose[0]] if loose else 0)
            free = tuple(loose)
        for k, d in zip(free, v.shape):
            self.ranges.setdefault(k, []).insert(0, (d, f"the gradient by {wrt} ({wrt} is {_shape(v)})", 0))
        subs = {}
        for k, placeholder in self.summed.items():
            subs[placeholder] = size_symbol(self.range_of(k))
        for k in free:
            self.range_of(k)
        return IndexClaim(self.whole, expr.xreplace(subs), free, v.shape, self.atoms)

    def range_of(self, k: sp.Symbol) -> Any:
        # Never empty: a free index has its axis of wrt, a summed one its entries (Σ checks). An axis of length 1 is
        # indexed by 0 where it broadcasts, so a letter there ranges over 1.
        seen = self.ranges[k]
        first = seen[0]
        other = next((x for x in seen if x[0] != first[0]), None)
        if other is not None:
            raise self.error(f"index {k} runs over {first[0]} in {first[1]} but over {other[0]} in {other[1]}", other[2])
        return first[0]


def _number(text: str) -> sp.Expr:
    return sp.Rational(text) if "." in text else sp.Integer(text)


def _shape(v: Variable) -> str:
    if not v.shape:
        return "a scalar"
    return f"a vector of length {v.shape[0]}" if len(v.shape) == 1 else " x ".join(map(str, v.shape))


def _dims(shape: tuple[Any, ...]) -> str:
    return " x ".join(map(str, shape)) or "() (a number)"


def _axes(v: Variable) -> str:
    return ", ".join(str(d) for d in v.shape) or "none"
