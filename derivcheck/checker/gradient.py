"""``check_gradient`` and ``assert_gradient``: the numeric checker's orchestration.

The stages, each in its own module: ``evaluation`` (guarded functions, evaluation point,
precision), ``joint`` (directions shared by all parameters: the pass path), ``attribution``
(the failure path: one wrong entry, per-parameter tests, per-entry checks, bisection),
``findings`` (what the report says besides the rows). The engine underneath,
``numeric/``, works on any NumPy function and knows nothing of reports.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from derivcheck.checker.attribution import examine, failing_outcomes, run_full
from derivcheck.checker.diagnosis import LayerContext
from derivcheck.errors import GradientMismatch, InputError, UnknownOptionError
from derivcheck.checker.evaluation import Setup, assert_untouched, loss_differs, prepare, regrad_differs
from derivcheck.checker.verdict import charge_gradient_rounding, ignores_argument, report_findings, settle_precision
from derivcheck.checker.lines import LineBlame, trace_failure
from derivcheck.checker.joint import certified_smooth, discontinuous_block, passing_block, run_joint, undecided_block
from derivcheck.numeric.directional import CoarserPrecision, Probe
from derivcheck.checker.outcome import ParamOutcome, Run
from derivcheck.checker.progress import Progress
from derivcheck.checker.state import first_print, stateful_findings
from derivcheck.checker.entries import ENTRY_CHECK_MAX_ENTRIES
from derivcheck.report.results import Evaluations, GradientReport
from derivcheck.numeric.tolerances import LOSS_ROUNDOFF_ULPS, LOW_PRECISION_EPS

MODES = ("auto", "full", "directional")
OPTIONS = ("rtol", "atol", "seed", "mode", "directions", "inplace", "title", "progress", "trace")
# What people coming from other checkers type, and what it is called here.
_ALIASES = {"tol": "rtol or atol", "rel_tol": "rtol", "abs_tol": "atol", "eps": "nothing: the step is chosen from the "
            "precision", "h": "nothing: the step is chosen from the precision", "fast_mode": "mode='directional'",
            "random_state": "seed", "n_directions": "directions"}


def reject_unknown(function: str, unknown: dict[str, Any], options: tuple[str, ...]) -> None:
    """A clear error for keywords a function does not take, listing the ones it does."""
    if not unknown:
        return
    hints = [f"{k!r} is {_ALIASES[k]}" for k in unknown if k in _ALIASES]
    raise UnknownOptionError(
        f"{function} got unknown option(s) {sorted(unknown)}; it takes {', '.join(options)}"
        + (f" ({'; '.join(hints)})" if hints else ""))
# A parameter along whose directions coincident kinks were too many to separate (ties in
# hundreds of pooling windows) is checked entry by entry up to this size.
KINK_ENTRY_CHECK_MAX_ENTRIES = 4096
# Keeps derivcheck's random directions apart from NumPy's default_rng(seed) stream.
_DIRECTION_STREAM = 0xDC_5EED
# Noise this many times the rounding model: worth one more call to see whether the loss is random.
NOISY = 64.0
# The first loss values read for their precision while the joint directions run (a float32 loss handed back as
# a float is seen within the first rung, not after a pass spent at float64's noise).
PRECISION_WATCH = 8


def check_gradient(
    loss: Callable[[Any], Any],
    grad: Callable[[Any], Any],
    params: Any,
    *,
    rtol: float | None = None,
    atol: float | None = None,
    seed: int = 0,
    mode: str = "auto",
    directions: int = 1,
    inplace: bool = False,
    title: str = "gradient check",
    progress: bool | None = None,
    trace: bool = True,
    _names: tuple[str, str] = ("loss", "grad"),
    _context: LayerContext | None = None,
    **unknown: Any,
) -> GradientReport:
    """Check a hand-written gradient against finite differences; find and explain errors.

    ``params`` is an array, a dict of arrays or a list/tuple of arrays; ``loss(params)``
    returns a scalar and ``grad(params)`` the same structure as ``params``. ``mode`` is
    ``"auto"`` (directions shared by all parameters, entries checked where a failure needs
    them), ``"full"`` (every entry too) or ``"directional"`` (never entry by entry);
    ``directions`` is the number of random directions; ``inplace=True`` perturbs the
    user's own arrays (for a loss that reads them instead of its argument) and restores
    them bit for bit. ``progress`` prints a line on stderr now and then once a check has run
    for 2 s: ``None`` (the default) only when stderr is a terminal, ``True`` always, ``False`` never.
    On a failure, ``trace`` (the default) follows your own ``loss`` and ``grad`` line by line and
    names the first line of the backward pass whose result is wrong (``report.line_blame``); its
    cost is printed with it. ``trace=False`` skips it.

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
    reject_unknown("check_gradient", unknown, OPTIONS)
    _validate(loss, grad, mode, seed, rtol, atol, directions, inplace)
    if progress is not None and not isinstance(progress, bool):
        raise InputError(f"progress must be True, False or None; got {progress!r}")
    shown = Progress(progress)
    options = CheckOptions(rtol, atol, int(seed), mode, directions, inplace, title, _names, _context)
    try:
        report, complete = _check(loss, grad, params, options, shown, start)
    finally:
        shown.finish()
    if report.verdict == "fail" and trace and not inplace:  # a loss that reads the user's arrays has no argument to trace
        failed = tuple(r.name for r in report.params if r.verdict == "fail")
        # Where the check named every wrong entry, tracing measures those alone and takes the rest as right.
        focus = tuple(tuple(e.index for e in report.wrong_entries.get(r.name, ())) if r.name in complete else ()
                      for r in report.params)
        report = _with_line_blame(report, trace_failure(loss, grad, params, int(seed), failed, focus))
    return report


