"""Layers declared as a chain of primitive steps: their step-by-step derivation and its VJP on the layer's arrays.

The chain's generated backward is the layer's symbolic witness: ``verify`` compares it with
the hand-written reference backward and finite differences, models chain it like any VJP,
and ``derive`` prints it gate by gate.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np

from derivcheck.language.printing import notation
from derivcheck.language.printing.notation import Glyphs
from derivcheck.language.program import ProgramDerivation, derive_program


def _compiled(name: str, program: Any) -> tuple[ProgramDerivation, Any]:
    """A program's derivation and its verified backward as a function (None where it did not verify)."""
    d = derive_program(program)
    namespace: dict[str, Any] = {}
    if d.code is not None:
        exec(compile(d.code, f"<derivcheck backward of {name}>", "exec"), namespace)  # noqa: S102 - our own verified code
    return d, namespace.get("backward")


# The derivations are cached by layer and glyph set: their text is printed when they are derived, so a
# notebook that switches notation.use(...) after a first print gets the new glyphs, not the first call's.
@functools.lru_cache(maxsize=None)
def _derived(name: str, glyphs: Glyphs) -> tuple[ProgramDerivation, Any]:
    from derivcheck.catalog.registry import get_layer

    return _compiled(name, get_layer(name).chain.program)


def chain_derivation(name: str) -> ProgramDerivation:
    """The step-by-step derivation of a chain layer (derived and verified once per process)."""
    return _derived(name, notation.current())[0]


def chain_inputs(layer: Any, inputs: Mapping[str, Any], upstream: Any) -> dict[str, np.ndarray]:
    """The program's inputs from a layer's arrays: blocks split along the last axis, ``dy`` along its first."""
    spec = layer.chain
    out: dict[str, np.ndarray] = {}
    for arg, names in spec.arguments.items():
        value = np.asarray(inputs[arg], dtype=float)
        parts = np.split(value, len(names), axis=-1) if len(names) > 1 else [value]
        out.update(zip(names, parts))
    dy = np.asarray(upstream, dtype=float)
    out.update(zip(spec.upstream, list(dy) if len(spec.upstream) > 1 else [dy]))
    return out


def chain_vjp(layer: Any, inputs: Mapping[str, Any], upstream: Any) -> dict[str, np.ndarray]:
    """``dy -> {argument: gradient}`` through the chain's verified backward code."""
    d, backward = _derived(layer.name, notation.current())
    if backward is None:
        raise RuntimeError(f"the step-by-step backward of {layer.name} did not verify: {d.checks}")
    values = chain_inputs(layer, inputs, upstream)
    args = backward.__code__.co_varnames[: backward.__code__.co_argcount]
    grads = backward(*[values[a] for a in args])
    out = {}
    for arg, names in layer.chain.arguments.items():
        parts = [np.asarray(grads[n], dtype=float) for n in names]
        out[arg] = np.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]
    return out


def symbol_name(arg: Any) -> str:
    """The name an argument has in the matrix language: upper case for a matrix (X, W), as declared otherwise."""
    return arg.name.upper() if len(arg.letters) == 2 else arg.name


def steps_program(layer: Any) -> Any:
    """A layer's matrix-language forward steps as a program: objective <G, Y> (or the loss), wrt every input."""
    from derivcheck.language.declaration import Program
    from derivcheck.language.program import _step

    steps = tuple(_step(s) for s in layer.steps)
    shapes = {symbol_name(a): " x ".join(a.letters) or "scalar" for a in layer.inputs}
    shapes.update({k: "scalar positive" if v > 0 else "scalar" for k, v in layer.constants.items()})
    out = steps[-1][0]
    if layer.is_loss:
        objective = out
    else:
        shapes["G"] = " x ".join(layer.output_letters)
        objective = f"sum(G * {out})"
    wrt = tuple(symbol_name(a) for a in layer.differentiable)
    return Program(steps, objective, wrt, shapes)


@functools.lru_cache(maxsize=None)
def _steps_derived(name: str, glyphs: Glyphs) -> tuple[ProgramDerivation, Any]:
    from derivcheck.catalog.registry import get_layer

    return _compiled(name, steps_program(get_layer(name)))


def steps_derivation(name: str) -> ProgramDerivation:
    """The step-by-step matrix form of a layer declared with ``steps`` (derived and verified once per process)."""
    return _steps_derived(name, notation.current())[0]


def steps_vjp(layer: Any, inputs: Mapping[str, Any], upstream: Any) -> dict[str, np.ndarray] | None:
    """``dy -> {argument: gradient}`` through the verified step-by-step matrix form (None where it did not verify)."""
    d, backward = _steps_derived(layer.name, notation.current())
    if backward is None:
        return None
    values = {symbol_name(a): np.asarray(inputs[a.name], dtype=float) for a in layer.inputs}
    values.update({k: float(v) for k, v in layer.constants.items()})
    if not layer.is_loss:
        values["G"] = np.asarray(upstream, dtype=float)
    args = backward.__code__.co_varnames[: backward.__code__.co_argcount]
    grads = backward(*[values[a] for a in args])
    scale = 1.0 if not layer.is_loss else float(upstream)
    return {a.name: scale * np.asarray(grads[symbol_name(a)], dtype=float) for a in layer.differentiable}
