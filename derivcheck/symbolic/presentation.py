"""Derivations as text, LaTeX, Markdown or runnable NumPy code (layers and models).

Everything printed here was checked in the same run first: a matrix form against its index
form (``checked_code.form_check``), generated code against the index form at random sizes,
the reference backward by ``verify_layer``. A form that disagrees is reported, never shown.
"""

from __future__ import annotations

import ast
import functools
import html
import inspect
import textwrap
import types
from collections.abc import Callable
from typing import Any, TypeVar

import sympy as sp

from derivcheck.catalog.compose import Sequential
from derivcheck.catalog.registry import MODELS, get_layer, list_layers
from derivcheck.errors import InputError
from derivcheck.language.printing import HELPERS
from derivcheck.language.printing import latex as node_latex
from derivcheck.report.language import program_latex_lines, program_text
from derivcheck.language.printing import notation
from derivcheck.language.printing.sympy_forms import (DerivationPrinter, TextPrinter, partial, text_entry_name,
                                                       text_name, wrap_text)
from derivcheck.symbolic.checked_code import IMPORT, chain_code_block, checked_code, form_check
from derivcheck.symbolic.compile import symbol_name
from derivcheck.symbolic.derive import PRESENTERS, Derivation, Gradient, derive
from derivcheck.symbolic.language_form import LanguageForm
from derivcheck.symbolic.layer_chain import chain_derivation, steps_derivation
from derivcheck.symbolic.models import chained_latex, chained_text
from derivcheck.symbolic.build import index_symbol
from derivcheck.symbolic.verify import language_code, named_index_check, reading_check, reading_code
from derivcheck.symbolic.verify import language_form_check as language_check
from derivcheck.symbolic.verify import verify_layer

_R = TypeVar("_R")

def _kind_note(kind: str) -> str:
    """How a matrix form was found, in the glyphs of this stream (a ones vector with its length, 1_K)."""
    t = notation.current().transpose
    return {"matrix": "matrix form (SymPy's index -> array -> matrix conversion)",
            "elementwise": f"matrix form (elementwise: functions act entry by entry; (A 1_K) 1_K{t} sums each row of "
                           f"an N x K matrix A and spreads the sums back)",
            "language": "matrix form (the matrix language's rules read from the index form)"}[kind]


def _d(wrt: str) -> str:
    """``∂E/∂W`` (``dE/dW`` in ASCII): the derivative of the loss E."""
    return notation.derivative_text("E", wrt)


def _text_expr(e: sp.Basic) -> str:
    return sp.sstr(e)


def _symbol_name(sym: Any) -> str:
    return str(sym.label if isinstance(sym, sp.IndexedBase) else sym.name)


def names_apart_in(d: Derivation) -> notation.Apart:
    """The names of ``d`` that would print alike, kept apart: ``eps`` beside ``epsilon`` spelled out, and the
    entries of a matrix ``G`` beside a vector ``g`` written ``G_pq`` (in text, LaTeX and Markdown alike)."""
    built = d.built
    symbols = [*built.symbols.values(), *built.constants.values()]
    names = [_symbol_name(s) for s in symbols] + ([] if built.upstream is None else [_symbol_name(built.upstream)])
    spelled = notation.printed_alike(names)
    with notation.names_apart(spelled):  # whatever a caller keeps apart: these names are d's alone
        letters = {text_name(_symbol_name(s), notation.UNICODE) for s in symbols if not _has_two_axes(s)}
        capital = {_symbol_name(s) for s in symbols if _has_two_axes(s)
                   and text_entry_name(_symbol_name(s), "g", notation.UNICODE) in letters}
    return notation.Apart(spelled, frozenset(capital))


def _has_two_axes(sym: Any) -> bool:
    return isinstance(sym, sp.IndexedBase) or (isinstance(sym, sp.MatrixSymbol) and sym.shape[1] != 1)


def _names_kept_apart(fn: Callable[..., _R]) -> Callable[..., _R]:
    """``fn(d, ...)`` printed with ``d``'s colliding names kept apart (:func:`names_apart_in`)."""
    @functools.wraps(fn)
    def printed(d: Any, *args: Any, **kwargs: Any) -> _R:
        kept = names_apart_in(d)
        with notation.names_apart(kept.spelled, kept.capital_entries):
            return fn(d, *args, **kwargs)

    return printed