def _with_line_blame(report: GradientReport, blame: LineBlame) -> GradientReport:
    """The report with the blamed line; where the line explains what no whole-gradient cause did, the
    'unexplained' findings say so instead of leaving the numbers without a cause."""
    findings = report.findings
    if blame.status == "blamed" and blame.cause is not None:
        explained = f"No single cause in d{{}} alone explains these numbers: the wrong line {blame.location} does"
        findings = tuple(replace(f, message=f.message.replace("No single cause explains these numbers",
                                                              explained.format(f.param)))
                         if f.kind == "unexplained" else f for f in findings)
    return GradientReport(**{**report.__dict__, "findings": findings, "line_blame": blame})


@dataclass(frozen=True)
class CheckOptions:
    """What a check was asked for, validated: passed down the stages as one record."""

    rtol: float | None
    atol: float | None
    seed: int
    mode: str
    directions: int
    inplace: bool
    title: str
    names: tuple[str, str]  # what the two functions are called in messages: ("loss", "grad"), ("forward", "backward")
    context: LayerContext | None  # what a layer check knows besides the parameters


def _check(loss: Callable[[Any], Any], grad: Callable[[Any], Any], params: Any, o: CheckOptions, shown: Progress,
           start: float) -> tuple[GradientReport, set[str]]:
    """The report, and the parameters whose wrong entries it names completely (not a sample's failures)."""
    shown.stage = "directions"
    setup = prepare(loss, grad, params, inplace=o.inplace, names=o.names, progress=shown)
    first = first_print(setup) if setup.g.lean else None  # read now: the joint lines let the gradient go
    noise = LOSS_ROUNDOFF_ULPS * setup.eps_eval * abs(setup.f0)
    probe = Probe(setup.fns.loss_at, setup.x, setup.f0, noise, setup.eps_eval, setup.eps_grad,
                  float(o.rtol or 0.0), float(o.atol or 0.0), setup.fns.grad_at)
    # Mixed with a constant so that the directions are not the user's own default_rng(seed) draws
    # (parameters drawn with the same seed would make the "random" direction the point itself).
    run = Run(setup, probe, np.random.default_rng([_DIRECTION_STREAM, o.seed]), o.mode, context=o.context)
    probe.watch = PRECISION_WATCH
    try:
        run_joint(run, o.directions)
    except CoarserPrecision:
        pass  # settled below, from the values seen so far
    probe.watch = 0
    if settle_precision(run):
        run_joint(run, o.directions)
    ignored = ignores_argument(run)
    if first is not None:
        # Before the gradient is next fetched, or once the outcomes are decided: that fetch is then its own call.
        setup.g.before_first_fetch = lambda: _state_after_lines(setup, probe, first)
    else:
        probe.work.clear()  # the perturbed point's buffer, idle while the state check holds its own point
        setup.findings.extend(stateful_findings(setup, probe))
    charge_gradient_rounding(run)
    outcomes = {} if ignored else _decide(run)
    setup.g.run_before_first_fetch()  # where no read after the joint lines ran the state check
    # A failure that wrong entries, found among the directions and each confirmed by its own check, account for is
    # explained: a random loss does not make one entry fail the same way along four directions.
    doubtful = [o for o in outcomes.values() if o.report.verdict != "pass" and not _localized(o)]
    if doubtful or probe.noise > NOISY * LOSS_ROUNDOFF_ULPS * setup.eps_eval * abs(setup.f0):
        setup.findings.extend(loss_differs(setup))
    if any(o.report.verdict == "fail" for o in outcomes.values()) and not setup.grad_repeats:
        setup.findings.extend(regrad_differs(setup))
    findings, taylor, verdict = report_findings(run, outcomes, ignored)
    assert_untouched(setup)
    ordered = [outcomes[n] for n in setup.space.names] if outcomes else []
    report = GradientReport(
        verdict=verdict,
        params=tuple(o.report for o in ordered) or ignored,
        wrong_entries={o.report.name: tuple(o.wrong) for o in ordered if o.wrong},
        kinks=tuple(run.kinks),
        findings=tuple(findings),
        taylor=taylor,
        evaluations=Evaluations(setup.fns.loss_calls, setup.fns.grad_calls),
        seconds=time.perf_counter() - start,
        seed=o.seed,
        evaluated_in=setup.evaluated_in,
        title=o.title,
        directions=tuple(t.as_check() for t in run.tested),
        plot_source=(loss, grad, params),
    )
    return report, {o.report.name for o in ordered if o.complete}


