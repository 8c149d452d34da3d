"""The edges users meet first: cs231n-style layers, unknown options, strict JSON, the command."""

from __future__ import annotations

import io
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
    # Workers finish in any order: each layer is reported once, counted as it finishes.
    assert "relu: ok" in result.stderr and "sigmoid: ok" in result.stderr
    assert result.stderr.startswith("[1/2] ") and "\n[2/2] " in result.stderr
    quiet = subprocess.run([*run, "--progress", "--quiet"], capture_output=True, text=True, check=True)
    assert quiet.stderr == ""
    parallel = json.loads(subprocess.run([*run, "--jobs", "2"], capture_output=True, text=True, check=True).stdout)
    assert [r["layer"] for r in parallel["rows"]] == ["relu", "sigmoid"]  # catalog order, whatever finishes first
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


def test_check_imports_the_files_siblings_as_python_would_and_reads_npy(tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "helpers.py").write_text("import numpy as np\ndef act(z):\n    return np.tanh(z)\n")
    (folder / "mine.py").write_text(
        "import numpy as np\nfrom helpers import act\n"
        "def loss(w):\n    return float(np.sum(act(w) ** 2))\n"
        "def grad(w):\n    return 2 * act(w) * (1 - act(w) ** 2)\n"
        "if __name__ == '__main__':\n    raise SystemExit('a training run started')\n")
    np.save(folder / "w.npy", np.linspace(-1.0, 1.0, 6).reshape(2, 3))
    # Run from elsewhere: the file's own folder, not the working directory, makes `import helpers` work.
    run = subprocess.run([sys.executable, "-m", "derivcheck", "check", "mine.py:loss", "mine.py:grad", "--params",
                          "w.npy"], capture_output=True, text=True, cwd=folder)
    assert run.returncode == 0 and "PASS" in run.stdout and "2x3" in run.stdout, run.stderr
    away = _check(f"{folder}/mine.py:loss", f"{folder}/mine.py:grad", "--params", str(folder / "w.npy"))
    assert away.returncode == 0, away.stderr
    assert "training run" not in away.stdout + away.stderr  # imported as a module, not run as a script


@pytest.mark.parametrize(("args", "words"), [
    (["{f}:los", "{f}:grad", "--shape", "w=3"], ["no function 'los'", "did you mean 'loss'?"]),
    (["{d}/mien.py:loss", "{f}:grad", "--shape", "w=3"], ["no file", "did you mean 'mine.py'?"]),
    (["{f}:loss", "{f}:grad", "--params", "{f}"], ["not an .npz or .npy file"]),
    (["{f}:loss", "{f}:grad", "--params", "{d}/none.npy"], ["no parameter file"]),
    (["{d}/broken.py:loss", "{f}:grad", "--shape", "w=3"], ["importing", "ModuleNotFoundError", "no_such_module"]),
    (["{d}/exits.py:loss", "{f}:grad", "--shape", "w=3"], ["importing", "SystemExit"]),
])
def test_every_failure_to_load_is_a_usage_error_with_exit_code_2(tmp_path, args, words):
    f = tmp_path / "mine.py"
    f.write_text("import numpy as np\ndef loss(w):\n    return float(np.sum(w ** 2))\ndef grad(w):\n    return 2 * w\n")
    (tmp_path / "broken.py").write_text("import no_such_module\n")
    (tmp_path / "exits.py").write_text("import sys\nsys.exit(0)\n")
    run = _check(*[a.format(f=f, d=tmp_path) for a in args])
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert all(w in run.stderr for w in words), run.stderr
    assert "Traceback" not in run.stderr


def test_a_mistyped_subcommand_or_example_gets_a_did_you_mean():
    typo = subprocess.run([sys.executable, "-m", "derivcheck", "chekc"], capture_output=True, text=True)
    assert typo.returncode == 2 and "did you mean 'check'?" in typo.stderr
    demo = subprocess.run([sys.executable, "-m", "derivcheck", "demo", "mlp-one-entri"], capture_output=True, text=True)
    assert demo.returncode == 2 and "did you mean 'mlp-one-entry'?" in demo.stderr


