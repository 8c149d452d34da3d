"""``check_gradient``, ``assert_gradient`` and ``check_backward``: the numeric checker."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from derivcheck.diagnose import Evidence, diagnose, generic_finding, scale_finding, wrong_entries_finding
from derivcheck.errors import DerivcheckError, GradientMismatch, InputError, NonFiniteError, UserFunctionError
from derivcheck.numeric.finite_diff import Derivative, central_difference
from derivcheck.numeric.localize import MAX_LOCALIZED, bisect_wrong_entries
from derivcheck.numeric.taylor import taylor_test
from derivcheck.report.gradient import (
    Evaluations,
    Finding,
    GradientReport,
    Kink,
    ParamReport,
    WrongEntry,
)
from derivcheck.tolerances import (
    ESTIMATE_SAFETY,
    GRADIENT_ROUNDOFF_ULPS,
    INCONCLUSIVE_FLOOR,
    LOSS_ROUNDOFF_ULPS,
    NONDETERMINISM_ULPS,
    entry_scale,
    machine_eps,
    relative_step,
)
from derivcheck.user_functions import GuardedFunctions
from derivcheck.vspace import Blocks, ParamSpace, flat_index

MODES = ("auto", "full", "directional")
# Parameters up to this size get every entry checked (4 loss evaluations each).
FULL_CHECK_MAX_ENTRIES = 512
# Bisection stops after this many subset tests per parameter (about 20 levels for 10^6 entries).
LOCALIZATION_MAX_TESTS = 48
# Entries sampled to diagnose a spread error in a large parameter (plus transposed partners).
DIAGNOSIS_SAMPLES = 12
# Noise probe: third differences at spacing h/16 see rounding, not curvature.
_PROBE_POINTS = 5
_PROBE_SPACING = 1.0 / 16.0
_THIRD_DIFFERENCE_VARIANCE = 20.0
# Off-kink recheck: a random relative shift this large moves every coincident kink aside.
_OFF_KINK_SHIFT = 1e-4
# Nearby points sampled around coincident kinks: each lands in a random region of the
# kinks' arrangement, so their derivatives span the subdifferential seen from x.
_OFF_KINK_SAMPLES = 8


@dataclass
class _Context:
    fns: GuardedFunctions
    x: Blocks  # evaluation point for the loss (float64 when the user's functions accept it)
    g: Blocks  # the user's gradient at x, as float64
    f0: float
    noise: float
    step: float
    eps_eval: float
    eps_grad: float
    rtol: float
    atol: float
    rng: np.random.Generator
    kinks: list[Kink] = field(default_factory=list)
    off_kink: list[tuple[Blocks, Blocks, float]] = field(default_factory=list)  # (x', g(x'), f(x'))


def _phi(ctx: _Context, x: Blocks, moves: dict[str, np.ndarray]) -> Callable[[float], float]:
    def phi(t: float) -> float:
        point = dict(x)
        for name, d in moves.items():
            # Stay in the evaluation dtype; the rounding of the step is charged in _tolerance.
            point[name] = (x[name] + t * d).astype(x[name].dtype, copy=False)
        return ctx.fns.loss_at(point)

    return phi


def _tolerance(ctx: _Context, d: Derivative, moves: dict[str, np.ndarray], g: Blocks, x: Blocks) -> float:
    """Allowed |analytic - numeric| for one directional derivative, from the error estimate."""
    grad_round = 0.0
    step_round = 0.0
    for name, v in moves.items():
        gb = g[name]
        rms = float(np.sqrt(np.mean(gb * gb)))
        grad_round += float(np.sum((v * (np.abs(gb) + rms)) ** 2))
        step_round += float(np.sum((np.abs(x[name]) * gb * (v != 0)) ** 2))
    grad_round = GRADIENT_ROUNDOFF_ULPS * ctx.eps_grad * np.sqrt(grad_round)
    step_round = 2 * ctx.eps_eval * np.sqrt(step_round) / d.step
    user = ctx.atol * sum(float(np.sum(np.abs(v))) for v in moves.values()) + ctx.rtol * abs(d.value)
    return ESTIMATE_SAFETY * d.error + grad_round + step_round + user


@dataclass
class _Test:
    derivative: Derivative
    analytic: float
    tolerance: float
    passed: bool


def _directional_test(ctx: _Context, moves: dict[str, np.ndarray], param: str, index: tuple[int, ...] | None) -> _Test:
    """Compare <g, v> with the difference quotient along v; kinks are judged as subgradients."""
    d = central_difference(_phi(ctx, ctx.x, moves), ctx.f0, ctx.step, ctx.noise)
    a = sum(float(np.vdot(ctx.g[k], v)) for k, v in moves.items())
    tol = _tolerance(ctx, d, moves, ctx.g, ctx.x)
    passed = d.admits(a, tol)
    if d.kink:
        if not passed:
            # Coincident kinks (ties, several ReLUs at 0) make the one-line interval too narrow.
            passed = _off_kink_test(ctx, moves, a, d, tol)
        ctx.kinks.append(Kink(param, index, a, d.backward, d.forward, passed))
        return _Test(d, a, tol, passed)
    return _Test(d, a, tol, passed)


def _off_kink_test(ctx: _Context, moves: dict[str, np.ndarray], analytic: float, d: Derivative, tol: float) -> bool:
    """Coincident kinks: the formula must be right at nearby differentiable points, and the
    value at the kink must lie in the hull of the one-sided and nearby derivatives (a sampled
    Clarke subdifferential)."""
    if not ctx.off_kink:
        for _ in range(_OFF_KINK_SAMPLES):
            shifted = {
                k: v + _OFF_KINK_SHIFT * entry_scale(v) * ctx.rng.standard_normal(v.shape) for k, v in ctx.x.items()
            }
            ctx.off_kink.append((shifted, ctx.fns.grad_at(shifted), ctx.fns.loss_at(shifted)))
    lo, hi = min(d.forward, d.backward), max(d.forward, d.backward)
    for x2, g2, f2 in ctx.off_kink:
        near = central_difference(_phi(ctx, x2, moves), f2, ctx.step, ctx.noise)
        a2 = sum(float(np.vdot(g2[k], v)) for k, v in moves.items())
        if not near.admits(a2, _tolerance(ctx, near, moves, g2, x2)):
            return False
        lo, hi = min(lo, near.value, near.forward, near.backward), max(hi, near.value, near.forward, near.backward)
    return lo - tol <= analytic <= hi + tol


def _signed_error(t: _Test) -> float:
    """Analytic minus numeric; zero inside a kink's admissible interval."""
    if t.derivative.kink:
        return float(np.sign(t.analytic - t.derivative.value) * t.derivative.distance(t.analytic))
    return t.analytic - t.derivative.value


