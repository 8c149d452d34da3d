"""blame_lines names the planted line of a whole-network backward pass, and why; never a correct one.

The truth of every case is the slip planted in tests/line_corpus.py, never derivcheck's output.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))

import line_corpus as corpus  # noqa: E402

from derivcheck.checker.lines import LineBlame, blame_lines, render_line_blame  # noqa: E402
from derivcheck.checker.lines.cause import find_cause  # noqa: E402
from derivcheck.checker.lines.numbers import name_factor  # noqa: E402
from derivcheck.checker.lines.replay import Context, Event  # noqa: E402

LINE_RATE = 0.90
CAUSE_RATE = 0.85


@pytest.fixture(scope="module")
def results():
    return {case.name: blame_lines(case.loss, case.grad, case.params) for case in corpus.CASES}


def _line_named(case, b: LineBlame) -> bool:
    return b.status == "blamed" and case.line in (b.source or "") and b.variable == case.variable


def test_the_corpus_is_large_and_covers_every_style():
    assert len(corpus.BUGGY) >= 30 and len(corpus.TWINS) == len(corpus.BUGGY)
    assert {c.style for c in corpus.BUGGY} == {"flat", "class", "layers", "recurrent", "objects"}


def test_the_planted_line_and_its_cause_are_named_at_the_required_rates(results):
    lines = [c.name for c in corpus.BUGGY if _line_named(c, results[c.name])]
    causes = [c.name for c in corpus.BUGGY if _line_named(c, results[c.name]) and results[c.name].cause == c.cause]
    line_rate, cause_rate = len(lines) / len(corpus.BUGGY), len(causes) / len(corpus.BUGGY)
    print(f"\nline named: {len(lines)}/{len(corpus.BUGGY)} = {line_rate:.0%}; "
          f"cause named: {len(causes)}/{len(corpus.BUGGY)} = {cause_rate:.0%}")
    for c in corpus.BUGGY:
        if c.name not in causes:
            b = results[c.name]
            print(f"  missed: {c.name}: {b.status} {b.source!r} cause={b.cause} ({b.cause_text or b.reason})")
    assert line_rate >= LINE_RATE
    assert cause_rate >= CAUSE_RATE


def test_every_blame_is_confirmed_by_repair(results):
    for case in corpus.BUGGY:
        b = results[case.name]
        if b.status == "blamed":
            assert b.confirmed_by_repair and b.entries and b.evaluations > 0


@pytest.mark.parametrize("case", corpus.TWINS, ids=lambda c: c.name)
def test_nothing_is_blamed_on_a_correct_twin(case, results):
    b = results[case.name]
    assert b.status == "no_line" and b.line is None and b.cause is None, render_line_blame(b)


def test_the_two_layer_sigmoid_slip_prints_its_corrected_line(results):
    b = results["two-layer sigmoid, sigma' of the error"]
    assert b.source == "dz2 = dh2 * (1 - dh2)"
    assert b.corrected == "dz2 = dh2 * h2 * (1 - h2)"
    text = render_line_blame(b)
    assert "wrong line: line_corpus.py:" in text and "in two_layer_sigmoid: dz2 = dh2 * (1 - dh2)" in text
    assert "corrected: dz2 = dh2 * h2 * (1 - h2)" in text and "evaluations" in text


def test_a_dropped_factor_two_is_said_as_twice(results):
    b = results["3-layer sigmoid, squared error without its 2"]
    assert b.details["factor"] == "twice" and "2" in b.corrected


def test_a_missing_one_over_n_and_one_over_t_are_named_by_their_sizes(results):
    assert results["ReLU net, softmax without 1/N"].details["factor"] == "1/N"
    assert results["temperature softmax without 1/T"].details["factor"] == "1/T"
    assert results["avg-pool backward, gradient copied over the window"].details["factor"] == "1/(k * k)"


def test_a_recurrent_slip_names_the_first_step_it_shows_at(results):
    for name, step in corpus.FIRST_STEP.items():
        b = results[name]
        assert b.step is not None and dict(b.step)["t"] == step, (name, b.step)


def test_to_dict_has_the_wiring_keys(results):
    d = results["XOR, forgotten sigma'"].to_dict()
    assert {"file", "line", "source", "variable", "cause", "status", "evaluations", "reason"} <= set(d)
    assert d["variable"] == "delta1" and d["cause"] == "missing_derivative"


def test_the_user_arrays_are_never_modified_bit_for_bit():
    case = next(c for c in corpus.BUGGY if c.name.startswith("RNN, tanh'"))
    params = {k: v.copy() for k, v in case.params.items()}
    params["b"][0] = -0.0  # a negative zero survives only a bit-for-bit restore
    before = {k: v.tobytes() for k, v in params.items()}
    blame_lines(case.loss, case.grad, params)
    assert {k: v.tobytes() for k, v in params.items()} == before


def test_code_without_readable_source_is_unreadable_and_blames_nothing():
    namespace = {"np": np}
    exec("def loss(w):\n    return float(np.sum(w ** 3))\ndef grad(w):\n    return 2 * w ** 2\n", namespace)  # noqa: S102
    b = blame_lines(namespace["loss"], namespace["grad"], np.arange(1.0, 4.0))
    assert b.status == "unreadable" and b.line is None and b.reason


def test_a_budget_too_small_is_undecided_not_a_blame():
    case = corpus.BUGGY[0]
    b = blame_lines(case.loss, case.grad, case.params, budget=20)
    assert b.status == "undecided" and "budget" in b.reason


def test_blame_lines_takes_a_list_of_arrays():
    w = np.array([[0.3, -0.2], [0.1, 0.4]])

    def loss(ps):
        z = corpus.X[:, :2] @ ps[0]
        a = np.tanh(z)
        return float(np.sum(a ** 2))

    def grad(ps):
        z = corpus.X[:, :2] @ ps[0]
        a = np.tanh(z)
        da = 2 * a
        dz = da * (1 - a)  # planted: tanh' written as 1 - a
        return [corpus.X[:, :2].T @ dz]

    b = blame_lines(loss, grad, [w])
    assert b.status == "blamed" and b.source == "dz = da * (1 - a)", render_line_blame(b)


# --- the line-level detectors on their own: a planted slip, and a near miss they must not claim ----


def _context(source: str, namespace: dict, true: np.ndarray, forward: tuple[str, ...]) -> Context:
    statement = ast.parse(source).body[0]
    env = {"np": np, **{k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in namespace.items()}}
    exec(compile(ast.Module([statement], []), "<test>", "exec"), env)  # noqa: S102
    var = statement.targets[0].id if isinstance(statement, ast.Assign) else ast.unparse(statement.target).split("[")[0]
    known = [namespace[n] for n in forward]
    return Context(var, [Event(1, namespace, {"np": np}, ())], {1: statement}, {1: source}, true,
                   np.full(true.shape, 1e-12), np.asarray(env[var], dtype=float),
                   lambda a: any(a is k or (a.shape == k.shape and np.array_equal(a, k)) for k in known))


_G = np.random.default_rng(5)
H = 1 / (1 + np.exp(-_G.standard_normal((3, 4))))
Z = _G.standard_normal((3, 4))
D = _G.standard_normal((3, 4))
IDX = np.array([0, 2, 0])
DETECTOR_CASES = [
    # (kind, planted source, namespace, true value, forward names)
    ("wrong_quantity", "dz = d * (1 - d)", {"d": D, "h": H}, D * H * (1 - H), ("h",)),
    ("missing_derivative", "dz = d", {"d": D, "h": H}, D * H * (1 - H), ("h",)),
    ("constant_factor", "dz = d * h", {"d": D, "h": H, "N": 3}, D * H / 3, ("h",)),
    ("sign", "dz = d * h", {"d": D, "h": H}, -D * H, ("h",)),
    ("transposition", "dz = d.T @ h", {"d": D[:, :3], "h": H}, D[:, :3] @ H, ("h",)),
    ("missing_sum", "dz = d.sum(axis=0)", {"d": D, "dz": np.ones(4)}, np.ones(4) + D.sum(axis=0), ()),
    ("missing_term", "dz = d * h", {"d": D, "h": H, "w": Z, "reg": 0.3}, D * H + 0.3 * Z, ("h", "w")),
    ("repeated_index", "dE[IDX] += d[:3, :2]", {"dE": np.zeros((3, 2)), "IDX": IDX, "d": D}, None, ()),
    ("misplaced_term", "dz = (d * h + z) * (1 - h)", {"d": D, "h": H, "z": Z}, D * H * (1 - H) + Z, ("h",)),
]


def _planted_true(kind, source, namespace, true):
    if kind == "repeated_index":
        out = namespace["dE"].copy()
        np.add.at(out, namespace["IDX"], namespace["d"][:3, :2])
        return out
    return true


@pytest.mark.parametrize("kind,source,namespace,true,forward", DETECTOR_CASES, ids=[c[0] for c in DETECTOR_CASES])
def test_each_detector_names_its_planted_slip(kind, source, namespace, true, forward):
    if kind == "missing_sum":  # a line that runs twice, overwriting instead of summing
        statement = source
        ctx = _context(statement, namespace, true, forward)
        second = {**namespace, "d": Z}
        ctx.events = [Event(1, {**namespace, "dz": np.zeros(4)}, {"np": np}, ()), Event(1, second, {"np": np}, ())]
        ctx.true = D.sum(axis=0) + Z.sum(axis=0)
        ctx.yours = Z.sum(axis=0)
        assert find_cause(ctx).kind == "missing_sum"
        return
    ctx = _context(source, namespace, _planted_true(kind, source, namespace, true), forward)
    cause = find_cause(ctx)
    assert cause.kind == kind, (cause.text, cause.corrected)
    assert cause.corrected and cause.corrected != source


@pytest.mark.parametrize("kind,source,namespace,true,forward", DETECTOR_CASES, ids=[c[0] for c in DETECTOR_CASES])
def test_no_detector_claims_a_near_miss(kind, source, namespace, true, forward):
    true = _planted_true(kind, source, namespace, true)
    if true is None or kind == "missing_sum":
        true = D.sum(axis=0) * 2
    near = np.array(true, dtype=float).copy()
    near.flat[1] += 1e-3 * (1 + abs(near.flat[1]))  # one entry off: the correction must fit every entry
    cause = find_cause(_context(source, namespace, near, forward))
    assert cause.kind is None and cause.corrected is None


def test_a_sign_flip_plus_an_error_orthogonal_to_one_direction_is_not_a_sign_error():
    u = _G.standard_normal((3, 4))
    orthogonal = _G.standard_normal((3, 4))
    orthogonal -= np.vdot(orthogonal, u) / np.vdot(u, u) * u  # invisible along u
    true = -(D * H) + 0.1 * orthogonal
    assert np.isclose(np.vdot(true, u), np.vdot(-(D * H), u))
    assert find_cause(_context("dz = d * h", {"d": D, "h": H}, true, ("h",))).kind is None


def test_two_different_corrections_that_both_fit_name_neither():
    s = np.array([[0.5, 0.5], [0.5, 0.5]])  # s * (1 - s) = 0.25 = s / 2: the data cannot tell
    d = np.array([[1.0, -2.0], [3.0, 0.5]])
    ctx = _context("dz = d", {"d": d, "s": s}, d * 0.25, ("s",))
    cause = find_cause(ctx)
    assert cause.kind is None and cause.corrected is None and "kinds" in cause.details


@given(st.sampled_from([2.0, 0.5, 3.0, 1 / 3, -1.0, 0.25]), st.floats(1e-4, 1e-2))
def test_a_factor_is_named_only_when_it_is_that_number(c, slip):
    assert name_factor(c * (1 + 1e-10), {}) is not None
    assert name_factor(c * (1 + slip) + 1e-3, {}) is None or abs(name_factor(c * (1 + slip) + 1e-3, {}).value
                                                              - c) > 1e-6


def test_line_blame_is_frozen_plain_data():
    b = LineBlame("no_line", reason="nothing wrong")
    with pytest.raises(AttributeError):
        b.status = "blamed"  # type: ignore[misc]
    assert "no line blamed (no_line): nothing wrong" in render_line_blame(b)


def _one_wrong_entry_among(n: int, seed: int):
    rng = np.random.default_rng(seed)
    c, w = rng.standard_normal(n), rng.standard_normal(n)
    i = int(np.argsort(np.abs(c * np.cos(w)))[3 * n // 4])  # an entry of typical size

    def loss(v):
        return float(c @ np.sin(v))

    def grad(v):
        g = c * np.cos(v)
        g[i] *= 1.01
        return g

    return w, loss, grad, i


@pytest.mark.parametrize("seed", range(20))
def test_the_line_that_wrote_one_wrong_entry_among_many_is_named(seed):
    # One entry off by 1% among 10^5: the check localizes it, and tracing measures that entry (the rest is known
    # right), where one Gaussian direction over all of them would not see an error of 1e-5 of the total.
    import derivcheck as dc

    w, loss, grad, i = _one_wrong_entry_among(100_000, seed)
    report = dc.check_gradient(loss, grad, w, seed=seed)
    assert report.verdict == "fail" and [e.index for e in report.wrong_entries["params"]] == [(i,)]
    blame = report.line_blame
    assert blame.status == "blamed" and blame.source.strip() == "g[i] *= 1.01" and blame.confirmed_by_repair
    assert [e[0] for e in blame.entries] == [(i,)] and "g[i] *= 1.01" in str(report)


def test_an_error_tracing_cannot_see_is_undecided_never_agreeing():
    # Told only that the check failed dparams, not where: tracing's one Gaussian direction does not see one entry
    # among 10^5. "Every parameter gradient agrees" would be false.
    w, loss, grad, _ = _one_wrong_entry_among(100_000, 0)
    blame = blame_lines(loss, grad, w, failed=("params",))
    assert blame.status == "undecided" and blame.wrong_params == ("params",)
    assert "does not see" in blame.reason and "agrees" not in blame.reason
    assert blame_lines(loss, grad, w).status == "no_line"  # unaware of the failure, it could only say it agrees