def render_derivation(name: Any, fmt: str = "text") -> str:
    """A layer's or model's derivation in ``fmt``: "text", "latex", "markdown" or "code".

    ``name`` is a catalog name or a :class:`~derivcheck.catalog.compose.Sequential` of your own.

    Examples
    --------
    >>> print(render_derivation("dense", "latex").splitlines()[4])
    \\frac{\\partial E}{\\partial W} = X^{\\top}\\,G
    """

    list_layers()
    if isinstance(name, Sequential):
        return _render_model(name, fmt, chained_latex(name, printed_reading))
    if not isinstance(name, str):
        raise InputError(f"render_derivation takes a layer or model name, or a Sequential; got {type(name).__name__}")
    if name in MODELS:
        return _render_model(MODELS[name], fmt, chained_latex(MODELS[name], printed_reading))

    if fmt not in ("text", "latex", "markdown", "code"):
        raise InputError(f"format must be text, latex, markdown or code; got {fmt!r}")
    layer = get_layer(name)
    if layer.chain is not None:
        return _render_chain(layer, fmt)
    d = derive(name)
    if fmt == "latex":
        return "\n".join(latex_lines(d))
    if fmt == "markdown":
        return _markdown(d)
    if fmt == "code":
        return _code(d)
    if fmt == "text":
        return _text(d)
    raise InputError(f"format must be text, latex, markdown or code; got {fmt!r}")


@_names_kept_apart
def derivation_markdown(d) -> str:  # noqa: ANN001 - a Derivation
    """A derivation in Markdown with $$ equations (what a notebook shows)."""
    return _markdown(d)


@_names_kept_apart
def derivation_html(d) -> str:  # noqa: ANN001 - a Derivation
    """A derivation as HTML with $$ equations (notebook front ends typeset them with MathJax)."""

    esc = html.escape
    parts = [f"<h4><code>{esc(d.layer.name)}</code></h4>"]
    if d.layer.question:
        parts.append(f"<p><i>{esc(d.layer.question)}</i></p>")
    parts.append(f"<p>$${esc(latex_lines(d)[0])}$$</p>")
    for g in d.gradients.values():
        index = f"{partial('E', d._entry_lhs(g))} = {DerivationPrinter().doprint(g.index.expr)}"
        parts.append(f"<p><b>d{esc(g.arg.name)}</b></p><p>$${esc(index)}$$</p>")
        parts.extend(f"<p>$${esc(w)}$$</p>" for w in named_latex(d, g))
        m = matrix_latex(d, g)
        parts.extend(f"<p>$${esc(w)}$$</p>" for w in (named_index_latex(d, g) if m else []))
        parts.append(f"<p>$${esc(partial('E', d._param_name(g.arg)) + ' = ' + m)}$$</p>" if m
                     else f"<p>({esc(g.matrix.note)})</p>")
        parts.extend(f"<p>$${esc(w)}$$</p>" for w in (where_latex(d, g) if m else []))
    parts.append("<ul>" + "".join(f"<li>{esc(x)}</li>" for x in _footer(d)) + "</ul>")
    return "\n".join(parts)


def _header(d) -> list[str]:
    layer = d.layer
    ins = ", ".join(f"{a.name}[{a.dims}]" for a in layer.inputs)
    lines = [f"{layer.name}: ({ins}) -> {layer.output or 'scalar E'}"]
    if layer.question:
        lines.append(f"question: {layer.question}")
    return lines


def _footer(d) -> list[str]:
    layer = d.layer
    counts = ", ".join(f"{a.name}: {' x '.join(a.letters) or '1'}" for a in layer.differentiable)
    lines = [f"entries of each differentiated input: {counts}"]
    lines.extend(_definitions(layer))
    for c in layer.conventions:
        lines.extend(wrap_text(f"convention: {c}", indent="  "))
    if not layer.is_loss:
        bar = d.built.upstream is not None and str(d.built.upstream.name).lower() == "gbar"
        g = notation.current()
        lines.append((f"E is the loss; {g.accent('G', 'bar')} = {_d('y')} is the upstream gradient (entries "
                      f"{g.accent('g', 'bar')}: g names an argument or a size here)"
                      if bar else f"E is the loss; G = {_d('y')} is the upstream gradient (entries g)")
                     + ", kept symbolic; sizes are symbols.")
    lines.append(f"derived in {d.seconds:.2f} s (independent of the sizes)")
    return lines


