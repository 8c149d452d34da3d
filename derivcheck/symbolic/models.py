"""Models on the symbolic side: the backward pass as one derived equation per step, and each step's
VJP from a derived form (index or matrix), so a chain can be checked witness by witness."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from derivcheck.catalog.compose import VJP, Sequential, Step, sizes_from_arrays, _rank_free
from derivcheck.catalog.declarations import Layer
from derivcheck.catalog.sampling import complete_sizes
from derivcheck.symbolic.compile import compiled_gradient
from derivcheck.symbolic.derive import Derivation, Gradient, derive
from derivcheck.symbolic.language_form import LanguageForm, renamed
from derivcheck.language.printing import notation
from derivcheck.language.printing import latex, text
from derivcheck.language.printing.sympy_forms import DerivationPrinter, TextPrinter, partial


def witness_vjp(rules: str) -> VJP:
    """Each step's VJP from the layer's derived ``rules`` form ("index" or "matrix"), compiled."""

    def vjp(layer: Layer, args: dict[str, Any], upstream: Any, hyper: dict[str, int]) -> dict[str, Any]:
        return _derived_vjp(layer, args, upstream, rules, hyper)

    return vjp


def _derived_vjp(layer: Layer, args: dict[str, Any], upstream: Any, rules: str, hyper: dict[str, int]) -> dict[str, Any]:
    if _rank_free(layer) and any(np.ndim(v) != len(layer.output_letters) for v in args.values()):
        # Elementwise layers derive the same at any rank: evaluate on (first axis, rest).
        shape = np.shape(next(iter(args.values())))
        flat = {k: np.reshape(v, (shape[0], -1)) for k, v in args.items()}
        grads = _derived_vjp(layer, flat, np.reshape(upstream, (shape[0], -1)), rules, hyper)
        return {k: np.reshape(g, shape) for k, g in grads.items()}

    sizes = complete_sizes(layer, {**sizes_from_arrays(layer, args), **hyper})
    out = {}
    for arg in layer.differentiable:
        fn = compiled_gradient(layer.name, arg.name, rules) or compiled_gradient(layer.name, arg.name, "index")
        out[arg.name] = fn(args, upstream, sizes)
    return out


# A layer gradient's verified matrix-language reading, where it is printed in place of SymPy's form (or None);
# given by symbolic.presentation, which decides what a layer's derivation prints.
Readings = Callable[[Derivation, Gradient], LanguageForm | None]


def chained_latex(model: Sequential, readings: Readings | None = None) -> list[str]:
    """The backward pass as one matrix-form (or index-form) LaTeX equation per step."""
    return _chained(model, _LATEX, readings)


def chained_text(model: Sequential, readings: Readings | None = None) -> list[str]:
    """The backward pass as one matrix-form (or index-form) equation per step, in text; each layer's gradient in the
    form its own derivation prints (``readings``: σ(Z1) ⊙ (1 - σ(Z1)), not SymPy's quotient of exponentials)."""
    return _chained(model, _TEXT, readings)


class _Notation:
    """What differs between the LaTeX and the text of a chained backward pass."""

    def __init__(self, printer: Any, delta: Any, partial: Any, display: Any, plus: str, note: Any, tree: Any) -> None:
        self.printer, self.delta, self.partial, self.display, self.plus, self.note = printer, delta, partial, display, plus, note
        self.tree = tree  # a matrix-language tree, in the same notation


def _display_text(name: str, letters: tuple[str, ...]) -> str:
    return name.upper() if len(letters) == 2 else name


_LATEX = _Notation(lambda holders, rename: DerivationPrinter(holders, rename=rename), lambda v: rf"G_{{{v}}}",
                   partial, lambda n, letters: _display(n, letters), r"\mathrel{+}=", lambda t: rf"\text{{{t}}}",
                   latex)
_TEXT = _Notation(lambda holders, rename: TextPrinter(holders, rename=rename), lambda v: f"G_{v}",
                  notation.derivative_text, _display_text, "+=", lambda t: f"({t})", text)


def _chained(model: Sequential, how: _Notation, readings: Readings | None) -> list[str]:
    lines = []
    producers = {s.output: s for s in model.steps}
    # A weight shared by several steps (an unrolled RNN) gets one contribution per step: they add up.
    # So does a value read by several steps (both halves of an LSTM step's output): its delta is a sum.
    uses: dict[str, int] = {}
    for s in model.steps:
        for arg_name, target in s.bind.items():
            if target not in model.fixed and arg_name in {a.name for a in s.spec.differentiable}:
                uses[target] = uses.get(target, 0) + 1
    seen: dict[str, int] = {}

    delta = how.delta  # dE/d(value): the same letter as a layer's upstream gradient

    for step in reversed(model.steps):
        if step.spec.chain is not None:
            lines.extend(_chain_step_lines(model, step, producers, uses, seen, how))
            continue
        d = derive(step.layer)
        rename = {}
        for arg in step.spec.inputs:
            sym = d.built.symbols[arg.name]
            rename[str(getattr(sym, "name", sym))] = how.display(step.bind[arg.name], arg.letters)
        rename["G"] = delta(step.output)
        for arg_name, g in d.gradients.items():
            target = step.bind[arg_name]
            if target in model.fixed:
                continue
            body = _body(d, g, rename, how, readings)
            lhs = delta(target) if target in producers else how.partial("E", how.display(target, g.arg.letters))
            seen[target] = seen.get(target, 0) + 1
            equals = how.plus if uses.get(target, 1) > 1 and seen[target] > 1 else "="
            lines.append(f"{lhs} {equals} {body}")
    for target, n in uses.items():
        if n > 1:
            what = "is read by" if target in producers else "is shared by"
            lines.append(how.note(f"{target} {what} {n} steps: its gradient is the sum of the {n} contributions above"))
    return lines


def _body(d: Derivation, g: Gradient, rename: dict[str, str], how: _Notation, readings: Readings | None) -> str:
    """A layer's gradient in the model's names: the reading its derivation prints where there is one, else SymPy's."""
    reading = readings(d, g) if readings is not None else None
    if reading is not None and not reading.onehots and not reading.named:
        return how.tree(renamed(reading.node, rename))
    if g.matrix.kind != "none":
        return how.printer(g.matrix.placeholders if g.matrix.kind == "elementwise" else None, rename).doprint(g.matrix.expr)
    return how.printer(None, rename).doprint(g.index.expr)


def _chain_step_lines(model: Sequential, step: Step, producers: dict, uses: dict, seen: dict, how: _Notation) -> list[str]:
    """A step of a layer declared as primitive steps: its gradients are that layer's step-by-step backward."""
    out = []
    delta = how.delta
    text = how is _TEXT
    name = step.layer if text else step.layer.replace("_", r"\_")
    for arg in step.spec.differentiable:
        target = step.bind[arg.name]
        if target in model.fixed:
            continue
        lhs = delta(target) if target in producers else how.partial("E", how.display(target, arg.letters))
        seen[target] = seen.get(target, 0) + 1
        equals = how.plus if uses.get(target, 1) > 1 and seen[target] > 1 else "="
        words = f"d{arg.name} of the step-by-step backward of {name} (derivcheck derive {name}), upstream "
        out.append(f"{lhs} {equals} {words}{delta(step.output)}" if text
                   else rf"{lhs} {equals} \text{{{words}}} {delta(step.output)}")
    return out


def _display(name: str, letters: tuple[str, ...]) -> str:
    base = name.rstrip("0123456789")
    digits = name[len(base):]
    shown = base.upper() if len(letters) == 2 else rf"\mathbf{{{base}}}"
    return f"{shown}_{{{digits}}}" if digits else shown