def _unit(shape: tuple[int, ...], size: int, flat: int, scale: float) -> np.ndarray:
    v = np.zeros(size)
    v[flat] = scale
    return v.reshape(shape)


@dataclass
class _ParamOutcome:
    report: ParamReport
    wrong: list[WrongEntry]
    findings: list[Finding]


def _full_check(ctx: _Context, name: str) -> _ParamOutcome:
    x = ctx.x[name]
    shape, size = x.shape, x.size
    scales = entry_scale(x).reshape(-1)
    analytic = ctx.g[name].reshape(-1)
    numeric, tol, dist = np.zeros(size), np.zeros(size), np.zeros(size)
    failed, kinked = np.zeros(size, bool), np.zeros(size, bool)
    for i in range(size):
        s = float(scales[i])
        t = _directional_test(ctx, {name: _unit(shape, size, i, s)}, name, flat_index(shape, i))
        numeric[i] = t.derivative.value / s
        tol[i] = t.tolerance / s
        dist[i] = t.derivative.distance(t.analytic) / s
        failed[i], kinked[i] = not t.passed, t.derivative.kink
    partner: dict[int, float] = {}
    if x.ndim == 2 and shape[0] == shape[1]:
        nt = numeric.reshape(shape).T.reshape(-1)
        partner = {i: float(nt[i]) for i in range(size)}
    smooth = ~kinked
    evidence = Evidence(name, ctx.g[name], np.flatnonzero(smooth), numeric[smooth], tol[smooth], partner)
    return _summarize(ctx, name, "full", size, analytic, numeric, tol, dist, failed, kinked, evidence, None)


