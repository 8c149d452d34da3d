"""The evidence a diagnosis gets for one failing parameter, gathered from the run.

Per-entry numbers come from the entries checked one by one; directions are those that moved
the parameter alone (a failing joint direction restricted to it, and, where the entries were
only sampled, two fresh random ones), so that a hypothesised correction is tested against
the whole parameter and not only against the sampled entries.
"""

from __future__ import annotations

import numpy as np

from derivcheck.checker.diagnosis import Direction, Evidence
from derivcheck.checker.joint import random_direction
from derivcheck.numeric.regenerated import whole
from derivcheck.numeric.directional import DirectionalTest, directional_test
from derivcheck.checker.outcome import Run
from derivcheck.numeric.tolerances import entry_scale

# Fresh directions added for a parameter whose entries were only sampled.
_FRESH_DIRECTIONS = 2


def _range(t: DirectionalTest) -> tuple[float, float]:
    """The valid range of the analytic value: an interval at a single kink; nothing known where coincident kinks
    were separated or left unresolved (the test judged those, the diagnosis does not reuse them)."""
    d = t.derivative
    if not t.decides:  # a jump or unresolved coincident kinks: the test measured nothing to hold a hypothesis to
        return -np.inf, np.inf
    if not d.kink:
        return d.value, d.value
    if t.resolution in ("", "interval"):
        return min(d.forward, d.backward), max(d.forward, d.backward)
    return -np.inf, np.inf


# What the second function of a check computes, by the name the second-order checks give it.
_SUBJECTS = {"hvp": "Hessian-vector product", "hessian @ v": "Hessian"}


def gather(run: Run, name: str, indices: np.ndarray, tests: list[DirectionalTest]) -> Evidence:
    """The evidence for ``name`` from per-entry ``tests`` at flat ``indices``."""
    s = run.setup
    x = s.x[name]
    scales = entry_scale(x.reshape(-1)[indices])
    ranges = np.array([_range(t) for t in tests]).reshape(-1, 2) / scales[:, None]
    numeric = np.array([t.derivative.value for t in tests]) / scales if tests else np.zeros(0)
    tol = np.array([t.tolerance for t in tests]) / scales if tests else np.zeros(0)
    failed = np.array([not t.passed for t in tests], dtype=bool)
    evidence = Evidence(name, np.asarray(s.g[name], dtype=np.float64), np.asarray(x, dtype=np.float64),
                        np.asarray(indices, dtype=np.int64), numeric, ranges[:, 0], ranges[:, 1], tol, failed,
                        _directions(run, name, complete=len(indices) == x.size), run.context,
                        lambda known: _masked_direction(run, name, known), _SUBJECTS.get(s.fns.grad_name, "gradient"))
    return evidence


def _directions(run: Run, name: str, complete: bool) -> list[Direction]:
    s = run.setup
    alone = [t for t in run.tested if list(t.moves) == [name]]
    if not complete:
        for k in range(_FRESH_DIRECTIONS):
            moves = {name: random_direction(s.x[name], run.rng)}
            run.record(f"random, {name} only (diagnosis {k + 1})", moves, directional_test(run.probe, s.g, moves))
            alone.append(run.tested[-1])
    return [d for d in (_as_direction(whole(t.moves[name]), t.test) for t in alone) if d is not None]


def _as_direction(move: np.ndarray, t: DirectionalTest) -> Direction | None:
    """A test as evidence; None where it judged nothing (coincident kinks, a jump)."""
    lo, hi = _range(t)
    return Direction(move, t.derivative.value, lo, hi, t.tolerance) if np.isfinite(lo) else None


def _masked_direction(run: Run, name: str, known: np.ndarray) -> Direction | None:
    """A fresh random direction moving only the entries of ``known`` (for a hypothesis about those alone)."""
    s = run.setup
    move = random_direction(s.x[name], run.rng) * known
    if not np.any(move):
        return None
    moves = {name: move}
    t = run.record(f"random, {name} only, {int(known.sum())} entries (diagnosis)", moves,
                   directional_test(run.probe, s.g, moves))
    return _as_direction(move, t)
