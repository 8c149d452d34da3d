"""Hypothesis strategies: well-scaled arrays (off kinks or on them), layer sizes and layer inputs.

They are built on ``hypothesis.extra.numpy.arrays`` with element strategies, so a failing example
shrinks entry by entry (towards 0, or towards the simplest value off the kinks) and prints as the
array itself, which can be pasted back. Arguments are what ``extra.numpy`` accepts (an int, a tuple
or a list for a shape, a strategy of shapes, NumPy scalar types) and are validated lazily, the way
``extra.numpy`` does it: a bad argument is an ``InvalidArgument`` raised when the strategy is first
used, saying what was expected and what came. Hypothesis is optional for derivcheck; importing this
module without it says how to get it.

Examples
--------
>>> from hypothesis import given
>>> sizes = layer_sizes("dense", max_side=3)
>>> x = arrays((4, 3), kinks="on")
"""

from __future__ import annotations

import difflib
from typing import Any

import numpy as np

try:
    from hypothesis import strategies as st
    from hypothesis.errors import InvalidArgument
    from hypothesis.extra import numpy as hnp
except ModuleNotFoundError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ModuleNotFoundError(
        "derivcheck.interfaces.strategies needs Hypothesis, which derivcheck itself does not: "
        "pip install hypothesis (or pip install 'derivcheck[test]')"
    ) from exc

from derivcheck.catalog.declarations import Layer
from derivcheck.catalog.sampling import complete_sizes, letters_of, sample_arg, sizes_valid

_KINKS = (None, "avoid", "on")
_DTYPES = (np.float16, np.float32, np.float64)
# Entries are multiples of scale / GRID_STEPS up to RANGE * scale: "well scaled" (no 1e-300 that a
# float strategy would offer, which no finite difference can resolve against 1), and a shrink lands
# on short decimals such as 0.5 that print and paste exactly.
GRID_STEPS = 256
RANGE = 3.0


def arrays(shape: Any, *, dtype: Any = np.float64, scale: float = 1.0, kinks: str | None = None,
           at: Any = (0.0,), margin: float = 1e-2) -> st.SearchStrategy[np.ndarray]:
    """Arrays with entries in ``[-3 scale, 3 scale]``; ``kinks="avoid"`` keeps every entry ``margin * scale``
    away from the points ``at``, ``kinks="on"`` puts at least one entry (often more) exactly on them.

    ``shape`` is an int, a tuple or list of ints, or a strategy of shapes (``hypothesis.extra.numpy.array_shapes()``);
    ``at`` is a number or a sequence of numbers (NumPy scalars too).
    """
    return st.deferred(lambda: _arrays(shape, dtype, scale, kinks, at, margin))


def _arrays(shape: Any, dtype: Any, scale: Any, kinks: Any, at: Any, margin: Any) -> st.SearchStrategy[np.ndarray]:
    shapes = shape if isinstance(shape, st.SearchStrategy) else st.just(_shape(shape))
    dt = _dtype(dtype)
    _positive("scale", scale)
    _positive("margin", margin)
    if kinks not in _KINKS:
        raise InvalidArgument(f"kinks must be one of {_KINKS}; got {kinks!r}")
    points = _points(at)
    scale, margin = float(scale), float(margin)
    grid = st.integers(-int(RANGE * GRID_STEPS), int(RANGE * GRID_STEPS)).map(lambda k: k * scale / GRID_STEPS)
    if kinks == "avoid":
        elements = grid.map(lambda v: _off_kinks(v, points, margin * scale, dt))
    elif kinks == "on":
        elements = st.one_of(st.sampled_from([dt.type(p) for p in points]), grid.map(dt.type))
    else:
        elements = grid.map(dt.type)
    drawn = shapes.flatmap(lambda s: hnp.arrays(dt, _shape(s), elements=elements))
    if kinks != "on":
        return drawn
    return st.tuples(drawn, st.integers(0, 2**31 - 1), st.sampled_from(points)).map(lambda t: _one_on_a_kink(*t, dt))


def _off_kinks(value: float, points: np.ndarray, gap: float, dt: np.dtype) -> Any:
    """``value``, moved to ``gap`` from its nearest kink point if it is closer than that."""
    nearest = float(points[np.argmin(np.abs(points - value))])
    if abs(value - nearest) >= gap:
        return dt.type(value)
    side = 1.0 if value >= nearest else -1.0
    out = dt.type(nearest + side * gap)
    while abs(float(out) - nearest) < gap:  # rounding to a narrow dtype may land inside the margin
        out = np.nextafter(out, dt.type(side * np.inf))
    return out


