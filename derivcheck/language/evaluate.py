"""Values of a tree: in floating point (NumPy), or exactly (SymPy entries in object arrays).

The exact backend is the oracle of ``check_equation`` at small explicit sizes: with every
entry a symbol, the true gradient is SymPy's own derivative of the expanded scalar.
"""

from __future__ import annotations

from collections.abc import Mapping
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


def evaluate(x: Node, values: Mapping[str, Any], sizes: Mapping[str, int], backend: Any = NUMPY) -> Any:
    """The value of ``x`` with ``values`` for its variables and ``sizes`` for its dimensions."""
    memo: dict[Node, Any] = {}

    def dims(shape: tuple[Any, ...]) -> tuple[int, ...]:
        return tuple(d if isinstance(d, int) else int(sizes[d]) for d in shape)

    def ev(x: Node) -> Any:
        if x in memo:
            return memo[x]
        a = [ev(y) for y in x.args]
        op = x.op
        if op == "var":
            out = values[x.attrs[0]]
        elif op == "const":
            out = backend.const(x.attrs[0])
        elif op == "dim":
            out = backend.const(sizes[x.attrs[0]])
        elif op == "ones":
            out = np.ones(dims(x.shape), dtype=object if backend.exact else float)
            if backend.exact:
                out[...] = sp.Integer(1)
        elif op == "identity":
            out = np.eye(dims(x.shape)[0], dtype=float)
            if backend.exact:
                out = np.array(sp.eye(out.shape[0]).tolist(), dtype=object)
        elif op == "add":
            out = a[0]
            for t in a[1:]:
                out = out + t
        elif op == "mul":
            out = a[0]
            for t in a[1:]:
                out = out * t
        elif op == "pow":
            out = backend.power(a[0], x.attrs[0])
        elif op == "func":
            out = backend.func(x.attrs[0], a[0])
        elif op == "matmul":
            out = np.dot(a[0], a[1]) if backend.exact else a[0] @ a[1]
        elif op == "outer":
            out = np.outer(a[0], a[1])
        elif op == "T":
            out = np.transpose(a[0])
        elif op == "sum":
            out = np.sum(a[0], axis=x.attrs[0])
        elif op == "expand":
            out = np.expand_dims(a[0], x.attrs[0])
        elif op == "squeeze":
            out = np.squeeze(a[0], axis=x.attrs[0])
        elif op == "broadcast":
            out = np.array(np.broadcast_to(a[0], dims(x.shape)))
        elif op == "trace":
            out = np.trace(a[0])
        elif op == "diag":
            out = np.diag(a[0])
        elif op in ("softmax", "logsumexp"):
            out = getattr(backend, op)(a[0], x.attrs[0])
        elif op in ("inv", "det", "logdet", "norm"):
            out = getattr(backend, op)(a[0])
        else:
            raise ValueError(f"no value for the operation {op!r}")
        memo[x] = out
        return out

    out = ev(x)
    target = dims(x.shape)
    if np.shape(out) != target:
        out = np.array(np.broadcast_to(out, target))
    return out
