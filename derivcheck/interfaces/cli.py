"""The ``derivcheck`` command: list, derive, verify, check, demo."""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from typing import Any, NoReturn

from derivcheck.errors import DerivcheckError

FORMATS = ("text", "latex", "markdown", "code")


def _print_json(schema: str | None, payload: dict) -> None:
    """Every command's JSON: strict, with the schema (``payload``'s own when None) and the version."""
    from derivcheck import __version__

    from derivcheck.report.gradient import strict_json

    head = {"schema": schema} if schema is not None else {}
    print(json.dumps(strict_json({**head, **payload, "version": __version__}), indent=2, allow_nan=False))


def _catalog(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """The catalog with the user's ``--layers`` files; a broken layer file is named once on stderr and skipped."""
    from derivcheck.catalog.registry import MODELS, list_layers, load_layer_files, skipped_note
    load_layer_files(getattr(args, "layers", None) or [])
    print(skipped_note(), end="", file=sys.stderr)
    return list_layers(), list(MODELS)


def _list(args: argparse.Namespace) -> int:
    from derivcheck.catalog.registry import MODELS
    from derivcheck.catalog.registry import get_layer

    layers, models = _catalog(args)
    width = max(map(len, layers + models))
    for name in layers:
        layer = get_layer(name)
        ins = ", ".join(f"{a.name}[{a.dims}]" for a in layer.inputs)
        print(f"{name.ljust(width)}  ({ins}) -> {layer.output or 'scalar'}   {layer.question}".rstrip())
    for name in models:
        print(f"{name.ljust(width)}  model: {' -> '.join(s.layer for s in MODELS[name].steps)}   {MODELS[name].question}")
    return 0


def _derive(args: argparse.Namespace) -> int:
    from derivcheck.symbolic.presentation import render_derivation

    _catalog(args)
    if args.order == 2:
        from derivcheck.catalog.registry import get_layer
        from derivcheck.symbolic.second_order import render_second_order

        get_layer(args.name)  # a clear error for an unknown name (models are chains: derive each layer)
        if args.format not in ("text", "latex"):
            raise DerivcheckError("--order 2 prints text or latex")
        out = render_second_order(args.name, args.format)
        print(out)
        return 1 if "DEFECT" in out else 0
    if args.json:
        _print_json("derivcheck.derivation/1", {"name": args.name, "latex": render_derivation(args.name, "latex").splitlines()})
        return 0
    print(render_derivation(args.name, args.format))
    return 0


def _derive_expr(args: argparse.Namespace) -> int:
    from derivcheck.language.derivation import derive_expression

    if args.step or "," in args.wrt:  # several gradients are one backward pass: shared names, one function
        return _derive_steps(args)
    d = derive_expression(args.expression, args.wrt, lets=args.let or [], order=args.order)
    if args.json:
        _print_json("derivcheck.expression/1", d.to_dict())
    elif args.format == "code":
        print(d.code.rstrip() if d.code else f"# {d.gradient.note}")
    elif args.format == "latex":
        print(d._repr_latex_())
    elif args.format == "markdown":
        print(d._repr_markdown_())
    else:
        print(d)
    return 0 if d.ok else 1


def _derive_steps(args: argparse.Namespace) -> int:
    from derivcheck.language.program import derive_steps

    if args.order != 1:
        raise DerivcheckError("--order 2 is for one expression by one variable; with --step or several --wrt, derive "
                              "the first order")
    d = derive_steps(args.step or [], args.expression, [w.strip() for w in args.wrt.split(",")], lets=args.let or [])
    if args.json:
        _print_json("derivcheck.steps/1", d.to_dict())
    elif args.format == "code":
        print(d.code.rstrip() if d.code else "# DEFECT: the step-by-step backward did not verify")
    elif args.format in ("latex", "markdown"):
        print(d._repr_latex_())
    else:
        print(d)
    return 0 if d.ok else 1


def _check_eq(args: argparse.Namespace) -> int:
    from derivcheck.language.equation import check_equation

    r = check_equation(args.expression, args.wrt, args.claimed, lets=args.let or [])
    if args.json:
        _print_json("derivcheck.equation/1", r.to_dict())
    else:
        print(r)
    return {"pass": 0, "fail": 1}.get(r.verdict, 3)


def _verify_one(name: str, seed: int) -> Any:
    """One layer's or model's verification; a layer that cannot be derived or compiled becomes a failing row."""
    from derivcheck.symbolic import verify
    from derivcheck.catalog.registry import list_models

    t0 = time.perf_counter()
    try:
        return verify.verify_model(name, seed=seed) if name in list_models() else verify.verify_layer(name, seed=seed)
    except Exception as exc:  # noqa: BLE001 - one bad layer file must not stop the catalog's run
        return verify.failed_verification(name, exc, time.perf_counter() - t0)


def _verify_group(names: list[str], seed: int) -> list[tuple[str, Any]]:
    return [(n, _verify_one(n, seed)) for n in names]


def _groups(names: list[str]) -> list[list[str]]:
    """The names, grouped so that a model and the layers it chains end up together."""
    from derivcheck.catalog.registry import get_model, list_models

    models = set(list_models())
    uses = {n: ({n} | {step.layer for step in get_model(n).steps}) if n in models else {n} for n in names}
    groups: list[tuple[set[str], list[str]]] = []
    for n in names:
        joined = [g for g in groups if g[0] & uses[n]]
        layers, members = set(uses[n]), [n]
        for g in joined:
            layers |= g[0]
            members = g[1] + members
            groups.remove(g)
        groups.append((layers, members))
    return [members for _, members in groups]


def _verify(args: argparse.Namespace) -> int:
    from derivcheck.catalog.registry import MODELS
    from derivcheck.report.verification import render_verification_text, verification_rows
    layers, models = _catalog(args)
    names = args.names or layers + models
    unknown = [n for n in names if n not in layers and n not in models]
    if unknown:
        raise DerivcheckError(f"unknown layer(s) {unknown}; known: {', '.join(layers + models)}")
    start = time.perf_counter()
    show = (args.progress or sys.stderr.isatty()) and not args.quiet  # stderr only: stdout stays the table or JSON
    jobs = max(1, min(args.jobs or (os.cpu_count() or 1), len(names)))
    done: dict[str, Any] = {}

    def report(n: str, result: Any) -> None:
        done[n] = result
        if show:
            verdict = "ok" if result.ok else "DISAGREE"
            print(f"[{len(done)}/{len(names)}] {n}: {verdict} ({result.seconds:.1f} s)", file=sys.stderr, flush=True)

    if jobs == 1:
        for n in names:
            report(n, _verify_one(n, args.seed))
    else:
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # Names that share a layer run in one worker, which derives that layer once (the LSTM takes most of
        # the time); the largest groups start first.
        groups = sorted(_groups(names), key=len, reverse=True)
        from derivcheck.catalog.registry import load_layer_files

        with ProcessPoolExecutor(max_workers=jobs, initializer=load_layer_files, initargs=(args.layers,)) as pool:
            futures = [pool.submit(_verify_group, group, args.seed) for group in groups]
            for future in as_completed(futures):
                for n, result in future.result():
                    report(n, result)
    results = [done[n] for n in names]
    total = time.perf_counter() - start
    if args.json:
        _print_json("derivcheck.verification/1", {"seconds": total, "rows": verification_rows(results)})
    else:
        print(render_verification_text(results, total))
    return 0 if all(r.ok for r in results) else 1


def _demo(args: argparse.Namespace) -> int:
    from derivcheck.checker.gradient import check_gradient
    from derivcheck.interfaces.examples import catalog

    known = [ex.name for ex in catalog()]
    unknown = [n for n in args.names if n not in known]
    if unknown:
        raise DerivcheckError(f"unknown example(s) {unknown}{did_you_mean(unknown[0], known)}; known: {', '.join(known)}")
    for ex in catalog():
        if args.names and ex.name not in args.names:
            continue
        print(f"=== {ex.name}: {ex.question}")
        try:
            print(check_gradient(ex.loss, ex.grad, ex.params, seed=args.seed))
        except DerivcheckError as exc:
            print(f"{type(exc).__name__}: {exc}")
        print()
    return 0


# Exit codes of `derivcheck check`: a pass, a fail, a usage error, an inconclusive check.
EXIT_CODES = {"pass": 0, "fail": 1, "inconclusive": 3}


def _check(args: argparse.Namespace) -> int:
    from derivcheck.checker.gradient import check_gradient
    from derivcheck.report import to_dict
    from derivcheck.interfaces.user_files import load_function, load_params

    loss, grad = load_function(args.loss), load_function(args.grad)
    params = load_params(args.params, args.shape or [], args.seed)
    shown = True if args.progress else (False if args.quiet else None)
    report = check_gradient(loss, grad, params, seed=args.seed, mode=args.mode, progress=shown)
    if args.plot:
        from derivcheck.checker.plots import plot_check

        plot_check(report, loss, grad, params, path=args.plot, seed=args.seed, entry=_entry(args.plot_entry))
    if args.json:
        _print_json(None, to_dict(report))
    else:
        print(report)
    return EXIT_CODES[report.verdict]


def _derivations(args: argparse.Namespace) -> int:
    from derivcheck.interfaces.derivation_scripts import run_script, scripts

    known = scripts()
    if not args.name:
        width = max(map(len, known))
        for name, question in known.items():
            print(f"{name.ljust(width)}  {question}")
        return 0
    if args.name not in known:
        raise DerivcheckError(f"no derivation named {args.name!r}; known: {', '.join(known)}")
    code, out = run_script(args.name, args.format, args.script_args)
    print(out.rstrip())
    return code


def _entry(text: str | None) -> Any:
    """``"w:0,1"`` -> ``("w", (0, 1))``; ``"0,1"`` -> ``(0, 1)``."""
    if text is None:
        return None
    name, _, index = text.rpartition(":")
    try:
        parsed = tuple(int(i) for i in index.split(",") if i.strip())
    except ValueError as exc:
        raise DerivcheckError(f"--plot-entry expects NAME:I,J (e.g. w:0,1); got {text!r}") from exc
    return (name, parsed) if name else parsed


def _add_expression_commands(sub: Any) -> None:
    """derive-expr and check-eq: the matrix language on the command line."""
    from derivcheck.language.printing.notation import notation_help

    # What derive-expr prints is input too: the help lists it, in the glyphs this terminal shows.
    printed_forms = {"epilog": notation_help(), "formatter_class": argparse.RawDescriptionHelpFormatter}
    expr = sub.add_parser("derive-expr", help="derive a typed matrix expression (index form, matrix form, code), "
                                              "verified in the same run (exit 1 on any disagreement)",
                          description="Differentiate EXPR by --wrt. Declare every name with --let, e.g. "
                                      "--let 'X: N x D' --let 'A: D x D symmetric' --let 'w: D' --let 'lam: scalar'.",
                          **printed_forms)
    expr.add_argument("expression", help="e.g. 'sum((X @ W - Y)**2)'; operators @ * / + - ** .T, and the printed "
                                          "notation below")
    expr.add_argument("--wrt", required=True, help="the variable to differentiate by, or a comma-separated list (W,b: every gradient, "
                           "printed as one backward pass)")
    expr.add_argument("--step", action="append", metavar="'NAME = EXPR'",
                      help="a named forward step (repeatable, in order): EXPRESSION may use the names; the backward "
                           "pass is then printed step by step, each line verified")
    expr.add_argument("--let", action="append", metavar="'NAME: SHAPE [PROPERTIES]'",
                      help="a declaration (repeatable); properties: symmetric, spd, positive, simplex")
    expr.add_argument("--order", type=int, choices=(1, 2), default=1, help="2 adds the Hessian-vector product "
                                                                           "(and the Hessian for a vector)")
    expr.add_argument("--format", choices=FORMATS, default="text", help="text (default), latex, markdown or code")
    expr.add_argument("--json", action="store_true", help="print the derivation as JSON (schema and version)")
    expr.set_defaults(run=_derive_expr)
    eq = sub.add_parser("check-eq", help="check a hand-typed gradient equation (exit 0 right, 1 wrong, 3 "
                                         "inconclusive, 2 usage error)",
                        description="Is CLAIMED the gradient of EXPR by --wrt? Decided exactly at sizes 2 and "
                                    "numerically at random sizes; a difference is explained where a correction fits. "
                                    "CLAIMED may be typed as derive-expr prints it.", **printed_forms)
    eq.add_argument("expression", help="the scalar expression, e.g. 'sum(G * sigmoid(X @ W))'")
    eq.add_argument("claimed", help="the claimed gradient, e.g. 'X.T @ (sigmoid(X @ W) * G)' or 'X^T (G * "
                                    "sigmoid(X W))', or in index form, e.g. 'df/dW_ij = sum_n X_ni G_nj "
                                    "sigmoid(sum_d X_nd W_dj)': its indices outside every sum are the entries of the "
                                    "gradient, in the order of the left side (alphabetical where it is left out)")
    eq.add_argument("--wrt", required=True, help="the variable differentiated by")
    eq.add_argument("--let", action="append", metavar="'NAME: SHAPE [PROPERTIES]'", help="a declaration (repeatable)")
    eq.add_argument("--json", action="store_true", help="print the result as JSON (schema and version)")
    eq.set_defaults(run=_check_eq)


class _Parser(argparse.ArgumentParser):
    """argparse with "did you mean" for a mistyped subcommand or choice (exit code 2, as any usage error)."""

    def error(self, message: str) -> NoReturn:
        m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if m:
            known = re.findall(r"'([^']*)'", m.group(2)) or [c.strip() for c in m.group(2).split(",")]
            message += did_you_mean(m.group(1), known)
        super().error(message)


def did_you_mean(name: str, known: Sequence[str]) -> str:
    """`` (did you mean 'dense'?)`` for a name close to a known one, else nothing."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _add_check_command(sub: Any) -> None:
    """``derivcheck check FILE.py:loss FILE.py:grad``: the numeric checker on the user's own file."""
    check = sub.add_parser(
        "check", help="check a gradient in your own file (exit 0 pass, 1 fail, 3 inconclusive, 2 usage error)",
        description="Check FILE.py:grad against finite differences of FILE.py:loss. Exit codes: 0 pass, 1 fail, "
                    "3 inconclusive, 2 usage error.")
    check.add_argument("loss", help="FILE.py:FUNCTION, the loss: params -> scalar")
    check.add_argument("grad", help="FILE.py:FUNCTION, the hand-written gradient: params -> same structure")
    check.add_argument("--params", help=".npz file of the parameters, or .npy of one (loaded without pickle)")
    check.add_argument("--shape", action="append", metavar="NAME=2x3",
                       help="a random standard-normal parameter of this shape (repeatable); one parameter is "
                            "passed as an array, several as a dict")
    check.add_argument("--seed", type=int, default=0, help="seed of the random directions and --shape values")
    check.add_argument("--mode", choices=("auto", "full", "directional"), default="auto",
                       help="auto (default), full (every entry) or directional (never entry by entry)")
    check.add_argument("--json", action="store_true", help="print the report as JSON (schema and version)")
    check.add_argument("--plot", metavar="OUT.png", help="also draw the step-size curve and the wrong entries (needs "
                                                        "the plot extra: pip install 'derivcheck[plot]')")
    check.add_argument("--plot-entry", metavar="NAME:I,J", help="draw the step-size curve along this entry instead of a "
                                                               "random direction (e.g. w:0,1; for one --shape, just 0,1)")
    check.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    check.add_argument("--progress", action="store_true", help="progress lines on stderr (after 2 s) even when it "
                                                               "is not a terminal (they are on by default on one)")
    check.set_defaults(run=_check)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (one subcommand per public job)."""
    from derivcheck import __version__

    parser = _Parser(prog="derivcheck", description="Check, derive and verify gradients.")
    parser.add_argument("--version", action="version", version=f"derivcheck {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    listing = sub.add_parser("list", help="list the layers and models of the catalog")
    listing.set_defaults(run=_list)
    derive = sub.add_parser("derive", help="print a layer's gradients in index form and matrix form")
    derive.add_argument("name", help="a layer or model of the catalog (see: derivcheck list)")
    derive.add_argument("--format", choices=FORMATS, default="text",
                        help="text (default), latex, markdown, or code (NumPy functions generated from the matrix forms)")
    derive.add_argument("--json", action="store_true", help="print the LaTeX equations as JSON (schema and version)")
    derive.add_argument("--order", type=int, choices=(1, 2), default=1,
                        help="1 (default): gradients; 2: second derivatives in index form, verified against central "
                             "differences of the first (text or latex)")
    derive.set_defaults(run=_derive)
    verify = sub.add_parser("verify", help="derive and verify layers four ways (exit 1 on any disagreement)")
    verify.add_argument("names", nargs="*", help="layers or models (default: the whole catalog)")
    verify.add_argument("--json", action="store_true", help="print the rows as JSON (with schema and version)")
    verify.add_argument("--seed", type=int, default=0, help="seed of the random sizes and inputs (default 0)")
    verify.add_argument("--jobs", type=int, default=0, help="worker processes (default: one per core; 1 runs in this process)")
    verify.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    verify.add_argument("--progress", action="store_true",
                        help="progress lines on stderr even when it is not a terminal (they are on by default on one)")
    verify.set_defaults(run=_verify)
    for command in (listing, derive, verify):
        command.add_argument("--layers", action="append", default=[], metavar="PATH",
                             help="a layer file of your own, or a folder of them (repeatable); a broken one is "
                                  "named and skipped")
    _add_check_command(sub)
    _add_expression_commands(sub)
    answers = sub.add_parser("derivations", help="list the derivation scripts, or run one (exit 1 if it disagrees)",
                             description="The scripts in derivations/: one question each, derived, printed and verified.")
    answers.add_argument("name", nargs="?", help="a script's name (see: derivcheck derivations)")
    answers.add_argument("--format", choices=("text", "latex", "markdown"), default="text", help="text (default), latex or markdown")
    answers.add_argument("script_args", nargs=argparse.REMAINDER, metavar="ARGS",
                         help="passed on to the script (e.g. derivcheck derivations conv_parameters --channels 1)")
    answers.set_defaults(run=_derivations)
    demo = sub.add_parser("demo", help="check the built-in examples (classic bugs) and print their reports")
    demo.add_argument("names", nargs="*", help="example names (default: all)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the checks' random directions (default 0)")
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``derivcheck`` command."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except DerivcheckError as exc:
        print(f"derivcheck: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `derivcheck derive dense | head`: the reader left; that is no error of ours
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        except (OSError, ValueError):
            pass  # a stdout without a file descriptor has nothing left to flush into a pipe
        return 0


if __name__ == "__main__":
    sys.exit(main())
