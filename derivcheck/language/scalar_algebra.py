"""Elementwise algebra through SymPy: a tree of ``+ * ** f(.)`` over opaque matrix leaves.

Elementwise operations commute with broadcasting, so every identity of scalars holds entry
by entry: ``y (1 - s) - (1 - y) s`` is ``y - s`` whatever the shapes of ``y`` and ``s``. The
leaves (products, transposes, reductions) become real symbols; the result comes back as nodes.
"""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp

from derivcheck.language import nodes as n
from derivcheck.language.nodes import Node
from derivcheck.language.printing import text


class Sigmoid(sp.Function):
    """The logistic function; sigmoid(-x) = 1 - sigmoid(x)."""

    @classmethod
    def eval(cls, x: sp.Expr) -> sp.Expr | None:
        if x.could_extract_minus_sign():
            return 1 - cls(-x)
        return None


class Softplus(sp.Function):
    """log(1 + exp(x)); softplus(-x) = softplus(x) - x."""

    @classmethod
    def eval(cls, x: sp.Expr) -> sp.Expr | None:
        if x.could_extract_minus_sign():
            return cls(-x) - (-x)
        return None


class Relu(sp.Function):
    """max(x, 0)."""


class Step(sp.Function):
    """The derivative of relu: 1 where x > 0, else 0 (ReLU'(0) = 0)."""


# The elementwise functions as SymPy functions: the algebra here and the index notation share this table.
SYMPY_FUNCTIONS: dict[str, Callable[[sp.Expr], sp.Expr]] = {
    "exp": sp.exp, "log": sp.log, "tanh": sp.tanh, "sigmoid": Sigmoid, "softplus": Softplus,
    "relu": Relu, "step": Step, "sqrt": sp.sqrt, "abs": sp.Abs, "sign": sp.sign,
}
_FROM_SYMPY = {sp.exp: "exp", sp.log: "log", sp.tanh: "tanh", Sigmoid: "sigmoid", Softplus: "softplus",
               Relu: "relu", Step: "step", sp.Abs: "abs", sp.sign: "sign"}


class Island:
    """The translation of one elementwise tree, remembering which symbol stands for which leaf."""

    def __init__(self, simplify_leaf: Callable[[Node], Node]) -> None:
        self.simplify_leaf = simplify_leaf
        self.leaves: dict[Node, sp.Symbol] = {}
        self.nodes: dict[sp.Symbol, Node] = {}

    def to_sympy(self, x: Node) -> sp.Expr:
        op = x.op
        if op == "const":
            return x.attrs[0]
        if op == "ones":
            return sp.Integer(1)
        if op == "dim":
            return sp.Symbol(x.attrs[0], positive=True, integer=True)
        if op == "add":
            return sp.Add(*[self.to_sympy(a) for a in x.args])
        if op == "mul":
            return sp.Mul(*[self.to_sympy(a) for a in x.args])
        if op == "pow":
            return sp.Pow(self.to_sympy(x.args[0]), x.attrs[0])
        if op == "func":
            inner = self.to_sympy(x.args[0])
            return _log_sigmoid(inner) if x.attrs[0] == "log" else SYMPY_FUNCTIONS[x.attrs[0]](inner)
        leaf = self.simplify_leaf(x)
        if leaf.op in n.ELEMENTWISE_OPS:  # the leaf simplified into elementwise algebra
            return self.to_sympy(leaf)
        if leaf not in self.leaves:
            sym = sp.Dummy(text(leaf), real=True)  # named by its text: terms are ordered as read
            self.leaves[leaf] = sym
            self.nodes[sym] = leaf
        return self.leaves[leaf]

    def _softmax(self, arg: sp.Expr) -> Node | None:
        """exp(z - logsumexp(z)) as softmax(z) (z and its log-sum-exp are leaves here)."""
        if not isinstance(arg, sp.Add) or len(arg.args) != 2:
            return None
        for z, minus in (arg.args, arg.args[::-1]):
            if z in self.nodes and (-minus) in self.nodes:
                soft = _softmax_of(self.nodes[z], self.nodes[-minus])
                if soft is not None:
                    return soft
        return None

    def to_node(self, e: sp.Expr) -> Node:
        if e in self.nodes:
            return self.nodes[e]
        if e.is_Number:
            return n.const(e)
        if isinstance(e, sp.Symbol):
            return n.dim(e.name)
        if isinstance(e, sp.Add):
            # Positive terms first: "X W - Y", not "-Y + X W".
            terms = sorted(_ordered(e.args), key=lambda a: a.could_extract_minus_sign())
            return n.add(*[self.to_node(a) for a in terms])
        if isinstance(e, sp.Mul):
            return n.mul(*[self.to_node(a) for a in _ordered(_one_minus_first(e))])
        if isinstance(e, sp.Pow):
            if e.exp == sp.Rational(1, 2):
                return n.func("sqrt", self.to_node(e.base))
            return n.power(self.to_node(e.base), e.exp)
        if e.func is sp.exp:
            soft = self._softmax(e.args[0])
            if soft is not None:
                return soft
        if e.func in _FROM_SYMPY:
            return n.func(_FROM_SYMPY[e.func], self.to_node(e.args[0]))
        raise ValueError(f"no node for {e!r}")