def _definitions(layer) -> list[str]:  # noqa: ANN001 - a Layer
    """A line for every opaque function the index form uses: nothing printed is left undefined."""
    out = []
    for name in layer.functions:
        meaning = layer.definitions.get(name, f"{name}(...) is evaluated by the layer's own NumPy function")
        out.append(f"where {meaning}")
    return out


@_names_kept_apart
def _text(d) -> str:
    lines = _header(d)
    y = "E" if d.layer.is_loss else text_equation_lhs(sp.IndexedBase("y")[d.built.out]) if d.built.out else "y"
    lines.extend(text_equation(f"forward:  {y}", d.built.element))

    for g in d.gradients.values():
        lines.append("")
        lines.extend(text_equation(_d(text_equation_lhs(g.index.entry, g.index.free)), g.index.expr))
        checked = form_check(d, g.arg.name)
        matrix_lhs = f"  {_d(_text_param(d, g))}"
        if g.matrix.kind != "none" and checked.matrix is not None:
            lines.append(f"  DEFECT: the matrix form derived here {checked.matrix}; it is not shown")
        elif shows_reading(d, g):
            lines.append(f"  {_kind_note('language')}, verified against the index form:")
            lines.extend(wrap_text(f"{matrix_lhs} = {g.reading.text()}"))
            lines.extend(f"  where {w}" for w in g.reading.where())
        elif g.matrix.kind == "matrix":
            lines.append(f"  {_kind_note('matrix')}, verified against the index form:")
            lines.extend(text_equation(matrix_lhs, g.matrix.expr))
        elif g.matrix.kind == "elementwise":
            lines.append(f"  {_kind_note('elementwise')}, verified against the index form:")
            lines.extend(text_equation(matrix_lhs, g.matrix.expr, g.matrix.placeholders))
        elif g.language is not None:
            lines.extend(_language_text(d, g, matrix_lhs))
        else:
            lines.extend(_named_text(d, g))
            lines.append(f"  {g.matrix.note}" + ("; the matrix form step by step is below" if d.layer.steps else ""))
            if g.matrix.einsum and checked.einsum is None:
                lines.append(f"  einsum, verified against the index form: {g.matrix.einsum}")
            lines.append("  vectorized NumPy: the reference backward below, verified against this index form")
        if g.trace_note:
            lines.append(f"  cross-check: {g.trace_note}")
    lines.append("")
    lines.extend(_stepwise_text(d.layer))
    lines.extend(_footer(d))
    if any(g.matrix.kind == "none" for g in d.gradients.values()):
        lines += ["", "reference backward (vectorized NumPy), with the helpers it calls:", IMPORT,
                  *_with_helpers(d.layer.backward)]
    return "\n".join(lines)


def _language_text(d, g, lhs: str) -> list[str]:  # noqa: ANN001 - a Derivation and its Gradient
    """The matrix language's form of a gradient, only after it agreed with the index form in this run."""
    problem = language_check(d, g.arg.name)
    if problem is not None:
        return [f"  DEFECT: the matrix form derived here {problem}; it is not shown"]
    named = [] if g.language.index is None else [
        "  in the names of its statistics, verified against the index form above:",
        *text_equation(f"  {_d(text_equation_lhs(g.index.entry, g.index.free))}", g.language.index)]
    return [*named, f"  {_kind_note('language')}, verified against the index form:",
            *wrap_text(f"{lhs} = {g.language.text()}"), *[f"  where {w}" for w in g.language.where()],
            "  vectorized NumPy: the reference backward below, verified against this index form"]


def _named_text(d, g) -> list[str]:  # noqa: ANN001 - a Derivation and its Gradient
    """The index form in the names of its statistics (group norm's μ, σ, x̂), only after it agreed in this run."""
    if g.named is None:
        return []
    problem = named_index_check(d, g.arg.name)
    if problem is not None:
        return [f"  DEFECT: the index form in the names of its statistics {problem}; it is not shown"]
    lines = ["  in the names of its statistics, verified against the index form above:",
             *text_equation(f"  {_d(text_equation_lhs(g.index.entry, g.index.free))}", g.named.expr)]
    for definition in g.named.definitions:
        entry, value = _readable(definition)
        lines.extend(text_equation(f"  where {TextPrinter().doprint(entry)}", value))  # x̂_ngk: an entry's letter
    return lines


