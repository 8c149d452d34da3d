"""Where and in what precision the loss is evaluated: the first calls of a check.

The finite differences are taken in float64 when the user's loss accepts float64 copies
(an accurate reference for a gradient computed at the user's dtype); otherwise, and always
in in-place mode, at the parameters' own dtype. The working precision is then read off the
loss values themselves (``numeric.precision``), not off the type they come back in.
"""

from __future__ import annotations

from collections.abc import Callable
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from derivcheck.errors import DerivcheckError, InputError, NonFiniteError, UserFunctionError
from derivcheck.checker.held import HeldGradient, lets_go
from derivcheck.checker.progress import Progress
from derivcheck.report.results import Finding
from derivcheck.numeric.blocks import max_abs_difference
from derivcheck.numeric.regenerated import LARGE_ENTRIES
from derivcheck.numeric.tolerances import NONDETERMINISM_ULPS, largest_magnitude, machine_eps
from derivcheck.checker.user_functions import GuardedFunctions
from derivcheck.checker.parameters import Blocks, ParamSpace


@dataclass
class Setup:
    """The user's functions behind guards, the evaluation point, the gradient there."""

    space: ParamSpace
    fns: GuardedFunctions
    native: Blocks  # the user's values at their own dtype (where the gradient is taken)
    x: Blocks  # the evaluation point of the loss (float64 where accepted)
    g: HeldGradient  # the user's gradient at ``native``, as float64 (let go of between reads, when large)
    f0: float
    evaluated_in: str
    eps_eval: float
    eps_grad: float
    findings: list[Finding] = field(default_factory=list)
    kept: dict[str, int] = field(default_factory=dict)  # checksums of the parameters read without a copy
    # A second gradient call at the point (the state check's) gave the first result to rounding: no third is needed
    # to ask whether the gradient is random.
    grad_repeats: bool = False


def prepare(loss: Callable[[Any], Any], grad: Callable[[Any], Any], params: Any, *, inplace: bool,
            names: tuple[str, str], progress: Progress | None = None) -> Setup:
    """Guard the functions, choose the evaluation point, take the loss and the gradient once."""
    space = ParamSpace.of(params)
    fns = GuardedFunctions(loss, grad, space, loss_name=names[0], grad_name=names[1],
                           inplace_target=params if inplace else None, progress=progress)
    native, kept = _native_blocks(space, params, inplace)
    x, evaluated_in, findings = _evaluation_point(fns, space, params, native, inplace)
    f0 = fns.loss_at(x)
    g = HeldGradient(fns.grad_at(native), lambda: fns.grad_at(native), lets_go(x, native, inplace))
    if g.lean:
        fns.before_call = g.release
    eps_eval = machine_eps(fns.loss_dtype if fns.loss_dtype is not None else next(iter(x.values())).dtype)
    if evaluated_in == "float64" and fns.loss_dtype is not None and fns.loss_dtype != np.float64:
        evaluated_in = f"float64 (the loss returns {fns.loss_dtype})"
    # The gradient is computed at the user's own point: from float32 parameters (float64 data or not) its
    # values carry float32's rounding at best, whatever type they come back in.
    eps_grad = max([machine_eps(fns.grad_dtype if fns.grad_dtype is not None else np.float64),
                    *(machine_eps(v.dtype) for v in native.values())])
    return Setup(space, fns, native, x, g, f0, evaluated_in, eps_eval, eps_grad, findings, kept)


def gradient_spread(fns: GuardedFunctions, finer: Blocks, g: Blocks) -> Blocks | None:
    """The user's gradient at a finer point less the one at their own dtype: the gradient's own rounding at that
    dtype (the finer one's is a thousandth of it or less), which a difference of nearly equal numbers makes far
    larger than a few ulps of its values (a sure softmax's p - 1 in float32 rounds at 6e-8 of 1, a thousandth of
    its 1e-4; a least-squares residual 1e-9 from products of order 1 in float64, 1e-7 of itself). The finer point
    is the float64 evaluation point for lower-precision parameters, and extended precision (where NumPy has a
    finer one) for small float64 ones (``finer_point``). None where the gradient does not take it."""
    dtype = fns.grad_dtype  # the dtype the user's gradient comes back in at their own point
    try:
        high = fns.grad_at(finer)
    except DerivcheckError:  # it raised, or returned the wrong shape or a non-finite value there: no measure
        return None
    finally:
        fns.grad_dtype = dtype
    return {k: g[k] - high[k] for k in g}


