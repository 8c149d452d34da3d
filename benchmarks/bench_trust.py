"""What trust costs: tied max-pool, a float32 model's pass, and one wrong entry among 10^7.

Prints figures (no assertions), each as a ratio measured in this run. The targets: a correct
max-pool backward on 100 integer images with ties at most 500 loss evaluations; a float32
model's pass at most 40 evaluations; failing and localizing one entry off by 1% among 10^7 at
most 2x the peak memory and 20x the time of one loss+gradient evaluation.

Run: python benchmarks/bench_trust.py
"""

from __future__ import annotations

import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

import derivcheck as dc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.test_certified_stencils import tanh_net_in_float32  # noqa: E402  (the suite's own cases)
from tests.test_verdicts import _pooled, _relu_net_in_float32  # noqa: E402

BIG = 10**7


def tied_maxpool() -> None:
    x, loss, grads = _pooled(0, 100)[:3]
    report = dc.check_gradient(loss, grads["first"], x, trace=False)
    print(f"tied max-pool, 100 integer images, first-max routing: {report.verdict}, {report.evaluations} "
          f"(target at most 500 loss evaluations)")


def float32_model() -> None:
    counts = []
    for net in range(5):
        params, loss, grad = tanh_net_in_float32(net)
        spent = []
        for seed in range(5):
            report = dc.check_gradient(loss, grad, params, seed=seed, trace=False)
            spent.append(f"{report.verdict} {report.evaluations.loss + report.evaluations.grad}")
        counts.append(", ".join(spent))
    print(f"float32 tanh nets (loss and gradient computed in float32), 5 nets x seeds 0-4: {'; '.join(counts)} "
          f"(target: pass within 40 evaluations)")
    counts = []
    for seed in range(5):
        params, loss, grad = _relu_net_in_float32(seed)[:3]
        report = dc.check_gradient(loss, grad, params, seed=seed, trace=False)
        passed = "+".join(r.name for r in report.params if r.verdict == "pass") or "none"
        counts.append(f"{report.verdict} in {report.evaluations.loss + report.evaluations.grad} (rows passed: {passed})")
    print(f"float32 ReLU nets, 5 seeds: {'; '.join(counts)} (kinks at every step long enough to beat float32's "
          f"rounding: w1 cannot reach the 1% single-entry floor)")


def _peak(fn) -> tuple[float, object]:
    tracemalloc.start()
    out = fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak, out


def _seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# One loss+gradient is timed this many times and the median taken: one call's time on a shared machine jitters by
# half its value, and every ratio below is divided by it.
BASE_RUNS = 5
CHECK_RUNS = 3


def one_entry_among_ten_million() -> None:
    rng = np.random.default_rng(0)
    c, w = rng.standard_normal(BIG), rng.standard_normal(BIG)
    i = int(np.argsort(np.abs(c * np.cos(w)))[3 * BIG // 4])  # an entry of typical size

    inside = [0.0]  # seconds spent inside the user's functions

    def loss(v):
        t0 = time.perf_counter()
        value = float(c @ np.sin(v))
        inside[0] += time.perf_counter() - t0
        return value

    def wrong(v):
        t0 = time.perf_counter()
        g = c * np.cos(v)
        g[i] *= 1.01
        inside[0] += time.perf_counter() - t0
        return g

    base_mem, _ = _peak(lambda: (loss(w), wrong(w)))
    base_time = float(np.median([_seconds(lambda: (loss(w), wrong(w))) for _ in range(BASE_RUNS)]))
    mem, report = _peak(lambda: dc.check_gradient(loss, wrong, w, trace=False))
    # Timed in runs of their own: tracing every allocation slows the check's chunked loops, and the one
    # loss+gradient it is divided by was timed untraced. The median of CHECK_RUNS, as the loss+gradient's is a
    # median: one run on a shared machine jitters by a tenth.
    inside[0] = 0.0
    seconds = float(np.median([_seconds(lambda: dc.check_gradient(loss, wrong, w, trace=False))
                               for _ in range(CHECK_RUNS)]))
    inside[0] /= CHECK_RUNS
    found = [e.index for e in report.wrong_entries.get("params", ())]
    print(f"one entry off by 1% among 10^7: {report.verdict}, localized {found} (planted {(i,)}), "
          f"{report.evaluations}; peak memory {mem / base_mem:.1f}x and time {seconds / base_time:.1f}x one "
          f"loss+gradient ({base_mem / 1e6:.0f} MB, {base_time:.2f} s, median of {BASE_RUNS}; the check {seconds:.1f} s, "
          f"median of {CHECK_RUNS}, {inside[0] / base_time:.1f}x of it inside the loss and gradient calls) "
          f"(targets 2x and 20x)")


if __name__ == "__main__":
    tied_maxpool()
    float32_model()
    one_entry_among_ten_million()
