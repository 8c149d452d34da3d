"""Models as chains of catalog layers: forward, backward and derivation by chaining VJPs.

A model is never differentiated as a whole expression: each step's gradient comes from its
layer's own derivation (or reference backward) with the step's upstream gradient, exactly
as backpropagation is written by hand. So the derivation prints one short equation per
step, with the deltas named after the values they belong to.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from derivcheck.catalog.declarations import Layer
from derivcheck.catalog.registry import get_layer, register_model

# One layer's vector-Jacobian product: (layer, its arguments, the upstream gradient, hyperparameters) -> gradients.
VJP = Callable[[Layer, dict[str, Any], Any, dict[str, int]], dict[str, Any]]


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

    def backward(self, values: Mapping[str, np.ndarray], vjp: VJP | None = None) -> dict[str, np.ndarray]:
        """Gradients of the loss by chaining each step's VJP, backwards.

        ``vjp`` computes each step's VJP: the layer's reference backward by default, or a derived
        form (``derivcheck.symbolic.models.witness_vjp("index")``), so a chain can be checked
        witness by witness.
        """
        deltas = self.deltas(values, vjp)
        return {k: deltas[k] for k in self.params}

    def deltas(self, values: Mapping[str, np.ndarray], vjp: VJP | None = None) -> dict[str, np.ndarray]:
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
            local = (vjp or _reference_vjp)(layer, args, up, step.hyper)
            for a, g in local.items():
                name = step.bind[a]
                grads[name] = grads[name] + g if name in grads else g
            kept[step.output] = up
        return {k: np.asarray(v, dtype=float) for k, v in {**kept, **grads}.items()}


def _reference_vjp(layer: Layer, args: dict[str, Any], upstream: Any, hyper: dict[str, int]) -> dict[str, Any]:
    return layer.call_backward(upstream, args, hyper)


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
    return register_model(Sequential(name, tuple(steps), inputs, **options))
