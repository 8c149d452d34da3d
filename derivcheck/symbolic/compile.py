"""Lambdify derived gradients into NumPy functions of the layer's input arrays.

Every compiled gradient has the same signature: ``fn(arrays, upstream, sizes) -> array``
with ``arrays`` the layer inputs by name, ``upstream`` the cotangent G (a scalar for a
loss layer) and ``sizes`` the dimension letters' values; the result has the argument's
shape.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import sympy as sp
from sympy.printing.numpy import NumPyPrinter

from derivcheck.language.printing.sympy_code import MatrixCodePrinter
from derivcheck.symbolic.build import Built
from derivcheck.symbolic.index_form import IndexForm
from derivcheck.symbolic.matrix_form import MatrixForm

Compiled = Callable[[Mapping[str, np.ndarray], Any, Mapping[str, int]], np.ndarray]


def _arg_values(built: Built, arrays: Mapping[str, np.ndarray], upstream: Any, sizes: Mapping[str, int]) -> dict[Any, Any]:
    values: dict[Any, Any] = {}
    for name, sym in built.symbols.items():
        a = np.asarray(arrays[name], dtype=float) if not _is_index(built, name) else np.asarray(arrays[name])
        values[sym] = a.reshape(-1, 1) if isinstance(sym, sp.MatrixSymbol) and sym.shape[1] == 1 else a
    if built.upstream is not None:
        g = np.asarray(upstream, dtype=float)
        sym = built.upstream
        values[sym] = g.reshape(-1, 1) if isinstance(sym, sp.MatrixSymbol) and sym.shape[1] == 1 else g
    for letter, sym in built.sizes.items():
        values[sym] = int(sizes[letter])
    for name, sym in built.constants.items():
        values[sym] = float(built.layer.constants[name])
    return values


def values_of_symbols(built: Built, arrays: Mapping[str, np.ndarray], upstream: Any, sizes: Mapping[str, int]
                      ) -> dict[Any, Any]:
    """The value of every symbol of a layer's derivation (arrays, upstream, sizes, constants), keyed by symbol."""
    return _arg_values(built, arrays, upstream, sizes)


def symbol_name(sym: Any) -> str:
    """The name a matrix, an indexed base or a scalar symbol is printed and passed by."""
    return str(getattr(sym, "name", getattr(sym, "label", sym)))


def values_by_name(built: Built, arrays: Mapping[str, np.ndarray], upstream: Any, sizes: Mapping[str, int]) -> dict[str, Any]:
    """The arguments of generated code and printed einsums, keyed by the names they print with."""
    return {symbol_name(k): v for k, v in _arg_values(built, arrays, upstream, sizes).items()}


