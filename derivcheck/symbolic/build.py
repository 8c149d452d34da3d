"""From a layer declaration to SymPy objects: sizes, argument symbols, upstream G, objective L."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import sympy as sp

from derivcheck.catalog.declarations import Arg, DeclarationError, Layer, Symbols
from derivcheck.errors import DerivcheckError
from derivcheck.symbolic.lower import lower, unsupported

FREE_INDEX_NAMES = ("p", "q", "r", "s", "u", "v")


def index_symbol(name: str) -> sp.Symbol:
    """An integer, non-negative index symbol (unranged: ranges live in the Sum limits)."""
    return sp.Symbol(name, integer=True, nonnegative=True)


def size_symbol(letter: str) -> sp.Symbol:
    """A positive integer size, named by its dimension letter."""
    return sp.Symbol(letter, integer=True, positive=True)


def arg_symbol(arg: Arg, sizes: dict[str, sp.Symbol]) -> Any:
    """MatrixSymbol for rank 1-2 (vectors are columns), IndexedBase above, Symbol for scalars."""
    shape = [sizes[c] for c in arg.letters]
    if len(shape) == 0:
        return sp.Symbol(arg.name)
    if len(shape) == 1:
        return sp.MatrixSymbol(arg.name, shape[0], 1)
    name = arg.name.upper()
    if name in sizes:  # an argument k beside a dimension K: the two symbols must not share a name
        name = f"{name}_{arg.name}"
    if len(shape) == 2:
        return sp.MatrixSymbol(name, shape[0], shape[1])
    return sp.IndexedBase(name, shape=tuple(shape))


def upstream_name(layer: Layer, sizes: dict[str, Any]) -> str:
    """``g`` (its matrix ``G``), or ``gbar`` (printed Ḡ, ḡ) where an argument ``g`` or a dimension ``G`` takes the letter."""
    taken = {a.name.lower() for a in layer.inputs} | {k.lower() for k in sizes}
    return "gbar" if "g" in taken else "g"


def element(symbol: Any, indices: tuple[Any, ...]) -> sp.Expr:
    """One entry of an argument symbol, whatever its rank."""
    if isinstance(symbol, sp.MatrixSymbol):
        return symbol[indices[0], 0] if symbol.shape[1] == 1 and len(indices) == 1 else symbol[indices]
    if isinstance(symbol, sp.IndexedBase):
        return symbol[indices]
    return symbol


@dataclass(frozen=True)
class Built:
    """The SymPy side of one layer."""

    layer: Layer
    sizes: dict[str, sp.Symbol]
    symbols: dict[str, Any]
    constants: dict[str, sp.Symbol]
    out: tuple[sp.Symbol, ...]
    upstream: Any  # G, shaped like the output; None for a loss layer
    element: sp.Expr  # y[out]
    objective: sp.Expr  # L = sum over out of G[out] * y[out], or the loss itself

    def free_indices(self, arg: Arg) -> tuple[sp.Symbol, ...]:
        return tuple(index_symbol(n) for n in FREE_INDEX_NAMES[: len(arg.letters)])

    def index_ranges(self, arg: Arg) -> dict[Any, sp.Expr]:
        """What holds by construction: each free index of ``arg`` lies in 0..size-1, and so
        does every entry of an index-valued input (embedding ids)."""
        ranges: dict[Any, sp.Expr] = {i: self.sizes[c] for i, c in zip(self.free_indices(arg), arg.letters)}
        for a in self.layer.inputs:
            if a.domain == "index":
                upper = a.upper
                ranges[self.symbols[a.name]] = self.sizes[upper] if isinstance(upper, str) else sp.Integer(upper or 1)
        return ranges


def _by_symbol_name(symbols: dict[str, Any]) -> dict[str, Any]:
    # Declarations may write s.X (the matrix) as well as s.x (the argument's name).
    return {str(getattr(v, "name", getattr(v, "label", k))): v for k, v in symbols.items()}


def _rename_bound(expr: sp.Expr) -> sp.Expr:
    """Summation indices named like a derivative's free indices (p, q, ...) renamed, so that they cannot collide."""
    taken = {str(s) for s in expr.free_symbols} | set(FREE_INDEX_NAMES)
    for node in sorted(expr.atoms(sp.Sum), key=sp.default_sort_key):
        for var, *_ in node.limits:
            if var.name in FREE_INDEX_NAMES:
                k = 1
                while f"{var.name}{k}" in taken:
                    k += 1
                taken.add(f"{var.name}{k}")
                expr = expr.xreplace({node: node.xreplace({var: index_symbol(f"{var.name}{k}")})})
                return _rename_bound(expr)  # the tree changed: look again
    return expr


