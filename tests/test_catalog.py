"""The questions people get stuck on, answered by the catalog and caught by the checker."""

from __future__ import annotations

import numpy as np
import pytest

import derivcheck as dc
from derivcheck.symbolic.models import witness_vjp
from derivcheck.catalog.registry import get_layer


def test_maxpool_ties_accept_first_argmax_and_split_subgradients():
    pool = get_layer("maxpool2d")
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 0, 0] = x[0, 0, 0, 1] = 2.0  # a tie in the first window
    x[0, 0, 2:, 2:] = 1.0  # a four-way tie in the last window

    def forward(x):
        return pool.forward(x, kernel=2, stride=2)

    def split_ties(dy, x):
        win = x.reshape(1, 1, 2, 2, 2, 2).transpose(0, 1, 2, 4, 3, 5)
        ties = win == win.max(axis=(-2, -1), keepdims=True)
        share = ties / ties.sum(axis=(-2, -1), keepdims=True) * dy[..., None, None]
        return (share.transpose(0, 1, 2, 4, 3, 5).reshape(x.shape),)

    for backward in (lambda dy, x: (pool.backward(dy, x, kernel=2, stride=2)["x"],), split_ties):
        report = dc.check_backward(forward, backward, (x,))
        assert report.verdict == "pass", str(report)
        assert report.kinks
    wrong = dc.check_backward(forward, lambda dy, x: (2 * pool.backward(dy, x, kernel=2, stride=2)["x"],), (x,))
    assert wrong.verdict == "fail"


def test_overlapping_maxpool_windows_accumulate():
    pool = get_layer("maxpool2d")
    x = np.random.default_rng(0).standard_normal((2, 2, 5, 5))
    report = dc.check_backward(
        lambda x: pool.forward(x, kernel=3, stride=1), lambda dy, x: (pool.backward(dy, x, kernel=3, stride=1)["x"],), (x,)
    )
    assert report.verdict == "pass"


def test_embedding_assignment_instead_of_scatter_add_is_caught():
    emb = get_layer("embedding")
    ids = np.array([1, 3, 1, 1])
    w = np.random.default_rng(0).standard_normal((5, 3))

    def assignment(dy, ids, w):
        dw = np.zeros_like(w)
        dw[ids] += dy  # buffered: repeated ids keep only the last row
        return None, dw

    good = dc.check_backward(emb.forward, lambda dy, ids, w: (None, emb.backward(dy, ids, w)["w"]), (ids, w))
    bad = dc.check_backward(emb.forward, assignment, (ids, w))
    assert good.verdict == "pass" and bad.verdict == "fail"
    assert {e.index[0] for e in bad.wrong_entries["w"]} == {1}


def test_batchnorm_without_the_mean_path_is_caught():
    bn = get_layer("batchnorm")
    rng = np.random.default_rng(0)
    x, gamma, beta = rng.standard_normal((6, 3)), rng.uniform(0.5, 2, 3), rng.standard_normal(3)

    def forward(x, gamma, beta):
        return bn.forward(x, gamma, beta, eps=1e-3)

    def no_mean_path(dy, x, gamma, beta):
        sigma = np.sqrt(x.var(axis=0) + 1e-3)
        xhat = (x - x.mean(axis=0)) / sigma
        return dy * gamma / sigma, (dy * xhat).sum(0), dy.sum(0)

    good = dc.check_backward(forward, lambda dy, x, g, b: tuple(bn.backward(dy, x, g, b, eps=1e-3).values()), (x, gamma, beta))
    bad = dc.check_backward(forward, no_mean_path, (x, gamma, beta))
    assert good.verdict == "pass", str(good)
    assert bad.verdict == "fail" and bad.params[0].verdict == "fail" and bad.params[1].verdict == "pass"


def test_conv_derivation_states_parameter_counts_and_flipped_kernel():
    text = dc.render_derivation("conv2d", "text")
    assert "w: F x C x KH x KW, b: F" in text
    gx = dc.derive("conv2d").gradients["x"].index.expr
    assert "-oh*stride + pad + r" in str(gx)  # W indexed backwards in the output position: the flip


