"""Runnable answers to the questions people ask about backprop (the scripts in ``derivations/``).

An answer states its question, prints equations (derived with SymPy or taken from a catalog
derivation, whose matrix forms were verified in the same run), and records checks: each one
says what was compared, on which sizes, and how closely. The script exits 1 if any check
disagrees. ``--format text|latex|markdown`` chooses the rendering; the Markdown of every script
is what ``docs/derivations.md`` collects.

Examples
--------
>>> a = Answer("demo", "What is d/dx x^2?", "text")
>>> a.eq(r"\\frac{d}{dx} x^{2} = 2 x", "d/dx x^2 = 2 x")
>>> a.check("2x at x = 3", abs(2 * 3 - 6) == 0, "exact")
True
>>> print(a.render().splitlines()[0])
demo: What is d/dx x^2?
>>> a.exit_code
0
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from derivcheck.language.printing import notation

FORMATS = ("text", "latex", "markdown")


@dataclass(frozen=True)
class Check:
    """One comparison an answer made: what, whether it agreed, and how closely."""

    label: str
    ok: bool
    detail: str


def bound(rel: float) -> str:
    """A relative error as an upper bound that does not change with the last bits (for docs that stay fresh)."""
    if rel != rel:
        return "nan"
    if rel == 0:
        return "0"
    # Coarse bins: the last bits differ between machines, the bin does not.
    for edge in (1e-12, 1e-9, 1e-6, 1e-3):
        if rel < edge:
            return f"< {edge:.0e}"
    return f"{rel:.2g}"


class Answer:
    """The parts of one answer, in order, and its checks."""

    def __init__(self, name: str, question: str, fmt: str = "text") -> None:
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}; got {fmt!r}")
        self.name, self.question, self.fmt = name, question, fmt
        self.parts: list[tuple[str, str, str]] = []
        self.checks: list[Check] = []

    def say(self, text: str) -> None:
        """A paragraph of prose."""
        self.parts.append(("say", text, text))

    def heading(self, text: str) -> None:
        self.parts.append(("heading", text, text))

    def eq(self, latex: str, text: str | None = None) -> None:
        """An equation: LaTeX, and its plain-text reading for the text format."""
        self.parts.append(("eq", latex, text if text is not None else latex))

    def code(self, text: str) -> None:
        """Literal output or code, shown as is."""
        self.parts.append(("code", text, text))

    def check(self, label: str, ok: bool, detail: str = "") -> bool:
        """Record a comparison; the script fails if any is not ok."""
        self.checks.append(Check(label, bool(ok), detail))
        return bool(ok)

    def compare(self, label: str, got: Any, want: Any, tol: float = 1e-9) -> bool:
        """Record a numeric comparison of two arrays (relative to the larger entry)."""
        import numpy as np

        from derivcheck.numeric.compare import PURELY_RELATIVE, relative_gap

        got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
        if got.shape != want.shape:
            return self.check(label, False, f"shapes {got.shape} and {want.shape}")
        rel = relative_gap(got, want, PURELY_RELATIVE, both=True)
        return self.check(label, rel <= tol, f"shape {want.shape}, max rel diff {bound(rel)}")

    def gradient(self, label: str, report: Any, expect: str = "pass") -> bool:
        """Record a derivcheck report whose verdict should be ``expect``; show its diagnosis when it fails."""
        floor = min((p.detection_floor for p in report.params), default=float("inf"))
        ok = report.verdict == expect
        self.check(label, ok, f"verdict {report.verdict} (expected {expect}), detection floor {bound(floor)}")
        if report.verdict == "fail":
            self.code("\n".join(f"diagnosis: {f.message}" for f in report.findings if f.severity == "error"))
        return ok

    def derivation(self, layer: str) -> None:
        """A catalog layer's derivation (matrix forms shown only where verified) and its four-way verification."""
        from derivcheck.symbolic.presentation import text_lines
        from derivcheck.symbolic.derive import derive
        from derivcheck.language.printing.sympy_forms import partial
        from derivcheck.symbolic.verify import verify_layer

        d = derive(layer)
        shown = {latex for latex, _ in text_lines(d)}
        for latex, text in text_lines(d):
            self.eq(latex, "\n".join(text) if latex != d.latex_lines()[0] else f"forward of {layer}: " + "\n".join(text))
        for g in d.gradients.values():
            m = d.matrix_latex(g)
            if not m or f"{partial('E', d._param_name(g.arg))} = {m}" not in shown:
                self.say(f"d{g.arg.name}: {g.matrix.note}.")
        v = verify_layer(layer, seed=0)
        sizes = ", ".join(f"{k}={n}" for k, n in v.sizes.items())
        for r in v.rows:
            self.check(f"{layer} d{r.arg}: {' = '.join(r.agreeing) or 'nothing'}", r.ok,
                       f"sizes {sizes}, max rel diff {bound(r.max_rel_error)}")

    @property
    def exit_code(self) -> int:
        return 0 if self.checks and all(c.ok for c in self.checks) else 1

    def render(self) -> str:
        """The answer in its format; prose written in Unicode math (∂, Σ, ⊙) is ASCII where the stream is."""
        out = {"text": self._text, "latex": self._latex, "markdown": self._markdown}[self.fmt]()
        return notation.current().text(out)

    def _summary(self) -> list[str]:
        bad = [c for c in self.checks if not c.ok]
        head = (f"verified: {len(self.checks)} check(s), all agree" if not bad
                else f"DISAGREE: {len(bad)} of {len(self.checks)} check(s)")
        return [head, *[f"{'ok' if c.ok else 'DISAGREE'}  {c.label}: {c.detail}" for c in self.checks]]

    def _text(self) -> str:
        out = [f"{self.name}: {self.question}", ""]
        for kind, _, text in self.parts:
            out.append(f"== {text}" if kind == "heading" else (f"    {text}" if kind == "eq" else text))
        return "\n".join([*out, "", *self._summary()])

    def _latex(self) -> str:
        out = [f"% {self.name}: {self.question}"]
        for kind, latex, text in self.parts:
            out.append(latex if kind == "eq" else "\n".join(f"% {line}" for line in text.splitlines()))
        return "\n".join([*out, *[f"% {line}" for line in self._summary()]])

    def _markdown(self) -> str:
        out = [f"## `{self.name}`", "", f"**{self.question}**", ""]
        for kind, latex, text in self.parts:
            if kind == "eq":
                out += ["$$", latex, "$$", ""]
            elif kind == "code":
                out += ["```", text, "```", ""]
            elif kind == "heading":
                out += [f"### {text}", ""]
            else:
                out += [text, ""]
        summary = self._summary()
        return "\n".join([*out, f"*{summary[0]}:*", "", *[f"- {line}" for line in summary[1:]], ""])


