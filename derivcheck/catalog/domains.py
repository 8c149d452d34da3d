"""Input domains: where the values of a layer's input are drawn from. One function per domain, in a table.

A new domain is one ``@def_domain("name")`` sampler ``(shape, rng, sizes, arg) -> array``;
``Arg(..., domain="name")`` then draws from it in ``verify``, the property tests and models.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from derivcheck.catalog.registry import SAMPLERS, register_domain

Sampler = Callable[[tuple[int, ...], np.random.Generator, Mapping[str, int], Any], np.ndarray]

# Away from a kink at 0 by at least this much: a finite-difference step never crosses it.
KINK_MARGIN = 0.05


def def_domain(name: str) -> Callable[[Sampler], Sampler]:
    """Register ``sampler(shape, rng, sizes, arg)`` as the domain ``name``.

    Examples
    --------
    >>> @def_domain("tiny_positive")
    ... def _tiny(shape, rng, sizes, arg):
    ...     return rng.uniform(1e-3, 1e-2, shape)
    >>> "tiny_positive" in SAMPLERS
    True
    >>> _ = SAMPLERS.pop("tiny_positive")
    """
    def register(sampler: Sampler) -> Sampler:
        return register_domain(name, sampler)
    return register


@def_domain("real")
def _real(shape, rng, sizes, arg):  # noqa: ANN001, ANN202 - the sampler signature
    return rng.standard_normal(shape)


@def_domain("positive")
def _positive(shape, rng, sizes, arg):  # noqa: ANN001, ANN202
    return rng.uniform(0.5, 2.0, shape)


@def_domain("unit_interval")
def _unit_interval(shape, rng, sizes, arg):  # noqa: ANN001, ANN202
    return rng.uniform(0.05, 0.95, shape)


@def_domain("binary")
def _binary(shape, rng, sizes, arg):  # noqa: ANN001, ANN202
    return rng.integers(0, 2, shape).astype(float)


@def_domain("away_from_zero")
def _away_from_zero(shape, rng, sizes, arg):  # noqa: ANN001, ANN202
    return rng.choice([-1.0, 1.0], shape) * rng.uniform(KINK_MARGIN, 2.0, shape)


@def_domain("probability_rows")
def _probability_rows(shape, rng, sizes, arg):  # noqa: ANN001, ANN202
    z = rng.standard_normal(shape)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@def_domain("onehot_rows")
def _onehot_rows(shape, rng, sizes, arg):  # noqa: ANN001, ANN202
    k = shape[-1]
    return np.eye(k)[rng.integers(0, k, shape[:-1])]


@def_domain("index")
def _index(shape, rng, sizes, arg):  # noqa: ANN001, ANN202
    upper = int(sizes[arg.upper]) if isinstance(arg.upper, str) else int(arg.upper or 1)
    return rng.integers(0, upper, shape)
