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

from derivcheck.check import check_gradient
from derivcheck.errors import DerivcheckError, InputError, UserFunctionError
from derivcheck.report.gradient import Finding, GradientReport
from derivcheck.tolerances import GRADIENT_ROUNDOFF_ULPS, machine_eps


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
    _probe_batch: bool = True,
) -> GradientReport:
    """Check a layer's backward (a vector-Jacobian product) against its forward.

    ``forward(*inputs)`` returns an array ``y``; ``backward(dy, *inputs)`` returns one
    gradient per input (``None`` allowed for integer inputs such as labels or indices).
    The check uses a random upstream gradient ``dy`` (never all ones).

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
    if not isinstance(inputs, (list, tuple)) or not inputs:
        raise InputError(f"inputs must be a non-empty tuple or list of arrays; got {type(inputs).__name__}")
    if not callable(forward) or not callable(backward):
        raise InputError("forward and backward must be callable")
    arrays = []
    for i, a in enumerate(inputs):
        if not isinstance(a, np.ndarray):
            raise InputError(f"inputs[{i}] must be a numpy array; got {type(a).__name__}")
        arrays.append(a)
    labels = _input_names(forward, len(arrays), names)
    differentiable = [i for i, a in enumerate(arrays) if np.issubdtype(a.dtype, np.floating)]
    if not differentiable:
        raise InputError("no input has a floating dtype; there is nothing to differentiate")
    fixed = {i: arrays[i].copy() for i in range(len(arrays)) if i not in differentiable}
    params = {labels[i]: arrays[i] for i in differentiable}

    def call_forward(p: dict[str, np.ndarray]) -> np.ndarray:
        args = [fixed[i] if i in fixed else p[labels[i]] for i in range(len(arrays))]
        try:
            y = forward(*args)
        except DerivcheckError:
            raise
        except Exception as exc:
            raise UserFunctionError(f"forward raised {type(exc).__name__}: {exc}") from exc
        return np.asarray(y)

    y0 = call_forward({k: v.astype(np.float64) for k, v in params.items()})
    if not np.issubdtype(y0.dtype, np.floating):
        raise InputError(f"forward returned dtype {y0.dtype}; expected a floating array")
    dy = np.random.default_rng(seed).standard_normal(y0.shape)
    if y0.shape == ():
        dy = np.asarray(dy)

    def loss(p: dict[str, np.ndarray]) -> float:
        y = call_forward(p)
        if y.shape != dy.shape:
            raise InputError(f"forward returned shape {y.shape} at a perturbed point; expected {dy.shape}")
        return float(np.sum(dy * y))

    def grad(p: dict[str, np.ndarray]) -> dict[str, Any]:
        args = [fixed[i] if i in fixed else p[labels[i]] for i in range(len(arrays))]
        try:
            out = backward(dy.copy(), *args)
        except DerivcheckError:
            raise
        except Exception as exc:
            raise UserFunctionError(f"backward raised {type(exc).__name__}: {exc}") from exc
        if isinstance(out, np.ndarray) and len(arrays) == 1:
            out = (out,)
        if not isinstance(out, (tuple, list)) or len(out) != len(arrays):
            got = f"{type(out).__name__} of length {len(out)}" if isinstance(out, (tuple, list)) else type(out).__name__
            raise InputError(f"backward returned {got}; expected a tuple of {len(arrays)} gradients (one per input)")
        return {labels[i]: out[i] for i in differentiable}

    report = check_gradient(
        loss, grad, params, rtol=rtol, atol=atol, seed=seed, mode=mode, directions=directions,
        title="backward check", _names=("forward", "backward"),
    )
    extra = _dy_linearity(backward, arrays, labels, differentiable, dy)
    if report.verdict == "fail" and _probe_batch:
        extra += _batch_of_one(forward, backward, arrays, labels, y0, seed)
    if extra:
        findings = tuple(sorted((*extra, *report.findings), key=lambda f: f.severity != "error"))
        verdict = "fail" if any(f.severity == "error" for f in extra) else report.verdict
        report = GradientReport(**{**report.__dict__, "findings": findings, "verdict": verdict})
    return report


def _batch_of_one(
    forward: Callable[..., Any], backward: Callable[..., Any], arrays: list[np.ndarray], labels: tuple[str, ...], y0: np.ndarray, seed: int
) -> list[Finding]:
    """A failing backward that passes on one sample has a wrong batch reduction."""
    n = y0.shape[0] if y0.ndim else 0
    batched = [i for i, a in enumerate(arrays) if a.ndim and a.shape[0] == n]
    if n < 2 or not batched or len(batched) == len(arrays):
        return []  # no batch axis to slice, or no parameter shared across the batch
    sliced = [a[:1] if i in batched else a for i, a in enumerate(arrays)]
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


def _dy_linearity(backward: Callable[..., Any], arrays: list[np.ndarray], labels: tuple[str, ...], diff: list[int], dy: np.ndarray) -> list[Finding]:
    """A VJP is linear in dy: backward(2 dy) = 2 backward(dy). Catches a backward that ignores dy."""
    try:
        one = backward(dy.copy(), *[a.copy() for a in arrays])
        two = backward(2.0 * dy, *[a.copy() for a in arrays])
    except Exception:  # noqa: BLE001 - already reported by the main check if it matters
        return []
    if isinstance(one, np.ndarray):
        one, two = (one,), (two,)
    out = []
    for i in diff:
        a, b = np.asarray(one[i], dtype=np.float64), np.asarray(two[i], dtype=np.float64)
        if a.shape != b.shape:
            continue
        scale = float(np.max(np.abs(a))) if a.size else 0.0
        if scale > 0 and np.allclose(a, b, rtol=0, atol=GRADIENT_ROUNDOFF_ULPS * machine_eps(a.dtype) * scale):
            out.append(
                Finding(
                    "ignores_dy",
                    f"backward returns the same d{labels[i]} when dy is doubled: it ignores the upstream gradient "
                    f"(multiply by dy - the chain rule's outer factor).",
                    labels[i],
                )
            )
    return out
