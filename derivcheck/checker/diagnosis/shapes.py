"""Why a gradient might have the wrong shape: hints for the shape error's message."""

from __future__ import annotations

import numpy as np


def shape_hint(got: tuple[int, ...], expected: tuple[int, ...]) -> str | None:
    """Why a gradient of shape ``got`` might be meant to have shape ``expected``, or None.

    Examples
    --------
    >>> shape_hint((8, 3), (3,))
    'sum over axis 0 (the batch axis): d = dy.sum(axis=0) has shape (3,)'
    >>> shape_hint((1, 3), (3,))
    'drop the leading axis of length 1 (a sum with keepdims=True): d.reshape(3) or sum without keepdims'
    """
    got, expected = tuple(got), tuple(expected)
    if len(got) == len(expected) + 1 and got[0] == 1 and got[1:] == expected:
        # Already summed, with keepdims=True: telling the user to sum again would be wrong.
        return (f"drop the leading axis of length 1 (a sum with keepdims=True): d.reshape({', '.join(map(str, expected))}) "
                f"or sum without keepdims")
    if len(got) == len(expected) + 1 and got[-1] == 1 and got[:-1] == expected:
        return "drop the trailing axis of length 1 (a sum with keepdims=True over the last axis?)"
    if len(got) == len(expected) + 1 and got[1:] == expected:
        return f"sum over axis 0 (the batch axis): d = dy.sum(axis=0) has shape {expected}"
    if len(got) == len(expected) + 1 and got[:-1] == expected:
        return "sum over the last axis"
    if len(got) == len(expected) == 2 and got == expected[::-1]:
        return "the gradient is transposed: for Y = X @ W use X.T @ dY"
    if int(np.prod(got)) == int(np.prod(expected)):
        return f"same number of entries: reshape to {expected}?"
    return None
