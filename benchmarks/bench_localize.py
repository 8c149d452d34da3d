"""A 1,029,642-parameter MLP with biases: what a pass and a localized wrong entry cost.

Prints figures (no assertions): loss and gradient evaluations used, wall time, and the
time as a multiple of one loss+gradient evaluation measured in the same run, for
derivcheck and for a plain central-difference loop over a 10,000-entry slice. The
targets: a correct gradient passes in at most 16 loss evaluations plus one gradient; one
wrong entry is caught and localized exactly in at most 50 loss evaluations in all.

Run: python benchmarks/bench_localize.py
"""

from __future__ import annotations

import time

import numpy as np

import derivcheck as dc

N, D, H, M = 64, 2000, 512, 10  # W1 has 1,024,000 entries, b1 512; 1,029,642 parameters in all


def make_problem(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, D))
    t = np.eye(M)[rng.integers(0, M, N)]
    params = {
        "w1": rng.standard_normal((D, H)) / np.sqrt(D),
        "b1": rng.standard_normal(H) / 10,
        "w2": rng.standard_normal((H, M)) / np.sqrt(H),
        "b2": np.zeros(M),
    }

    def forward(p):
        z = x @ p["w1"] + p["b1"]
        h = np.tanh(z)
        s = h @ p["w2"] + p["b2"]
        s = s - s.max(axis=1, keepdims=True)
        logp = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
        return h, logp

    def loss(p):
        return -(t * forward(p)[1]).sum() / N

    def grad(p):
        h, logp = forward(p)
        ds = (np.exp(logp) - t) / N
        dh = ds @ p["w2"].T
        dz = dh * (1 - h**2)
        return {"w1": x.T @ dz, "b1": dz.sum(0), "w2": h.T @ ds, "b2": ds.sum(0)}

    return params, loss, grad


def main() -> None:
    params, loss, grad = make_problem()
    total = sum(v.size for v in params.values())
    start = time.perf_counter()
    for _ in range(5):
        loss(params)
        grad(params)
    unit = (time.perf_counter() - start) / 5
    print(f"two-layer tanh MLP, softmax cross-entropy: {total:,} parameters; one loss+grad: {unit * 1e3:.1f} ms")

    bad_index = (123, 456)

    def wrong_grad(p):
        g = grad(p)
        g["w1"][bad_index] += 0.5 * abs(g["w1"][bad_index]) + 1e-4
        return g

    def wrong_bias(p):
        g = grad(p)
        g["b1"][300] += 1e-3
        return g

    targets = {"correct gradient": 16, "one wrong entry": 50}
    cases = (("correct gradient", grad), ("one wrong entry", wrong_grad), ("one wrong entry", wrong_bias))
    for label, g in cases:
        r = dc.check_gradient(loss, g, params, seed=0)
        wrong = [str(e) for es in r.wrong_entries.values() for e in es]
        met = "met" if r.evaluations.loss <= targets[label] else "MISSED"
        where = "" if label == "correct gradient" else (" in w1" if g is wrong_grad else " in b1")
        print(f"\nderivcheck, {label}{where}:")
        print(f"  verdict {r.verdict}; localized: {wrong or '-'}")
        print(f"  {r.evaluations}; {r.seconds:.2f} s = {r.seconds / unit:.0f}x one loss+grad "
              f"(target <= {targets[label]} loss evaluations: {met})")

    # The classic loop: every coordinate by central differences, on a 10,000-entry slice.
    w1 = params["w1"]
    flat = w1.reshape(-1)
    start = time.perf_counter()
    h = 1e-5
    numeric = np.empty(10_000)
    for i in range(10_000):
        old = flat[i]
        flat[i] = old + h
        fp = loss(params)
        flat[i] = old - h
        fm = loss(params)
        flat[i] = old
        numeric[i] = (fp - fm) / (2 * h)
    secs = time.perf_counter() - start
    print("\nplain central-difference loop over 10,000 entries of w1:")
    print(f"  20,000 loss evaluations; {secs:.1f} s = {secs / unit:.0f}x one loss+grad")
    print(f"  extrapolated to all {total:,} parameters: {secs * total / 10_000 / 3600:.1f} h")


if __name__ == "__main__":
    main()
