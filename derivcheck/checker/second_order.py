"""Second order: a Hessian-vector product or a whole (small) Hessian, checked with the first-order machinery.

A Hessian-vector product is a gradient: ``H(x) v`` is the gradient of the scalar ``<grad(x), v>``
(H is symmetric). So ``check_hvp`` checks ``hvp(x, v)`` as the gradient of that scalar, and gets
everything a first-order check has: error estimates from the step ladder, kinks of the gradient
judged as subgradients, jumps of the gradient reported as such, localization of wrong entries
and the diagnosis, in the same report. ``check_hessian`` does the same with a random vector,
checks the symmetry, and localizes wrong entries ``H[i, j]`` row by row; without ``grad`` the
gradient's directional derivatives are themselves finite differences of the loss.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from derivcheck.checker.gradient import check_gradient, reject_unknown
from derivcheck.errors import InputError
from derivcheck.numeric.finite_diff import central_difference
from derivcheck.report.results import Finding, GradientReport, WrongEntry
from derivcheck.numeric.tolerances import LOSS_ROUNDOFF_ULPS, machine_eps, relative_step
from derivcheck.checker.parameters import Blocks, ParamSpace

# check_hessian builds and compares an n x n matrix: it is meant for small problems.
HESSIAN_MAX_ENTRIES = 400
# Rows of a failing Hessian checked one by one to localize its wrong entries.
_ROWS_LOCALIZED = 16
_VECTOR_STREAM = 0xDC_2D
_OPTIONS = ("rtol", "atol", "seed", "mode", "directions", "progress", "vector")


def _vector(space: ParamSpace, params: Any, vector: Any, seed: int) -> Blocks:
    x = space.blocks(params)
    if vector is None:
        rng = np.random.default_rng([_VECTOR_STREAM, int(seed)])
        return {k: rng.standard_normal(v.shape) for k, v in x.items()}
    try:
        return space.gradient_blocks(vector, "vector")
    except Exception as exc:
        raise InputError(f"vector must have the structure and shapes of params: {exc}") from exc


def _along(space: ParamSpace, grad: Callable[[Any], Any], v: Blocks) -> Callable[[Any], float]:
    """``x -> <grad(x), v>``: the scalar whose gradient is ``H(x) v``."""

    def scalar(p: Any) -> float:
        g = space.gradient_blocks(grad(p), "grad")
        return float(sum(np.vdot(g[k], v[k]) for k in v))

    return scalar


def check_hvp(grad: Callable[[Any], Any], hvp: Callable[[Any, Any], Any], params: Any, *, vector: Any = None,
              seed: int = 0, rtol: float | None = None, atol: float | None = None, mode: str = "auto",
              directions: int = 1, progress: bool | None = None, **unknown: Any) -> GradientReport:
    """Check a Hessian-vector product ``hvp(params, v)`` against finite differences of ``grad``.

    ``v`` is ``vector`` (the structure of ``params``) or a random one drawn from ``seed``. The
    report is a gradient check's report: its rows, wrong entries and findings are about ``H v``.

    Examples
    --------
    >>> import numpy as np, derivcheck as dc
    >>> w = np.array([0.5, -1.0, 2.0])
    >>> dc.check_hvp(lambda w: 4 * w**3, lambda w, v: 12 * w**2 * v, w).verdict
    'pass'
    >>> dc.check_hvp(lambda w: 4 * w**3, lambda w, v: 6 * w**2 * v, w).findings[0].kind
    'scale'
    """
    reject_unknown("check_hvp", unknown, _OPTIONS)
    if not callable(grad) or not callable(hvp):
        raise InputError("grad and hvp must be callable: grad(params) -> gradient, hvp(params, v) -> H v")
    space = ParamSpace.of(params)
    v = _vector(space, params, vector, seed)
    report = check_gradient(_along(space, grad, v), lambda p: hvp(p, space.to_user({k: a.copy() for k, a in v.items()})),
                            params, seed=seed, rtol=rtol, atol=atol, mode=mode, directions=directions,
                            progress=progress, title="Hessian-vector product check", _names=("<grad, v>", "hvp"))
    return _about_hvp(report)


def _about_hvp(report: GradientReport) -> GradientReport:
    note = Finding("second_order", "checked: hvp(params, v) as the gradient of <grad(params), v>; in the rows and "
                                   "findings, d<name> is (H v) for that parameter, and the true gradient is the true H v.",
                   None, "info")
    return replace(report, findings=(*report.findings, note))


def check_hessian(loss: Callable[[Any], Any], hessian: Callable[[Any], Any], params: Any, *,
                  grad: Callable[[Any], Any] | None = None, seed: int = 0, rtol: float | None = None,
                  atol: float | None = None, progress: bool | None = None, **unknown: Any) -> GradientReport:
    """Check a full Hessian ``hessian(params)`` (an n x n matrix over the flattened parameters) of a small problem.

    The Hessian is checked along a random vector (as ``check_hvp``) and for symmetry; when it
    fails, its wrong entries ``H[i, j]`` are localized row by row. Without ``grad`` the
    gradient's directional derivatives are finite differences of ``loss``.

    Examples
    --------
    >>> import numpy as np, derivcheck as dc
    >>> w = np.array([0.5, -1.0])
    >>> loss = lambda w: float(w[0] ** 2 * w[1])
    >>> hess = lambda w: np.array([[2 * w[1], 2 * w[0]], [2 * w[0], 0.0]])
    >>> dc.check_hessian(loss, hess, w).verdict
    'pass'
    """
    reject_unknown("check_hessian", unknown, ("grad", "seed", "rtol", "atol", "progress"))
    if not callable(loss) or not callable(hessian):
        raise InputError("loss and hessian must be callable: loss(params) -> scalar, hessian(params) -> n x n array")
    space = ParamSpace.of(params)
    n = int(sum(space.sizes))
    if n > HESSIAN_MAX_ENTRIES:
        raise InputError(f"check_hessian is for small problems (at most {HESSIAN_MAX_ENTRIES} parameter entries, an "
                         f"n x n Hessian); params has {n}: check Hessian-vector products with check_hvp instead")
    h = _matrix(hessian(params), n)
    derivative = _gradient_along(space, grad) if grad is not None else _numeric_gradient(space, loss)
    v = _vector(space, params, None, seed)
    flat_v = np.concatenate([v[k].reshape(-1) for k in space.names])

    def hv(p: Any) -> Any:
        return _unflatten(space, h @ flat_v)

    report = check_gradient(_fixed(derivative, v), hv, params, seed=seed, rtol=rtol, atol=atol,
                            progress=progress, title="Hessian check", _names=("<grad, v>", "hessian @ v"))
    findings = list(report.findings)
    asym = _asymmetry(h)
    if asym is not None:
        findings.insert(0, asym)
    wrong = _localize(space, params, derivative, h, report, seed) if report.verdict == "fail" else ()
    if wrong:
        listed = ", ".join(f"H[{i}, {j}]" for (i, j) in (e.index for e in wrong[:5]))
        findings.insert(0, Finding("hessian_entries", f"{len(wrong)} entr{'y' if len(wrong) == 1 else 'ies'} of the "
                                                      f"Hessian {'is' if len(wrong) == 1 else 'are'} wrong: {listed}"
                                                      f"{' ...' if len(wrong) > 5 else ''} (flat indices over the "
                                                      f"parameters, in order {', '.join(space.names)}).", "hessian",
                                   "error", tuple(e.index for e in wrong)))
    verdict = "fail" if asym is not None else report.verdict
    return replace(_about_hvp(replace(report, findings=tuple(findings))), verdict=verdict,
                   wrong_entries={"hessian": tuple(wrong)} if wrong else report.wrong_entries)


def _matrix(out: Any, n: int) -> np.ndarray:
    try:
        h = np.asarray(out, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"hessian returned {type(out).__name__}; expected an {n} x {n} array") from exc
    if h.size != n * n:
        raise InputError(f"hessian returned shape {h.shape}; expected ({n}, {n}): one row and one column per "
                         f"parameter entry, flattened in order")
    h = h.reshape(n, n)
    if not np.all(np.isfinite(h)):
        raise InputError("hessian returned non-finite values")
    return h


def _unflatten(space: ParamSpace, flat: np.ndarray) -> Any:
    blocks, start = {}, 0
    for name, shape, size in zip(space.names, space.shapes, space.sizes):
        blocks[name] = flat[start:start + size].reshape(shape)
        start += size
    return space.to_user(blocks)


def _numeric_gradient(space: ParamSpace, loss: Callable[[Any], Any]) -> Callable[[Any, Blocks], float]:
    """``(x, v) -> <grad(x), v>`` from the loss alone: a central difference along ``v`` (its error is noise to
    the outer check, which measures it)."""

    def along(p: Any, v: Blocks) -> float:
        x = space.blocks(p)
        f = lambda t: float(np.asarray(loss(space.to_user({k: x[k] + t * v[k] for k in x}))))  # noqa: E731
        f0 = f(0.0)
        eps = machine_eps(np.float64)
        scale = max(max(float(np.max(np.abs(a))) for a in x.values()), 1.0)
        return central_difference(f, f0, relative_step(eps) * scale, LOSS_ROUNDOFF_ULPS * eps * abs(f0)).value

    return along


def _gradient_along(space: ParamSpace, grad: Callable[[Any], Any]) -> Callable[[Any, Blocks], float]:
    """``(x, v) -> <grad(x), v>`` from the user's gradient."""
    return lambda p, v: _along(space, grad, v)(p)


