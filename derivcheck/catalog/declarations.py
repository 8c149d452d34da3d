"""Declaring a layer: one ``def_layer`` call per layer, in one file under ``derivcheck/catalog/layers``.

A declaration holds knowledge only: the layer's inputs with dimension letters, its
reference NumPy forward and hand-written vectorized backward (VJP), and its symbolic index
form (one output element as a SymPy expression with symbolic sizes). Derivation, LaTeX,
generated code, verification, tests and the CLI are all derived from it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sympy as sp

from derivcheck.catalog import domains as _domains  # noqa: F401 - registers the built-in domains
from derivcheck.catalog.registry import SAMPLERS, register


@dataclass(frozen=True)
class Arg:
    """One input of a layer: name, dimension letters (``"N D"``), sampling domain."""

    name: str
    dims: str
    domain: str = "real"
    differentiable: bool = True
    upper: str | int | None = None  # for domain "index": values in [0, upper), a dim letter or a number

    def __post_init__(self) -> None:
        if self.domain not in SAMPLERS:
            raise ValueError(f"Arg {self.name!r}: domain must be one of {tuple(SAMPLERS)} (or one registered with "
                             f"def_domain); got {self.domain!r}")

    @property
    def letters(self) -> tuple[str, ...]:
        return tuple(self.dims.split())


class Symbols:
    """What an index form sees: the arguments' symbols, sizes, output indices and constants.

    ``s.x`` is the symbol of argument ``x`` (a ``MatrixSymbol`` for rank <= 2, vectors as
    columns ``b[m, 0]``, an ``IndexedBase`` above), ``s.N`` a size, ``s.out`` the output
    indices, ``s.index("k")`` a fresh summation index, ``s.alpha`` a constant's symbol.
    """

    def __init__(self, items: Mapping[str, Any], out: tuple[sp.Symbol, ...]) -> None:
        self.__dict__.update(items)
        self.out = out

    def index(self, name: str) -> sp.Symbol:
        """An integer summation index named ``name``."""
        return sp.Symbol(name, integer=True, nonnegative=True)

    def total(self, expr: sp.Expr, *limits: tuple[sp.Symbol, sp.Expr]) -> sp.Expr:
        """``Sum(expr, (i, 0, size - 1), ...)`` for each ``(i, size)`` pair."""
        return sp.Sum(expr, *[(i, 0, n - 1) for i, n in limits])


@dataclass
class Layer:
    """A declared layer; build one with :func:`def_layer`."""

    name: str
    inputs: tuple[Arg, ...]
    output: str
    forward: Callable[..., Any]
    backward: Callable[..., dict[str, Any]]
    index_form: Callable[[Symbols], sp.Expr]
    question: str = ""
    reference: str = ""
    constants: dict[str, float] = field(default_factory=dict)
    conventions: tuple[str, ...] = ()
    row_sums_to_one: tuple[str, ...] = ()  # targets whose rows sum to 1 (substituted in the derivation)
    sizes: dict[str, int] = field(default_factory=dict)  # fixed sizes (e.g. a kernel size) and size relations
    matrix_forward: Callable[[Symbols], sp.MatrixExpr] | None = None  # for the Trace(G^T Y) cross-check
    max_side: int = 5  # largest size Hypothesis draws for each dimension letter
    shape_rules: dict[str, Callable[[dict[str, int]], int]] = field(default_factory=dict)
    # Integer hyperparameters (stride, padding): symbols in the derivation, drawn from
    # (low, high) by the strategies, passed by name to forward and backward.
    hyper: dict[str, tuple[int, int]] = field(default_factory=dict)
    # Drawn sizes must satisfy this (e.g. a kernel no larger than the padded input).
    valid_sizes: Callable[[dict[str, int]], bool] | None = None
    # Opaque index functions of the index form (max-pool's winner indicator): their numeric
    # value, built from the inputs and sizes at hand, for the compiled witnesses.
    functions: dict[str, Callable[[Mapping[str, Any], Mapping[str, int]], Callable[..., float]]] = field(default_factory=dict)
    # The layer as a chain of primitive steps (a matrix-language LayerChain): derived step by step,
    # it is the symbolic witness in verify and what derive prints, instead of one monolithic index form.
    chain: Any = None
    # What each opaque function of the index form means, printed wherever the function appears.
    definitions: dict[str, str] = field(default_factory=dict)
    # The forward as matrix-language steps ("M = mean(X, axis=0, keepdims=True)", ..., "Y = ..."): where the
    # index form has no matrix form, derive prints the step-by-step backward (verified) as the matrix form.
    steps: tuple[str, ...] = ()

    def hyperparameters(self, sizes: Mapping[str, int]) -> dict[str, int]:
        """This layer's integer hyperparameters from ``sizes``; a clear error names any that is missing."""
        missing = [h for h in self.hyper if h not in sizes]
        if missing:
            from derivcheck.errors import InputError

            example = ", ".join(f"{h!r}: {self.hyper[h][0]}" for h in self.hyper)
            raise InputError(f"layer {self.name!r} needs the hyperparameter(s) {', '.join(missing)}; give them to "
                             f"the step, e.g. Step({self.name!r}, ..., hyper={{{example}}})")
        return {h: int(sizes[h]) for h in self.hyper}

    def call_forward(self, inputs: Mapping[str, Any], sizes: Mapping[str, int]) -> Any:
        """The reference forward with this layer's constants and hyperparameters."""
        return self.forward(**inputs, **self.constants, **self.hyperparameters(sizes))

    def call_backward(self, dy: Any, inputs: Mapping[str, Any], sizes: Mapping[str, int], backward: Callable[..., Any] | None = None) -> dict[str, Any]:
        """The reference (or a given) backward with constants and hyperparameters."""
        fn = backward or self.backward
        return fn(dy, **inputs, **self.constants, **self.hyperparameters(sizes))

    @property
    def differentiable(self) -> tuple[Arg, ...]:
        return tuple(a for a in self.inputs if a.differentiable)

    @property
    def output_letters(self) -> tuple[str, ...]:
        return tuple(self.output.split())

    @property
    def is_loss(self) -> bool:
        """A loss layer returns a scalar: its derivation has no upstream gradient."""
        return not self.output_letters


