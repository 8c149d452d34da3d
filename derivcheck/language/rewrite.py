"""Rewrites that keep the value and make a tree read like a textbook.

Transposes are pushed to the leaves, ``(A^T)`` of a symmetric matrix is ``A``, scalars move
out of products and sums, elementwise algebra is simplified by SymPy (``scalar_algebra``),
and terms sharing a factor are collected: ``A x + A^T x`` is ``(A + A^T) x``. Every rewrite
is an identity; the derivations verify their results numerically all the same.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import sympy as sp

from derivcheck.language import nodes as n
from derivcheck.language.nodes import Node, Variable
from derivcheck.language.scalar_algebra import Island, simplest

ISLAND_OPS = ("add", "mul", "pow", "func")


# One local rewrite per operation, in a table filled by ``@_rewrites("op")`` on the rewriter's methods.
_LOCAL_RULES: dict[str, Callable[..., Node]] = {}


def _rewrites(op: str) -> Callable[[Callable[..., Node]], Callable[..., Node]]:
    def register(rule: Callable[..., Node]) -> Callable[..., Node]:
        _LOCAL_RULES[op] = rule
        return rule

    return register


class Rewriter:
    """Simplify trees over the given variables; ``free`` names a variable whose symmetry is not used."""

    def __init__(self, variables: Mapping[str, Variable], free: str | None = None) -> None:
        self.variables = variables
        self.free = free
        self.memo: dict[Node, Node] = {}

    def __call__(self, x: Node) -> Node:
        if x in self.memo:
            return self.memo[x]
        if x.op in ISLAND_OPS:
            out = self.island(x)
        else:
            x = Node(x.op, tuple(self(a) for a in x.args), x.attrs, x.shape)
            out = self.local(x)
        self.memo[x] = out
        return out

    # --- elementwise trees ---
    def island(self, x: Node) -> Node:
        isl = Island(self)
        e = isl.to_sympy(x)
        out = isl.to_node(simplest(e))
        return self.collect(out)

    def collect(self, x: Node) -> Node:
        """Factor shared operands of matrix products out of a sum: ``P R + Q R = (P + Q) R``."""
        if x.op != "add" or len(x.args) < 2:
            return x
        for side in (1, 0):
            groups: dict[Node, list[tuple[Node, Node]]] = {}
            rest: list[Node] = []
            for t in x.args:
                coeff, core = _split_scalar(t)
                if core.op == "matmul":
                    groups.setdefault(core.args[side], []).append((coeff, core.args[1 - side]))
                else:
                    rest.append(t)
            if not any(len(g) > 1 for g in groups.values()):
                continue
            terms = list(rest)
            for shared, parts in groups.items():
                if len(parts) == 1:
                    coeff, other = parts[0]
                    pair = (shared, other) if side == 0 else (other, shared)
                    terms.append(n.mul(coeff, n.matmul(*pair)) if not n.is_const(coeff, 1) else n.matmul(*pair))
                    continue
                inner = self(n.add(*[n.mul(c, o) if not n.is_const(c, 1) else o for c, o in parts]))
                pair = (shared, inner) if side == 0 else (inner, shared)
                terms.append(self.local(n.matmul(*pair)))
            return terms[0] if len(terms) == 1 else self(n.add(*terms))
        return x

    # --- everything else ---
    def local(self, x: Node) -> Node:
        rule = _LOCAL_RULES.get(x.op)
        return rule(self, x) if rule is not None else x

    @_rewrites("T")
    def _T(self, x: Node) -> Node:  # noqa: N802 - named after the op
        a = x.args[0]
        if a.op == "T":
            return a.args[0]
        if a.ndim == 2 and self._symmetric(a):  # X X^T, A + A^T, a declared symmetric matrix, their inverses
            return a
        if a.op == "ones":
            return n.ones((a.shape[1], a.shape[0]))
        if a.op == "broadcast" and a.args[0].ndim == 0:  # a constant matrix is its own transpose, reshaped
            return n.broadcast_to(a.args[0], (a.shape[1], a.shape[0]))
        if a.op == "matmul" and a.args[0].ndim == 2 and a.args[1].ndim == 2:
            return self(n.matmul(n.transpose(a.args[1]), n.transpose(a.args[0])))
        if a.op == "outer":
            return n.outer(a.args[1], a.args[0])
        if a.op in ("add", "mul"):
            parts = [n.transpose(t) for t in a.args]
            return self(n.add(*parts) if a.op == "add" else n.mul(*parts))
        if a.op in ("func", "pow"):
            return self(Node(a.op, (n.transpose(a.args[0]),), a.attrs, x.shape))
        return x

    def _symmetric(self, a: Node) -> bool:
        """Whether a square matrix equals its transpose whatever its variables' values (X X^T is, for any X)."""
        if a.ndim != 2 or a.shape[0] != a.shape[1]:
            return False
        if a.op == "var":
            v = self.variables.get(a.attrs[0])
            return v is not None and v.symmetric and v.name != self.free
        if a.op in ("identity", "diag", "ones"):
            return True
        if a.op == "broadcast":
            return a.args[0].ndim == 0
        if a.op in ("inv", "func", "pow"):
            return self._symmetric(a.args[0])
        if a.op == "matmul":
            return _gram(a) or self._congruence(a)
        if a.op == "add" and _transposed_pairs(a.args):  # A + A^T
            return True
        if a.op in ("add", "mul"):  # sums and Hadamard products of symmetric matrices and scalars
            return all(t.ndim == 0 or self._symmetric(t) for t in a.args)
        return False

    def _congruence(self, a: Node) -> bool:
        """B^T S B (and B S B^T) with S symmetric: a product read outside in."""
        left = _factors(a)
        right = left[::-1]
        if len(left) % 2 == 0:
            return False
        middle = left[len(left) // 2]
        return all(_transposes(p, q) for p, q in zip(left[: len(left) // 2], right)) and self._symmetric(middle)

    @_rewrites("matmul")
    def _matmul(self, x: Node) -> Node:
        a, b = x.args
        if a.op == "identity":
            return b
        if b.op == "identity":
            return a
        if n.is_const(a, 0) or n.is_const(b, 0):
            return n.const(0)
        ca, a2 = _split_scalar(a)
        cb, b2 = _split_scalar(b)
        if not (n.is_const(ca, 1) and n.is_const(cb, 1)):
            return self(n.mul(ca, cb, self.local(n.matmul(a2, b2))))
        if a.ndim == 1 and b.ndim == 2:  # a vector times a matrix is the column A^T x
            return self(n.matmul(n.transpose(b), a))
        # One association for a chain, so that equal products are equal trees and their terms collect: (A B) C for
        # matrices, A (B x) for a chain that ends in a vector (matrix-vector products only, never a D x D product).
        if b.op == "matmul" and b.ndim == 2 and a.ndim == 2 and b.args[0].ndim == 2:
            return self.local(n.matmul(self.local(n.matmul(a, b.args[0])), b.args[1]))
        if a.op == "matmul" and b.ndim == 1 and a.args[1].ndim == 2:
            return self.local(n.matmul(a.args[0], self.local(n.matmul(a.args[1], b))))
        return x

    @_rewrites("sum")
    def _sum(self, x: Node) -> Node:
        a, axis = x.args[0], x.attrs[0]
        if a.op in ("const", "ones"):
            count = n.size_of(a.shape if axis is None else (a.shape[axis],))
            value = n.const(1) if a.op == "ones" else a
            return self(n.broadcast_to(n.mul(value, count), x.shape) if x.shape else n.mul(value, count))
        if a.op == "mul":
            c, core = _split_scalar(a)
            if not n.is_const(c, 1) and core.shape == a.shape:
                return self(n.mul(c, n.total(core, axis)))
        if a.op == "expand" and axis == a.attrs[0]:
            return self(n.mul(a.args[0], n.size_of((1,))))
        if a.op == "var" and "simplex" in self.variables[a.attrs[0]].properties:
            rows = a.shape[0] if a.ndim == 2 else None
            if axis is not None and a.ndim == 2 and axis == 1:
                return n.ones((a.shape[0],))
            if axis is None:
                return n.dim(rows) if isinstance(rows, str) else n.const(rows or 1)
        return x

    @_rewrites("diag")
    def _diag(self, x: Node) -> Node:
        c, core = _split_scalar(x.args[0])
        if not n.is_const(c, 1) and core.shape == x.args[0].shape:  # diag(-s) = -diag(s)
            return self(n.mul(c, n.diag(core)))
        return x

    @_rewrites("expand")
    def _expand(self, x: Node) -> Node:
        a = x.args[0]
        if a.op == "const" or a.ndim == 0:
            return a
        if a.op == "ones":
            return n.ones(x.shape)
        if a.op == "mul":
            c, core = _split_scalar(a)
            if not n.is_const(c, 1):
                return self(n.mul(c, n.expand(core, x.attrs[0])))
        return x

    @_rewrites("squeeze")
    def _squeeze(self, x: Node) -> Node:
        a, axis = x.args[0], x.attrs[0]
        if a.op == "expand" and a.attrs[0] == axis:
            return a.args[0]
        if a.op == "ones":
            return n.ones(x.shape)
        if a.ndim != x.ndim + 1:  # the operand was already reduced by a rewrite (a constant, a scalar)
            return a
        return x

    @_rewrites("broadcast")
    def _broadcast(self, x: Node) -> Node:
        a = x.args[0]
        return a if a.shape == x.shape else x


def _factors(a: Node) -> list[Node]:
    """The matrices of a chain of products, left to right."""
    if a.op != "matmul":
        return [a]
    return _factors(a.args[0]) + _factors(a.args[1])


def _transposes(p: Node, q: Node) -> bool:
    """Whether ``q`` is ``p^T`` as written (either one carries the transpose)."""
    return (q.op == "T" and q.args[0] == p) or (p.op == "T" and p.args[0] == q)


def _gram(a: Node) -> bool:
    """A A^T or A^T A: a product of a matrix with its own transpose."""
    return a.op == "matmul" and a.args[0].ndim == 2 and a.args[1].ndim == 2 and _transposes(*a.args)


def _transposed_pairs(terms: tuple[Node, ...]) -> bool:
    """Every term of a sum paired with its own transpose (with the same coefficient): A + A^T, 2 B + 2 B^T."""
    split = [_split_scalar(t) for t in terms]
    left = list(split)
    while left:
        c, core = left.pop()
        partner = next(((c2, k) for c2, k in left if c2 == c and _transposes(core, k)), None)
        if partner is None:
            return False
        left.remove(partner)
    return True


def _split_scalar(t: Node) -> tuple[Node, Node]:
    """A term as (scalar coefficient, the rest)."""
    if t.op != "mul":
        return n.const(1), t
    scal = [f for f in t.args if f.is_scalar and f.ndim == 0]
    rest = [f for f in t.args if not (f.is_scalar and f.ndim == 0)]
    if not scal or not rest:
        return n.const(1), t
    coeff = scal[0] if len(scal) == 1 else n.mul(*scal)
    core = rest[0] if len(rest) == 1 else n.mul(*rest)
    return coeff, core


def fuse(x: Node) -> Node:
    """Forward rewrites that change no value: log softmax as Z - logsumexp Z, log det as logdet."""
    args = tuple(fuse(a) for a in x.args)
    x = Node(x.op, args, x.attrs, x.shape)
    if x.op == "func" and x.attrs[0] == "log":
        a = x.args[0]
        if a.op == "softmax":
            axis = a.attrs[0]
            return n.sub(a.args[0], n.expand(n.logsumexp(a.args[0], axis), axis))
        if a.op == "det":
            return n.logdet(a.args[0])
        if a.op == "sum" and a.args[0].op == "func" and a.args[0].attrs[0] == "exp":
            return n.logsumexp(a.args[0].args[0], a.attrs[0])
        softplus = _one_plus_exp(a)
        if softplus is not None:  # log(1 + exp(z)) is softplus(z): its derivative is σ(z), not exp(z) / (1 + exp(z))
            return n.func("softplus", softplus)
    if x.op == "pow" and x.attrs[0] == -1:
        logistic = _one_plus_exp(x.args[0])
        if logistic is not None:  # 1 / (1 + exp(-z)) is σ(z)
            return n.func("sigmoid", n.neg(logistic))
    return x


def _one_plus_exp(a: Node) -> Node | None:
    """``z`` where ``a`` is ``1 + exp(z)`` (in either order, with z of ``a``'s shape), else None."""
    if a.op != "add" or len(a.args) != 2:
        return None
    for one, e in (a.args, a.args[::-1]):
        if n.is_const(one, 1) and e.op == "func" and e.attrs[0] == "exp" and e.shape == a.shape:
            return e.args[0]
    return None


def simplify(x: Node, variables: Mapping[str, Variable], free: str | None = None) -> Node:
    """``x`` rewritten into its textbook form (repeated until nothing changes)."""
    rw = Rewriter(variables, free)
    for _ in range(4):
        y = rw(x)
        if y == x:
            return y
        x = y
        rw.memo.clear()
    return x


__all__ = ["fuse", "simplify", "sp"]
