"""Every command's text output on a terminal that encodes only ASCII is pure ASCII (dE/dW, sum_n, *, X^T), and
Unicode math (∂E/∂W, Σ_n, ⊙, Xᵀ) on a UTF-8 one: never a UnicodeEncodeError halfway through a derivation.

Each command runs in its own interpreter with ``PYTHONIOENCODING`` set, as a user's terminal would set it; the
glyphs are chosen by derivcheck from that stream alone. A representative set of layers is derived (each kind of
matrix form, a normalization's named statistics, a chain layer, a loss, a model), not the whole catalog: one
subprocess per command is what makes this file take its time.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from derivcheck.interfaces.derivation_scripts import Answer, scripts
from derivcheck.language.printing import notation

# The layers the issue names, and a model: an index form with a guard (conv2d), named statistics (batchnorm,
# x-hat), a chain layer (lstm_step), Iverson brackets (maxpool2d), a loss, a chained model (mlp2).
LAYERS = ["dense", "conv2d", "batchnorm", "lstm_step", "maxpool2d", "softmax_cross_entropy", "mlp2"]

USER_FILE = """import numpy as np

def loss(w):
    return float(np.sum(np.tanh(w) ** 2))

def grad(w):
    return 2 * np.tanh(w) * (1 - np.tanh(w) ** 2)

def wrong(w):
    g = 2 * np.tanh(w) * (1 - np.tanh(w) ** 2)
    g[0, 1] += 1.0
    return g
"""

EXPRESSION = ["sum(G * sigmoid(X @ W))", "--wrt", "W", "--let", "X: N x D", "--let", "W: D x M", "--let", "G: N x M"]
NORMALIZED = ["sum(G * (X - mean(X, axis=1, keepdims=True)))", "--wrt", "X", "--let", "X: N x D", "--let", "G: N x D"]

# (command line, expected exit status): 0 everywhere but a check of a wrong gradient and a wrong claimed equation.
COMMANDS = [
    (["list"], 0),
    *[(["derive", name], 0) for name in LAYERS],
    (["derive", "dense", "--order", "2"], 0),
    (["derive", "batchnorm", "--order", "2"], 0),
    (["verify", "dense", "batchnorm", "mlp2", "--jobs", "1"], 0),
    (["derivations"], 0),
    (["check", "{user}:loss", "{user}:grad", "--shape", "w=3x4"], 0),
    (["check", "{user}:loss", "{user}:wrong", "--shape", "w=3x4"], 1),
    (["derive-expr", *EXPRESSION], 0),
    (["derive-expr", "x.T @ A @ x", "--wrt", "x", "--let", "x: D", "--let", "A: D x D", "--order", "2"], 0),
    (["derive-expr", *NORMALIZED], 0),
    (["derive-expr", "sum(sigmoid(Z))", "--wrt", "W,b", "--step", "Z = X @ W + b", "--let", "X: N x D", "--let",
      "W: D x M", "--let", "b: M"], 0),
    (["check-eq", *EXPRESSION[:1], "X.T @ (sigmoid(X @ W) * (1 - sigmoid(X @ W)) * G)", *EXPRESSION[1:]], 0),
    (["check-eq", *EXPRESSION[:1], "X.T @ (sigmoid(X @ W) * G)", *EXPRESSION[1:]], 1),
    (["derive-expr", "--help"], 0),
]
# Every script but lstm_bptt, which takes some 24 s of gradient checks and writes no glyph of its own: whatever a
# script writes passes through Answer.render, which spells Unicode in ASCII (tested below, in this process).
SLOW_SCRIPTS = {"lstm_bptt"}
SCRIPTS = sorted(set(scripts()) - SLOW_SCRIPTS)


@pytest.fixture(scope="module")
def user_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ascii") / "mine.py"
    path.write_text(USER_FILE)
    return path


_RUNS: dict[tuple[tuple[str, ...], str], subprocess.CompletedProcess] = {}


def _run(args: list[str], encoding: str, user_file: Path) -> subprocess.CompletedProcess:
    """The command in a fresh interpreter whose stdout and stderr encode ``encoding`` only (strictly: no escapes);
    each command runs once per encoding in this module."""
    key = (tuple(args), encoding)
    if key not in _RUNS:
        env = {**os.environ, "PYTHONIOENCODING": f"{encoding}:strict"}
        argv = [a.replace("{user}", str(user_file)) for a in args]
        _RUNS[key] = subprocess.run([sys.executable, "-m", "derivcheck", *argv], capture_output=True, env=env,
                                    timeout=300)
    done = _RUNS[key]
    assert b"Traceback" not in done.stderr, done.stderr.decode("utf-8", "replace")[-3000:]
    return done


def _label(args: list[str]) -> str:
    return " ".join(a for a in args if not a.startswith("{user}"))[:48]


@pytest.mark.parametrize(("args", "status"), COMMANDS, ids=[_label(a) for a, _ in COMMANDS])
def test_every_command_prints_pure_ascii_on_an_ascii_terminal(args: list[str], status: int, user_file: Path) -> None:
    done = _run(args, "ascii", user_file)
    assert done.returncode == status, done.stderr.decode("ascii", "replace")[-2000:]
    assert done.stdout.isascii() and done.stderr.isascii()
    assert done.stdout.strip(), "nothing was printed"


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_derivation_script_prints_pure_ascii_on_an_ascii_terminal(script: str, user_file: Path) -> None:
    done = _run(["derivations", script], "ascii", user_file)
    assert done.returncode == 0, done.stdout.decode("ascii", "replace")[-2000:]
    assert done.stdout.isascii() and done.stderr.isascii() and b"verified:" in done.stdout


# (command, a Unicode glyph it must print on a UTF-8 terminal, the ASCII spelling it prints on an ASCII one)
UNICODE_COMMANDS = [
    (["derive", "dense"], "∂E/∂W = Xᵀ G", "dE/dW = X^T G"),
    (["derive", "batchnorm"], "X̂ = (1 ⊘ σ) ⊙ (X - 1_N μᵀ)", "Xhat = (1 / sigma) * (X - 1_N mu^T)"),
    (["derive", "conv2d"], "Σ_", "sum_"),
    (["derive", "mlp2"], "∂E/∂W1 = Xᵀ G_z1", "dE/dW1 = X^T G_z1"),
    (["derive", "dense", "--order", "2"], "∂²E/∂W_pq ∂W_rs = 0", "d2E/dW_pq dW_rs = 0"),
    (["derive-expr", *EXPRESSION], "σ(X W)", "sigmoid(X W)"),
    (["derivations", "two_layer_sigmoid"], "∂E/∂Z = G ⊙ f'(Z)", "dE/dZ = G * f'(Z)"),
]


@pytest.mark.parametrize(("args", "glyph", "spelled"), UNICODE_COMMANDS, ids=[_label(c[0]) for c in UNICODE_COMMANDS])
def test_a_utf8_terminal_gets_unicode_math_and_an_ascii_one_its_spelling(args: list[str], glyph: str, spelled: str,
                                                                         user_file: Path) -> None:
    done = _run(args, "utf-8", user_file)
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")[-2000:]
    out = done.stdout.decode("utf-8")
    assert glyph in out, out[:2000]
    ascii_out = _run(args, "ascii", user_file).stdout.decode("ascii")
    assert spelled in ascii_out, ascii_out[:2000]


@given(st.text())
@example("∂²E/∂W_pq ∂b_r = Σ_n x̂_np ḡ_nq ⊙ σ(Z)ᵀ ⁻¹ ‖x‖³ → Ñ é 字")
def test_plain_spells_any_text_in_ascii_and_leaves_ascii_alone(prose: str) -> None:
    """The transliteration behind the scripts' prose: its output is ASCII whatever it is given, ASCII unchanged."""
    out = notation.plain(prose)
    assert out.isascii()
    assert prose.isascii() <= (out == prose)


