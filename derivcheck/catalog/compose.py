"""Models as chains of catalog layers: forward, backward and derivation by chaining VJPs.

A model is never differentiated as a whole expression: each step's gradient comes from its
layer's own derivation (or reference backward) with the step's upstream gradient, exactly
as backpropagation is written by hand. So the derivation prints one short equation per
step, with the deltas named after the values they belong to.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from derivcheck.catalog.declarations import Layer
from derivcheck.catalog.registry import get_layer

MODELS: dict[str, Sequential] = {}


@dataclass(frozen=True)
class Step:
    """One layer application: ``output = layer(**{arg: value name})``."""

    layer: str
    bind: dict[str, str]  # layer argument -> model value name
    output: str
    hyper: dict[str, int] = field(default_factory=dict)  # stride, padding, ...

    @property
    def spec(self) -> Layer:
        return get_layer(self.layer)


@dataclass
class Sequential:
    """A chain of catalog layers; values are named, parameters are the free float inputs."""

    name: str
    steps: tuple[Step, ...]
    inputs: dict[str, str]  # model input -> dims, e.g. {"x": "N D", "t": "N M", "w1": "D H"}
    fixed: tuple[str, ...] = ()  # inputs that are data, not parameters (x, t)
    question: str = ""
    domains: dict[str, str] = field(default_factory=dict)
    sizes: dict[str, Any] = field(default_factory=dict)  # fixed sizes, or rules of the drawn ones

    def draw_sizes(self, rng: np.random.Generator, high: int = 4) -> dict[str, int]:
        """Random sizes for the model's letters, with its fixed sizes and rules applied."""
        letters = dict.fromkeys(c for dims in self.inputs.values() for c in dims.split())
        out = {c: int(rng.integers(1, high + 1)) for c in letters if c not in self.sizes}
        for c, rule in self.sizes.items():
            out[c] = int(rule(out)) if callable(rule) else int(rule)
        return out

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(k for k in self.inputs if k not in self.fixed)

    def forward_values(self, values: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """All intermediate values, by name."""
        env = dict(values)
        for step in self.steps:
            layer = step.spec
            env[step.output] = layer.call_forward({a: env[v] for a, v in step.bind.items()}, step.hyper)
        return env

    def loss(self, values: Mapping[str, np.ndarray]) -> float:
        """The model's scalar output."""
        return float(self.forward_values(values)[self.steps[-1].output])

    def backward(self, values: Mapping[str, np.ndarray], rules: str = "reference") -> dict[str, np.ndarray]:
        """Gradients of the loss by chaining each step's VJP, backwards.

        ``rules`` picks each step's VJP: the layer's "reference" backward, or its derived
        "index" or "matrix" form (compiled), so a chain can be checked witness by witness.
        """
        deltas = self.deltas(values, rules)
        return {k: deltas[k] for k in self.params}

    def deltas(self, values: Mapping[str, np.ndarray], rules: str = "reference") -> dict[str, np.ndarray]:
        """The gradient of the loss in every named value: parameters, data and each step's output.

        These are the "deltas" of a hand-written backprop (``G_z1`` is ``deltas(...)["z1"]``).

        Examples
        --------
        >>> import numpy as np
        >>> from derivcheck.catalog.registry import get_model
        >>> m = get_model("mlp2")
        >>> rng = np.random.default_rng(0)
        >>> v = {k: rng.standard_normal([{"N": 3, "D": 2, "H": 4, "M": 2}[c] for c in d.split()]) for k, d in m.inputs.items()}
        >>> sorted(m.deltas(v))[:4], m.deltas(v)["z1"].shape
        (['E', 'a1', 'b1', 'b2'], (3, 4))
        """
        env = self.forward_values(values)
        grads: dict[str, Any] = {self.steps[-1].output: 1.0}
        kept: dict[str, Any] = {}
        for step in reversed(self.steps):
            layer = step.spec
            up = grads.pop(step.output)
            args = {a: env[v] for a, v in step.bind.items()}
            local = _step_vjp(layer, args, up, rules, step.hyper)
            for a, g in local.items():
                name = step.bind[a]
                grads[name] = grads[name] + g if name in grads else g
            kept[step.output] = up
        return {k: np.asarray(v, dtype=float) for k, v in {**kept, **grads}.items()}


def _step_vjp(layer: Layer, args: dict[str, Any], upstream: Any, rules: str, hyper: dict[str, int]) -> dict[str, Any]:
    if rules == "reference":
        return layer.call_backward(upstream, args, hyper)
    from derivcheck.symbolic.compile import compiled_gradient

    from derivcheck.catalog.sampling import complete_sizes

    if _rank_free(layer) and any(np.ndim(v) != len(layer.output_letters) for v in args.values()):
        # Elementwise layers derive the same at any rank: evaluate on (first axis, rest).
        shape = np.shape(next(iter(args.values())))
        flat = {k: np.reshape(v, (shape[0], -1)) for k, v in args.items()}
        grads = _step_vjp(layer, flat, np.reshape(upstream, (shape[0], -1)), rules, hyper)
        return {k: np.reshape(g, shape) for k, g in grads.items()}

    sizes = complete_sizes(layer, {**sizes_from_arrays(layer, args), **hyper})
    out = {}
    for arg in layer.differentiable:
        fn = compiled_gradient(layer.name, arg.name, rules) or compiled_gradient(layer.name, arg.name, "index")
        out[arg.name] = fn(args, upstream, sizes)
    return out


def _rank_free(layer: Layer) -> bool:
    return all(a.dims == layer.output for a in layer.inputs)


def sizes_from_arrays(layer: Layer, arrays: Mapping[str, Any]) -> dict[str, int]:
    """Dimension letters read off the arrays' shapes."""
    sizes: dict[str, int] = {}
    for a in layer.inputs:
        shape = np.shape(arrays[a.name])
        for letter, n in zip(a.letters, shape):
            sizes[letter] = int(n)
    return {**layer.sizes, **sizes}


def def_model(name: str, steps: Sequence[Step], inputs: dict[str, str], **options: Any) -> Sequential:
    """Declare and register a model (a file under ``derivcheck/catalog/models``)."""
    model = Sequential(name, tuple(steps), inputs, **options)
    MODELS[name] = model
    return model


def chained_latex(model: Sequential) -> list[str]:
    """The backward pass as one matrix-form (or index-form) equation per step."""
    from derivcheck.symbolic.derive import derive
    from derivcheck.symbolic.latex import DerivationPrinter, partial

    lines = []
    producers = {s.output: s for s in model.steps}
    # A weight shared by several steps (an unrolled RNN) gets one contribution per step: they add up.
    # So does a value read by several steps (both halves of an LSTM step's output): its delta is a sum.
    uses: dict[str, int] = {}
    for s in model.steps:
        for arg_name, target in s.bind.items():
            if target not in model.fixed and arg_name in {a.name for a in s.spec.differentiable}:
                uses[target] = uses.get(target, 0) + 1
    seen: dict[str, int] = {}

    def delta(value: str) -> str:
        return rf"G_{{{value}}}"  # dE/d(value): the same letter as a layer's upstream gradient

    for step in reversed(model.steps):
        if step.spec.chain is not None:
            lines.extend(_chain_step_lines(model, step, producers, uses, seen, delta))
            continue
        d = derive(step.layer)
        rename = {}
        for arg in step.spec.inputs:
            sym = d.built.symbols[arg.name]
            rename[str(getattr(sym, "name", sym))] = _display(step.bind[arg.name], arg.letters)
        rename["G"] = delta(step.output)
        for arg_name, g in d.gradients.items():
            target = step.bind[arg_name]
            if target in model.fixed:
                continue
            printer = DerivationPrinter(g.matrix.placeholders if g.matrix.kind == "elementwise" else None, rename=rename)
            body = printer.doprint(g.matrix.expr) if g.matrix.kind != "none" else DerivationPrinter(rename=rename).doprint(g.index.expr)
            lhs = delta(target) if target in producers else partial("E", _display(target, g.arg.letters))
            seen[target] = seen.get(target, 0) + 1
            equals = r"\mathrel{+}=" if uses.get(target, 1) > 1 and seen[target] > 1 else "="
            lines.append(f"{lhs} {equals} {body}")
    for target, n in uses.items():
        if n > 1:
            what = "is read by" if target in producers else "is shared by"
            lines.append(rf"\text{{{target} {what} {n} steps: its gradient is the sum of the {n} contributions above}}")
    return lines


def _chain_step_lines(model: Sequential, step: Step, producers: dict, uses: dict, seen: dict, delta: Any) -> list[str]:
    """A step of a layer declared as primitive steps: its gradients are that layer's step-by-step backward."""
    from derivcheck.symbolic.latex import partial

    out = []
    name = step.layer.replace("_", r"\_")
    for arg in step.spec.differentiable:
        target = step.bind[arg.name]
        if target in model.fixed:
            continue
        lhs = delta(target) if target in producers else partial("E", _display(target, arg.letters))
        seen[target] = seen.get(target, 0) + 1
        equals = r"\mathrel{+}=" if uses.get(target, 1) > 1 and seen[target] > 1 else "="
        out.append(rf"{lhs} {equals} \text{{d{arg.name} of the step-by-step backward of {name} "
                   rf"(derivcheck derive {name}), upstream }} {delta(step.output)}")
    return out


def _display(name: str, letters: tuple[str, ...]) -> str:
    base = name.rstrip("0123456789")
    digits = name[len(base):]
    shown = base.upper() if len(letters) == 2 else rf"\mathbf{{{base}}}"
    return f"{shown}_{{{digits}}}" if digits else shown
