"""The engine under the checker, alone on plain functions: ladder, kinks, precision, recovery."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from derivcheck.numeric.directional import CoarserPrecision, Probe, directional_test, step_for
from derivcheck.numeric.finite_diff import _rung, central_difference
from derivcheck.numeric.kinks import coincident_kink_interval
from derivcheck.numeric.precision import coarse_spacing, observed_eps, significant_bits, spacing_of
from derivcheck.numeric.recovery import explains, one_sparse_candidates
from derivcheck.checker.taylor import taylor_test

EPS = float(np.finfo(float).eps)


def test_each_rung_is_fourth_order_and_estimates_its_error():
    f = lambda t: math.exp(0.7 + t)  # noqa: E731
    rungs = [_rung(f, f(0.0), h) for h in (0.2, 0.1)]
    errors = [abs(r.central - math.exp(0.7)) for r in rungs]
    assert 12 < errors[0] / errors[1] < 20  # 2**4 = 16
    assert all(e <= r.truncation for e, r in zip(errors, rungs))


@given(st.floats(0.3, 3.0), st.floats(-2.0, 2.0), st.floats(1e-4, 1e-2))
def test_error_estimate_covers_the_actual_error(a, b, h):
    f = lambda t: math.sin(a * t + b) + 0.3 * t**3  # noqa: E731
    d = central_difference(f, f(0.0), h, 2 * EPS)
    assert abs(d.value - a * math.cos(b)) <= 4 * d.error
    assert not d.kink


@pytest.mark.parametrize("delta", [3e-5, 1e-6, 1e-8, 1e-9, -1e-7])
def test_a_kink_beside_zero_is_stepped_over(delta):
    def f(t: float) -> float:
        return 0.4 * t + 1.5 * max(t - delta, 0.0) + 0.2 * t * t

    d = central_difference(f, f(0.0), 6e-6, 2 * EPS)
    truth = 0.4 + (1.5 if delta < 0 else 0.0)
    assert not d.kink
    assert d.refined == (abs(delta) < 6e-6)
    assert abs(d.value - truth) <= 4 * d.error < 1e-3


def test_a_kink_at_zero_is_recognised_with_its_one_sided_derivatives():
    d = central_difference(lambda t: 0.4 * t + 1.5 * max(t, 0.0), 0.0, 6e-6, 2 * EPS)
    assert d.kink
    assert d.backward == pytest.approx(0.4, abs=1e-8) and d.forward == pytest.approx(1.9, abs=1e-8)
    assert d.admits(0.4, 1e-9) and d.admits(1.9, 1e-9) and d.admits(1.0, 1e-9) and not d.admits(2.0, 1e-9)


def test_curvature_is_refined_not_called_a_kink():
    f = lambda t: math.exp(40 * t)  # noqa: E731 - a large fourth derivative at the first step
    d = central_difference(f, 1.0, 6e-3, 2 * EPS)
    assert not d.kink and abs(d.value - 40) <= 4 * d.error


def test_noise_larger_than_modelled_is_measured_not_blamed():
    rng = np.random.default_rng(0)
    noise = {}

    def f(t: float) -> float:  # deterministic, but rounded far coarser than float64
        if t not in noise:
            noise[t] = 1e-9 * rng.standard_normal()
        return math.sin(1 + t) + noise[t]

    d = central_difference(f, math.sin(1), 6e-6, 2 * EPS)
    assert d.noise > 1e-10
    assert abs(d.value - math.cos(1)) <= 4 * d.error


def test_noise_far_above_the_model_is_measured_after_the_second_rung_at_every_seed():
    # Rounding 1e5 times the two-ulp model (a BLAS dot product of 10^7 terms rounds about 100 times it): the second
    # rung, rough and not shrinking as a kink at 0 would, sends the ladder to its finest rung, whose roughness proves
    # noise. Before, the ladder waited for two consecutive Q's of a similar size, up to 20 evaluations.
    counts = []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        noise: dict[float, float] = {}

        def f(t: float) -> float:
            if t not in noise:
                noise[t] = 1e-10 * rng.standard_normal()
            return math.sin(1 + t) + noise[t]

        d = central_difference(f, math.sin(1), 6e-6, 2 * EPS)
        assert abs(d.value - math.cos(1)) <= 4 * d.error, seed  # truth: d/dt sin(1 + t) at 0 is cos(1)
        assert 1e-11 < d.noise < 1e-8, seed  # the measured noise, not the model's 2 ulps
        counts.append(d.evaluations)
    assert max(counts) <= 16 and sum(c <= 12 for c in counts) >= 19, counts


@given(st.lists(st.tuples(st.floats(-2, 2), st.floats(0.2, 2), st.sampled_from([-1.0, 1.0])), min_size=2, max_size=6))
def test_coincident_kinks_are_summed_one_by_one(kinks):
    # L(w) = sum_k c_k relu(a_k . w): every ReLU at 0 at w = 0; along e_0 each contributes [min, max](0, c_k a_k0).
    a = np.array([[s * r, y] for y, r, s in kinks])
    ratios = np.sort(a[:, 1] / a[:, 0])
    assume(np.all(np.diff(ratios) > 0.05))  # kinks that no shift separates act as one (a documented limit)
    c = np.array([1.0 if k % 2 else -0.7 for k in range(len(kinks))])

    def loss(p):
        return float(np.sum(c * np.maximum(a @ p["w"], 0)))

    span = coincident_kink_interval(loss, {"w": np.zeros(2)}, {"w": np.array([1.0, 0.0])}, 1e-6, 1e-16)
    contributions = c * a[:, 0]
    assert span is not None
    assert span[0] == pytest.approx(np.sum(np.minimum(contributions, 0)), abs=1e-6)
    assert span[1] == pytest.approx(np.sum(np.maximum(contributions, 0)), abs=1e-6)


def test_directional_test_on_a_plain_function():
    x = {"w": np.array([0.5, -1.0, 2.0])}
    loss = lambda p: float(np.sum(np.exp(p["w"])))  # noqa: E731
    probe = Probe(loss, x, loss(x), 2 * EPS * loss(x), EPS, EPS)
    v = {"w": np.array([1.0, -0.5, 0.25])}
    assert directional_test(probe, {"w": np.exp(x["w"])}, v).passed
    assert not directional_test(probe, {"w": np.exp(x["w"]) * (1 + 1e-7)}, v).passed


def test_precision_is_read_off_the_values():
    rng = np.random.default_rng(0)
    values = rng.standard_normal(6)
    assert observed_eps(values) == 2.0**-52
    assert observed_eps(float(np.float32(v)) for v in values) == 2.0**-23
    assert observed_eps(float(np.float16(v)) for v in values) == 2.0**-10
    assert observed_eps([1.0, 2.0]) is None  # too few values to say
    assert significant_bits(1.5) == 2 and significant_bits(0.0) == 0


@given(st.integers(0, 2**31 - 1), st.floats(1e-6, 10))
def test_one_wrong_entry_is_recovered_from_three_directions(seed, size):
    rng = np.random.default_rng(seed)
    columns = rng.standard_normal((3, 20000))
    bad = int(rng.integers(20000))
    errors = size * columns[:, bad] + 1e-12 * rng.standard_normal(3)
    tol = np.full(3, 1e-10)
    found = one_sparse_candidates(columns, errors, tol, 4)
    assert bad in found.tolist()
    assert explains(columns[:, bad], errors, tol, size, 1e-10)
    assert not explains(columns[:, bad], errors, tol, 2 * size, 1e-10)


def test_taylor_orders_from_the_checked_points():
    pts = [(e, math.exp(1 + e)) for e in (1e-3, 5e-4, -1e-3, -5e-4)]
    assert taylor_test(pts, math.e, math.e, 1e-16, False).order == pytest.approx(2, abs=0.1)
    assert taylor_test(pts, math.e, 1.1 * math.e, 1e-16, False).order == pytest.approx(1, abs=0.1)


@given(st.integers(0, 2**31 - 1))
def test_low_precision_confirms_a_stencil_that_hides_many_small_kinks(seed):
    rng = np.random.default_rng(seed)
    h = 5e-3  # float32's eps^(1/3): kinks crowd into such a stencil
    where = rng.uniform(-h, h, 12)
    jumps = rng.choice([-1.0, 1.0], 12) * rng.uniform(1e-3, 3e-3, 12)

    def f(t: float) -> float:
        return float(np.float32(2.0 * t + np.sum(jumps * np.maximum(t - where, 0.0))))

    truth = 2.0 + float(np.sum(jumps[where < 0]))
    d = central_difference(f, f(0.0), h, 2 * 2.0**-23, confirm=True)
    assert abs(d.value - truth) <= 4 * d.error + 1e-9


def test_float32_values_handed_back_as_floats_void_the_tests_begun_at_float64():
    x = {"w": np.array([0.3, -1.2, 0.7])}
    probe = Probe(lambda p: float(np.float32(np.sum(np.sin(p["w"].astype(np.float32))))), x, 0.0, 1e-16,
                  2.2e-16, 2.2e-16, watch=8)
    raised = False
    try:
        for k in range(8):
            probe.evaluate({"w": x["w"] + 1e-3 * (k + 1) / 3})
    except CoarserPrecision:
        raised = True
    assert raised and len(probe.values) == 3


def test_values_at_points_float32_holds_are_no_evidence_of_float32():
    # The max of a tied pooling window moved by 2^-17 along (1, 0): 1 + 2^-17 exactly, in float64 arithmetic.
    x = {"w": np.array([1.0, 1.0, 0.2])}
    probe = Probe(lambda p: float(np.max(p["w"])), x, 1.0, 1e-16, 2.2e-16, 2.2e-16, watch=8)
    for k in range(1, 8):
        probe.evaluate({"w": x["w"] + np.array([2.0**-(15 + k), 0.0, 0.0])})
    assert probe.eps_eval == 2.2e-16


@given(st.integers(-60, -20), st.lists(st.integers(-5000, 5000).filter(bool), min_size=4, max_size=30),
       st.floats(-1e-10, 1e-10))
def test_differences_on_a_power_of_two_lattice_give_its_spacing(exponent, multiples, stretch):
    # Law: whole multiples of q (seen through a slope within 1e-10 of 1) lie on q, and on no coarser power of two
    # unless every multiple is even.
    q = 2.0**exponent
    found = spacing_of([m * q * (1 + stretch) for m in multiples], q * 2.0**-30)
    odd = 2 ** min((m & -m).bit_length() - 1 for m in (abs(m) for m in multiples))
    assert found == q * odd


@given(st.integers(-60, -20), st.sampled_from([3, 5, 7, 25, 100, 125]), st.integers(1, 8),
       st.lists(st.integers(-5000, 5000).filter(bool), min_size=3, max_size=20))
def test_differences_on_a_lattice_divided_by_a_batch_give_a_whole_multiple_of_it(exponent, batch, smallest, multiples):
    # Law: a loss averaged over a batch of n rounds on its terms' power-of-two lattice divided by n, no power of two
    # for odd n. Whole multiples of that spacing, the smallest a few of it, give a spacing that is a whole multiple of
    # it and divides every one.
    q = 2.0**exponent / batch
    multiples = [smallest, *(m for m in multiples if abs(m) >= smallest)]
    ratio = spacing_of([m * q for m in multiples], 2.0**exponent * 2.0**-40) / q
    assert abs(ratio - round(ratio)) < 1e-6 and round(ratio) >= 1
    assert all(m % round(ratio) == 0 for m in multiples)


@given(st.integers(0, 2**31 - 1), st.floats(1e-3, 1e3))
def test_differences_of_a_loss_rounding_at_its_own_ulp_lie_on_no_lattice(seed, size):
    # Truth: values that carry all 53 bits (a loss of ``size`` moved by continuous amounts) differ by amounts whose
    # low bits are those of the values' ulp, far below any spacing LATTICE_MARGIN times above it.
    values = size * (1 + np.random.default_rng(seed).uniform(-1e-6, 1e-6, 8))
    f0 = size
    assert spacing_of([float(v) - f0 for v in values], 2.2e-16 * size) == 0.0


@given(st.integers(-60, -20), st.lists(st.integers(-64, 64), min_size=2, max_size=8), st.floats(-1e-9, 1e-9))
def test_a_few_spacings_of_a_power_of_two_give_it(exponent, multiples, stretch):
    # Law: changes of at most 64 spacings q (seen through a slope within 1e-9 of 1) give q times the largest power
    # of two dividing them all, once two of them are not zero.
    assume(sum(1 for m in multiples if m) >= 2)
    q = 2.0**exponent
    odd = 2 ** min((abs(m) & -abs(m)).bit_length() - 1 for m in multiples if m)
    assert coarse_spacing([m * q * (1 + stretch) for m in multiples]) == q * odd


def test_a_stalled_ladder_reads_the_lattice_it_rounds_on():
    # Truth: phi(t) = 0.4 q + 2.3e-11 t rounded to multiples of q = 2^-52 (a loss of 1e-11 computed from terms of
    # order 1, its value 0.4 q off the lattice). At h = 6e-6 it moves by one spacing on one side, at h/8 by none:
    # the clean rung must not make the derivative exactly 0.
    q = 2.0**-52
    d = central_difference(lambda t: round(0.4 + 2.3e-11 * t / q) * q, 0.0, 6e-6, 1e-27)
    assert d.unproven_noise and d.noise >= q / 2
    assert abs(d.value - 2.3e-11) <= 4 * d.error


def test_a_costly_line_reads_its_noise_off_the_finest_rung_first():
    # Truth: sin(1 + t) with noise of 1e-13 per value (a loss summing millions of terms rounds far above two
    # ulps), and |t| + 0.3 t (a kink at 0, one-sided slopes 1.3 and -0.7). Costly, the rough first rung asks
    # the finest rung next: four evaluations fewer for noise, and the kink is found as before.
    rng = np.random.default_rng(3)

    def noisy(t):
        return float(np.sin(1 + t) + 1e-13 * rng.standard_normal())

    cheap, costly = (central_difference(noisy, noisy(0.0), 6e-6, 2e-16, costly=c) for c in (False, True))
    assert (cheap.evaluations, costly.evaluations) == (12, 8)
    for d in (cheap, costly):
        assert d.noise > 1e-13 and not d.unproven_noise and abs(d.value - np.cos(1.0)) <= 4 * d.error
    kink = central_difference(lambda t: abs(t) + 0.3 * t, 0.0, 6e-6, 2e-16, costly=True)
    assert kink.kink and (kink.forward, kink.backward) == pytest.approx((1.3, -0.7))


@pytest.mark.parametrize("m", range(20))
def test_a_line_on_a_stretched_lattice_clean_by_chance_at_two_rungs_is_read_between_its_points(m):
    """A loss that rounds on 2^-53 stretched by 1 + 1.9e-4 (-log p with p on float64's grid near 1: no spacing the
    lattice search reads), its slope set so that the first stencil's points, and the next rung's, are whole
    multiples of the lattice in ratios of two: both rungs clean, both off by a tenth of a spacing over half a
    step. The truth is the slope of the line before rounding; a gradient 1% off still fails."""
    eps, spacing = float(np.finfo(float).eps), 2.0**-53 * (1 + 1.9e-4)
    f0, x = 1000 * spacing, {"w": np.array([0.0])}
    h = step_for(Probe(lambda p: 0.0, x, f0, 2 * eps * f0, eps, eps), 1.0)
    slope = (8 * (50 + m) + 0.1) * spacing / (h / 2)  # the next rung's points: (50 + m + 1/80) spacings

    def loss(p):
        return round((f0 + slope * float(p["w"][0])) / spacing) * spacing

    def test(analytic):
        probe = Probe(loss, x, loss(x), 2 * eps * f0, eps, eps)
        return directional_test(probe, {"w": np.array([analytic])}, {"w": np.array([1.0])})

    assert test(slope).passed
    assert not test(1.01 * slope).passed
