"""The edges users meet first: cs231n-style layers, unknown options, strict JSON, the command."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import derivcheck as dc


def affine_forward(x, w, b):
    out = x.reshape(x.shape[0], -1) @ w + b
    return out, (x, w, b)


def affine_backward(dout, cache):
    x, w, b = cache
    return (dout @ w.T).reshape(x.shape), x.reshape(x.shape[0], -1).T @ dout, dout.sum(axis=0)


def test_a_cs231n_layer_with_out_and_cache_is_checked():
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((4, 2, 3)), rng.standard_normal((6, 5)), rng.standard_normal(5)
    report = dc.check_backward(affine_forward, affine_backward, (x, w, b))
    assert report.verdict == "pass"
    assert any(f.kind == "convention" and "cache" in f.message for f in report.findings)

    def no_bias_sum(dout, cache):
        dx, dw, _ = affine_backward(dout, cache)
        return dx, dw, dout[0]

    assert dc.check_backward(affine_forward, no_bias_sum, (x, w, b)).verdict == "fail"


@pytest.mark.parametrize(("option", "hint"), [("tol", "rtol or atol"), ("eps", "the step is chosen"), ("verbose", None)])
def test_an_unknown_option_lists_the_valid_ones(option, hint):
    with pytest.raises(dc.UnknownOptionError) as info:
        dc.check_gradient(np.sum, np.ones_like, np.ones(2), **{option: 1e-3})
    message = str(info.value)
    assert repr(option) in message and "rtol, atol, seed, mode" in message
    assert isinstance(info.value, TypeError)
    if hint:
        assert hint in message
    with pytest.raises(dc.UnknownOptionError, match="check_backward"):
        dc.check_backward(lambda x: 2 * x, lambda dy, x: 2 * dy, (np.ones(2),), tol=1e-3)


def test_the_report_is_strict_json():
    report = dc.check_gradient(lambda w: 1e15 + float(np.sum(np.sin(w))), np.cos, np.linspace(0, 1, 5))
    text = json.dumps(dc.report.to_dict(report), allow_nan=False)
    data = json.loads(text)
    assert data["schema"].startswith("derivcheck.gradient-report/") and data["verdict"] == report.verdict


def test_the_command_has_a_version_a_module_form_and_names_unknown_examples():
    run = [sys.executable, "-m", "derivcheck"]
    version = subprocess.run([*run, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == f"derivcheck {dc.__version__}"
    unknown = subprocess.run([*run, "demo", "nosuch"], capture_output=True, text=True)
    assert unknown.returncode == 2 and "nosuch" in unknown.stderr and "mlp-correct" in unknown.stderr


def test_verify_reports_progress_on_stderr_and_versioned_json_on_stdout():
    run = [sys.executable, "-m", "derivcheck", "verify", "relu", "sigmoid", "--json"]
    silent = subprocess.run(run, capture_output=True, text=True, check=True)
    assert silent.stderr == ""  # stderr is not a terminal here: no progress unless asked for
    result = subprocess.run([*run, "--progress"], capture_output=True, text=True, check=True)
    data = json.loads(result.stdout)
    assert data["schema"] == "derivcheck.verification/1" and data["version"] == dc.__version__
    assert "[1/2] relu: ok" in result.stderr and "[2/2] sigmoid: ok" in result.stderr
    quiet = subprocess.run([*run, "--progress", "--quiet"], capture_output=True, text=True, check=True)
    assert quiet.stderr == ""
    derived = subprocess.run([sys.executable, "-m", "derivcheck", "derive", "dense", "--json"], capture_output=True,
                             text=True, check=True)
    data = json.loads(derived.stdout)
    assert data["schema"] == "derivcheck.derivation/1" and any(r"X^{\top}" in line for line in data["latex"])


_USER_FILE = '''
import numpy as np

def loss(p):
    return float(np.sum(np.tanh(p["w"]) ** 2) + np.sum(p["b"] ** 3))

def grad(p):
    return {"w": 2 * np.tanh(p["w"]) * (1 - np.tanh(p["w"]) ** 2), "b": 3 * p["b"] ** 2}

def half(p):
    return {k: v / 2 for k, v in grad(p).items()}

def offset(p):
    return 1e15 + loss(p)
'''


def _check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "derivcheck", "check", *args], capture_output=True, text=True)


def test_check_runs_on_the_users_own_file_with_documented_exit_codes(tmp_path):
    f = tmp_path / "mine.py"
    f.write_text(_USER_FILE)
    shapes = ["--shape", "w=3x2", "--shape", "b=4"]
    right = _check(f"{f}:loss", f"{f}:grad", *shapes)
    assert right.returncode == 0 and "PASS" in right.stdout
    wrong = _check(f"{f}:loss", f"{f}:half", *shapes, "--json")
    assert wrong.returncode == 1 and json.loads(wrong.stdout)["verdict"] == "fail"
    noisy = _check(f"{f}:offset", f"{f}:grad", *shapes)
    assert noisy.returncode in (1, 3) and noisy.returncode != 0
    missing = _check(f"{f}:loss", f"{f}:nope", *shapes)
    assert missing.returncode == 2 and "nope" in missing.stderr and "grad, half, loss" in missing.stderr


def test_check_reads_npz_parameters_and_refuses_pickles(tmp_path):
    f = tmp_path / "mine.py"
    f.write_text(_USER_FILE)
    good = tmp_path / "p.npz"
    np.savez(good, w=np.ones((3, 2)) * 0.3, b=np.arange(4.0))
    assert _check(f"{f}:loss", f"{f}:grad", "--params", str(good)).returncode == 0
    bad = tmp_path / "bad.npz"
    np.savez(bad, w=np.array([{"a": 1}], dtype=object), b=np.arange(4.0))
    refused = _check(f"{f}:loss", f"{f}:grad", "--params", str(bad))
    assert refused.returncode == 2 and "pickle" in refused.stderr
    both = _check(f"{f}:loss", f"{f}:grad")
    assert both.returncode == 2 and "--params" in both.stderr


def test_notebooks_get_rich_displays_of_reports_derivations_and_verifications():
    x = np.array([0.0, 1.0, -2.0])
    report = dc.check_gradient(lambda x: float(np.abs(x).sum()), np.sign, x)
    html = report._repr_html_()
    assert "Taylor remainder test" in html and "Non-differentiable points" in html and html.count("<table>") == 2
    markdown = report._repr_markdown_()
    assert "Taylor remainder test" in markdown and "| direction |" in markdown
    derivation = dc.derive("dense")
    latex = derivation._repr_latex_()
    assert latex.startswith("$$") and r"X^{\top}\,\Delta" in latex
    assert "$$" in derivation._repr_markdown_()
    verification = dc.verify_layer("relu")
    assert "| relu | dx |" in verification._repr_markdown_()


def test_plots_draw_the_step_curve_and_the_wrong_entries(tmp_path):
    f = tmp_path / "mine.py"
    f.write_text(_USER_FILE)
    out = tmp_path / "check.png"
    result = _check(f"{f}:loss", f"{f}:half", "--shape", "w=3x2", "--shape", "b=4", "--plot", str(out))
    assert result.returncode == 1
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_the_step_curve_is_a_v_for_a_right_gradient_and_a_plateau_for_a_wrong_one():
    from derivcheck.numeric.step_curve import step_curve

    x = {"w": np.linspace(-1.0, 1.0, 5)}
    v = {"w": np.ones(5)}
    loss = lambda p: float(np.sum(np.exp(p["w"])))  # noqa: E731
    right = float(np.sum(np.exp(x["w"])))
    _, good = step_curve(loss, x, v, right)
    _, bad = step_curve(loss, x, v, 2 * right)
    assert good.min() < 1e-9 and good[0] > 1e-4 and good[-1] > good.min() * 10
    assert np.all(np.abs(bad[5:20] - 0.5) < 1e-3)
