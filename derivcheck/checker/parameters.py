"""The parameter space: named float64 blocks, flatten/unflatten, inner products.

A user's parameters are one array, a dict of arrays or a list/tuple of arrays; inside
derivcheck they are always an ordered dict ``name -> float64 array`` so that a report
can say ``dw[3, 7]`` rather than "argument 1".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from derivcheck.numeric.blocks import Blocks

from derivcheck.checker.diagnosis.shapes import shape_hint
from derivcheck.errors import GradientShapeError, InputError, IntegerDtypeError


@dataclass(frozen=True)
class ParamSpace:
    """Shapes, dtypes and the user's container kind of a set of parameters."""

    kind: str  # "array", "dict", "list" or "tuple"
    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[np.dtype, ...]
    keys: tuple[Any, ...]

    @classmethod
    def of(cls, params: Any, what: str = "params") -> ParamSpace:
        """Describe ``params``; raise a clear error for anything that is not float arrays."""
        if isinstance(params, np.ndarray):
            kind, keys, arrays = "array", (None,), [params]
            names: list[str] = [what]
        elif isinstance(params, Mapping):
            if not params:
                raise InputError(f"{what} is an empty dict; expected at least one array")
            kind, keys, arrays = "dict", tuple(params), list(params.values())
            names = [str(k) for k in params]
        elif isinstance(params, (list, tuple)):
            if not params:
                raise InputError(f"{what} is an empty {type(params).__name__}; expected at least one array")
            kind = "list" if isinstance(params, list) else "tuple"
            keys, arrays = tuple(range(len(params))), list(params)
            names = [f"{what}[{i}]" for i in range(len(params))]
        else:
            raise InputError(
                f"{what} must be a numpy array, a dict of arrays or a list/tuple of arrays; "
                f"got {type(params).__name__}"
            )
        for name, a in zip(names, arrays):
            if not isinstance(a, np.ndarray):
                raise InputError(f"{what} entry {name!r} must be a numpy array; got {type(a).__name__}")
            if not np.issubdtype(a.dtype, np.floating):
                raise IntegerDtypeError(
                    f"parameter {name!r} has dtype {a.dtype}; a gradient check needs a floating "
                    f"dtype (float64 or float32). Cast it with .astype(float), or keep integer data "
                    f"(labels, indices) out of the parameters by closing over it in the loss."
                )
            if a.size == 0:
                raise InputError(f"parameter {name!r} is empty (shape {a.shape}); nothing to check")
            if not np.all(np.isfinite(a)):
                raise InputError(f"parameter {name!r} contains NaN or infinity; expected finite values")
        return cls(kind, tuple(names), tuple(a.shape for a in arrays), tuple(a.dtype for a in arrays), keys)

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(int(np.prod(s, dtype=np.int64)) for s in self.shapes)

    def blocks(self, params: Any, dtype: Any = np.float64) -> Blocks:
        """Fresh copies of the user's arrays as an ordered dict, cast to ``dtype``."""
        values = [params] if self.kind == "array" else [params[k] for k in self.keys]
        return {n: np.array(v, dtype=dtype, copy=True) for n, v in zip(self.names, values)}

    def arrays(self, params: Any) -> dict[str, np.ndarray]:
        """The user's own arrays (no copies), by block name: what in-place mode perturbs."""
        values = [params] if self.kind == "array" else [params[k] for k in self.keys]
        return dict(zip(self.names, values))

    def to_user(self, blocks: Blocks) -> Any:
        """Rebuild the user's container from blocks (arrays are passed as given)."""
        values = [blocks[n] for n in self.names]
        if self.kind == "array":
            return values[0]
        if self.kind == "dict":
            return dict(zip(self.keys, values))
        return list(values) if self.kind == "list" else tuple(values)

    def gradient_blocks(self, grad: Any, source: str = "grad") -> Blocks:
        """Read the user's gradient into blocks, naming any structural or shape mistake."""
        if self.kind == "array":
            if isinstance(grad, (list, tuple)) and len(grad) == 1:
                grad = grad[0]
            if isinstance(grad, Mapping):
                raise GradientShapeError(
                    f"{source} returned a dict with keys {list(grad)}; expected one array of shape {self.shapes[0]} "
                    f"(the parameters are one array)"
                )
            values = {self.names[0]: grad}
        elif self.kind == "dict":
            if not isinstance(grad, Mapping):
                raise GradientShapeError(
                    f"{source} returned {type(grad).__name__}; expected a dict with keys {list(self.keys)}"
                )
            missing = [k for k in self.keys if k not in grad]
            extra = [k for k in grad if k not in self.keys]
            if missing or extra:
                parts = ([f"without key(s) {missing}"] if missing else []) + ([f"with extra key(s) {extra}"] if extra else [])
                raise GradientShapeError(
                    f"{source} returned a dict {' and '.join(parts)}; expected exactly the parameters' keys {list(self.keys)}"
                )
            values = {n: grad[k] for n, k in zip(self.names, self.keys)}
        else:
            if not isinstance(grad, Sequence) or isinstance(grad, (str, bytes)) or len(grad) != len(self.keys):
                got = f"{type(grad).__name__} of length {len(grad)}" if isinstance(grad, Sequence) else type(grad).__name__
                if isinstance(grad, Mapping):
                    got = f"a dict with keys {list(grad)}"
                raise GradientShapeError(
                    f"{source} returned {got}; expected a {self.kind} of {len(self.keys)} arrays"
                )
            values = dict(zip(self.names, grad))
        out: Blocks = {}
        for name, shape in zip(self.names, self.shapes):
            g = values[name]
            if g is None:
                raise GradientShapeError(f"{source} returned None for parameter {name!r}; expected shape {shape}")
            try:
                arr = np.asarray(g)
            except Exception as exc:  # noqa: BLE001 - anything the user returned
                raise GradientShapeError(f"{source} for {name!r} is not array-like: {exc}") from exc
            if arr.shape != shape:
                hint = shape_hint(arr.shape, shape)
                raise GradientShapeError(
                    f"gradient for {name!r} has shape {arr.shape}; expected {shape} (the parameter's shape)"
                    + (f": {hint}" if hint else ""),
                    finding=hint,
                )
            if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
                raise GradientShapeError(f"gradient for {name!r} has dtype {arr.dtype}; expected a real float array")
            out[name] = arr.astype(np.float64, copy=True)
        return out


def flat_index(shape: tuple[int, ...], flat: int) -> tuple[int, ...]:
    """Turn a flat index into the array index a user would write."""
    return tuple(int(i) for i in np.unravel_index(int(flat), shape)) if shape else ()