def _where(layer: Layer) -> str:
    return f"{layer.source or 'layer ' + repr(layer.name)}: layer {layer.name!r}"


def _element(layer: Layer, ns: Symbols, sizes: set[sp.Symbol]) -> sp.Expr:
    """The declared output element, or a clear error naming the layer file and the likely fix."""
    try:
        y = layer.index_form(ns)
    except DerivcheckError as exc:
        raise DeclarationError(f"{_where(layer)}: index form: {exc}") from exc
    except Exception as exc:  # the user's code: translate the usual slips, never a raw traceback
        raise DeclarationError(f"{_where(layer)}: index form raised {type(exc).__name__}: {exc}{_fix(exc)}") from exc
    if y is None:
        raise DeclarationError(f"{_where(layer)}: the index form returned None; did you forget `return`?")
    if isinstance(y, (sp.MatrixBase, sp.MatrixExpr)) or not isinstance(sp.sympify(y), sp.Expr):
        raise DeclarationError(f"{_where(layer)}: the index form returned {type(y).__name__}, not one entry; return "
                               f"the output element at s.out, e.g. n, m = s.out; return s.X[n, d] ...")
    return _check_indices(layer, sp.sympify(y), set(ns.out), sizes)


def _fix(exc: Exception) -> str:
    text = str(exc)
    ufunc = re.search(r"no callable (\w+) method", text)
    if ufunc or "ufunc" in text:
        name = ufunc.group(1) if ufunc else "exp"
        return f"; a NumPy function (np.{name}) met a symbol: in an index form write sp.{name}(...)"
    if "truth value of Relational" in text:
        return ("; Python's max, min or `if` compared symbols: write sp.Max(0, z), sp.Min(a, b) or "
                "sp.Piecewise((a, condition), (b, True))")
    return ""


def _check_indices(layer: Layer, y: sp.Expr, out: set[sp.Symbol], sizes: set[sp.Symbol]) -> sp.Expr:
    for node in y.atoms(sp.Sum):
        for var, *_ in node.limits:
            if var in out:
                raise DeclarationError(f"{_where(layer)}: the index form sums over {var}, an output index (s.out); "
                                       f"a summed index must be fresh: k = s.index('k'), then s.total(..., (k, size))")
    loose = sorted((s for s in y.free_symbols if s.is_integer and s.is_nonnegative and s not in out | sizes), key=str)
    if loose:
        raise DeclarationError(f"{_where(layer)}: index {loose[0]} is free in the index form but is no output "
                               f"index ({', '.join(map(str, sorted(out, key=str))) or 'none: a loss'}); sum it with "
                               f"s.total(..., ({loose[0]}, size)) or use an index of s.out")
    return y


def build(layer: Layer) -> Built:
    """Sizes, symbols and the objective ``L = <G, y>`` (or the loss) of a layer."""
    letters = {c for a in layer.inputs for c in a.letters} | set(layer.output_letters)
    sizes = {c: size_symbol(c) for c in sorted(letters)}
    # Hyperparameters are integers too; a padding may be 0.
    sizes.update({h: sp.Symbol(h, integer=True, nonnegative=True) for h in layer.hyper})
    symbols = {a.name: arg_symbol(a, sizes) for a in layer.inputs}
    constants = {k: sp.Symbol(k, positive=True) for k in layer.constants}
    seen: dict[str, int] = {}
    out = []
    for c in layer.output_letters:
        seen[c] = seen.get(c, 0) + 1
        name = c.lower() + ("" if seen[c] == 1 else str(seen[c]))
        # A dimension letter P would name an output index p, the name of a derivative's free index.
        out.append(index_symbol(name + "o" if name in FREE_INDEX_NAMES else name))
    out_t = tuple(out)
    ns = Symbols({**symbols, **_by_symbol_name(symbols), **sizes, **constants}, out_t)
    y = _rename_bound(lower(_element(layer, ns, set(sizes.values()))))
    construct = unsupported(y)
    if construct is not None:
        raise DeclarationError(f"{_where(layer)}: its index form uses {construct}, which derivcheck cannot differentiate")
    if layer.is_loss:
        return Built(layer, sizes, symbols, constants, out_t, None, y, y)
    upstream = arg_symbol(Arg(upstream_name(layer, sizes), layer.output), sizes)
    g = element(upstream, out_t)
    objective = sp.Sum(g * y, *[(i, 0, sizes[c] - 1) for i, c in zip(out_t, layer.output_letters)])
    return Built(layer, sizes, symbols, constants, out_t, upstream, y, objective)
