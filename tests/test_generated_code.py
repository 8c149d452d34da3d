"""Every ``--format code`` output runs as printed and agrees with the index form: the catalog's layers and six
layers a user writes. The text is executed exactly as a person would paste it, then called like the layer's own
backward (``dy`` first, then the inputs in declaration order, then the constants)."""

from __future__ import annotations

import ast

import numpy as np
import pytest

from derivcheck.catalog import registry
from derivcheck.catalog.registry import list_layers
from derivcheck.catalog.sampling import complete_sizes, output_shape, random_sizes, sample_inputs
from derivcheck.numeric.compare import ABSOLUTE_BELOW_ONE, relative_gap
from derivcheck.symbolic.checked_code import draw_inputs, code_arguments
from derivcheck.symbolic.compile import compiled_gradient, layer_code_parameters
from derivcheck.symbolic.derive import derive
from derivcheck.symbolic.presentation import render_derivation


# Agreement between printed code and the lambdified index form: both are float64 evaluations of one formula.
AGREEMENT = 1e-9
SEED = 7  # not one of the draws the code was checked at when it was generated


def _check_layer(name: str) -> list[str]:
    source = render_derivation(name, "code")
    assert source.count("import numpy as np") == 1, name
    namespace: dict = {}
    exec(compile(source, f"<derivcheck derive {name} --format code>", "exec"), namespace)  # noqa: S102 - as printed
    d = derive(name)
    arrays, upstream, sizes = draw_inputs(d, SEED)
    args = code_arguments(d, arrays, upstream, sizes)
    problems = []
    own = d.layer.backward.__name__
    reference = namespace.get("backward" if own == "<lambda>" else own)
    for arg in d.layer.differentiable:
        fn = namespace.get(f"grad_{arg.name}")
        got = fn(*args) if fn is not None else reference(*args)[arg.name] if reference else None
        if got is None:
            problems.append(f"{name}: nothing printed computes d{arg.name}")
            continue
        want = compiled_gradient(name, arg.name, "index")(arrays, upstream, sizes)
        gap = relative_gap(np.asarray(got, dtype=float).reshape(want.shape), want, ABSOLUTE_BELOW_ONE)
        if not gap <= AGREEMENT:
            problems.append(f"{name}: d{arg.name} differs from the index form by {gap:.2g}")
    return problems


def test_every_printed_code_block_runs_as_printed_and_agrees(user_layers: list[str]) -> None:
    names = [n for n in [*list_layers(), *user_layers] if registry.get_layer(n).chain is None]
    problems = [p for name in names for p in _check_layer(name)]
    assert problems == []


def test_the_dense_layers_code_is_what_a_person_writes() -> None:
    source = render_derivation("dense", "code")
    assert "return dy @ w.T" in source and "return x.T @ dy" in source and "return dy.sum(axis=0)" in source
    assert "def grad_x(dy, x, w, b):" in source and "def grad_b(dy, x, w, b):" in source
    assert "numpy.ones" not in source and ".dot(" not in source


def test_generated_code_reads_sizes_off_the_arrays() -> None:
    source = render_derivation("mse", "code")
    assert "def grad_y(y, t):" in source and "y.shape[0]" in source


def test_a_step_by_step_layers_code_runs_as_printed_and_agrees_with_the_hand_written_backward() -> None:
    namespace: dict = {}
    exec(compile(render_derivation("lstm_step", "code"), "<derivcheck derive lstm_step --format code>", "exec"), namespace)  # noqa: S102
    layer = registry.get_layer("lstm_step")
    rng = np.random.default_rng(SEED)
    sizes = complete_sizes(layer, random_sizes(layer, rng, low=2))
    arrays = sample_inputs(layer, sizes, rng)
    dy = rng.standard_normal(output_shape(layer, sizes))
    got = namespace["backward"](dy, *[arrays[a.name] for a in layer.inputs])  # called like the layer's own backward
    want = layer.call_backward(dy, arrays, sizes)  # the hand-written reference: independent of the derivation
    assert set(got) == {a.name for a in layer.differentiable}
    for name, value in want.items():
        assert relative_gap(np.asarray(got[name], dtype=float), value, ABSOLUTE_BELOW_ONE) <= AGREEMENT, name


def _public_functions(source: str, layer) -> list[ast.FunctionDef]:  # noqa: ANN001 - a Layer
    """The printed functions a person calls: grad_*, backward, or the layer's own backward (not its helpers)."""
    own = layer.backward.__name__
    names = {"backward", own} if own != "<lambda>" else {"backward"}
    return [f for f in ast.parse(source).body if isinstance(f, ast.FunctionDef)
            and (f.name.startswith("grad_") or f.name in names)]


def test_every_generated_backward_takes_the_layers_arguments_in_declaration_order(user_layers: list[str]) -> None:
    wrong = []
    for name in [*list_layers(), *user_layers]:
        layer = registry.get_layer(name)
        expected = layer_code_parameters(layer)
        functions = _public_functions(render_derivation(name, "code"), layer)
        if not functions:
            wrong.append(f"{name}: no function printed")
        wrong += [f"{name}: {f.name}({', '.join(a.arg for a in f.args.args)}), declared ({', '.join(expected)})"
                  for f in functions if [a.arg for a in f.args.args] != expected]
    assert wrong == []


def test_declaration_order_is_dy_then_inputs_then_constants_then_hyperparameters() -> None:
    assert layer_code_parameters(registry.get_layer("lstm_step")) == ["dy", "x", "h", "c", "w", "u", "b"]
    assert layer_code_parameters(registry.get_layer("conv2d")) == ["dy", "x", "w", "b", "stride", "pad"]
    assert layer_code_parameters(registry.get_layer("dropout")) == ["dy", "x", "mask", "rate"]
    assert layer_code_parameters(registry.get_layer("mse")) == ["y", "t"]


def test_no_printed_line_has_parentheses_python_does_not_need(user_layers: list[str]) -> None:
    """Every computed line of every code block (catalog and user layers): no ((a)), no (x), no x + (y * z)."""
    from test_code_trees import redundant_parentheses

    found, checked = [], 0
    for name in [n for n in [*list_layers(), *user_layers] if registry.get_layer(n).chain is None]:
        generated = False  # inside a grad_* function derivcheck wrote (not a user's own reference backward)
        for line in render_derivation(name, "code").splitlines():
            if line.startswith("def "):
                generated = line.startswith("def grad_")
            statement = line.strip()
            if generated and line.startswith("    ") and (statement.startswith("return ") or " = " in statement):
                checked += 1
                returned = statement.startswith("return ")
                expression = statement[len("return "):] if returned else statement.split(" = ", 1)[1]
                found += [f"{name}: {p}" for p in redundant_parentheses(expression)]
    assert checked > 50 and found == []