# Extended precision is measured for float64 parameters of at most this many entries in all. NumPy's long double
# is the x87 type, unvectorized: a gradient of a two-layer MLP of 10^6 entries took 0.6 s in it, a hundred times
# its float64 loss and gradient, for a rounding that a gradient of so many terms rarely shows above a few ulps.
EXTENDED_MOST_ENTRIES = 1 << 16


def finer_point(native: Blocks, x: Blocks) -> Blocks | None:
    """The point in a finer precision than the user's, where there is one (see ``gradient_spread``)."""
    if any(x[k].dtype != native[k].dtype for k in x):
        return x
    extended = np.finfo(np.longdouble).eps < np.finfo(np.float64).eps
    small = sum(v.size for v in native.values()) <= EXTENDED_MOST_ENTRIES
    if extended and small and all(v.dtype == np.float64 for v in native.values()):
        return {k: v.astype(np.longdouble) for k, v in native.items()}
    return None


def _native_blocks(space: ParamSpace, params: Any, inplace: bool) -> tuple[Blocks, dict[str, int]]:
    """The user's values at their own dtype: copies, except a large contiguous float64 array outside in-place mode,
    read through a read-only view (a copy of 10^7 entries is a loss evaluation's memory); the viewed arrays'
    checksums, to prove at the end that nothing wrote into them meanwhile."""
    native, kept = {}, {}
    for name, a in space.arrays(params).items():
        viewable = (not inplace and isinstance(a, np.ndarray) and a.dtype == np.float64 and a.size >= LARGE_ENTRIES
                    and a.flags.c_contiguous)
        if viewable:
            native[name] = a.view()
            native[name].flags.writeable = False
            kept[name] = _checksum(a)
        else:
            native[name] = np.array(a, dtype=None, copy=True)
    return native, kept


def _checksum(a: np.ndarray) -> int:
    return zlib.crc32(memoryview(a).cast("B"))


def assert_untouched(setup: Setup) -> None:
    """Raise if a parameter read without a copy changed during the check (a function wrote into the user's array
    through a reference other than its argument): every number the check measured would be in doubt."""
    for name, before in setup.kept.items():
        if _checksum(setup.native[name]) != before:
            raise InputError(
                f"parameter {name!r} (shape {setup.native[name].shape}, float64) changed during the check: your loss or "
                f"gradient wrote into the array you passed, not only into its argument (derivcheck reads an array of "
                f"this size without copying it). Pass a copy, or stop the write.")


def loss_differs(setup: Setup) -> list[Finding]:
    """A second loss call at the same point that differs: the loss is random (asked when a check
    fails, is inconclusive or sees more noise than rounding explains)."""
    again = setup.fns.loss_at(setup.x)
    f0 = setup.f0
    if abs(again - f0) <= NONDETERMINISM_ULPS * setup.eps_eval * max(abs(f0), np.finfo(float).tiny):
        return []
    return [Finding(
        "nondeterministic",
        f"{setup.fns.loss_name} is not deterministic: two calls at the same point gave {f0!r} and {again!r}. Fix the "
        f"random seed / dropout mask inside it; differences of a random function say nothing about the gradient.",
        None, "warning")]


