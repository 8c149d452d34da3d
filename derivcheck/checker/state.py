"""Calls that reveal state: a gradient that depends on what was called before it, not on its argument.

One gradient call cannot show three common bugs of hand-written backward passes: a gradient
buffer that is never zeroed (each call adds to the last), a gradient computed from the cache
of the most recent forward (whatever point that forward was at), and a cache filled by the
first forward and never refreshed. Two more gradient calls do: one at x after a loss call at
a nearby point y, and one at y.

=================  ===========  ===========
bug                grad at x    grad at y
=================  ===========  ===========
correct            g(x)         g(y)
accumulating       2 g(x)       2 g(x) + g(y)
last forward       g(y)         g(y)
first forward      g(x)         g(x)
=================  ===========  ===========
"""

from __future__ import annotations

import numpy as np

from derivcheck.checker.evaluation import Setup
from derivcheck.errors import NonFiniteError, UserFunctionError
from derivcheck.numeric.blocks import Blocks, max_abs_difference
from derivcheck.numeric.directional import Probe, directional_test
from derivcheck.numeric.kinks import shift_direction
from derivcheck.numeric.regenerated import LARGE_ENTRIES, random_signs
from derivcheck.numeric.tolerances import NONDETERMINISM_ULPS, largest_magnitude
from derivcheck.report.results import Finding

# The nearby point y moves every entry by up to this fraction of its scale: far enough that the
# gradient changes by much more than its rounding, near enough to stay in the loss's domain.
STATE_SHIFT = 1e-3
# Which fixed direction y lies along (the same for every seed), and the generator of a large block's.
_STATE_DIRECTION = 7
_STATE_SEED = 0x57A7E


def stateful_findings(setup: Setup, probe: Probe) -> list[Finding]:
    """Errors for a gradient that changes with the calls made before it; empty when it does not."""
    fns, g = setup.fns, setup.g
    y = _nearby(setup.x)
    y_native = {k: y[k].astype(setup.native[k].dtype, copy=False) for k in y}
    try:
        fns.loss_at(y)
        again: Blocks | None = fns.grad_at(setup.native)
        setup.grad_repeats = _same(again, g, setup.eps_grad)
        if setup.grad_repeats:
            again = None  # as it should be: not kept while the next gradient is computed (10^7 entries)
        at_y = fns.grad_at(y_native)
    except (NonFiniteError, UserFunctionError):  # y left the loss's domain: nothing to compare
        return []
    if again is not None:
        if _same(again, g, setup.eps_grad, factor=2.0):
            return [_finding("accumulating", "called twice at the same point, it returned twice the first result: "
                             "a gradient buffer is added to and never zeroed (dW += ... without dW = 0 first)")]
        if _same(again, at_y, setup.eps_grad):
            return [_finding("last_forward", "called at x right after the loss was called at another point, it "
                             "returned the gradient at that other point: it reads the cache of the most recent "
                             "forward pass instead of computing from its argument")]
        return [_finding("stateful", "called twice at the same point, it returned different gradients after a loss "
                         "call elsewhere: it depends on state left by earlier calls")]
    if _identical(at_y, g) and _stale_at(probe, y, at_y, setup):
        # A warning, not an error: a function returning one fixed array (a test's known gradient at x) behaves
        # the same, and it is right at x, the point checked.
        return [_finding("first_forward", "called at another point, it returned exactly the gradient of the first "
                         "point, which is wrong there: it reads a cache filled by the first forward pass and never "
                         "refreshed, or it returns a fixed array", "warning")]
    return []


def _nearby(x: Blocks) -> Blocks:
    """The point y: x moved by STATE_SHIFT along a fixed direction (random signs for a large block: drawing 10^7
    Gaussians takes as long as a loss evaluation)."""
    y = shift_direction({k: v for k, v in x.items() if v.size < LARGE_ENTRIES}, _STATE_DIRECTION)
    rng = np.random.default_rng([_STATE_SEED, _STATE_DIRECTION])
    y.update({k: np.asarray(random_signs(v, rng, 0.0)) for k, v in x.items() if v.size >= LARGE_ENTRIES})
    for k, v in x.items():  # in place: no temporary of the parameters' size
        y[k] *= STATE_SHIFT
        y[k] += v
        y[k] = y[k].astype(v.dtype, copy=False)
    return y


def _stale_at(probe: Probe, y: Blocks, g_y: Blocks, setup: Setup) -> bool:
    """Whether ``g_y`` fails a directional test at ``y`` (a linear loss's gradient is the same everywhere)."""
    w = shift_direction(setup.x, _STATE_DIRECTION + 1)
    t = directional_test(probe, g_y, w, x=y, f0=probe.evaluate(y), separate_kinks=False)
    return t.decides and not t.passed and not t.derivative.kink


def _same(a: Blocks, b: Blocks, eps: float, factor: float = 1.0) -> bool:
    """``a`` equals ``factor * b`` to within rounding, block by block."""
    return all(max_abs_difference(a[k], b[k], factor)
               <= NONDETERMINISM_ULPS * eps * (factor * largest_magnitude(b[k]) + np.finfo(float).tiny) for k in b)


def _identical(a: Blocks, b: Blocks) -> bool:
    return all(np.array_equal(a[k], b[k]) for k in b) and any(np.any(b[k]) for k in b)


def _finding(kind: str, what: str, severity: str = "error") -> Finding:
    return Finding("stateful_gradient", f"the gradient depends on earlier calls: {what}.", None, severity,
                   detail={"state": kind})
