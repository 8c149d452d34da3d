"""Parameters as an array, a dict of arrays or a list/tuple of arrays, seen as a flat list."""

from __future__ import annotations

from typing import Any

import numpy as np


def names_and_arrays(params: Any) -> list[tuple[str, np.ndarray]]:
    if isinstance(params, np.ndarray):
        return [("params", params)]
    if isinstance(params, dict):
        return [(str(k), v) for k, v in params.items()]
    if isinstance(params, (list, tuple)):
        return [(f"[{i}]", v) for i, v in enumerate(params)]
    raise TypeError(f"params must be an array, a dict of arrays or a list/tuple of arrays, not {type(params).__name__}")


def rebuild(params: Any, arrays: list[np.ndarray]) -> Any:
    """The same structure as ``params`` holding ``arrays`` (in names_and_arrays order)."""
    if isinstance(params, np.ndarray):
        return arrays[0]
    if isinstance(params, dict):
        return dict(zip(params.keys(), arrays))
    return type(params)(arrays) if isinstance(params, tuple) else list(arrays)


def fresh_copy(params: Any) -> Any:
    """A copy the user's code may touch freely: derivcheck never hands out the user's arrays."""
    return rebuild(params, [np.array(a, dtype=np.float64) for _, a in names_and_arrays(params)])


def gradient_arrays(params: Any, grad: Any) -> list[np.ndarray | None]:
    """The user's gradient, one array per parameter; None where it is missing or misshapen."""
    if isinstance(grad, tuple) and len(grad) == 2 and np.ndim(grad[0]) == 0 and not isinstance(params, tuple):
        grad = grad[1]  # a gradient returning (loss, grad)
    out: list[np.ndarray | None] = []
    for i, (name, array) in enumerate(names_and_arrays(params)):
        try:
            if isinstance(params, np.ndarray):
                value = grad
            elif isinstance(params, dict):
                value = grad[name] if name in grad else grad[list(params.keys())[i]]
            else:
                value = grad[i]
            value = np.asarray(value, dtype=np.float64)
        except (KeyError, IndexError, TypeError, ValueError):
            value = None
        out.append(value if value is not None and value.shape == np.shape(array) else None)
    return out


def frozen_copies(params: Any) -> list[np.ndarray]:
    return [np.array(a, copy=True) for _, a in names_and_arrays(params)]


def unchanged(params: Any, copies: list[np.ndarray]) -> bool:
    """Bit for bit: the same bytes, dtype and shape as before."""
    return all(
        a.dtype == c.dtype and a.shape == c.shape and a.tobytes() == c.tobytes()
        for (_, a), c in zip(names_and_arrays(params), copies)
    )
