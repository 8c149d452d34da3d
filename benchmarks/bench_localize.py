"""One wrong entry among ~1,000,000 parameters: verdict, localization and cost.

Prints figures (no assertions): loss evaluations used, wall time, and the time as a
multiple of one loss+gradient evaluation, for derivcheck and for a plain full
central-difference loop over a 10,000-entry slice.

Run: python benchmarks/bench_localize.py
"""

from __future__ import annotations

import time

import numpy as np

import derivcheck as dc

N, D, H, M = 64, 1000, 990, 10  # W1 has 990,000 entries; ~1.0e6 parameters in all


def make_problem(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, D))
    t = np.eye(M)[rng.integers(0, M, N)]
    params = {
        "w1": rng.standard_normal((D, H)) / np.sqrt(D),
        "b1": np.zeros(H),
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

    for label, g in (("correct gradient", grad), (f"one wrong entry dw1{list(bad_index)}", wrong_grad)):
        r = dc.check_gradient(loss, g, params, seed=0)
        wrong = [str(e) for es in r.wrong_entries.values() for e in es]
        print(f"\nderivcheck, {label}:")
        print(f"  verdict {r.verdict}; localized: {wrong or '-'}")
        print(f"  {r.evaluations}; {r.seconds:.2f} s = {r.seconds / unit:.0f}x one loss+grad")

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
