"""A large parameter's check keeps no direction whole and copies no float64 parameter: the same numbers, less memory.

Truth comes from NumPy itself (the arrays the directions would have been, drawn directly) and from a loss that
writes where it must not; the memory figure is measured by benchmarks/bench_trust.py, not here.
"""

from __future__ import annotations

import numpy as np
import pytest

import derivcheck as dc
from derivcheck.errors import InputError
from derivcheck.numeric.directional import moved
from derivcheck.numeric.recovery import fits_at_least, one_sparse_candidates
from derivcheck.numeric.regenerated import LARGE_ENTRIES, along_gradient, min_abs, random_signs, unit_entry

SIZE = 3 * 65536 + 123  # several chunks and a ragged last one


@pytest.mark.parametrize("seed", range(20))
def test_regenerated_random_signs_are_the_drawn_array_bit_for_bit(seed):
    x = np.random.default_rng(seed).standard_normal(SIZE) * 3
    drawn = np.random.default_rng(seed)
    u = drawn.random(SIZE)  # one draw per entry: its first half the sign, 2u's fraction the magnitude
    z = 0.5 + 0.5 * (2 * u - np.floor(2 * u))
    z[u < 0.5] *= -1.0
    z *= np.maximum(np.abs(x), 1.0)
    after = drawn.random()

    rng = np.random.default_rng(seed)
    v = random_signs(x, rng, 0.5)
    assert np.array_equal(np.asarray(v), z)
    assert rng.random() == after  # the generator moved on past the draws, as drawing them would have
    lo = 65536 - 7
    assert np.array_equal(v.reshape(-1)[lo:lo + 100], z[lo:lo + 100]) and v.reshape(-1)[SIZE - 1] == z[-1]
    assert min_abs(v) == np.min(np.abs(z))


def test_regenerated_gradient_and_unit_directions_are_the_arrays():
    rng = np.random.default_rng(1)
    x, g = rng.standard_normal((3, SIZE // 3)) * 2, rng.standard_normal((3, SIZE // 3))
    top = float(np.max(np.abs(g)))
    assert np.array_equal(np.asarray(along_gradient(x, g, top)), g / top * np.maximum(np.abs(x), 1.0))
    unit = np.zeros(x.size)
    unit[70000] = 2.5
    assert np.array_equal(np.asarray(unit_entry(x.shape, 70000, 2.5)), unit.reshape(x.shape))


def test_a_reused_point_has_the_bits_of_a_fresh_one():
    rng = np.random.default_rng(2)
    x = {"w": rng.standard_normal(LARGE_ENTRIES), "b": rng.standard_normal(5)}
    v = {"w": rng.standard_normal(LARGE_ENTRIES), "b": rng.standard_normal(5)}
    work: dict[str, np.ndarray] = {}
    for t in (1e-3, -2.5e-7):
        point = moved(x, v, t, work)
        assert point["w"] is work["w"]  # one buffer, rewritten
        assert np.array_equal(point["w"], x["w"] + t * v["w"]) and np.array_equal(point["b"], x["b"] + t * v["b"])
        assert "b" not in work  # a small block stays a fresh array


@pytest.mark.parametrize("seed", range(20))
def test_candidates_kept_per_chunk_are_the_best_of_all(seed):
    rng = np.random.default_rng(seed)
    rows = rng.uniform(-1, 1, (2, SIZE))
    errors = 0.3 * rows[:, 4242] + rng.normal(0, 1e-3, 2)
    tolerances = np.full(2, 0.05)  # loose: most entries fit two directions
    kept = one_sparse_candidates(rows, errors, tolerances, 4)
    # The independent answer: every entry's misfit, sorted once over the whole array.
    norm = np.einsum("ki,ki->i", rows, rows)
    factor = (errors @ rows) / norm
    misfit = np.max(np.abs(errors[:, None] - rows * factor) / tolerances[:, None], axis=0)
    visible = np.max(np.abs(rows * factor) / tolerances[:, None], axis=0) > 1
    fits = np.flatnonzero((misfit <= 1) & visible)
    assert kept.tolist() == fits[np.argsort(misfit[fits], kind="stable")][:4].tolist()


@pytest.mark.parametrize("seed", range(20))
def test_counting_candidates_stops_early_and_agrees_with_the_full_count(seed):
    rng = np.random.default_rng(seed)
    rows = rng.uniform(-1, 1, (3, SIZE))
    errors = 0.3 * rows[:, 4242] + rng.normal(0, 1e-3, 3)
    tolerances = np.full(3, rng.choice([1e-3, 1e-2, 1e-1]))
    everyone = len(one_sparse_candidates(rows, errors, tolerances, SIZE))
    for count in (1, 2, 4, 50):
        assert fits_at_least(rows, errors, tolerances, count) == (everyone >= count), (count, everyone)


def test_a_large_parameter_is_read_without_a_copy_and_a_write_into_it_is_an_error():
    rng = np.random.default_rng(3)
    c, w = rng.standard_normal(LARGE_ENTRIES), rng.standard_normal(LARGE_ENTRIES)
    before = w.copy()

    def loss(v):
        return float(c @ np.sin(v))

    def grad(v):
        return c * np.cos(v)

    report = dc.check_gradient(loss, grad, w, trace=False)
    assert report.verdict == "pass" and np.array_equal(w, before) and w.flags.writeable

    def scribbling_loss(v):
        w[0] += 1e-3  # writes into the caller's array, not into its argument
        return float(c @ np.sin(v))

    with pytest.raises(InputError, match="changed during the check"):
        dc.check_gradient(scribbling_loss, grad, w, trace=False)


def test_a_large_gradient_is_kept_uncopied_only_where_no_one_else_holds_it():
    """A fresh result is kept as it is (a copy of 10^7 entries costs half a gradient call); a buffer the user's code
    writes again at the next call, or their own array returned as it is, is copied, so the state check still sees
    an accumulating buffer."""
    from derivcheck.checker.user_functions import GuardedFunctions
    from derivcheck.checker.parameters import ParamSpace

    rng = np.random.default_rng(4)
    c, w = rng.standard_normal(LARGE_ENTRIES), rng.standard_normal(LARGE_ENTRIES)
    held = np.cos(w)
    space = ParamSpace.of(w)
    for grad, kept in ((lambda v: c * np.cos(v), True), (lambda v: held, False), (lambda v: v, False),
                       (lambda v: np.concatenate([c, c])[:LARGE_ENTRIES], False)):
        fns = GuardedFunctions(lambda v: 0.0, grad, space)
        g = fns.grad_at({"params": w})["params"]
        assert (g is not held and not np.shares_memory(g, w)) and (not g.flags.writeable) == kept

    class Net:
        def __init__(self):
            self.dw = np.zeros(LARGE_ENTRIES)

        def grad(self, v):
            self.dw += c * np.cos(v)  # never zeroed
            return self.dw

    report = dc.check_gradient(lambda v: float(c @ np.sin(v)), Net().grad, w, trace=False)
    assert report.verdict == "fail"
    assert any(f.detail.get("state") == "accumulating" for f in report.findings)
