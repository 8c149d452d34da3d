"""Every catalog layer's printed gradient beside the textbook form, and whether they agree.

For each gradient of each layer in the catalog: the textbook form, written down by hand in the
table below together with the same formula in NumPy; what ``derivcheck derive NAME`` prints (the
index form, and the matrix form or the reason there is none); and two agreements:

- numeric: the textbook formula, evaluated with NumPy at random sizes and inputs, against the layer's
  reference backward (the one ``derivcheck verify`` checks against the index form and finite
  differences) and, where one is printed, against derivcheck's matrix form evaluated as printed;
- text: the printed forms against the textbook's after normalising (whitespace, ^T and ᵀ, * and ⊙, a ones
  vector's stated length: 1_N is the textbook's bare 1):
  exactly the textbook, an equivalent but different form (both shown), or no matrix form (the
  reason printed).

Only the numeric agreement decides the exit status; the text comparison is a report.

Run: python benchmarks/bench_readability.py
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from derivcheck.catalog.registry import get_layer, list_layers
from derivcheck.catalog.sampling import complete_sizes, output_shape, random_sizes, sample_inputs
from derivcheck.numeric.compare import ABSOLUTE_BELOW_ONE, relative_gap

# Two float64 evaluations of one formula, in different orders of operations, differ by a few ulps times the
# sizes summed over (at most a few hundred here): far below this. A wrong formula misses by order one.
AGREEMENT = 1e-9
SEEDS = (1, 2, 3)  # three draws of sizes (strides, paddings, kernels among them) and inputs


@dataclass(frozen=True)
class Textbook:
    """A gradient as a textbook writes it, and the same formula in NumPy (of ``g`` and the layer's arrays by name)."""

    text: str
    formula: Callable[..., Any]
    also: tuple[str, ...] = ()  # other spellings textbooks use for the same form


def _sigmoid(z: Any) -> Any:
    return 1 / (1 + np.exp(-z))


def _softmax(z: Any) -> Any:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _conv_dx(g: Any, x: Any, w: Any, stride: int, pad: int, **_: Any) -> Any:
    """Full correlation of G (dilated by the stride) with the kernel rotated by 180°, cropped to X."""
    n, f, oh, os_ = g.shape
    kh, kw = w.shape[2:]
    dilated = np.zeros((n, f, (oh - 1) * stride + 1, (os_ - 1) * stride + 1))
    dilated[:, :, ::stride, ::stride] = g
    padded = np.pad(dilated, ((0, 0), (0, 0), (kh - 1, kh - 1), (kw - 1, kw - 1)))
    windows = sliding_window_view(padded, (kh, kw), axis=(2, 3))
    full = np.einsum("nfijuv,fcuv->ncij", windows, w[:, :, ::-1, ::-1])
    h, s = x.shape[2] + 2 * pad, x.shape[3] + 2 * pad  # rows past the last window get no gradient
    full = np.pad(full, ((0, 0), (0, 0), (0, max(0, h - full.shape[2])), (0, max(0, s - full.shape[3]))))
    return full[:, :, pad:pad + x.shape[2], pad:pad + x.shape[3]]


def _conv_dw(g: Any, x: Any, w: Any, stride: int, pad: int, **_: Any) -> Any:
    """Σ_n X_n ⋆ G_n: for each kernel offset, the strided slice of the padded input it met, against G."""
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, os_ = g.shape[2:]
    out = np.zeros(w.shape)
    for u in range(w.shape[2]):
        for v in range(w.shape[3]):
            out[:, :, u, v] = np.einsum("nfij,ncij->fc", g, xp[:, :, u:u + stride * oh:stride, v:v + stride * os_:stride])
    return out


def _pool_dx(g: Any, x: Any, kernel: int, stride: int, share: Callable[[Any, Any], Any]) -> Any:
    """Each window (i, j) sends its g through ``share(window, g)``, summed where windows overlap."""
    dx = np.zeros(x.shape)
    for i in range(g.shape[2]):
        for j in range(g.shape[3]):
            rows, cols = slice(i * stride, i * stride + kernel), slice(j * stride, j * stride + kernel)
            dx[:, :, rows, cols] += share(x[:, :, rows, cols], g[:, :, i, j])
    return dx


def _to_argmax(window: Any, g: Any) -> Any:
    flat = window.reshape(*window.shape[:2], -1)
    hit = np.arange(flat.shape[-1]) == flat.argmax(axis=-1)[..., None]  # the first arg-max, as the catalog routes
    return (hit * g[..., None]).reshape(window.shape)


def _batchnorm(x: Any, eps: float) -> tuple[Any, Any]:
    sigma = np.sqrt(x.var(axis=0) + eps)
    return (x - x.mean(axis=0)) / sigma, sigma


def _batchnorm_dx(g: Any, x: Any, gamma: Any, eps: float, **_: Any) -> Any:
    """(γ / (N σ)) ⊙ (N G - Σ_n g_n - X̂ ⊙ Σ_n g_n ⊙ x̂_n): Ioffe and Szegedy's backward, the three paths summed."""
    xh, sigma = _batchnorm(x, eps)
    n = len(x)
    return gamma / (n * sigma) * (n * g - g.sum(axis=0) - xh * (g * xh).sum(axis=0))


def _lstm_deltas(g: Any, x: Any, h: Any, c: Any, w: Any, u: Any, b: Any) -> tuple[Any, Any]:
    """ΔA = [ΔI, ΔF, ΔO, ΔG] at the gates' pre-activations, and F (for ∂E/∂C = F ⊙ ΔC')."""
    a = np.split(x @ w + h @ u + b, 4, axis=1)
    i, f, o, gt = _sigmoid(a[0]), _sigmoid(a[1]), _sigmoid(a[2]), np.tanh(a[3])
    tc = np.tanh(f * c + i * gt)
    dc = g[1] + g[0] * o * (1 - tc**2)  # ΔC' = G_c + G_h ⊙ O ⊙ (1 - tanh² C')
    da = np.concatenate([dc * gt * i * (1 - i), dc * c * f * (1 - f), g[0] * tc * o * (1 - o), dc * i * (1 - gt**2)], axis=1)
    return da, f * dc


def _rnn_delta(g: Any, x: Any, h: Any, wx: Any, wh: Any, b: Any, **_: Any) -> Any:
    return g * (1 - np.tanh(x @ wx + h @ wh + b) ** 2)  # Δ = G ⊙ (1 - H'²)


_BIAS = Textbook("Σ_n g_n", lambda g, **_: g.sum(axis=0), also=("Gᵀ 1",))

TEXTBOOK: dict[str, dict[str, Textbook]] = {
    "dense": {"x": Textbook("G Wᵀ", lambda g, w, **_: g @ w.T), "w": Textbook("Xᵀ G", lambda g, x, **_: x.T @ g),
              "b": _BIAS},
    "sigmoid": {"x": Textbook("G ⊙ σ(X) ⊙ (1 - σ(X))", lambda g, x, **_: g * _sigmoid(x) * (1 - _sigmoid(x)))},
    "tanh": {"x": Textbook("G ⊙ (1 - tanh²(X))", lambda g, x, **_: g * (1 - np.tanh(x) ** 2))},
    "relu": {"x": Textbook("G ⊙ [X > 0]", lambda g, x, **_: g * (x > 0))},
    "leaky_relu": {"x": Textbook("G ⊙ ([X > 0] + α [X ≤ 0])", lambda g, x, alpha, **_: g * np.where(x > 0, 1.0, alpha))},
    "elu": {"x": Textbook("G ⊙ ([X > 0] + α exp(X) ⊙ [X ≤ 0])",
                          lambda g, x, alpha, **_: g * np.where(x > 0, 1.0, alpha * np.exp(np.minimum(x, 0))))},
    "softplus": {"x": Textbook("G ⊙ σ(X)", lambda g, x, **_: g * _sigmoid(x))},
    "embedding": {"w": Textbook("onehot(ids)ᵀ G", lambda g, ids, w, **_: np.eye(w.shape[0])[ids].T @ g)},
    "softmax_cross_entropy": {"z": Textbook("(P - T)/N", lambda z, t, **_: (_softmax(z) - t) / z.shape[0],
                                            also=("(softmax(Z) - T)/N",))},
    "mse": {"y": Textbook("2 (Y - T)/(N M)", lambda y, t, **_: 2 * (y - t) / y.size)},
    "half_sse": {"y": Textbook("Y - T", lambda y, t, **_: y - t)},
    "binary_cross_entropy": {"p": Textbook("(P - T) ⊘ (P ⊙ (1 - P))/N",
                                           lambda p, t, **_: (p - t) / (p * (1 - p)) / p.shape[0])},
    "binary_cross_entropy_with_logits": {"z": Textbook("(σ(Z) - T)/N", lambda z, t, **_: (_sigmoid(z) - t) / z.shape[0])},
    "batchnorm": {
        "x": Textbook("(γ/σ) ⊙ (G - mean_n(G) - X̂ ⊙ mean_n(G ⊙ X̂))", lambda **k: _batchnorm_dx(**k)),
        "gamma": Textbook("Σ_n g_n ⊙ x̂_n", lambda g, x, eps, **_: (g * _batchnorm(x, eps)[0]).sum(axis=0),
                          also=("(G ⊙ X̂)ᵀ 1",)),
        "beta": _BIAS,
    },
    "conv2d": {"x": Textbook("G (dilated by the stride) fully correlated with the kernel rotated 180°", _conv_dx),
               "w": Textbook("Σ_n X_n ⋆ G_n (correlation of the padded input with G)", _conv_dw),
               "b": Textbook("Σ_{n,i,j} g_nij", lambda g, **_: g.sum(axis=(0, 2, 3)))},
    "maxpool2d": {"x": Textbook("each window's g routed to its arg-max, summed where windows overlap",
                                lambda g, x, kernel, stride, **_: _pool_dx(g, x, kernel, stride, _to_argmax))},
    "avgpool2d": {"x": Textbook("each window's g/k² spread over its window, summed where windows overlap",
                                lambda g, x, kernel, stride, **_: _pool_dx(
                                    g, x, kernel, stride, lambda win, gg: np.broadcast_to(gg[..., None, None] / kernel**2, win.shape)))},
    "global_avgpool": {"x": Textbook("g_nc/(H S) at every pixel", lambda g, x, **_: np.broadcast_to(
        g[:, :, None, None] / (x.shape[2] * x.shape[3]), x.shape))},
    "rnn_step": {"x": Textbook("Δ Wxᵀ", lambda **k: _rnn_delta(**k) @ k["wx"].T),
                 "h": Textbook("Δ Whᵀ", lambda **k: _rnn_delta(**k) @ k["wh"].T),
                 "wx": Textbook("Xᵀ Δ", lambda **k: k["x"].T @ _rnn_delta(**k)),
                 "wh": Textbook("Hᵀ Δ", lambda **k: k["h"].T @ _rnn_delta(**k)),
                 "b": Textbook("Σ_n δ_n", lambda **k: _rnn_delta(**k).sum(axis=0), also=("Δᵀ 1",))},
    "lstm_step": {"x": Textbook("ΔA Wᵀ", lambda **k: _lstm_deltas(**k)[0] @ k["w"].T),
                  "h": Textbook("ΔA Uᵀ", lambda **k: _lstm_deltas(**k)[0] @ k["u"].T),
                  "c": Textbook("F ⊙ ΔC'", lambda **k: _lstm_deltas(**k)[1]),
                  "w": Textbook("Xᵀ ΔA", lambda **k: k["x"].T @ _lstm_deltas(**k)[0]),
                  "u": Textbook("Hᵀ ΔA", lambda **k: k["h"].T @ _lstm_deltas(**k)[0]),
                  "b": Textbook("Σ_n δa_n", lambda **k: _lstm_deltas(**k)[0].sum(axis=0), also=("ΔAᵀ 1",))},
    "dropout": {"x": Textbook("G ⊙ M/(1 - rate)", lambda g, mask, rate, **_: g * mask / (1 - rate))},
    "flatten": {"x": Textbook("G reshaped to N × C × H × S", lambda g, x, **_: g.reshape(x.shape))},
    "take_first": {"s": Textbook("[G, 0] (G in part 0)", lambda g, s, **_: np.stack([g, np.zeros_like(g)]))},
    "take_second": {"s": Textbook("[0, G] (G in part 1)", lambda g, s, **_: np.stack([np.zeros_like(g), g]))},
    "softmax": {"x": Textbook("Y ⊙ (G - ((G ⊙ Y) 1) 1ᵀ)", lambda g, x, **_: _softmax(x) * (
        g - (g * _softmax(x)).sum(axis=1, keepdims=True)))},
    "log_softmax": {"x": Textbook("G - softmax(X) ⊙ (G 1) 1ᵀ",
                                  lambda g, x, **_: g - _softmax(x) * g.sum(axis=1, keepdims=True))},
}


# ---------------------------------------------------------------------------------------------- numeric agreement

@dataclass(frozen=True)
class Numeric:
    layer: str
    arg: str
    gap: float  # worst relative gap to the reference backward over the draws
    matrix_gap: float | None  # worst relative gap to derivcheck's printed matrix form (None: none printed)
    sizes: str

    @property
    def ok(self) -> bool:
        return self.gap <= AGREEMENT and (self.matrix_gap is None or self.matrix_gap <= AGREEMENT)


def _draw(layer: Any, seed: int) -> tuple[dict[str, Any], Any, dict[str, int]]:
    rng = np.random.default_rng(seed)
    sizes = complete_sizes(layer, random_sizes(layer, rng, low=2))
    inputs = sample_inputs(layer, sizes, rng)
    upstream = rng.standard_normal(output_shape(layer, sizes)) if not layer.is_loss else 1.0
    return inputs, upstream, sizes


def textbook_value(book: Textbook, name: str, inputs: dict[str, Any], upstream: Any, sizes: dict[str, int]) -> np.ndarray:
    """A textbook formula of one of the layer's gradients, in NumPy (a loss's gradient times its scalar upstream)."""
    layer = get_layer(name)
    values = {**inputs, **layer.constants, **layer.hyperparameters(sizes)}
    if layer.is_loss:
        return upstream * np.asarray(book.formula(**values), dtype=float)
    return np.asarray(book.formula(g=upstream, **values), dtype=float)


def _gap(a: np.ndarray, b: np.ndarray) -> float:
    return float("inf") if a.shape != b.shape else relative_gap(a, b, ABSOLUTE_BELOW_ONE)


def numeric_agreement(name: str, matrix: Callable[[str, str], Any] | None = None, *,
                      table: dict[str, dict[str, Textbook]] = TEXTBOOK, backward: Callable[..., Any] | None = None,
                      seeds: tuple[int, ...] = SEEDS) -> list[Numeric]:
    """Each gradient's textbook formula (from ``table``) against the reference backward (or ``backward``, to plant a
    wrong one) and the printed matrix form (given ``matrix(layer, arg)`` -> its compiled evaluation or None), at
    every draw of ``seeds``."""
    layer = get_layer(name)
    worst: dict[str, list[float]] = {a.name: [0.0, 0.0] for a in layer.differentiable}
    printed = {a.name: matrix(name, a.name) if matrix else None for a in layer.differentiable}
    sizes_seen = []
    for seed in seeds:
        inputs, upstream, sizes = _draw(layer, seed)
        sizes_seen.append(" ".join(f"{k}={v}" for k, v in sizes.items()))
        reference = layer.call_backward(upstream, inputs, sizes, backward)
        for arg in layer.differentiable:
            ours = textbook_value(table[name][arg.name], name, inputs, upstream, sizes)
            worst[arg.name][0] = max(worst[arg.name][0], _gap(ours, np.asarray(reference[arg.name], dtype=float)))
            if printed[arg.name] is not None:
                theirs = np.asarray(printed[arg.name](inputs, upstream, sizes), dtype=float)
                worst[arg.name][1] = max(worst[arg.name][1], _gap(ours, theirs))
    return [Numeric(name, a, w[0], w[1] if printed[a] is not None else None, "; ".join(sizes_seen))
            for a, w in worst.items()]


# ------------------------------------------------------------------------------------------------- printed text

@dataclass(frozen=True)
class Printed:
    """What ``derive`` prints for one gradient: the index form, the matrix form (or a step-by-step line), the reason."""

    index: str
    matrix: str | None
    reason: str | None
    guard: str = ""  # a matrix form's "where ..." line, shown with it (it is part of what the form means)


_INDEX = re.compile(r"^(?:∂E/∂|dE/d)\S+ = ")
_MATRIX = re.compile(r"^  (?:∂E/∂|dE/d)\S+ = ")
_STEP = re.compile(r"^  (?:∂f/∂|df/d)(\S+)\s*= (.*)$")
_NOT_A_REASON = ("where ", "matrix form", "cross-check", "vectorized NumPy", "einsum", "DEFECT")


def _blocks(lines: list[str]) -> list[list[str]]:
    """The lines of each gradient's block, from its index form to the next blank line or gradient."""
    blocks: list[list[str]] = []
    for line in lines:
        if _INDEX.match(line):
            blocks.append([line])
        elif blocks and blocks[-1][-1] != "" and line.startswith(" "):
            blocks[-1].append(line)
        elif blocks:
            blocks[-1].append("")  # closed
    return [[x for x in b if x] for b in blocks]


def _read_block(block: list[str]) -> Printed:
    index, matrix, reason, guard, current = [block[0].split(" = ", 1)[1]], None, None, "", "index"
    for line in block[1:]:
        if _MATRIX.match(line):
            matrix, current = [line.split(" = ", 1)[1]], "matrix"
        elif line.startswith("      ") and current in ("index", "matrix"):  # a wrapped equation's continuation
            (index if current == "index" else matrix).append(line.strip())
        else:
            current = "note"
            text = line.strip()
            if matrix is not None and text.startswith("where ") and not guard:
                guard = text
            if reason is None and matrix is None and not text.startswith(_NOT_A_REASON):
                reason = text
    return Printed(" ".join(index), " ".join(matrix) if matrix else None, reason, guard)


def _step_lines(text: str) -> dict[str, str]:
    """``∂f/∂NAME = ...`` (``df/dNAME`` in ASCII) lines of a step-by-step matrix form (chains, and layers declared with steps)."""
    return {m.group(1): m.group(2).strip() for m in map(_STEP.match, text.splitlines()) if m}


def printed_forms(name: str, text: str) -> dict[str, Printed]:
    """Each differentiable argument's printed forms, read off the text ``derive NAME`` prints."""
    layer = get_layer(name)
    steps = _step_lines(text)
    if layer.chain is not None:  # printed gate by gate: the blocks of each argument, joined
        return {a: Printed("", "; ".join(f"{n}: {steps.get(n, '?')}" for n in names), None)
                for a, names in layer.chain.arguments.items()}
    blocks = [_read_block(b) for b in _blocks(text.splitlines())]
    if len(blocks) != len(layer.differentiable):
        return {a.name: Printed("", None, f"(could not read the printed text: {len(blocks)} blocks)") for a in layer.differentiable}
    out = {}
    for arg, p in zip(layer.differentiable, blocks):
        step = steps.get(arg.name.upper() if len(arg.letters) == 2 else arg.name)
        out[arg.name] = p if p.matrix or step is None else Printed(p.index, f"{step}  (step by step)", p.reason)
    return out


def normalise(s: str) -> str:
    """Whitespace, ^T and ᵀ, * and ⊙, − and - made equal, a ones vector's length dropped (derivcheck prints 1_N where
    a textbook writes 1: the length it leaves to the reader is stated); spaces around operators dropped."""
    s = s.replace("^T", "ᵀ").replace("−", "-").replace("*", "⊙").replace("·", "⊙")
    s = re.sub(r"(?<![\w.])1_[A-Za-z0-9]+", "1", s)
    s = re.sub(r"\s+", " ", s).strip()
    return re.sub(r"\s*([-+⊙⊘/=(),])\s*", r"\1", s)


def text_verdict(book: Textbook, printed: Printed) -> str:
    """"textbook" (a printed form is the textbook's, normalised), "different" or "none" (no matrix form)."""
    spellings = {normalise(t) for t in (book.text, *book.also)}
    if any(p and normalise(p) in spellings for p in (printed.matrix, printed.index)):
        return "textbook"
    return "different" if printed.matrix else "none"


# -------------------------------------------------------------------------------------------------------- report

def _row(name: str, n: Numeric, book: Textbook, printed: Printed, verdict: str) -> list[str]:
    label = {"textbook": "reads as the textbook", "different": "equivalent, a different form",
             "none": "no matrix form"}[verdict]
    matrix = "" if n.matrix_gap is None else f", printed matrix form {n.matrix_gap:.1e}"
    lines = [f"{name} d{n.arg}: {label}; numeric {'agrees' if n.ok else 'DISAGREES'} "
             f"(textbook vs reference backward {n.gap:.1e}{matrix})",
             f"    textbook: {book.text}"]
    if verdict != "textbook" or printed.matrix:
        lines.append(f"    printed:  {printed.matrix}" + (f"   [{printed.guard}]" if printed.guard else "") if printed.matrix else f"    printed index form: {_clip(printed.index)}")
    if verdict == "none":
        lines.append(f"    reason printed: {printed.reason or '(none printed)'}")
    return lines


def _clip(s: str, width: int = 160) -> str:
    return s if len(s) <= width else f"{s[:width]}… ({len(s)} characters)"


def shown_matrix_form(layer: str, arg: str) -> Callable[..., Any] | None:
    """The matrix form ``derive`` prints for a gradient, as a function of (inputs, upstream, sizes): the matrix
    language's reading where that is printed in place of SymPy's form, SymPy's compiled form otherwise."""
    from derivcheck.symbolic.compile import compiled_gradient
    from derivcheck.symbolic.derive import derive
    from derivcheck.symbolic.presentation import shows_reading

    d = derive(layer)
    g = d.gradients[arg]
    if shows_reading(d, g):
        return lambda inputs, upstream, sizes: g.reading.values(d.built, inputs, upstream, sizes)
    return compiled_gradient(layer, arg, "matrix")


def main() -> int:
    from derivcheck.symbolic.presentation import render_derivation

    counts = {"textbook": 0, "different": 0, "none": 0}
    layers_textbook, bad, missing = [], [], [n for n in list_layers() if n not in TEXTBOOK]
    for name in [n for n in list_layers() if n in TEXTBOOK]:
        try:
            printed = printed_forms(name, render_derivation(name, "text"))
            matrix = shown_matrix_form
        except Exception as exc:  # noqa: BLE001 - a derivation that fails is reported, and the numbers still checked
            why = f"(derive {name} raised {type(exc).__name__}: {exc})"
            printed = {a.name: Printed("", None, why) for a in get_layer(name).differentiable}
            matrix = None
        rows = numeric_agreement(name, matrix)
        verdicts = []
        for n in rows:
            verdict = text_verdict(TEXTBOOK[name][n.arg], printed[n.arg])
            verdicts.append(verdict)
            counts[verdict] += 1
            bad += [] if n.ok else [f"{name} d{n.arg}"]
            print("\n".join(_row(name, n, TEXTBOOK[name][n.arg], printed[n.arg], verdict)))
        if all(v == "textbook" for v in verdicts):
            layers_textbook.append(name)
    total = sum(counts.values())
    print(f"\n{len(layers_textbook)}/{len(TEXTBOOK)} layers read as the textbook in every gradient "
          f"({', '.join(layers_textbook) or 'none'}); gradients: {counts['textbook']}/{total} textbook, "
          f"{counts['different']} equivalent in a different form, {counts['none']} without a matrix form; "
          f"numeric: {total - len(bad)}/{total} agree" + (f" (DISAGREE: {', '.join(bad)})" if bad else "")
          + (f"; no textbook entry for: {', '.join(missing)}" if missing else ""))
    return 1 if bad or missing else 0


if __name__ == "__main__":
    sys.exit(main())