def _evaluation_point(fns: GuardedFunctions, space: ParamSpace, params: Any, native: Blocks,
                      inplace: bool) -> tuple[Blocks, str, list[Finding]]:
    dtypes = "/".join(sorted({str(d) for d in space.dtypes}))
    if inplace or all(dt == np.float64 for dt in space.dtypes):
        return native, dtypes, []
    x64 = space.blocks(params, dtype=np.float64)
    try:
        at64 = fns.loss_at(x64)
    except (UserFunctionError, NonFiniteError, InputError):
        return native, dtypes, [Finding(
            "float32",
            f"your loss did not accept float64 copies, so differences were taken in {dtypes}; the step and "
            f"tolerance follow that precision (see the floor column).", None, "warning")]
    if _rounds_inside(fns, x64, native, at64):
        return native, dtypes, [Finding(
            "float32",
            f"your loss accepted float64 copies, but gave exactly the same value with every {dtypes} entry moved by "
            f"a quarter of its own step, and another value a few steps away: it rounds its argument back to {dtypes} "
            f"(an astype inside it?), so differences were taken in {dtypes}; the step and tolerance follow that "
            f"precision (see the floor column).", None, "warning")]
    return x64, "float64", [Finding(
        "float32",
        f"parameters are {dtypes}; your loss accepted float64 copies, so the finite differences were taken in "
        f"float64 (an accurate reference) while the gradient was computed at your dtype.", None, "info")]


# The generator of the signs _rounds_inside moves the entries by (the same for every seed).
_ROUNDING_PROBE_SEED = 0x0F32


def _rounds_inside(fns: GuardedFunctions, x64: Blocks, native: Blocks, value: float) -> bool:
    """Whether a loss that accepts float64 copies rounds its lower-precision parameters back to their own dtype
    inside (``W = p["W"].astype(np.float32)``): its float64 differences would then move in whole steps of that
    dtype, flat below one and jumping at one, and a correct gradient fail. Every such entry is moved by a quarter
    of its own dtype's step (random signs): a loss computing in float64 changes there, by 1e-8 of its slope's
    scale; one that rounds gives exactly ``value``, and changes again a few steps away (``_FARTHER``), where a loss
    flat in them does not. One loss evaluation, up to five more where the first is unchanged. All blocks at once:
    a loss that rounds only some of them is not seen (one evaluation per block would cost a float32 net of four
    blocks a tenth of its check)."""
    rng = np.random.default_rng(_ROUNDING_PROBE_SEED)
    steps = {k: np.spacing(np.abs(v)).astype(np.float64) * np.where(rng.random(v.shape) < 0.5, -1.0, 1.0)
             for k, v in native.items() if v.dtype != np.float64}
    try:
        if fns.loss_at({**x64, **{k: x64[k] + s / 4 for k, s in steps.items()}}) != value:
            return False
        return any(fns.loss_at({**x64, **{k: x64[k] + far * s for k, s in steps.items()}}) != value
                   for far in _FARTHER)
    except DerivcheckError:  # outside the loss's domain there: no evidence either way
        return False


# How many of their own steps _rounds_inside moves the entries, in turn, once a quarter step changed nothing: a loss
# that also computes in float32 rounds its values far above the change a few steps make (a cross-entropy of 1e-3
# from logits of order 10 rounds at 1e-6 there; a sure prediction's of 4e-7, -log p with p on float32's grid, in
# steps of 6e-8, first moves 65,536 steps out, 0.4% of each entry), and a loss flat in its parameters changes at
# none of them.
_FARTHER = (4.0, 64.0, 1024.0, 16384.0, 262144.0)


def regrad_differs(setup: Setup) -> list[Finding]:
    """A second gradient call that differs: the gradient itself is random (asked only on failure)."""
    again = setup.fns.grad_at(setup.native)
    out = []
    for name in setup.space.names:
        diff = max_abs_difference(setup.g[name], again[name])
        if diff > NONDETERMINISM_ULPS * setup.eps_grad * (largest_magnitude(setup.g[name]) + np.finfo(float).tiny):
            out.append(Finding(
                "nondeterministic",
                f"{setup.fns.grad_name} is not deterministic: two calls gave d{name} differing by up to {diff:.3g}.",
                name, "warning"))
    return out