def test_notebooks_get_rich_displays_of_reports_derivations_and_verifications():
    x = np.array([0.0, 1.0, -2.0])
    report = dc.check_gradient(lambda x: float(np.abs(x).sum()), np.sign, x)
    html = report._repr_html_()
    assert "Taylor remainder test" in html and "Non-differentiable points" in html and html.count("<table>") == 2
    markdown = report._repr_markdown_()
    assert "Taylor remainder test" in markdown and "| direction |" in markdown
    derivation = dc.derive("dense")
    latex = derivation._repr_latex_()
    assert latex.startswith("$$") and r"X^{\top}\,G" in latex
    assert "$$" in derivation._repr_markdown_()
    verification = dc.verify_layer("relu")
    assert "| relu | dx |" in verification._repr_markdown_()
    assert "<td>relu</td><td>dx</td>" in verification._repr_html_()
    assert r"\text{relu} & \text{dx}" in verification._repr_latex_()
    assert r"\text{FAIL}" not in report._repr_latex_() and r"\text{verdict}" in report._repr_latex_()
    assert "$$" in derivation._repr_html_() and "<b>dw</b>" in derivation._repr_html_()


def test_the_report_html_highlights_failing_rows_and_wrong_entries():
    w = np.linspace(-1.0, 1.0, 12).reshape(3, 4)

    def grad(w):
        g = 2 * w
        g[1, 2] += 1.0
        return g

    html = dc.check_gradient(lambda w: float((w**2).sum()), grad, w)._repr_html_()
    wrong = html.split("Wrong entries:")[1]
    assert 'style="background:#fdd' in wrong and "dparams[1, 2]" in wrong
    assert 'style="background' not in dc.check_gradient(lambda w: float((w**2).sum()), lambda w: 2 * w, w)._repr_html_()


def test_long_checks_report_progress_on_request_and_stay_silent_otherwise(monkeypatch, capsys):
    import derivcheck.checker.progress as progress

    monkeypatch.setattr(progress, "AFTER_SECONDS", 0.0)
    monkeypatch.setattr(progress, "EVERY_SECONDS", 0.0)
    w = np.linspace(-1.0, 1.0, 8)
    loss, grad = (lambda w: float(np.sum(w**3))), (lambda w: 3 * w**2)
    dc.check_gradient(loss, grad, w, mode="full", progress=True)
    shown = capsys.readouterr().err
    assert "loss + 1 gradient evaluations" in shown and "checking params entry by entry" in shown
    dc.check_gradient(loss, grad, w, mode="full")  # stderr is not a terminal here: silent by default
    dc.check_gradient(loss, grad, w, mode="full", progress=False)
    assert capsys.readouterr().err == ""
    with pytest.raises(dc.InputError, match="progress must be True, False or None"):
        dc.check_gradient(loss, grad, w, progress="yes")


def _documented(schema: str) -> tuple[set[str], dict[str, set[str]]]:
    """The fields docs/json.md lists for one schema: top level, and one level down."""
    import pathlib
    import re

    text = (pathlib.Path(__file__).parents[1] / "docs" / "json.md").read_text()
    section = text.split(f"## `{schema}`")[1].split("\n## ")[0]
    top: set[str] = set()
    nested: dict[str, set[str]] = {}
    parent = ""
    for line in section.splitlines():
        keys = re.findall(r"`(\w+)`(?=[,:( ]|$)", line.split(":")[0]) if line.lstrip().startswith("- ") else []
        if line.startswith("- "):
            top.update(keys)
            parent = keys[0] if keys else ""
        elif line.startswith("  - ") and parent:
            nested.setdefault(parent, set()).update(keys)
    return top, nested


def _first_row(value):
    if isinstance(value, list):
        return value[0] if value else None
    if isinstance(value, dict) and value and all(isinstance(v, list) for v in value.values()):
        return next(iter(value.values()))[0]
    return value


