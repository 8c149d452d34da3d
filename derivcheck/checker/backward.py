"""``check_backward``: a layer's backward (a vector-Jacobian product) against its forward.

The layer is turned into a scalar loss ``<dy, forward(*inputs)>`` with a random ``dy``
(never all ones) and checked by ``check_gradient``; two probes of its own follow: a VJP
is linear in ``dy`` (a backward that ignores ``dy`` is named), and a failing backward that
passes with a batch of one has a wrong reduction over the batch axis.
"""

from __future__ import annotations

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
    A cs231n-style forward returning ``(out, cache)`` is checked on ``out``, with its
    backward called as ``backward(dout, cache)``. The check uses a random upstream
    gradient ``dy`` (never all ones).

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
    y0 = layer.forward_at({k: v.astype(np.float64) for k, v in layer.params.items()})[0]
    # Its own stream: an upstream gradient equal to the user's default_rng(seed) inputs would be a degenerate test.
    dy = np.asarray(np.random.default_rng([_UPSTREAM_STREAM, int(seed)]).standard_normal(y0.shape))

    def loss(p: dict[str, np.ndarray]) -> float:
        y = layer.forward_at(p)[0]
        if y.shape != dy.shape:
            raise InputError(f"forward returned shape {y.shape} at a perturbed point; expected {dy.shape}")
        return float(np.sum(dy * y))

    report = check_gradient(
        loss, lambda p: layer.backward_at(p, dy), layer.params, rtol=rtol, atol=atol, seed=seed, mode=mode,
        directions=directions, progress=progress, title="backward check", _names=("forward", "backward"),
        _context=_context_of(layer, y0, dy),
    )
    extra = _dy_linearity(layer, dy)
    if layer.cached:
        extra.append(Finding("convention", "forward returns (out, cache): out was checked, and backward was called "
                                           "as backward(dout, cache)", None, "info"))
    if report.verdict == "fail" and _probe_batch:
        extra += _batch_of_one(forward, backward, layer.arrays, layer.labels, y0, seed)
    return _with_findings(report, extra)


def _with_findings(report: GradientReport, extra: list[Finding]) -> GradientReport:
    """The report with the layer's own findings added: errors first, and an error fails the check."""
    if not extra:
        return report
    findings = tuple(sorted((*extra, *report.findings), key=lambda f: f.severity != "error"))
    verdict = "fail" if any(f.severity == "error" for f in extra) else report.verdict
    return GradientReport(**{**report.__dict__, "findings": findings, "verdict": verdict})


