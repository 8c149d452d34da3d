"""A family of random smooth losses with known gradients, for property tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

ACTIVATIONS = {
    "tanh": (np.tanh, lambda z: 1 - np.tanh(z) ** 2),
    "sin": (np.sin, np.cos),
    "softplus": (lambda z: np.logaddexp(0, z), lambda z: 1 / (1 + np.exp(-z))),
    "cube": (lambda z: z**3 / 3, lambda z: z**2),
}


@dataclass
class SmoothProblem:
    """L(p) = sum_k sum(r_k * phi(a_k * p_k + b_k)) + (c . p)^2 / 2: separable plus one coupling term."""

    params: dict[str, np.ndarray]
    coeffs: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
    activation: str

    def loss(self, p: dict[str, np.ndarray]) -> float:
        phi, _ = ACTIVATIONS[self.activation]
        total, coupling = 0.0, 0.0
        for k, (r, a, b, c) in self.coeffs.items():
            total += float(np.sum(r * phi(a * p[k] + b)))
            coupling += float(np.sum(c * p[k]))
        return total + 0.5 * coupling**2

    def grad(self, p: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        _, dphi = ACTIVATIONS[self.activation]
        coupling = sum(float(np.sum(c * p[k])) for k, (_, _, _, c) in self.coeffs.items())
        return {k: r * a * dphi(a * p[k] + b) + coupling * c for k, (r, a, b, c) in self.coeffs.items()}


@st.composite
def smooth_problems(draw: st.DrawFn, max_side: int = 6, min_blocks: int = 1, square: bool = False) -> SmoothProblem:
    """Random shapes (1-3 blocks, up to 2-D) and values, drawn through one integer seed."""
    nblocks = draw(st.integers(min_blocks, 3))
    seed = draw(st.integers(0, 2**31 - 1))
    activation = draw(st.sampled_from(sorted(ACTIVATIONS)))
    rng = np.random.default_rng(seed)
    params, coeffs = {}, {}
    for k in range(nblocks):
        if square and k == 0:
            side = draw(st.integers(2, max_side))
            shape: tuple[int, ...] = (side, side)
        else:
            shape = tuple(draw(st.lists(st.integers(1, max_side), min_size=1, max_size=2)))
        name = f"p{k}"
        params[name] = rng.uniform(-2, 2, shape)
        coeffs[name] = (
            rng.standard_normal(shape),
            rng.uniform(0.5, 1.5, shape) * rng.choice([-1, 1], shape),
            rng.uniform(-1, 1, shape),
            rng.standard_normal(shape) / np.sqrt(np.prod(shape)),
        )
    return SmoothProblem(params, coeffs, activation)