def test_the_json_schemas_are_documented_field_by_field(tmp_path):
    f = tmp_path / "mine.py"
    f.write_text("import numpy as np\n\ndef loss(w):\n    return float(np.sum(np.abs(w)) + np.sum(w ** 2))\n\n"
                 "def grad(w):\n    g = np.sign(w) + 2 * w\n    g[0, 1] += 1.0\n    return g\n")
    report = json.loads(_check(f"{f}:loss", f"{f}:grad", "--shape", "w=3x2", "--json").stdout)
    verify = json.loads(subprocess.run([sys.executable, "-m", "derivcheck", "verify", "relu", "--json"],
                                       capture_output=True, text=True, check=True).stdout)
    derive = json.loads(subprocess.run([sys.executable, "-m", "derivcheck", "derive", "relu", "--json"],
                                       capture_output=True, text=True, check=True).stdout)
    cli = [sys.executable, "-m", "derivcheck"]
    expression = json.loads(subprocess.run([*cli, "derive-expr", "logdet(X)", "--wrt", "X", "--let", "X: D x D", "--json"],
                                           capture_output=True, text=True, check=True).stdout)
    steps = json.loads(subprocess.run([*cli, "derive-expr", "sum(G * Y)", "--step", "Y = X @ W", "--wrt", "W", "--let",
                                       "X: N x D", "--let", "W: D x M", "--let", "G: N x M", "--json"],
                                      capture_output=True, text=True, check=True).stdout)
    equation = json.loads(subprocess.run([*cli, "check-eq", "logdet(X)", "inv(X)", "--wrt", "X", "--let", "X: D x D",
                                          "--json"], capture_output=True, text=True).stdout)
    for data in (report, verify, derive, expression, steps, equation):
        top, nested = _documented(data["schema"])
        assert set(data) == top, data["schema"]
        for parent, fields in nested.items():
            row = _first_row(data[parent])
            if isinstance(row, dict) and len(fields) > 1:
                assert set(row) == fields, (data["schema"], parent)


def test_plots_draw_the_step_curve_and_the_wrong_entries(tmp_path):
    f = tmp_path / "mine.py"
    f.write_text(_USER_FILE)
    out = tmp_path / "check.png"
    result = _check(f"{f}:loss", f"{f}:half", "--shape", "w=3x2", "--shape", "b=4", "--plot", str(out))
    assert result.returncode == 1
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and _not_blank(out)
    entry = tmp_path / "entry.png"
    along = _check(f"{f}:loss", f"{f}:half", "--shape", "w=3x2", "--shape", "b=4", "--plot", str(entry),
                   "--plot-entry", "w:2,1")
    assert along.returncode == 1 and _not_blank(entry)
    bad = _check(f"{f}:loss", f"{f}:half", "--shape", "w=3x2", "--shape", "b=4", "--plot", str(entry),
                 "--plot-entry", "w:7,0")
    assert bad.returncode == 2 and "(3, 2)" in bad.stderr


def _not_blank(path) -> bool:
    from matplotlib.image import imread

    pixels = imread(str(path))
    return pixels.shape[0] > 100 and float(pixels[..., :3].std()) > 0.05


def test_the_heat_map_shows_analytic_minus_numeric_with_the_wrong_entry_marked(tmp_path):
    w = np.random.default_rng(1).standard_normal((6, 5))
    loss = lambda w: float(np.sum(np.tanh(w) ** 2))  # noqa: E731

    def grad(w):
        g = 2 * np.tanh(w) * (1 - np.tanh(w) ** 2)
        g[2, 3] *= 1.5
        return g

    report = dc.check_gradient(loss, grad, w)
    figure = report.plot(loss, grad, w, path=str(tmp_path / "heat.png"), entry=(2, 3))
    curve, heat = figure.axes[0], figure.axes[1]
    assert "entry params[2, 3]" in curve.get_title()
    difference = heat.images[0].get_array()
    assert np.unravel_index(np.argmax(np.abs(difference)), difference.shape) == (2, 3)
    marks = [tuple(line.get_xydata()[0]) for line in heat.lines]
    assert marks == [(3.0, 2.0)]  # column 3, row 2: the one wrong entry
    assert _not_blank(tmp_path / "heat.png")
    # Along the wrong entry the curve is a plateau at its relative error, not a V.
    rel = curve.lines[0].get_ydata()
    assert np.all(np.abs(rel[3:20] - 1 / 3) < 1e-3)


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


def test_a_reader_that_leaves_early_is_no_error(monkeypatch):
    # `derivcheck derive dense | head -1`: the pipe closes while derivcheck still writes.
    from derivcheck.interfaces.cli import main

    class ClosedPipe(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["derive", "dense"]) == 0
