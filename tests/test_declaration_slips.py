"""Slips in a user's layer file: each is a clear error naming the file, the argument and the likely fix, never
a traceback; a broken layer file is reported and skipped, and the rest of the catalog still loads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from derivcheck.catalog import registry
from derivcheck.errors import DerivcheckError
from derivcheck.interfaces.cli import main
from derivcheck.symbolic.build import build
from derivcheck.symbolic.presentation import render_derivation

HEAD = "import numpy as np\nimport sympy as sp\nfrom derivcheck.catalog.extension import Arg, def_layer\n"
DENSE = dict(inputs='(Arg("x", "N D"), Arg("w", "D M"))', output='"N M"', forward="lambda x, w: x @ w",
             backward='lambda dy, x, w: {"x": dy @ w.T, "w": x.T @ dy}',
             index="n, m = s.out; d = s.index('d'); return s.total(s.X[n, d] * s.W[d, m], (d, s.D))")


def _layer(name: str, **changes: str) -> str:
    """A dense layer file with one part of its declaration replaced by a slip."""
    part = {**DENSE, **changes}
    extra = part.get("extra", "")
    return (HEAD + f"def _index(s):\n    {part['index']}\n"
            f"def_layer({name!r}, inputs={part['inputs']}, output={part['output']}, forward={part['forward']},\n"
            f"          backward={part['backward']}, index_form=_index{extra})\n")


def _elementwise(name: str, body: str) -> str:
    return (HEAD + f"def _index(s):\n    n, d = s.out\n    {body}\n"
            f"def_layer({name!r}, inputs=(Arg('x', 'N D'),), output='N D', forward=lambda x: x,\n"
            f"          backward=lambda dy, x: {{'x': dy}}, index_form=_index)\n")


# name -> (layer file text, words the error must contain: the argument or symbol and the likely fix)
SLIPS = {
    "np_exp": (_elementwise("slip_np_exp", "return np.exp(s.X[n, d])"), ["np.exp", "sp.exp"]),
    "python_max": (_elementwise("slip_max", "return max(0, s.X[n, d])"), ["max", "sp.Max(0, z)"]),
    "attribute_typo": (_elementwise("slip_attr", "return s.Xx[n, d]"), ["s.Xx", "(did you mean"]),
    "missing_constant": (_elementwise("slip_const", "return s.alpha * s.X[n, d]"), ["s.alpha", "constants={'alpha'"]),
    "sum_over_output_index": (_layer("slip_repeat", index="n, m = s.out; return s.total(s.X[n, n] * s.W[n, m], (n, s.D))"),
                              ["sums over n", "s.index('k')"]),
    "free_index": (_layer("slip_free", index="n, m = s.out; d = s.index('d'); return s.X[n, d] * s.W[d, m]"),
                   ["index d is free", "s.total(..., (d, size))"]),
    "output_letter_typo": (_layer("slip_out", output='"N Mx"'), ["output letter 'Mx'", "did you mean 'M'"]),
    "domain_typo": (_layer("slip_domain", inputs='(Arg("x", "N D", domain="postive"), Arg("w", "D M"))'),
                    ["Arg 'x'", "did you mean 'positive'"]),
    "input_named_twice": (_layer("slip_twice", inputs='(Arg("x", "N D"), Arg("x", "D M"))'),
                          ["input name 'x' is used twice", "its own name"]),
    "option_typo": (_layer("slip_option", extra=', questoin="why?"'), ["no option 'questoin'", "did you mean 'question'"]),
    "dims_not_a_string": (_layer("slip_dims", inputs='(Arg("x", ("N", "D")), Arg("w", "D M"))'),
                          ["Arg 'x'", 'e.g. "N D"']),
    "forgot_return": (_elementwise("slip_none", "s.X[n, d]"), ["returned None", "forget `return`"]),
    "whole_matrix": (_layer("slip_matrix", index="return s.X * s.W"), ["not one entry", "s.out"]),
    "forward_names": (_layer("slip_fwd", forward="lambda x, W: x @ W"), ["forward takes no parameter 'w'", "did you mean 'W'"]),
    "backward_without_dy": (_layer("slip_bwd", backward='lambda x, w: {"x": x, "w": w}'),
                            ["backward takes no parameter 'x'", "upstream gradient"]),
    "name_taken": (_layer("dense"), ["'dense' is already declared", "another name"]),
}


@pytest.fixture
def catalog() -> Iterator[None]:
    """The tables as they were before the test: a slip's file must not leave a layer behind."""
    registry._load()
    layers, skipped = dict(registry.LAYERS), dict(registry.SKIPPED)
    yield
    registry.LAYERS.clear()
    registry.LAYERS.update(layers)
    registry.SKIPPED.clear()
    registry.SKIPPED.update(skipped)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    return path


@pytest.mark.parametrize("slip", sorted(SLIPS))
def test_a_declaration_slip_is_a_clear_error(slip: str, tmp_path: Path, catalog: None) -> None:
    text, words = SLIPS[slip]
    path = _write(tmp_path, slip, text)
    before = set(registry.LAYERS)
    with pytest.raises(DerivcheckError) as caught:
        registry.load_layer_file(path)
        for name in set(registry.LAYERS) - before:  # slips inside the index form show when it is built
            build(registry.LAYERS[name])
    message = str(caught.value)
    assert str(path) in message, message
    for word in words:
        assert word in message, message
    assert "Traceback" not in message


def test_an_input_named_g_is_renamed_not_confused_with_the_upstream_gradient(tmp_path: Path, catalog: None) -> None:
    path = _write(tmp_path, "gain", _layer("slip_gain", inputs='(Arg("x", "N D"), Arg("g", "D M"))',
                                            forward="lambda x, g: x @ g", backward='lambda dy, x, g: {"x": dy @ g.T, "g": x.T @ dy}',
                                            index="n, m = s.out; d = s.index('d'); return s.total(s.X[n, d] * s.G[d, m], (d, s.D))"))
    registry.load_layer_file(path)
    text = render_derivation("slip_gain", "text")
    assert "Ḡ" in text and "ḡ" in text, text  # the upstream gradient takes the barred letter


def test_a_broken_layer_file_is_skipped_and_named_once(tmp_path: Path, catalog: None, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    _write(folder, "broken", SLIPS["domain_typo"][0])
    _write(folder, "fine", _layer("mine_fine"))
    assert main(["list", "--layers", str(folder)]) == 0
    out, err = capsys.readouterr()
    assert "dense" in out and "mine_fine" in out and "slip_domain" not in out
    assert err.count("broken.py") == 1 and "did you mean 'positive'" in err, err
    assert main(["derive", "dense", "--layers", str(folder)]) == 0
    out, err = capsys.readouterr()
    assert "dense" in out and "broken.py" in err
    assert main(["derive", "slip_domain", "--layers", str(folder)]) == 2
    assert "skipped layer files, which may declare it" in capsys.readouterr().err


def test_verify_goes_on_past_a_broken_layer_file(tmp_path: Path, catalog: None, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, "broken", SLIPS["domain_typo"][0])
    assert main(["verify", "dense", "--jobs", "1", "--quiet", "--layers", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "dense" in out and "broken.py" in err