def test_user_composed_model_checks_end_to_end():
    model = dc.Sequential(
        "user_cnn",
        steps=(
            dc.Step("conv2d", {"x": "x", "w": "k", "b": "kb"}, "z", hyper={"stride": 2, "pad": 1}),
            dc.Step("tanh", {"x": "z"}, "a"),
            dc.Step("global_avgpool", {"x": "a"}, "g"),
            dc.Step("dense", {"x": "g", "w": "w", "b": "b"}, "y"),
            dc.Step("mse", {"y": "y", "t": "t"}, "E"),
        ),
        inputs={"x": "N C H S", "k": "F C KH KW", "kb": "F", "w": "F M", "b": "M", "t": "N M"},
        fixed=("x", "t"),
    )
    rng = np.random.default_rng(0)
    data = {"x": rng.standard_normal((3, 2, 5, 5)), "t": rng.standard_normal((3, 4))}
    params = {"k": rng.standard_normal((3, 2, 3, 3)), "kb": rng.standard_normal(3), "w": rng.standard_normal((3, 4)), "b": rng.standard_normal(4)}

    def loss(p):
        return model.loss({**data, **p})

    report = dc.check_gradient(loss, lambda p: model.backward({**data, **p}), params)
    assert report.verdict == "pass", str(report)
    for rules in ("index", "matrix"):
        assert dc.check_gradient(loss, lambda p, r=rules: model.backward({**data, **p}, witness_vjp(r)), params).ok

    def forgot_dense_bias_sum(p):
        g = model.backward({**data, **p})
        g["b"] = g["b"] / 3  # mean instead of sum over the batch
        return g

    bad = dc.check_gradient(loss, forgot_dense_bias_sum, params)
    assert bad.verdict == "fail" and [f.kind for f in bad.findings if f.severity == "error"] == ["scale"]


@pytest.mark.parametrize("name", ["rnn_step", "lstm_step"])
def test_recurrent_cells_forget_path(name):
    layer = get_layer(name)
    sizes = {"N": 2, "D": 3, "M": 2, "Q": 8, "L": 2}
    rng = np.random.default_rng(1)
    from derivcheck.catalog.sampling import sample_inputs

    inputs = sample_inputs(layer, sizes, rng)
    names = [a.name for a in layer.inputs]
    report = dc.check_backward(
        lambda *a: layer.forward(**dict(zip(names, a))),
        lambda dy, *a: tuple(layer.backward(dy, **dict(zip(names, a))).values()),
        tuple(inputs[n] for n in names),
        names=names,
    )
    assert report.ok, str(report)


def test_every_derivation_script_verifies_and_the_docs_are_fresh():
    import pathlib

    from derivcheck.interfaces.derivation_scripts import document, scripts

    names = scripts()
    assert len(names) >= 10 and all(names.values())  # every script states its question
    text, failed = document()  # runs every script (--format markdown) in a fresh interpreter
    assert failed == []
    docs = (pathlib.Path(__file__).parent.parent / "docs" / "derivations.md").read_text()
    assert docs == text, "docs/derivations.md is stale: python -m derivcheck.interfaces.derivation_scripts --write docs/derivations.md"


def test_a_derivation_runs_by_name_in_every_format():
    import subprocess
    import sys

    run = [sys.executable, "-m", "derivcheck", "derivations"]
    listed = subprocess.run(run, capture_output=True, text=True, check=True).stdout
    assert "maxpool" in listed and "How a gradient passes through max-pooling" in listed
    for fmt, marker in (("text", "verified:"), ("latex", "% verified:"), ("markdown", "*verified:")):
        out = subprocess.run([*run, "maxpool", "--format", fmt], capture_output=True, text=True)
        assert out.returncode == 0 and marker in out.stdout, (fmt, out.stdout[-300:])
    unknown = subprocess.run([*run, "nosuch"], capture_output=True, text=True)
    assert unknown.returncode == 2 and "xor" in unknown.stderr


def test_derivations_passes_arguments_through_to_the_script():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "derivcheck", "derivations", "conv_parameters", "--channels", "1"],
                          capture_output=True, text=True)
    assert done.returncode == 0 and "C = 1 input channels" in done.stdout, done.stderr


def test_relu_chain_checks_each_of_the_learners_formulas_as_written():
    from derivcheck.interfaces.derivation_scripts import run_script

    code, out = run_script("relu_chain")
    assert code == 0, out[-2000:]
    checks = [line for line in out.splitlines() if line.startswith(("ok  ", "DISAGREE  "))]
    as_written = [c for c in checks if c.endswith("verdict fail (expected fail), detection floor < 1e-09")
                  and ", as written:" in c]
    assert len(as_written) == 5  # the three per-depth formulas and the 3-layer update's dC/dw1, dC/dw2: each sign
    flipped = [c for c in checks if "the sign flipped" in c]
    assert sum("verdict pass (expected pass)" in c for c in flipped) == 3  # right once the sign is (all units on)
    assert sum("verdict fail (expected fail)" in c for c in flipped) == 2  # w1, w2 with a shallower net's formula
    assert "as written: -1.7250   sign flipped: +1.7250   true dC/dw1: +1.4039" in out  # the numbers, shown
    assert "Max(" not in out and "dC/dw3 = (y_hat - y) w1 w2 x H(z1) H(z2) H(z3)" in out  # named intermediates
