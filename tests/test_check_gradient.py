"""check_gradient: correct gradients pass; planted bugs fail and are named; errors are clear."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import derivcheck as dc
from tests.smooth import smooth_problems


def kinds(report: dc.GradientReport) -> list[str]:
    return [f.kind for f in report.findings if f.severity == "error"]


@given(smooth_problems())
def test_correct_gradients_pass(problem):
    report = dc.check_gradient(problem.loss, problem.grad, problem.params)
    assert report.verdict == "pass", str(report)
    assert report.ok
    assert all(p.detection_floor < 1e-5 for p in report.params if np.isfinite(p.detection_floor))


@given(smooth_problems(), st.sampled_from([0.5, 2.0, 8.0, 1 / 16]))
def test_scale_factor_caught_and_named(problem, factor):
    def wrong(p):
        return {k: factor * v for k, v in problem.grad(p).items()}

    report = dc.check_gradient(problem.loss, wrong, problem.params)
    significant = any(np.max(np.abs(v)) > 1e-6 for v in problem.grad(problem.params).values())
    entries = sum(np.size(v) for v in problem.params.values())
    if significant:
        assert report.verdict == "fail"
        # One entry alone: any wrong value is some factor times the right one, so no factor is claimed.
        named = "scale" in kinds(report) or "scale_all" in kinds(report)
        assert named if entries >= 2 else "scale" not in kinds(report), str(report)


@given(smooth_problems())
def test_sign_flip_caught(problem):
    report = dc.check_gradient(problem.loss, lambda p: {k: -v for k, v in problem.grad(p).items()}, problem.params)
    assert report.verdict == "fail"
    shared = [f for f in report.findings if f.kind == "scale_all"]
    assert "sign" in kinds(report) or (shared and shared[0].factor == -1), str(report)


@given(smooth_problems(square=True))
def test_transposed_square_matrix_caught(problem):
    g0 = problem.grad(problem.params)["p0"]
    if np.allclose(g0, g0.T, rtol=1e-3, atol=1e-6):
        return  # a symmetric gradient is its own transpose: nothing to catch
    def wrong(p):
        g = problem.grad(p)
        g["p0"] = g["p0"].T.copy()
        return g

    report = dc.check_gradient(problem.loss, wrong, problem.params)
    assert report.verdict == "fail"
    assert "transpose" in kinds(report) or "wrong_entries" in kinds(report), str(report)


@given(smooth_problems(), st.data())
def test_single_wrong_entry_localized(problem, data):
    name = data.draw(st.sampled_from(sorted(problem.params)))
    shape = problem.params[name].shape
    flat = data.draw(st.integers(0, int(np.prod(shape)) - 1))
    index = np.unravel_index(flat, shape)

    def wrong(p):
        g = problem.grad(p)
        g[name][index] += 1e-3 * (1 + abs(g[name][index]))
        return g

    report = dc.check_gradient(problem.loss, wrong, problem.params)
    assert report.verdict == "fail"
    entries = report.wrong_entries[name]
    assert [e.index for e in entries] == [tuple(int(i) for i in index)]


@given(smooth_problems())
def test_tiny_relative_error_caught_in_float64(problem):
    grads = problem.grad(problem.params)
    if max(np.max(np.abs(v)) for v in grads.values()) < 1e-3:
        return
    report = dc.check_gradient(problem.loss, lambda p: {k: v * (1 + 1e-6) for k, v in problem.grad(p).items()}, problem.params)
    assert report.verdict == "fail", str(report)


def test_one_wrong_entry_among_many_found_with_few_evaluations(rng):
    x = rng.standard_normal((30, 200))
    w0 = rng.standard_normal((200, 250)) / 15

    def loss(w):
        return float(np.sum(np.tanh(x @ w) ** 2))

    def grad(w):
        t = np.tanh(x @ w)
        return x.T @ (2 * t * (1 - t**2))

    def wrong(w):
        g = grad(w)
        g[17, 201] += 0.01
        return g

    assert dc.check_gradient(loss, grad, w0).verdict == "pass"
    report = dc.check_gradient(loss, wrong, w0)
    assert report.verdict == "fail"
    assert [e.index for e in report.wrong_entries["params"]] == [(17, 201)]
    assert report.params[0].method == "directional"
    # 50,000 entries: a full check would need 200,000 evaluations.
    assert report.evaluations.loss < 200


def test_same_seed_same_report(rng):
    x = rng.standard_normal((4, 600))

    def loss(w):
        return float(np.sum(np.sin(x @ w)))

    def grad(w):
        return x.T @ np.cos(x @ w) * 1.01

    w = rng.standard_normal(600)
    # trace=False: the line tracing's cost (seconds) is printed with it, and this test is about the check.
    a = dc.check_gradient(loss, grad, w, seed=3, trace=False)
    b = dc.check_gradient(loss, grad, w, seed=3, trace=False)
    assert dc.report.to_dict(a) | {"seconds": 0} == dc.report.to_dict(b) | {"seconds": 0}


def test_float32_correct_gradient_passes(rng):
    x = rng.standard_normal((16, 8)).astype(np.float32)
    t = rng.standard_normal((16, 4)).astype(np.float32)
    w = (rng.standard_normal((8, 4)) / 3).astype(np.float32)

    def loss(w):  # computed in float32 whatever it is given
        r = x @ w.astype(np.float32) - t
        return np.float32(0.5) * np.mean(r * r)

    def grad(w):
        r = x @ w.astype(np.float32) - t
        return x.T @ r / np.float32(r.size)

    report = dc.check_gradient(loss, grad, w)
    assert report.verdict == "pass", str(report)
    assert "float32" in [f.kind for f in report.findings]
    bad = dc.check_gradient(loss, lambda w: 2 * grad(w), w)
    assert bad.verdict == "fail" and "scale" in kinds(bad)


def test_float32_functions_that_refuse_float64_get_wider_tolerance(rng):
    x = rng.standard_normal((10, 6)).astype(np.float32)
    w = rng.standard_normal(6).astype(np.float32)

    def loss(w):
        if w.dtype != np.float32:
            raise TypeError("float32 only")
        return np.sum(np.tanh(x @ w))

    def grad(w):
        return x.T @ (1 - np.tanh(x @ w) ** 2)

    report = dc.check_gradient(loss, grad, w)
    assert report.verdict == "pass", str(report)
    assert report.evaluated_in == "float32"
    assert any(f.kind == "float32" and f.severity == "warning" for f in report.findings)


@pytest.mark.parametrize("convention", ["strict", "inclusive"])
def test_relu_at_exact_zero_is_a_kink_not_a_failure(rng, convention):
    x = rng.integers(-2, 3, (6, 4)).astype(float)
    w = rng.integers(-2, 3, (4, 3)).astype(float)
    up = rng.standard_normal((6, 3))
    mask = (lambda z: z > 0) if convention == "strict" else (lambda z: z >= 0)

    def loss(w):
        return float(np.sum(up * np.maximum(x @ w, 0)))

    report = dc.check_gradient(loss, lambda w: x.T @ (up * mask(x @ w)), w)
    assert (x @ w == 0).any()
    assert report.verdict == "pass", str(report)
    assert report.kinks
    wrong = dc.check_gradient(loss, lambda w: -(x.T @ (up * mask(x @ w))), w)
    assert wrong.verdict == "fail"


def test_tied_maxima_accept_any_subgradient(rng):
    x = np.array([[1.0, 3.0, 3.0, 0.5], [2.0, 2.0, 2.0, 2.0]])
    up = np.array([0.7, -1.3])

    def loss(x):
        return float(np.sum(up * x.max(axis=1)))

    def first_argmax(x):
        g = np.zeros_like(x)
        g[np.arange(2), x.argmax(axis=1)] = up
        return g

    def split_ties(x):
        ties = x == x.max(axis=1, keepdims=True)
        return ties / ties.sum(axis=1, keepdims=True) * up[:, None]

    for grad in (first_argmax, split_ties):
        report = dc.check_gradient(loss, grad, x)
        assert report.verdict == "pass", str(report)
        assert report.kinks
    assert dc.check_gradient(loss, lambda x: 2 * first_argmax(x), x).verdict == "fail"


def test_abs_subgradient_outside_interval_fails():
    x = np.array([0.0, 1.0, -2.0])
    assert dc.check_gradient(lambda x: np.abs(x).sum(), np.sign, x).verdict == "pass"
    report = dc.check_gradient(lambda x: np.abs(x).sum(), lambda x: np.sign(x) + (x == 0) * 3.0, x)
    assert report.verdict == "fail"
    assert any(not k.valid_subgradient for k in report.kinks)


def test_all_zero_gradient_named(rng):
    w = rng.standard_normal((3, 4))
    report = dc.check_gradient(lambda w: np.sum(w**2), np.zeros_like, w)
    assert report.verdict == "fail" and kinds(report) == ["zero"]


def test_first_sample_only_named(rng):
    # Named only where axis 0 is known to be the batch axis: a layer's input, not a bare parameter array.
    x = rng.standard_normal((5, 3))

    def first_only(dy, x):
        dx = np.zeros_like(x)
        dx[0] = dy[0] * (1 - np.tanh(x[0]) ** 2)
        return dx

    report = dc.check_backward(np.tanh, first_only, (x,))
    assert report.verdict == "fail" and "first_sample_only" in kinds(report), str(report)


def test_vacuous_gradients_warned_and_a_uniform_one_not_blamed(rng):
    w = rng.standard_normal(4)
    b = rng.standard_normal(3)
    report = dc.check_gradient(
        lambda p: float(np.mean(p["b"]) + 0 * p["w"].sum()), lambda p: {"w": np.zeros(4), "b": np.ones(3) / 3},
        {"w": w, "b": b}
    )
    found = {f.kind for f in report.findings}
    # A mean loss has a uniform gradient: nothing about it is wrong, and nothing false is said about it.
    assert report.verdict == "pass" and "vacuous" in found and not any(f.severity == "error" for f in report.findings)
    assert "upstream" not in " ".join(report.diagnosis)


def test_a_symmetric_point_and_dead_units_are_warnings_on_a_pass(rng):
    x = rng.standard_normal((5, 3))
    w = np.full((3, 4), 0.5)

    def loss(w):
        return float(np.sum(np.maximum(x @ w, 0) ** 2))

    def grad(w):
        h = np.maximum(x @ w, 0)
        return x.T @ (2 * h)

    report = dc.check_gradient(loss, grad, w)
    assert report.verdict == "pass"
    sym = [f for f in report.findings if f.kind == "symmetric_point"]
    assert sym and sym[0].severity == "warning" and sym[0].detail["lines"] in ("rows", "columns")
    w2 = rng.standard_normal((3, 4))
    w2[:, 2] = -5.0  # with non-negative inputs, unit 2 never fires
    x_pos = np.abs(x)
    report = dc.check_gradient(lambda w: float(np.sum(np.maximum(x_pos @ w, 0) ** 2)),
                               lambda w: x_pos.T @ (2 * np.maximum(x_pos @ w, 0)), w2)
    dead = [f for f in report.findings if f.kind == "dead_units"]
    assert report.verdict == "pass" and dead and (2,) in dead[0].entries and dead[0].severity == "warning"


def test_taylor_test_orders(rng):
    w = rng.standard_normal(5)
    good = dc.check_gradient(lambda w: np.sum(np.exp(w)), np.exp, w)
    bad = dc.check_gradient(lambda w: np.sum(np.exp(w)), lambda w: 1.1 * np.exp(w), w)
    assert good.taylor.order == pytest.approx(2, abs=0.2)
    assert bad.taylor.order == pytest.approx(1, abs=0.2)


def test_mutating_user_function_reported_and_inputs_untouched(rng):
    w = rng.standard_normal(4)
    before = w.copy()

    def loss(w):
        w *= 1.0  # harmless
        return float(np.sum(w**2))

    def grad(w):
        g = 2 * w
        w[0] = 99.0  # mutates its input
        return g

    report = dc.check_gradient(loss, grad, w)
    assert np.array_equal(w, before)
    assert report.verdict == "pass"
    assert any(f.kind == "mutation" and "grad" in f.message for f in report.findings)


def test_nondeterministic_loss_is_inconclusive_not_blamed(rng):
    noise = np.random.default_rng(1)
    w = rng.standard_normal(3)
    report = dc.check_gradient(lambda w: float(np.sum(w**2) + 1e-3 * noise.standard_normal()), lambda w: 2 * w, w)
    assert report.verdict == "inconclusive"
    assert any(f.kind == "nondeterministic" for f in report.findings)


@pytest.mark.parametrize("seed", range(20))
def test_a_random_gradient_fails_and_is_named_random(seed):
    # Dropout-like noise drawn inside the gradient: two calls at one point differ, which one call cannot show.
    noise = np.random.default_rng(100 + seed)
    w = np.random.default_rng(seed).standard_normal(50)
    report = dc.check_gradient(lambda w: float(np.sum(w**2)), lambda w: 2 * w + 0.1 * noise.standard_normal(50), w,
                               seed=seed, trace=False)
    assert report.verdict == "fail"
    assert any(f.kind == "nondeterministic" and "grad is not deterministic" in f.message for f in report.findings)


@pytest.mark.parametrize("seed", range(20))
def test_a_wrong_deterministic_gradient_is_never_called_random(seed):
    # The state check's second call gave the first result: no third call, and no finding of randomness.
    w = np.random.default_rng(seed).standard_normal(50)
    report = dc.check_gradient(lambda w: float(np.sum(w**2)), lambda w: 2.2 * w, w, seed=seed, trace=False)
    assert report.verdict == "fail" and report.evaluations.grad == 3
    assert not any(f.kind in ("nondeterministic", "stateful_gradient") for f in report.findings)


@pytest.mark.parametrize(
    ("params", "error", "words"),
    [
        (np.arange(3), dc.IntegerDtypeError, ["'params'", "int"]),
        ({"w": [1.0, 2.0]}, dc.InputError, ["'w'", "numpy array"]),
        ({}, dc.InputError, ["empty"]),
        (np.array([1.0, np.nan]), dc.InputError, ["NaN"]),
        ("w", dc.InputError, ["str"]),
    ],
)
def test_bad_params_raise_named_errors(params, error, words):
    with pytest.raises(error) as info:
        dc.check_gradient(lambda p: 0.0, lambda p: p, params)
    for w in words:
        assert w in str(info.value)


def test_bias_gradient_with_batch_axis_says_sum_over_axis_0(rng):
    x = rng.standard_normal((5, 3))
    p = {"w": rng.standard_normal((3, 2)), "b": rng.standard_normal(2)}
    up = rng.standard_normal((5, 2))

    def loss(p):
        return float(np.sum(up * (x @ p["w"] + p["b"])))

    with pytest.raises(dc.GradientShapeError) as info:
        dc.check_gradient(loss, lambda p: {"w": x.T @ up, "b": up}, p)
    assert "'b'" in str(info.value) and "sum over axis 0" in str(info.value)


@pytest.mark.parametrize(
    ("loss", "grad", "error", "words"),
    [
        (lambda w: w, lambda w: w, dc.InputError, ["scalar", "shape (3,)"]),
        (lambda w: np.log(w - 10).sum(), lambda w: w, dc.NonFiniteError, ["loss", "finite"]),
        (lambda w: (w**2).sum(), lambda w: w / 0.0, dc.NonFiniteError, ["'params'"]),
        (lambda w: 1 / 0, lambda w: w, dc.UserFunctionError, ["loss raised ZeroDivisionError"]),
        (lambda w: (w**2).sum(), lambda w: [w, w], dc.GradientShapeError, ["shape"]),
        (lambda w: (w**2).sum(), lambda w: w.astype(complex), dc.GradientShapeError, ["dtype"]),
    ],
)
def test_misbehaving_user_functions_raise_named_errors(loss, grad, error, words):
    with pytest.raises(error) as info, np.errstate(all="ignore"):
        dc.check_gradient(loss, grad, np.ones(3))
    assert isinstance(info.value, dc.DerivcheckError)
    for w in words:
        assert w in str(info.value)


def test_bad_options_raise():
    with pytest.raises(dc.InputError, match="mode"):
        dc.check_gradient(np.sum, np.ones_like, np.ones(2), mode="fast")
    with pytest.raises(dc.InputError, match="rtol"):
        dc.check_gradient(np.sum, np.ones_like, np.ones(2), rtol=-1)


def test_assert_gradient_raises_with_report(rng):
    w = rng.standard_normal(3)
    with pytest.raises(dc.GradientMismatch) as info:
        dc.assert_gradient(lambda w: np.sum(w**2), lambda w: w, w)
    assert info.value.report.verdict == "fail"
    assert isinstance(info.value, AssertionError)


def test_list_and_tuple_params_and_renderings(rng):
    a, b = rng.standard_normal(3), rng.standard_normal((2, 2))
    report = dc.check_gradient(lambda p: float(np.sum(p[0] ** 2) + np.sum(p[1] ** 3)), lambda p: [2 * p[0], 3 * p[1] ** 2], [a, b])
    assert report.ok
    assert "params[1]" in str(report)
    assert "<table>" in report._repr_html_()
    assert report._repr_markdown_().count("|") > 10


def test_parameters_smaller_than_the_step_are_warned():
    w = np.array([1e-9, -3e-9])
    report = dc.check_gradient(lambda w: float(np.sum(w**2)), lambda w: 2 * w, w)
    assert any(f.kind == "step_scale" for f in report.findings)
    assert not any(f.kind == "step_scale" for f in dc.check_gradient(lambda w: float(np.sum(w**2)), lambda w: 2 * w, np.ones(2)).findings)


def test_gradient_only_right_for_batch_size_one_is_named(rng):
    x, w, b = rng.standard_normal((6, 4)), rng.standard_normal((4, 3)), rng.standard_normal(3)

    def forward(x, w, b):
        return np.tanh(x @ w + b)

    def backward(dy, x, w, b):
        dz = dy * (1 - forward(x, w, b) ** 2)
        return dz @ w.T, x.T @ dz, dz.mean(axis=0)  # mean: right only for one sample

    report = dc.check_backward(forward, backward, (x, w, b))
    assert report.verdict == "fail"
    assert "batch_size_one" in kinds(report)
    mean = next(f for f in report.findings if f.kind == "mean_vs_sum")
    assert mean.param == "b" and mean.factor == pytest.approx(1 / 6) and mean.detail["batch"] == 6