class _ZeroOutside:
    """Entry access that reads 0 outside the array: the zero-padding convention of index
    forms with shifted indices (conv), and no silent wrap-around of negative indices."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.shape = array.shape

    def __getitem__(self, idx: tuple[int, ...]) -> float:
        if any(i < 0 or i >= n for i, n in zip(idx, self.shape)):
            return 0.0
        return float(self.array[idx])


def _is_index(built: Built, name: str) -> bool:
    return any(a.name == name and a.domain == "index" for a in built.layer.inputs)


def _upstream_factor(built: Built, upstream: Any) -> float:
    # A loss layer's derivation has no G: the scalar upstream multiplies the result.
    return float(np.asarray(upstream)) if built.upstream is None else 1.0


def compile_index_form(built: Built, form: IndexForm) -> Compiled:
    """Evaluate the index form entry by entry (Python loops: for checks, not for speed)."""
    symbols = list(built.symbols.values()) + ([built.upstream] if built.upstream is not None else [])
    symbols += list(built.sizes.values()) + list(built.constants.values())
    # 'math' prints Piecewise as a conditional expression: NumPy's select would evaluate
    # both branches and index out of range (or wrap around) where a guard is false.
    # A layer's opaque functions are bound per call (they depend on the inputs at hand).
    bound: dict[str, Callable[..., float]] = {}
    opaque = {name: (lambda *idx, _n=name: bound[_n](*(int(i) for i in idx))) for name in built.layer.functions}
    # No cse: it hoists subexpressions out of the generator that binds their summation index.
    fn = sp.lambdify([*symbols, *form.free], form.expr, modules=["math", {"Heaviside": _heaviside0, **opaque}])
    shape_letters = form.arg.letters

    def run(arrays: Mapping[str, np.ndarray], upstream: Any, sizes: Mapping[str, int]) -> np.ndarray:
        for name, make in built.layer.functions.items():
            bound[name] = make(arrays, sizes)
        values = _arg_values(built, arrays, upstream, sizes)
        args = [_ZeroOutside(values[s]) if isinstance(s, sp.IndexedBase) else values[s] for s in symbols]
        shape = tuple(int(sizes[c]) for c in shape_letters)
        out = np.empty(shape)
        for idx in itertools.product(*[range(n) for n in shape]):
            out[idx] = fn(*args, *idx)
        return out * _upstream_factor(built, upstream)

    return run


def _heaviside0(x: float) -> float:
    return 1.0 if x > 0 else 0.0


class _MatrixPrinter(NumPyPrinter):
    """NumPy printer that also knows the elementwise axis reduction."""

    def _print_reduce_axis(self, e: Any) -> str:
        return f"numpy.sum({self._print(e.args[0])}, axis={self._print(e.args[1])}, keepdims=True)"

    def _print_ElementwiseApplyFunction(self, e: Any) -> str:
        # NumPy functions act elementwise already: apply the lambda to the whole array.
        lam = e.function
        return f"(lambda {self._print(lam.variables[0])}: {self._print(lam.expr)})({self._print(e.expr)})"


def _printer() -> _MatrixPrinter:
    return _MatrixPrinter({"fully_qualified_modules": True, "inline": True, "allow_unknown_functions": True, "user_functions": {}})


def _matrix_arguments(built: Built, form: MatrixForm) -> list[Any]:
    if form.kind == "elementwise":
        return list(form.placeholders)
    symbols = list(built.symbols.values()) + ([built.upstream] if built.upstream is not None else [])
    return symbols


def compile_matrix_form(built: Built, form: MatrixForm, shape_letters: tuple[str, ...]) -> Compiled | None:
    """Evaluate the matrix form with whole-array NumPy operations; None when there is none."""
    if form.kind == "none":
        return None
    front = _matrix_arguments(built, form)
    scalars = list(built.sizes.values()) + list(built.constants.values())
    fn = sp.lambdify([*front, *scalars], form.expr, modules="numpy", printer=_printer())

    def run(arrays: Mapping[str, np.ndarray], upstream: Any, sizes: Mapping[str, int]) -> np.ndarray:
        values = _arg_values(built, arrays, upstream, sizes)
        if form.kind == "elementwise":
            head = [values[form.placeholders[h]] for h in front]
        else:
            head = [values[s] for s in front]
        out = np.asarray(fn(*head, *[values[s] for s in scalars]), dtype=float)
        shape = tuple(int(sizes[c]) for c in shape_letters)
        if out.shape != shape:
            out = out.reshape(shape) if out.size == int(np.prod(shape)) else np.array(np.broadcast_to(out, shape))
        factor = _upstream_factor(built, upstream)
        return out * factor if factor != 1.0 else out

    return run


def layer_code_parameters(layer: Any) -> list[str]:
    """The arguments of every generated function of a layer: ``dy`` first (unless it is a loss), then the layer's
    inputs in declaration order, then its constants and hyperparameters, as in the layer's own backward.

    Examples
    --------
    >>> from derivcheck.catalog.registry import get_layer
    >>> layer_code_parameters(get_layer("lstm_step"))
    ['dy', 'x', 'h', 'c', 'w', 'u', 'b']
    """
    return [*([] if layer.is_loss else ["dy"]), *[a.name for a in layer.inputs], *layer.constants, *layer.hyper]


def code_parameters(built: Built) -> list[str]:
    """The arguments of every generated function of a built layer (see :func:`layer_code_parameters`)."""
    return layer_code_parameters(built.layer)


def _size_expressions(built: Built) -> dict[Any, str]:
    """Each size read off an array that carries it (``x.shape[0]``): generated code takes no size arguments."""
    out: dict[Any, str] = {}
    carriers = [(a.name, a.letters) for a in built.layer.inputs]
    if built.upstream is not None:
        carriers.append(("dy", built.layer.output_letters))
    for name, letters in carriers:
        for axis, letter in enumerate(letters):
            out.setdefault(built.sizes[letter], f"{name}.shape[{axis}]")
    return out


def matrix_form_code(built: Built, form: MatrixForm, arg_name: str) -> str | None:
    """Source of a runnable NumPy function for one matrix-form gradient (``import numpy as np`` above it)."""
    if form.kind == "none":
        return None
    names: dict[Any, str] = {sym: name for name, sym in built.symbols.items()}
    names.update({sym: name for name, sym in built.constants.items()})
    names.update({built.sizes[h]: h for h in built.layer.hyper})
    if built.upstream is not None:
        names[built.upstream] = "dy"
    if form.kind == "elementwise":
        names.update({h: names[target] for h, target in form.placeholders.items()})
    body = MatrixCodePrinter(names, _size_expressions(built)).doprint(form.expr)
    # The matrix form treats vectors as columns; users pass and get NumPy's 1-D arrays.
    columns = [name for name, sym in built.symbols.items() if isinstance(sym, sp.MatrixSymbol) and sym.shape[1] == 1
               and (sym in form.expr.free_symbols or any(t is sym for t in form.placeholders.values()))]
    if built.upstream is not None and built.upstream.shape[1] == 1:
        columns.append("dy")
    vector = len(next(a for a in built.layer.differentiable if a.name == arg_name).letters) == 1
    returned = body if not vector or body.endswith(".sum(axis=0)") and not columns else f"np.ravel({body})"
    lines = [
        f"def grad_{arg_name}({', '.join(code_parameters(built))}):",
        f'    """dE/d{arg_name} of layer {built.layer.name!r}."""',
        *[f"    {c} = {c}.reshape(-1, 1)  # a column, as in the matrix form" for c in columns],
        f"    return {returned}",
    ]
    return "\n".join(lines)


@functools.lru_cache(maxsize=None)
def compiled_gradient(layer_name: str, arg_name: str, form: str) -> Compiled | None:
    """The compiled "index" or "matrix" form of one gradient, lambdified once per process.

    Lambdifying a large index form (an LSTM gate's) takes seconds; a chain of steps of one
    layer, or a verification over many sizes, reuses it.
    """
    from derivcheck.catalog.registry import get_layer
    from derivcheck.symbolic.derive import derive

    layer = get_layer(layer_name)
    if layer.chain is not None:
        # A layer declared as a chain of primitive steps: its step-by-step backward is the symbolic witness.
        from derivcheck.symbolic.layer_chain import chain_vjp

        return lambda inputs, upstream, sizes: chain_vjp(layer, inputs, upstream)[arg_name]  # type: ignore[return-value]
    d = derive(layer_name)
    g = d.gradients[arg_name]
    if form == "index":
        return compile_index_form(d.built, g.index)
    return compile_matrix_form(d.built, g.matrix, g.arg.letters)
