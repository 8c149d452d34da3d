"""Hypothesis strategies for declared layers: sizes per dimension letter, then inputs.

Examples
--------
>>> from hypothesis import given
>>> from derivcheck.registry import get_layer
>>> strategy = sizes_for(get_layer("dense"), max_side=3)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

from derivcheck.extend import Layer
from derivcheck.sampling import complete_sizes, letters_of, sample_inputs, sizes_valid


def sizes_for(layer: Layer, *, min_side: int = 1, max_side: int | None = None) -> st.SearchStrategy[dict[str, int]]:
    """One size per free dimension letter (shared letters agree), then the derived sizes."""
    top = layer.max_side if max_side is None else max_side
    if not isinstance(min_side, int) or not isinstance(top, int) or not 1 <= min_side <= top:
        raise ValueError(f"need integers 1 <= min_side <= max_side; got min_side={min_side!r}, max_side={top!r}")
    letters = {c: st.integers(min_side, top) for c in letters_of(layer)}
    letters.update({h: st.integers(lo, hi) for h, (lo, hi) in layer.hyper.items()})
    return (
        st.fixed_dictionaries(letters)
        .map(lambda s: complete_sizes(layer, s))
        .filter(lambda s: sizes_valid(layer, s))
    )


def inputs_for(layer: Layer, *, max_side: int | None = None) -> st.SearchStrategy[tuple[dict[str, int], dict[str, Any]]]:
    """(sizes, inputs) with inputs drawn in each argument's domain from one drawn seed."""
    return st.tuples(sizes_for(layer, max_side=max_side), st.integers(0, 2**32 - 1)).map(
        lambda pair: (pair[0], sample_inputs(layer, pair[0], np.random.default_rng(pair[1])))
    )
