"""What a report says besides its rows: precision, dependence, safety notes, and the verdict.

Every statement here is read off numbers the same run measured.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from derivcheck.checker.diagnosis.degenerate import dead_units, symmetric_point
from derivcheck.checker.diagnosis.detectors import factor_phrase
from derivcheck.errors import DerivcheckError
from derivcheck.numeric.blocks import Blocks
from derivcheck.numeric.directional import tolerance
from derivcheck.numeric.kinks import shift_direction
from derivcheck.numeric.precision import PRECISION_JUMP, observed_eps
from derivcheck.checker.taylor import NOT_A_VERDICT_NOTE, WRONG_NOTE, taylor_test
from derivcheck.checker.evaluation import finer_point, gradient_spread
from derivcheck.checker.outcome import ParamOutcome, Run, Tested
from derivcheck.checker.joint import joint_row
from derivcheck.report.results import Finding, ParamReport, TaylorResult
from derivcheck.numeric.tolerances import GRADIENT_ROUNDOFF_ULPS, LOSS_ROUNDOFF_ULPS, largest_magnitude, relative_step



def settle_precision(run: Run) -> bool:
    """Read the working precision off the loss values; True when the joint tests must be redone."""
    probe, s = run.probe, run.setup
    seen = observed_eps([s.f0, *probe.values])
    top = max(abs(v) for v in [s.f0, *probe.values])
    modelled = LOSS_ROUNDOFF_ULPS * probe.eps_eval * top
    if seen is not None and seen > PRECISION_JUMP * probe.eps_eval:
        probe.eps_eval = seen
        bits = round(-np.log2(seen)) + 1
        why = f"the loss values carry only {bits} significant bits"
    elif probe.noise > PRECISION_JUMP**2 * max(modelled, np.finfo(float).tiny) and top > 0:
        # (A loss that was 0 at every point, its noise walked out along a line, has no precision relative to it.)
        probe.eps_eval = probe.noise / (LOSS_ROUNDOFF_ULPS * top)
        why = f"the differences show rounding noise of {probe.noise:.2g} per evaluation"
    else:
        return False
    probe.noise = max(probe.noise, LOSS_ROUNDOFF_ULPS * probe.eps_eval * abs(s.f0))
    run.tested.clear()
    run.kinks.clear()
    s.findings.append(Finding(
        "precision",
        f"{why}, an effective precision of {probe.eps_eval:.1e} (not the {s.evaluated_in} the values come back in): "
        f"the step ({relative_step(probe.eps_eval):.1e} relative) and the tolerances follow it.", None, "info"))
    s.evaluated_in = f"{s.evaluated_in}, precision {probe.eps_eval:.1e} observed"
    return True


# The most a lower-precision gradient may differ from the same code's at the float64 point, as a fraction of a
# block's largest entry, and still be taken for its rounding (a sure softmax's p - 1 in float32: 6e-4); beyond it the
# two calls disagree for another reason (state left by earlier calls, code that depends on the dtype).
SPREAD_MOST = 2.0**-6
# A spread this many times the modelled rounding (GRADIENT_ROUNDOFF_ULPS of the gradient's largest entry) is said.
_SPREAD_SAID = 16.0


def charge_gradient_rounding(run: Run) -> None:
    """Where a direction failed: the gradient's own rounding, measured by the same code at a finer point (the
    float64 one for lower-precision parameters, extended precision for small float64 ones; one more gradient call,
    on a failure only, after the state check so as not to add a call to the sequence it reads), joins every
    tolerance from here on, and the failed tests are judged again with it. A rounding far above a few ulps is said
    (a difference of nearly equal numbers); a difference too large to be rounding is said and charged nowhere. Not
    asked where every failure is beyond what any rounding SPREAD_MOST allows could excuse (a gradient half the
    truth)."""
    s, probe = run.setup, run.probe
    failed = [k for k, t in enumerate(run.tested) if not t.test.passed]
    finer = finer_point(s.native, s.x) if failed else None
    if finer is None or not any(_excusable(run, run.tested[k]) for k in failed):
        return
    spread = gradient_spread(s.fns, finer, s.g)
    if spread is None:
        return
    rounding = all(np.max(np.abs(spread[k]), initial=0.0) <= SPREAD_MOST * largest_magnitude(s.g[k])
                   for k in spread)
    s.findings.extend(_spread_findings(run, spread, rounding))
    if not rounding:
        return
    probe.grad_spread = spread  # ``tolerance`` charges it from here on
    for k in failed:
        t = run.tested[k]
        if t.test.resolution or t.test.derivative.kink or t.test.derivative.jump:
            continue  # judged by more than a tolerance
        tol = tolerance(probe, t.test.derivative, t.moves, s.g, s.x)
        run.rejudge(k, replace(t.test, tolerance=tol, passed=t.test.derivative.admits(t.test.analytic, tol)))


def _excusable(run: Run, t: Tested) -> bool:
    """Whether a failed test's disagreement is within what a rounding of SPREAD_MOST of each block's largest entry,
    at every entry, could put into its analytic value, and within SPREAD_MOST of the measured derivative (a
    gradient 10% off, twice the truth or of the wrong sign is no rounding: no call is spent on it)."""
    g = run.setup.g
    most = sum(SPREAD_MOST * float(np.max(np.abs(g[n]), initial=0.0)) * float(np.sum(np.abs(np.asarray(v))))
               for n, v in t.moves.items())
    return t.test.distance <= t.test.tolerance + min(most, SPREAD_MOST * abs(t.test.derivative.value))


def _spread_findings(run: Run, spread: Blocks, rounding: bool) -> list[Finding]:
    """What the finer gradient showed: a rounding far above a few ulps, or a difference that is no rounding."""
    s = run.setup
    worst = max(float(np.max(np.abs(spread[k]), initial=0.0)) for k in spread)
    top = max(largest_magnitude(s.g[k]) for k in s.g)
    lower = sorted({str(v.dtype) for v in s.native.values() if v.dtype != np.float64})
    dtypes = "/".join(lower) or "float64"
    copy = "its float64 copy" if lower else "an extended-precision copy (np.longdouble)"
    tiny = np.finfo(float).tiny
    if not rounding:
        return [Finding(
            "precision", f"{s.fns.grad_name} at your {dtypes} point and at {copy} differ by up to {worst:.2g}, "
            f"{worst / max(top, tiny):.1g} of its largest entry: more than rounding, so it depends on the dtype or on "
            f"earlier calls, and the check charges none of it.", None, "warning")]
    if worst <= _SPREAD_SAID * GRADIENT_ROUNDOFF_ULPS * s.eps_grad * top:
        return []
    return [Finding(
        "precision", f"{s.fns.grad_name} at your {dtypes} point and at {copy} differ by up to {worst:.2g} "
        f"({worst / max(top, tiny):.1g} of its largest entry, {worst / max(s.eps_grad * top, tiny):.0f} times "
        f"{dtypes}'s rounding of it): the gradient's own rounding at {dtypes}, charged in the tolerances. A difference "
        f"of nearly equal numbers loses that much (p - 1 of a softmax near 1: compute it as minus the sum of the other "
        f"probabilities; a residual of nearly equal products).", None, "info")]


def ignores_argument(run: Run) -> tuple[ParamReport, ...]:
    """Rows for a loss that returned exactly f0 at every perturbed point (empty when it did not)."""
    s = run.setup
    moved = [t for t in run.tested if t.test.analytic != 0 and abs(t.test.analytic) > t.test.tolerance]
    if not moved or any(v != s.f0 for v in run.probe.values):
        return ()
    if _changes_far_away(run):  # flat only here (dead units): a non-zero gradient is simply wrong
        s.findings.append(Finding(
            "locally_flat",
            "the loss is exactly constant around this point (every unit dead or saturated?) yet changes further "
            "away: its gradient here is zero, so a non-zero analytic gradient is wrong.", None, "info"))
        return ()
    reason = "the loss returned exactly the same value at every perturbed point: it does not depend on its argument"
    s.findings.append(Finding(
        "loss_ignores_params",
        f"{reason}, although d{'/d'.join(s.space.names)} is not zero. A loss like `f = lambda W: net.loss(X, y)[0]` "
        f"reads the live arrays in net.params and ignores W (the idiom works with eval_numerical_gradient, which "
        f"perturbs those arrays in place): pass inplace=True with params=net.params, or make the loss use its "
        f"argument.", None, "error"))
    return tuple(joint_row(run, n, float("inf"), "inconclusive", reason) for n in s.space.names)


# A loss constant around x is asked once more at a point this many entry scales away: a loss that ignores its
# argument returns f0 there too, a locally flat one (dead ReLUs) does not. Four scales: far enough to wake
# a unit whose pre-activation sits a few scales below its kink.
_FAR = 4.0


def _changes_far_away(run: Run) -> bool:
    s = run.setup
    w = shift_direction(s.x, 11)
    for sign in (1.0, -1.0):  # both ways: a dead unit comes alive on one side of its kink
        far = {k: (v + sign * _FAR * w[k]).astype(v.dtype, copy=False) for k, v in s.x.items()}
        try:
            if s.fns.loss_at(far) != s.f0:
                return True
        except DerivcheckError:  # outside the loss's domain: no evidence that way
            continue
    return False


def report_findings(run: Run, outcomes: dict[str, ParamOutcome], ignored: tuple) -> tuple[list[Finding], TaylorResult | None, str]:
    """All findings (most important first), the Taylor test and the overall verdict."""
    s = run.setup
    shared = _common_factor(run, outcomes)
    findings = list(s.findings) + shared  # the loss's factor says it for every parameter at once
    for name in s.space.names:
        if name in outcomes:
            said = ("scale", "sign", "mean_vs_sum", "unexplained") if shared else ()
            findings.extend(f for f in outcomes[name].findings if f.kind not in said)
    findings.extend(_degeneracies(run, outcomes))
    findings.extend(_scale_warnings(run))
    findings.extend(_mutations(run))
    findings.extend(Finding("convention", c, None, "info") for c in sorted(s.fns.conventions))
    if run.kinks:
        findings.append(Finding(
            "kink",
            f"{len(run.kinks)} check(s) sit on a non-differentiable point (ReLU at 0, |x| at 0, tied maxima); there the "
            f"analytic value was accepted only as a valid subgradient (within the one-sided derivatives, or within "
            f"the sum of the coincident kinks' own ranges).", None, "info"))
    findings.extend(_invalid_kinks(run))
    findings.extend(_what_decided(run))
    verdicts = [o.report.verdict for o in outcomes.values()] or ["inconclusive"]
    if any(f.kind == "stateful_gradient" and f.severity == "error" for f in findings):
        verdict = "fail"  # a gradient that changes with earlier calls is wrong whatever this call returned
    elif ignored or any(f.kind == "nondeterministic" for f in findings):
        verdict = "inconclusive"
    else:
        verdict = "fail" if "fail" in verdicts else ("inconclusive" if "inconclusive" in verdicts else "pass")
    severity = {"error": 0, "warning": 1, "info": 2}
    findings.sort(key=lambda f: severity.get(f.severity, 3))
    return findings, _taylor(run, verdict), verdict


def _what_decided(run: Run) -> list[Finding]:
    """With rtol/atol given: whether the user's tolerance or the finite differences' own floor decided."""
    p = run.probe
    if not (p.rtol or p.atol):
        return []
    given = ", ".join(f"{k}={v:g}" for k, v in (("rtol", p.rtol), ("atol", p.atol)) if v)
    needed = [t for t in run.tested if t.test.passed and t.test.decides and t.test.distance > t.test.own_tolerance]
    if needed:
        t = needed[0]
        text = (f"your tolerance ({given}) decided: {len(needed)} comparison(s) passed only within it (the {t.label} "
                f"direction: |analytic - numeric| {t.test.distance:.1e}, the finite differences' own tolerance "
                f"{t.test.own_tolerance:.1e}).")
    else:
        text = (f"the finite-difference floor decided: every comparison agreed within the differences' own "
                f"tolerance, without needing yours ({given}).")
    return [Finding("user_tolerance", text, None, "info", detail={"decided_by": "user" if needed else "floor"})]


def _invalid_kinks(run: Run) -> list[Finding]:
    """A value outside every subgradient at a kink: what that means, and the one way it can mislead."""
    bad = [k for k in run.kinks if not k.valid_subgradient and k.resolution != "unresolved"]
    if not bad:
        return []
    k = bad[0]
    where = f"d{k.param}{list(k.index)}" if k.index is not None and k.param else f"the {k.direction} direction"
    return [Finding(
        "kink_invalid",
        f"at a non-differentiable point ({where}) the analytic value {k.analytic:.6g} is outside the valid range "
        f"[{k.left:.6g}, {k.right:.6g}]: no choice of one-sided derivatives gives it (a tie's gradient copied to "
        f"every tied entry, or dropped; a ReLU mask outside [0, 1] at 0?). Kinks of two units whose inputs "
        f"coincide exactly (duplicated or opposite rows of integer data) cannot be told apart: if that is your case, "
        f"check at a point off the ties.", k.param, "warning")]


def _taylor(run: Run, verdict: str) -> TaylorResult | None:
    """The Taylor test on the random direction's points. Its ladder stepped past kinks near x (refined, or kinks
    crowding its stencil) counts as crossing them; an order near 1 is called wrong only under a failed check."""
    random = next((t for t in run.tested if t.label.startswith("random") and "only" not in t.label), None)
    if random is None or not run.probe.values or any(t.test.derivative.jump for t in run.tested):
        return None  # no Taylor expansion exists across a jump
    d = random.test.derivative
    crossed = bool(run.kinks) or d.kink or d.refined or not random.test.decides
    taylor = taylor_test(random.trace, run.setup.f0, random.test.analytic, run.probe.noise, crossed)
    if verdict != "fail" and taylor.note == WRONG_NOTE:
        return replace(taylor, note=NOT_A_VERDICT_NOTE)
    return taylor


def _common_factor(run: Run, outcomes: dict[str, ParamOutcome]) -> list[Finding]:
    """One factor shared by every parameter, each failing with it, points at the loss, not at one layer."""
    names = run.setup.space.names
    if len(names) < 2 or any(name not in outcomes or outcomes[name].report.verdict != "fail" for name in names):
        return []
    factors = _named_factors(outcomes, names)
    if factors is None:
        factors = _entry_factors(run, outcomes, names)
    if factors is None or not np.allclose(factors, factors[0], rtol=1e-6, atol=0):
        return []
    c = float(factors[0])
    head, why = factor_phrase(c)
    return [Finding("scale_all", f"every parameter's gradient is {head}: the factor belongs to the loss, not to one "
                                 f"layer's backward; {why}.", None, "error", factor=c)]


def _named_factors(outcomes: dict[str, ParamOutcome], names: tuple[str, ...]) -> list[float] | None:
    """The factor each parameter's own diagnosis found, if every one found one."""
    out = []
    for name in names:
        scale = [f for f in outcomes[name].findings if f.kind in ("scale", "mean_vs_sum", "sign") and f.factor is not None]
        if not scale:
            return None
        out.append(float(scale[0].factor))
    return out