def test_a_scripts_unicode_prose_is_spelled_in_ascii_on_an_ascii_stream() -> None:
    answer = Answer("demo", "Why is σ'(z) = σ(z)(1 - σ(z))?", "text")
    answer.say("∂E/∂Z = G ⊙ σ(Z) ⊙ (1 - σ(Z)), summed Σ_n over the batch; X̂ᵀ 1_N = 0")
    answer.check("σ' at 0 is 1/4", True, "exact")
    with notation.use("ascii"):
        out = answer.render()
    assert out.isascii()
    assert "dE/dZ = G * sigmoid(Z) * (1 - sigmoid(Z)), summed sum_n over the batch; Xhat^T 1_N = 0" in out
    assert "Why is sigmoid'(z) = sigmoid(z)(1 - sigmoid(z))?" in out
    with notation.use("unicode"):
        assert "∂E/∂Z = G ⊙ σ(Z)" in answer.render()


CATALOG_IN_EVERY_FORMAT = """
from derivcheck.catalog.registry import MODELS, list_layers
from derivcheck.symbolic.presentation import render_derivation
for name in [*list_layers(), *MODELS]:
    for fmt in ("text", "latex", "markdown", *(() if name in MODELS else ("code",))):
        print(f"=== {name} ({fmt})")
        print(render_derivation(name, fmt))
"""


def test_the_whole_catalog_in_every_format_is_ascii_on_an_ascii_stream() -> None:
    """Every layer and model, text, LaTeX, Markdown and code, in one interpreter (its own: derivations are cached
    with their text, which must not leak ASCII into other tests)."""
    env = {**os.environ, "PYTHONIOENCODING": "ascii:backslashreplace"}  # to name every glyph that leaks
    done = subprocess.run([sys.executable, "-c", CATALOG_IN_EVERY_FORMAT], capture_output=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")[-3000:]
    section, bad = "", {}
    for line in done.stdout.decode("ascii").splitlines():
        section = line if line.startswith("=== ") else section
        if "\\u" in line or "\\x" in line:
            bad.setdefault(section, line[:200])
    assert bad == {}


def test_order_two_on_a_layer_with_too_many_axes_is_a_clear_usage_error(user_file: Path) -> None:
    """conv2d's x has 4 axes: its Hessian block would need 8 index names. A usage error says so, no traceback."""
    done = _run(["derive", "conv2d", "--order", "2"], "ascii", user_file)
    assert done.returncode == 2 and done.stderr.isascii()
    assert b"conv2d: x and x have 8 axes together" in done.stderr and b"--order 2 is not derived" in done.stderr
