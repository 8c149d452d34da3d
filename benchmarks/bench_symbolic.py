"""Symbolic core figures: derivation time per layer, reuse across sizes, compiled speed.

Prints (no assertions):
* cold derivation time per layer (symbolic sizes: the same result serves N=2 and N=4096);
* the compiled matrix-form gradient evaluated at N=2 and N=4096 from that one derivation;
* dense at N=256, D=M=512: compiled matrix form vs the hand-written reference backward;
* cold `derivcheck derive lstm_step`, `derive lstm3` and `derivcheck verify` (fresh processes), as ratios to
  their targets.

Run: python benchmarks/bench_symbolic.py
"""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
from timing import best_of

from derivcheck.catalog.registry import get_layer, list_layers
from derivcheck.catalog.sampling import complete_sizes, letters_of, sample_inputs
from derivcheck.symbolic.compile import compile_matrix_form
from derivcheck.symbolic.derive import _derive, derive


# Targets on a quiet 2-core machine, cold (interpreter start included).
LSTM_TARGET_S = 3.0
VERIFY_TARGET_S = 12.0


def main() -> None:
    rng = np.random.default_rng(0)
    print(f"{'layer':24s} {'derive (cold)':>14s} {'eval N=2':>10s} {'eval N=4096':>12s}")
    for name in list_layers():
        if get_layer(name).chain is not None:
            continue  # declared as a chain of steps: timed below as `derivcheck derive`, its user-facing path
        _derive.cache_clear()
        t0 = time.perf_counter()
        d = derive(name)
        cold = time.perf_counter() - t0
        layer = get_layer(name)
        evals = []
        for n in (2, 4096):
            hyper = {h: lo for h, (lo, _) in layer.hyper.items()}  # the smallest stride, padding
            sizes = complete_sizes(layer, {**{c: (n if c == "N" else 8) for c in letters_of(layer)}, **hyper})
            inputs = sample_inputs(layer, sizes, rng)
            up = rng.standard_normal(tuple(sizes[c] for c in layer.output_letters)) if not layer.is_loss else 1.0
            fns = [compile_matrix_form(d.built, g.matrix, g.arg.letters) for g in d.gradients.values()]
            fns = [f for f in fns if f is not None]
            evals.append(best_of(lambda: [f(inputs, up, sizes) for f in fns]) if fns else float("nan"))
        print(f"{name:24s} {cold * 1e3:11.0f} ms {evals[0] * 1e6:7.0f} us {evals[1] * 1e3:9.2f} ms")

    layer = get_layer("dense")
    d = derive("dense")
    sizes = {"N": 256, "D": 512, "M": 512}
    inputs = sample_inputs(layer, sizes, rng)
    up = rng.standard_normal((256, 512))
    fns = [compile_matrix_form(d.built, g.matrix, g.arg.letters) for g in d.gradients.values()]
    t_sym = best_of(lambda: [f(inputs, up, sizes) for f in fns], 10)
    t_ref = best_of(lambda: layer.backward(up, **inputs), 10)
    print(f"\ndense N=256, D=M=512: compiled matrix form {t_sym * 1e3:.2f} ms, reference backward {t_ref * 1e3:.2f} ms, "
          f"ratio {t_sym / t_ref:.2f}x (target <= 1.5x)")

    print()
    for args, target in ((["derive", "lstm_step"], LSTM_TARGET_S), (["derive", "lstm3"], LSTM_TARGET_S),
                         (["verify"], VERIFY_TARGET_S)):
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "derivcheck.interfaces.cli", *args], capture_output=True, text=True)
        took = time.perf_counter() - t0
        print(f"cold `derivcheck {' '.join(args)}` (fresh process): {took:.1f} s = {took / target:.2f} x the "
              f"{target:.0f} s target, {len(done.stdout) / 1024:.1f} KB printed, exit {done.returncode}")
    print(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
