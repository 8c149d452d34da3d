"""Name the first line of a backward pass whose result is wrong while everything it reads is right.

1. The parameters' true directional derivatives say which returned gradients are wrong.
2. The loss runs traced: its float arrays are the forward values; each one's adjoint is measured
   along one random direction of its own (four loss runs each, whatever its size).
3. The gradient runs traced: each array it computes is a recomputed forward value, a right
   adjoint (matched by value), part of an accumulation, or unexplained.
4. In execution order, an unexplained array whose inputs are all right, and which moves a wrong
   parameter gradient, is replaced by the true adjoint of a forward value of its shape (measured
   entry by entry); if the wrong parameter gradients shrink, that line is the cause. Arrays whose
   replacement repairs nothing are helpers (a mask, a transposed activation), never blamed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from derivcheck.checker.lines.classify import (HELPER, BAD, CANDIDATE, DATA, FORWARD, GOOD_INPUTS, PARTIAL, RIGHT, Classified,
                       ForwardIndex, ForwardValue, is_partial, matches, next_of_same_name, statement_of)
from derivcheck.checker.lines.session import Session, agrees
from derivcheck.checker.lines.source import statement_reads
from derivcheck.checker.lines.trace import Record

MAX_TARGETS_PER_CANDIDATE = 6  # forward values of a candidate's shape tried, hinted names first
NAME_PREFIXES = ("dL_d", "dL", "delta_", "delta", "grad_", "grad", "d_", "g_", "d")
NAME_SUFFIXES = ("_grad", "_delta", "grad")


@dataclass
class ParamTruth:
    directions: list[np.ndarray]
    measured: list


@dataclass
class Blamed:
    record: Record
    target: ForwardValue
    true: np.ndarray
    error: np.ndarray
    chain: list[Record]
    others: list = field(default_factory=list)  # (record, true, error) of the line's other loop runs


def wrong_params(session: Session, truth: ParamTruth, grads: list, relative: float | None = None) -> set[int]:
    wrong = set()
    for k, (direction, measured) in enumerate(zip(truth.directions, truth.measured)):
        if measured.kinked:
            continue  # undecided here; never called wrong on a kink
        g = grads[k]
        if g is None:
            wrong.add(k)
            continue
        yours = float(np.vdot(g, direction))
        size = float(np.linalg.norm(g) * np.linalg.norm(direction))
        ok = agrees(measured, yours, size) if relative is None else agrees(measured, yours, size, relative)
        if not ok:
            wrong.add(k)
    return wrong


def measure_params(session: Session) -> ParamTruth:
    """Each parameter's derivative along one Gaussian direction; where the check localized wrong entries
    (``session.focus``), a Gaussian on those entries alone: one wrong entry among 10^5 is lost in a direction over
    all of them."""
    directions = [session.rng.standard_normal(a.shape) for a in session.arrays]
    if session.focus:
        for d, entries in zip(directions, session.focus):
            if entries:
                kept = [d[i] for i in entries]
                d[...] = 0.0
                for i, value in zip(entries, kept):
                    d[i] = value
    measured = [session.param_direction(k, d) for k, d in enumerate(directions)]
    return ParamTruth(directions, measured)


def measure_forward(session: Session, records: list[Record]) -> list[ForwardValue]:
    """One direction per forward array (aliases of an earlier array skipped)."""
    out: list[ForwardValue] = []
    for r in records:
        if (r.initial and not r.argument) or r.returned:
            continue
        alias = next((v for v in out if v.record.obj is r.obj and np.array_equal(v.values, r.value)), None)
        if alias is not None:
            alias.aliases.add(r.name)  # the same array under a new name: a name hint, not a new value
            continue
        u = session.rng.standard_normal(r.value.shape)
        out.append(ForwardValue(r, None, r.value, u, session.value_direction(r.key, u, r.value), r.name))
    return out


def param_targets(session: Session, truth: ParamTruth) -> list[ForwardValue]:
    return [ForwardValue(None, k, a, d, m, session.names[k])
            for k, (a, d, m) in enumerate(zip(session.arrays, truth.directions, truth.measured))]


def classify(back: list[Record], forward_index: ForwardIndex, targets: list[ForwardValue]) -> Classified:
    """Status of every backward record that needs no evaluation; candidates are decided later."""
    result = Classified()
    following = next_of_same_name(back)
    for b in back:
        if b.initial:
            continue
        if forward_index.contains(b.value):
            result.status[b.index] = FORWARD
            continue
        alias = any(a.obj is b.obj for a in back[: b.index])  # a = b: a new name, not a new adjoint
        hit = None if alias else next((t for t in targets if matches(b.value, t)), None)
        if hit is not None:
            result.status[b.index] = RIGHT
            result.matched[b.index] = hit
            result.matched_targets.add(id(hit))
        elif is_partial(b, following.get(b.index)):
            result.status[b.index] = PARTIAL
    return result


def status_of_initial(b: Record, back: list[Record], classified: Classified) -> str:
    """An argument or a value the frame started with is whatever its object was where it was made."""
    for earlier in reversed(back[: b.index]):
        if earlier.obj is b.obj and earlier.index in classified.status:
            return classified.status[earlier.index]
    return DATA


def inputs_status(b: Record, back: list[Record], classified: Classified) -> str:
    statement = statement_of(b)
    if statement is None:
        return BAD
    reads = statement_reads(statement)
    for earlier in reversed(back[: b.index]):
        if earlier.frame == b.frame and earlier.name in reads:
            reads.discard(earlier.name)
            if classified.status.get(earlier.index, DATA) not in GOOD_INPUTS:
                return BAD
    return CANDIDATE


def hinted_names(name: str) -> set[str]:
    base = name.split(".")[-1].split("[")[-1].strip("]'\"")
    hints = set()
    for prefix in NAME_PREFIXES:
        if base.startswith(prefix) and len(base) > len(prefix):
            hints.add(base[len(prefix):].lower())
    for suffix in NAME_SUFFIXES:
        if base.endswith(suffix) and len(base) > len(suffix):
            hints.add(base[: -len(suffix)].lower())
    return hints


def shape_fits(b: np.ndarray, v: np.ndarray) -> bool:
    if b.shape == v.shape or np.squeeze(b).shape == np.squeeze(v).shape:
        return True
    return b.ndim == v.ndim and all(x == y or x == 1 or y == 1 for x, y in zip(b.shape, v.shape))


def target_order(b: Record, targets: list[ForwardValue], classified: Classified, wrong: set[int],
                 back: list[Record] = ()) -> list[ForwardValue]:
    hints = hinted_names(b.name)
    # A value updated in place (g["w1"][3, 1] *= -1) is still the adjoint its array was matched to before.
    updated = {id(t) for i, t in classified.matched.items() if back and back[i].obj is b.obj}
    fitting = [t for t in targets if t.usable and (id(t) not in classified.matched_targets or id(t) in updated)
               and (t.param is None or t.param in wrong) and shape_fits(b.value, t.values)]

    def rank(t: ForwardValue):
        bases = {n.split(".")[-1].split("[")[-1].strip("]'\"").lower() for n in (t.name, *t.aliases)}
        named = bool(bases & hints)
        order = t.record.index if t.record is not None else 10**9  # a parameter: its gradient is last
        # Inside loops, the forward value of the same step (loop variables' values) before other steps.
        same_step = t.record is not None and bool(b.steps) and _step_values(t.record) == _step_values(b)
        return (not named, not same_step, t.values.shape != b.value.shape, -order)
    return sorted(fitting, key=rank)[:MAX_TARGETS_PER_CANDIDATE]


def _step_values(r: Record) -> tuple:
    return tuple(v for _, v in r.steps)


def unchecked_inputs(b: Record, back: list[Record], classified: Classified) -> list[Record]:
    """The arrays ``b``'s statement reads that the backward computed from adjoints but that match no measured
    adjoint: their truth is unknown, so a line reading them cannot be said to have right inputs."""
    derived = _backward_derived(back[: b.index], classified)
    statement = statement_of(b)
    reads = statement_reads(statement) if statement is not None else set()
    found = []
    for earlier in reversed(back[: b.index]):
        if earlier.frame == b.frame and earlier.name in reads:
            reads.discard(earlier.name)
            if earlier.index in derived:
                found.append(earlier)
    return found


def _backward_derived(back: list[Record], classified: Classified) -> set[int]:
    """Helpers (unexplained, not confirmed wrong) computed from the backward's adjoints, in execution order."""
    adjoint = {r.index for r in back if classified.status.get(r.index) in (RIGHT, PARTIAL)}
    derived: set[int] = set()
    latest: dict[tuple, Record] = {}
    for r in back:
        if r.initial:
            source = next((e for e in reversed(back[: r.index]) if e.obj is r.obj and not e.initial), None)
            if source is not None and source.index in derived:
                derived.add(r.index)
        elif classified.status.get(r.index) == HELPER:
            statement = statement_of(r)
            reads = statement_reads(statement) if statement is not None else set()
            inputs = [latest[(r.frame, n)] for n in reads if (r.frame, n) in latest]
            if any(i.index in adjoint or i.index in derived for i in inputs):
                derived.add(r.index)
        latest[(r.frame, r.name)] = r
    return derived