def named_latex(d: Derivation, g: Gradient) -> list[str]:
    """The index form in its statistics' names and their definitions, in LaTeX, where it agreed in this run."""
    if g.named is None or named_index_check(d, g.arg.name) is not None:
        return []
    p = DerivationPrinter()
    return [f"{partial('E', d._entry_lhs(g))} = {p.doprint(g.named.expr)}",
            *[f"{p.doprint(e)} = {p.doprint(v)}" for e, v in map(_readable, g.named.definitions)]]


def _readable(definition: Any) -> tuple[Any, Any]:
    """A statistic's entry and definition with its indices named after their dimensions: μ_ng, x̂_ngk."""
    letters = [str(n).lower() for n in definition.symbol.shape][:len(definition.indices)]
    names = {i: index_symbol(letter) for i, letter in zip(definition.indices, letters)}
    indices = tuple(names[i] for i in definition.indices)
    if isinstance(definition.symbol, sp.MatrixSymbol) and len(indices) == 1:
        indices += (0,)
    return definition.symbol[indices], definition.value.xreplace(names)


def _text_param(d, g) -> str:  # noqa: ANN001 - a Derivation and its Gradient
    sym = d.built.symbols[g.arg.name]
    return text_name(str(sym.label if isinstance(sym, sp.IndexedBase) else sym.name))


def text_equation_lhs(entry: Any, free: tuple[Any, ...] | None = None) -> str:
    """``W_pq`` for the entry W[p, q] (a vector's entry by one index: ``b_p``), named by its matrix as textbooks do."""
    if isinstance(entry, sp.Indexed):
        name, indices = str(entry.base.label), entry.indices
    else:
        name, indices = entry.parent.name, ((entry.i,) if entry.parent.shape[1] == 1 else (entry.i, entry.j))
    if free is not None and len(free) == 1:
        indices = tuple(free)
    parts = [TextPrinter().doprint(i) for i in indices]
    idx = "_" + "".join(parts) if all(len(p) == 1 for p in parts) else "[" + ", ".join(parts) + "]"
    return text_name(name) + idx


@_names_kept_apart
def text_lines(d: Derivation) -> list[tuple[str, list[str]]]:
    """Each equation of a derivation in text, keyed by its LaTeX: the forward, then index and verified matrix forms."""
    y = "E" if d.layer.is_loss else text_equation_lhs(sp.IndexedBase("y")[d.built.out]) if d.built.out else "y"
    latex = latex_lines(d)
    out = [(latex[0], text_equation(y, d.built.element))]
    p = DerivationPrinter()
    for g in d.gradients.values():
        index = f"{partial('E', d._entry_lhs(g))} = {p.doprint(g.index.expr)}"
        out.append((index, text_equation(_d(text_equation_lhs(g.index.entry, g.index.free)), g.index.expr)))
        m = matrix_latex(d, g)
        shown = g.reading if shows_reading(d, g) else g.language if g.matrix.kind == "none" else None
        if m and shown is not None:  # the matrix language's form
            out.append((f"{partial('E', d._param_name(g.arg))} = {m}",
                        wrap_text(f"{_d(_text_param(d, g))} = {shown.text()}")))
        elif m:
            holders = g.matrix.placeholders if g.matrix.kind == "elementwise" else None
            out.append((f"{partial('E', d._param_name(g.arg))} = {m}",
                        text_equation(_d(_text_param(d, g)), g.matrix.expr, holders)))
    return out


def text_equation(lhs: str, expr: Any, holders: dict[sp.Symbol, Any] | None = None) -> list[str]:
    """``lhs = expr`` in text, broken into lines under 200 characters, with its index ranges stated once in words."""
    printer = TextPrinter(holders)
    lines = wrap_text(f"{lhs} = {printer.doprint(expr)}")
    note = printer.guard_note()
    return lines + ([f"  {note}"] if note else [])


def _stepwise_text(layer) -> list[str]:  # noqa: ANN001 - a Layer
    """A layer's matrix form step by step (from its matrix-language ``steps``), every line verified in this run."""
    if not layer.steps:
        return []

    return ["matrix form, step by step (the layer's forward in the matrix language):", program_text(steps_derivation(layer.name)), ""]