def _softmax_of(z: Node, lse: Node) -> Node | None:
    """softmax(z) where ``lse`` is z's log-sum-exp laid out beside it: exp(z - logsumexp(z)) is softmax(z)."""
    if lse.op == "logsumexp" and lse.attrs[0] is None and z.ndim == 1 and lse.args[0] == z:
        return n.softmax(z, 0)
    if lse.op == "expand" and lse.args[0].op == "logsumexp" and lse.args[0].args[0] == z \
            and lse.args[0].attrs[0] == lse.attrs[0]:
        return n.softmax(z, lse.attrs[0])
    return None


def _log_sigmoid(e: sp.Expr) -> sp.Expr:
    """log(e), with log sigmoid(a) = -softplus(-a) and log(1 - sigmoid(a)) = -softplus(a): exact and stable."""
    if isinstance(e, Sigmoid):
        return -Softplus(-e.args[0])
    for s in e.atoms(Sigmoid):
        if sp.expand(e - (1 - s)) == 0:
            return -Softplus(s.args[0])
    return sp.log(e)


def _ordered(args: tuple[sp.Expr, ...]) -> list[sp.Expr]:
    # Numbers, then plain factors, then powers and sums ("2 G ⊙ σ(Z) ⊙ (1 - σ(Z))"), each group in
    # SymPy's canonical order: deterministic.
    def group(a: sp.Expr) -> int:
        return 0 if a.is_Number else 3 if isinstance(a, sp.Add) else 2 if isinstance(a, sp.Pow) else 1
    return sorted(args, key=lambda a: (group(a), sp.default_sort_key(a)))


def _one_minus_first(e: sp.Mul) -> tuple[sp.Expr, ...]:
    """A product's factors with ``a - 1`` written ``-(1 - a)``: textbooks print σ(z) (1 - σ(z)), negated if need be.

    SymPy distributes a number over a sum (``-(1 - a)`` is stored as ``a - 1``), so the sign is moved here,
    as the factors become nodes.
    """
    factors = list(e.args)
    flips = 0
    for i, f in enumerate(factors):
        if isinstance(f, sp.Add):
            c, rest = f.as_coeff_Add()
            if c.is_negative and not isinstance(rest, sp.Add) and not rest.could_extract_minus_sign():
                factors[i] = sp.Add(-c, -rest, evaluate=False)
                flips += 1
    if flips % 2:
        factors.insert(0, sp.Integer(-1))
    numbers = [f for f in factors if f.is_Number]
    if len(numbers) > 1:  # -1 times a coefficient: one number
        factors = [sp.Mul(*numbers), *[f for f in factors if not f.is_Number]]
    return tuple(f for f in factors if f != 1)


def _cost(e: sp.Expr) -> tuple[int, int, int]:
    # A power of σ (σ^2 - σ) reads worse than its factored form σ (σ - 1): the textbook's σ (1 - σ).
    sigmoid_powers = sum(1 for p in e.atoms(sp.Pow) if isinstance(p.base, Sigmoid))
    return (sp.count_ops(e), sigmoid_powers, len(str(e)))


def simplest(e: sp.Expr) -> sp.Expr:
    """The shortest of a few equivalent forms: as is, common factors pulled out, expanded then factored."""
    expanded = sp.expand(e, power_exp=False, log=False, power_base=False)
    cancelled = sp.cancel(e) if e.has(sp.Pow) else e
    candidates = [e, sp.factor_terms(e), sp.factor_terms(expanded), expanded, cancelled,
                  sp.factor_terms(sp.expand(cancelled, power_exp=False, log=False, power_base=False))]
    logistic = _as_sigmoids(e)
    if logistic is not None:
        candidates.append(logistic)
    if e.has(Sigmoid):  # polynomials in σ(z): σ^2 - σ is σ (σ - 1)
        candidates.append(sp.factor(e))
    return min(candidates, key=_cost)


def _as_sigmoids(e: sp.Expr) -> sp.Expr | None:
    """``e`` with exp(u) written through σ(-u) where 1 + exp(u) occurs: exp(-z) / (1 + exp(-z))^2 is σ(z) (1 - σ(z))."""
    out = e
    for x in sorted(e.atoms(sp.exp), key=sp.default_sort_key):
        if not any(isinstance(a, sp.Add) and x in a.args and a.has(sp.S.One) for a in e.atoms(sp.Add)):
            continue
        s = Sigmoid(-x.args[0])  # exp(u) = (1 - σ(-u)) / σ(-u)
        out = sp.factor(sp.cancel(out.subs(x, (1 - s) / s)))
    if out == e or out.has(sp.exp):
        return None
    return out
