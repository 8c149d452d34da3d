"""Calling the user's functions safely: read-only views or fresh copies, mutation detection, clear errors.

derivcheck never hands its own arrays to user code writeable. Each call first gets read-only
views (no copy: at 10^7 entries a copy per call would double the check's memory). A function
that writes into its input (``w -= lr * dw`` inside a loss, ``x[x < 0] = 0`` inside a
backward) meets NumPy's read-only error; from then on it gets copies, compared with the
originals afterwards, and the write is reported instead of corrupting the check.

In-place mode serves the idiom ``f = lambda w: net.loss(X, y)`` (a loss that reads the
live arrays of ``net.params`` and ignores its argument): each point is written into the
user's own arrays, the function is called, and the arrays get their original bits back,
also when the function raises.

The cs231n return conventions are accepted: a loss returning ``(loss, grads)`` is read for
its first element, a gradient returning ``(loss, grad)`` for its second.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from derivcheck.errors import DerivcheckError, InputError, NonFiniteError, UserFunctionError
from derivcheck.checker.progress import Progress
from derivcheck.checker.parameters import Blocks, ParamSpace, tree_flatten
from derivcheck.numeric.blocks import CHUNK
from derivcheck.numeric.regenerated import LARGE_ENTRIES


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
    inplace_target: Any = None  # the user's own params, perturbed in place when set
    conventions: set[str] = field(default_factory=set)  # "loss returns (loss, grads)", ...
    progress: Progress | None = None  # told of every call, for long checks
    checked: Blocks | None = None  # the first point the loss was finite at: where non-finite values are placed
    writes_inputs: bool = False  # a function wrote into a read-only view: it gets copies from then on
    before_call: Callable[[], None] | None = None  # run before each call (a large gradient is let go of: ``held``)

    def loss_at(self, blocks: Blocks) -> float:
        """The loss at ``blocks`` as a float; raises a named error on bad output."""
        self.loss_calls += 1
        if self.before_call is not None:
            self.before_call()
        if self.progress is not None:
            self.progress.tick(self.loss_calls, self.grad_calls)
        out = self._call(self.loss, self.loss_name, blocks)
        if _is_pair(out) and _is_scalar(out[0]) and not _is_scalar(out[1]):
            self.conventions.add(f"{self.loss_name} returns (loss, grads): its first element was used as the loss")
            out = out[0]
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
                f"{self.loss_name} returned {value} {self._where(blocks)}; expected a finite number "
                f"(log of 0? exp overflow? division by zero?)"
            )
        if self.checked is None:  # derivcheck's own arrays, never written: kept by reference
            self.checked = dict(blocks)
        return value

    def _where(self, blocks: Blocks) -> str:
        """Which point a non-finite value came from: the checked one, or one the finite differences moved to."""
        if self.checked is None:
            return "at the checked point"
        moved = {k: float(np.max(np.abs(blocks[k].astype(np.float64) - self.checked[k].astype(np.float64)), initial=0.0))
                 for k in self.checked if k in blocks}
        if not any(moved.values()):
            return "at the checked point"
        name = max(moved, key=lambda k: moved[k])
        return (f"at a perturbed point near the checked one ({name!r} moved by up to {moved[name]:.2g}; the loss is "
                f"finite at the checked point itself, so its domain ends within a finite-difference step of it)")

    def grad_at(self, blocks: Blocks) -> Blocks:
        """The user's gradient at ``blocks`` as float64 blocks; raises a named error on bad output."""
        self.grad_calls += 1
        if self.before_call is not None:
            self.before_call()
        if self.progress is not None:
            self.progress.tick(self.loss_calls, self.grad_calls)
        out = self._call(self.grad, self.grad_name, blocks)
        if _is_pair(out) and _is_scalar(out[0]) and not self._fits(out):
            self.conventions.add(f"{self.grad_name} returns (loss, grad): its second element was used as the gradient")
            out = out[1]
        keep = _holders(out) == _SOLE and _keepable(out, blocks)  # counted first: an argument list holds it too
        grads = self.space.gradient_blocks(out, self.grad_name, keep=keep)
        dtypes = [np.asarray(g).dtype for g in _leaves(out)]
        floats = [d for d in dtypes if np.issubdtype(d, np.floating)]
        if floats:
            self.grad_dtype = max(floats, key=lambda d: np.finfo(d).eps)
        for name, g in grads.items():
            first = _first_non_finite(g)
            if first is not None:
                where = tuple(int(i) for i in np.unravel_index(first, g.shape))
                raise NonFiniteError(
                    f"{self.grad_name} returned a non-finite value for {name!r} at index {where} "
                    f"({g.reshape(-1)[first]}); expected finite numbers"
                )
        return grads

    def _fits(self, out: Any) -> bool:
        """Whether a pair is itself the gradient (params that are a pair of arrays)."""
        if self.space.kind not in ("list", "tuple") or len(self.space.names) != 2:
            return False
        return all(np.shape(o) == s for o, s in zip(out, self.space.shapes))

    def _call(self, fn: Callable[[Any], Any], fname: str, blocks: Blocks) -> Any:
        if self.inplace_target is not None:
            return self._call_inplace(fn, fname, blocks)
        if not self.writes_inputs:
            try:
                return fn(self.space.to_user({k: _read_only(v) for k, v in blocks.items()}))
            except DerivcheckError:
                raise
            except Exception as exc:  # noqa: BLE001 - anything the user's code raises
                # NumPy and Cython say "read-only", Numba "readonly": the function writes into its input.
                if not any(word in str(exc).lower() for word in ("read-only", "readonly")):
                    raise _failed(fname, exc, self.space) from exc
                self.writes_inputs = True  # called again below with copies, where the write is seen and reported
        copies = {k: v.copy() for k, v in blocks.items()}
        try:
            out = fn(self.space.to_user(copies))
        except DerivcheckError:
            raise
        except Exception as exc:
            raise _failed(fname, exc, self.space) from exc
        for name, before in blocks.items():
            after = copies[name]
            if not np.array_equal(after, before):
                change = float(np.max(np.abs(after - before)))
                self.mutations[f"{fname}:{name}"] = change
        return out


    def _call_inplace(self, fn: Callable[[Any], Any], fname: str, blocks: Blocks) -> Any:
        """Write ``blocks`` into the user's arrays, call, restore their original bits."""
        arrays = self.space.arrays(self.inplace_target)
        for name, a in arrays.items():
            if not a.flags.writeable:
                raise InputError(
                    f"inplace=True perturbs your own arrays, but {name!r} (shape {a.shape}, dtype {a.dtype}) is "
                    f"read-only; expected a writeable array (pass a copy, or np.require(a, requirements='W'))")
        saved = {name: a.copy() for name, a in arrays.items()}
        try:
            for name, a in arrays.items():
                np.copyto(a, blocks[name], casting="unsafe")
            written = {name: a.copy() for name, a in arrays.items()}
            try:
                out = fn(self.inplace_target)
            except DerivcheckError:
                raise
            except Exception as exc:
                raise UserFunctionError(f"{fname} raised {type(exc).__name__}: {exc}") from exc
            for name, a in arrays.items():
                if not np.array_equal(a, written[name]):
                    self.mutations[f"{fname}:{name}"] = float(np.max(np.abs(a - written[name])))
            return _detached(out)
        finally:
            for name, a in arrays.items():
                np.copyto(a, saved[name])