def _elementwise_text(g) -> sp.Basic:  # noqa: ANN001 - a Gradient
    """The elementwise pattern with its placeholders named after the matrices they stand for (plain text)."""

    return g.matrix.expr.xreplace({h: sp.Symbol(symbol_name(m)) for h, m in g.matrix.placeholders.items()})


def _with_helpers(fn) -> list[str]:  # noqa: ANN001 - a function
    """The source of ``fn`` after the sources of the functions of its own module that it calls (recursively):
    nothing printed refers to a helper that is not printed too."""
    seen: list[types.FunctionType] = []

    def visit(f: types.FunctionType) -> None:
        module = inspect.getmodule(f)
        for name in f.__code__.co_names:
            g = getattr(module, name, None)
            if isinstance(g, types.FunctionType) and inspect.getmodule(g) is module and g not in seen and g is not f:
                seen.append(g)
                visit(g)

    visit(fn)
    parts = [_source(g) for g in reversed(seen)]
    imports = _imports([fn, *seen])
    return "\n\n".join(([imports] if imports else []) + [*parts, *_closure(fn), _source(fn)]).splitlines()


def _source(fn) -> str:  # noqa: ANN001 - a function
    """A function's source as a top-level definition that runs as printed: dedented, a lambda as a ``def``."""
    text = textwrap.dedent(inspect.getsource(fn)).rstrip()
    if fn.__name__ != "<lambda>":
        return text
    lam = _lambda_node(text, fn)
    if lam is None:
        return text
    args = ", ".join(a.arg for a in lam.args.args)
    return f"def backward({args}):\n    return {ast.unparse(lam.body)}"


def _lambda_node(text: str, fn) -> ast.Lambda | None:  # noqa: ANN001 - a function
    """The lambda in ``text`` (a line of a call, perhaps) with ``fn``'s arguments."""
    names = list(fn.__code__.co_varnames[: fn.__code__.co_argcount])
    for candidate in (text, text.rstrip(",)"), "(" + text.strip().rstrip(",") + ")", "f(" + text.strip().rstrip(",") + ")"):
        try:
            tree = ast.parse(candidate)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Lambda) and [a.arg for a in node.args.args] == names:
                return node
    return None


def _closure(fn) -> list[str]:  # noqa: ANN001 - a function
    """The values a nested function reads from its enclosing one, assigned before it (literals only)."""
    cells = fn.__closure__ or ()
    return [f"{name} = {cell.cell_contents!r}" for name, cell in zip(fn.__code__.co_freevars, cells)
            if isinstance(cell.cell_contents, (int, float, str, tuple, type(None)))]


def _imports(functions: list) -> str:  # noqa: ANN001 - functions
    """The import lines for the module-level names the printed functions use (np, sliding_window_view, ...)."""
    lines = []
    for f in functions:
        module = inspect.getmodule(f)
        for name in f.__code__.co_names:
            value = getattr(module, name, None)
            if isinstance(value, types.ModuleType):
                line = f"import {value.__name__}" + (f" as {name}" if name != value.__name__ else "")
            elif callable(value) and getattr(value, "__module__", None) not in (None, module.__name__) \
                    and not isinstance(value, type(len)) and hasattr(value, "__name__"):
                line = f"from {value.__module__} import {value.__name__}" + (f" as {name}" if name != value.__name__ else "")
            else:
                continue
            if line not in lines:
                lines.append(line)
    return "\n".join(x for x in sorted(lines) if x != IMPORT)  # the code format prints it once, at the top


@_names_kept_apart
def _markdown(d) -> str:
    lines = [f"### `{d.layer.name}`", ""]
    if d.layer.question:
        lines += [f"*{d.layer.question}*", ""]
    lines += ["$$", latex_lines(d)[0], "$$", ""]

    for g in d.gradients.values():
        lines.append(f"**d{g.arg.name}**")
        lines.append("")
        index = f"{partial('E', d._entry_lhs(g))} = {DerivationPrinter().doprint(g.index.expr)}"
        lines += ["$$", index, "$$"]
        lines += [x for w in named_latex(d, g) for x in ("$$", w, "$$")]
        m = matrix_latex(d, g)
        if m:
            lines += [x for w in named_index_latex(d, g) for x in ("$$", w, "$$")]
            lines += ["$$", f"{partial('E', d._param_name(g.arg))} = {m}", "$$"]
            lines += [x for w in where_latex(d, g) for x in ("$$", w, "$$")]
        else:
            lines.append(f"({g.matrix.note})")
        lines.append("")
    if d.layer.steps:

        steps = steps_derivation(d.layer.name)
        lines += ["**the matrix form, step by step** (each line verified in this run)", "", "$$",
                  r"\begin{aligned}" + r" \\ ".join(x.replace(" = ", " &= ", 1) for x in program_latex_lines(steps))
                  + r"\end{aligned}", "$$", ""]
    lines += [f"- {x}" for x in _footer(d)]
    return "\n".join(lines)