def _state_after_lines(setup: Setup, probe: Probe, first: Any) -> None:
    """The state check of a gradient let go of between reads, made before any read fetches it again (a fetch is the
    gradient at x only if it repeats; the check's own call at x is then held, and serves that read): after the
    joint lines, which read it before their loss calls, and whose last loss call away from x stands for the loss
    call at y (one loss evaluation fewer). A gradient that does not repeat is held from its next fetch on."""
    setup.findings.extend(stateful_findings(setup, probe, first))
    if not setup.grad_repeats:
        setup.g.lean = False
        setup.fns.before_call = None


def _localized(o: ParamOutcome) -> bool:
    """A failing large parameter whose wrong entries were localized among its directions and confirmed one by one."""
    return o.report.verdict == "fail" and o.report.method == "directional" and o.complete and bool(o.wrong)


def _decide(run: Run) -> dict[str, ParamOutcome]:
    """Each parameter's outcome: the failure path for the implicated ones, the joint proof for the rest."""
    outcomes: dict[str, ParamOutcome] = {}
    explained = False
    if any(not t.test.passed for t in run.tested):
        if run.setup.fns.progress is not None:
            run.setup.fns.progress.stage = "locating the error"
        outcomes, explained = failing_outcomes(run)
    tangled = {k for t in run.tested if not t.test.decides for k in t.moves}
    # Low-precision stencils crowded with kinks: entry checks at the same wide step cross as many, so only a small
    # parameter's are worth their cost (a float32 ReLU net's 800 first-layer weights took 8,000 evaluations and
    # decided nothing).
    crowded = {k for t in run.tested if t.test.resolution == "kinks in the stencil" for k in t.moves}
    jumps = {k for t in run.tested if t.test.resolution == "discontinuous" for k in t.moves}
    # A direction through coincident kinks sees one projection of the Clarke set: a gradient outside the
    # set can still project inside it. A small parameter's entries, each its own projection, are cheap.
    kinked = {k for t in run.tested if t.test.derivative.kink for k in t.moves}
    for name in run.setup.space.names:
        if name in outcomes:
            continue
        size, auto = run.setup.x[name].size, run.mode == "auto"
        # In low precision a joint direction sees a wrong entry only above the noise of the whole
        # direction; a small parameter's own entries are cheap to check one by one. Not where the gradient's
        # slopes proved the joint stencils free of kinks: their step is then wide and their noise small.
        noisy = auto and run.probe.eps_eval > LOW_PRECISION_EPS and size <= ENTRY_CHECK_MAX_ENTRIES and not (
            certified_smooth(run, name))
        small_kinked = name in kinked and size <= ENTRY_CHECK_MAX_ENTRIES
        entry_limit = ENTRY_CHECK_MAX_ENTRIES if name in crowded else KINK_ENTRY_CHECK_MAX_ENTRIES
        if run.mode == "full" or noisy or (auto and (name in tangled and size <= entry_limit or small_kinked)):
            outcomes[name] = run_full(run, name)
            continue
        if name in jumps and not (size <= KINK_ENTRY_CHECK_MAX_ENTRIES and auto):
            outcomes[name] = discontinuous_block(run, name)
            continue
        if name in tangled:  # an undecided direction moved it and no entry check follows: undecided is not a pass
            outcomes[name] = undecided_block(run, name)
            continue
        outcome = passing_block(run, name, explained)
        if outcome is not None and outcome.report.verdict == "inconclusive" and auto and size <= ENTRY_CHECK_MAX_ENTRIES:
            full = run_full(run, name)  # the directions lacked power: a small parameter's own entries are cheap
            if full.report.verdict == "inconclusive":
                full.findings.extend(f for f in outcome.findings if f not in full.findings)
            outcome = full
        outcomes[name] = outcome if outcome is not None else examine(run, name, run.tested[-1])
    return outcomes


