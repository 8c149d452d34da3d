"""Finite differences of the loss with respect to one value, wherever it lives.

``Probe`` is a scalar function of a step ``t`` (the loss with something moved by ``t`` along a
direction). Central differences at two steps, ``h`` and ``h/2``, give a Richardson estimate and,
from their disagreement, an error estimate; a disagreement far beyond smooth behaviour means a
kink (ReLU, max-pool) inside the stencil, and such a measurement is "kinked": it decides nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# Central differences: truncation error ~ h^2, rounding ~ eps/h; h ~ eps^(1/3) balances them.
STEP_EXPONENT = 1.0 / 3.0
# Values smaller than this are stepped as if of this size, so that tiny values still move the loss.
SCALE_FLOOR = 1e-2
# A loss difference carries a few ulps of the loss values: rounding noise = this * eps * |L| / h.
ROUNDING_ULPS = 4.0
# Smooth curvature makes D(h) and D(h/2) differ by ~h^2 relative; a kink by O(1). Beyond this
# relative disagreement (or 100 rounding noises, whichever is larger) the stencil saw a kink.
KINK_RELATIVE = 1e-4
KINK_NOISE_MULTIPLE = 100.0
# Halving the step divides a smooth function's difference disagreement by ~4 (h^2 truncation).
SMOOTH_RATIO = (3.0, 5.5)


class BudgetExhausted(Exception):
    """More loss or gradient evaluations were needed than the caller allowed."""


class Counter:
    """Counts user-function calls against an optional budget."""

    def __init__(self, budget: int | None) -> None:
        self.budget = budget
        self.used = 0

    @property
    def remaining(self) -> int | None:
        return None if self.budget is None else self.budget - self.used

    def spend(self, n: int = 1) -> None:
        if self.budget is not None and self.used + n > self.budget:
            raise BudgetExhausted(f"the budget of {self.budget} evaluations is spent")
        self.used += n


@dataclass(frozen=True)
class Measurement:
    value: float  # the directional derivative
    error: float  # an upper estimate of |value - truth| when smooth
    kinked: bool  # the two steps disagree as only a kink makes them: no decision on it
    flat: bool  # the loss did not move at all: the value has no influence


def step_for(values: np.ndarray) -> float:
    scale = max(float(np.sqrt(np.mean(np.square(values)))), SCALE_FLOOR)
    return float(np.finfo(np.float64).eps ** STEP_EXPONENT) * scale


def directional(probe: Callable[[float], float], h: float, base_loss: float) -> Measurement:
    """d/dt probe(t) at 0, by central differences at h and h/2 (and h/4 when they disagree)."""
    plus, minus = probe(h), probe(-h)
    if plus == base_loss and minus == base_loss:
        return Measurement(0.0, 0.0, False, True)
    wide = (plus - minus) / (2 * h)
    narrow = (probe(h / 2) - probe(-h / 2)) / h
    magnitude = max(abs(plus), abs(minus), abs(base_loss))
    noise = ROUNDING_ULPS * np.finfo(np.float64).eps * magnitude / (h / 4)
    richardson = (4 * narrow - wide) / 3
    disagreement = abs(wide - narrow)
    if disagreement <= max(KINK_RELATIVE * abs(richardson), KINK_NOISE_MULTIPLE * noise):
        return Measurement(float(richardson), float(disagreement / 3 + noise), False, False)
    # Large but possibly smooth (strong curvature): a third rung tells. Smooth differences shrink
    # fourfold per halving of the step; a kink's do not.
    finest = (probe(h / 4) - probe(-h / 4)) / (h / 2)
    ratio = disagreement / max(abs(narrow - finest), np.finfo(np.float64).tiny)
    smooth = SMOOTH_RATIO[0] <= ratio <= SMOOTH_RATIO[1]
    refined = (4 * finest - narrow) / 3
    return Measurement(float(refined), float(abs(narrow - finest) / 3 + noise), not smooth, False)


# Evaluations one entry costs at most: two central differences, and a third rung where they disagree.
EVALUATIONS_PER_ENTRY = 6


def per_entry(probe_entry: Callable[[int, float], float], values: np.ndarray, base_loss: float,
              only: list[int] | None = None, known: np.ndarray | None = None):
    """The full gradient with respect to ``values``, entry by entry: (gradient, error, kinked). With ``only`` (flat
    indices) and ``known`` (the other entries' values, already established), just those entries are measured."""
    h = step_for(values)
    grad = np.zeros(values.size) if known is None else np.array(known, dtype=np.float64).reshape(-1)
    error = np.zeros(values.size)
    kinked = np.zeros(values.size, dtype=bool)
    for i in range(values.size) if only is None else only:
        m = directional(lambda t, i=i: probe_entry(i, t), h, base_loss)
        grad[i], error[i], kinked[i] = m.value, m.error, m.kinked
    return grad.reshape(values.shape), error.reshape(values.shape), kinked.reshape(values.shape)