@_names_kept_apart
def _code(d) -> str:

    blocks = [f"# Generated from the derivation of layer {d.layer.name!r}: one function per gradient, each executed "
              f"as printed\n# and compared with the index form at random sizes before it was printed.\n{IMPORT}"]
    missing: list[str] = []
    defined: set[str] = set()
    for name, g in d.gradients.items():
        # The form printed in the text is the one coded; a defect of SymPy's form is reported all the same.
        reading = reading_code(d, name) if shows_reading(d, g) and form_check(d, name).matrix is None else None
        if reading is not None:
            blocks.append(f"# d{name}: the matrix language's form, verified against the index form\n"
                          f"{_once(reading, defined)}")
            continue
        checked = checked_code(d, name)
        language = language_code(d, name) if checked.source is None else None
        if language is not None:  # the matrix language's form, executed as printed and compared with the index form
            blocks.append(f"# d{name}: the matrix language's form, verified against the index form\n"
                          f"{_once(language, defined)}")
        elif checked.source is None:
            blocks.append(f"# d{name}: {checked.note}")
            missing.append(name)
        else:
            blocks.append(f"# d{name}: {checked.note}\n{checked.source}")
    if missing:
        blocks.append(_verified_reference(d.layer, missing))
    return "\n\n".join(blocks)


def _once(source: str, defined: set[str]) -> str:
    """``source`` without the helper functions an earlier block of the same output already defines."""
    for helper in HELPERS.values():
        if helper in source:
            if helper in defined:
                source = source.replace(helper + "\n\n\n", "")
            defined.add(helper)
    return source


def _verified_reference(layer, missing: list[str]) -> str:  # noqa: ANN001 - a Layer
    """The layer's vectorized reference backward, printed only after it agreed in this run with the index form
    and finite differences (for gradients without a matrix form: convolution, pooling)."""

    v = verify_layer(layer)
    rows = [r for r in v.rows if r.arg in missing]
    grads = ", ".join(f"d{m}" for m in missing)
    if not all(r.ok for r in rows):
        return f"# DEFECT, not shown: the reference backward for {grads} disagrees: " + "; ".join(r.message for r in rows)
    sizes = ", ".join(f"{k}={val}" for k, val in v.sizes.items())
    head = (f"# {grads}: the vectorized reference backward, verified in this run against the index form and finite "
            f"differences at {sizes}, with the helpers it calls:")
    return "\n".join([head, *_with_helpers(layer.backward)])


def _render_model(model, fmt: str, lines: list[str]) -> str:  # noqa: ANN001 - a Sequential
    name = model.name
    chain = " -> ".join(f"{s.output} = {s.layer}({', '.join(s.bind.values())})" for s in model.steps)
    if fmt == "latex":
        return "\n".join(lines)
    if fmt == "markdown":
        return "\n".join([f"### `{name}`", "", f"*{model.question}*", "", f"`{chain}`", "", "$$", r"\begin{gathered}" + r" \\ ".join(lines) + r"\end{gathered}", "$$"])
    if fmt == "code":
        raise InputError("code is generated per layer; derive each layer of the model with --format code")
    text = [line for ln in chained_text(model, printed_reading) for line in wrap_text(f"  {ln}")]
    return "\n".join([*wrap_text(f"{name}: {chain}", indent="  "), f"question: {model.question}", "", "backward pass, one VJP per step:", *text])


def _render_chain(layer, fmt: str) -> str:  # noqa: ANN001 - a Layer with a chain
    """A layer declared as primitive steps: forward, then the backward pass step by step, each line verified."""

    d = chain_derivation(layer.name)
    notes = [*layer.chain.notes, *layer.conventions]
    if fmt == "code":
        return chain_code_block(layer)  # the layer's own arguments, in declaration order, checked in this run
    if fmt == "text":
        return "\n".join([f"{layer.name}: {layer.question}", *[f"  ({n})" for n in notes], "", program_text(d)])
    lines = program_latex_lines(d)
    if fmt == "latex":
        return "\n".join(lines)
    body = "\n".join(f"$$\n{line}\n$$" for line in lines)
    return "\n".join([f"**{layer.name}**: {layer.question}", "", *[f"- {n}" for n in notes], "", body, "",
                      program_text(d).split("\n")[-1]])


