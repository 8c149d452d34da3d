"""Declaring a layer: one ``def_layer`` call per layer, in one file under ``derivcheck/catalog/layers``.

A declaration holds knowledge only: the layer's inputs with dimension letters, its
reference NumPy forward and hand-written vectorized backward (VJP), and its symbolic index
form (one output element as a SymPy expression with symbolic sizes). Derivation, LaTeX,
generated code, verification, tests and the CLI are all derived from it.
"""

from __future__ import annotations

import difflib
import inspect
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import sympy as sp

from derivcheck.catalog import domains as _domains  # noqa: F401 - registers the built-in domains
from derivcheck.catalog.registry import LAYERS, SAMPLERS, register
from derivcheck.errors import InputError

# The modules that declare on a user's behalf: the file named in an error is the first caller outside them.
_DECLARING_FILES = frozenset(str(Path(__file__).with_name(f)) for f in ("declarations.py", "domains.py", "registry.py"))


class DeclarationError(InputError):
    """A layer declaration derivcheck cannot use; the message names the layer file, the argument and the likely fix."""


class UnknownSymbolError(DeclarationError, AttributeError):
    """An index form asked ``s`` for a name the layer does not declare (AttributeError, so ``hasattr`` still works)."""


def declaring_file() -> str:
    """The user's file that is declaring right now: the first caller outside derivcheck's declaring modules."""
    frame = sys._getframe(1)
    # "<string>": the __init__ that dataclasses generate, between Arg.__post_init__ and the user's line.
    while frame is not None and (frame.f_code.co_filename in _DECLARING_FILES or frame.f_code.co_filename == "<string>"):
        frame = frame.f_back
    return frame.f_code.co_filename if frame is not None else "<unknown file>"


def did_you_mean(name: str, known: list[str] | tuple[str, ...]) -> str:
    """`` (did you mean 'x'?)`` when a known name is close to ``name``, else nothing."""
    same_but_case = [str(k) for k in known if str(k).lower() == str(name).lower() and str(k) != str(name)]
    close = same_but_case or difflib.get_close_matches(str(name), [str(k) for k in known], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass(frozen=True)
class Arg:
    """One input of a layer: name, dimension letters (``"N D"``), sampling domain."""

    name: str
    dims: str
    domain: str = "real"
    differentiable: bool = True
    upper: str | int | None = None  # for domain "index": values in [0, upper), a dim letter or a number

    def __post_init__(self) -> None:
        where = declaring_file()
        if not isinstance(self.dims, str) or not all(c.isidentifier() for c in self.dims.split()):
            raise DeclarationError(f"{where}: Arg {self.name!r}: dims must be one string of dimension letters separated "
                                   f"by spaces, e.g. \"N D\"; got {self.dims!r}")
        if self.domain not in SAMPLERS:
            raise DeclarationError(f"{where}: Arg {self.name!r}: no domain {self.domain!r}"
                                   f"{did_you_mean(self.domain, tuple(SAMPLERS))}; the domains are "
                                   f"{', '.join(SAMPLERS)}, or one registered with def_domain")

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

    def __getattr__(self, name: str) -> Any:
        # Only reached for a name the layer does not declare: say which names exist and how a constant is added.
        if name.startswith("__"):
            raise AttributeError(name)
        known = [k for k in self.__dict__ if k != "out"] + ["out"]
        raise UnknownSymbolError(f"s.{name} is not declared{did_you_mean(name, known)}; the index form can use "
                                 f"s.{', s.'.join(known)}, s.index(...), s.total(...). A constant needs "
                                 f"constants={{{name!r}: value}} in def_layer; an input needs Arg({name.lower()!r}, ...)")

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
    source: str = ""  # the file that declared the layer, named in every error about the declaration

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
    where = options.pop("source", None) or declaring_file()
    _check_options(name, where, options)
    layer = Layer(name, tuple(inputs), output, forward, backward, index_form, **options, source=where)
    _check_inputs(layer)
    _check_output(layer)
    _check_signature(layer, "forward", forward, skip=0)
    _check_signature(layer, "backward", backward, skip=1)
    if name in LAYERS and LAYERS[name].source != where:
        raise DeclarationError(f"{where}: a layer named {name!r} is already declared in {LAYERS[name].source}; "
                               f"give this one another name")
    return register(layer)


def _check_options(name: str, where: str, options: Mapping[str, Any]) -> None:
    known = [f.name for f in fields(Layer)][6:]  # after the six given by name
    for key in options:
        if key not in known:
            raise DeclarationError(f"{where}: def_layer({name!r}) has no option {key!r}{did_you_mean(key, known)}; "
                                   f"the options are {', '.join(k for k in known if k != 'source')}")


def _check_inputs(layer: Layer) -> None:
    names = [a.name for a in layer.inputs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DeclarationError(f"{layer.source}: layer {layer.name!r}: the input name {twice[0]!r} is used twice "
                               f"(inputs {names}); each input needs its own name")


def _check_output(layer: Layer) -> None:
    known = {c for a in layer.inputs for c in a.letters} | set(layer.shape_rules) | set(layer.sizes)
    for letter in layer.output_letters:
        if letter not in known:
            raise DeclarationError(
                f"{layer.source}: layer {layer.name!r}: output letter {letter!r} is no input's dimension"
                f"{did_you_mean(letter, sorted(known))}; the inputs use {', '.join(sorted(known))}. An output size "
                f"computed from others needs shape_rules={{{letter!r}: lambda sizes: ...}}")


def _check_signature(layer: Layer, role: str, fn: Callable[..., Any], skip: int) -> None:
    """``forward`` and ``backward`` are called with the inputs, constants and hyperparameters by name."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # a builtin without a signature: nothing to check
        return
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return
    taken = [p.name for p in params[skip:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    given = [a.name for a in layer.inputs] + list(layer.constants) + list(layer.hyper)
    call = f"{role}({'dy, ' if skip else ''}{', '.join(f'{g}=...' for g in given)})"
    for g in given:
        if g not in taken:
            first = f"; its first parameter{' ' + repr(params[0].name) if params else ''} is the upstream gradient" if skip else ""
            raise DeclarationError(f"{layer.source}: layer {layer.name!r}: {role} takes no parameter {g!r}"
                                   f"{did_you_mean(g, taken)} (it takes {', '.join(p.name for p in params)}); "
                                   f"derivcheck calls {call}{first}")


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