def _validate(loss: Any, grad: Any, mode: Any, seed: Any, rtol: Any, atol: Any, directions: Any, inplace: Any) -> None:
    if not callable(loss) or not callable(grad):
        bad = "loss" if not callable(loss) else "grad"
        raise InputError(f"{bad} must be callable; got {type(loss if bad == 'loss' else grad).__name__}")
    if mode not in MODES:
        raise InputError(f"mode must be one of {MODES}; got {mode!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise InputError(f"seed must be an int; got {type(seed).__name__}")
    for label, v in (("rtol", rtol), ("atol", atol)):
        if v is not None and (not isinstance(v, (int, float)) or not v >= 0 or not np.isfinite(v)):
            raise InputError(f"{label} must be a non-negative finite number or None; got {v!r}")
    if not isinstance(directions, int) or isinstance(directions, bool) or directions < 1:
        raise InputError(f"directions must be a positive int; got {directions!r}")
    if not isinstance(inplace, bool):
        raise InputError(f"inplace must be True or False; got {inplace!r}")


def assert_gradient(loss: Callable[[Any], Any], grad: Callable[[Any], Any], params: Any, **kwargs: Any) -> GradientReport:
    """Like :func:`check_gradient`, but raise :class:`GradientMismatch` unless the verdict is pass.

    Examples
    --------
    >>> import numpy as np, derivcheck as dc
    >>> _ = dc.assert_gradient(lambda w: (w**2).sum(), lambda w: 2 * w, np.ones(3))
    """
    __tracebackhide__ = True  # pytest shows the report, not this frame
    report = check_gradient(loss, grad, params, **kwargs)
    if not report.ok:
        raise GradientMismatch(report)
    return report
