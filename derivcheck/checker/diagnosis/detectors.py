"""The detectors, strongest first. Adding one is one function here with ``@detector``.

Each proposes hypotheses from the evidence; ``core.accepted`` decides. A detector never
decides on its own that it is right: a proposal that does not explain every measured
number is dropped silently.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from fractions import Fraction

import numpy as np

from derivcheck.checker.diagnosis.core import Evidence, Hypothesis, detector
from derivcheck.report.gradient import format_index

# Ratios written as a fraction when they are one to this precision, with denominators up to this.
_RATIO_PRECISION = 1e-3
_MAX_COUNT = 4096
# Offsets tried for "positions shifted" (padding is rarely more than 3).
_MAX_SHIFT = 3


def _entries(e: Evidence, flat: np.ndarray, limit: int = 8) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(int(i) for i in np.unravel_index(int(f), e.analytic.shape)) for f in flat[:limit])


def _listed(name: str, entries: tuple[tuple[int, ...], ...], total: int) -> str:
    shown = ", ".join(format_index(name, i) for i in entries[:4])
    return shown + (f" and {total - 4} more" if total > 4 else "")


def _ratio(e: Evidence) -> float | None:
    """analytic / true, fitted on the clearly non-zero checked entries, or on the directions.

    None for a single entry: any wrong value is some factor times the right one, so a fitted
    factor would explain nothing.
    """
    if e.analytic.size < 2:
        return None
    sig = (np.abs(e.numeric) > 4 * e.tolerance) & ~e.kinked
    if sig.any():
        n, a = e.numeric[sig], e.analytic.reshape(-1)[e.checked][sig]
        return float(np.dot(a, n) / np.dot(n, n)) if np.dot(n, n) > 0 else None
    usable = [d for d in e.directions if abs(d.numeric) > 4 * d.tolerance and d.low == d.high]
    if not usable:
        return None
    d = max(usable, key=lambda d: abs(d.numeric) / d.tolerance)
    return float(np.vdot(e.analytic, d.move) / d.numeric)


# --- a loss that does not depend on the parameter -------------------------------------------------

def _describe_independent(name: str, h: Hypothesis) -> str:
    return (f"the loss does not depend on {name} at all: every perturbation of it leaves the loss unchanged "
            f"(within rounding), yet d{name} is not zero. The forward never uses {name} (a typo such as W2 for W1, "
            f"or a term dropped from the loss), or d{name} should be zero.")


@detector("loss_independent", _describe_independent)
def _independent(e: Evidence) -> Iterator[Hypothesis]:
    flat = e.independent().all() if e.checked.size else True
    dirs = all(abs(d.numeric) <= d.tolerance and d.low == d.high for d in e.directions)
    enough = e.complete or len(e.directions) >= 2
    if flat and dirs and enough and np.any(e.analytic):
        yield Hypothesis("loss_independent", corrected=np.zeros_like(e.analytic))


# --- all zeros --------------------------------------------------------------------------------------

def _describe_zero(name: str, h: Hypothesis) -> str:
    subject = h.detail.get("subject", "gradient")
    if subject != "gradient":
        return (f"d{name} (the {subject}) is all zeros, but the gradient does change with {name}: the {subject} "
                f"is never written, or returns zeros.")
    return (f"d{name} is all zeros but the loss does depend on {name}: the gradient is never written, or is "
            f"overwritten by a fresh zeros array / an assignment instead of +=.")


@detector("zero", _describe_zero)
def _zero(e: Evidence) -> Iterator[Hypothesis]:
    if not np.any(e.analytic) and e.complete and e.failing.any():
        yield Hypothesis("zero", covers=e.checked)


# --- sign and constant factors --------------------------------------------------------------------

def _describe_sign(name: str, h: Hypothesis) -> str:
    return (f"d{name} has the wrong sign (analytic = -true): a subtraction in the wrong order (y - t versus "
            f"t - y), or the descent step's minus sign put into the gradient.")


@detector("sign", _describe_sign)
def _sign(e: Evidence) -> Iterator[Hypothesis]:
    yield Hypothesis("sign", corrected=-e.analytic, factor=-1.0)


def _fraction(c: float) -> Fraction | None:
    f = Fraction(c).limit_denominator(_MAX_COUNT)
    if f not in (0, 1) and abs(float(f) - c) <= _RATIO_PRECISION * abs(c) and (abs(f.numerator) == 1 or f.denominator == 1):
        return f
    return None


def _describe_batch(name: str, h: Hypothesis) -> str:
    n, c = h.detail["batch"], h.factor or 1.0
    if c > 1:
        return (f"d{name} is {n} times the true gradient, and {n} is the batch size: the loss averages over the batch "
                f"(a mean) but the gradient sums; divide by N = {n}.")
    return (f"d{name} is 1/{n} of the true gradient, and {n} is the batch size: the gradient divides by N = {n} "
            f"but the loss sums over the batch (or the other way round).")


@detector("mean_vs_sum", _describe_batch)
def _mean_vs_sum(e: Evidence) -> Iterator[Hypothesis]:
    c = _ratio(e)
    n = e.context.batch if e.context is not None else None
    if c is None or not n or n < 2:
        return
    for k in (n, 1 / n):
        if abs(abs(c) - k) <= _RATIO_PRECISION * k and c > 0:
            yield Hypothesis("mean_vs_sum", corrected=e.analytic / k, factor=float(k), detail={"batch": n})


def factor_phrase(c: float) -> tuple[str, str]:
    """How a factor analytic/true is said ("half the true gradient"), and where such a factor usually comes from."""
    f = _fraction(abs(c))
    sign = " and the wrong sign" if c < 0 else ""
    if c == -1:
        return "the true gradient with the wrong sign", "a subtraction in the wrong order, or a descent step's minus"
    if f == Fraction(1, 2):
        head, why = "half the true gradient", ("a factor 2 is missing somewhere: a squared error's d/dz z^2 = 2z, "
                                               "dropout's 1/keep with keep = 0.5, or a term that occurs twice counted once")
    elif f == 2:
        head, why = "twice the true gradient", ("a factor 1/2 is missing somewhere: the loss's 0.5 * sum(r**2), or a "
                                                "term counted twice")
    elif f is not None and f.denominator == 1:
        head, why = f"{f.numerator} times the true gradient", f"a division by {f.numerator} is missing: a mean over {f.numerator} terms?"
    elif f is not None:
        head, why = f"1/{f.denominator} of the true gradient", f"it is divided by {f.denominator} once too often, or a sum over {f.denominator} terms is missing"
    else:
        head, why = f"{abs(c):.6g} times the true gradient", "a constant factor is wrong: a rate, a temperature, a keep probability or a weight?"
    return head + sign, why


def _describe_scale(name: str, h: Hypothesis) -> str:
    head, why = factor_phrase(float(h.factor or 1.0))
    return f"d{name} is {head}, at every entry: {why}."


@detector("scale", _describe_scale)
def _scale(e: Evidence) -> Iterator[Hypothesis]:
    c = _ratio(e)
    if c is None or not np.isfinite(c) or c == 0 or abs(c - 1) <= _RATIO_PRECISION or abs(c + 1) <= _RATIO_PRECISION:
        return
    f = _fraction(abs(c))
    exact = float(f) * np.sign(c) if f is not None else c
    yield Hypothesis("scale", corrected=e.analytic / exact, factor=float(exact))


# --- index structure --------------------------------------------------------------------------------

def _describe_transpose(name: str, h: Hypothesis) -> str:
    return (f"d{name} is transposed: analytic d{name}[i, j] is the true d{name}[j, i]. For Y = X @ W the gradient "
            f"is X.T @ dY (the shape of W), not dY.T @ X.")


@detector("transpose", _describe_transpose)
def _transpose(e: Evidence) -> Iterator[Hypothesis]:
    a = e.analytic
    if a.ndim == 2 and a.shape[0] == a.shape[1] > 1 and not np.allclose(a, a.T):
        yield Hypothesis("transpose", corrected=a.T.copy())


def _describe_flip(name: str, h: Hypothesis) -> str:
    axes = h.detail["axes"]
    return (f"d{name} is the true gradient flipped along axis {' and '.join(map(str, axes))}: a kernel used the "
            f"wrong way round (convolution versus cross-correlation: forward and backward must agree on w or "
            f"w[..., ::-1, ::-1]).")


@detector("flip", _describe_flip)
def _flip(e: Evidence) -> Iterator[Hypothesis]:
    a = e.analytic
    spatial = [ax for ax in range(max(a.ndim - 2, 0), a.ndim) if a.shape[ax] > 1]
    for r in (len(spatial), 1):
        for axes in itertools.combinations(spatial, r):
            flipped = np.flip(a, axis=axes)
            if axes and not np.array_equal(flipped, a):
                yield Hypothesis("flip", corrected=flipped.copy(), axis=axes[0], detail={"axes": list(axes)})


def _describe_shift(name: str, h: Hypothesis) -> str:
    offsets = ", ".join(f"{s:+d} along axis {ax}" for ax, s in zip(h.detail["axes"], h.detail["offsets"]) if s)
    return (f"the positions in d{name} are shifted by a constant offset ({offsets}): the analytic value at i is the "
            f"true value at i - offset. A padding or a window origin slipped (indices into the padded input used "
            f"for the unpadded one, or the crop dx = dx_padded[..., p:-p] taken from the wrong corner).")


def _shifted(a: np.ndarray, axes: tuple[int, ...], offsets: tuple[int, ...]) -> np.ndarray:
    """``out[i] = a[i + offset]`` (zero where that falls outside): undoing a shift by ``offset``."""
    out = np.zeros_like(a)
    src = [slice(None)] * a.ndim
    dst = [slice(None)] * a.ndim
    for ax, s in zip(axes, offsets):
        n = a.shape[ax]
        if abs(s) >= n:
            return out
        src[ax] = slice(s, n) if s >= 0 else slice(0, n + s)
        dst[ax] = slice(0, n - s) if s >= 0 else slice(-s, n)
    out[tuple(dst)] = a[tuple(src)]
    return out


# A shift must predict the failure it explains: this many failing entries at least, inside the part of the
# array the shift says something about (one wrong entry fits some shift by chance).
_MIN_PREDICTED_FAILURES = 2


def _predicts_the_failure(e: Evidence, known: np.ndarray) -> bool:
    """Most failing entries checked lie where the hypothesis predicts a value, and there are several."""
    inside = known.reshape(-1)[e.checked]
    predicted, outside = int((e.failing & inside).sum()), int((e.failing & ~inside).sum())
    return predicted >= max(_MIN_PREDICTED_FAILURES, outside)


@detector("shift", _describe_shift)
def _shift(e: Evidence) -> Iterator[Hypothesis]:
    a = e.analytic
    axes = tuple(ax for ax in range(max(a.ndim - 2, 0), a.ndim) if a.shape[ax] > 2)
    if not axes:
        return
    for offsets in itertools.product(range(-_MAX_SHIFT, _MAX_SHIFT + 1), repeat=len(axes)):
        if not any(offsets):
            continue
        corrected = _shifted(a, axes, offsets)
        # Entries whose source falls outside the array are not predicted: the shift explains the rest.
        known = _shifted(np.ones_like(a), axes, offsets) > 0
        if known.mean() < 0.5 or not _predicts_the_failure(e, known):
            continue
        detail = {"axes": list(axes), "offsets": list(offsets)}
        if e.complete:
            flat = corrected.reshape(-1)
            lost = ~known.reshape(-1)[e.checked]
            flat[e.checked[lost]] = e.numeric[lost]  # what was measured there
            yield Hypothesis("shift", corrected=corrected, detail=detail)
        else:
            yield Hypothesis("shift", corrected=corrected, known=known, detail=detail)


# --- a missing term proportional to the parameter ---------------------------------------------------

def _describe_term(name: str, h: Hypothesis) -> str:
    lam = float(h.factor or 0.0)
    if lam > 0:
        return (f"d{name} misses a term {lam:.6g} * {name}: the regularisation's gradient (for 0.5 * reg * "
                f"sum({name}**2) it is reg * {name}; for reg * sum({name}**2), 2 * reg * {name}).")
    return (f"d{name} has an extra term {-lam:.6g} * {name} that the loss does not have (a regularisation "
            f"added to the gradient but not to the loss, or added twice).")


@detector("missing_term", _describe_term)
def _missing_term(e: Evidence) -> Iterator[Hypothesis]:
    theta = e.point
    if e.analytic.size < 2 or not np.any(theta) or not np.any(e.analytic):
        return  # a coefficient fitted to one entry explains nothing; an all-zero gradient is named as such
    if e.checked.size:
        r = e.numeric - e.analytic.reshape(-1)[e.checked]
        t = theta.reshape(-1)[e.checked]
        if np.dot(t, t) == 0:
            return
        lam = float(np.dot(r, t) / np.dot(t, t))
    else:
        usable = [d for d in e.directions if d.low == d.high and abs(float(np.vdot(theta, d.move))) > 0]
        if not usable:
            return
        d = usable[0]
        lam = float((d.numeric - np.vdot(e.analytic, d.move)) / np.vdot(theta, d.move))
    if lam != 0 and np.isfinite(lam):
        yield Hypothesis("missing_term", corrected=e.analytic + lam * theta, factor=lam)


# --- support ---------------------------------------------------------------------------------------

def _describe_extra_support(name: str, h: Hypothesis) -> str:
    n, c = h.detail["count"], float(h.factor or 1.0)
    rest = "" if abs(c - 1) <= _RATIO_PRECISION else f"; on the other entries it is {c:.6g} times the true value"
    return (f"d{name} is non-zero at {n} entries where the loss does not depend on {name} "
            f"({_listed(name, h.entries, n)}): a mask is missing (dropout's mask, ReLU's x > 0, a padding or "
            f"ignore mask){rest}.")


@detector("missing_mask", _describe_extra_support)
def _missing_mask(e: Evidence) -> Iterator[Hypothesis]:
    if not e.complete:
        return
    flat = e.analytic.reshape(-1)[e.checked]
    off = e.independent() & (flat != 0) & e.failing
    if not off.any():
        return
    support = ~e.independent()
    sig = support & (np.abs(e.numeric) > 4 * e.tolerance) & ~e.kinked
    c = float(np.dot(flat[sig], e.numeric[sig]) / np.dot(e.numeric[sig], e.numeric[sig])) if sig.any() else 1.0
    if not np.isfinite(c) or c == 0:
        return
    corrected = np.zeros(e.analytic.size)
    corrected[e.checked] = np.where(support, flat / c, 0.0)
    yield Hypothesis("missing_mask", corrected=corrected.reshape(e.analytic.shape), factor=c,
                     entries=_entries(e, e.checked[off]), detail={"count": int(off.sum())})


# --- a nearby function: a derivative evaluated on the wrong quantity -----------------------------------

def _sigmoid(u: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * u))  # no overflow


# Local derivatives people write, as functions of the tensor they are evaluated on.
_DERIVATIVES = {
    "q * (1 - q)": lambda q: q * (1 - q),
    "(1 - q**2)": lambda q: 1 - q**2,
    "sigmoid(q) * (1 - sigmoid(q))": lambda q: _sigmoid(q) * (1 - _sigmoid(q)),
    "(1 - tanh(q)**2)": lambda q: 1 - np.tanh(q) ** 2,
    "(q > 0)": lambda q: (q > 0).astype(float),
}


def _describe_nearby(name: str, h: Hypothesis) -> str:
    d = h.detail
    if d.get("softmax"):
        return (f"d{name} uses only the diagonal of the softmax Jacobian, dy * p * (1 - p) with p = {d['wrong_on']}; "
                f"the full Jacobian gives p * (dy - sum(dy * p, axis={d['axis']}, keepdims=True)).")
    return (f"d{name} equals {d['wrong']} with q = {d['wrong_on']}, but the true gradient is {d['right']} with "
            f"q = {d['right_on']}: the local derivative is evaluated on the wrong quantity.")


def _forms(ctx_tensors: dict[str, np.ndarray], shape: tuple[int, ...]) -> Iterator[tuple[str, str, np.ndarray]]:
    dy = ctx_tensors.get("dy")
    for on, q in ctx_tensors.items():
        if q.shape != shape:
            continue
        for label, f in _DERIVATIVES.items():
            with np.errstate(all="ignore"):
                local = f(q)
            if dy is not None and dy.shape == shape:
                yield "dy * " + label, on, dy * local
            if on == "dy":
                yield label, on, local


@detector("wrong_quantity", _describe_nearby)
def _wrong_quantity(e: Evidence) -> Iterator[Hypothesis]:
    if e.context is None:
        return
    tensors = {k: np.asarray(v, dtype=float) for k, v in e.context.tensors.items()}
    a = e.analytic
    scale = float(np.max(np.abs(a))) or 1.0
    forms = list(_forms(tensors, a.shape))
    wrong = [(label, on) for label, on, v in forms if np.allclose(v, a, rtol=1e-7, atol=1e-9 * scale)]
    if not wrong:
        return
    rights = [(label, on, v) for label, on, v in forms if (label, on) not in wrong]
    rights += list(_softmax_forms(tensors, a.shape))
    rights.sort(key=lambda r: r[1] != "y")  # the textbook form first: through the output, s * (1 - s)
    for label, on, v in rights:
        if e.explains(v):
            softmax = label.startswith("p * (dy - sum") and wrong[0][0] == "dy * q * (1 - q)"
            yield Hypothesis("wrong_quantity", corrected=v, detail={
                "wrong": wrong[0][0], "wrong_on": _tensor_name(wrong[0][1]), "right": label,
                "right_on": _tensor_name(on), "softmax": softmax, "axis": -1})
            return


def _softmax_forms(tensors: dict[str, np.ndarray], shape: tuple[int, ...]) -> Iterator[tuple[str, str, np.ndarray]]:
    dy = tensors.get("dy")
    for on, p in tensors.items():
        if p.shape == shape and dy is not None and dy.shape == shape and p.ndim and np.allclose(p.sum(-1), 1.0):
            yield "p * (dy - sum(dy * p, axis=-1, keepdims=True))", on, p * (dy - np.sum(dy * p, axis=-1, keepdims=True))


def _tensor_name(on: str) -> str:
    return {"y": "the output y", "dy": "the upstream gradient dy"}.get(on, f"the input {on}")


# --- patterns: where the errors are -------------------------------------------------------------------

def _describe_labels(name: str, h: Hypothesis) -> str:
    return (f"the errors in d{name} sit exactly at the label entries d{name}[n, {h.detail['index']}[n]] (one per row), "
            f"and every other entry is right: the label term is missing or wrong (softmax cross-entropy: "
            f"(p - onehot(y)) / N; multiclass SVM: the correct class gets minus the count of positive margins).")


@detector("at_labels", _describe_labels)
def _at_labels(e: Evidence) -> Iterator[Hypothesis]:
    a = e.analytic
    if e.context is None or a.ndim != 2 or not e.complete:
        return
    failing = set(e.checked[e.failing].tolist())
    for label, y in e.context.integers.items():
        y = np.asarray(y).reshape(-1)
        if y.shape != (a.shape[0],) or y.min() < 0 or y.max() >= a.shape[1]:
            continue
        at = np.ravel_multi_index((np.arange(a.shape[0]), y), a.shape)
        if failing and failing <= set(at.tolist()):
            yield Hypothesis("at_labels", covers=at, axis=1, entries=_entries(e, np.array(sorted(failing))),
                             detail={"index": label})


def _describe_repeated(name: str, h: Hypothesis) -> str:
    ids = ", ".join(map(str, h.detail["ids"][:6]))
    return (f"the wrong rows of d{name} are exactly the rows of ids that occur more than once in {h.detail['index']} "
            f"(ids {ids}): a fancy-index update d{name}[ids] += g counts a repeated id once; accumulate with "
            f"np.add.at(d{name}, ids, g).")


@detector("repeated_indices", _describe_repeated)
def _repeated(e: Evidence) -> Iterator[Hypothesis]:
    if e.context is None or e.analytic.ndim < 1 or not e.complete:
        return
    rows = np.unravel_index(e.checked[e.failing], e.analytic.shape)[0]
    for label, ids in e.context.integers.items():
        flat = np.asarray(ids).reshape(-1)
        if flat.size == 0 or flat.min() < 0 or flat.max() >= e.analytic.shape[0]:
            continue
        values, counts = np.unique(flat, return_counts=True)
        repeated = values[counts > 1]
        if repeated.size and set(rows.tolist()) == set(repeated.tolist()):
            covers = np.flatnonzero(np.isin(np.unravel_index(np.arange(e.analytic.size), e.analytic.shape)[0], repeated))
            yield Hypothesis("repeated_indices", covers=covers, axis=0,
                             detail={"ids": [int(i) for i in repeated], "index": label})


def _describe_slice(name: str, h: Hypothesis) -> str:
    ax, k, n = h.axis, h.detail["index"], h.detail["size"]
    if h.detail["right_only"]:
        if h.kind == "first_sample_only":  # axis 0 is the layer's batch axis: known, not guessed
            return (f"only sample 0 of d{name} is right; the other {n - 1} samples of the batch are wrong: the "
                    f"gradient was computed for the first sample only (loop or sum over the whole batch axis).")
        # What the axis means (time steps, input features, channels) is not known here: the pattern, no cause.
        return f"only index {k} along axis {ax} of d{name} is right; every other index along that axis is wrong."
    return f"the errors in d{name} are confined to index {k} along axis {ax} (of {n}): look at that slice's term."


@detector("slice", _describe_slice)
def _slice(e: Evidence) -> Iterator[Hypothesis]:
    a = e.analytic
    if a.ndim < 2 or not e.complete or e.failing.sum() < 2:
        return
    where = np.unravel_index(e.checked, a.shape)
    active = e.failing | (np.abs(e.numeric) > e.tolerance) | (e.analytic.reshape(-1)[e.checked] != 0)
    for ax in range(a.ndim):
        n = a.shape[ax]
        if n < 2:
            continue
        bad = np.unique(where[ax][e.failing])
        if bad.size == 1:
            yield Hypothesis("slice", covers=e.checked[where[ax] == bad[0]], axis=ax,
                             detail={"index": int(bad[0]), "size": n, "right_only": False})
        good = sorted(set(range(n)) - set(bad.tolist()))
        # Right only at one index: every other index has failing entries wherever anything is non-zero.
        if len(good) == 1 and np.all(e.failing[(where[ax] != good[0]) & active]):
            batch_axis = ax == 0 and e.context is not None and e.context.batch == n
            kind = "first_sample_only" if batch_axis and good[0] == 0 else "slice"
            yield Hypothesis(kind, covers=e.checked[where[ax] != good[0]], axis=ax,
                             detail={"index": good[0], "size": n, "right_only": True})


def _describe_missing_path(name: str, h: Hypothesis) -> str:
    n = h.detail["count"]
    return (f"d{name} is zero at {n} entries where the loss does depend on {name} ({_listed(name, h.entries, n)}), "
            f"and right everywhere else: a path to these entries is missing (a forgotten branch or skip connection, "
            f"the second use of a shared parameter, a mask applied twice).")


@detector("missing_path", _describe_missing_path)
def _missing_path(e: Evidence) -> Iterator[Hypothesis]:
    flat = e.analytic.reshape(-1)[e.checked]
    bad = e.failing
    if e.complete and bad.any() and np.all(flat[bad] == 0) and np.any(flat != 0):
        yield Hypothesis("missing_path", covers=e.checked[bad], entries=_entries(e, e.checked[bad]),
                         detail={"count": int(bad.sum())})