def _fixed(derivative: Callable[[Any, Blocks], float], v: Blocks) -> Callable[[Any], float]:
    return lambda p: derivative(p, v)


def _asymmetry(h: np.ndarray) -> Finding | None:
    scale = max(float(np.max(np.abs(h))), np.finfo(float).tiny)
    gap = np.abs(h - h.T)
    if gap.max() <= 1e3 * machine_eps(np.float64) * scale:
        return None
    i, j = np.unravel_index(int(np.argmax(gap)), gap.shape)
    return Finding("hessian_asymmetric", f"the Hessian is not symmetric: H[{i}, {j}] = {h[i, j]:.6g} but H[{j}, {i}] = "
                                         f"{h[j, i]:.6g} (a Hessian of a twice-differentiable loss is symmetric: a "
                                         f"transposed block, or a cross term written once?).", "hessian", "error",
                   ((int(i), int(j)),))


def _localize(space: ParamSpace, params: Any, derivative: Callable[[Any, Blocks], float], h: np.ndarray, report: GradientReport,
              seed: int) -> tuple[WrongEntry, ...]:
    """Rows of H checked one by one (as gradients of dL/dx_i), at the rows the random vector showed wrong."""
    offsets = np.cumsum([0, *space.sizes])
    rows = [int(offsets[space.names.index(e.param)] + np.ravel_multi_index(e.index, space.shapes[space.names.index(e.param)]))
            for es in report.wrong_entries.values() for e in es]
    if not rows:
        rows = list(range(min(h.shape[0], _ROWS_LOCALIZED)))
    wrong = []
    for i in rows[:_ROWS_LOCALIZED]:
        unit = np.zeros(h.shape[0])
        unit[i] = 1.0
        e_i = {k: unit[offsets[n]:offsets[n + 1]].reshape(s) for n, (k, s) in enumerate(zip(space.names, space.shapes))}
        row = check_gradient(_fixed(derivative, e_i), lambda p, i=i: _unflatten(space, h[i]), params,
                             seed=seed, mode="full", title="Hessian row")
        for es in row.wrong_entries.values():
            for e in es:
                b = space.names.index(e.param)
                j = int(offsets[b] + np.ravel_multi_index(e.index, space.shapes[b]))
                wrong.append(WrongEntry("hessian", (i, j), e.analytic, e.numeric))
    return tuple(wrong)
