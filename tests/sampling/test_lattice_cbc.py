"""The CBC generating vector minimises the criterion its docstring states, step by step.

An independent implementation of the component-by-component search for

    e^2(z) = -1 + (1/n) sum_k prod_j (1 + gamma 2 pi^2 B_2({k z_j / n})),  B_2 = x^2 - x + 1/6

(Sloan, Kuo & Joe 2002) must return the package's vector exactly, at sizes where a wrong
constant (pi^2, or B_2 with 1/3) picks another vector.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from kernelapprox.sampling.qmc import cbc_generating_vector


def reference_cbc(n: int, d: int, *, gamma: float = 0.05) -> tuple[int, ...]:
    k = np.arange(n)

    def factor(z: int) -> np.ndarray:
        x = (k * z % n) / n
        return 1.0 + gamma * 2.0 * math.pi**2 * (x * x - x + 1.0 / 6.0)

    candidates = [c for c in range(1, n) if math.gcd(c, n) == 1]
    z, running = [1], factor(1)
    for _ in range(1, d):
        scores = [float(np.mean(running * factor(c))) - 1.0 for c in candidates]
        best = candidates[int(np.argmin(scores))]
        z.append(best)
        running = running * factor(best)
    return tuple(z)


@pytest.mark.parametrize(("n", "d"), [(61, 8), (127, 8), (150, 8)])
def test_cbc_matches_an_independent_search(n: int, d: int) -> None:
    assert cbc_generating_vector(n, d) == reference_cbc(n, d)