class _Layer:
    """A forward/backward pair over fixed and differentiable inputs; cs231n's (out, cache) accepted."""

    def __init__(self, forward: Callable[..., Any], backward: Callable[..., Any], arrays: list[np.ndarray],
                 labels: tuple[str, ...]) -> None:
        self.forward, self.backward, self.arrays, self.labels = forward, backward, arrays, labels
        self.differentiable = [i for i, a in enumerate(arrays) if np.issubdtype(a.dtype, np.floating)]
        if not self.differentiable:
            raise InputError("no input has a floating dtype; there is nothing to differentiate")
        self.fixed = {i: arrays[i].copy() for i in range(len(arrays)) if i not in self.differentiable}
        self.params = {labels[i]: arrays[i] for i in self.differentiable}
        self.cached = False

    @classmethod
    def of(cls, forward: Any, backward: Any, inputs: Any, names: Sequence[str] | None) -> _Layer:
        if not isinstance(inputs, (list, tuple)) or not inputs:
            raise InputError(f"inputs must be a non-empty tuple or list of arrays; got {type(inputs).__name__}")
        if not callable(forward) or not callable(backward):
            raise InputError("forward and backward must be callable")
        for i, a in enumerate(inputs):
            if not isinstance(a, np.ndarray):
                raise InputError(f"inputs[{i}] must be a numpy array; got {type(a).__name__}")
        return cls(forward, backward, list(inputs), _input_names(forward, len(inputs), names))

    def args(self, p: dict[str, np.ndarray]) -> list[np.ndarray]:
        return [self.fixed[i] if i in self.fixed else p[self.labels[i]] for i in range(len(self.arrays))]

    def forward_at(self, p: dict[str, np.ndarray]) -> tuple[np.ndarray, Any]:
        """``(out, cache)``: cache is None for a forward that returns ``out`` alone."""
        out = _call(self.forward, "forward", self.args(p))
        cache = None
        if isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], np.ndarray):
            out, cache = out
            self.cached = True
        y = np.asarray(out)
        if not np.issubdtype(y.dtype, np.floating):
            raise InputError(f"forward returned dtype {y.dtype}; expected a floating array")
        return y, cache

    def vjp(self, p: dict[str, np.ndarray], dy: np.ndarray) -> tuple[Any, ...]:
        """The backward's raw output: ``backward(dy, cache)`` after an (out, cache) forward, else ``backward(dy, *inputs)``."""
        args = self.args(p)
        if self.cached:
            out = _call(self.backward, "backward", [dy.copy(), self.forward_at(p)[1]])
        else:
            out = _call(self.backward, "backward", [dy.copy(), *args])
        if isinstance(out, np.ndarray) and len(self.arrays) == 1:
            out = (out,)
        if not isinstance(out, (tuple, list)) or len(out) != len(self.arrays):
            got = f"{type(out).__name__} of length {len(out)}" if isinstance(out, (tuple, list)) else type(out).__name__
            raise InputError(f"backward returned {got}; expected a tuple of {len(self.arrays)} gradients (one per input)")
        return tuple(out)

    def backward_at(self, p: dict[str, np.ndarray], dy: np.ndarray) -> dict[str, Any]:
        out = self.vjp(p, dy)
        return {self.labels[i]: out[i] for i in self.differentiable}


def _context_of(layer: _Layer, y: np.ndarray, dy: np.ndarray) -> LayerContext:
    """The layer's tensors for the diagnosis: float inputs by name, the output ``y``, the upstream ``dy``."""
    tensors = {layer.labels[i]: layer.arrays[i].astype(np.float64) for i in layer.differentiable}
    tensors.update({"y": np.asarray(y, dtype=np.float64), "dy": dy})
    integers = {layer.labels[i]: layer.arrays[i] for i in layer.fixed if np.issubdtype(layer.arrays[i].dtype, np.integer)}
    batch = y.shape[0] if y.ndim and all(a.ndim == 0 or a.shape[0] == y.shape[0] for a in layer.arrays[:1]) else None
    return LayerContext(tensors, integers, batch if batch and batch > 1 else None)


def _call(fn: Callable[..., Any], name: str, args: list[Any]) -> Any:
    try:
        return fn(*args)
    except DerivcheckError:
        raise
    except Exception as exc:
        raise UserFunctionError(f"{name} raised {type(exc).__name__}: {exc}") from exc


def _batch_of_one(
    forward: Callable[..., Any], backward: Callable[..., Any], arrays: list[np.ndarray], labels: tuple[str, ...], y0: np.ndarray, seed: int
) -> list[Finding]:
    """A failing backward that passes on one sample has a wrong batch reduction."""
    n = y0.shape[0] if y0.ndim else 0
    batched = [i for i, a in enumerate(arrays) if a.ndim and a.shape[0] == n]
    if n < 2 or not batched or len(batched) == len(arrays):
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
        alone = [a[k:k + 1] if i in batched else a for i, a in enumerate(arrays)]
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


def _dy_linearity(layer: _Layer, dy: np.ndarray) -> list[Finding]:
    """A VJP is linear in dy: backward(2 dy) = 2 backward(dy). Catches a backward that ignores dy."""
    p = {k: v.copy() for k, v in layer.params.items()}
    try:
        one, two = layer.vjp(p, dy), layer.vjp(p, 2.0 * dy)
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
