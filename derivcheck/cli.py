"""The ``derivcheck`` command: demo, list, derive and verify."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from derivcheck.errors import DerivcheckError


def _demo(args: argparse.Namespace) -> int:
    from derivcheck.check import check_gradient
    from derivcheck.examples import catalog

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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (one subcommand per public job)."""
    parser = argparse.ArgumentParser(prog="derivcheck", description="Check, derive and verify gradients.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="check the built-in examples (classic bugs) and print their reports")
    demo.add_argument("names", nargs="*", help="example names (default: all)")
    demo.add_argument("--seed", type=int, default=0)
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


if __name__ == "__main__":
    sys.exit(main())