def run(name: str, question: str, build: Callable[[Answer], None], argv: list[str] | None = None) -> int:
    """Parse ``--format``, build the answer, print it; the exit status is 1 if any check disagrees."""
    parser = argparse.ArgumentParser(prog=f"derivations/{name}.py", description=question)
    parser.add_argument("--format", choices=FORMATS, default="text", help="text (default), latex or markdown")
    args = parser.parse_args(argv)
    answer = Answer(name, question, args.format)
    build(answer)
    print(answer.render())
    return answer.exit_code


def main(name: str, question: str, build: Callable[[Answer], None]) -> None:
    """The body of a script's ``if __name__ == "__main__":``."""
    sys.exit(run(name, question, build))


INSTALLED_PACKAGE = "derivcheck_derivations"  # derivations/ as the wheel installs it (pyproject.toml maps it)


def scripts_dir(package: str = INSTALLED_PACKAGE) -> Any:
    """The folder of the derivation scripts: the installed ``package``, else ``derivations/`` of the source tree.

    Examples
    --------
    >>> scripts_dir().joinpath("bias_gradient.py").is_file()
    True
    """
    import importlib.util
    from pathlib import Path

    from derivcheck.errors import DerivcheckError

    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    folder = Path(__file__).resolve().parents[2] / "derivations"
    if not folder.is_dir():
        raise DerivcheckError(f"the derivation scripts are neither installed (no package {package!r}) nor beside "
                              f"this derivcheck (no {folder.name}/ folder): reinstall derivcheck")
    return folder


def scripts() -> dict[str, str]:
    """Script name -> its question (the first line of its docstring), in name order."""
    import ast

    out = {}
    for path in sorted(p for p in scripts_dir().glob("*.py") if not p.name.startswith("_")):
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        out[path.stem] = doc.splitlines()[0] if doc else ""
    return out


def run_script(name: str, fmt: str = "text", args: list[str] | None = None) -> tuple[int, str]:
    """Run one script in a fresh interpreter, with ``args`` passed on; its exit status and output."""
    import subprocess

    path = scripts_dir() / f"{name}.py"
    # The script writes the glyphs this process would (Unicode, or ASCII on an ASCII stream or by notation.use),
    # into a pipe read as UTF-8, whatever the locale says.
    encoding = "utf-8" if notation.current().unicode else "ascii"
    env = {**os.environ, "PYTHONIOENCODING": encoding}
    done = subprocess.run([sys.executable, str(path), "--format", fmt, *(args or [])], capture_output=True,
                          encoding="utf-8", errors="replace", env=env)
    return done.returncode, done.stdout + (done.stderr if done.returncode else "")


DOC_HEADER = """# Derivations

Each section is the Markdown output of one script in `derivations/` (`python derivations/NAME.py
--format markdown`): the question, the derivation, and the checks run to verify it. This file is
generated: `python -m derivcheck.interfaces.derivation_scripts --write docs/derivations.md`; a test fails when it is stale.
"""


OUT_OF_SCOPE = """## Out of scope, and why

Two questions people ask beside these have no script, because no run can check an answer to them:

- **Which optimizer to use** (SGD, momentum, Adam, a learning rate). derivcheck decides whether a gradient is
  the gradient of the loss; which update rule trains a given network faster is an empirical question about its
  data and loss landscape, and a claim that a run cannot verify is not printed here. What is checked: the
  gradient every optimizer consumes, and for second-order methods the Hessian-vector products (`check_hvp`;
  `relu_second_derivative` shows Newton steps on a ReLU net).
- **Synthetic gradients** (a learned module that predicts a layer's gradient). The prediction is by design not
  the gradient of the loss, so a check against finite differences fails it, correctly; whether training with it
  works is again empirical. What is checked: the true gradient such a module is trained to predict, and, in
  `lstm_bptt`, that truncated backprop is not the gradient of the loss (and is, of the loss with the state reset).
"""


def document() -> tuple[str, list[str]]:
    """The contents of docs/derivations.md, and the scripts that failed."""
    parts, failed = [DOC_HEADER], []
    for name in scripts():
        with notation.use("unicode"):  # the document is UTF-8, whatever the terminal that writes it shows
            code, out = run_script(name, "markdown")
        if code:
            failed.append(name)
        parts.append(out.rstrip() + "\n")
    return "\n".join([*parts, OUT_OF_SCOPE]), failed


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m derivcheck.interfaces.derivation_scripts", description="Write docs/derivations.md.")
    parser.add_argument("--write", metavar="PATH", required=True, help="where to write the collected Markdown")
    args = parser.parse_args()
    text, failed = document()
    with open(args.write, "w", encoding="utf-8") as fh:
        fh.write(text)
    print(f"wrote {args.write}" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    sys.exit(1 if failed else 0)
