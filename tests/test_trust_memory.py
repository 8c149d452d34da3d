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
    x = np.random.default_rng(seed).standard_normal(SIZE) * (3 if seed % 2 else 0.3)  # scaled, and all |x| < 1
    drawn = np.random.default_rng(seed)
    # 16 bits per entry, four to a 64-bit draw, read as a signed integer s: the entry is (1 - low) s / 2^15 moved
    # away from 0 by low (1/2 here), so its sign is that of s.
    s = drawn.bit_generator.random_raw(-(-SIZE // 4)).view(np.int16)[:SIZE].astype(float)
    z = np.where(s >= 0, 0.5 + 0.5 * s / 32768, -0.5 + 0.5 * s / 32768)
    z *= np.maximum(np.abs(x), 1.0)
    after = drawn.random()

    rng = np.random.default_rng(seed)
    v = random_signs(x, rng, 0.5)
    assert np.array_equal(np.asarray(v), z)
    assert rng.random() == after  # the generator moved on past the draws, as drawing them would have
    lo = 65536 - 7
    assert np.array_equal(v.reshape(-1)[lo:lo + 100], z[lo:lo + 100]) and v.reshape(-1)[SIZE - 1] == z[-1]
    assert all(v.reshape(-1)[i] == z[i] for i in (1, 2, 3, 5, 65539))  # entries that start inside a draw
    assert min_abs(v) == np.min(np.abs(z))
    assert np.all(np.abs(z) >= 0.5 * np.maximum(np.abs(x), 1.0)) and 0.45 < np.mean(z > 0) < 0.55


def test_a_regenerated_direction_is_made_into_the_point_with_the_bits_of_the_whole():
    rng = np.random.default_rng(3)
    x = {"w": rng.standard_normal(LARGE_ENTRIES) * 2}
    v = random_signs(x["w"], rng, 0.75)
    work: dict[str, np.ndarray] = {}
    for t in (1e-3, -2.5e-7):
        assert np.array_equal(moved(x, {"w": v}, t, work)["w"], x["w"] + t * np.asarray(v))


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


def _sine_sum(size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal(size), rng.standard_normal(size)


def test_a_large_check_holds_no_second_array_of_the_parameters_size_at_any_loss_call():
    """The gradient is let go of before every loss call and the directions are made into the point: at each loss
    call the check holds the point and nothing else of the parameter's size (measured by tracemalloc, whose counts
    do not depend on the machine's speed), and the planted entry is still found, from three gradient calls: the
    first, and the state check's two, made when the gradient is next read, whose call at x serves that read."""
    import tracemalloc

    c, w = _sine_sum(2 * LARGE_ENTRIES, 5)
    bad = 123457
    held: list[int] = []

    def loss(v):
        held.append(tracemalloc.get_traced_memory()[0])
        return float(c @ np.sin(v))

    def grad(v):
        g = c * np.cos(v)
        g[bad] *= 1.01
        return g

    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    report = dc.check_gradient(loss, grad, w, trace=False)
    tracemalloc.stop()
    one_array = w.nbytes
    assert report.verdict == "fail" and [e.index for e in report.wrong_entries["params"]] == [(bad,)]
    assert report.evaluations.grad == 3
    assert max(held) - start < 1.1 * one_array  # the point, and a few chunks


@pytest.mark.parametrize("seed", range(3))
def test_a_large_correct_gradient_passes_from_the_first_calls_and_one_more_pair(seed):
    c, w = _sine_sum(LARGE_ENTRIES, seed)
    if seed == 2:
        c, w = c.reshape(1024, -1), w.reshape(1024, -1)
    report = dc.check_gradient(lambda v: float(np.vdot(c, np.sin(v))), lambda v: c * np.cos(v), w, seed=seed,
                               trace=False)
    assert report.verdict == "pass"
    # The first call and the state check's two: the lines read it at once, and the state check's call at x serves
    # the reads after them (a 2-D block's zero columns, the dead-unit warning's, were read with the first).
    assert report.evaluations.grad == 3
    assert not any(f.kind == "stateful_gradient" for f in report.findings)


def test_a_large_gradient_from_the_last_or_first_forward_is_named_without_a_loss_call_at_y():
    """Made after the joint lines, the state check has their last loss call (away from x) for the forward a
    last-forward cache holds."""
    c, w = _sine_sum(LARGE_ENTRIES, 6)

    class Net:
        def __init__(self):
            self.cache = None

        def loss(self, v):
            self.cache = np.array(v)
            return float(c @ np.sin(v))

        def grad_last(self, v):
            return c * np.cos(self.cache)  # the last forward's point, not v

        def grad_first(self, v):
            if self.first is None:
                self.first = c * np.cos(v)
            return self.first.copy()

    net = Net()
    report = dc.check_gradient(net.loss, net.grad_last, w, trace=False)
    assert any(f.detail.get("state") == "last_forward" for f in report.findings)
    net = Net()
    net.first = None
    report = dc.check_gradient(net.loss, net.grad_first, w, trace=False)
    assert any(f.detail.get("state") == "first_forward" for f in report.findings)


def test_an_entry_made_into_the_point_has_the_bits_of_the_whole_direction():
    rng = np.random.default_rng(7)
    x = {"w": rng.standard_normal(LARGE_ENTRIES) * 3}
    x["w"][[5, 9]] = 0.0  # +0.0: the same bits either way
    work: dict[str, np.ndarray] = {}
    for flat, scale, t in ((70000, 2.5, 1e-3), (9, 1.0, -3e-6), (70000, 2.5, 2e-3)):
        v = unit_entry(x["w"].shape, flat, scale)
        assert np.array_equal(moved(x, {"w": v}, t, work)["w"], x["w"] + t * np.asarray(v))
    r = random_signs(x["w"], rng, 0.75)  # a whole line after the entries: the buffer is written whole again
    assert np.array_equal(moved(x, {"w": r}, 1e-4, work)["w"], x["w"] + 1e-4 * np.asarray(r))
    v = unit_entry(x["w"].shape, 3, 1.0)
    assert np.array_equal(moved(x, {"w": v}, 1e-4, work)["w"], x["w"] + 1e-4 * np.asarray(v))
    shifted = {"w": x["w"] + 1.0}  # another point through the same buffer, then x again
    assert np.array_equal(moved(shifted, {"w": v}, 1e-4, work)["w"], shifted["w"] + 1e-4 * np.asarray(v))
    assert np.array_equal(moved(x, {"w": v}, 1e-4, work)["w"], x["w"] + 1e-4 * np.asarray(v))


@pytest.mark.parametrize("seed", range(10))
def test_one_entry_read_from_kept_numbers_is_the_reading_of_its_line(seed):
    from derivcheck.numeric.directional import Probe, entry_reading, read_line, root_mean_square

    rng = np.random.default_rng(seed)
    x, g = rng.standard_normal(LARGE_ENTRIES) * 2, rng.standard_normal(LARGE_ENTRIES)
    probe = Probe(lambda p: 0.0, {"w": x}, 0.0, 1e-16, 2.2e-16, 2.2e-16)
    flat = int(rng.integers(LARGE_ENTRIES))
    scale = float(max(abs(x[flat]), 1.0))
    whole = read_line(probe, {"w": g}, {"w": unit_entry(x.shape, flat, scale)})
    assert entry_reading(probe, scale, float(g[flat]), root_mean_square(g), float(x[flat])) == whole
    v = random_signs(x, rng, 0.75)
    first, again = read_line(probe, {"w": g}, {"w": v}), read_line(probe, {"w": g}, {"w": v})  # the second cached
    assert first == again and probe.step_sums


@pytest.mark.parametrize("seed", range(20))
def test_the_two_direction_bound_never_drops_a_fitting_entry(seed):
    from derivcheck.numeric.recovery import _fitting_all, _may_fit

    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 5))
    rows = rng.uniform(-1, 1, (k, 20000))
    rows[:, :50] = rows[:, :1] * rng.uniform(0.9, 1.1, (k, 50))  # near-copies of entry 0: borderline fits
    errors = 0.3 * rows[:, 0] + rng.normal(0, 1e-3, k)
    tolerances = rng.choice([1e-3, 1e-2, 1e-1], k)
    fits, _ = _fitting_all(rows, errors, tolerances)
    assert set(fits.tolist()) <= set(_may_fit(rows, errors, tolerances).tolist())


def test_a_wrong_entry_among_two_large_blocks_is_found_with_few_fetches_of_the_gradient():
    """Two large blocks: the failing directions are read as one column each (made when read, never concatenated
    whole), each block's own line reads the gradient at once, and where bisection is needed (its every level reads
    the gradient between loss calls) the gradient is held from there on instead of fetched per level."""
    rng = np.random.default_rng(8)
    c1, c2 = rng.standard_normal(LARGE_ENTRIES), rng.standard_normal(LARGE_ENTRIES)
    p = {"a": rng.standard_normal(LARGE_ENTRIES), "b": rng.standard_normal(LARGE_ENTRIES)}

    def loss(q):
        return float(c1 @ np.sin(q["a"]) + c2 @ np.tanh(q["b"]))

    def grad(q):
        gb = c2 * (1 - np.tanh(q["b"]) ** 2)
        gb[777] *= 1.01
        return {"a": c1 * np.cos(q["a"]), "b": gb}

    report = dc.check_gradient(loss, grad, p, trace=False)
    assert report.verdict == "fail" and [e.index for e in report.wrong_entries["b"]] == [(777,)]
    assert "a" not in report.wrong_entries and report.evaluations.grad <= 6


def test_two_wrong_entries_of_a_large_block_are_bisected_with_the_gradient_held():
    c, w = _sine_sum(LARGE_ENTRIES, 9)

    def grad(v):
        g = c * np.cos(v)
        g[[1000, 700000]] *= 1.05
        return g

    report = dc.check_gradient(lambda v: float(c @ np.sin(v)), grad, w, trace=False)
    assert report.verdict == "fail" and [e.index for e in report.wrong_entries["params"]] == [(1000,), (700000,)]
    assert report.evaluations.grad <= 6  # not one fetch per level of the bisection


def test_a_faint_wrong_entry_among_large_blocks_is_narrowed_by_more_directions_not_bisected():
    """0.3% off in one entry of two blocks of 2^20: the first three candidates after four directions are not it
    (thousands of entries fit), and two more directions narrow them to it: no bisection (about a hundred more loss
    evaluations)."""
    rng = np.random.default_rng(3)
    c1, c2 = rng.standard_normal(LARGE_ENTRIES), rng.standard_normal(LARGE_ENTRIES)
    p = {"a": rng.standard_normal(LARGE_ENTRIES), "b": rng.standard_normal(LARGE_ENTRIES)}

    def grad(q):
        gb = c2 * (1 - np.tanh(q["b"]) ** 2)
        gb[777] *= 1.003
        return {"a": c1 * np.cos(q["a"]), "b": gb}

    report = dc.check_gradient(lambda q: float(c1 @ np.sin(q["a"]) + c2 @ np.tanh(q["b"])), grad, p, trace=False)
    assert report.verdict == "fail" and [e.index for e in report.wrong_entries["b"]] == [(777,)]
    assert sum("(localization)" in d.label for d in report.directions) > 2 and report.evaluations.loss < 60
