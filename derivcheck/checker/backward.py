"""``check_backward``: a layer's backward (a vector-Jacobian product) against its forward.

The layer is turned into a scalar loss ``<dy, forward(*inputs)>`` with a random ``dy``
(never all ones) and checked by ``check_gradient``; two probes of its own follow: a VJP
is linear in ``dy`` (a backward that ignores ``dy`` is named), and a failing backward that
passes with a batch of one has a wrong reduction over the batch axis.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from derivcheck.checker.gradient import check_gradient, reject_unknown
from derivcheck.checker.diagnosis import LayerContext
from derivcheck.errors import DerivcheckError, InputError, UserFunctionError
from derivcheck.report.results import Finding, GradientReport
from derivcheck.numeric.tolerances import GRADIENT_ROUNDOFF_ULPS, machine_eps


_UPSTREAM_STREAM = 0xDC_D7


def _input_names(forward: Callable[..., Any], count: int, names: Sequence[str] | None) -> tuple[str, ...]:
    if names is not None:
        if len(names) != count:
            raise InputError(f"names has {len(names)} entries; expected one per input ({count})")
        return tuple(names)
    try:
        params = [
            p.name
            for p in inspect.signature(forward).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        params = []
    return tuple(params[:count]) if len(params) >= count else tuple(f"inputs[{i}]" for i in range(count))


# One sample alone reproduces its row of the batched forward to this relative precision (float64 reorderings).
_SAMPLE_AGREEMENT = 1e-9


def check_backward(
    forward: Callable[..., Any],
    backward: Callable[..., Any],
    inputs: Sequence[np.ndarray],
    *,
    seed: int = 0,
    rtol: float | None = None,
    atol: float | None = None,
    mode: str = "auto",
    directions: int = 1,
    names: Sequence[str] | None = None,
    progress: bool | None = None,
    _probe_batch: bool = True,
    **unknown: Any,
) -> GradientReport:
    """Check a layer's backward (a vector-Jacobian product) against its forward.

    ``forward(*inputs)`` returns an array ``y``; ``backward(dy, *inputs)`` returns one
    gradient per input (``None`` allowed for integer inputs such as labels or indices).
    A forward returning several arrays ``(h, c)`` gets one upstream gradient each, with
    ``backward(dh, dc, *inputs)``. A cs231n-style forward returning ``(out, cache)`` or
    ``(h, c, cache)`` is checked on its outputs, with backward called as
    ``backward(dout, cache)`` or ``backward(dh, dc, cache)``. Inputs that are not float arrays
    (a ``bn_param`` dict, a dropout probability, integer labels) are held fixed and passed as
    fresh copies; backward may return gradients for the float arrays only. The check uses random
    upstream gradients (never all ones).

    Examples
    --------
    >>> import numpy as np, derivcheck as dc
    >>> rng = np.random.default_rng(0)
    >>> x, w = rng.standard_normal((4, 3)), rng.standard_normal((3, 2))
    >>> fwd = lambda x, w: x @ w
    >>> dc.check_backward(fwd, lambda dy, x, w: (dy @ w.T, x.T @ dy), (x, w)).verdict
    'pass'
    >>> r = dc.check_backward(fwd, lambda dy, x, w: (dy @ w.T, dy.T @ x), (x, w))
    Traceback (most recent call last):
    ...
    derivcheck.errors.GradientShapeError: gradient for 'w' has shape (2, 3); expected (3, 2) (the parameter's shape): the gradient is transposed: for Y = X @ W use X.T @ dY
    """
    reject_unknown("check_backward", unknown, ("seed", "rtol", "atol", "mode", "directions", "names", "progress"))
    layer = _Layer.of(forward, backward, inputs, names)
    ys = layer.forward_at({k: v.astype(np.float64) for k, v in layer.params.items()})[0]
    # Its own stream: an upstream gradient equal to the user's default_rng(seed) inputs would be a degenerate test.
    upstream = np.random.default_rng([_UPSTREAM_STREAM, int(seed)])
    dys = tuple(np.asarray(upstream.standard_normal(y.shape)) for y in ys)
    report = check_gradient(
        _pairing(layer, dys), lambda p: layer.backward_at(p, dys), layer.params, rtol=rtol, atol=atol, seed=seed, mode=mode,
        directions=directions, progress=progress, title="backward check", _names=("forward", "backward"),
        _context=_context_of(layer, ys, dys),
    )
    extra = _dy_linearity(layer, dys) + layer.conventions()
    if report.verdict == "fail" and _probe_batch:
        extra += _batch_of_one(forward, backward, layer.inputs, layer.labels, ys[0], seed)
    return _with_findings(report, extra)


def _pairing(layer: _Layer, dys: tuple[np.ndarray, ...]) -> Callable[[dict[str, np.ndarray]], float]:
    """The scalar a VJP is the gradient of: the forward's outputs paired with fixed upstream gradients."""

    def loss(p: dict[str, np.ndarray]) -> float:
        outs = layer.forward_at(p)[0]
        for k, (y, dy) in enumerate(zip(outs, dys)):
            if y.shape != dy.shape:
                raise InputError(f"forward returned shape {y.shape}{layer.which(k)} at a perturbed point; expected {dy.shape}")
        return float(sum(np.sum(dy * y) for y, dy in zip(outs, dys)))

    return loss


def _with_findings(report: GradientReport, extra: list[Finding]) -> GradientReport:
    """The report with the layer's own findings added: errors first, and an error fails the check."""
    if not extra:
        return report
    findings = tuple(sorted((*extra, *report.findings), key=lambda f: f.severity != "error"))
    verdict = "fail" if any(f.severity == "error" for f in extra) else report.verdict
    return GradientReport(**{**report.__dict__, "findings": findings, "verdict": verdict})


class _Layer:
    """A forward/backward pair over differentiable and fixed inputs, with one or several outputs.

    Float arrays are differentiated; everything else (integer labels, a ``bn_param`` dict, a dropout
    probability) is held fixed and passed as a fresh copy on every call, so a forward that updates its
    running statistics in place changes neither the user's objects nor the next call.
    """

    def __init__(self, forward: Callable[..., Any], backward: Callable[..., Any], inputs: list[Any],
                 labels: tuple[str, ...]) -> None:
        self.forward, self.backward, self.inputs, self.labels = forward, backward, inputs, labels
        self.differentiable = [i for i, a in enumerate(inputs) if _is_float_array(a)]
        if not self.differentiable:
            raise InputError("no input is a floating-point array; there is nothing to differentiate")
        self.fixed = {i: copy.deepcopy(a) for i, a in enumerate(inputs) if i not in self.differentiable}
        self.params = {labels[i]: inputs[i] for i in self.differentiable}
        self.arrays = [i for i, a in enumerate(inputs) if isinstance(a, np.ndarray)]
        self.cached = False  # forward returns (*outputs, cache), and backward takes (*douts, cache)
        self.outputs = 1

    @classmethod
    def of(cls, forward: Any, backward: Any, inputs: Any, names: Sequence[str] | None) -> _Layer:
        if not isinstance(inputs, (list, tuple)) or not inputs:
            raise InputError(f"inputs must be a non-empty tuple or list (arrays, and anything held fixed); "
                             f"got {type(inputs).__name__}")
        if not callable(forward) or not callable(backward):
            raise InputError("forward and backward must be callable")
        return cls(forward, backward, list(inputs), _input_names(forward, len(inputs), names))

    def args(self, p: dict[str, np.ndarray]) -> list[Any]:
        return [copy.deepcopy(self.fixed[i]) if i in self.fixed else p[self.labels[i]] for i in range(len(self.inputs))]

    def which(self, k: int) -> str:
        return f" for output {k}" if self.outputs > 1 else ""

    def forward_at(self, p: dict[str, np.ndarray]) -> tuple[tuple[np.ndarray, ...], Any]:
        """``(outputs, cache)``: cache is None for a forward that returns its outputs alone."""
        out = _call(self.forward, "forward", self.args(p))
        outs, cache = _split_outputs(out, _arity(self.backward), len(self.inputs))
        self.cached = self.cached or cache is not _NO_CACHE
        self.outputs = len(outs)
        ys = tuple(np.asarray(y) for y in outs)
        for k, y in enumerate(ys):
            if not np.issubdtype(y.dtype, np.floating):
                raise InputError(f"forward returned dtype {y.dtype}{self.which(k)}; expected a floating array")
        return ys, (None if cache is _NO_CACHE else cache)

    def vjp(self, p: dict[str, np.ndarray], dys: tuple[np.ndarray, ...]) -> tuple[Any, ...]:
        """The backward's gradients, one per input: ``backward(*dys, cache)`` after a forward returning a cache,
        else ``backward(*dys, *inputs)``. A backward may leave out the gradients of the inputs held fixed."""
        fresh = [dy.copy() for dy in dys]
        if self.cached:
            out = _call(self.backward, "backward", [*fresh, self.forward_at(p)[1]])
        else:
            out = _call(self.backward, "backward", [*fresh, *self.args(p)])
        if isinstance(out, np.ndarray) and len(self.differentiable) == 1:
            out = (out,)
        if isinstance(out, (tuple, list)):
            if len(out) == len(self.inputs):
                return tuple(out)
            # (dx, dgamma, dbeta) for (x, gamma, beta, bn_param): one per float array, or one per array
            for positions in (self.differentiable, self.arrays):
                if len(out) == len(positions):
                    full: list[Any] = [None] * len(self.inputs)
                    for i, g in zip(positions, out):
                        full[i] = g
                    return tuple(full)
        got = f"{type(out).__name__} of length {len(out)}" if isinstance(out, (tuple, list)) else type(out).__name__
        raise InputError(f"backward returned {got}; expected a tuple of {len(self.inputs)} gradients (one per input), "
                         f"or of {len(self.differentiable)} (one per float-array input: {', '.join(self.params)})")

    def backward_at(self, p: dict[str, np.ndarray], dys: tuple[np.ndarray, ...]) -> dict[str, Any]:
        out = self.vjp(p, dys)
        return {self.labels[i]: out[i] for i in self.differentiable}

    def conventions(self) -> list[Finding]:
        """What was read from the layer's calling convention, said in the report."""
        dys = ", ".join(f"dy{k}" for k in range(self.outputs)) if self.outputs > 1 else "dout"
        out = []
        if self.cached:
            outs = "(out, cache)" if self.outputs == 1 else f"{self.outputs} outputs and a cache"
            out.append(Finding("convention", f"forward returns {outs}: the outputs were checked, and backward was "
                                             f"called as backward({dys}, cache)", None, "info"))
        elif self.outputs > 1:
            out.append(Finding("convention", f"forward returns {self.outputs} outputs: each got its own random upstream "
                                             f"gradient, and backward was called as backward({dys}, *inputs)", None, "info"))
        if self.fixed:
            held = ", ".join(self.labels[i] for i in self.fixed)
            out.append(Finding("convention", f"held fixed (not floating-point arrays): {held}", None, "info"))
        return out


_NO_CACHE = object()


def _is_float_array(a: Any) -> bool:
    return isinstance(a, np.ndarray) and np.issubdtype(a.dtype, np.floating)


def _arity(fn: Callable[..., Any]) -> int | None:
    """How many positional arguments ``fn`` takes, or None when it takes any number (or cannot be read)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return None
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)


def _split_outputs(out: Any, backward_arity: int | None, inputs: int) -> tuple[tuple[Any, ...], Any]:
    """A forward's return value as (outputs, cache).

    An array is one output. A tuple whose last element is not an array ends in a cache (cs231n's
    ``h, c, cache``). A pair of arrays is ``(out, cache)`` when backward takes two arguments
    (``backward(dout, cache)``), as before; otherwise a tuple of arrays is several outputs.
    """
    if not isinstance(out, tuple):
        return (out,), _NO_CACHE
    if not out:
        raise InputError("forward returned an empty tuple; expected an array or a tuple of arrays")
    if not isinstance(out[-1], np.ndarray) and len(out) >= 2 and all(isinstance(o, np.ndarray) for o in out[:-1]):
        return tuple(out[:-1]), out[-1]
    if len(out) == 2 and backward_arity == 2 and inputs != 1:
        return (out[0],), out[1]
    bad = [k for k, o in enumerate(out) if not isinstance(o, np.ndarray)]
    if bad:
        raise InputError(f"forward returned a tuple with a {type(out[bad[0]]).__name__} at position {bad[0]}; expected "
                         f"arrays (several outputs), optionally followed by one cache")
    return tuple(out), _NO_CACHE


def _context_of(layer: _Layer, ys: tuple[np.ndarray, ...], dys: tuple[np.ndarray, ...]) -> LayerContext:
    """The layer's tensors for the diagnosis: float inputs by name, the output ``y`` and the upstream ``dy``
    (for a single output: with several, no one pair stands for the layer)."""
    tensors = {layer.labels[i]: layer.inputs[i].astype(np.float64) for i in layer.differentiable}
    if len(ys) == 1:
        tensors.update({"y": np.asarray(ys[0], dtype=np.float64), "dy": dys[0]})
    integers = {layer.labels[i]: layer.inputs[i] for i in layer.fixed
                if isinstance(layer.inputs[i], np.ndarray) and np.issubdtype(layer.inputs[i].dtype, np.integer)}
    y = ys[0]
    first = layer.inputs[layer.arrays[0]] if layer.arrays else None
    batch = y.shape[0] if y.ndim and first is not None and (first.ndim == 0 or first.shape[0] == y.shape[0]) else None
    return LayerContext(tensors, integers, batch if batch and batch > 1 else None)


def _call(fn: Callable[..., Any], name: str, args: list[Any]) -> Any:
    try:
        return fn(*args)
    except DerivcheckError:
        raise
    except Exception as exc:
        raise UserFunctionError(f"{name} raised {type(exc).__name__}: {exc}") from exc


def _batch_of_one(
    forward: Callable[..., Any], backward: Callable[..., Any], arrays: list[Any], labels: tuple[str, ...], y0: np.ndarray, seed: int
) -> list[Finding]:
    """A failing backward that passes on one sample has a wrong batch reduction."""
    n = y0.shape[0] if y0.ndim else 0
    batched = [i for i, a in enumerate(arrays) if isinstance(a, np.ndarray) and a.ndim and a.shape[0] == n]
    if n < 2 or not batched or len(batched) == sum(isinstance(a, np.ndarray) for a in arrays):
        return []  # no batch axis to slice, or no parameter shared across the batch
    sliced = [a[:1] if i in batched else a for i, a in enumerate(arrays)]
    if not _samples_independent(forward, arrays, batched, y0):
        return []  # a layer that couples its samples (batch norm) is another layer at batch size 1: no evidence
    try:
        one = check_backward(forward, backward, sliced, seed=seed, names=labels, _probe_batch=False)
    except DerivcheckError:
        return []
    if one.verdict != "pass":
        return []
    return [
        Finding(
            "batch_size_one",
            f"the backward passes with a batch of 1 but fails with a batch of {n}: the reduction over the batch "
            f"axis is wrong (a parameter's gradient must sum the per-sample contributions over axis 0; a mean, "
            f"the first sample only, or an overwrite instead of += all look right at batch size 1).",
            None,
        )
    ]


def _samples_independent(forward: Callable[..., Any], arrays: list[np.ndarray], batched: list[int], y0: np.ndarray) -> bool:
    """Whether the forward treats each sample on its own: the first and last samples alone give their rows of y.

    Only then does a check at batch size 1 test the same function, so that passing there blames the reduction.
    """
    for k in (0, y0.shape[0] - 1):
        alone = [a[k:k + 1] if i in batched else copy.deepcopy(a) for i, a in enumerate(arrays)]  # a bn_param dict stays the user's
        try:
            y = np.asarray(_first_output(forward(*alone)), dtype=np.float64)
        except Exception:  # noqa: BLE001 - a forward that refuses one sample gives no evidence either way
            return False
        row = np.asarray(y0[k:k + 1], dtype=np.float64)
        if y.shape != row.shape or not np.allclose(y, row, rtol=_SAMPLE_AGREEMENT, atol=_SAMPLE_AGREEMENT * (np.max(np.abs(row)) + 1e-300)):
            return False
    return True


def _first_output(out: Any) -> Any:
    return out[0] if isinstance(out, tuple) else out  # cs231n's (out, cache)


def _dy_linearity(layer: _Layer, dys: tuple[np.ndarray, ...]) -> list[Finding]:
    """A VJP is linear in dy: backward(2 dy) = 2 backward(dy). Catches a backward that ignores dy."""
    p = {k: v.copy() for k, v in layer.params.items()}
    try:
        one, two = layer.vjp(p, dys), layer.vjp(p, tuple(2.0 * dy for dy in dys))
    except DerivcheckError:  # already reported by the main check if it matters
        return []
    out = []
    for i in layer.differentiable:
        a, b = np.asarray(one[i], dtype=np.float64), np.asarray(two[i], dtype=np.float64)
        if a.shape != b.shape:
            continue
        scale = float(np.max(np.abs(a))) if a.size else 0.0
        if scale > 0 and np.allclose(a, b, rtol=0, atol=GRADIENT_ROUNDOFF_ULPS * machine_eps(a.dtype) * scale):
            out.append(
                Finding(
                    "ignores_dy",
                    f"backward returns the same d{layer.labels[i]} when dy is doubled: it ignores the upstream "
                    f"gradient (multiply by dy - the chain rule's outer factor).",
                    layer.labels[i],
                )
            )
    return out
