"""Matrix-language trees as NumPy source, with the helpers (a stable sigmoid, softmax, ...) they call."""

from __future__ import annotations

from collections.abc import Iterable

from derivcheck.language.nodes import Node


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


class CodePrinter:
    """NumPy source; each helper used is recorded so that it can be printed with the code."""

    def __init__(self) -> None:
        self.helpers: set[str] = set()
        self.dims: set[str] = set()

    def __call__(self, x: Node) -> str:
        return self.p(x)

    def p(self, x: Node) -> str:  # noqa: C901 - one branch per operation
        op, a = x.op, x.args
        if op == "var":
            return x.attrs[0]
        if op == "dim":
            self.dims.add(x.attrs[0])
            return x.attrs[0]
        if op == "const":
            v = x.attrs[0]
            return str(int(v)) if v.is_Integer else f"({v.p} / {v.q})" if v.is_Rational else str(float(v))
        if op == "ones":
            return f"np.ones({self.shape(x.shape)})"
        if op == "identity":
            n = x.shape[0]
            if isinstance(n, str):
                self.dims.add(n)
            return f"np.eye({n})"
        if op == "add":
            out = self.p(a[0])
            for t in a[1:]:
                if t.op == "mul" and t.args[0].op == "const" and t.args[0].attrs[0] < 0:
                    rest = [Node("const", (), (-t.args[0].attrs[0],))] if t.args[0].attrs[0] != -1 else []
                    rest += list(t.args[1:])
                    out += " - " + (self.p(rest[0]) if len(rest) == 1 else self.p(Node("mul", tuple(rest), (), t.shape)))
                else:
                    out += " + " + self.p(t)
            return "(" + out + ")"
        if op == "mul":
            return "(" + " * ".join(self.p(t) for t in a) + ")"
        if op == "pow":
            return f"({self.p(a[0])} ** {self.p(Node('const', (), (x.attrs[0],)))})"
        if op == "func":
            return self.function(x.attrs[0], self.p(a[0]))
        if op == "matmul":
            return f"({self.p(a[0])} @ {self.p(a[1])})"
        if op == "outer":
            return f"np.outer({self.p(a[0])}, {self.p(a[1])})"
        if op == "T":
            return f"{self.p(a[0])}.T"
        if op == "sum":
            axis = x.attrs[0]
            return f"np.sum({self.p(a[0])})" if axis is None else f"np.sum({self.p(a[0])}, axis={axis})"
        if op == "expand":
            return f"np.expand_dims({self.p(a[0])}, {x.attrs[0]})"
        if op == "squeeze":
            return f"np.squeeze({self.p(a[0])}, axis={x.attrs[0]})"
        if op == "broadcast":
            return f"np.broadcast_to({self.p(a[0])}, {self.shape(x.shape)}).copy()"
        if op in ("softmax", "logsumexp"):
            self.helpers.add("_" + op)
            return f"_{op}({self.p(a[0])}, axis={x.attrs[0]})"
        if op == "logdet":
            self.helpers.add("_logdet")
            return f"_logdet({self.p(a[0])})"
        simple = {"trace": "np.trace", "det": "np.linalg.det", "inv": "np.linalg.inv", "diag": "np.diag",
                  "norm": "np.linalg.norm"}
        if op in simple:
            return f"{simple[op]}({self.p(a[0])})"
        raise ValueError(f"no code for the operation {op!r}")

    def function(self, name: str, arg: str) -> str:
        if name in ("sigmoid", "softplus"):
            self.helpers.add("_" + name)
            return f"_{name}({arg})"
        if name == "relu":
            return f"np.maximum({arg}, 0.0)"
        if name == "step":
            return f"({arg} > 0).astype(float)"
        return f"np.{name}({arg})"

    def shape(self, shape: Iterable[object]) -> str:
        items = []
        for d in shape:
            if isinstance(d, str):
                self.dims.add(d)
            items.append(str(d))
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
