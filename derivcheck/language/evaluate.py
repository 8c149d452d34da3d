"""Values of a tree: in floating point (NumPy), or exactly (SymPy entries in object arrays).

The exact backend is the oracle of ``check_equation`` at small explicit sizes: with every
entry a symbol, the true gradient is SymPy's own derivative of the expanded scalar.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp

from derivcheck.language.nodes import Node


class NumpyBackend:
    """Floating-point values; softmax and log-sum-exp shifted by their maximum."""

    exact = False

    def const(self, v: Any) -> Any:
        return float(v)

    def func(self, name: str, a: Any) -> Any:
        with np.errstate(all="ignore"):
            if name == "sigmoid":
                return 0.5 * (1.0 + np.tanh(0.5 * a))
            if name == "softplus":
                return np.logaddexp(0.0, a)
            if name == "relu":
                return np.maximum(a, 0.0)
            if name == "step":
                return (np.asarray(a) > 0).astype(float)
            return {"exp": np.exp, "log": np.log, "tanh": np.tanh, "sqrt": np.sqrt, "abs": np.abs,
                    "sign": np.sign}[name](a)

    def power(self, a: Any, p: Any) -> Any:
        with np.errstate(all="ignore"):
            return np.asarray(a, dtype=float) ** float(p)

    def softmax(self, a: Any, axis: int) -> Any:
        e = np.exp(a - np.max(a, axis=axis, keepdims=True))
        return e / np.sum(e, axis=axis, keepdims=True)

    def logsumexp(self, a: Any, axis: int | None) -> Any:
        m = np.max(a, axis=axis, keepdims=True)
        out = np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m
        return out.reshape(()) if axis is None else np.squeeze(out, axis=axis)

    def inv(self, a: Any) -> Any:
        return np.linalg.inv(a)

    def det(self, a: Any) -> Any:
        return np.linalg.det(a)

    def logdet(self, a: Any) -> Any:
        sign, value = np.linalg.slogdet(a)
        return value if sign > 0 else np.nan

    def norm(self, a: Any) -> Any:
        return np.sqrt(np.sum(np.asarray(a) ** 2))


def _vectorized(f: Any) -> Any:
    return np.vectorize(f, otypes=[object])


class SympyBackend:
    """Exact values: object arrays of SymPy expressions."""

    exact = True

    def const(self, v: Any) -> Any:
        return sp.nsimplify(v)

    def func(self, name: str, a: Any) -> Any:
        f = {"exp": sp.exp, "log": sp.log, "tanh": sp.tanh, "sqrt": sp.sqrt, "abs": sp.Abs, "sign": sp.sign,
             "sigmoid": lambda t: 1 / (1 + sp.exp(-t)), "softplus": lambda t: sp.log(1 + sp.exp(t)),
             "relu": lambda t: sp.Max(t, 0), "step": lambda t: sp.Piecewise((1, t > 0), (0, True))}[name]
        return _vectorized(f)(a) if isinstance(a, np.ndarray) else f(a)

    def power(self, a: Any, p: Any) -> Any:
        return _vectorized(lambda t: t ** p)(a) if isinstance(a, np.ndarray) else a ** p

    def softmax(self, a: Any, axis: int) -> Any:
        e = self.func("exp", a)
        return e / np.sum(e, axis=axis, keepdims=True)

    def logsumexp(self, a: Any, axis: int | None) -> Any:
        return self.func("log", np.sum(self.func("exp", a), axis=axis))

    def inv(self, a: Any) -> Any:
        return np.array(sp.Matrix(a).inv().tolist(), dtype=object)

    def det(self, a: Any) -> Any:
        return sp.Matrix(a).det()

    def logdet(self, a: Any) -> Any:
        return sp.log(sp.Matrix(a).det())

    def norm(self, a: Any) -> Any:
        return sp.sqrt(np.sum(a * a))


NUMPY = NumpyBackend()
SYMPY = SympyBackend()


@dataclass(frozen=True)
class _At:
    """Where a tree is evaluated: the variables' values, the dimensions' sizes, the arithmetic."""

    values: Mapping[str, Any]
    sizes: Mapping[str, int]
    backend: Any

    def dims(self, shape: tuple[Any, ...]) -> tuple[int, ...]:
        return tuple(d if isinstance(d, int) else int(self.sizes[d]) for d in shape)


def _ones(at: _At, x: Node, a: list[Any]) -> Any:
    out = np.ones(at.dims(x.shape), dtype=object if at.backend.exact else float)
    if at.backend.exact:
        out[...] = sp.Integer(1)
    return out


def _identity(at: _At, x: Node, a: list[Any]) -> Any:
    n = at.dims(x.shape)[0]
    return np.array(sp.eye(n).tolist(), dtype=object) if at.backend.exact else np.eye(n, dtype=float)


def _fold(combine: Callable[[Any, Any], Any]) -> Callable[[_At, Node, list[Any]], Any]:
    def rule(at: _At, x: Node, a: list[Any]) -> Any:
        out = a[0]
        for t in a[1:]:
            out = combine(out, t)
        return out

    return rule


# The value of each operation from its operands' values ``a``: one rule per operation.
_VALUE_RULES: dict[str, Callable[[_At, Node, list[Any]], Any]] = {
    "var": lambda at, x, a: at.values[x.attrs[0]],
    "const": lambda at, x, a: at.backend.const(x.attrs[0]),
    "dim": lambda at, x, a: at.backend.const(at.sizes[x.attrs[0]]),
    "ones": _ones,
    "identity": _identity,
    "add": _fold(lambda u, v: u + v),
    "mul": _fold(lambda u, v: u * v),
    "pow": lambda at, x, a: at.backend.power(a[0], x.attrs[0]),
    "func": lambda at, x, a: at.backend.func(x.attrs[0], a[0]),
    "matmul": lambda at, x, a: np.dot(a[0], a[1]) if at.backend.exact else a[0] @ a[1],
    "outer": lambda at, x, a: np.outer(a[0], a[1]),
    "T": lambda at, x, a: np.transpose(a[0]),
    "sum": lambda at, x, a: np.sum(a[0], axis=x.attrs[0]),
    "expand": lambda at, x, a: np.expand_dims(a[0], x.attrs[0]),
    "squeeze": lambda at, x, a: np.squeeze(a[0], axis=x.attrs[0]),
    "broadcast": lambda at, x, a: np.array(np.broadcast_to(a[0], at.dims(x.shape))),
    "trace": lambda at, x, a: np.trace(a[0]),
    "diag": lambda at, x, a: np.diag(a[0]),
    "softmax": lambda at, x, a: at.backend.softmax(a[0], x.attrs[0]),
    "logsumexp": lambda at, x, a: at.backend.logsumexp(a[0], x.attrs[0]),
    "inv": lambda at, x, a: at.backend.inv(a[0]),
    "det": lambda at, x, a: at.backend.det(a[0]),
    "logdet": lambda at, x, a: at.backend.logdet(a[0]),
    "norm": lambda at, x, a: at.backend.norm(a[0]),
}


def evaluate(x: Node, values: Mapping[str, Any], sizes: Mapping[str, int], backend: Any = NUMPY) -> Any:
    """The value of ``x`` with ``values`` for its variables and ``sizes`` for its dimensions."""
    at = _At(values, sizes, backend)
    memo: dict[Node, Any] = {}

    def ev(x: Node) -> Any:
        if x not in memo:
            rule = _VALUE_RULES.get(x.op)
            if rule is None:
                raise ValueError(f"no value for the operation {x.op!r}")
            memo[x] = rule(at, x, [ev(y) for y in x.args])
        return memo[x]

    out = ev(x)
    target = at.dims(x.shape)
    if np.shape(out) != target:
        out = np.array(np.broadcast_to(out, target))
    return out
