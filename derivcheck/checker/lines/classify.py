"""What each array the backward computes is: a forward value, a right adjoint, or unexplained.

A backward array ``b`` is a right adjoint of a forward value ``v`` when their shapes agree and
``<b, u>`` equals the measured ``<dL/dv, u>`` along ``v``'s own random direction ``u``; of a
parameter when it agrees with the parameter's measured directional derivative. Names play no
part here; they only order the candidates later.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from derivcheck.checker.lines.measure import Measurement
from derivcheck.checker.lines.session import agrees
from derivcheck.checker.lines.source import SourceIndex, statement_reads
from derivcheck.checker.lines.trace import Record

FORWARD, RIGHT, PARTIAL, DATA, HELPER, BAD, CANDIDATE = (
    "forward", "right", "partial", "data", "helper", "bad", "candidate")
GOOD_INPUTS = {FORWARD, RIGHT, PARTIAL, DATA, HELPER}


@dataclass
class ForwardValue:
    """A value the forward computed, with its adjoint measured along one direction."""

    record: Record | None  # None for a parameter
    param: int | None
    values: np.ndarray
    direction: np.ndarray
    measured: Measurement
    name: str
    aliases: set[str] = field(default_factory=set)  # other names bound to the same array later (h, c = h_next, c_next)

    @property
    def usable(self) -> bool:
        return not self.measured.flat and not self.measured.kinked


@dataclass
class Classified:
    status: dict[int, str] = field(default_factory=dict)  # record index -> status
    matched: dict[int, ForwardValue] = field(default_factory=dict)
    matched_targets: set[int] = field(default_factory=set)  # ids of ForwardValues matched


class ForwardIndex:
    """Forward values by shape, to tell recomputed forward values from backward arrays."""

    def __init__(self, values: list[np.ndarray]) -> None:
        self.by_shape: dict[tuple, list[np.ndarray]] = {}
        for v in values:
            self.by_shape.setdefault(v.shape, []).append(v)

    def contains(self, array: np.ndarray) -> bool:
        for candidate in (array, array.T if array.ndim == 2 else None):
            if candidate is None:
                continue
            for v in self.by_shape.get(candidate.shape, ()):
                if np.array_equal(v, candidate):
                    return True
        return False


def matches(b: np.ndarray, target: ForwardValue) -> bool:
    if not target.usable or b.shape != target.values.shape:
        return False
    yours = float(np.vdot(b, target.direction))
    size = float(np.linalg.norm(b) * np.linalg.norm(target.direction))
    return agrees(target.measured, yours, size)


def statement_of(record: Record):
    index = SourceIndex.of(record.file)
    return None if index is None else index.statement_at.get(record.line)


def is_partial(record: Record, following: Record | None) -> bool:
    """The next record of the same name in the same frame updates this one (in place, or x = x + ...)."""
    if following is None:
        return False
    statement = statement_of(following)
    return statement is not None and record.name in statement_reads(statement)


def next_of_same_name(records: list[Record]) -> dict[int, Record]:
    following: dict[int, Record] = {}
    last: dict[tuple, Record] = {}
    for r in records:
        if not r.initial:
            previous = last.get((r.frame, r.name))
            if previous is not None:
                following[previous.index] = r
            last[(r.frame, r.name)] = r
    return following
