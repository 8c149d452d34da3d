"""``blame_lines``: the steps of blame.py run in order, and the answer assembled."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Callable

import numpy as np

from derivcheck.checker.lines.blame import (Blamed, classify, inputs_status, measure_forward, measure_params, param_targets,
                    status_of_initial, target_order, unchecked_inputs, wrong_params)
from derivcheck.checker.lines.cause import Cause, find_cause
from derivcheck.checker.lines.classify import BAD, HELPER, PARTIAL, Classified, ForwardIndex
from derivcheck.checker.lines.measure import BudgetExhausted
from derivcheck.checker.lines.params import frozen_copies, unchanged
from derivcheck.checker.lines.replay import ENTRY_RELATIVE, ENTRY_SAFETY, Context, Event
from derivcheck.report.results import LineBlame
from derivcheck.checker.lines.session import REPAIR_RELATIVE, Session, UserCodeError
from derivcheck.checker.lines.source import SourceIndex
from derivcheck.checker.lines.trace import Record

ENTRIES_SHOWN = 3  # the worst few entries of the blamed variable: yours vs true
# Loss and gradient runs tracing may spend on one failure: a few values measured entry by entry in a small net.
# Larger values are left undecided, with the count, rather than traced for minutes.
DEFAULT_BUDGET = 4000


def blame_lines(loss: Callable, grad: Callable, params: Any, *, seed: int = 0, budget: int | None = None,
                failed: tuple[str, ...] = (), focus: tuple = ()) -> LineBlame:
    """Name the line of ``grad`` that goes wrong first, confirm it by repair, and say why (``budget``: user-function
    calls at most, ``DEFAULT_BUDGET`` by default; ``failed``: the parameters a check found wrong; ``focus``: the
    wrong entries it localized, a tuple of indices per parameter in order)."""
    started = time.perf_counter()
    before = frozen_copies(params)
    session = Session(loss, grad, params, seed, DEFAULT_BUDGET if budget is None else budget, focus)
    try:
        answer = _blame(session, failed)
    except BudgetExhausted as exhausted:
        answer = LineBlame("undecided", reason=str(exhausted))
    except UserCodeError as error:  # the user's code raised: say so, blame nothing
        answer = LineBlame("unreadable", reason=f"the user's code raised {error}")
    if not unchanged(params, before):  # cannot happen (only copies are handed out); never stay silent
        answer = replace(answer, reason=(answer.reason or "") + " [the parameters were modified]")
    return replace(answer, evaluations=session.counter.used, seconds=time.perf_counter() - started)


def _blame(session: Session, failed: tuple[str, ...]) -> LineBlame:
    session.base_loss, forward = session.traced_loss(keep=True)
    grads, backward = session.traced_grad(keep=True)
    if forward.frames_seen == 0 or backward.frames_seen == 0:
        which = "loss" if forward.frames_seen == 0 else "gradient"
        return LineBlame("unreadable", reason=f"the {which} runs no code whose source can be read "
                                              "(compiled, exec'd or library code): no line to name")
    truth = measure_params(session)
    session.known = grads
    wrong = wrong_params(session, truth, grads)
    if not wrong and failed:
        # The check's own directions saw an error these cannot (one entry among many, say): "agrees" would be false.
        return LineBlame("undecided", wrong_params=failed, reason=(
            f"the check found d{', d'.join(failed)} wrong, but tracing measures one random direction per parameter, "
            f"which does not see that error (a few wrong entries among many, say): no line named"))
    if not wrong:
        undecided = any(m.kinked for m in truth.measured)
        return LineBlame("undecided" if undecided else "no_line",
                         reason="a kink makes the parameters' finite differences undecided" if undecided
                         else "every parameter gradient agrees with finite differences of the loss")
    wrong_names = tuple(session.names[k] for k in sorted(wrong))
    if not backward.records:
        return LineBlame("unreadable", reason="the gradient's traced code holds no float arrays in its locals",
                         wrong_params=wrong_names)
    values = measure_forward(session, forward.records)
    index = ForwardIndex([v.values for v in values if not v.measured.flat] + session.arrays)
    targets = values + param_targets(session, truth)
    classified = classify(backward.records, index, targets)
    blamed, kinks = _search(session, truth, wrong, backward.records, classified, targets, grads)
    if blamed is None:
        status = "undecided" if kinks else "no_line"
        reason = ("a kink at a candidate's forward value leaves its true adjoint undecided" if kinks
                  else "no single line's result, replaced by its true adjoint, repairs the wrong gradients "
                       f"({', '.join(wrong_names)})")
        return LineBlame(status, reason=reason, wrong_params=wrong_names)
    cause = _cause(session, blamed, backward.records, index)
    unchecked = unchecked_inputs(blamed.record, backward.records, classified)
    if unchecked and cause.kind is None:
        # An input that could not be measured may carry an earlier slip; only a corrected line that reproduces
        # the true values from the inputs as computed puts the fault on this line.
        first = unchecked[-1]
        return LineBlame("no_line", wrong_params=wrong_names, reason=(
            f"the first value found wrong ({blamed.record.name}, line {blamed.record.line}) reads {first.name} "
            f"(line {first.line}), which the backward computes but which matches no value the forward names, so "
            f"whether {first.name} is right could not be measured: name the forward's intermediates (the "
            f"pre-activation z = ... before an activation, for instance) and the line can be found"))
    answer = _answer(blamed, cause, wrong_names)
    if unchecked:
        answer = replace(answer, details={**answer.details, "unmeasured_inputs": ", ".join(r.name for r in unchecked)})
    return answer


def _search(session, truth, wrong, back: list[Record], classified: Classified, targets, grads):
    """The first unexplained array, in execution order, with right inputs, that a repair confirms."""
    cache: dict[int, tuple] = {}
    kinks = False
    for b in back:
        if b.initial:
            classified.status[b.index] = status_of_initial(b, back, classified)
            continue
        if b.index in classified.status:
            continue
        if inputs_status(b, back, classified) == BAD:
            classified.status[b.index] = BAD
            continue
        classified.status[b.index] = HELPER  # unless a repair below says it is the wrong adjoint
        if not _moves_wrong_gradient(session, b, wrong, grads):
            continue
        for target in target_order(b, targets, classified, wrong, back):
            true, error, kinked = _full_adjoint(session, target, cache)
            if kinked.any():
                kinks = True
                continue
            if _repairs(session, truth, b, true, wrong):
                return Blamed(b, target, true, error, _chain(b, back, classified)), kinks
            others = _repairs_every_step(session, truth, b, target, back, targets, wrong, cache)
            if others:
                return Blamed(b, target, true, error, _chain(b, back, classified), others), kinks
    return None, kinks


def _repairs_every_step(session, truth, b: Record, target, back, targets, wrong, cache) -> list:
    """A line inside a loop is wrong at every step: repair all its runs at once, each with the true
    adjoint of the forward value computed at the same step (matched by the loop variables' values).
    Returns the runs with their true values when that repairs the gradients, else []."""
    runs = [r for r in back if not r.initial and (r.file, r.line, r.name) == (b.file, b.line, b.name)]
    if len(runs) < 2 or target.record is None:
        return []
    same_line = {tuple(v for _, v in t.record.steps): t for t in targets if t.record is not None
                 and (t.record.file, t.record.line, t.record.name) == (target.record.file, target.record.line, target.record.name)}
    edits, found = {}, []
    for run in runs:
        match = same_line.get(tuple(v for _, v in run.steps))
        if match is None or not match.usable:
            return []
        true, error, kinked = _full_adjoint(session, match, cache)
        if kinked.any() or true.size != run.value.size:
            return []
        edits[run.key] = lambda old, fixed=true.reshape(run.value.shape): fixed
        found.append((run, true.reshape(run.value.shape), error.reshape(run.value.shape)))
    repaired, _ = session.traced_grad(edits)
    return found if wrong_params(session, truth, repaired, REPAIR_RELATIVE) < wrong else []


def _moves_wrong_gradient(session: Session, b: Record, wrong: set[int], grads: list) -> bool:
    """Does changing this array change a wrong parameter gradient? (one gradient run)"""
    noise = session.rng.standard_normal(b.value.shape) * (1 + float(np.max(np.abs(b.value))))
    moved, _ = session.traced_grad({b.key: lambda old: old + noise})
    return any(grads[k] is None or moved[k] is None or not np.array_equal(grads[k], moved[k]) for k in wrong)


def _full_adjoint(session: Session, target, cache: dict):
    if id(target) not in cache:
        if target.record is None:
            cache[id(target)] = session.param_gradient(target.param)
        else:
            cache[id(target)] = session.value_gradient(target.record.key, target.values)
    return cache[id(target)]


def _repairs(session: Session, truth, b: Record, true: np.ndarray, wrong: set[int]) -> bool:
    fixed = true.reshape(b.value.shape) if true.size == b.value.size else true
    repaired, _ = session.traced_grad({b.key: lambda old: fixed})
    still = wrong_params(session, truth, repaired, REPAIR_RELATIVE)
    return still < wrong


def _chain(b: Record, back: list[Record], classified: Classified) -> list[Record]:
    """The records that build b in place (x = zeros; x[i] += ... in a loop), ending with b."""
    chain = [b]
    for earlier in reversed(back[: b.index]):
        if earlier.frame == b.frame and earlier.name == b.name and not earlier.initial:
            if classified.status.get(earlier.index) != PARTIAL and earlier.line != b.line:
                break  # earlier runs of the same line in a loop belong to it (x = ... each step)
            chain.append(earlier)
    return chain[::-1]


def _cause(session: Session, blamed: Blamed, back: list[Record], index: ForwardIndex) -> Cause:
    chain = blamed.chain
    lines = {r.line for r in chain}
    # Each of the line's runs at other loop steps is replayed on right inputs: the runs before it
    # are replaced by their true values, as the repair did.
    edits = {run.key: (lambda old, fixed=true: fixed) for run, true, _ in blamed.others}
    _, captured = session.traced_grad(edits, capture_at=(blamed.record.path, lines), keep=True)
    by_key = {r.key: r for r in captured.records}
    events = []
    for r in chain:
        twin = by_key.get(r.key)
        if twin is None or twin.capture is None:
            return Cause(None, "the line's inputs could not be captured again", None, None, {}, None)
        events.append(Event(r.line, twin.capture.namespace, twin.capture.globals, r.steps))
    source = SourceIndex.of(blamed.record.file)
    statements = {line: source.statement_at[line] for line in lines if line in source.statement_at}
    sources = {line: source.text(line) for line in lines}
    ctx = Context(blamed.record.name, events, statements, sources,
                  blamed.true.reshape(blamed.true.shape), blamed.error, blamed.record.value, index.contains)
    if blamed.true.shape != blamed.record.value.shape and blamed.true.size == blamed.record.value.size:
        ctx.true, ctx.error = blamed.true.reshape(blamed.record.value.shape), blamed.error.reshape(blamed.record.value.shape)
    # The line's other runs (other loop steps in this frame) must be corrected by the same edit.
    others = []
    for run, true, error in blamed.others:
        twin = by_key.get(run.key)
        if run.key != blamed.record.key and twin is not None and twin.capture is not None:
            event = Event(run.line, twin.capture.namespace, twin.capture.globals, run.steps)
            others.append(Context(run.name, [event], statements, sources, true, error, run.value, index.contains))
    return find_cause(ctx, others)


def _answer(blamed: Blamed, cause: Cause, wrong_names: tuple) -> LineBlame:
    record = blamed.record
    line = cause.line or record.line
    source = SourceIndex.of(record.file)
    step = record.steps or None
    if cause.first_event is not None and len(blamed.chain) > 1:
        step = blamed.chain[cause.first_event].steps or None
    chosen = next((r for r in blamed.chain if r.line == line), record)
    return LineBlame(
        "blamed", file=record.file, line=line, source=source.text(line), variable=record.name,
        step=step if chosen.steps else None, function=record.function, entries=_worst_entries(record.value, blamed.true, blamed.error),
        cause=cause.kind, cause_text=cause.text, corrected=cause.corrected, confirmed_by_repair=True,
        wrong_params=wrong_names, details=dict(cause.details))


def _worst_entries(yours: np.ndarray, true: np.ndarray, error: np.ndarray | None = None) -> tuple:
    if yours.shape != true.shape:
        try:  # (m, m) where (m, 1) belongs: each column against the true one
            true = true.reshape(yours.shape) if yours.size == true.size else np.broadcast_to(true, yours.shape)
        except ValueError:
            return ()
    gap = np.abs(yours - true)
    order = np.argsort(-gap, axis=None)[:ENTRIES_SHOWN]
    if error is not None and np.size(error) == gap.size:  # only entries that differ beyond the measurement's error
        bound = ENTRY_SAFETY * np.reshape(error, gap.shape) + ENTRY_RELATIVE * np.abs(true)
        order = [k for k in order if gap.flat[k] > bound.flat[k]] or list(order[:1])
    return tuple((tuple(int(i) for i in np.unravel_index(k, yours.shape)), float(yours.flat[k]), float(true.flat[k]))
                 for k in order)
