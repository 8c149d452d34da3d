"""The expression tree of the matrix language: immutable nodes that know their shape.

A shape is a tuple of dimensions; a dimension is a name (``"N"``) or the integer 1 (an axis
kept for broadcasting). Scalars have shape ``()``, vectors one axis, matrices two. Vectors
follow NumPy: ``A @ x`` is a vector, ``x @ y`` a scalar, and ``x.T`` is ``x``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sympy as sp

Shape = tuple[Any, ...]

# Elementwise functions of one argument, and the values they may be applied to.
ELEMENTWISE = ("exp", "log", "tanh", "sigmoid", "relu", "softplus", "step", "sqrt", "abs", "sign")
# Nodes whose value is elementwise in their arguments (with broadcasting).
ELEMENTWISE_OPS = ("add", "mul", "pow", "func", "const", "ones", "dim")


class ShapeError(ValueError):
    """Two operands whose shapes do not fit; the parser adds the position."""


@dataclass(frozen=True)
class Node:
    """One operation: ``op`` with its arguments, attributes and resulting shape."""

    op: str
    args: tuple[Node, ...] = ()
    attrs: tuple[Any, ...] = ()
    shape: Shape = ()
    _hash: int = field(default=0, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.op, self.args, self.attrs, self.shape)))

    def __hash__(self) -> int:
        return self._hash

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def is_scalar(self) -> bool:
        return all(d == 1 for d in self.shape)

    def depends_on(self, name: str) -> bool:
        if self.op == "var":
            return self.attrs[0] == name
        return any(a.depends_on(name) for a in self.args)

    def size(self) -> int:
        return 1 + sum(a.size() for a in self.args)


@dataclass(frozen=True)
class Variable:
    """A declared name: its shape and properties (``symmetric``, ``spd``, ``positive``, ``simplex``)."""

    name: str
    shape: Shape
    properties: frozenset[str] = frozenset()

    @property
    def symmetric(self) -> bool:
        return bool({"symmetric", "spd"} & self.properties)

    def declaration(self) -> str:
        dims = " x ".join(str(d) for d in self.shape) or "scalar"
        return f"{self.name}: {dims}" + "".join(f" {p}" for p in sorted(self.properties))


def broadcast(a: Shape, b: Shape) -> Shape:
    """NumPy broadcasting of two shapes, with dimension names."""
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            raise ShapeError(f"shapes {_show(a)} and {_show(b)} do not broadcast: {x} against {y}")
    return tuple(reversed(out))


def _show(shape: Shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + (",)" if len(shape) == 1 else ")") if shape else "scalar"


show_shape = _show


# --- constructors: every node is made here, so shapes are always checked ---

def var(v: Variable) -> Node:
    return Node("var", (), (v.name,), v.shape)


def const(value: Any) -> Node:
    return Node("const", (), (sp.nsimplify(value),), ())


def ones(shape: Shape) -> Node:
    return Node("ones", (), (), tuple(shape)) if shape else const(1)


def dim(name: str) -> Node:
    return Node("dim", (), (name,), ())


def identity(n: Any) -> Node:
    return Node("identity", (), (), (n, n))


def add(*terms: Node) -> Node:
    shape: Shape = ()
    for t in terms:
        shape = broadcast(shape, t.shape)
    return Node("add", tuple(terms), (), shape)


def mul(*factors: Node) -> Node:
    shape: Shape = ()
    for f in factors:
        shape = broadcast(shape, f.shape)
    return Node("mul", tuple(factors), (), shape)


def neg(a: Node) -> Node:
    return mul(const(-1), a)


def sub(a: Node, b: Node) -> Node:
    return add(a, neg(b))


def power(a: Node, exponent: Any) -> Node:
    return Node("pow", (a,), (sp.nsimplify(exponent),), a.shape)


def div(a: Node, b: Node) -> Node:
    return mul(a, power(b, -1))


def func(name: str, a: Node) -> Node:
    return Node("func", (a,), (name,), a.shape)


def matmul(a: Node, b: Node) -> Node:
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError("@ needs vectors or matrices on both sides; use * to scale by a scalar")
    if a.ndim > 2 or b.ndim > 2:
        raise ShapeError("@ takes vectors and matrices only")
    inner_a = a.shape[-1]
    inner_b = b.shape[0]
    if inner_a != inner_b:
        raise ShapeError(f"shapes {_show(a.shape)} and {_show(b.shape)} cannot be multiplied with @: "
                         f"inner dimensions {inner_a} and {inner_b} differ")
    shape = a.shape[:-1] + b.shape[1:]
    return Node("matmul", (a, b), (), shape)


def outer(a: Node, b: Node) -> Node:
    if a.ndim != 1 or b.ndim != 1:
        raise ShapeError("an outer product takes two vectors")
    return Node("outer", (a, b), (), (a.shape[0], b.shape[0]))


def transpose(a: Node) -> Node:
    if a.ndim < 2:
        return a
    return Node("T", (a,), (), (a.shape[1], a.shape[0]))


def total(a: Node, axis: int | None = None) -> Node:
    if axis is None:
        return Node("sum", (a,), (None,), ())
    axis = _axis(a, axis)
    return Node("sum", (a,), (axis,), a.shape[:axis] + a.shape[axis + 1:])


def expand(a: Node, axis: int) -> Node:
    """Insert an axis of length 1 (the adjoint of a sum over that axis broadcasts along it)."""
    return Node("expand", (a,), (axis,), a.shape[:axis] + (1,) + a.shape[axis:])


def squeeze(a: Node, axis: int) -> Node:
    """Drop an axis of length 1 (an N x 1 column read as a vector)."""
    if a.shape[axis] != 1:
        raise ShapeError(f"axis {axis} of shape {_show(a.shape)} has length {a.shape[axis]}, not 1")
    return Node("squeeze", (a,), (axis,), a.shape[:axis] + a.shape[axis + 1:])


def broadcast_to(a: Node, shape: Shape) -> Node:
    broadcast(a.shape, shape)
    return a if a.shape == tuple(shape) else Node("broadcast", (a,), (), tuple(shape))


def softmax(a: Node, axis: int) -> Node:
    return Node("softmax", (a,), (_axis(a, axis),), a.shape)


def logsumexp(a: Node, axis: int | None) -> Node:
    if axis is None:
        return Node("logsumexp", (a,), (None,), ())
    axis = _axis(a, axis)
    return Node("logsumexp", (a,), (axis,), a.shape[:axis] + a.shape[axis + 1:])


def _square(name: str, a: Node) -> None:
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ShapeError(f"{name} needs a square matrix; got shape {_show(a.shape)}")


def trace(a: Node) -> Node:
    _square("trace", a)
    return Node("trace", (a,), (), ())


def det(a: Node) -> Node:
    _square("det", a)
    return Node("det", (a,), (), ())


def logdet(a: Node) -> Node:
    _square("logdet", a)
    return Node("logdet", (a,), (), ())


def inv(a: Node) -> Node:
    _square("inv", a)
    return Node("inv", (a,), (), a.shape)


def diag(a: Node) -> Node:
    if a.ndim == 1:
        return Node("diag", (a,), (), (a.shape[0], a.shape[0]))
    _square("diag", a)
    return Node("diag", (a,), (), (a.shape[0],))


def norm2(a: Node) -> Node:
    if a.ndim != 1:
        raise ShapeError(f"norm2 is the Euclidean norm of a vector; got shape {_show(a.shape)} (use frobenius)")
    return Node("norm", (a,), (), ())


def frobenius(a: Node) -> Node:
    return Node("norm", (a,), (), ())


def _axis(a: Node, axis: int) -> int:
    if not -a.ndim <= axis < a.ndim:
        raise ShapeError(f"axis={axis} is out of range for shape {_show(a.shape)}")
    return axis % a.ndim


def is_const(n: Node, value: Any = None) -> bool:
    if n.op == "ones":
        return value is None or value == 1
    return n.op == "const" and (value is None or n.attrs[0] == value)


def size_of(shape: Shape) -> Node:
    """The number of entries of a shape, as a product of dimension nodes."""
    dims = [const(d) if isinstance(d, int) else dim(d) for d in shape if d != 1]
    if not dims:
        return const(1)
    return dims[0] if len(dims) == 1 else mul(*dims)
