"""Hypothesis strategies: well-scaled arrays (off kinks or on them), layer sizes and layer inputs.

They compose like ``hypothesis.extra.numpy``'s and validate their arguments the same way:
a bad argument is an ``InvalidArgument`` that says what was expected and what came.
Hypothesis is optional for derivcheck; importing this module without it says how to get it.

Examples
--------
>>> from hypothesis import given
>>> sizes = layer_sizes("dense", max_side=3)
>>> x = arrays((4, 3), kinks="on")
"""

from __future__ import annotations

from typing import Any

import numpy as np

try:
    from hypothesis import strategies as st
    from hypothesis.errors import InvalidArgument
except ModuleNotFoundError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ModuleNotFoundError(
        "derivcheck.interfaces.strategies needs Hypothesis, which derivcheck itself does not: "
        "pip install hypothesis (or pip install 'derivcheck[test]')"
    ) from exc

from derivcheck.catalog.declarations import Layer
from derivcheck.catalog.sampling import complete_sizes, letters_of, sample_inputs, sizes_valid

_KINKS = (None, "avoid", "on")
_DTYPES = (np.float16, np.float32, np.float64)


def arrays(shape: int | tuple[int, ...], *, dtype: Any = np.float64, scale: float = 1.0, kinks: str | None = None,
           at: tuple[float, ...] = (0.0,), margin: float = 1e-2) -> st.SearchStrategy[np.ndarray]:
    """Gaussian arrays of a given scale; ``kinks="avoid"`` keeps every entry ``margin * scale``
    away from the points ``at``, ``kinks="on"`` puts some entries exactly on them."""
    shape = _shape(shape)
    dt = np.dtype(dtype) if not isinstance(dtype, np.dtype) else dtype
    if dt.type not in _DTYPES:
        raise InvalidArgument(f"dtype must be float16, float32 or float64; got {dtype!r}")
    _positive("scale", scale)
    _positive("margin", margin)
    if kinks not in _KINKS:
        raise InvalidArgument(f"kinks must be one of {_KINKS}; got {kinks!r}")
    if not isinstance(at, tuple) or not at or not all(isinstance(a, (int, float)) and np.isfinite(a) for a in at):
        raise InvalidArgument(f"at must be a non-empty tuple of finite numbers (the kink points); got {at!r}")
    points = np.array(at, dtype=float)

    def build(seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        x = scale * rng.standard_normal(shape)
        nearest = points[np.argmin(np.abs(x[..., None] - points), axis=-1)] if x.size else x
        if kinks == "avoid":
            close = np.abs(x - nearest) < margin * scale
            x = np.where(close, nearest + np.where(x >= nearest, 1, -1) * margin * scale, x)
        elif kinks == "on" and x.size:
            on = rng.random(shape) < 0.5
            on.reshape(-1)[rng.integers(x.size)] = True  # at least one entry on a kink
            x = np.where(on, rng.choice(points, shape), x)
        return x.astype(dt)

    return st.integers(0, 2**32 - 1).map(build)


def layer_sizes(layer: str | Layer, *, min_side: int = 1, max_side: int | None = None) -> st.SearchStrategy[dict[str, int]]:
    """One size per dimension letter of a catalog layer (by name) or a ``Layer``, derived sizes included."""
    layer = _layer(layer)
    top = layer.max_side if max_side is None else max_side
    for label, value in (("min_side", min_side), ("max_side", top)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidArgument(f"{label} must be a positive int; got {value!r}")
    if min_side > top:
        raise InvalidArgument(f"need min_side <= max_side; got min_side={min_side}, max_side={top}")
    letters = {c: st.integers(min_side, top) for c in letters_of(layer)}
    letters.update({h: st.integers(lo, hi) for h, (lo, hi) in layer.hyper.items()})
    return (
        st.fixed_dictionaries(letters)
        .map(lambda s: complete_sizes(layer, s))
        .filter(lambda s: sizes_valid(layer, s))
    )


def layer_inputs(layer: str | Layer, *, max_side: int | None = None) -> st.SearchStrategy[tuple[dict[str, int], dict[str, Any]]]:
    """(sizes, inputs) for a layer, each input drawn in its declared domain."""
    layer = _layer(layer)
    return st.tuples(layer_sizes(layer, max_side=max_side), st.integers(0, 2**32 - 1)).map(
        lambda pair: (pair[0], sample_inputs(layer, pair[0], np.random.default_rng(pair[1])))
    )



def _layer(layer: str | Layer) -> Layer:
    if isinstance(layer, Layer):
        return layer
    if isinstance(layer, str):
        from derivcheck.catalog.registry import get_layer

        try:
            return get_layer(layer)
        except Exception as exc:  # noqa: BLE001 - the registry's own message names the catalog
            raise InvalidArgument(str(exc)) from exc
    raise InvalidArgument(f"layer must be a catalog name or a Layer; got {type(layer).__name__}")


def _shape(shape: Any) -> tuple[int, ...]:
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, tuple) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
        raise InvalidArgument(f"shape must be a non-negative int or a tuple of them; got {shape!r}")
    return shape


def _positive(label: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value > 0 and np.isfinite(value)):
        raise InvalidArgument(f"{label} must be a positive finite number; got {value!r}")
