"""The user's loss and gradient, called only through here: on copies, counted, optionally traced."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from derivcheck.checker.lines.measure import (EVALUATIONS_PER_ENTRY, BudgetExhausted, Counter, Measurement, directional,
                                              per_entry, step_for)
from derivcheck.checker.lines.params import fresh_copy, gradient_arrays, names_and_arrays, rebuild
from derivcheck.checker.lines.trace import Key, Recorder

# Two numbers that should agree agree when they differ by less than this many error estimates...
MATCH_SAFETY = 10.0
# ...plus this relative amount of their size (products and sums of float64 values lose a few ulps
# per entry; a wrong formula is off by far more).
MATCH_RELATIVE = 1e-7
# After a repair the replaced values carry the per-entry measurement's error into every
# parameter gradient downstream; this relative tolerance covers it.
REPAIR_RELATIVE = 1e-5


class UserCodeError(Exception):
    """The user's loss or gradient raised; the original is chained."""


def call_user(function: Callable, *args: Any) -> Any:
    try:
        return function(*args)
    except Exception as error:
        raise UserCodeError(f"{type(error).__name__}: {error}") from error


def scalar_loss(value: Any) -> float:
    if isinstance(value, tuple):  # a loss returning (loss, grads)
        value = value[0]
    return float(value)


def agrees(measured: Measurement, yours: float, size: float, relative: float = MATCH_RELATIVE) -> bool:
    return abs(yours - measured.value) <= MATCH_SAFETY * measured.error + relative * (size + abs(measured.value))


class Session:
    def __init__(self, loss: Callable, grad: Callable, params: Any, seed: int, budget: int | None,
                 focus: tuple = ()) -> None:
        self.loss, self.grad, self.params = loss, grad, params
        self.arrays = [np.asarray(a, dtype=np.float64) for _, a in names_and_arrays(params)]
        self.names = [n for n, _ in names_and_arrays(params)]
        self.rng = np.random.default_rng(seed)
        self.counter = Counter(budget)
        self.base_loss = float("nan")
        # Entries a check localized as the only wrong ones, by parameter, with the user's gradient: the other entries
        # are known right, and only these are measured one by one (10^5 entries are over any tracing budget).
        self.focus: tuple = focus if len(focus) == len(self.arrays) else ()
        self.known: list = []

    def traced_loss(self, edits: dict[Key, Callable] | None = None, keep: bool = False) -> tuple[float, Recorder]:
        self.counter.spend()
        recorder = Recorder(edits, keep_values=keep)
        return scalar_loss(call_user(recorder.run, self.loss, fresh_copy(self.params))), recorder

    def traced_grad(self, edits: dict[Key, Callable] | None = None, capture_at: tuple | None = None,
                    keep: bool = False) -> tuple[list, Recorder]:
        self.counter.spend()
        recorder = Recorder(edits, capture_at, keep_values=keep)
        value = call_user(recorder.run, self.grad, fresh_copy(self.params))
        return gradient_arrays(self.params, value), recorder

    def plain_loss(self, arrays: list[np.ndarray]) -> float:
        self.counter.spend()
        return scalar_loss(call_user(self.loss, rebuild(self.params, [a.copy() for a in arrays])))

    def _moved(self, k: int, delta: np.ndarray) -> list[np.ndarray]:
        return [a + delta if i == k else a for i, a in enumerate(self.arrays)]

    def param_direction(self, k: int, direction: np.ndarray) -> Measurement:
        probe = lambda t: self.plain_loss(self._moved(k, t * direction))  # noqa: E731
        return directional(probe, step_for(self.arrays[k]), self.base_loss)

    def afford_entries(self, values: np.ndarray, what: str) -> None:
        """Stop before measuring a value entry by entry that the budget cannot pay for (never half a value)."""
        need = EVALUATIONS_PER_ENTRY * values.size
        left = self.counter.remaining
        if left is not None and need > left:
            raise BudgetExhausted(f"measuring the {values.size} entries of {what} one by one needs up to {need} "
                                  f"evaluations and {left} are left of the tracing budget")

    def param_gradient(self, k: int):
        shape = self.arrays[k].shape
        entries = self.focus[k] if self.focus else ()
        known = self.known[k] if entries and k < len(self.known) else None
        only = [int(np.ravel_multi_index(i, shape)) for i in entries] if known is not None else None
        self.afford_entries(self.arrays[k] if only is None else np.zeros(len(only)), self.names[k])

        def probe(i: int, t: float) -> float:
            delta = np.zeros(self.arrays[k].size)
            delta[i] = t
            return self.plain_loss(self._moved(k, delta.reshape(shape)))
        return per_entry(probe, self.arrays[k], self.base_loss, only, known)

    def value_direction(self, key: Key, direction: np.ndarray, values: np.ndarray) -> Measurement:
        probe = lambda t: self.traced_loss({key: lambda old: old + t * direction})[0]  # noqa: E731
        return directional(probe, step_for(values), self.base_loss)

    def value_gradient(self, key: Key, values: np.ndarray):
        self.afford_entries(values, str(key[2]))
        def probe(i: int, t: float) -> float:
            def edit(old: np.ndarray) -> np.ndarray:
                moved = np.array(old, dtype=np.float64)
                moved.flat[i] += t
                return moved
            return self.traced_loss({key: edit})[0]
        return per_entry(probe, values, self.base_loss)
