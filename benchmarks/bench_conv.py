"""conv2d and maxpool2d figures (printed, not asserted).

conv2d forward+backward at N=32, C=16, 32x32, F=32, 3x3 (stride 1, padding 1):
* the reference (vectorized) implementation against a naive loop over pixels;
* its backward against one np.einsum doing the same multiply-adds (target: within 3x);
* the compiled symbolic index form (Python loops) on a small slice, per entry.
maxpool2d 2x2 stride 2 at the same input size: reference against a naive loop.

Run: python benchmarks/bench_conv.py
"""

from __future__ import annotations


import numpy as np
from timing import best_of
from numpy.lib.stride_tricks import sliding_window_view

from derivcheck.catalog.registry import get_layer
from derivcheck.symbolic.compile import compiled_gradient

N, C, H, S, F, K = 32, 16, 32, 32, 32, 3


def naive_conv_backward(dy, x, w, pad):
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for i in range(dy.shape[2]):  # the loop over output pixels derivcheck's reference avoids
        for j in range(dy.shape[3]):
            patch = xp[:, :, i : i + K, j : j + K]
            g = dy[:, :, i, j]
            dw += np.einsum("nf,ncuv->fcuv", g, patch)
            dxp[:, :, i : i + K, j : j + K] += np.einsum("nf,fcuv->ncuv", g, w)
    return dxp[:, :, pad:-pad, pad:-pad], dw, dy.sum(axis=(0, 2, 3))


def naive_maxpool_backward(dy, x):
    dx = np.zeros_like(x)
    for i in range(dy.shape[2]):
        for j in range(dy.shape[3]):
            win = x[:, :, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].reshape(N, C, 4)
            arg = win.argmax(axis=-1)
            n, c = np.indices(arg.shape)
            dx[n, c, 2 * i + arg // 2, 2 * j + arg % 2] += dy[:, :, i, j]
    return dx


def main() -> None:
    rng = np.random.default_rng(0)
    conv = get_layer("conv2d")
    x, w, b = rng.standard_normal((N, C, H, S)), rng.standard_normal((F, C, K, K)), rng.standard_normal(F)
    dy = rng.standard_normal((N, F, H, S))
    t_fwd = best_of(lambda: conv.forward(x, w, b, stride=1, pad=1))
    t_bwd = best_of(lambda: conv.backward(dy, x, w, b, stride=1, pad=1))
    t_naive = best_of(lambda: naive_conv_backward(dy, x, w, 1), 1)
    ref = conv.backward(dy, x, w, b, stride=1, pad=1)
    naive = naive_conv_backward(dy, x, w, 1)
    agree = all(np.allclose(ref[k], v) for k, v in zip(("x", "w", "b"), naive))
    # The same multiply-adds as dw and dx in one einsum each, on a precomputed window view.
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    win = sliding_window_view(xp, (K, K), axis=(2, 3))
    t_einsum = best_of(lambda: np.einsum("ncijuv,nfij->fcuv", win, dy, optimize=True)) * 2
    print(f"conv2d N={N} C={C} {H}x{S} F={F} {K}x{K}, stride 1, pad 1")
    print(f"  reference forward {t_fwd * 1e3:.0f} ms, backward {t_bwd * 1e3:.0f} ms")
    print(f"  naive pixel-loop backward {t_naive * 1e3:.0f} ms: reference is {t_naive / t_bwd:.1f}x faster (same result: {agree})")
    print(f"  two einsums with the backward's multiply-adds: {t_einsum * 1e3:.0f} ms; reference backward = {t_bwd / t_einsum:.2f}x that (target <= 3x)")

    small = {"N": 2, "C": 2, "H": 5, "S": 5, "F": 2, "KH": 3, "KW": 3, "stride": 1, "pad": 1, "OH": 5, "OS": 5}
    xs, ws, bs = x[:2, :2, :5, :5], w[:2, :2], b[:2]
    dys = rng.standard_normal((2, 2, 5, 5))
    fn = compiled_gradient("conv2d", "x", "index")
    t_sym = best_of(lambda: fn({"x": xs, "w": ws, "b": bs}, dys, small), 1)
    t_ref = best_of(lambda: conv.backward(dys, xs, ws, bs, stride=1, pad=1))
    entries = xs.size
    print(f"  compiled symbolic index form dx (Python loops), slice N=2 C=2 5x5: {t_sym * 1e3:.0f} ms "
          f"({t_sym / entries * 1e6:.0f} us/entry) vs reference {t_ref * 1e3:.2f} ms: {t_sym / t_ref:.0f}x; "
          f"a checking witness, not a fast path")

    pool = get_layer("maxpool2d")
    dyp = rng.standard_normal((N, C, H // 2, S // 2))
    xq = rng.standard_normal((N, C, H, S))
    t_pool = best_of(lambda: pool.backward(dyp, xq, kernel=2, stride=2))
    t_pool_naive = best_of(lambda: naive_maxpool_backward(dyp, xq), 1)
    same = np.allclose(pool.backward(dyp, xq, kernel=2, stride=2)["x"], naive_maxpool_backward(dyp, xq))
    print(f"\nmaxpool2d 2x2 stride 2 on N={N} C={C} {H}x{S}: reference backward {t_pool * 1e3:.1f} ms, "
          f"naive loop {t_pool_naive * 1e3:.1f} ms ({t_pool_naive / t_pool:.1f}x; same result: {same})")


if __name__ == "__main__":
    main()