@_names_kept_apart
def latex_lines(d: Derivation) -> list[str]:
    """One LaTeX equation per line: the forward, then index and matrix form per argument."""
    p = DerivationPrinter()
    lines = [f"{d._lhs_forward(p)} = {p.doprint(d.built.element)}"]
    for g in d.gradients.values():
        lines.append(f"{partial('E', d._entry_lhs(g))} = {p.doprint(g.index.expr)}")
        lines.extend(named_latex(d, g))
        matrix = matrix_latex(d, g)
        if matrix:
            lines.extend(named_index_latex(d, g))
            lines.append(f"{partial('E', d._param_name(g.arg))} = {matrix}")
            lines.extend(where_latex(d, g))
    for name, meaning in d.layer.definitions.items():  # opaque functions are defined where they are used
        lines.append(rf"\text{{where {meaning}}}")
    if d.layer.steps:  # the matrix form step by step, from the layer's matrix-language forward
        lines.extend(program_latex_lines(steps_derivation(d.layer.name)))
    return lines


def matrix_latex(d: Derivation, g: Gradient) -> str | None:
    """The matrix form in LaTeX, or None where there is no clean one or it did not verify in this run."""
    if g.matrix.kind != "none" and form_check(d, g.arg.name).matrix is not None:
        return None  # a defect is reported by the renderers, never shown as an answer
    if shows_reading(d, g):
        return node_latex(g.reading.node)
    if g.matrix.kind == "matrix":
        return DerivationPrinter().doprint(g.matrix.expr)
    if g.matrix.kind == "elementwise":
        return DerivationPrinter(g.matrix.placeholders).doprint(g.matrix.expr)
    if g.language is not None and language_check(d, g.arg.name) is None:
        return node_latex(g.language.node)  # X̂ and onehot(t) by the LaTeX printer's own rule
    return None


def printed_reading(d: Derivation, g: Gradient) -> LanguageForm | None:
    """The matrix language's reading a layer's derivation prints in place of SymPy's form, or None: a model's chain
    prints each layer's gradient as the layer's own derivation does."""
    return g.reading if shows_reading(d, g) else None


def shows_reading(d: Derivation, g: Gradient) -> bool:
    """Whether the matrix language's reading is printed in place of SymPy's matrix form: where it is the shorter of
    the two in Unicode text (a form's guards counted with it: ``G`` for X > 0 is longer than ``G ⊙ 1[X > 0]``), the
    same choice whatever the glyphs printed, and agreed with the index form in this run."""
    if g.reading is None or g.matrix.kind not in ("matrix", "elementwise"):
        return False
    with notation.use("unicode"):
        printer = TextPrinter(g.matrix.placeholders if g.matrix.kind == "elementwise" else None)
        theirs = printer.doprint(g.matrix.expr) + printer.guard_note()
        ours = g.reading.text()
    return len(ours) < len(theirs) and reading_check(d, g.arg.name) is None


def named_index_latex(d: Derivation, g: Gradient) -> list[str]:
    """The index form in the names of a normalization's statistics (x̂, σ), where a verified language form has one."""
    if where_latex(d, g) == [] or g.language.index is None:
        return []
    return [f"{partial('E', d._entry_lhs(g))} = {DerivationPrinter().doprint(g.language.index)}"]


def where_latex(d: Derivation, g: Gradient) -> list[str]:
    """The definitions of the statistics (μ, σ, X̂) a verified language form is written in, in LaTeX."""
    if g.matrix.kind != "none" or g.language is None or language_check(d, g.arg.name) is not None:
        return []
    return g.language.where_latex()


@_names_kept_apart
def derivation_latex(d: Derivation) -> str:
    """The derived equations, aligned, as one display block."""
    return "$$\\begin{gathered}" + r" \\ ".join(latex_lines(d)) + "\\end{gathered}$$"


PRESENTERS.update(latex=derivation_latex, markdown=derivation_markdown, html=derivation_html, latex_lines=latex_lines,
                  matrix_latex=matrix_latex)