def def_layer(
    name: str,
    *,
    inputs: tuple[Arg, ...],
    output: str,
    forward: Callable[..., Any],
    backward: Callable[..., dict[str, Any]],
    index_form: Callable[[Symbols], sp.Expr],
    **options: Any,
) -> Layer:
    """Declare and register a layer.

    ``forward(**inputs, **constants)`` returns the output array; ``backward(dy, **inputs,
    **constants)`` returns ``{name: gradient}`` for every differentiable input;
    ``index_form(s)`` returns output element ``y[s.out]`` as a SymPy expression.
    """
    layer = Layer(name, tuple(inputs), output, forward, backward, index_form, **options)
    names = [a.name for a in layer.inputs]
    if len(set(names)) != len(names):
        raise ValueError(f"layer {name!r}: input names must be unique; got {names}")
    return register(layer)


def def_elementwise(
    name: str,
    f: Callable[..., Any],
    df: Callable[..., Any],
    sym: Callable[[sp.Expr, Symbols], sp.Expr],
    *,
    domain: str = "real",
    constants: dict[str, float] | None = None,
    question: str = "",
    conventions: tuple[str, ...] = (),
) -> Layer:
    """Declare and register an elementwise layer ``y = f(x)``: the backward is ``dy * df(x, y)``.

    ``sym(z, s)`` is f of one SymPy entry ``z`` (``s`` holds the constants as symbols).

    Examples
    --------
    >>> import numpy as np, sympy as sp
    >>> from derivcheck.catalog.registry import LAYERS
    >>> cube = def_elementwise("cube_example", lambda x: x**3, lambda x, y: 3 * x**2, lambda z, s: z**3)
    >>> cube.backward(np.ones(2), np.array([1.0, 2.0]))["x"].tolist()
    [3.0, 12.0]
    >>> _ = LAYERS.pop("cube_example")
    """
    constants = constants or {}

    def index_form(s: Symbols) -> sp.Expr:
        n, d = s.out
        return sym(s.X[n, d], s)

    return def_layer(
        name,
        inputs=(Arg("x", "N D", domain=domain),),
        output="N D",
        forward=lambda x, **c: f(x, **c),
        backward=lambda dy, x, **c: {"x": dy * df(x, f(x, **c), **c)},
        index_form=index_form,
        constants=constants,
        question=question,
        conventions=conventions,
    )
