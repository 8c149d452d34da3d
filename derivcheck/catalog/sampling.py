"""Random sizes and inputs for a declared layer, from its dimension letters and domains."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from derivcheck.catalog.domains import KINK_MARGIN  # noqa: F401 - "away_from_zero" keeps this distance from a kink
from derivcheck.catalog.declarations import Arg, Layer


def letters_of(layer: Layer) -> list[str]:
    """Free dimension letters: those not computed from others by a shape rule."""
    seen = dict.fromkeys(c for a in layer.inputs for c in a.letters)
    seen.update(dict.fromkeys(layer.output_letters))
    return [c for c in seen if c not in layer.shape_rules and c not in layer.sizes and c not in layer.hyper]


def complete_sizes(layer: Layer, sizes: Mapping[str, int]) -> dict[str, int]:
    """Add fixed sizes and the sizes that shape rules compute (an output height, say)."""
    out = {**layer.sizes, **dict(sizes)}
    for letter, rule in layer.shape_rules.items():
        out[letter] = int(rule(out))
    return out


def random_sizes(layer: Layer, rng: np.random.Generator, low: int = 1, high: int | None = None) -> dict[str, int]:
    """One size per free dimension letter (up to ``max_side``) and per hyperparameter, valid together."""
    top = layer.max_side if high is None else high
    for _ in range(1000):
        drawn = {c: int(rng.integers(low, top + 1)) for c in letters_of(layer)}
        drawn.update({h: int(rng.integers(lo, hi + 1)) for h, (lo, hi) in layer.hyper.items()})
        sizes = complete_sizes(layer, drawn)
        if sizes_valid(layer, sizes):
            return sizes
    raise ValueError(f"layer {layer.name!r}: no valid sizes found below {top}")


def sizes_valid(layer: Layer, sizes: Mapping[str, int]) -> bool:
    """The layer's own constraint, and every size positive."""
    letters = {c for a in layer.inputs for c in a.letters} | set(layer.output_letters)
    if any(sizes[c] < 1 for c in letters):
        return False
    return layer.valid_sizes is None or bool(layer.valid_sizes(dict(sizes)))


def sample_arg(arg: Arg, sizes: Mapping[str, int], rng: np.random.Generator) -> np.ndarray:
    """Values for one input, drawn by its domain's registered sampler."""
    from derivcheck.catalog.registry import SAMPLERS

    shape = tuple(int(sizes[c]) for c in arg.letters)
    return SAMPLERS[arg.domain](shape, rng, sizes, arg)


def sample_inputs(layer: Layer, sizes: Mapping[str, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Values for every input of a layer."""
    return {a.name: sample_arg(a, sizes, rng) for a in layer.inputs}


def output_shape(layer: Layer, sizes: Mapping[str, int]) -> tuple[int, ...]:
    return tuple(int(sizes[c]) for c in layer.output_letters)