def _entry_factors(run: Run, outcomes: dict[str, ParamOutcome], names: tuple[str, ...]) -> list[float] | None:
    """analytic/numeric at every entry, where every entry of every parameter was found wrong (parameters too small
    for a factor of their own: the shared factor across them is the evidence)."""
    wrong = [e for name in names for e in outcomes[name].wrong]
    if len(wrong) < 2 or len(wrong) != sum(run.setup.x[n].size for n in names) or any(e.numeric == 0 for e in wrong):
        return None
    return [e.analytic / e.numeric for e in wrong]


def _degeneracies(run: Run, outcomes: dict[str, ParamOutcome]) -> list[Finding]:
    """Warnings on passing parameters: a symmetric point, units that get no gradient."""
    out = []
    for name in run.setup.space.names:
        o = outcomes.get(name)
        if o is None or o.report.verdict != "pass":
            continue
        x = run.setup.x[name]
        for found in (symmetric_point(name, x), dead_units(name, x.shape, run.setup.g.zero_columns(name))):
            if found is not None:
                out.append(found)
    return out


def _scale_warnings(run: Run) -> list[Finding]:
    """Entries far below 1 get an absolute step larger than themselves: say so."""
    step = relative_step(run.probe.eps_eval)
    out = []
    for name, v in run.setup.x.items():
        top = largest_magnitude(v)
        if 0 < top < step:
            out.append(Finding(
                "step_scale",
                f"every entry of {name} is below {top:.2g}, smaller than the finite-difference step {step:.2g}: the "
                f"differences probe the loss far from these values (a kink or sharp curvature there would mislead); "
                f"rescale {name} to order 1 for the check if you can.", name, "warning"))
    return out


def _mutations(run: Run) -> list[Finding]:
    out = []
    for key, change in run.setup.fns.mutations.items():
        fname, pname = key.split(":", 1)
        out.append(Finding(
            "mutation",
            f"{fname} modifies its input {pname!r} in place (entries changed by up to {change:.3g}); derivcheck passed "
            f"copies (or restored your arrays), but your training loop will see the change.", pname, "warning"))
    return out
