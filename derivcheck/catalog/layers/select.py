"""Taking one part of a stacked output (the LSTM step's h' and c'), so models can unroll."""

from __future__ import annotations

import numpy as np

from derivcheck.catalog.declarations import Arg, def_layer


def _take(part):
    def backward(dy, s):
        ds = np.zeros_like(s, dtype=float)
        ds[part] = dy
        return {"s": ds}

    return backward


for _part, _name in ((0, "take_first"), (1, "take_second")):
    def_layer(
        _name,
        inputs=(Arg("s", "L N M"),),
        output="N M",
        forward=lambda s, _p=_part: s[_p],
        backward=_take(_part),
        index_form=lambda s, _p=_part: s.S[_p, s.out[0], s.out[1]],
        sizes={"L": 2},
    )