def _first_non_finite(g: np.ndarray) -> int | None:
    """The flat index of the first non-finite entry, read a chunk at a time (a mask of 10^7 entries is 10 MB)."""
    flat = g.reshape(-1)
    for lo in range(0, flat.size, CHUNK):
        bad = np.flatnonzero(~np.isfinite(flat[lo:lo + CHUNK]))
        if bad.size:
            return lo + int(bad[0])
    return None


def _holders(a: Any) -> int:
    """What the interpreter counts as references to ``a``, called with a local variable of the caller."""
    return sys.getrefcount(a) if hasattr(sys, "getrefcount") else sys.maxsize


def _held_by_one_local() -> int:
    out = np.empty(0)  # referred to by this name alone, passed as ``grad_at`` passes the user's result
    return _holders(out)


_SOLE = _held_by_one_local()


def _keepable(out: Any, blocks: Blocks) -> bool:
    """Whether a returned gradient, referred to by the caller's one name alone, can be kept as it is: one large
    float64 array owning its memory, apart from every point handed to the function (so no buffer the user's code
    writes again at the next call, and no view of one). A copy of 10^7 entries takes as long as half a gradient
    evaluation, and holds its memory twice while made."""
    return (type(out) is np.ndarray and out.dtype == np.float64 and out.size >= LARGE_ENTRIES and out.base is None
            and out.flags.c_contiguous and not any(np.may_share_memory(out, b) for b in blocks.values()))


def _read_only(a: np.ndarray) -> np.ndarray:
    """A view of ``a`` that NumPy refuses to write into (a NumPy scalar, immutable already, as it is)."""
    if not isinstance(a, np.ndarray):
        return a
    view = a.view()
    view.flags.writeable = False
    return view


def _failed(fname: str, exc: Exception, space: ParamSpace) -> UserFunctionError:
    return UserFunctionError(f"{fname} raised {type(exc).__name__}: {exc} (called with parameters of shapes "
                             f"{dict(zip(space.names, space.shapes))})")


def _detached(out: Any) -> Any:
    """Copies of returned arrays: a returned view of a parameter must not change on restore."""
    if isinstance(out, np.ndarray):
        return out.copy()
    if isinstance(out, dict):
        return {k: _detached(v) for k, v in out.items()}
    if type(out) in (list, tuple):  # not namedtuples: those are returned as they are
        return type(out)(_detached(v) for v in out)
    return out


def _is_pair(out: Any) -> bool:
    return isinstance(out, tuple) and len(out) == 2


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (int, float, np.number)) or (isinstance(value, np.ndarray) and value.size == 1 and value.ndim == 0)


def _leaves(out: Any) -> list[Any]:
    return [v for _, v in tree_flatten(out)[0]]  # nested structures too
