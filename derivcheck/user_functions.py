"""Calling the user's functions safely: fresh copies, mutation detection, clear errors.

derivcheck never hands its own arrays to user code: each call gets copies, and the copies
are compared with the originals afterwards, so an in-place update (``w -= lr * dw`` inside
a loss, ``x[x < 0] = 0`` inside a backward) is reported instead of corrupting the check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from derivcheck.errors import DerivcheckError, InputError, NonFiniteError, UserFunctionError
from derivcheck.vspace import Blocks, ParamSpace


@dataclass
class GuardedFunctions:
    """The user's ``loss`` and ``grad`` behind copies, counters and error translation."""

    loss: Callable[[Any], Any]
    grad: Callable[[Any], Any]
    space: ParamSpace
    loss_name: str = "loss"
    grad_name: str = "grad"
    loss_calls: int = 0
    grad_calls: int = 0
    mutations: dict[str, float] = field(default_factory=dict)
    loss_dtype: np.dtype | None = None
    grad_dtype: np.dtype | None = None

    def loss_at(self, blocks: Blocks) -> float:
        """The loss at ``blocks`` as a float; raises a named error on bad output."""
        self.loss_calls += 1
        out = self._call(self.loss, self.loss_name, blocks)
        try:
            arr = np.asarray(out)
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"{self.loss_name} returned {type(out).__name__}; expected a scalar") from exc
        if arr.size != 1:
            raise InputError(
                f"{self.loss_name} returned an array of shape {arr.shape}; expected a scalar "
                f"(reduce it with .sum() or .mean())"
            )
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise InputError(f"{self.loss_name} returned dtype {arr.dtype}; expected a real number")
        if isinstance(out, (np.ndarray, np.floating)) and np.issubdtype(arr.dtype, np.floating):
            self.loss_dtype = arr.dtype
        value = float(arr.reshape(()))
        if not np.isfinite(value):
            raise NonFiniteError(
                f"{self.loss_name} returned {value} at the checked point; expected a finite number "
                f"(log of 0? exp overflow? division by zero?)"
            )
        return value

    def grad_at(self, blocks: Blocks) -> Blocks:
        """The user's gradient at ``blocks`` as float64 blocks; raises a named error on bad output."""
        self.grad_calls += 1
        out = self._call(self.grad, self.grad_name, blocks)
        grads = self.space.gradient_blocks(out, self.grad_name)
        dtypes = [np.asarray(g).dtype for g in _leaves(out)]
        floats = [d for d in dtypes if np.issubdtype(d, np.floating)]
        if floats:
            self.grad_dtype = max(floats, key=lambda d: np.finfo(d).eps)
        for name, g in grads.items():
            bad = ~np.isfinite(g)
            if bad.any():
                where = tuple(int(i) for i in np.argwhere(bad)[0])
                raise NonFiniteError(
                    f"{self.grad_name} returned a non-finite value for {name!r} at index {where} "
                    f"({g[bad][0]}); expected finite numbers"
                )
        return grads

    def _call(self, fn: Callable[[Any], Any], fname: str, blocks: Blocks) -> Any:
        copies = {k: v.copy() for k, v in blocks.items()}
        try:
            out = fn(self.space.to_user(copies))
        except DerivcheckError:
            raise
        except Exception as exc:
            raise UserFunctionError(
                f"{fname} raised {type(exc).__name__}: {exc} (called with parameters of shapes "
                f"{dict(zip(self.space.names, self.space.shapes))})"
            ) from exc
        for name, before in blocks.items():
            after = copies[name]
            if not np.array_equal(after, before):
                change = float(np.max(np.abs(after - before)))
                self.mutations[f"{fname}:{name}"] = change
        return out


def _leaves(out: Any) -> list[Any]:
    if isinstance(out, dict):
        return list(out.values())
    if isinstance(out, (list, tuple)):
        return list(out)
    return [out]
