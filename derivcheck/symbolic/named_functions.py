"""Quotients of exponentials read as the functions a textbook names them by: σ and softmax.

An index form differentiated by SymPy keeps the exponentials it was written with: a logistic
layer's derivative is ``exp(z) / (1 + exp(z))²``, a softmax's is ``exp(z) / Σ_k exp(z_k)``. These
are identities of scalars, applied to the factors of one elementwise product:

- ``exp(z) ⊙ (1 + exp(z))^∘-k`` is ``σ(z) ⊙ (1 - σ(z))^∘(k-1)``, since ``σ(z) = exp(z) / (1 + exp(z))``
  and ``1 - σ(z) = 1 / (1 + exp(z))``;
- ``exp(z) ⊙ (1 - σ(z))`` is ``σ(z)``;
- ``exp(Z) ⊙ ((c ⊘ (exp(Z) 1)) 1ᵀ)`` is ``softmax(Z) ⊙ (c 1ᵀ)`` (over rows; over columns alike), and a
  vector's ``exp(z) / Σ_k exp(z_k)`` is ``softmax(z)``;
- ``((A ⊙ exp(Z)) 1) ⊙ (1 ⊘ (exp(Z) 1))`` is ``(A ⊙ softmax(Z)) 1``.

Each rule keeps the value; the forms they produce are verified against the index form in the run
all the same (``verify.language_form_check``).
"""

from __future__ import annotations

from derivcheck.language import nodes as n
from derivcheck.language.nodes import Node


def named_functions(x: Node) -> Node:
    """``x`` with every product's exponential quotients written as σ and softmax (bottom-up).

    >>> from derivcheck.language.nodes import Variable
    >>> z = n.var(Variable("z", ("N",)))
    >>> e = n.func("exp", z)
    >>> named_functions(n.mul(e, n.power(n.add(n.const(1), e), -2))) == n.mul(
    ...     n.func("sigmoid", z), n.sub(n.const(1), n.func("sigmoid", z)))
    True
    """
    x = Node(x.op, tuple(named_functions(a) for a in x.args), x.attrs, x.shape)
    if x.op != "mul":
        return x
    factors = _sigmoids(_softmaxes(_normalised_sums(list(x.args))))
    if factors == list(x.args):
        return x
    out = factors[0] if len(factors) == 1 else n.mul(*factors)
    return out if out.shape == x.shape else n.broadcast_to(out, x.shape)


def _exponent(f: Node) -> Node | None:
    """``z`` where ``f`` is ``exp(z)``."""
    return f.args[0] if f.op == "func" and f.attrs[0] == "exp" else None


def _sigmoids(factors: list[Node]) -> list[Node]:
    for i, f in enumerate(factors):
        z = _exponent(f)
        if z is None:
            continue
        for j, other in enumerate(factors):
            rest = _logistic_rest(other, z) if j != i else None
            if rest is None:
                continue
            out = list(factors)
            out[min(i, j)], out[max(i, j)] = n.func("sigmoid", z), rest
            return _sigmoids([o for o in out if not n.is_const(o, 1)])
    return factors


def _logistic_rest(f: Node, z: Node) -> Node | None:
    """What is left beside σ(z) when ``exp(z) ⊙ f`` is written through σ: ``(1 - σ(z))^∘(k-1)`` for
    ``f = (1 + exp(z))^∘-k``, 1 for ``f = 1 - σ(z)``; None where ``f`` is neither."""
    one_minus_sigmoid = n.sub(n.const(1), n.func("sigmoid", z))
    if f.op == "add" and len(f.args) == 2 and set(f.args) == set(one_minus_sigmoid.args):  # in either order
        return n.const(1)
    if f.op != "pow" or not f.attrs[0].is_Integer or f.attrs[0] >= 0 or not _is_one_plus_exp(f.args[0], z):
        return None
    k = -int(f.attrs[0])
    return n.const(1) if k == 1 else one_minus_sigmoid if k == 2 else n.power(one_minus_sigmoid, k - 1)


def _is_one_plus_exp(a: Node, z: Node) -> bool:
    return a.op == "add" and len(a.args) == 2 and any(
        n.is_const(one, 1) and _exponent(e) == z for one, e in (a.args, a.args[::-1]))


def _softmaxes(factors: list[Node]) -> list[Node]:
    for i, f in enumerate(factors):
        z = _exponent(f)
        if z is None or z.ndim not in (1, 2):
            continue
        for j, other in enumerate(factors):
            found = _normaliser(other, z) if j != i else None
            if found is None:
                continue
            axis, rest = found
            out = list(factors)
            out[min(i, j)], out[max(i, j)] = n.softmax(z, axis), rest
            return _softmaxes([o for o in out if not n.is_const(o, 1)])
    return factors


def _normalised_sums(factors: list[Node]) -> list[Node]:
    """``((A ⊙ exp(Z)) 1) ⊙ (1 ⊘ (exp(Z) 1))`` is ``(A ⊙ softmax(Z)) 1``: a sum over the axis the exponentials are
    normalised along, of a product holding them."""
    for j, f in enumerate(factors):
        for i, other in enumerate(factors):
            if i == j or other.op != "sum" or f.op != "pow":
                continue
            inner = other.args[0]
            parts = list(inner.args) if inner.op == "mul" else [inner]
            for k, part in enumerate(parts):
                z = _exponent(part)
                if z is None or z.ndim not in (1, 2) or _reciprocal_sum(f, z) is None:
                    continue
                axis = _reciprocal_sum(f, z)
                if other.attrs[0] != (None if z.ndim == 1 else axis):
                    continue
                product = parts[:k] + [n.softmax(z, axis)] + parts[k + 1:]
                summed = n.total(product[0] if len(product) == 1 else n.mul(*product), other.attrs[0])
                out = [summed if m == i else g for m, g in enumerate(factors) if m != j]
                return _normalised_sums(out)
    return factors


def _reciprocal_sum(f: Node, z: Node) -> int | None:
    """The axis of ``f = 1 ⊘ (exp(Z) summed over an axis)`` (0 for a vector's whole sum), else None."""
    if f.op != "pow" or f.attrs[0] != -1 or f.args[0].op != "sum" or _exponent(f.args[0].args[0]) != z:
        return None
    axis = f.args[0].attrs[0]
    return 0 if axis is None and z.ndim == 1 else axis


def _normaliser(f: Node, z: Node) -> tuple[int, Node] | None:
    """(axis, what is left) where ``f`` holds the reciprocal of exp(Z)'s sums over that axis, laid out along it."""
    if z.ndim == 1:
        axis = _reciprocal_sum(f, z)
        return None if axis is None else (axis, n.const(1))
    if f.op != "expand":
        return None
    inner = f.args[0]
    parts = list(inner.args) if inner.op == "mul" else [inner]
    for k, part in enumerate(parts):
        axis = _reciprocal_sum(part, z)
        if axis is not None and axis == f.attrs[0]:
            left = parts[:k] + parts[k + 1:]
            if not left:
                return axis, n.const(1)
            return axis, n.expand(left[0] if len(left) == 1 else n.mul(*left), axis)
    return None
