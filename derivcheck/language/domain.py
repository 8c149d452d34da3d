"""Random sizes and values at which a derivation is verified, honouring declared properties.

Square matrices are drawn near the identity (invertible, positive determinant, so that
``inv``, ``det`` and ``logdet`` are defined), ``spd`` as ``B B^T / D + I``, ``symmetric``
as the symmetric part of such a draw, ``positive`` entries log-normal, and ``simplex`` rows
one-hot. Sizes are distinct where possible, so that a transposed result cannot fit by accident.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from derivcheck.language.nodes import Variable

MIN_SIZE, MAX_SIZE = 2, 5
# Off-diagonal spread of square draws: small enough that I + E stays well conditioned.
_SQUARE_SPREAD = 0.3


def draw_sizes(variables: Mapping[str, Variable], rng: np.random.Generator, small: bool = False) -> dict[str, int]:
    dims = sorted({d for v in variables.values() for d in v.shape if isinstance(d, str)})
    top = 3 if small else MAX_SIZE
    pool = list(range(MIN_SIZE, top + 1))
    rng.shuffle(pool)
    return {d: (pool[i] if i < len(pool) else int(rng.integers(MIN_SIZE, top + 1))) for i, d in enumerate(dims)}


def draw_values(variables: Mapping[str, Variable], sizes: Mapping[str, int], rng: np.random.Generator
                ) -> dict[str, np.ndarray]:
    return {name: draw(v, sizes, rng) for name, v in variables.items()}


def draw(v: Variable, sizes: Mapping[str, int], rng: np.random.Generator) -> np.ndarray:
    shape = tuple(d if isinstance(d, int) else sizes[d] for d in v.shape)
    props = v.properties
    if "simplex" in props:
        rows = shape[0] if len(shape) == 2 else 1
        k = shape[-1]
        out = np.zeros((rows, k))
        out[np.arange(rows), rng.integers(0, k, size=rows)] = 1.0
        return out.reshape(shape)
    if "spd" in props:
        b = rng.standard_normal(shape)
        return b @ b.T / shape[0] + np.eye(shape[0])
    x = rng.standard_normal(shape)
    if "positive" in props:
        return np.exp(0.5 * x)
    if len(shape) == 2 and shape[0] == shape[1]:
        x = np.eye(shape[0]) + _SQUARE_SPREAD * x / np.sqrt(shape[0])
        if "symmetric" in props:
            x = (x + x.T) / 2
    return x