def _one_on_a_kink(x: np.ndarray, which: int, point: float, dt: np.dtype) -> np.ndarray:
    """``x`` with at least one entry on a kink (an empty array stays empty)."""
    if x.size and not np.any(np.isin(x, point)):
        x = x.copy()
        x.reshape(-1)[which % x.size] = dt.type(point)
    return x


def layer_sizes(layer: Any, *, min_side: int = 1, max_side: int | None = None) -> st.SearchStrategy[dict[str, int]]:
    """One size per dimension letter of a catalog layer (by name) or a ``Layer``, derived sizes included."""
    return st.deferred(lambda: _layer_sizes(layer, min_side, max_side))


def _layer_sizes(layer: Any, min_side: Any, max_side: Any) -> st.SearchStrategy[dict[str, int]]:
    layer = _layer(layer)
    top = layer.max_side if max_side is None else max_side
    for label, value in (("min_side", min_side), ("max_side", top)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise InvalidArgument(f"{label} must be a positive int; got {value!r}")
    if min_side > top:
        raise InvalidArgument(f"need min_side <= max_side; got min_side={min_side}, max_side={top}")
    letters = {c: st.integers(int(min_side), int(top)) for c in letters_of(layer)}
    letters.update({h: st.integers(lo, hi) for h, (lo, hi) in layer.hyper.items()})
    return (
        st.fixed_dictionaries(letters)
        .map(lambda s: complete_sizes(layer, s))
        .filter(lambda s: sizes_valid(layer, s))
    )


def layer_inputs(layer: Any, *, max_side: int | None = None) -> st.SearchStrategy[tuple[dict[str, int], dict[str, Any]]]:
    """(sizes, inputs) for a layer: a real-valued input drawn by :func:`arrays` (so it shrinks), any other in
    its declared domain (probabilities, one-hot rows, indices) from a drawn seed."""
    return st.deferred(lambda: _layer_inputs(layer, max_side))


def _layer_inputs(layer: Any, max_side: Any) -> st.SearchStrategy[tuple[dict[str, int], dict[str, Any]]]:
    layer = _layer(layer)
    return layer_sizes(layer, max_side=max_side).flatmap(lambda sizes: st.tuples(st.just(sizes), _inputs(layer, sizes)))


def _inputs(layer: Layer, sizes: dict[str, int]) -> st.SearchStrategy[dict[str, Any]]:
    def one(arg: Any) -> st.SearchStrategy[Any]:
        shape = tuple(int(sizes[c]) for c in arg.letters)
        if arg.domain == "real":
            return arrays(shape)
        return st.integers(0, 2**32 - 1).map(lambda seed: sample_arg(arg, sizes, np.random.default_rng(seed)))

    return st.fixed_dictionaries({a.name: one(a) for a in layer.inputs})


def _layer(layer: Any) -> Layer:
    if isinstance(layer, Layer):
        return layer
    if isinstance(layer, str):
        from derivcheck.catalog.registry import list_layers, list_models, get_layer

        known = list_layers()
        if layer not in known:
            close = difflib.get_close_matches(layer, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            model = f" ({layer!r} is a model, a chain of layers: draw its layers' inputs)" if layer in list_models() else ""
            raise InvalidArgument(f"no layer named {layer!r}{hint}{model}; the catalog's {len(known)} layers: {', '.join(known)}")
        return get_layer(layer)
    raise InvalidArgument(f"layer must be a catalog name or a Layer; got {type(layer).__name__}")


def _shape(shape: Any) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)) or not all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 0 for s in shape):
        raise InvalidArgument(f"shape must be a non-negative int, a tuple or list of them, or a strategy of shapes; "
                              f"got {shape!r}")
    return tuple(int(s) for s in shape)


def _dtype(dtype: Any) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise InvalidArgument(f"dtype must be float16, float32 or float64; got {dtype!r}") from exc
    if dt.type not in _DTYPES:
        raise InvalidArgument(f"dtype must be float16, float32 or float64; got {dtype!r}")
    return dt


def _points(at: Any) -> np.ndarray:
    values = tuple(at) if isinstance(at, (tuple, list, np.ndarray)) else (at,)
    if not values or not all(isinstance(a, (int, float, np.integer, np.floating)) and not isinstance(a, bool)
                             and np.isfinite(a) for a in values):
        raise InvalidArgument(f"at must be a finite number or a non-empty sequence of them (the kink points); got {at!r}")
    return np.array([float(a) for a in values])


def _positive(label: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not (
            value > 0 and np.isfinite(value)):
        raise InvalidArgument(f"{label} must be a positive finite number; got {value!r}")