def _summarize(
    ctx: _Context,
    name: str,
    method: str,
    checked: int,
    analytic: np.ndarray,
    numeric: np.ndarray,
    tol: np.ndarray,
    dist: np.ndarray,
    failed: np.ndarray,
    kinked: np.ndarray,
    evidence: Evidence,
    floor_override: float | None,
    localized: list[int] | None = None,
    indices: np.ndarray | None = None,
    force_fail: bool = False,
) -> _ParamOutcome:
    """Per-parameter row, wrong entries and diagnosis from per-entry numbers."""
    x = ctx.x[name]
    idx = np.arange(len(numeric)) if indices is None else indices
    a = analytic[idx] if indices is not None else analytic
    rel = dist / np.maximum(np.maximum(np.abs(a), np.abs(numeric)), np.finfo(float).tiny)
    z = dist / np.maximum(tol, np.finfo(float).tiny)
    worst = int(np.argmax(z)) if len(z) else 0
    significant = np.abs(numeric) > tol
    if floor_override is not None:
        floor = floor_override
    else:
        floor = float(np.min(tol[significant] / np.abs(numeric[significant]))) if significant.any() else float("inf")
    vacuous = not (significant | kinked).any() and bool(np.all(np.abs(a) <= tol))
    findings: list[Finding] = []
    wrong: list[WrongEntry] = []
    if failed.any() or force_fail:
        verdict = "fail"
        bad = np.flatnonzero(failed)
        # Only a localized failure lists entries; a spread one is explained by the diagnosis.
        if localized is not None or len(bad) <= min(MAX_LOCALIZED, max(1, x.size // 2)):
            for k in bad[np.argsort(-z[bad])]:
                wrong.append(WrongEntry(name, flat_index(x.shape, int(idx[k])), float(a[k]), float(numeric[k])))
        findings.extend(diagnose(evidence))
        is_local = localized is not None or (len(bad) <= 8 and x.size > 8 * len(bad))
        if not findings and is_local and len(bad):
            findings.append(wrong_entries_finding(name, x.shape, [w.index for w in wrong], True))
        if not findings and len(bad):
            findings.append(generic_finding(name, float(np.max(rel[bad]))))
    elif vacuous:
        verdict = "pass"
        findings.append(
            Finding(
                "vacuous",
                f"d{name} is zero here and so is the numeric derivative: this check cannot see a wrong formula "
                f"for {name} (dead ReLUs? zero-initialized weights? an input that does not reach the loss?).",
                name,
                "warning",
            )
        )
    elif floor > INCONCLUSIVE_FLOOR:
        verdict = "inconclusive"
        findings.append(
            Finding(
                "noise",
                f"the finite differences for {name} are too noisy to decide: the smallest relative error this "
                f"run could see is {floor:.1e}. Evaluate the loss in float64, avoid a loss that is a difference "
                f"of large numbers, or rescale {name}.",
                name,
                "warning",
            )
        )
    else:
        verdict = "pass"
    report = ParamReport(
        name=name,
        shape=tuple(x.shape),
        dtype=str(ctx.fns.space.dtypes[ctx.fns.space.names.index(name)]),
        method=method,
        checked=checked,
        max_abs_error=float(np.max(dist)) if len(dist) else 0.0,
        max_rel_error=float(np.max(rel)) if len(rel) else 0.0,
        worst_index=flat_index(x.shape, int(idx[worst])) if len(idx) else None,
        analytic_at_worst=float(a[worst]) if len(a) else 0.0,
        numeric_at_worst=float(numeric[worst]) if len(numeric) else 0.0,
        detection_floor=floor,
        verdict=verdict,
    )
    return _ParamOutcome(report, wrong, findings)


def _random_direction(ctx: _Context, name: str) -> np.ndarray:
    x = ctx.x[name]
    z = ctx.rng.standard_normal(x.shape)
    return z / np.max(np.abs(z)) * entry_scale(x)


def _gradient_direction(ctx: _Context, name: str) -> np.ndarray | None:
    """The user's own gradient as a direction: <g, v> is then as large as it can be, so a
    wrong scale shows at its most visible; None when the gradient is zero."""
    g = ctx.g[name]
    top = float(np.max(np.abs(g)))
    if top == 0:
        return None
    return g / top * entry_scale(ctx.x[name])


def _directional_check(ctx: _Context, name: str, directions: int) -> _ParamOutcome:
    x = ctx.x[name]
    shape, size = x.shape, x.size
    tests = []
    for k in range(directions):
        v = _gradient_direction(ctx, name) if k == 0 else None
        v = _random_direction(ctx, name) if v is None else v
        tests.append((v, _directional_test(ctx, {name: v}, name, None)))
    floors = [t.tolerance / abs(t.derivative.value) for _, t in tests if abs(t.derivative.value) > t.tolerance]
    floor = min(floors) if floors else float("inf")
    failing = [(v, t) for v, t in tests if not t.passed]
    scales = entry_scale(x).reshape(-1)

    def entry(i: int) -> _Test:
        return _directional_test(ctx, {name: _unit(shape, size, i, float(scales[i]))}, name, flat_index(shape, i))

    if not failing:
        v, t = tests[0]
        d = np.array([t.derivative.distance(t.analytic) for _, t in tests])
        nv = np.array([t.derivative.value for _, t in tests])
        av = np.array([t.analytic for _, t in tests])
        tol = np.array([t.tolerance for _, t in tests])
        kinked = np.array([t.derivative.kink for _, t in tests])
        ev = Evidence(name, ctx.g[name], np.array([], int), np.array([]), np.array([]), {})
        out = _summarize(ctx, name, "directional", directions, av, nv, tol, d, np.zeros(len(tests), bool), kinked, ev, floor)
        out.report = _with_worst(out.report, None)
        return out

    v, first = failing[0]
    flat_v = v.reshape(-1)

    def measure(subset: np.ndarray) -> tuple[float, float]:
        mv = np.zeros(size)
        mv[subset] = flat_v[subset]
        t = _directional_test(ctx, {name: mv.reshape(shape)}, name, None)
        return _signed_error(t), t.tolerance

    loc = bisect_wrong_entries(np.arange(size), measure, (_signed_error(first), first.tolerance), LOCALIZATION_MAX_TESTS)
    checked: dict[int, _Test] = {i: entry(i) for i in loc.wrong}
    few = loc.complete and not loc.spread and 0 < len(loc.wrong)
    if not few:
        sample = ctx.rng.choice(size, size=min(DIAGNOSIS_SAMPLES, size), replace=False)
        extra = set(int(i) for i in sample)
        if x.ndim == 2 and shape[0] == shape[1]:
            extra |= {int(np.ravel_multi_index(flat_index(shape, i)[::-1], shape)) for i in sample}
        for i in sorted(extra - checked.keys()):
            checked[i] = entry(i)
    order = np.array(sorted(checked))
    ts = [checked[int(i)] for i in order]
    numeric = np.array([t.derivative.value for t in ts]) / scales[order]
    tol = np.array([t.tolerance for t in ts]) / scales[order]
    dist = np.array([t.derivative.distance(t.analytic) for t in ts]) / scales[order]
    failed = np.array([not t.passed for t in ts])
    kinked = np.array([t.derivative.kink for t in ts])
    partner = {}
    if x.ndim == 2 and shape[0] == shape[1]:
        pos = {int(i): k for k, i in enumerate(order)}
        for i in order:
            j = int(np.ravel_multi_index(flat_index(shape, int(i))[::-1], shape))
            if j in pos:
                partner[int(i)] = float(numeric[pos[j]])
    smooth = ~kinked
    evidence = Evidence(name, ctx.g[name], order[smooth], numeric[smooth], tol[smooth], partner)
    if few:
        # Bisection already explains the failure: only these entries are wrong.
        evidence = Evidence(name, ctx.g[name], np.array([], int), np.array([]), np.array([]), {})
    out = _summarize(
        ctx, name, "directional", directions + loc.tests, ctx.g[name].reshape(-1), numeric, tol, dist,
        failed, kinked, evidence, floor, loc.wrong if few else None, order, force_fail=True,
    )
    if few:
        out.findings = [wrong_entries_finding(name, shape, [flat_index(shape, i) for i in loc.wrong], True)]
    elif not failed.any() and (ratio := _consistent_ratio(tests)) is not None:
        out.findings = [scale_finding(name, ratio)]
    elif not failed.any():
        out.findings.append(
            Finding(
                "spread",
                f"d{name} fails along random directions but no single sampled entry is clearly wrong: the error "
                f"is small and spread over many entries (a slightly wrong constant? a missing small term?).",
                name,
            )
        )
    return out


def _consistent_ratio(tests: list[tuple[np.ndarray, _Test]]) -> float | None:
    """analytic/numeric when every direction agrees on one constant factor, else None."""
    usable = [t for _, t in tests if abs(t.derivative.value) > t.tolerance and not t.derivative.kink]
    failing = [t for t in usable if not t.passed]
    if not failing:
        return None
    c = failing[0].analytic / failing[0].derivative.value
    if all(abs(t.analytic - c * t.derivative.value) <= (1 + abs(c)) * t.tolerance for t in usable):
        return float(c)
    return None


def _with_worst(r: ParamReport, worst: tuple[int, ...] | None) -> ParamReport:
    return ParamReport(**{**r.__dict__, "worst_index": worst})


def _measure_noise(ctx: _Context, u: Blocks) -> float:
    phi = _phi(ctx, ctx.x, u)
    delta = ctx.step * _PROBE_SPACING
    values = np.array([ctx.f0] + [phi(k * delta) for k in range(1, _PROBE_POINTS)])
    third = np.diff(values, 3)
    return float(np.sqrt(np.mean(third**2) / _THIRD_DIFFERENCE_VARIANCE))


def _validate_options(mode: str, seed: Any, rtol: Any, atol: Any, directions: Any) -> None:
    if mode not in MODES:
        raise InputError(f"mode must be one of {MODES}; got {mode!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise InputError(f"seed must be an int; got {type(seed).__name__}")
    for label, v in (("rtol", rtol), ("atol", atol)):
        if v is not None and (not isinstance(v, (int, float)) or not v >= 0 or not np.isfinite(v)):
            raise InputError(f"{label} must be a non-negative finite number or None; got {v!r}")
    if not isinstance(directions, int) or directions < 1:
        raise InputError(f"directions must be a positive int; got {directions!r}")


def check_gradient(
    loss: Callable[[Any], Any],
    grad: Callable[[Any], Any],
    params: Any,
    *,
    rtol: float | None = None,
    atol: float | None = None,
    seed: int = 0,
    mode: str = "auto",
    directions: int = 2,
    title: str = "gradient check",
    _names: tuple[str, str] = ("loss", "grad"),
) -> GradientReport:
    """Check a hand-written gradient against finite differences; find and explain errors.

    ``params`` is an array, a dict of arrays or a list/tuple of arrays; ``loss(params)``
    returns a scalar and ``grad(params)`` the same structure as ``params``.

    Examples
    --------
    >>> import numpy as np, derivcheck as dc
    >>> x = np.arange(1.0, 7.0).reshape(2, 3)
    >>> dc.check_gradient(lambda w: (w**3).sum(), lambda w: 3 * w**2, x).verdict
    'pass'
    >>> report = dc.check_gradient(lambda w: (w**3).sum(), lambda w: 1.5 * w**2, x)
    >>> report.verdict, report.findings[0].kind
    ('fail', 'scale')
    """
    start = time.perf_counter()
    _validate_options(mode, seed, rtol, atol, directions)
    if not callable(loss) or not callable(grad):
        bad = "loss" if not callable(loss) else "grad"
        raise InputError(f"{bad} must be callable; got {type(loss if bad == 'loss' else grad).__name__}")
    space = ParamSpace.of(params)
    fns = GuardedFunctions(loss, grad, space, loss_name=_names[0], grad_name=_names[1])
    rng = np.random.default_rng(seed)
    findings: list[Finding] = []

    native = space.blocks(params, dtype=None)
    x64 = space.blocks(params, dtype=np.float64)
    all64 = all(dt == np.float64 for dt in space.dtypes)
    evaluated_in = "float64"
    if all64:
        x = x64
    else:
        try:
            fns.loss_at(x64)
            x = x64
            findings.append(
                Finding(
                    "float32",
                    "parameters are " + "/".join(sorted({str(d) for d in space.dtypes})) + "; your loss accepted float64 "
                    "copies, so the finite differences were taken in float64 (an accurate reference) while the "
                    "gradient was computed at your dtype.",
                    None,
                    "info",
                )
            )
        except (UserFunctionError, NonFiniteError, InputError):
            x = native
            evaluated_in = "/".join(sorted({str(d) for d in space.dtypes}))
            findings.append(
                Finding(
                    "float32",
                    f"your loss did not accept float64 copies, so differences were taken in {evaluated_in}; the "
                    f"step and tolerance were widened for that dtype (see the floor column).",
                    None,
                    "warning",
                )
            )
    f0 = fns.loss_at(x)
    f0_again = fns.loss_at(x)
    g = fns.grad_at(native)
    g_again = fns.grad_at(native)
    eps_eval = machine_eps(fns.loss_dtype if fns.loss_dtype is not None else next(iter(x.values())).dtype)
    if evaluated_in == "float64" and fns.loss_dtype is not None and fns.loss_dtype != np.float64:
        evaluated_in = f"float64 (the loss returns {fns.loss_dtype})"
    eps_grad = machine_eps(fns.grad_dtype if fns.grad_dtype is not None else np.float64)
    step = relative_step(eps_eval)
    ctx = _Context(fns, x, g, f0, 0.0, step, eps_eval, eps_grad, float(rtol or 0.0), float(atol or 0.0), rng)

    nondeterministic = False
    model_noise = LOSS_ROUNDOFF_ULPS * eps_eval * abs(f0)
    if abs(f0_again - f0) > NONDETERMINISM_ULPS * eps_eval * max(abs(f0), np.finfo(float).tiny):
        nondeterministic = True
        findings.append(
            Finding(
                "nondeterministic",
                f"{_names[0]} is not deterministic: two calls at the same point gave {f0!r} and {f0_again!r}. "
                f"Fix the random seed / dropout mask inside it; differences of a random function say nothing "
                f"about the gradient.",
                None,
            )
        )
    for name in space.names:
        if not np.array_equal(g[name], g_again[name]):
            diff = float(np.max(np.abs(g[name] - g_again[name])))
            if diff > NONDETERMINISM_ULPS * eps_grad * float(np.max(np.abs(g[name])) + np.finfo(float).tiny):
                nondeterministic = True
                findings.append(
                    Finding(
                        "nondeterministic",
                        f"{_names[1]} is not deterministic: two calls gave d{name} differing by up to {diff:.3g}.",
                        name,
                    )
                )
    u = {k: _random_direction(ctx, k) for k in space.names}
    ctx.noise = max(model_noise, _measure_noise(ctx, u), abs(f0_again - f0))

    outcomes = []
    for name, size in zip(space.names, space.sizes):
        full = mode == "full" or (mode == "auto" and size <= FULL_CHECK_MAX_ENTRIES)
        outcomes.append(_full_check(ctx, name) if full else _directional_check(ctx, name, directions))

    slope = sum(float(np.vdot(g[k], u[k])) for k in u)
    taylor = taylor_test(_phi(ctx, x, u), f0, slope, ctx.noise, bool(ctx.kinks))

    for o in outcomes:
        findings.extend(o.findings)
    findings.extend(_common_factor(outcomes))
    findings.extend(_vacuity_warnings(g, space))
    findings.extend(_scale_warnings(x, step))
    for key, change in fns.mutations.items():
        fname, pname = key.split(":", 1)
        findings.append(
            Finding(
                "mutation",
                f"{fname} modifies its input {pname!r} in place (entries changed by up to {change:.3g}); derivcheck "
                f"passed copies, but your training loop will see the change.",
                pname,
                "warning",
            )
        )
    if ctx.kinks:
        findings.append(
            Finding(
                "kink",
                f"{len(ctx.kinks)} check(s) sit on a non-differentiable point (ReLU at 0, |x| at 0, tied maxima); "
                f"there the analytic value was accepted when it lies between the one-sided derivatives "
                f"(a valid subgradient), or when the formula is right just off the kink.",
                None,
                "info",
            )
        )
    if taylor.order is not None and taylor.order < 1.3 and not ctx.kinks and all(o.report.verdict == "pass" for o in outcomes):
        findings.append(
            Finding(
                "taylor",
                "the Taylor remainder test sees first-order convergence although every difference check passed: "
                "a gradient error below the detection floor is likely.",
                None,
                "warning",
            )
        )
    verdicts = [o.report.verdict for o in outcomes]
    if nondeterministic:
        verdict = "inconclusive"
    elif "fail" in verdicts:
        verdict = "fail"
    elif "inconclusive" in verdicts:
        verdict = "inconclusive"
    else:
        verdict = "pass"
    severity = {"error": 0, "warning": 1, "info": 2}
    findings.sort(key=lambda f: severity.get(f.severity, 3))
    return GradientReport(
        verdict=verdict,
        params=tuple(o.report for o in outcomes),
        wrong_entries={o.report.name: tuple(o.wrong) for o in outcomes if o.wrong},
        kinks=tuple(ctx.kinks),
        findings=tuple(findings),
        taylor=taylor,
        evaluations=Evaluations(fns.loss_calls, fns.grad_calls),
        seconds=time.perf_counter() - start,
        seed=int(seed),
        evaluated_in=evaluated_in,
        title=title,
    )


def _common_factor(outcomes: list[_ParamOutcome]) -> list[Finding]:
    """One factor shared by every failing parameter points at the loss, not at one layer."""
    scale = [f for o in outcomes for f in o.findings if f.kind == "scale"]
    if len(scale) >= 2 and len(scale) == sum(o.report.verdict == "fail" for o in outcomes):
        heads = {f.message.split(" is ", 1)[1].split(":")[0] for f in scale}
        if len(heads) == 1:
            return [
                Finding(
                    "scale_all",
                    f"every parameter's gradient is {heads.pop()}: the factor belongs to the loss "
                    f"(its 1/N or 1/2), not to one layer's backward.",
                    None,
                )
            ]
    return []


def _vacuity_warnings(g: Blocks, space: ParamSpace) -> list[Finding]:
    out = []
    for name in space.names:
        gb = g[name]
        if gb.size > 1 and np.all(gb == gb.reshape(-1)[0]) and gb.reshape(-1)[0] != 0:
            out.append(
                Finding(
                    "uniform",
                    f"every entry of d{name} equals {gb.reshape(-1)[0]:.6g}: an all-ones upstream gradient "
                    f"(loss = y.sum()) hides missing sums and transposes; weight the output randomly, "
                    f"loss = (r * y).sum().",
                    name,
                    "warning",
                )
            )
    return out


def _scale_warnings(x: Blocks, step: float) -> list[Finding]:
    """Entries far below 1 get an absolute step larger than themselves: say so."""
    out = []
    for name, v in x.items():
        top = float(np.max(np.abs(v)))
        if 0 < top < step:
            out.append(
                Finding(
                    "step_scale",
                    f"every entry of {name} is below {top:.2g}, smaller than the finite-difference step {step:.2g}: "
                    f"the differences probe the loss far from these values (a kink or sharp curvature there would "
                    f"mislead); rescale {name} to order 1 for the check if you can.",
                    name,
                    "warning",
                )
            )
    return out


def assert_gradient(loss: Callable[[Any], Any], grad: Callable[[Any], Any], params: Any, **kwargs: Any) -> GradientReport:
    """Like :func:`check_gradient`, but raise :class:`GradientMismatch` unless the verdict is pass.

    Examples
    --------
    >>> import numpy as np, derivcheck as dc
    >>> _ = dc.assert_gradient(lambda w: (w**2).sum(), lambda w: 2 * w, np.ones(3))
    """
    report = check_gradient(loss, grad, params, **kwargs)
    if not report.ok:
        raise GradientMismatch(report)
    return report


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
    directions: int = 2,
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
